//! The background migrator of a membership transition (docs/cluster.md): it moves every key whose
//! owners changed to its new owners, removes it from nodes that no longer own it, and then
//! ends the transition.
//!
//! For each node of the past rings in turn it lists the keys the node holds with
//! `lru_crawler metadump all` (which stock memcached 1.6 has too), keeps those whose owner set
//! differs between a past ring and the current one, and copies each from that node to the
//! current owners that lack it (add semantics, same value, flags, remaining TTL and CAS,
//! checked against a racing delete — see `transition.rs`). Every node of every past ring is
//! listed, so a key whose old owner dies mid-transition is still moved from its surviving
//! replica. A listing goes over the router's transport (`transport.rs`: TLS and authentication,
//! as every other connection to a node) and is read with the protocol's bounded
//! `ListingCodec`. A node whose listing fails is tried again with a growing pause; while one
//! has not been listed the transition is not complete: the old ring stays for reads, nothing
//! is cleaned up, and the migrator lists that node again later. Then the transition ends (the
//! old ring is dropped) and a cleanup pass removes the moved keys from members that no longer
//! own them. Nodes that have left the membership are only read (drained), never emptied.
//!
//! Keys move at a bounded rate (`rate` keys a second, `concurrency` at a time) so client
//! requests on the same connections keep their latency. A newer membership change supersedes
//! the transition: this migrator stops and the new one, whose past rings include this one's,
//! starts over from the current state.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::join_all;
use futures_util::StreamExt;
use metrics::{counter, gauge, Counter, Gauge};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::FramedRead;

use super::transition::Moved;
use super::Router;
use crate::health::NodeState;
use crate::metric_names as names;
use crate::protocol::metadump::{self, Listed, ListingCodec};
use crate::protocol::{MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response};
use crate::ring::NodeSpec;
use crate::topology::{NodeEntry, Topology};
use crate::transport::Connector;
use crate::Error;

/// How membership transitions move data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebalanceOptions {
    /// Keep the old ring through a transition (read-through, deletes to old owners, migrator).
    /// Off: a membership change simply reroutes keys, as twemproxy does.
    pub enabled: bool,
    /// Run the migrator in this process. In a fleet of embedded clients one process migrates
    /// and the others only read through until `hold` has passed.
    pub migrate: bool,
    /// Keys moved per second (0 = unlimited).
    pub rate: u32,
    /// Keys in flight at once.
    pub concurrency: usize,
    /// How long a process that does not migrate keeps the old ring for reads.
    pub hold: Duration,
    /// Re-warm a node that returns from being down (copy its keys from their other owners)
    /// and then lift its fence. Off: it stays fenced (its misses fall through to a replica).
    pub rewarm: bool,
}

impl Default for RebalanceOptions {
    fn default() -> Self {
        RebalanceOptions {
            enabled: true,
            migrate: true,
            rate: 20_000,
            concurrency: 32,
            hold: Duration::from_secs(600),
            rewarm: true,
        }
    }
}

/// Where the current transition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No transition.
    Idle = 0,
    /// Listing the keys of a node.
    Scanning = 1,
    /// Copying keys to their new owners.
    Copying = 2,
    /// Transition over; removing moved keys from members that no longer own them.
    Cleaning = 3,
}

/// A snapshot of the migrator's counters (totals since the client started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebalanceStatus {
    pub phase: Phase,
    /// Transitions started (including superseded ones) and completed.
    pub started: u64,
    pub completed: u64,
    /// Keys listed, and of those the ones whose owners changed.
    pub scanned: u64,
    pub candidates: u64,
    /// Keys copied to at least one new owner; keys every new owner already had or the source
    /// no longer held; keys removed from nodes that no longer own them.
    pub copied: u64,
    pub skipped: u64,
    pub removed: u64,
    /// Value bytes copied.
    pub bytes: u64,
    /// Keys found on a past owner by a client read (read-through).
    pub read_through: u64,
    pub errors: u64,
    /// Duration of the last completed transition, in milliseconds.
    pub last_duration_ms: u64,
}

/// The migrator's counters, shared by every clone of a [`Router`] and exported as metrics.
pub(crate) struct Progress {
    phase: AtomicU8,
    started: Counted,
    completed: Counted,
    scanned: Counted,
    candidates: Counted,
    copied: Counted,
    skipped: Counted,
    removed: Counted,
    bytes: Counted,
    read_through: Counted,
    errors: Counted,
    last_duration_ms: AtomicU64,
    phase_gauge: Gauge,
    duration_gauge: Gauge,
}

