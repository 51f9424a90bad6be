//! `ringcache proxy`: one address that existing memcached clients talk to, routing every request
//! over the ring with the embedded client's placement, replication, failover and health.
//!
//! [`connection`] frames client bytes with the shared codec and keeps replies in order while
//! backend work overlaps; [`route`] decides what each request becomes on the cluster; [`reload`]
//! swaps membership from the config file and [`discovery`] from DNS; [`stats`] answers `stats`.

pub mod config;
pub mod connection;
pub mod discovery;
mod dump;
mod inflight;
pub mod order;
pub mod reload;
pub mod route;
pub mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use ringcache_client::Router;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::server::gate::Gate;
use crate::server::stats::ServerStats;
use crate::server::{ListenAddr, Parts, Security, Server, ServerSettings};
pub use config::ProxyConfig;

/// A relaxed event counter.
#[derive(Debug, Default)]
pub struct Tally(AtomicU64);

impl Tally {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// State shared by every client connection of the proxy.
pub struct Proxy {
    router: Router,
    config: ArcSwap<ProxyConfig>,
    pub stats: ServerStats,
    pub started: Instant,
    pub shutdown: CancellationToken,
    /// Multi-get keys answered as misses because no replica could be read.
    pub multiget_failures: Tally,
    /// Successful config reloads.
    pub reloads: Tally,
    /// Bytes of requests in flight and replies not yet written, over all client connections
    /// (capped by `max_pending_bytes`).
    pub pending_bytes: connection::PendingBytes,
    /// TLS, authentication and the admin gate of the listener (`server::security`).
    pub security: Security,
}

impl Proxy {
    /// The cluster engine every request is routed through (the embedded client's engine,
    /// driven with raw requests).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The config in force.
    pub fn config(&self) -> Arc<ProxyConfig> {
        self.config.load_full()
    }

    /// Whether the proxy can serve (`/ready`): its ring has members and at least one of them
    /// answers (not marked down, a connection up). Without that every write fails and every
    /// read misses, though the port accepts, so a TCP probe alone would call it ready.
    pub fn readiness(&self) -> Result<(), String> {
        let topo = self.router.topology();
        if topo.nodes.is_empty() {
            return Err(match self.config().discovery {
                Some(_) => "the ring has no nodes: discovery has resolved none".into(),
                None => "the ring has no nodes".into(),
            });
        }
        if topo.answering() == 0 {
            return Err(format!(
                "none of the ring's {} nodes answers",
                topo.nodes.len()
            ));
        }
        Ok(())
    }
}

/// A running proxy.
pub struct ProxyHandle {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, if it is.
    pub metrics_addr: Option<SocketAddr>,
    pub proxy: Arc<Proxy>,
    task: tokio::task::JoinHandle<()>,
}

impl ProxyHandle {
    /// Stops accepting, finishes in-flight requests, and waits for the proxy to stop.
    pub async fn shutdown(self) {
        self.proxy.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Starts a proxy on the current runtime. With `config_path`, the file is watched (and SIGHUP
/// honoured) for membership changes.
pub async fn start(cfg: ProxyConfig, config_path: Option<PathBuf>) -> Result<ProxyHandle, Error> {
    cfg.validate()?;
    crate::fd_limit::raise(
        cfg.server.max_connections + 2 * cfg.nodes.len() * cfg.connections_per_node,
    );
    let security = Security::new(&cfg.security, Gate::PROXY)?;
    let listen = ListenAddr {
        addr: cfg.server.listen.clone(),
        tls: true,
    };
    let bound = crate::server::start(&cfg.server, &[listen]).await?;
    // `start` installed the recorder before the client is built: metric handles taken earlier
    // (per-node counters, the rebalancer's) would be no-ops for good.
    let router = Router::builder()
        .options(cfg.client_options()?)
        .node_specs(cfg.nodes.clone())
        .build_router()
        .await?;
    let export = bound.exports();
    if export {
        ringcache_client::discovery::register_metrics();
    }
    let discovery = cfg.discovery.clone();
    let proxy = Arc::new(Proxy {
        router,
        config: ArcSwap::from_pointee(cfg),
        stats: ServerStats::new("proxy", export),
        started: Instant::now(),
        shutdown: CancellationToken::new(),
        multiget_failures: Tally::default(),
        reloads: Tally::default(),
        pending_bytes: connection::PendingBytes::default(),
        security,
    });
    // Before anything is spawned: a resolver that cannot start stops the start-up cleanly.
    if let Some(settings) = &discovery {
        discovery::start(&proxy, settings).await?;
    }
    if export {
        reload::record_start();
    }
    let running = bound.serve(proxy.clone())?;
    if let Some(path) = config_path {
        reload::spawn_watcher(proxy.clone(), path);
    }
    Ok(ProxyHandle {
        addr: running.addr,
        metrics_addr: running.metrics_addr,
        proxy,
        task: running.task,
    })
}

impl Server for Proxy {
    const ROLE: &'static str = "proxy";

    fn parts(&self) -> Parts<'_> {
        Parts::new(&self.shutdown, &self.security, &self.stats)
    }

    fn settings(&self) -> ServerSettings {
        self.config().server.clone()
    }

    fn readiness(&self) -> Result<(), String> {
        Proxy::readiness(self)
    }

    fn publish(&self) {
        self.stats.publish();
        metrics::counter!(crate::metrics::MULTIGET_PARTIAL_TOTAL)
            .absolute(self.multiget_failures.get());
        metrics::counter!(crate::metrics::CONFIG_RELOADS_TOTAL).absolute(self.reloads.get());
        let topo = self.router.topology();
        metrics::gauge!(crate::metrics::PROXY_RING_NODES).set(topo.nodes.len() as f64);
        let ready = Proxy::readiness(self).is_ok();
        metrics::gauge!(crate::metrics::PROXY_READY).set(if ready { 1.0 } else { 0.0 });
    }

    /// The proxy has one listener, where TLS applies when it is configured.
    fn serve(self: Arc<Self>, stream: TcpStream, _tls: bool) -> impl Future<Output = ()> + Send {
        connection::run(stream, self)
    }
}
