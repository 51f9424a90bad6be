//! The live settings: the options a running engine applies at once when they change (a proxy
//! config reload), kept in atomics so no request takes a lock to read them.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use super::{Ack, Router, RouterOptions};
use crate::health::HintLimits;

/// The options a running client applies at once when they change (a proxy config reload):
/// read on every use, so no request needs a lock.
pub(crate) struct Live {
    request_timeout_us: AtomicU64,
    connect_timeout_us: AtomicU64,
    failure_limit: AtomicU32,
    ack: AtomicU8,
    hint_keys: AtomicU64,
    hint_bytes: AtomicU64,
    /// `conditional_failover_after` in ms; `u64::MAX` is never.
    failover_after_ms: AtomicU64,
    /// The shortest a transition lasts, in ms ([`Router::set_transition_floor`]).
    transition_floor_ms: AtomicU64,
}

impl Live {
    pub(super) fn new(o: &RouterOptions) -> Live {
        let live = Live {
            request_timeout_us: AtomicU64::new(0),
            connect_timeout_us: AtomicU64::new(0),
            failure_limit: AtomicU32::new(0),
            ack: AtomicU8::new(0),
            hint_keys: AtomicU64::new(0),
            hint_bytes: AtomicU64::new(0),
            failover_after_ms: AtomicU64::new(u64::MAX),
            transition_floor_ms: AtomicU64::new(0),
        };
        live.store(o);
        live
    }

    pub(super) fn store(&self, o: &RouterOptions) {
        let us = |d: Duration| d.as_micros().min(u64::MAX as u128) as u64;
        self.request_timeout_us
            .store(us(o.request_timeout), Ordering::Relaxed);
        self.connect_timeout_us
            .store(us(o.connect_timeout), Ordering::Relaxed);
        self.failure_limit
            .store(o.failure_limit.max(1), Ordering::Relaxed);
        let ack = match o.ack {
            Ack::Primary => 0,
            Ack::Quorum => 1,
            Ack::All => 2,
        };
        self.ack.store(ack, Ordering::Relaxed);
        self.hint_keys
            .store(o.hints.max_keys as u64, Ordering::Relaxed);
        self.hint_bytes
            .store(o.hints.max_bytes as u64, Ordering::Relaxed);
        let after = o
            .conditional_failover_after
            .map_or(u64::MAX, |d| d.as_millis().min(u64::MAX as u128 - 1) as u64);
        self.failover_after_ms.store(after, Ordering::Relaxed);
    }

    /// `conditional_failover_after`: `None` is never.
    pub(super) fn failover_after(&self) -> Option<Duration> {
        match self.failover_after_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The shortest a transition lasts ([`Router::set_transition_floor`]).
    pub(super) fn transition_floor(&self) -> Duration {
        Duration::from_millis(self.transition_floor_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_micros(self.request_timeout_us.load(Ordering::Relaxed))
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_micros(self.connect_timeout_us.load(Ordering::Relaxed))
    }

    pub(super) fn failure_limit(&self) -> u32 {
        self.failure_limit.load(Ordering::Relaxed)
    }

    pub(super) fn ack(&self) -> Ack {
        match self.ack.load(Ordering::Relaxed) {
            0 => Ack::Primary,
            1 => Ack::Quorum,
            _ => Ack::All,
        }
    }

    pub(super) fn hints(&self) -> HintLimits {
        HintLimits {
            max_keys: self.hint_keys.load(Ordering::Relaxed) as usize,
            max_bytes: self.hint_bytes.load(Ordering::Relaxed) as usize,
        }
    }
}

impl Router {
    /// Applies the options that can change while the client runs: request and connect
    /// timeouts, `failure_limit`, `ack`, the hint log bounds (for every node at once) and
    /// `conditional_failover_after`.
    /// The connect timeout reaches connections opened from now on (nodes added later, probes,
    /// key listings); the established connections' reconnect loop keeps the old one. The
    /// other options (`connections_per_node`, `queue_depth`, `rebalance`) need a new client;
    /// the ring's (`replicas`, `vnodes`, `hash`) change through [`Router::set_ring`].
    pub fn reconfigure(&self, opts: &RouterOptions) {
        self.inner.live.store(opts);
        let topo = self.topology();
        for n in topo.all_nodes() {
            n.health.configure(opts.failure_limit, opts.hints);
        }
    }

    /// Keeps every transition that starts from now on for at least `floor`: its past owners
    /// still get writes and are compared on reads, and nothing is cleaned up, until then.
    /// Discovery sets it to twice its interval plus its slowest round
    /// ([`crate::discovery::Discovery::start`]): a router that sees a change sees it at most
    /// an interval and a round after any other router that re-resolves as often, so every
    /// router is on the new ring before this one stops keeping the old one in step (docs/cluster.md, "Several routers"). 0 (the default) for a
    /// router told its membership directly.
    pub fn set_transition_floor(&self, floor: Duration) {
        let ms = floor.as_millis().min(u64::MAX as u128) as u64;
        self.inner
            .live
            .transition_floor_ms
            .store(ms, Ordering::Relaxed);
    }

    /// The write acknowledgement policy in force now.
    pub fn ack_policy(&self) -> Ack {
        self.inner.live.ack()
    }

    /// The options in force now (`reconfigure` included).
    pub fn options(&self) -> RouterOptions {
        let live = &self.inner.live;
        RouterOptions {
            request_timeout: live.request_timeout(),
            connect_timeout: live.connect_timeout(),
            failure_limit: live.failure_limit(),
            ack: live.ack(),
            hints: live.hints(),
            conditional_failover_after: live.failover_after(),
            ..self.inner.opts.clone()
        }
    }
}
