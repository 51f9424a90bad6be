//! `ringcache node`: one memcached-compatible cache server.
//!
//! Layering follows mini-redis: [`server`] accepts, [`connection`] frames bytes into requests with
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
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::NodeConfig;
use crate::error::Error;
use crate::server::gate::Gate;
use crate::server::Security;
use clock::Clock;
use stats::ServerStats;
use store::{Store, StoreConfig};

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
            StoreConfig {
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
            stats: ServerStats::new("node", config.metrics_listen.is_some()),
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
    crate::fd_limit::raise(config.max_connections);
    let security = Security::new(&config.security, Gate::NODE)?;
    let mut listeners = Vec::new();
    for a in config.listen_addrs() {
        let l = TcpListener::bind(&a.addr)
            .await
            .map_err(|e| Error::Config(format!("listen {}: {e}", a.addr)))?;
        listeners.push((l, a.tls));
    }
    let metrics_listener = match &config.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    // The recorder must exist before the node registers its metric handles.
    let recorder = metrics_listener.as_ref().map(|_| crate::metrics::install());
    let mut node = Node::new(config, clock);
    node.security = security;
    let node = Arc::new(node);
    let n = node.clone();
    crate::server::listener::on_hangup(node.shutdown.clone(), move || n.security.reload());
    let mut metrics_addr = None;
    if let (Some(l), Some(handle)) = (metrics_listener, recorder) {
        metrics_addr = crate::metrics::local_addr(&l);
        if let Some(addr) = metrics_addr {
            println!("ringcache node metrics on http://{addr}/metrics");
        }
        // Draining, the node still serves every request, but it is leaving: a load balancer
        // or a Service must stop sending it new clients.
        let n = Arc::downgrade(&node);
        let handle = handle.ready(move || match n.upgrade() {
            Some(n) if n.drain.active() => {
                Err("draining: leaving the cluster while the routers move its keys".into())
            }
            Some(_) => Ok(()),
            None => Err("shutting down".into()),
        });
        metrics::gauge!(crate::metrics::MAX_CONNECTIONS, "role" => "node")
            .set(node.config.max_connections as f64);
        tokio::spawn(crate::metrics::serve(l, handle, node.shutdown.clone()));
        spawn_publisher(node.clone());
    }
    let mut handle = server::spawn(listeners, node)?;
    handle.metrics_addr = metrics_addr;
    Ok(handle)
}

/// Copies counters into the metrics registry once a second until shutdown.
fn spawn_publisher(node: Arc<Node>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    node.stats.publish();
                    node.store.publish_metrics();
                }
                _ = node.shutdown.cancelled() => break,
            }
        }
    });
}
