//! A node's health life cycle, the actions that move it: Up → Down (failures, a missed
//! write, another process found by a connection as it reconnects) → probed → Repairing (the same process came back: its missed keys are replayed) or
//! Fenced (restarted, unknown, or its hint log overflowed: flushed, then re-warmed) → Up.
//!
//! The states and their rules (what a node in each may serve, the hint log) are `health.rs`;
//! everything that changes them from the engine's side starts here, so a node's whole life can
//! be read in these two files. The key copying itself is elsewhere: the replay of one key in
//! `handoff`, the re-warm pass in `migrate` (it walks a node's keys as the migrator does).

use std::fmt::Display;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use super::migrate::{backoff, LIST_ATTEMPTS, LIST_RETRY_PAUSE};
use super::Router;
use crate::error::Error;
use crate::health::{probe_backoff, Hinted, Identity, NodeState, Seen};
use crate::protocol::{Request, Response};
use crate::topology::NodeEntry;

/// Hinted keys replayed at once.
const REPLAY_BATCH: usize = 32;
/// Pause after a batch none of whose keys could be replayed.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

impl Router {
    /// A request to `node` failed: one more toward `failure_limit`, or down at once when the
    /// reply stream was not memcached's (a protocol error or a reply that answers nothing).
    pub(crate) fn failed(&self, node: &Arc<NodeEntry>, e: &Error) {
        let went_down = if matches!(e, Error::Protocol(_) | Error::UnexpectedReply(_)) {
            node.health.mark_down()
        } else {
            node.health.failure()
        };
        if went_down {
            self.marked_down(node, true, e);
        }
    }

    /// Takes `node` out of service now (a node that does not answer when added, a repair
    /// whose hint log overflowed) and makes sure its probe runs.
    pub(crate) fn take_down(&self, node: &Arc<NodeEntry>, why: impl Display) {
        let newly = node.health.mark_down();
        self.marked_down(node, newly, why);
    }

    /// What follows `health.mark_down()`: a node that just went down is said once and shown
    /// down on `/metrics`; either way its probe runs (one per node).
    pub(crate) fn marked_down(&self, node: &Arc<NodeEntry>, newly: bool, why: impl Display) {
        if newly {
            tracing::warn!(node = %node.name, "node marked down: {why}");
            node.metrics.up.set(0.0);
        }
        self.spawn_probe(node.clone());
    }

    /// Records that `node` missed a write of `key` (hinted handoff) and starts what that
    /// calls for: nothing while the node is down (its probe replays the hints), a replay if
    /// it was serving, a probe that flushes it if the hint log overflowed.
    pub(crate) fn missed(&self, node: &Arc<NodeEntry>, key: &Bytes) {
        self.hinted(node, node.health.hint(key));
    }

    /// Acts on the outcome of a hint (see [`Router::missed`]).
    pub(crate) fn hinted(&self, node: &Arc<NodeEntry>, outcome: Hinted) {
        node.metrics.hints.set(node.health.hint_count() as f64);
        match outcome {
            Hinted::Recorded => {}
            Hinted::StartRepair => self.spawn_replay(node.clone()),
            Hinted::Overflowed => {
                node.metrics.hints_overflowed.increment(1);
                node.metrics.up.set(0.0);
                tracing::warn!(
                    node = %node.name,
                    "hint log full: the node will be flushed and re-warmed when it answers"
                );
                self.spawn_probe(node.clone());
            }
        }
    }

    /// A new connection to `node` is about to carry requests and the node's `stats` said
    /// `reply`: if another process answers than the one seen before, the node restarted
    /// between two requests (nothing failed, so nothing else would notice; its connections
    /// simply reconnected to an empty process). It is taken down here, before this connection
    /// opens, so no read reaches the empty process and misses; its probe then finds the new
    /// process and flushes, fences and re-warms it, as for any restart. Runs once per
    /// connect, in the connection's task; nothing here waits.
    pub(crate) fn connected(&self, node: &Arc<NodeEntry>, reply: &Response) {
        let Response::Stats(s) = reply else { return };
        // Without pid/uptime/time there is nothing to compare: the node is used as before.
        let Some(id) = Identity::from_stats(s.iter().map(|(k, v)| (&k[..], &v[..]))) else {
            return;
        };
        match node.health.connected_as(id) {
            Seen::First | Seen::Same | Seen::Down => {}
            Seen::Restarted(was) => {
                tracing::warn!(
                    node = %node.name,
                    was = %was,
                    now = %id,
                    "node restarted (noticed on reconnect): it serves nothing until it is \
                     flushed, fenced and re-warmed"
                );
                self.take_down(node, "it restarted");
            }
        }
    }

