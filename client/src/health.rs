//! Per-node health: consecutive failures mark a node down; a node back from a pause is repaired
//! from the writes it missed (hinted handoff), a node back from a restart is flushed and fenced.
//!
//! K consecutive failures (errors or timeouts) mark a node down; the ring is not changed, its
//! keys are served by their next replica. While it is down, every write it misses leaves a
//! *hint*: the key only, in a log bounded in keys and bytes. A background probe sends `version`
//! under exponential backoff and, once the node answers, `stats`: memcached (and ringcache)
//! report `pid`, `uptime` and `time`, so `time - uptime` is the process's start time.
//!
//! - Same process as before (it only paused or was unreachable): the node goes to
//!   [`NodeState::Repairing`] — it serves again, except that reads and conditional writes of
//!   the keys it has hints for go to other owners ([`Health::may_serve`], [`Health::in_sync`])
//!   — and the hinted keys are replayed from an owner in sync; then it is `Up`. Nothing is flushed,
//!   so two routers that both saw the pause cannot wipe each other's repairs.
//! - A restarted process, one never seen before, or a hint log that overflowed: the node is
//!   flushed (nothing it holds can be trusted) and [`NodeState::Fenced`] until re-warmed.
//!
//! A restart between two requests fails nothing, so every new connection checks who answers
//! too, before it carries a request ([`Health::connected_as`]): another process takes the node
//! down, and the probe above flushes and fences it.
//!
//! A replica that misses a copy while serving (a failed copy after a conditional write) gets
//! a hint too, so the miss is never silent: that key is not read from it until replayed.
//!
//! This file is the states and their rules; what moves a node between them from the engine's
//! side (marking it down, the probe, the replay and the re-warm it starts) is
//! `router/lifecycle.rs`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The states a node can be in, as the router sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// Serving normally.
    Up,
    /// Back after a restart, flushed, warming: misses fall through to the next replica.
    Fenced,
    /// Missed writes that are being replayed: it takes writes and serves, except the keys it
    /// missed, whose reads and conditional writes go to another owner until replayed.
    Repairing,
    /// Failing: skipped by reads and writes until a probe succeeds.
    Down,
}

/// Bounds of one node's hint log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HintLimits {
    /// Distinct keys remembered.
    pub max_keys: usize,
    /// Bytes of keys remembered.
    pub max_bytes: usize,
}

impl Default for HintLimits {
    fn default() -> Self {
        HintLimits {
            max_keys: 100_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The keys a node missed. Past its bounds it forgets them all and remembers only that it
/// overflowed: the node then needs a full flush and re-warm.
#[derive(Debug, Default)]
struct HintLog {
    keys: HashSet<Bytes>,
    /// Keys taken for replay and not done yet (still not to be read from the node).
    inflight: HashSet<Bytes>,
    bytes: usize,
    overflowed: bool,
}

/// What adding a hint asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hinted {
    /// Recorded (or already there); the node's probe or replay will see it.
    Recorded,
    /// Recorded on a node that was serving: it is now `Repairing` and needs a replay started.
    StartRepair,
    /// The log overflowed: the node must be flushed and re-warmed (it has been marked down).
    Overflowed,
}

/// Who a process is: its pid and start time (Unix seconds), from `stats`, and the instance id
/// a ringcache node reports (`instance_id`, random at every start; memcached has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub pid: u64,
    pub started: u64,
    pub instance: Option<u64>,
}

/// How far apart two start times (`time - uptime`, whole seconds) of one process may be:
/// `time` and `uptime` are each rounded down, and read at slightly different moments on some
/// servers.
pub const START_TOLERANCE_SECS: u64 = 1;

impl Identity {
    /// Reads `pid`, `uptime`, `time` and `instance_id` from a `stats` listing; `None` without
    /// the first three.
    pub fn from_stats<'a>(
        stats: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Option<Identity> {
        let (mut pid, mut uptime, mut time, mut instance) = (None, None, None, None);
        for (k, v) in stats {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.parse::<u64>().ok());
            match k {
                b"pid" => pid = n,
                b"uptime" => uptime = n,
                b"time" => time = n,
                b"instance_id" => instance = n,
                _ => {}
            }
        }
        Some(Identity {
            pid: pid?,
            started: time?.checked_sub(uptime?)?,
            instance,
        })
    }

