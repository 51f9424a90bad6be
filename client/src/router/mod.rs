//! The router: the cluster engine. It owns the topology and every node's health, and routes
//! raw memcached requests over the ring with replication, failover and transitions
//! (docs/cluster.md). The proxy drives it with the requests its clients send; [`Client`](crate::Client)
//! is the typed API an application embeds, a thin layer over it (`client.rs`). Both place every
//! key identically because both are this engine.
//!
//! This file holds the engine's state ([`Router`], `Inner`); its jobs are this module's
//! children, each a file of one job working on that state (so they are submodules rather than
//! siblings that import each other, see docs/architecture.md, "The crates and their layers"):
//! `options` the options and the builder, `live` the settings that change while it runs,
//! `membership` the nodes and their replacement, `send` one request to one node and its
//! health, `read` and `spread` one key's and many keys' reads, `write` the writes, `meta`
//! meta routing, `admin` the fan-outs to every node, `requests` the requests the engine
//! builds itself, [`lifecycle`] a node's health life cycle (down, probed, repaired or fenced
//! and re-warmed, up), `handoff` the hinted-handoff replay and the replication of conditional
//! writes, [`migrate`] the migrator, `transition` reads, writes and deletes while past rings
//! are kept, and `dump` the key dumps a proxy fans out.

mod admin;
mod dump;
mod handoff;
pub mod lifecycle;
mod live;
mod membership;
mod meta;
pub mod migrate;
mod options;
mod past_owners;
mod primary;
mod read;
mod requests;
mod send;
mod spread;
mod transition;
mod version;
mod write;

pub use options::{
    Ack, ClientBuilder, ClientOptions, RouterBuilder, RouterOptions,
    DEFAULT_CONDITIONAL_FAILOVER_AFTER,
};
pub use read::{Found, Get, Lookup, Single};
pub(crate) use requests::{is_miss, replica_store, unexpected};

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use crate::topology::Topology;
use live::Live;
use migrate::Progress;

impl Router {
    /// Marks the metric series of the nodes of the current and past rings as in use every
    /// [`NODE_METRICS_KEEP_ALIVE`](crate::topology::NODE_METRICS_KEEP_ALIVE), for as long as
    /// the router exists: a recorder that drops idle series (the servers', `src/metrics.rs`)
    /// then drops exactly those of nodes that left every ring once their transition ended.
    fn spawn_metrics_keepalive(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::topology::NODE_METRICS_KEEP_ALIVE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.topology.load().keep_node_metrics_alive();
            }
        });
    }
}

pub(crate) struct Inner {
    /// The options as built; the ones in `live` may have changed since (see
    /// [`Router::reconfigure`]).
    pub(crate) opts: RouterOptions,
    pub(crate) live: Live,
    pub(crate) topology: ArcSwap<Topology>,
    /// Last router-chosen CAS value (see [`Router::next_cas`]).
    cas_seq: AtomicU64,
    /// The migrator's counters.
    pub(crate) progress: Progress,
}

/// A cluster client: `Clone + Send + Sync`, cheap to clone, no lock on the request path.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

/// A [`Router`] that does not keep the engine alive: what a background task holds (discovery's
/// re-resolution), so it ends when the last router is dropped.
#[derive(Clone)]
pub struct WeakRouter(Weak<Inner>);

impl WeakRouter {
    /// The router, while one is still held somewhere.
    pub fn upgrade(&self) -> Option<Router> {
        self.0.upgrade().map(|inner| Router { inner })
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.inner.topology.load();
        f.debug_struct("Router")
            .field(
                "nodes",
                &t.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field("replicas", &t.replicas)
            .finish()
    }
}

impl Router {
    /// Starts building a router.
    pub fn builder() -> RouterBuilder {
        RouterBuilder::default()
    }

    /// A handle that does not keep the engine alive.
    pub fn downgrade(&self) -> WeakRouter {
        WeakRouter(Arc::downgrade(&self.inner))
    }

    /// The current topology (ring + nodes).
    pub fn topology(&self) -> Arc<Topology> {
        self.inner.topology.load_full()
    }
}
