//! Per-node health: consecutive failures mark a node down, probes bring it back fenced.
//!
//! DESIGN §5: K consecutive failures (errors or timeouts) mark a node down; the ring is not
//! changed, its keys are served by their next replica. A background probe sends `version` under
//! exponential backoff; when the node answers again it is flushed before it is used (so nothing
//! it held from before can be read stale) and stays *fenced* — its misses fall through to the
//! next replica, whose hits are copied back — until it is re-warmed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The states a node can be in, as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Serving normally.
    Up,
    /// Back after being down, flushed, warming: misses fall through to the next replica.
    Fenced,
    /// Failing: skipped by reads and writes until a probe succeeds.
    Down,
}

/// Health counters of one node; all methods are lock-free.
#[derive(Debug)]
pub struct Health {
    failure_limit: u32,
    consecutive_failures: AtomicU32,
    down: AtomicBool,
    fenced: AtomicBool,
    /// Times the node was marked down (for metrics).
    downs: AtomicU64,
}

impl Health {
    /// A healthy node that goes down after `failure_limit` consecutive failures.
    pub fn new(failure_limit: u32) -> Health {
        Health {
            failure_limit: failure_limit.max(1),
            consecutive_failures: AtomicU32::new(0),
            down: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            downs: AtomicU64::new(0),
        }
    }

    /// The node's current state.
    pub fn state(&self) -> NodeState {
        if self.down.load(Ordering::Relaxed) {
            NodeState::Down
        } else if self.fenced.load(Ordering::Relaxed) {
            NodeState::Fenced
        } else {
            NodeState::Up
        }
    }

    /// Whether requests may be sent to the node.
    pub fn is_usable(&self) -> bool {
        !self.down.load(Ordering::Relaxed)
    }

    /// A request succeeded.
    #[inline]
    pub fn success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    /// A request failed; returns true if this failure marked the node down.
    pub fn failure(&self) -> bool {
        let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.failure_limit && !self.down.swap(true, Ordering::Relaxed) {
            self.downs.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// Marks the node down at once (connection refused, garbage from the server).
    pub fn mark_down(&self) -> bool {
        self.consecutive_failures
            .store(self.failure_limit, Ordering::Relaxed);
        if !self.down.swap(true, Ordering::Relaxed) {
            self.downs.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// A probe found the node answering and it has been flushed: usable again, but fenced.
    pub fn returned_fenced(&self) {
        self.fenced.store(true, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.down.store(false, Ordering::Relaxed);
    }

    /// The node has been re-warmed: lift the fence.
    pub fn unfence(&self) {
        self.fenced.store(false, Ordering::Relaxed);
    }

    /// How many times the node has been marked down.
    pub fn downs(&self) -> u64 {
        self.downs.load(Ordering::Relaxed)
    }
}

/// Pause before probe attempt `n` (0-based): 100 ms doubling to 5 s.
pub fn probe_backoff(n: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << n.min(6));
    Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_after_k_consecutive_failures_only() {
        let h = Health::new(3);
        assert!(!h.failure());
        h.success();
        assert!(!h.failure());
        assert!(!h.failure());
        assert_eq!(h.state(), NodeState::Up);
        assert!(h.failure());
        assert_eq!(h.state(), NodeState::Down);
        assert!(
            !h.failure(),
            "only the first crossing reports the transition"
        );
        assert_eq!(h.downs(), 1);
    }

    #[test]
    fn returns_fenced_then_unfenced() {
        let h = Health::new(1);
        assert!(h.mark_down());
        assert!(!h.is_usable());
        h.returned_fenced();
        assert_eq!(h.state(), NodeState::Fenced);
        assert!(h.is_usable());
        h.unfence();
        assert_eq!(h.state(), NodeState::Up);
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(probe_backoff(0), Duration::from_millis(100));
        assert_eq!(probe_backoff(1), Duration::from_millis(200));
        assert_eq!(probe_backoff(20), Duration::from_secs(5));
    }
}