    /// Whether `other` is the same process. Two instance ids decide alone: they tell apart
    /// two processes that share a pid (a container's first process is always pid 1) and
    /// started within a second of each other, as a container restarted at once does, which
    /// pid and start time cannot. Otherwise (memcached) the pid and the start time must agree,
    /// the start time within [`START_TOLERANCE_SECS`].
    pub fn same_process(&self, other: &Identity) -> bool {
        if let (Some(a), Some(b)) = (self.instance, other.instance) {
            return a == b;
        }
        self.pid == other.pid && self.started.abs_diff(other.started) <= START_TOLERANCE_SECS
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} started at {}", self.pid, self.started)?;
        if let Some(i) = self.instance {
            write!(f, " instance {i}")?;
        }
        Ok(())
    }
}

/// What a new connection's identity check found (see [`Health::connected_as`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The first process seen there: remembered.
    First,
    /// The process seen before.
    Same,
    /// Another process than the one seen before (given): the node restarted.
    Restarted(Identity),
    /// The node is down: its probe compares identities when it answers, nothing is decided
    /// (nor remembered) here.
    Down,
}

/// Whether a `stats` listing says the node is draining (`draining 1`, a ringcache extension,
/// docs/protocol.md): told to leave, it serves on while the routers move its keys off it.
/// memcached never sends the field, so its nodes never drain.
pub fn draining_in_stats<'a>(stats: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> bool {
    stats
        .into_iter()
        .any(|(k, v)| k == b"draining" && v == b"1")
}

/// Health of one node. The request path only touches atomics; the hint log's lock is taken
/// when a write misses the node.
#[derive(Debug)]
pub struct Health {
    failure_limit: AtomicU32,
    consecutive_failures: AtomicU32,
    down: AtomicBool,
    fenced: AtomicBool,
    repairing: AtomicBool,
    /// A probe task is running for the node.
    pub(crate) probing: AtomicBool,
    /// A replay task is running for the node.
    pub(crate) replaying: AtomicBool,
    /// Times the node was marked down (for metrics).
    downs: AtomicU64,
    hints: Mutex<HintLog>,
    /// Keys in the log plus keys being replayed: 0 lets reads skip the lock.
    pending: AtomicUsize,
    max_keys: AtomicU64,
    max_bytes: AtomicU64,
    /// Identity last seen; `None` when never seen. Read and written once per connect and
    /// per probe, never per request.
    identity: Mutex<Option<Identity>>,
    /// Set while the node is *suspect* ([`Health::suspect`]); `suspect_until` is when that
    /// ends, in ms after [`epoch`]. The flag keeps the check off the request path otherwise.
    suspect: AtomicBool,
    suspect_until: AtomicU64,
    /// When the node was last marked down, in ms after [`epoch`] (read by the conditional
    /// failover, `router/primary.rs`).
    down_since: AtomicU64,
    /// When it last came back, and how long that outage lasted (ms): a primary back from an
    /// outage its conditional writes failed over for takes them back only after a window.
    back_at: AtomicU64,
    last_outage: AtomicU64,
}

/// How long a node that came back from being down serves no read and runs no conditional
/// write without a version check ([`Health::suspect`]): the probe backoff's cap (5 s) plus
/// time for the other routers' replays, so that every router that also saw it down has
/// found it back and replayed what it hinted for it. A router's hints are its own: without
/// this, a router that found the node back first read from it keys that another router
/// wrote while the node was away and had not replayed yet (`ringcache-bench netns-counters`:
/// 12 stale reads through three proxies right after a pause).
pub const SUSPECT_FOR: Duration = Duration::from_secs(8);