/// A counter kept both locally (for [`Router::rebalance_status`]) and as a metric.
struct Counted(AtomicU64, Counter);

impl Counted {
    fn new(name: &'static str) -> Counted {
        Counted(AtomicU64::new(0), counter!(name))
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
        self.1.increment(n);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Progress {
    pub(crate) fn new() -> Progress {
        Progress {
            phase: AtomicU8::new(Phase::Idle as u8),
            started: Counted::new(names::REBALANCE_TRANSITIONS_STARTED_TOTAL),
            completed: Counted::new(names::REBALANCE_TRANSITIONS_COMPLETED_TOTAL),
            scanned: Counted::new(names::REBALANCE_KEYS_SCANNED_TOTAL),
            candidates: Counted::new(names::REBALANCE_KEYS_MOVING_TOTAL),
            copied: Counted::new(names::REBALANCE_KEYS_COPIED_TOTAL),
            skipped: Counted::new(names::REBALANCE_KEYS_SKIPPED_TOTAL),
            removed: Counted::new(names::REBALANCE_KEYS_REMOVED_TOTAL),
            bytes: Counted::new(names::REBALANCE_BYTES_COPIED_TOTAL),
            read_through: Counted::new(names::REBALANCE_READ_THROUGH_HITS_TOTAL),
            errors: Counted::new(names::REBALANCE_ERRORS_TOTAL),
            last_duration_ms: AtomicU64::new(0),
            phase_gauge: gauge!(names::REBALANCE_PHASE),
            duration_gauge: gauge!(names::REBALANCE_LAST_DURATION_SECONDS),
        }
    }

    fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
        self.phase_gauge.set(p as u8 as f64);
    }

    pub(crate) fn read_through_hit(&self) {
        self.read_through.add(1);
    }

    fn status(&self) -> RebalanceStatus {
        RebalanceStatus {
            phase: match self.phase.load(Ordering::Relaxed) {
                1 => Phase::Scanning,
                2 => Phase::Copying,
                3 => Phase::Cleaning,
                _ => Phase::Idle,
            },
            started: self.started.get(),
            completed: self.completed.get(),
            scanned: self.scanned.get(),
            candidates: self.candidates.get(),
            copied: self.copied.get(),
            skipped: self.skipped.get(),
            removed: self.removed.get(),
            bytes: self.bytes.get(),
            read_through: self.read_through.get(),
            errors: self.errors.get(),
            last_duration_ms: self.last_duration_ms.load(Ordering::Relaxed),
        }
    }
}

/// How long one metadump may go without a line before the node counts as stalled.
const DUMP_IDLE: Duration = Duration::from_secs(10);
/// Read buffer of a listing: many lines arrive per read.
const DUMP_BUFFER: usize = 64 * 1024;
/// How often a `BUSY` crawler (another crawl running) is asked again, and how long apart.
const BUSY_RETRIES: u32 = 50;
const BUSY_PAUSE: Duration = Duration::from_millis(200);
/// Listings of one node tried in one pass (and re-warm passes tried) before giving up.
pub(super) const LIST_ATTEMPTS: u32 = 4;
/// Pause before the second listing of a node; it doubles with each further attempt.
pub(super) const LIST_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// Pause before a transition lists again the nodes whose listing failed in a whole pass;
/// it doubles with each pass, up to [`PASS_PAUSE_MAX`].
const PASS_PAUSE: Duration = Duration::from_secs(5);
const PASS_PAUSE_MAX: Duration = Duration::from_secs(300);
/// Pause before the keys whose copy failed are tried again.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Pacing tick of the rate limit.
const TICK: Duration = Duration::from_millis(50);

/// The pause before attempt `attempt` (0 = the first, no pause) of something retried with a
/// doubling backoff from `first`.
pub(super) fn backoff(first: Duration, attempt: u32) -> Duration {
    match attempt {
        0 => Duration::ZERO,
        n => first.saturating_mul(1 << (n - 1).min(16)),
    }
}

/// How one pass of the migrator ended.
enum Migration {
    /// Every source listed (or down, its keys copied from their other owners).
    Done,
    /// A newer membership change replaced the transition.
    Superseded,
    /// These nodes could not be listed: their moved keys are not copied yet.
    Incomplete(Vec<Arc<NodeEntry>>),
}

impl Router {
    /// The migrator's progress and totals.
    pub fn rebalance_status(&self) -> RebalanceStatus {
        self.inner.progress.status()
    }

