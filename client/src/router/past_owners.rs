//! A moved key's past owners kept in step with its current ones while a transition runs
//! (docs/cluster.md, "Membership changes", "Several routers").
//!
//! Routers switch rings at their own discovery rounds, up to an interval apart. Until every
//! router has switched, one router writes a moved key to owners another does not read first.
//! So while this router's transition runs:
//!
//! - its writes of a moved key also go to the key's past owners ([`Router::past_targets`]),
//!   which are the owners a router still on the old ring reads; they go out together with
//!   the current owners' writes, so no round trip is added;
//! - before it reads a moved key it compares the version (the router-chosen CAS,
//!   `version.rs`) its past owners hold with its current owners' and, where a past owner's is
//!   newer, copies that item forward with a versioned copy ([`Router::catch_up`]); the read
//!   that follows then returns the newest write any router made. A key whose owners did not
//!   change, and every key outside a transition, costs nothing more;
//! - the transition does not end before every router can have seen the change
//!   ([`Router::set_transition_floor`], `migrate.rs`).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{join, join_all};

use super::{version, Router};
use crate::topology::{NodeEntry, Topology};

impl Router {
    /// The past owners a write of `key` also goes to: none outside a transition or for a key
    /// whose owners did not change.
    pub(crate) fn past_targets(topo: &Topology, key: &[u8]) -> Vec<Arc<NodeEntry>> {
        if topo.past.is_empty() || !topo.moved(key) {
            return Vec::new();
        }
        Self::past_sources(topo, key)
    }

    /// Before a read of `key`: brings a newer version than its current owners hold from its
    /// past owners (see the module comment). Does nothing outside a transition, for a key
    /// whose owners did not change, or where versions are not comparable (a node without
    /// `E`, memcached < 1.6.27: a miss on the current owners still reads through).
    pub(crate) async fn catch_up(&self, topo: &Topology, key: &Bytes) {
        let past = Self::past_targets(topo, key);
        if past.is_empty() {
            return;
        }
        let current = Self::live_owners(topo, key);
        let comparable = |n: &Arc<NodeEntry>| current.iter().all(|c| version::comparable(n, c));
        if current.is_empty() || !past.iter().all(comparable) {
            return;
        }
        let (now, then) = join(
            join_all(current.iter().map(|n| self.cas_on(n, key))),
            join_all(past.iter().map(|n| self.cas_on(n, key))),
        )
        .await;
        // The oldest version a current owner answered with (a miss is older than any); an
        // owner that erred is skipped: nothing can be copied to it now.
        let Some(oldest) = now
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .map(|c| c.unwrap_or(0))
            .min()
        else {
            return;
        };
        let newest = past
            .iter()
            .zip(&then)
            .filter_map(|(n, r)| Some((n, (*r.as_ref().ok()?)?)))
            .max_by_key(|(_, cas)| *cas);
        if let Some((src, cas)) = newest {
            if cas > oldest {
                // Versioned: each current owner gets it only where its own item is older.
                if let Ok(super::transition::Moved::Copied { .. }) =
                    self.move_key(src, &current, key).await
                {
                    self.inner.progress.read_through_hit();
                }
            }
        }
    }

    /// [`Router::catch_up`] for the keys of a multi-get, concurrently.
    pub(crate) async fn catch_up_many(&self, topo: &Topology, keys: &[Bytes]) {
        join_all(keys.iter().map(|k| self.catch_up(topo, k))).await;
    }
}