/// The process's reference instant for [`Health`]'s deadlines.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// [`now_ms`] starts this far above 0, so an instant before this process started (a node's
/// own start, [`Health::back_since_start`]) still has a place on the scale.
const BEFORE_EPOCH_MS: u64 = 24 * 3600 * 1000;

fn now_ms() -> u64 {
    BEFORE_EPOCH_MS + epoch().elapsed().as_millis() as u64
}

impl Health {
    /// A healthy node that goes down after `failure_limit` consecutive failures.
    pub fn new(failure_limit: u32) -> Health {
        Health::with_limits(failure_limit, HintLimits::default())
    }

    /// [`Health::new`] with the hint log's bounds.
    pub fn with_limits(failure_limit: u32, limits: HintLimits) -> Health {
        Health {
            failure_limit: AtomicU32::new(failure_limit.max(1)),
            consecutive_failures: AtomicU32::new(0),
            down: AtomicBool::new(false),
            fenced: AtomicBool::new(false),
            repairing: AtomicBool::new(false),
            probing: AtomicBool::new(false),
            replaying: AtomicBool::new(false),
            downs: AtomicU64::new(0),
            hints: Mutex::new(HintLog::default()),
            pending: AtomicUsize::new(0),
            max_keys: AtomicU64::new(limits.max_keys as u64),
            max_bytes: AtomicU64::new(limits.max_bytes as u64),
            identity: Mutex::new(None),
            suspect: AtomicBool::new(false),
            suspect_until: AtomicU64::new(0),
            down_since: AtomicU64::new(0),
            back_at: AtomicU64::new(0),
            last_outage: AtomicU64::new(0),
        }
    }

    /// Whether the node came back from being down less than [`SUSPECT_FOR`] ago. Other
    /// routers may have written keys it missed that this router holds no hint for, and
    /// their replays may not have run yet: it serves no read ([`Health::may_serve`]), and a
    /// conditional write runs there only after a version check of the key against an owner
    /// in sync (`router/primary.rs`).
    pub fn suspect(&self) -> bool {
        if !self.suspect.load(Ordering::Relaxed) {
            return false;
        }
        if now_ms() < self.suspect_until.load(Ordering::Relaxed) {
            return true;
        }
        self.suspect.store(false, Ordering::Relaxed);
        false
    }

    /// How long the node has been down for this router; `None` while it is not down.
    pub fn down_for(&self) -> Option<Duration> {
        if !self.down.load(Ordering::SeqCst) {
            return None;
        }
        let since = self.down_since.load(Ordering::Relaxed);
        Some(Duration::from_millis(now_ms().saturating_sub(since)))
    }

    /// How long ago the node came back from its last outage, if that outage lasted at least
    /// `outage` (a primary whose conditional writes failed over, `router/primary.rs`);
    /// `None` while it is down, or if it never was down that long.
    pub fn back_from_outage(&self, outage: Duration) -> Option<Duration> {
        if self.down.load(Ordering::SeqCst) || self.back_at.load(Ordering::Relaxed) == 0 {
            return None;
        }
        if self.last_outage.load(Ordering::Relaxed) < outage.as_millis() as u64 {
            return None;
        }
        let at = self.back_at.load(Ordering::Relaxed);
        Some(Duration::from_millis(now_ms().saturating_sub(at)))
    }

    /// Dates the node's last return at its own start (`started`, Unix seconds: `time -
    /// uptime` from its `stats`, [`Identity::started`]) instead of the moment this router's
    /// probe found it, when it came back as a new process. Every router reads the same start
    /// time, so every router takes back a restarted primary's conditional writes at one moment,
    /// start + [`SUSPECT_FOR`] (`router/primary.rs`): before, each did so `SUSPECT_FOR` after
    /// its own probe, and probes are up to the backoff cap (5 s) apart, so for up to 5 s one
    /// router ran a key's increments on the primary while another ran them on the replica
    /// (issue 28). Never later than now; a start time ahead of this host's clock keeps now.
    pub fn back_since_start(&self, started: u64) {
        if self.down.load(Ordering::SeqCst) || self.back_at.load(Ordering::Relaxed) == 0 {
            return;
        }
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let ago = unix_ms.saturating_sub(started.saturating_mul(1000));
        let at = now_ms().saturating_sub(ago).max(1);
        self.back_at.fetch_min(at, Ordering::Relaxed);
    }

