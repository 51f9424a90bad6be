//! How often a failed TLS handshake to a node is logged: the first failure of a node at warn,
//! then at most once a minute while it keeps failing (with the count of failures not logged in
//! between), and once at info when a handshake to it succeeds again. Every failure is counted
//! in `ringcache_client_tls_handshake_failures_total`. A node with a bad certificate is retried
//! on every reconnect (backoff at most 5 s), and a warn line each time would flood the log
//! (docs/operations.md, "TLS").

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::metric_names as names;

/// At most one warn line per node in this time while its handshakes keep failing.
pub const WARN_EVERY: Duration = Duration::from_secs(60);

/// Nodes whose failures are remembered at once. Past it, entries whose minute is over are
/// forgotten (which changes nothing but the count the next warn line carries); a fleet of
/// more failing nodes than this gets a warn line for each new one.
const MAX_NODES: usize = 4096;

/// A node whose handshakes are failing.
#[derive(Debug, Clone, Copy)]
struct Failing {
    /// When its last warn line was written.
    warned: Instant,
    /// Failures since then that were logged at debug level only.
    quiet: u64,
    /// Failures since the first one.
    total: u64,
}

/// What to log for one handshake's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A warn line; `quiet` failures were not logged since the last one.
    Warn { quiet: u64 },
    /// Debug level only: a warn line was written less than [`WARN_EVERY`] ago.
    Quiet,
    /// An info line: the node had failed `failures` times since the last success.
    Recovered { failures: u64 },
    /// Nothing: the node was not failing.
    Nothing,
}

/// The per-node failure memory of one [`crate::transport::Connector`] (shared by its clones).
#[derive(Debug, Default)]
pub struct HandshakeLog {
    failing: Mutex<HashMap<String, Failing>>,
}

impl HandshakeLog {
    /// A handshake to `node` failed at `now`: what to log.
    pub fn failed(&self, node: &str, now: Instant) -> Verdict {
        metrics::counter!(names::CLIENT_TLS_HANDSHAKE_FAILURES_TOTAL).increment(1);
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = failing.get_mut(node) {
            f.total += 1;
            if now.saturating_duration_since(f.warned) < WARN_EVERY {
                f.quiet += 1;
                return Verdict::Quiet;
            }
            let quiet = f.quiet;
            f.warned = now;
            f.quiet = 0;
            return Verdict::Warn { quiet };
        }
        if failing.len() >= MAX_NODES {
            failing.retain(|_, f| now.saturating_duration_since(f.warned) < WARN_EVERY);
        }
        if failing.len() < MAX_NODES {
            let first = Failing {
                warned: now,
                quiet: 0,
                total: 1,
            };
            failing.insert(node.to_string(), first);
        }
        Verdict::Warn { quiet: 0 }
    }

    /// A handshake to `node` succeeded: an info line if it had been failing.
    pub fn succeeded(&self, node: &str) -> Verdict {
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        match failing.remove(node) {
            Some(f) => Verdict::Recovered { failures: f.total },
            None => Verdict::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_first_then_once_a_minute_then_says_recovered() {
        let log = HandshakeLog::default();
        let t0 = Instant::now();
        assert_eq!(log.failed("a:1", t0), Verdict::Warn { quiet: 0 });
        for s in 1..60 {
            let at = t0 + Duration::from_secs(s);
            assert_eq!(log.failed("a:1", at), Verdict::Quiet, "{s} s");
        }
        // Another node is counted on its own.
        assert_eq!(log.failed("b:1", t0), Verdict::Warn { quiet: 0 });
        let minute = t0 + WARN_EVERY;
        assert_eq!(log.failed("a:1", minute), Verdict::Warn { quiet: 59 });
        assert_eq!(log.failed("a:1", minute), Verdict::Quiet);
        assert_eq!(log.succeeded("a:1"), Verdict::Recovered { failures: 62 });
        assert_eq!(log.succeeded("a:1"), Verdict::Nothing);
        // Failing again after a success is a first failure again.
        assert_eq!(log.failed("a:1", minute), Verdict::Warn { quiet: 0 });
    }
}
