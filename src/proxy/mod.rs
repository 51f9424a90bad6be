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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use ringcache_client::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::server::gate::Gate;
use crate::server::listener;
use crate::server::stats::ServerStats;
use crate::server::Security;
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
    crate::fd_limit::raise(cfg.max_connections + 2 * cfg.nodes.len() * cfg.connections_per_node);
    let security = Security::new(&cfg.security, Gate::PROXY)?;
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| Error::Config(format!("listen {}: {e}", cfg.listen)))?;
    let metrics_listener = match &cfg.metrics_listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    // The recorder goes in before the client is built: metric handles taken earlier (per-node
    // counters, the rebalancer's) would be no-ops for good.
    let recorder = metrics_listener.as_ref().map(|_| crate::metrics::install());
    let router = Router::builder()
        .options(cfg.client_options()?)
        .node_specs(cfg.nodes.clone())
        .build_router()
        .await?;
    let export = cfg.metrics_listen.is_some();
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
    let p = proxy.clone();
    listener::on_hangup(proxy.shutdown.clone(), move || p.security.reload());
    // Before anything is spawned: a resolver that cannot start stops the start-up cleanly.
    if let Some(settings) = &discovery {
        discovery::start(&proxy, settings).await?;
    }
    let mut metrics_addr = None;
    if let (Some(l), Some(handle)) = (metrics_listener, recorder) {
        metrics_addr = crate::metrics::local_addr(&l);
        if let Some(addr) = metrics_addr {
            println!("ringcache proxy metrics on http://{addr}/metrics");
        }
        let p = Arc::downgrade(&proxy);
        let handle = handle.ready(move || match p.upgrade() {
            Some(p) => p.readiness(),
            None => Err("shutting down".into()),
        });
        metrics::gauge!(crate::metrics::MAX_CONNECTIONS, "role" => "proxy")
            .set(proxy.config().max_connections as f64);
        reload::record_start();
        tokio::spawn(crate::metrics::serve(l, handle, proxy.shutdown.clone()));
        spawn_publisher(proxy.clone());
    }
    if let Some(path) = config_path {
        reload::spawn_watcher(proxy.clone(), path);
    }
    let addr = listener.local_addr()?;
    let p = proxy.clone();
    let task = tokio::spawn(async move {
        let counters = p.stats.conns.clone();
        let shutdown = p.shutdown.clone();
        let max = p.config().max_connections;
        listener::serve(listener, max, counters, shutdown, move |stream| {
            connection::run(stream, p.clone())
        })
        .await
    });
    Ok(ProxyHandle {
        addr,
        metrics_addr,
        proxy,
        task,
    })
}

fn spawn_publisher(proxy: Arc<Proxy>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    proxy.stats.publish();
                    metrics::counter!(crate::metrics::MULTIGET_PARTIAL_TOTAL)
                        .absolute(proxy.multiget_failures.get());
                    metrics::counter!(crate::metrics::CONFIG_RELOADS_TOTAL).absolute(proxy.reloads.get());
                    let topo = proxy.router.topology();
                    metrics::gauge!(crate::metrics::PROXY_RING_NODES).set(topo.nodes.len() as f64);
                    let ready = proxy.readiness().is_ok();
                    metrics::gauge!(crate::metrics::PROXY_READY).set(if ready { 1.0 } else { 0.0 });
                }
                _ = proxy.shutdown.cancelled() => break,
            }
        }
    });
}