    fn went_down(&self) {
        self.downs.fetch_add(1, Ordering::Relaxed);
        self.down_since.store(now_ms(), Ordering::Relaxed);
    }

    fn came_back(&self) {
        // At least 1: 0 means "never came back".
        let now = now_ms().max(1);
        // Never marked down (0): no outage to time.
        let since = self.down_since.load(Ordering::Relaxed);
        let outage = if since == 0 {
            0
        } else {
            now.saturating_sub(since)
        };
        self.last_outage.store(outage, Ordering::Relaxed);
        self.back_at.store(now, Ordering::Relaxed);
    }

    fn became_suspect(&self) {
        self.suspect_until
            .store(now_ms() + SUSPECT_FOR.as_millis() as u64, Ordering::Relaxed);
        self.suspect.store(true, Ordering::Relaxed);
    }

    /// Applies new settings (a config reload).
    pub fn configure(&self, failure_limit: u32, limits: HintLimits) {
        self.failure_limit
            .store(failure_limit.max(1), Ordering::Relaxed);
        self.max_keys
            .store(limits.max_keys as u64, Ordering::Relaxed);
        self.max_bytes
            .store(limits.max_bytes as u64, Ordering::Relaxed);
    }

    /// The node's current state.
    pub fn state(&self) -> NodeState {
        if self.down.load(Ordering::SeqCst) {
            NodeState::Down
        } else if self.fenced.load(Ordering::SeqCst) {
            NodeState::Fenced
        } else if self.repairing.load(Ordering::SeqCst) {
            NodeState::Repairing
        } else {
            NodeState::Up
        }
    }

    /// Whether writes may be sent to the node.
    pub fn is_usable(&self) -> bool {
        !self.down.load(Ordering::SeqCst)
    }

    /// Whether a read of `key` may be answered by the node: it is not down and did not miss
    /// a write of `key` that is still to be replayed (its copy may be old). A fenced node
    /// serves (its misses are not trusted, see `router/mod.rs`).
    pub fn may_serve(&self, key: &[u8]) -> bool {
        !self.suspect() && self.may_serve_if_suspect(key)
    }

    /// [`Health::may_serve`] for a key none of whose owners may serve it: a suspect node
    /// ([`Health::suspect`]) is only suspected of lagging behind another router's writes,
    /// so when every owner is suspect (two returned within the window) reading one beats
    /// failing the read (`router/read.rs`, `may_read`).
    pub fn may_serve_if_suspect(&self, key: &[u8]) -> bool {
        if self.down.load(Ordering::SeqCst) {
            return false;
        }
        if self.pending.load(Ordering::SeqCst) == 0 {
            return true;
        }
        let log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        !log.overflowed && !log.keys.contains(key) && !log.inflight.contains(key)
    }

    /// Whether the node holds `key`'s current state, so a conditional write of it may run
    /// there and a copy may be taken from it: [`Health::may_serve`] and not fenced (a fenced
    /// node's miss means nothing).
    pub fn in_sync(&self, key: &[u8]) -> bool {
        !self.fenced.load(Ordering::SeqCst) && self.may_serve(key)
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
        if n >= self.failure_limit.load(Ordering::Relaxed)
            && !self.down.swap(true, Ordering::SeqCst)
        {
            self.went_down();
            return true;
        }
        false
    }

