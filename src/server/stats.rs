//! A server's command-level counters, the node's and the proxy's alike: what `stats` reports
//! under memcached's names and what `/metrics` publishes. A node's item-level figures (items,
//! bytes, evictions) come from its store. Verbs are named by the protocol's one table
//! ([`Verb`]).
//!
//! Counters are relaxed atomics bumped on the request path; a background task copies them into
//! the Prometheus registry once a second, so `stats` and `/metrics` can never disagree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge, histogram, Histogram};
pub use ringcache_client::protocol::verb::{Verb, VERBS};

use super::listener::ConnCounters;
use crate::metrics as m;

/// Kinds of refused requests, for `ringcache_protocol_errors_total{kind}`.
pub const FAULT_KINDS: &[&str] = &[
    "unknown_command",
    "bad_format",
    "bad_data_chunk",
    "too_large",
    "desync",
    "other",
];

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Command-level counters under memcached's `stats` names.
        #[derive(Debug, Default)]
        pub struct Counters { $(pub $name: AtomicU64,)* }

        impl Counters {
            /// `(name, value)` of every counter, in declaration order, for `stats`.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }

            /// Every counter back to 0 (`stats reset`).
            pub fn reset(&self) {
                $(self.$name.store(0, Ordering::Relaxed);)*
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    cmd_meta,
    get_hits,
    get_misses,
    get_expired,
    get_flushed,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
);

/// All server-level statistics of one server (node or proxy).
#[derive(Debug)]
pub struct ServerStats {
    pub counters: Counters,
    /// Shared with the accept loop.
    pub conns: Arc<ConnCounters>,
    /// `node` or `proxy`: the `role` label on every published metric, so a node and a proxy in
    /// one process (`ringcache local`) keep separate series.
    role: &'static str,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    by_verb: Vec<AtomicU64>,
    faults: Vec<AtomicU64>,
    /// Registered only when this server exports metrics, so several servers in one process
    /// (`ringcache local`, tests) don't mix their series.
    durations: Option<Vec<Histogram>>,
}

impl Default for ServerStats {
    fn default() -> Self {
        ServerStats::new("node", false)
    }
}

impl ServerStats {
    /// Fresh counters; histogram handles are registered once here, off the request path.
    pub fn new(role: &'static str, export: bool) -> ServerStats {
        ServerStats {
            role,
            counters: Counters::default(),
            conns: Arc::new(ConnCounters::default()),
            bytes_read: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            by_verb: VERBS.iter().map(|_| AtomicU64::new(0)).collect(),
            faults: FAULT_KINDS.iter().map(|_| AtomicU64::new(0)).collect(),
            durations: export.then(|| {
                VERBS
                    .iter()
                    .map(|v| histogram!(m::REQUEST_DURATION_SECONDS, "role" => role, "cmd" => *v))
                    .collect()
            }),
        }
    }

    /// Counts one command.
    #[inline]
    pub fn command(&self, verb: Verb) {
        self.by_verb[verb as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refused request by kind label.
    pub fn protocol_error(&self, kind: &str) {
        let i = FAULT_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(FAULT_KINDS.len() - 1);
        self.faults[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long a batch of pipelined requests took, labelled by its first verb.
    #[inline]
    pub fn record_batch(&self, verb: Verb, took: Duration) {
        if let Some(d) = &self.durations {
            d[verb as usize].record(took.as_secs_f64());
        }
    }

    /// Commands processed for `verb` so far.
    pub fn commands(&self, verb: Verb) -> u64 {
        self.by_verb[verb as usize].load(Ordering::Relaxed)
    }

    /// Whether this server exports metrics.
    pub fn exporting(&self) -> bool {
        self.durations.is_some()
    }

    /// Copies the counters into the metrics registry (called once a second).
    pub fn publish(&self) {
        let c = &self.counters;
        for (verb, n) in VERBS.iter().zip(&self.by_verb) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                counter!(m::COMMANDS_TOTAL, "role" => self.role, "cmd" => *verb).absolute(n);
            }
        }
        for (kind, n) in FAULT_KINDS.iter().zip(&self.faults) {
            counter!(m::PROTOCOL_ERRORS_TOTAL, "role" => self.role, "kind" => *kind)
                .absolute(n.load(Ordering::Relaxed));
        }
        for (result, v) in [
            ("hit", &c.get_hits),
            ("miss", &c.get_misses),
            ("expired", &c.get_expired),
            ("flushed", &c.get_flushed),
        ] {
            counter!(m::GETS_TOTAL, "role" => self.role, "result" => result)
                .absolute(v.load(Ordering::Relaxed));
        }
        let conns = &self.conns;
        gauge!(m::CONNECTIONS, "role" => self.role)
            .set(conns.curr_connections.load(Ordering::Relaxed) as f64);
        counter!(m::CONNECTIONS_TOTAL, "role" => self.role)
            .absolute(conns.total_connections.load(Ordering::Relaxed));
        counter!(m::CONNECTIONS_REJECTED_TOTAL, "role" => self.role)
            .absolute(conns.rejected_connections.load(Ordering::Relaxed));
        counter!(m::READ_BYTES_TOTAL, "role" => self.role)
            .absolute(self.bytes_read.load(Ordering::Relaxed));
        counter!(m::WRITTEN_BYTES_TOTAL, "role" => self.role)
            .absolute(self.bytes_written.load(Ordering::Relaxed));
    }
}

/// `stats reset`, as memcached 1.6 does it (`stats_reset`, `threadlocal_stats_reset`): the
/// command counters, `total_connections`, `rejected_connections`, `bytes_read` and
/// `bytes_written` start again from 0; `curr_connections` (a gauge) does not. The per-verb
/// and per-fault counts, which `stats` does not show, keep counting, so `/metrics`'
/// `ringcache_commands_total` never goes back; the counters `stats` shows do, in both.
impl ServerStats {
    pub fn reset(&self) {
        self.counters.reset();
        self.conns.total_connections.store(0, Ordering::Relaxed);
        self.conns.rejected_connections.store(0, Ordering::Relaxed);
        self.bytes_read.store(0, Ordering::Relaxed);
        self.bytes_written.store(0, Ordering::Relaxed);
    }
}

/// Bumps a named counter of [`Counters`]: `bump!(stats, get_hits)`.
#[macro_export]
macro_rules! bump {
    ($stats:expr, $field:ident) => {
        $stats
            .counters
            .$field
            .fetch_add(1, ::std::sync::atomic::Ordering::Relaxed)
    };
}