    /// Whether a membership transition is under way (the old ring is still consulted).
    pub fn in_transition(&self) -> bool {
        !self.topology().past.is_empty()
    }

    /// Waits (polling, up to `limit`) until no transition is under way; true if none is.
    pub async fn wait_settled(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.in_transition() {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Starts the background work of the transition `topo` began.
    pub(crate) fn spawn_migrator(&self, topo: Arc<Topology>) {
        let client = self.clone();
        self.inner.progress.started.add(1);
        tokio::spawn(async move {
            let started = Instant::now();
            let opts = client.inner.opts.rebalance.clone();
            if !opts.migrate {
                tokio::time::sleep(opts.hold).await;
            } else if !client.migrate_until_listed(&topo).await {
                tracing::info!("rebalance: superseded by a newer membership change");
                return;
            }
            // Not over before every router can have switched rings (`past_owners.rs`).
            let floor = client.inner.live.transition_floor();
            let left = floor.saturating_sub(started.elapsed());
            if !left.is_zero() && !client.pause_while_current(&topo, left).await {
                tracing::info!("rebalance: superseded by a newer membership change");
                return;
            }
            if client.settle(&topo) {
                let p = &client.inner.progress;
                p.completed.add(1);
                let took = started.elapsed();
                p.last_duration_ms
                    .store(took.as_millis() as u64, Ordering::Relaxed);
                p.duration_gauge.set(took.as_secs_f64());
                let s = p.status();
                tracing::info!(
                    seconds = took.as_secs_f64(),
                    copied = s.copied,
                    "rebalance: transition complete; old ring dropped"
                );
                if opts.migrate {
                    p.set_phase(Phase::Cleaning);
                    let members = past_members(&topo);
                    client.clean_up(&topo, members).await;
                    tracing::info!(
                        removed = p.removed.get(),
                        "rebalance: moved keys removed from their old owners"
                    );
                }
                if client.is_current_ring(&topo) {
                    p.set_phase(Phase::Idle);
                }
            }
        });
    }

    /// Whether the client still places keys as `topo` does (no newer change came).
    fn is_current_ring(&self, topo: &Topology) -> bool {
        let now = self.topology();
        now.past.is_empty() && now.same_ring(topo)
    }

    /// Whether `topo` is still the client's current topology (no newer change came).
    fn is_current(&self, topo: &Arc<Topology>) -> bool {
        Arc::ptr_eq(&self.topology(), topo)
    }

    /// Ends the transition: the same topology without past rings, if `topo` is still current.
    fn settle(&self, topo: &Arc<Topology>) -> bool {
        let settled = Arc::new(topo.settled());
        let prev = self.inner.topology.compare_and_swap(topo, settled);
        Arc::ptr_eq(&prev, topo)
    }

    /// Moves every moved key, in passes until every source has been listed (a failed one
    /// again after a doubling pause): a transition is never over while keys a node holds may
    /// not have moved. False if a newer membership change superseded the transition.
    async fn migrate_until_listed(&self, topo: &Arc<Topology>) -> bool {
        let mut sources = migration_sources(topo);
        tracing::info!(
            nodes = sources.len(),
            "rebalance: transition started; moving keys whose owners changed"
        );
        for pass in 1u32.. {
            match self.migrate(topo, sources).await {
                Migration::Done => return true,
                Migration::Superseded => return false,
                Migration::Incomplete(failed) => {
                    // Still listing, as far as anyone watching the phase can tell.
                    self.inner.progress.set_phase(Phase::Scanning);
                    let pause = backoff(PASS_PAUSE, pass).min(PASS_PAUSE_MAX);
                    let names: Vec<&str> = failed.iter().map(|n| n.name.as_str()).collect();
                    tracing::warn!(
                        nodes = %names.join(","),
                        retry_in_secs = pause.as_secs(),
                        "rebalance: transition not complete: these nodes could not be listed; \
                         the old ring stays for reads, nothing is cleaned up, and they are \
                         listed again"
                    );
                    if !self.pause_while_current(topo, pause).await {
                        return false;
                    }
                    sources = failed;
                }
            }
        }
        unreachable!("the passes end by returning")
    }

    /// Sleeps for `pause`, in short steps so that a transition replaced meanwhile lets go of
    /// its topology (and the connections of nodes that left) at once; false if it was.
    async fn pause_while_current(&self, topo: &Arc<Topology>, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        while Instant::now() < until {
            if !self.is_current(topo) {
                return false;
            }
            let left = until.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
        }
        self.is_current(topo)
    }

    /// Lists the keys `node` holds that `keep` accepts, over this router's transport.
    async fn list_keys(
        &self,
        node: &NodeEntry,
        keep: impl FnMut(&[u8]) -> bool,
    ) -> Result<Vec<(Bytes, u64)>, Error> {
        dump_keys(
            &node.spec,
            &self.inner.opts.transport,
            self.inner.live.connect_timeout(),
            keep,
        )
        .await
    }

    /// One pass of the migrator over `sources`: each node is listed and its moved keys copied.
    async fn migrate(&self, topo: &Arc<Topology>, sources: Vec<Arc<NodeEntry>>) -> Migration {
        let p = &self.inner.progress;
        // A node whose listing fails (a stall, a dropped connection, a refusal) is tried again
        // after the others, with a doubling pause, a few times in this pass.
        let mut queue: std::collections::VecDeque<(Arc<NodeEntry>, u32)> =
            sources.into_iter().map(|s| (s, 0)).collect();
        let mut failed = Vec::new();
        while let Some((src, attempt)) = queue.pop_front() {
            if !self.is_current(topo) {
                return Migration::Superseded;
            }
            if !src.health.is_usable() {
                tracing::warn!(node = %src.name, "rebalance: node down, its keys come from their other replicas");
                continue;
            }
            if !self
                .pause_while_current(topo, backoff(LIST_RETRY_PAUSE, attempt))
                .await
            {
                return Migration::Superseded;
            }
            p.set_phase(Phase::Scanning);
            let scan_started = Instant::now();
            let keys = match self
                .list_keys(&src, |k| {
                    p.scanned.add(1);
                    topo.moved(k)
                })
                .await
            {
                Ok(k) => k,
                Err(e) => {
                    p.errors.add(1);
                    tracing::warn!(
                        node = %src.name,
                        attempt = attempt + 1,
                        of = LIST_ATTEMPTS,
                        "rebalance: listing keys failed: {e}"
                    );
                    // Is the node there at all? A `version` on its ordinary connection keeps its
                    // health current: a node that is gone (stopped after it left, say) is soon
                    // marked down and probed, and a down node is not listed (its keys are
                    // copied from their other owners) rather than holding the transition open.
                    // One that answers it only refuses the listing.
                    let _ = self.send(&src, Request::Version).await;
                    if attempt + 1 < LIST_ATTEMPTS {
                        queue.push_back((src, attempt + 1));
                    } else {
                        failed.push(src);
                    }
                    continue;
                }
            };
            p.candidates.add(keys.len() as u64);
            tracing::info!(
                node = %src.name,
                moving = keys.len(),
                seconds = scan_started.elapsed().as_secs_f64(),
                "rebalance: node listed; copying"
            );
            p.set_phase(Phase::Copying);
            if !self.copy_paced(topo, &src, &keys, None).await {
                return Migration::Superseded;
            }
        }
        if failed.is_empty() {
            Migration::Done
        } else {
            Migration::Incomplete(failed)
        }
    }

    /// Copies `keys` from `src` at the configured rate, to `only` or else to each key's
    /// current owners; false if `topo` stopped being current meanwhile.
    async fn copy_paced(
        &self,
        topo: &Arc<Topology>,
        src: &Arc<NodeEntry>,
        keys: &[(Bytes, u64)],
        only: Option<&Arc<NodeEntry>>,
    ) -> bool {
        let opts = &self.inner.opts.rebalance;
        let per_tick = match opts.rate {
            0 => usize::MAX,
            r => ((r as u64 * TICK.as_millis() as u64 / 1000).max(1)) as usize,
        };
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failed: Vec<Bytes> = Vec::new();
        for chunk in keys.chunks(per_tick.min(keys.len().max(1))) {
            if opts.rate != 0 {
                tick.tick().await;
            }
            if !self.is_current(topo) {
                return false;
            }
            for batch in chunk.chunks(opts.concurrency.max(1)) {
                let done = join_all(
                    batch
                        .iter()
                        .map(|(key, _)| self.migrate_key(topo, src, key, only)),
                )
                .await;
                failed.extend(
                    batch
                        .iter()
                        .zip(done)
                        .filter(|(_, ok)| !ok)
                        .map(|(k, _)| k.0.clone()),
                );
            }
        }
        // Keys whose copy failed (a timeout on a busy node) get one more try, after a pause.
        if !failed.is_empty() {
            tokio::time::sleep(RETRY_PAUSE).await;
            for batch in failed.chunks(opts.concurrency.max(1)) {
                if !self.is_current(topo) {
                    return false;
                }
                join_all(
                    batch
                        .iter()
                        .map(|key| self.migrate_key(topo, src, key, only)),
                )
                .await;
            }
        }
        true
    }

    /// Copies one key from `src` to `only`, or else to those of its current owners that lack
    /// it; false if the copy failed and is worth another try.
    async fn migrate_key(
        &self,
        topo: &Topology,
        src: &Arc<NodeEntry>,
        key: &Bytes,
        only: Option<&Arc<NodeEntry>>,
    ) -> bool {
        let p = &self.inner.progress;
        let targets: Vec<Arc<NodeEntry>> = match only {
            Some(n) => vec![n.clone()],
            // An owner that is down misses this copy as it would miss a write: it gets a
            // hint, so its repair brings the key from an owner in sync. Skipped silently, the
            // key was lost to it for good once the transition ended (a node joining the ring
            // is often marked down by a write sent while its first connections still open).
            None => {
                let mut owners = self.write_owners(topo, key);
                owners.retain(|n| !Arc::ptr_eq(n, src));
                owners
            }
        };
        if targets.is_empty() {
            p.skipped.add(1);
            return true;
        }
        match self.move_key(src, &targets, key).await {
            Ok(Moved::Copied { bytes, .. }) => {
                p.copied.add(1);
                p.bytes.add(bytes as u64);
                true
            }
            Ok(Moved::Present | Moved::Absent) => {
                p.skipped.add(1);
                true
            }
            Err(e) => {
                p.errors.add(1);
                tracing::debug!(node = %src.name, "rebalance: moving a key failed: {e}");
                false
            }
        }
    }

    /// One re-warm pass over the other owners of `node`'s keys; false if it must be retried.
    pub(super) async fn rewarm(&self, topo: &Arc<Topology>, node: &Arc<NodeEntry>) -> bool {
        let p = &self.inner.progress;
        let sources: Vec<Arc<NodeEntry>> = topo
            .nodes
            .iter()
            .filter(|n| !Arc::ptr_eq(n, node) && n.health.state() == NodeState::Up)
            .cloned()
            .collect();
        for src in sources {
            if node.health.state() != NodeState::Fenced {
                return false;
            }
            let keys = match self
                .list_keys(&src, |k| {
                    let (mut has_node, mut has_src) = (false, false);
                    for n in topo.owner_nodes(k) {
                        has_node |= Arc::ptr_eq(n, node);
                        has_src |= Arc::ptr_eq(n, &src);
                    }
                    has_node && has_src
                })
                .await
            {
                Ok(k) => k,
                Err(e) => {
                    p.errors.add(1);
                    tracing::warn!(node = %src.name, "re-warm: listing keys failed: {e}");
                    return false;
                }
            };
            if !self.copy_paced(topo, &src, &keys, Some(node)).await {
                return false;
            }
        }
        true
    }

    /// After the transition: removes from each member that held data under a past ring the
    /// keys it no longer owns, so a later change that makes it an owner again cannot serve
    /// them stale. Runs only once no request reads through the past rings any more (copies
    /// re-check their source, and a source emptied under a running copy would look like a
    /// client's delete). Each delete compares the CAS the listing showed, so a write that
    /// reached the node since (a newer membership change) stays.
    async fn clean_up(&self, topo: &Arc<Topology>, members: Vec<Arc<NodeEntry>>) {
        let p = &self.inner.progress;
        // Also a transition floor more: another router that switched rings later may still
        // read through the past owners (`past_owners.rs`), and a copy whose source this
        // cleanup empties under it deletes itself again, as after a client's delete.
        let live = &self.inner.live;
        tokio::time::sleep(live.request_timeout() * 2 + live.transition_floor()).await;
        // A change during the wait has its own transition and cleanup; judging keys by this
        // (replaced) ring would delete copies the new one owns.
        if !self.is_current_ring(topo) {
            return;
        }
        let current = self.topology();
        for node in members {
            if !Arc::ptr_eq(&current, &self.topology()) || !node.health.is_usable() {
                return;
            }
            p.set_phase(Phase::Cleaning);
            let mut stale = None;
            for attempt in 0..LIST_ATTEMPTS {
                tokio::time::sleep(backoff(LIST_RETRY_PAUSE, attempt)).await;
                match self
                    .list_keys(&node, |k| {
                        !topo.owner_nodes(k).any(|n| Arc::ptr_eq(n, &node))
                    })
                    .await
                {
                    Ok(k) => {
                        stale = Some(k);
                        break;
                    }
                    Err(e) => {
                        p.errors.add(1);
                        tracing::warn!(
                            node = %node.name,
                            attempt = attempt + 1,
                            of = LIST_ATTEMPTS,
                            "rebalance: cleanup: listing keys failed: {e}"
                        );
                    }
                }
            }
            // Not listed: its old copies stay (they are never read while it does not own
            // them; the next transition's cleanup lists it again).
            let Some(stale) = stale else { continue };
            for batch in stale.chunks(self.inner.opts.rebalance.concurrency.max(1)) {
                if !Arc::ptr_eq(&current, &self.topology()) {
                    return;
                }
                let results = join_all(
                    batch
                        .iter()
                        .map(|(key, cas)| self.remove_moved(&current, &node, key, *cas)),
                )
                .await;
                let removed = results.iter().filter(|&&r| r).count();
                p.removed.add(removed as u64);
                let kept = results.len() - removed;
                if kept > 0 {
                    p.skipped.add(kept as u64);
                }
            }
        }
    }

    /// Removes `node`'s old copy of `key` once a current owner is confirmed to hold the key
    /// (copying it there first if none does): an old copy is the last one left when the
    /// migrator could not copy it (its new owner was down, a listing or a copy failed), and a
    /// cache may lose a key to a miss, never to its own cleanup. True if removed.
    async fn remove_moved(
        &self,
        topo: &Topology,
        node: &Arc<NodeEntry>,
        key: &Bytes,
        cas: u64,
    ) -> bool {
        let mut owners: Vec<Arc<NodeEntry>> = Self::live_owners(topo, key);
        // Only another node's copy makes this one a leftover.
        owners.retain(|o| !Arc::ptr_eq(o, node));
        let mut confirmed = false;
        let mut lacking = Vec::new();
        for o in owners {
            match self.cas_on(&o, key).await {
                Ok(Some(_)) if o.health.in_sync(key) => confirmed = true,
                Ok(Some(_)) => {}
                Ok(None) => lacking.push(o),
                Err(_) => {}
            }
        }
        if !confirmed && !lacking.is_empty() {
            confirmed = matches!(
                self.move_key(node, &lacking, key).await,
                Ok(Moved::Copied { .. } | Moved::Present)
            );
        }
        if !confirmed {
            return false;
        }
        let flags = MetaFlags {
            compare_cas: Some(cas),
            ..MetaFlags::default()
        };
        let md = MetaRequest::new(MetaCmd::Delete, key.clone(), flags, None);
        matches!(
            self.send(node, Request::Meta(Box::new(md))).await,
            Ok(Response::Meta(m)) if m.status == MetaStatus::Hd
        )
    }
}

/// Lists the keys `addr` holds (`lru_crawler metadump all`) with their CAS, keeping those
/// `keep` accepts. The connection is opened by `transport`, as every connection to a node is
/// (TLS, authentication), and the listing is read line by line with the protocol's bounded
/// [`ListingCodec`], so only the kept keys are held in memory. Every wait is bounded: the
/// connect timeout, then [`DUMP_IDLE`] for the request and between lines.
async fn dump_keys(
    spec: &NodeSpec,
    transport: &Connector,
    connect_timeout: Duration,
    mut keep: impl FnMut(&[u8]) -> bool,
) -> Result<Vec<(Bytes, u64)>, Error> {
    let addr = spec.addr.as_str();
    let stalled = || Error::Timeout(addr.to_string());
    let mut request = BytesMut::new();
    metadump::request_all().encode(&mut request);
    let mut busy = 0;
    'again: loop {
        // The certificate is checked against the node's stable name, as for its requests.
        let connect = transport.connect_named(addr, Some(spec.tls_name()));
        let mut stream = tokio::time::timeout(connect_timeout, connect)
            .await
            .map_err(|_| stalled())??;
        tokio::time::timeout(DUMP_IDLE, async {
            stream.write_all(&request).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| stalled())??;
        let mut lines = FramedRead::with_capacity(stream, ListingCodec::default(), DUMP_BUFFER);
        let mut out = Vec::new();
        loop {
            let line = tokio::time::timeout(DUMP_IDLE, lines.next())
                .await
                .map_err(|_| stalled())?;
            match line {
                Some(Ok(Listed::Item(item))) => {
                    if keep(&item.key) {
                        out.push((Bytes::from(item.key), item.fields.cas));
                    }
                }
                Some(Ok(Listed::End)) => return Ok(out),
                // Another crawl (ours for another purpose, or an operator's) is running.
                Some(Ok(Listed::Busy)) if busy < BUSY_RETRIES => {
                    busy += 1;
                    tokio::time::sleep(BUSY_PAUSE).await;
                    continue 'again;
                }
                Some(Ok(Listed::Busy)) => {
                    return Err(Error::Busy(format!(
                        "{addr}: lru_crawler still busy after {BUSY_RETRIES} tries"
                    )))
                }
                Some(Ok(Listed::Refused(l))) => {
                    return Err(Error::UnexpectedReply(format!(
                        "{addr}: lru_crawler metadump refused: {l}"
                    )))
                }
                Some(Err(e)) => return Err(e),
                None => return Err(Error::ConnectionClosed(addr.to_string())),
            }
        }
    }
}

/// The key of a metadump line's `key=` field. memcached (crawler.c) URI-encodes the raw key
/// bytes (letters, digits and `-._~` as they are, every other byte `%XX`), binary keys
/// included, so percent-decoding gives the key exactly. What comes back may be binary (even
/// `\r\n`): it is only ever sent to a node base64 with `b` ([`MetaRequest::new`]).
/// The listing is read with `ListingCodec`, which parses each line so; this reads one field,
/// for the tests.
#[cfg(test)]
fn dumped_key(field: &[u8]) -> Vec<u8> {
    use crate::protocol::metadump::{DumpLine, MetadumpLine};
    match MetadumpLine::parse(&[&b"key="[..], field].concat()) {
        DumpLine::Item(item) => item.key,
        _ => Vec::new(),
    }
}

/// Every node of `topo`'s past rings, once each: nodes that left the membership first (a
/// stable sort keeps the rest in ring order). One that is draining serves only until its
/// drain ends, and a drain may end after a quiet spell (`drain_quiet` on the node), which
/// listing large members first could be taken for.
fn migration_sources(topo: &Topology) -> Vec<Arc<NodeEntry>> {
    let mut sources: Vec<Arc<NodeEntry>> = Vec::new();
    for past in &topo.past {
        for n in &past.nodes {
            if !sources.iter().any(|s| Arc::ptr_eq(s, n)) {
                sources.push(n.clone());
            }
        }
    }
    sources.sort_by_key(|n| topo.nodes.iter().any(|c| Arc::ptr_eq(c, n)));
    sources
}

/// The current members that held data under one of `topo`'s past rings.
fn past_members(topo: &Topology) -> Vec<Arc<NodeEntry>> {
    topo.nodes
        .iter()
        .filter(|n| {
            topo.past
                .iter()
                .any(|p| p.nodes.iter().any(|o| Arc::ptr_eq(o, n)))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{valid_key, MetaCmd, MetaFlags, MetaRequest, Request};
    use bytes::BytesMut;

    /// The line memcached 1.6 prints for the key `x\n\rflush_all` (stored as `ms
    /// eAoNZmx1c2hfYWxs 1 b`), decoded back to the key's bytes, and the request the migrator
    /// builds from it: one line, the key base64 with `b`.
    #[test]
    fn binary_key_from_metadump_travels_base64() {
        let key = dumped_key(b"x%0A%0Dflush_all");
        assert_eq!(key, b"x\n\rflush_all");
        assert!(!valid_key(&key));
        let md = MetaRequest::new(
            MetaCmd::Delete,
            Bytes::from(key),
            MetaFlags::default(),
            None,
        );
        let req = Request::Meta(Box::new(md));
        req.check_wire().expect("safe");
        let mut buf = BytesMut::new();
        req.encode(&mut buf);
        assert_eq!(&buf[..], b"md eAoNZmx1c2hfYWxs b\r\n");
        assert_eq!(dumped_key(b"a-b.c_d~e%20%25"), b"a-b.c_d~e %");
    }
}
