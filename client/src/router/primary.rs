//! Where a conditional write runs: on the key's primary whenever it is reachable, so that
//! every router runs one key's `incr`, `add`, `cas`, … on the same node however each of them
//! sees the node's health.
//!
//! Health is per router: after a pause, one router may have found the primary back and
//! replayed its hints while another still counts it as repairing (or fenced, after a
//! restart). Before this, each ran the write on the first owner *it* thought in sync, so the
//! two ran one key's increments on different owners and overwrote each other's results (a
//! CI run of `paused_node_is_repaired_from_hints_not_flushed_two_proxies` lost 86 of 1 256
//! increments). Now a router whose primary is usable but not in sync for the key repairs that
//! key there first — replays its hint, or, for a fenced node, copies the key from an owner in
//! sync with a version-comparing copy (`version.rs`) — and then runs the write there. A primary
//! this router sees down, or whose repair fails, gets the write **refused** (`SERVER_ERROR`),
//! never run on another owner: routers notice a node's return at different moments (each
//! by its own probe), and a router that still saw it down and ran writes on the replica
//! while another ran them on the returned primary split one key's `add`s and lost
//! increments (`ringcache-bench netns-counters`: 85 of 973 `add` races had two winners right
//! after a pause). Reads and unconditional writes fail over as before (docs/cluster.md,
//! "What holds, fault by fault").
//!
//! The refusal is bounded: a primary down for this router longer than
//! `conditional_failover_after` (default 15 s, long enough that every router has seen it
//! down) hands the key's conditional writes to the first in-sync replica in ring order, the
//! one every router picks — else a dead node in a static config would refuse a third of the
//! counters for good. When it comes back it takes none for [`SUSPECT_FOR`] (the other routers
//! find it back by their own probes, up to the probe backoff later, and run on the replica
//! until then). A primary that comes back as a new process (killed and restarted) is dated
//! from its own start, read from its `stats` (`Health::back_since_start`), so every router
//! takes it back at the same moment, start + `SUSPECT_FOR` (issue 28: dated from each
//! router's own probe, two proxies lost 2–4 of ~2 500 increments per key across the move
//! back); a paused node has no such shared instant. For as long again after that, each key
//! is repaired on it from the replica, versions compared, before it runs there, so what the
//! slower routers ran on the replica meanwhile is not overwritten (docs/cluster.md,
//! "Conditional writes when the primary is down").

use std::sync::Arc;

use bytes::Bytes;

use super::version::{decide, versioned_copy, Copy};
use super::Router;
use crate::health::{NodeState, SUSPECT_FOR};
use crate::protocol::{MetaStatus, Response};
use crate::topology::NodeEntry;

impl Router {
    /// The owner a conditional write of `key` runs on, among `owners` (the live owners,
    /// primary first): the primary, repaired for `key` first if it missed writes of it.
    /// `None` when the primary has been down for this router for less than
    /// `conditional_failover_after` (the write is refused: another router may reach it and
    /// run the key's writes there), or cannot be repaired and no other owner is in sync.
    pub(super) async fn executor(
        &self,
        owners: &[Arc<NodeEntry>],
        key: &Bytes,
        primary: Option<&Arc<NodeEntry>>,
    ) -> Option<usize> {
        // Where a primary that missed writes is repaired from.
        let first_in_sync = owners.iter().position(|n| n.health.in_sync(key));
        let failover = self.inner.live.failover_after();
        // The ring's primary, if it is among the live owners (not down for this router).
        let Some(at) = primary.and_then(|p| owners.iter().position(|n| Arc::ptr_eq(n, p))) else {
            // Down: refused until it has been down for the window, then the first in-sync
            // replica in ring order (`owners` keeps ring order) runs the key's writes.
            let down_for = primary.and_then(|p| p.health.down_for());
            return match (failover, down_for) {
                (Some(after), Some(d)) if d >= after => first_in_sync,
                _ => None,
            };
        };
        let back = failover.and_then(|after| owners[at].health.back_from_outage(after));
        if let Some(back) = back {
            if back < SUSPECT_FOR {
                // Back from an outage the writes failed over for, too recently for every
                // router to have seen it: they stay on the replica (if one is in sync).
                if let Some(i) = first_in_sync.filter(|&i| i != at) {
                    return Some(i);
                }
            } else if back < SUSPECT_FOR * 2 {
                // Taking them back: the replica may hold writes of slower routers that this
                // one never hinted; bring the key over, versions compared, first.
                if let Some(src) = first_in_sync.filter(|&i| i != at) {
                    return self
                        .repair_from(&owners[src], &owners[at], key)
                        .await
                        .then_some(at);
                }
            }
        }
        if owners[at].health.in_sync(key) {
            return Some(at);
        }
        let primary = &owners[at];
        if primary.health.state() == NodeState::Down {
            return None;
        }
        // A hint for this key (it missed a write of it): replay it now rather than wait for
        // the replay task, so the write can run where every other router runs it.
        if primary.health.take_hint(key) {
            let ok = self.replay_key(primary, key).await.is_ok();
            primary.health.replayed(key, ok);
            if !ok {
                return None;
            }
        }
        if primary.health.in_sync(key) {
            return Some(at);
        }
        // Fenced (flushed, re-warming), or suspect (back from being down, another router's
        // hints for it perhaps not replayed yet): bring the key from an owner in sync,
        // comparing versions, then run there.
        let source = first_in_sync.filter(|&i| i != at)?;
        self.repair_from(&owners[source], primary, key)
            .await
            .then_some(at)
    }

    /// Whether `node` came back from an outage its conditional writes failed over for so
    /// recently that they do not run on it without [`Router::executor`]'s care.
    pub(super) fn taking_back(&self, node: &NodeEntry) -> bool {
        self.inner
            .live
            .failover_after()
            .and_then(|after| node.health.back_from_outage(after))
            .is_some_and(|back| back < SUSPECT_FOR * 2)
    }

    /// Brings `key` to `node` (fenced: flushed after a restart, still re-warming; or suspect:
    /// back from being down) from `src`, an owner in sync, comparing versions: the node's own
    /// copy stays if it is as new. True when the node holds the key's current state
    /// afterwards (or the source lacks the key).
    async fn repair_from(&self, src: &Arc<NodeEntry>, node: &Arc<NodeEntry>, key: &Bytes) -> bool {
        let Ok(item) = self.snapshot(src, key).await else {
            return false;
        };
        let Ok(mine) = self.cas_on(node, key).await else {
            return false;
        };
        let Some(item) = item else {
            // The source lacks the key: the node is current if it lacks it too; if it has it,
            // that may be a delete it missed, so the write runs on the source.
            return mine.is_none();
        };
        self.observe_cas(item.cas);
        let how = decide(item.cas, mine);
        if how == Copy::Keep {
            return true;
        }
        let req = versioned_copy(node, key, item.as_item(), how);
        match self.send_write(node, req).await {
            // `NS`/`EX`: a write reached the node between the read and the copy; whether it is
            // the newest is not known here, so the write goes where it went before.
            Ok(Response::Meta(m)) => m.status == MetaStatus::Hd,
            _ => false,
        }
    }
}