    /// Marks the node down at once (connection refused, garbage from the server).
    pub fn mark_down(&self) -> bool {
        self.consecutive_failures.store(
            self.failure_limit.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        if !self.down.swap(true, Ordering::SeqCst) {
            self.went_down();
            return true;
        }
        false
    }

    /// Records that the node missed a write of `key`; a node that was serving stops serving
    /// reads until the key is replayed.
    pub fn hint(&self, key: &Bytes) -> Hinted {
        self.hint_key(key, true)
    }

    /// Records `key` for replay without taking the node out of reads: its copy may lag
    /// behind (two routers' copies crossed) but a newer one is on its way or being replayed.
    pub fn hint_lagging(&self, key: &Bytes) -> Hinted {
        self.hint_key(key, false)
    }

    fn hint_key(&self, key: &Bytes, fence: bool) -> Hinted {
        let mut log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        if log.overflowed {
            return Hinted::Recorded;
        }
        if !log.keys.contains(key) {
            let full = log.keys.len() as u64 >= self.max_keys.load(Ordering::Relaxed)
                || (log.bytes + key.len()) as u64 > self.max_bytes.load(Ordering::Relaxed);
            if full {
                log.keys = HashSet::new();
                log.bytes = 0;
                log.overflowed = true;
                self.pending.store(log.inflight.len(), Ordering::SeqCst);
                drop(log);
                self.mark_down();
                return Hinted::Overflowed;
            }
            log.bytes += key.len();
            log.keys.insert(key.clone());
            self.pending
                .store(log.keys.len() + log.inflight.len(), Ordering::SeqCst);
        }
        // Decided under the lock, so a replay that empties the log and lifts `repairing`
        // cannot miss this key.
        if self.down.load(Ordering::SeqCst) {
            return Hinted::Recorded;
        }
        if !fence {
            return Hinted::StartRepair;
        }
        if !self.repairing.swap(true, Ordering::SeqCst) {
            return Hinted::StartRepair;
        }
        Hinted::Recorded
    }

    /// The node missed something no key can stand for (a `flush_all`): it needs a full flush
    /// and re-warm when it answers, as after an overflow.
    pub fn force_flush(&self) {
        let mut log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        *log = HintLog {
            overflowed: true,
            ..HintLog::default()
        };
        self.pending.store(0, Ordering::SeqCst);
    }

    /// Keys waiting for replay.
    pub fn hint_count(&self) -> usize {
        self.hints.lock().map_or(0, |l| l.keys.len())
    }

    /// Whether the hint log overflowed since the node was last flushed.
    pub fn hints_overflowed(&self) -> bool {
        self.hints.lock().map_or(true, |l| l.overflowed)
    }

    /// Takes up to `n` hints for replay; they stay unreadable on the node until
    /// [`Health::replayed`].
    pub(crate) fn take_hints(&self, n: usize) -> Vec<Bytes> {
        let mut log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        let out: Vec<Bytes> = log.keys.iter().take(n).cloned().collect();
        for k in &out {
            log.keys.remove(k);
            log.bytes -= k.len();
            log.inflight.insert(k.clone());
        }
        out
    }

    /// Takes the hint of `key` alone for a replay the caller runs now (a conditional write
    /// about to run on this node, `router/primary.rs`): false if the node has no hint for it,
    /// or its replay is already running. Ends with [`Health::replayed`], as for
    /// [`Health::take_hints`].
    pub(crate) fn take_hint(&self, key: &Bytes) -> bool {
        let mut log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        if log.overflowed || !log.keys.remove(key) {
            return false;
        }
        log.bytes -= key.len();
        log.inflight.insert(key.clone());
        true
    }

    /// A replay of `key` is over: done, or (`ok` false) back into the log for another try.
    pub(crate) fn replayed(&self, key: &Bytes, ok: bool) {
        let mut log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        log.inflight.remove(key);
        if !ok && !log.overflowed && log.keys.insert(key.clone()) {
            log.bytes += key.len();
        }
        self.pending
            .store(log.keys.len() + log.inflight.len(), Ordering::SeqCst);
    }

    /// Ends a replay: `Up` if no hint came in meanwhile (true), else stays `Repairing`.
    pub(crate) fn finish_repair(&self) -> bool {
        let log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        if log.keys.is_empty()
            && log.inflight.is_empty()
            && !log.overflowed
            && !self.down.load(Ordering::SeqCst)
        {
            self.repairing.store(false, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// The identity the node had when last seen, if it was.
    pub fn identity(&self) -> Option<Identity> {
        *self.identity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers the node's identity.
    pub fn set_identity(&self, id: Identity) {
        *self.identity.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    /// A new connection to the node found process `id` there, before taking any request:
    /// compares it with the process seen before, in one step, so of several connections that
    /// reopen at once exactly one reports a restart (or a first sighting). A down node is
    /// left to its probe, which tells a pause from a restart and a node never seen from one
    /// seen (a node that was down when first added is flushed on return, so its identity is
    /// not learned here).
    pub fn connected_as(&self, id: Identity) -> Seen {
        let mut known = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        if self.down.load(Ordering::SeqCst) {
            return Seen::Down;
        }
        match *known {
            None => {
                *known = Some(id);
                Seen::First
            }
            Some(k) if k.same_process(&id) => Seen::Same,
            Some(k) => Seen::Restarted(k),
        }
    }

    /// A probe found the same process answering: usable for writes again, repairing until
    /// its hints are replayed.
    pub fn returned_repairing(&self) {
        self.came_back();
        self.became_suspect();
        self.repairing.store(true, Ordering::SeqCst);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.down.store(false, Ordering::SeqCst);
    }

    /// A probe found the node answering and it has been flushed: usable again, but fenced.
    /// Its hints are moot (it holds nothing from before).
    pub fn returned_fenced(&self) {
        {
            let mut log = self.hints.lock().unwrap_or_else(|e| e.into_inner());
            *log = HintLog::default();
            self.pending.store(0, Ordering::SeqCst);
        }
        self.came_back();
        self.became_suspect();
        self.fenced.store(true, Ordering::SeqCst);
        self.repairing.store(false, Ordering::SeqCst);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.down.store(false, Ordering::SeqCst);
    }

    /// The node has been re-warmed: lift the fence.
    pub fn unfence(&self) {
        self.fenced.store(false, Ordering::SeqCst);
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
    fn failure_limit_applies_live() {
        let h = Health::new(3);
        h.configure(1, HintLimits::default());
        assert!(h.failure(), "one failure is enough after the change");
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
    fn a_restarted_node_is_back_since_its_own_start() {
        let h = Health::new(1);
        h.back_since_start(1);
        assert_eq!(
            h.back_from_outage(Duration::ZERO),
            None,
            "never down: untouched"
        );
        h.mark_down();
        std::thread::sleep(Duration::from_millis(30));
        h.returned_fenced();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        // Started 5 s ago by its own clock: back 5 s (±1 s of `time - uptime`'s rounding),
        // not the moment this router's probe found it. Every router reads that start.
        h.back_since_start(unix - 5);
        let back = h.back_from_outage(Duration::from_millis(30)).expect("back");
        assert!(
            back >= Duration::from_secs(4) && back <= Duration::from_secs(7),
            "{back:?}"
        );
        // A start ahead of this host's clock never moves it later than it was.
        h.back_since_start(unix + 60);
        let again = h.back_from_outage(Duration::from_millis(30)).expect("back");
        assert!(again >= back, "{again:?} < {back:?}");
    }

    #[test]
    fn an_outage_is_timed_for_the_conditional_failover() {
        let h = Health::new(1);
        assert_eq!(h.down_for(), None, "up");
        assert_eq!(h.back_from_outage(Duration::ZERO), None, "never down");
        h.mark_down();
        std::thread::sleep(Duration::from_millis(30));
        let d = h.down_for().expect("down");
        assert!(d >= Duration::from_millis(30), "{d:?}");
        assert_eq!(h.back_from_outage(Duration::ZERO), None, "still down");
        h.returned_fenced();
        assert_eq!(h.down_for(), None);
        let back = h
            .back_from_outage(Duration::from_millis(30))
            .expect("an outage that long");
        assert!(back < Duration::from_secs(10), "{back:?}");
        assert_eq!(
            h.back_from_outage(Duration::from_secs(10)),
            None,
            "shorter than that window"
        );
        // A later, short outage replaces it.
        h.mark_down();
        h.returned_repairing();
        assert_eq!(h.back_from_outage(Duration::from_millis(30)), None);
    }

    #[test]
    fn one_hint_taken_for_a_conditional_write() {
        let h = Health::new(1);
        h.mark_down();
        h.hint(&Bytes::from_static(b"a"));
        h.returned_repairing();
        h.suspect_until.store(0, Ordering::Relaxed);
        assert!(!h.take_hint(&Bytes::from_static(b"z")), "no hint for z");
        assert!(h.take_hint(&Bytes::from_static(b"a")));
        assert!(!h.take_hint(&Bytes::from_static(b"a")), "taken once");
        assert!(!h.may_serve(b"a"), "not read while its replay runs");
        h.replayed(&Bytes::from_static(b"a"), true);
        assert!(h.may_serve(b"a") && h.in_sync(b"a"));
        assert!(h.finish_repair());
    }

    #[test]
    fn hints_while_down_then_repair() {
        let h = Health::new(1);
        h.mark_down();
        assert_eq!(h.hint(&Bytes::from_static(b"a")), Hinted::Recorded);
        assert_eq!(h.hint(&Bytes::from_static(b"a")), Hinted::Recorded);
        assert_eq!(h.hint_count(), 1);
        h.returned_repairing();
        assert_eq!(h.state(), NodeState::Repairing);
        assert!(h.is_usable());
        // Back from being down: suspect, so no key is read from it for SUSPECT_FOR unless no
        // owner may serve it (`may_serve_if_suspect`), which keeps the hints' rule.
        assert!(h.suspect());
        assert!(!h.may_serve(b"z"), "a suspect node serves no read");
        h.suspect_until.store(0, Ordering::Relaxed);
        assert!(!h.suspect(), "the window ends");
        assert!(
            !h.may_serve(b"a") && !h.in_sync(b"a"),
            "a missed key is not read"
        );
        assert!(h.may_serve(b"z") && h.in_sync(b"z"), "other keys are");
        let a = h.take_hints(10);
        assert_eq!(a, vec![Bytes::from_static(b"a")]);
        assert!(!h.may_serve(b"a"), "not while it is being replayed either");
        // A hint arriving mid-replay keeps it repairing.
        assert_eq!(h.hint(&Bytes::from_static(b"b")), Hinted::Recorded);
        h.replayed(&a[0], true);
        assert!(h.may_serve(b"a"));
        assert!(!h.finish_repair());
        let b = h.take_hints(10);
        assert!(!h.finish_repair(), "b is still in flight");
        h.replayed(&b[0], false);
        assert!(!h.may_serve(b"b"), "a failed replay keeps the hint");
        let b = h.take_hints(10);
        h.replayed(&b[0], true);
        assert!(h.finish_repair());
        assert_eq!(h.state(), NodeState::Up);
        // A missed copy on a serving node starts a repair.
        assert_eq!(h.hint(&Bytes::from_static(b"c")), Hinted::StartRepair);
        assert_eq!(h.state(), NodeState::Repairing);
    }

    #[test]
    fn hint_log_is_bounded_in_keys_and_bytes() {
        let h = Health::with_limits(
            1,
            HintLimits {
                max_keys: 2,
                max_bytes: 1000,
            },
        );
        h.mark_down();
        h.hint(&Bytes::from_static(b"a"));
        h.hint(&Bytes::from_static(b"b"));
        assert_eq!(h.hint(&Bytes::from_static(b"c")), Hinted::Overflowed);
        assert!(h.hints_overflowed());
        assert_eq!(h.hint_count(), 0, "memory given back");
        let h = Health::with_limits(
            1,
            HintLimits {
                max_keys: 100,
                max_bytes: 5,
            },
        );
        h.mark_down();
        h.hint(&Bytes::from_static(b"abc"));
        assert_eq!(h.hint(&Bytes::from_static(b"def")), Hinted::Overflowed);
        h.returned_fenced();
        assert!(!h.hints_overflowed(), "a flush starts a new log");
    }

    #[test]
    fn identity_from_stats() {
        let s: Vec<(&[u8], &[u8])> = vec![
            (b"pid", b"42"),
            (b"uptime", b"100"),
            (b"time", b"1700000100"),
        ];
        let id = Identity::from_stats(s).unwrap();
        let at = |pid, started| Identity {
            pid,
            started,
            instance: None,
        };
        assert_eq!(id, at(42, 1_700_000_000));
        assert!(id.same_process(&at(42, 1_700_000_001)), "rounding");
        assert!(id.same_process(&at(42, 1_699_999_999)), "rounding");
        assert!(!id.same_process(&at(43, 1_700_000_000)));
        assert!(!id.same_process(&at(42, 1_700_000_002)));
        assert!(!id.same_process(&at(42, 1_700_000_100)));
        let partial: Vec<(&[u8], &[u8])> = vec![(b"pid", b"42")];
        assert_eq!(Identity::from_stats(partial), None);
        // A ringcache node's instance id decides alone: pid 1 restarted within the second.
        let node: Vec<(&[u8], &[u8])> = vec![
            (b"pid", b"1"),
            (b"uptime", b"0"),
            (b"time", b"1700000000"),
            (b"instance_id", b"77"),
        ];
        let first = Identity::from_stats(node).unwrap();
        assert_eq!(first.instance, Some(77));
        let again = Identity {
            instance: Some(78),
            ..first
        };
        assert!(
            !first.same_process(&again),
            "same pid and second, new instance"
        );
        assert!(first.same_process(&first));
        assert!(
            first.same_process(&at(1, 1_700_000_000)),
            "without an instance id on one side, pid and start time decide"
        );
    }

    #[test]
    fn a_connection_sees_first_same_restarted_or_leaves_it_to_the_probe() {
        let h = Health::new(1);
        let a = Identity {
            pid: 7,
            started: 1_700_000_000,
            instance: None,
        };
        let b = Identity { pid: 8, ..a };
        assert_eq!(h.connected_as(a), Seen::First);
        assert_eq!(h.identity(), Some(a));
        assert_eq!(h.connected_as(a), Seen::Same);
        assert_eq!(h.connected_as(b), Seen::Restarted(a));
        assert_eq!(h.identity(), Some(a), "the probe compares with the old one");
        h.mark_down();
        assert_eq!(h.connected_as(b), Seen::Down);
        let fresh = Health::new(1);
        fresh.mark_down();
        assert_eq!(fresh.connected_as(a), Seen::Down);
        assert_eq!(
            fresh.identity(),
            None,
            "a node first met down is the probe's to judge"
        );
    }

    #[test]
    fn draining_from_stats() {
        let s: Vec<(&[u8], &[u8])> = vec![(b"pid", b"42"), (b"draining", b"1")];
        assert!(draining_in_stats(s));
        let s: Vec<(&[u8], &[u8])> = vec![(b"draining", b"0")];
        assert!(!draining_in_stats(s));
        let memcached: Vec<(&[u8], &[u8])> = vec![(b"pid", b"42")];
        assert!(!draining_in_stats(memcached));
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(probe_backoff(0), Duration::from_millis(100));
        assert_eq!(probe_backoff(1), Duration::from_millis(200));
        assert_eq!(probe_backoff(20), Duration::from_secs(5));
    }
}
