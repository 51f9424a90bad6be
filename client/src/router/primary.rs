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
//! sync with a version-comparing copy (`version.rs`) — and then runs the write there. Only a
//! primary this router sees down (or one whose repair fails) sends the write to the next
//! owner in sync, as before; that is the case every router sees alike when the fault is the
//! node's own (a pause, a cut link, a crash), and the case a partial partition splits
//! (docs/cluster.md, "What holds, fault by fault").

use std::sync::Arc;

use bytes::Bytes;

use super::version::{decide, versioned_copy, Copy};
use super::Router;
use crate::health::NodeState;
use crate::protocol::{MetaStatus, Response};
use crate::topology::NodeEntry;

impl Router {
    /// The owner a conditional write of `key` runs on, among `owners` (the live owners,
    /// primary first): the primary, repaired for `key` first if it missed writes of it;
    /// else the first owner in sync. `None` when no owner holds the key's current state.
    pub(super) async fn executor(
        &self,
        owners: &[Arc<NodeEntry>],
        key: &Bytes,
        primary: Option<&Arc<NodeEntry>>,
    ) -> Option<usize> {
        let first_in_sync = owners.iter().position(|n| n.health.in_sync(key));
        // The ring's primary, if it is among the live owners (not down for this router).
        let at = primary.and_then(|p| owners.iter().position(|n| Arc::ptr_eq(n, p)))?;
        if owners[at].health.in_sync(key) {
            return Some(at);
        }
        let primary = &owners[at];
        let repaired = match primary.health.state() {
            NodeState::Fenced => match first_in_sync {
                Some(src) => self.repair_fenced(&owners[src], primary, key).await,
                None => false,
            },
            // Repairing, with a hint for this key: replay it now rather than wait for the
            // replay task, so the write can run where every other router runs it.
            NodeState::Repairing | NodeState::Up => {
                if primary.health.take_hint(key) {
                    let ok = self.replay_key(primary, key).await.is_ok();
                    primary.health.replayed(key, ok);
                    ok
                } else {
                    false
                }
            }
            NodeState::Down => false,
        };
        if repaired {
            Some(at)
        } else {
            first_in_sync
        }
    }

    /// Brings `key` to a fenced `node` (flushed after a restart, still re-warming) from `src`,
    /// an owner in sync, comparing versions: the node's own copy stays if it is as new. True
    /// when the node holds the key's current state afterwards (or the source lacks the key,
    /// and so does the node).
    async fn repair_fenced(
        &self,
        src: &Arc<NodeEntry>,
        node: &Arc<NodeEntry>,
        key: &Bytes,
    ) -> bool {
        let Ok(item) = self.snapshot(src, key).await else {
            return false;
        };
        let Ok(mine) = self.cas_on(node, key).await else {
            return false;
        };
        let Some(item) = item else {
            // The source lacks the key: the node must lack it too (a flushed node does, unless
            // a write reached it since, which is then the newest).
            return true;
        };
        self.observe_cas(item.cas);
        let how = decide(item.cas, mine);
        if how == Copy::Keep {
            return true;
        }
        let req = versioned_copy(node, key, &item, how);
        match self.send_write(node, req).await {
            // `NS`/`EX`: a write reached the node between the read and the copy; whether it is
            // the newest is not known here, so the write goes where it went before.
            Ok(Response::Meta(m)) => m.status == MetaStatus::Hd,
            _ => false,
        }
    }
}
