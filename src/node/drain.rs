//! A node told to leave (SIGTERM) with `drain_timeout` set (off by default, as memcached stops
//! at once; the StatefulSet sets it) keeps serving for a bounded drain, so the routers can move
//! its keys off it before it exits (docs/operations.md, "Scale out and in").
//!
//! While draining, the node serves every request exactly as before and answers `stats` with
//! `draining 1` (a ringcache extension, docs/protocol.md). A router that finds a member
//! draining takes it out of its ring as if discovery had dropped it: a transition reads the
//! keys from this node and copies them to their new owners. The drain ends, whichever comes
//! first:
//!
//! - at `drain_timeout` seconds, whatever happens (Kubernetes' grace period is sized over it);
//! - once some router has seen `draining 1` and the node then went `drain_quiet` seconds
//!   without a request other than `stats` or `version`: the routers that noticed have finished
//!   moving its keys (their migrators read it continuously while they work) and stopped
//!   routing to it. Requiring a router to have seen the flag keeps an idle cluster's node from
//!   leaving before any router knew, and `drain_quiet` above discovery's interval gives every
//!   other router a round to notice too.
//!
//! The request path only reads one atomic while the node is not draining.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often the drain checks whether it may end.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// Why a drain ended (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// `drain_timeout` passed.
    Timeout,
    /// A router saw the flag, then no request came for `drain_quiet`.
    Quiet,
    /// Stopped from outside (SIGINT, a second SIGTERM, the `shutdown` command).
    Stopped,
}

/// The node's drain state.
#[derive(Debug, Default)]
pub struct Drain {
    active: AtomicBool,
    /// When the drain began; every other time is kept as milliseconds since then.
    since: OnceLock<Instant>,
    /// A `stats` reply has carried `draining 1`.
    reported: AtomicBool,
    /// Milliseconds after `since` of the last request other than `stats`/`version`, or of
    /// the first report, whichever is later.
    last_activity_ms: AtomicU64,
}

impl Drain {
    /// Whether the node is draining.
    #[inline]
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Enters the draining state (idempotent).
    pub fn begin(&self) {
        let _ = self.since.set(Instant::now());
        self.active.store(true, Ordering::SeqCst);
    }

    fn elapsed_ms(&self) -> u64 {
        self.since
            .get()
            .map_or(0, |s| s.elapsed().as_millis() as u64)
    }

    /// A request that shows the node is still needed (anything but `stats` and `version`).
    #[inline]
    pub fn touch(&self) {
        if self.active() {
            self.last_activity_ms
                .fetch_max(self.elapsed_ms(), Ordering::Relaxed);
        }
    }

    /// A `stats` reply is about to say `draining 1`: a router knows. Its first report counts
    /// as activity, so the quiet period starts no earlier than that.
    pub fn reported(&self) {
        if !self.reported.swap(true, Ordering::SeqCst) {
            self.last_activity_ms
                .fetch_max(self.elapsed_ms(), Ordering::Relaxed);
        }
    }

    /// Whether the drain may end now under the quiet rule.
    fn quiet_for(&self, quiet: Duration) -> bool {
        self.reported.load(Ordering::SeqCst)
            && self
                .elapsed_ms()
                .saturating_sub(self.last_activity_ms.load(Ordering::Relaxed))
                >= quiet.as_millis() as u64
    }

    /// Drains: begins, then waits until `timeout`, the quiet rule, or `stop`.
    pub async fn run(
        &self,
        timeout: Duration,
        quiet: Duration,
        stop: &CancellationToken,
    ) -> DrainEnd {
        self.begin();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.quiet_for(quiet) {
                return DrainEnd::Quiet;
            }
            if tokio::time::Instant::now() >= deadline {
                return DrainEnd::Timeout;
            }
            tokio::select! {
                _ = tokio::time::sleep(CHECK_EVERY) => {}
                _ = stop.cancelled() => return DrainEnd::Stopped,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ends_at_the_timeout_when_no_router_saw_it() {
        let d = Drain::default();
        assert!(!d.active());
        d.touch();
        let stop = CancellationToken::new();
        let t = Instant::now();
        let end = d
            .run(Duration::from_millis(500), Duration::ZERO, &stop)
            .await;
        assert_eq!(end, DrainEnd::Timeout, "quiet alone does not end it");
        assert!(t.elapsed() >= Duration::from_millis(500));
        assert!(d.active());
    }

    #[tokio::test]
    async fn ends_when_quiet_after_a_report() {
        let d = Drain::default();
        d.begin();
        d.reported();
        let stop = CancellationToken::new();
        let t = Instant::now();
        let end = d
            .run(Duration::from_secs(10), Duration::from_millis(300), &stop)
            .await;
        assert_eq!(end, DrainEnd::Quiet);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn requests_keep_it_alive_and_stop_ends_it() {
        let d = std::sync::Arc::new(Drain::default());
        d.begin();
        d.reported();
        let stop = CancellationToken::new();
        let (d2, s2) = (d.clone(), stop.clone());
        let busy = tokio::spawn(async move {
            for _ in 0..10 {
                d2.touch();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            s2.cancel();
        });
        let end = d
            .run(Duration::from_secs(10), Duration::from_millis(400), &stop)
            .await;
        assert_eq!(
            end,
            DrainEnd::Stopped,
            "never quiet for 400 ms while touched"
        );
        let _ = busy.await;
    }
}
