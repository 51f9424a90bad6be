//! The engine's options and its builder: [`RouterOptions`] (every setting a [`Router`] is
//! built with, defaults included) and [`RouterBuilder`], which connects to the nodes and
//! returns the running engine. Both are named for the [`Router`] they build; the names an
//! application first met them by, through `Client::builder()`, stay as aliases
//! ([`ClientOptions`], [`ClientBuilder`]).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use super::live::Live;
use super::migrate::{Progress, RebalanceOptions};
use super::{Inner, Router};
use crate::error::Error;
use crate::health::HintLimits;
use crate::ring::{HashKind, NodeSpec};
use crate::topology::Topology;

/// How many replicas must acknowledge a write before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ack {
    /// The first live replica (the primary, unless it is down).
    Primary,
    /// A majority of the live replicas.
    Quorum,
    /// Every live replica (the default: a read from any replica then sees the write).
    #[default]
    All,
}

/// Settings of a [`Router`].
#[derive(Debug, Clone)]
pub struct RouterOptions {
    pub replicas: usize,
    pub vnodes: u32,
    pub hash: HashKind,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub connections_per_node: usize,
    pub queue_depth: usize,
    /// Consecutive failures that mark a node down.
    pub failure_limit: u32,
    pub ack: Ack,
    /// What a membership change does with the data (docs/cluster.md).
    pub rebalance: RebalanceOptions,
    /// The nodes' item size limit (memcached's `-I`): a reply announcing a larger value is a
    /// broken stream and resets its connection.
    pub max_item_size: usize,
    /// Bounds of each node's hint log (the keys it missed while down; see `health.rs`).
    pub hints: HintLimits,
    /// How connections to the nodes are opened: TLS, credentials (`transport.rs`).
    pub transport: crate::transport::Connector,
    /// The zone this router runs in (the proxy's `zone`, `RINGCACHE_ZONE`): reads ask an
    /// owner in it first (docs/placement.md, "Zones"). Placement does not depend on it.
    pub zone: Option<String>,
    /// How long a key's primary must have been down (for this router) before its conditional
    /// writes (`incr`, `add`, `cas`, …) fail over to the first in-sync replica in ring order
    /// instead of being refused; `Some(ZERO)` fails over at once, `None` never does
    /// (`router/primary.rs`, docs/cluster.md "Conditional writes when the primary is down").
    pub conditional_failover_after: Option<Duration>,
}

/// [`RouterOptions`]' former name, kept so callers written against it build unchanged.
pub type ClientOptions = RouterOptions;

/// [`RouterBuilder`]'s former name, kept so callers written against it build unchanged.
pub type ClientBuilder = RouterBuilder;

/// [`RouterOptions::conditional_failover_after`]'s default: long enough that every router has
/// seen a dead or paused primary as down before any fails over (docs/cluster.md has the sum:
/// 3 failures × 1 s request timeout to notice it, plus the 5 s probe backoff cap by which
/// routers' views of one outage differ, plus the same again as margin, rounded up).
pub const DEFAULT_CONDITIONAL_FAILOVER_AFTER: Duration = Duration::from_secs(15);

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            // One default for every program (docs/cluster.md, "Replicas").
            replicas: crate::ring::DEFAULT_REPLICAS,
            vnodes: crate::ring::DEFAULT_VNODES,
            hash: HashKind::Xxh3,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            connections_per_node: 2,
            queue_depth: 1024,
            failure_limit: 3,
            ack: Ack::All,
            rebalance: RebalanceOptions::default(),
            max_item_size: 1024 * 1024,
            hints: HintLimits::default(),
            transport: crate::transport::Connector::plain(),
            zone: None,
            conditional_failover_after: Some(DEFAULT_CONDITIONAL_FAILOVER_AFTER),
        }
    }
}

/// Builds a [`Router`] (`build_router`), or the [`Client`](crate::Client) over one (`build`).
#[derive(Debug, Clone, Default)]
pub struct RouterBuilder {
    nodes: Vec<NodeSpec>,
    opts: RouterOptions,
}

impl RouterBuilder {
    /// The nodes, as `host:port` addresses (names default to the address, weights to 1).
    pub fn nodes<I, S>(mut self, addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes = addrs.into_iter().map(NodeSpec::new).collect();
        self
    }

    /// The nodes, with names and weights.
    pub fn node_specs(mut self, specs: Vec<NodeSpec>) -> Self {
        self.nodes = specs;
        self
    }

    /// Copies of each key (1 = no replication).
    pub fn replicas(mut self, n: usize) -> Self {
        self.opts.replicas = n.max(1);
        self
    }

    /// Ring points per unit of node weight.
    pub fn vnodes(mut self, n: u32) -> Self {
        self.opts.vnodes = n.max(1);
        self
    }

    /// Placement: xxh3 (default) or ketama (libmemcached/twemproxy compatible).
    pub fn hash(mut self, h: HashKind) -> Self {
        self.opts.hash = h;
        self
    }

    /// Limit on opening a node connection (TCP, TLS handshake, authentication).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.opts.connect_timeout = t;
        self
    }

    /// Limit on one request's reply; a connection whose reply is overdue is reset.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.opts.request_timeout = t;
        self
    }

    /// Pipelined connections per node.
    pub fn connections_per_node(mut self, n: usize) -> Self {
        self.opts.connections_per_node = n.max(1);
        self
    }

    /// Consecutive failures that mark a node down.
    pub fn failure_limit(mut self, n: u32) -> Self {
        self.opts.failure_limit = n.max(1);
        self
    }

    /// What membership changes do with the data (read-through, the migrator, re-warm).
    pub fn rebalance(mut self, r: RebalanceOptions) -> Self {
        self.opts.rebalance = r;
        self
    }

    /// The nodes' item size limit (default 1 MiB, memcached's): bounds what a reply may hold.
    pub fn max_item_size(mut self, bytes: usize) -> Self {
        self.opts.max_item_size = bytes;
        self
    }

    /// How many replicas must acknowledge a write (default: all).
    pub fn ack(mut self, ack: Ack) -> Self {
        self.opts.ack = ack;
        self
    }

    /// Bounds of each node's hint log; past them a returning node is flushed and re-warmed.
    pub fn hint_limits(mut self, limits: HintLimits) -> Self {
        self.opts.hints = limits;
        self
    }

    /// The zone this router runs in: reads go first to a key's owner in it.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.opts.zone = Some(zone.into());
        self
    }

    /// How long a key's primary must be down before its conditional writes run on the first
    /// in-sync replica instead of being refused (default 15 s); `Some(Duration::ZERO)` fails
    /// over at once, `None` never (they wait for the primary, or a membership change).
    pub fn conditional_failover_after(mut self, after: Option<Duration>) -> Self {
        self.opts.conditional_failover_after = after;
        self
    }

    /// All options at once.
    pub fn options(mut self, opts: RouterOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Connects to the nodes (waiting up to the connect timeout for them) and learns what each
    /// supports. Nodes that are not up yet are marked down and probed in the background.
    pub async fn build_router(self) -> Result<Router, Error> {
        let inner = Arc::new(Inner {
            live: Live::new(&self.opts),
            opts: self.opts,
            topology: ArcSwap::from_pointee(Topology::empty()),
            cas_seq: AtomicU64::new(0),
            progress: Progress::new(),
        });
        let client = Router { inner };
        client.set_nodes(self.nodes).await?;
        client.spawn_metrics_keepalive();
        Ok(client)
    }
}