    /// The node's identity (pid and start time) from its `stats`, if it reports them.
    pub(super) async fn identity_of(&self, node: &Arc<NodeEntry>) -> Option<Identity> {
        match self.send(node, Request::Stats { group: None }).await {
            Ok(Response::Stats(s)) => Identity::from_stats(s.iter().map(|(k, v)| (&k[..], &v[..]))),
            _ => None,
        }
    }

    /// Probes a down node with `version` under backoff (one probe per node at a time). When
    /// it answers, `stats` tells whether it is the process seen before: if so (a pause, a cut
    /// link) it takes writes again at once and the keys it missed are replayed before it
    /// serves reads; if it restarted, was never seen, or missed more than its hint log holds,
    /// it is flushed, fenced and re-warmed. The probe runs while the node is in the current
    /// ring or a past one (a node draining out, or re-added mid-transition).
    pub(crate) fn spawn_probe(&self, node: Arc<NodeEntry>) {
        if node.health.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            let member = |c: &Router| {
                c.topology()
                    .all_nodes()
                    .iter()
                    .any(|n| Arc::ptr_eq(n, &node))
            };
            let mut attempt = 0;
            loop {
                tokio::time::sleep(probe_backoff(attempt)).await;
                attempt = attempt.saturating_add(1);
                if !member(&client) {
                    break;
                }
                if client.probe_once(&node).await {
                    break;
                }
            }
            node.health.probing.store(false, Ordering::Release);
            // Marked down again while this probe was finishing: its `spawn_probe` found this
            // one still running, so start the next here.
            if node.health.state() == NodeState::Down && member(&client) {
                client.spawn_probe(node);
            }
        });
    }

    /// One probe attempt; true when the node is back (repairing or fenced).
    async fn probe_once(&self, node: &Arc<NodeEntry>) -> bool {
        let timeout = self.inner.live.request_timeout();
        let conn = node.conn();
        if conn.wait_connected(timeout).await.is_err() {
            return false;
        }
        let Ok(Response::Version(v)) = conn.request(Request::Version, timeout).await else {
            return false;
        };
        node.learn_version(&String::from_utf8_lossy(&v));
        // Every connection must be up before the node is trusted again, and must have
        // answered: requests queued on it while the node was stalled (writes that timed out
        // and were hinted) have then been executed, so none lands after its key's replay.
        for c in node.conns() {
            if c.wait_connected(timeout).await.is_err()
                || !matches!(
                    c.request(Request::Version, timeout).await,
                    Ok(Response::Version(_))
                )
            {
                return false;
            }
        }
        let (id, flushed) = match conn.request(Request::Stats { group: None }, timeout).await {
            Ok(Response::Stats(s)) => (
                Identity::from_stats(s.iter().map(|(k, v)| (&k[..], &v[..]))),
                s.iter()
                    .any(|(k, v)| &k[..] == b"cmd_flush" && &v[..] != b"0"),
            ),
            Ok(_) => (None, false),
            Err(_) => return false,
        };
        let known = node.health.identity();
        let same = matches!((known, id), (Some(a), Some(b)) if a.same_process(&b));
        if same && !node.health.hints_overflowed() {
            node.health.returned_repairing();
            node.metrics.up.set(1.0);
            tracing::info!(
                node = %node.name,
                missed = node.health.hint_count(),
                "node back (same process): replaying the keys it missed"
            );
            self.spawn_replay(node.clone());
            return true;
        }
        let why = match (known, id) {
            _ if same => "its hint log overflowed",
            (None, _) => "never seen before",
            (_, None) => "its stats lack pid/uptime/time",
            _ => "it restarted",
        };
        let flush = Request::FlushAll {
            delay: 0,
            noreply: false,
        };
        // A process that restarted and was flushed since it started (its `cmd_flush` counts
        // from its start) was flushed by another router that noticed the restart first and
        // may have re-warmed it since: flushing again would wipe that re-warm and every write
        // since (a counter run on it as primary, then missing on it, then deleted on its
        // replica by a replay from it: `ringcache-bench netns-counters` lost a whole counter).
        // Everything such a process holds was written after the restart by routers that
        // knew of it. For any other reason (overflow, never seen) the flush is this router's.
        let restarted = matches!((known, id), (Some(_), Some(_))) && !same;
        let skip = restarted && flushed;
        if !skip && !matches!(conn.request(flush, timeout).await, Ok(Response::Ok)) {
            return false;
        }
        if let Some(id) = id {
            node.health.set_identity(id);
        }
        node.health.returned_fenced();
        if let (Some(_), Some(id), false) = (known, id, same) {
            node.metrics.restarts.increment(1);
            // One moment for every router: the new process's start (`primary.rs`).
            node.health.back_since_start(id.started);
        }
        node.metrics.hints.set(0.0);
        node.metrics.up.set(1.0);
        tracing::warn!(node = %node.name, "node back: flushed and fenced ({why})");
        self.spawn_rewarm(node.clone());
        true
    }

    /// Replays `node`'s hints until none is left, then lets it serve reads (one replay per
    /// node at a time). Stops when the node goes down again (its probe starts the next one);
    /// a hint log that overflowed meanwhile sends it to a flush instead.
    pub(crate) fn spawn_replay(&self, node: Arc<NodeEntry>) {
        if node.health.replaying.swap(true, Ordering::AcqRel) {
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut replayed = 0u64;
            loop {
                if node.health.state() == NodeState::Down {
                    break;
                }
                if node.health.hints_overflowed() {
                    client.take_down(&node, "its hint log overflowed during the repair");
                    break;
                }
                let batch = node.health.take_hints(REPLAY_BATCH);
                node.metrics.hints.set(node.health.hint_count() as f64);
                if batch.is_empty() {
                    if node.health.finish_repair() {
                        tracing::info!(
                            node = %node.name,
                            replayed,
                            seconds = started.elapsed().as_secs_f64(),
                            "missed keys replayed; node serving"
                        );
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let done = join_all(batch.iter().map(|k| client.replay_key(&node, k))).await;
                let mut failed = 0;
                for (k, r) in batch.iter().zip(done) {
                    match r {
                        Ok(()) => {
                            replayed += 1;
                            node.metrics.hints_replayed.increment(1);
                            node.health.replayed(k, true);
                        }
                        // Not repaired: it stays a hint (the node is failing, or its source).
                        Err(e) => {
                            tracing::debug!(node = %node.name, "replay of a missed key failed: {e}");
                            failed += 1;
                            node.health.replayed(k, false);
                        }
                    }
                }
                if failed == batch.len() {
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                if node.health.state() == NodeState::Down {
                    break;
                }
            }
            node.health.replaying.store(false, Ordering::Release);
            // A repair asked for while this one was finishing found it still running.
            if node.health.is_usable() && node.health.hint_count() > 0 {
                client.spawn_replay(node);
            }
        });
    }

    /// Re-warms a node that came back from being down (flushed by the probe, fenced): copies
    /// to it every key it owns from the other owners, at the migrator's rate, then lifts the
    /// fence so its misses are misses again. Copies are adds checked against racing deletes,
    /// as in a transition; a node without another owner of its keys (replicas = 1) has
    /// nothing to copy and is unfenced at once.
    pub(crate) fn spawn_rewarm(&self, node: Arc<NodeEntry>) {
        if !self.inner.opts.rebalance.rewarm {
            return;
        }
        let client = self.clone();
        tokio::spawn(async move {
            for attempt in 0..LIST_ATTEMPTS {
                let topo = client.topology();
                if !topo.nodes.iter().any(|n| Arc::ptr_eq(n, &node))
                    || node.health.state() != NodeState::Fenced
                {
                    return;
                }
                tokio::time::sleep(backoff(LIST_RETRY_PAUSE, attempt)).await;
                let started = Instant::now();
                if client.rewarm(&topo, &node).await {
                    node.health.unfence();
                    tracing::info!(
                        node = %node.name,
                        seconds = started.elapsed().as_secs_f64(),
                        "re-warmed; fence lifted"
                    );
                    return;
                }
            }
            tracing::warn!(node = %node.name, "re-warm did not complete; the node stays fenced");
        });
    }
}
