//! `ringcache node`: one memcached-compatible cache server.
//!
//! Layering follows mini-redis: `crate::server::start` binds and accepts (the steps every server
//! shares; [`server`] holds the handle), [`connection`] frames bytes into requests with
//! the shared codec, [`exec`] carries out each request against the [`store`] and formats the
//! reply; [`stats`] counts what happened.

pub mod clock;
pub mod connection;
pub mod drain;
pub mod exec;
pub mod prefix;
pub mod server;
pub mod store;

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::error::Error;
use crate::server::gate::Gate;
use crate::server::{Parts, Security, Server, ServerSettings};
use clock::Clock;
use stats::ServerStats;
use store::{Store, StoreSettings};

pub use server::NodeHandle;

/// The node's view of the shared server pieces, under the paths its modules use.
pub use crate::server::{stats, VERSION};

/// State shared by every connection of one node.
pub struct Node {
    pub config: NodeConfig,
    pub store: Store,
    pub stats: ServerStats,
    pub clock: Arc<dyn Clock>,
    /// Unix time the node started, for `uptime`.
    pub started: u64,
    /// Random at every start, reported in `stats` as `instance_id`: routers tell a restarted
    /// node from the process they knew by it even when pid and start second are the same (a
    /// container's pid 1 restarted at once; docs/protocol.md).
    pub instance: u64,
    /// The monotonic instant the node started, for `uptime_ms`: a node's age that never reads
    /// high (whole-second `uptime` reads up to a second high), since routers judge from it
    /// whether the node may have forgotten a live lock (docs/locks.md, "How a lock is granted").
    pub started_at: Instant,
    pub verbosity: AtomicU32,
    /// `slabs automove` (0, 1 or 2): recorded and shown in `stats settings`; the segment store
    /// has no slab classes to rebalance (docs/protocol.md, "slabs automove").
    pub slab_automove: AtomicU8,
    /// `stats detail` counters.
    pub prefixes: prefix::PrefixStats,
    /// Cancelled to stop the node (signal, `shutdown` command, handle).
    pub shutdown: CancellationToken,
    /// TLS, authentication and the admin gate of the listener (`server::security`).
    pub security: Security,
    /// Leaving on SIGTERM: serving on while the routers move the keys off (`drain`).
    pub drain: drain::Drain,
}

impl Node {
    /// Builds a node's state from its config and a clock (tests pass a manual one).
    pub fn new(config: NodeConfig, clock: Arc<dyn Clock>) -> Node {
        let store = Store::new(
            StoreSettings {
                memory_limit: config.memory_limit_mb * 1024 * 1024,
                max_item_size: config.max_item_size,
            },
            clock.clone(),
        );
        let verbosity = config.verbosity;
        Node {
            started: clock.now(),
            // Never 0, so it cannot be mistaken for a missing field.
            instance: rand::random::<u64>().max(1),
            started_at: Instant::now(),
            store,
            stats: ServerStats::new("node", config.server.metrics_listen.is_some()),
            clock,
            config,
            verbosity: AtomicU32::new(verbosity),
            // memcached 1.6's default.
            slab_automove: AtomicU8::new(1),
            prefixes: prefix::PrefixStats::default(),
            shutdown: CancellationToken::new(),
            security: Security::open(Gate::NODE),
            drain: drain::Drain::default(),
        }
    }

    /// Seconds since start.
    pub fn uptime(&self) -> u64 {
        self.clock.now().saturating_sub(self.started)
    }

    /// Milliseconds since start, rounded down, from a monotonic clock: never more than the
    /// time this process has really been up.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started_at.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Current verbosity level (accepted and reported; logging is controlled by `RUST_LOG`).
    pub fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }
}

/// Starts a node in-process on the current runtime: binds, serves, publishes metrics.
/// Used by `ringcache node`, `ringcache local` and tests.
pub async fn start(config: NodeConfig, clock: Arc<dyn Clock>) -> Result<NodeHandle, Error> {
    config.validate()?;
    crate::fd_limit::raise(config.server.max_connections);
    let security = Security::new(&config.security, Gate::NODE)?;
    let bound = crate::server::start(&config.server, &config.listen_addrs()).await?;
    let mut node = Node::new(config, clock);
    node.security = security;
    let node = Arc::new(node);
    let running = bound.serve(node.clone())?;
    Ok(NodeHandle::new(running, node))
}

impl Server for Node {
    const ROLE: &'static str = "node";

    fn parts(&self) -> Parts<'_> {
        Parts::new(&self.shutdown, &self.security, &self.stats)
    }

    fn settings(&self) -> ServerSettings {
        self.config.server.clone()
    }

    /// Draining, the node still serves every request, but it is leaving: a load balancer or a
    /// Service must stop sending it new clients.
    fn readiness(&self) -> Result<(), String> {
        match self.drain.active() {
            true => Err("draining: leaving the cluster while the routers move its keys".into()),
            false => Ok(()),
        }
    }

    fn publish(&self) {
        self.stats.publish();
        self.store.publish_metrics();
    }

    async fn serve(self: Arc<Self>, stream: TcpStream, tls: bool) {
        connection::run(stream, tls, &self).await
    }
}
