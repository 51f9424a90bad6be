//! Starting a server: the steps the node and the proxy share, in one order. [`start`] binds the
//! listeners and the metrics endpoint and installs the recorder, before the server's state is
//! built (a metric handle taken before the recorder exists is a no-op for good);
//! [`Bound::serve`] then, given the state, re-reads the listener's files on SIGHUP, serves
//! `/metrics` and `/ready`, publishes counters once a second and runs one accept loop per
//! listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::listener;
use super::settings::ServerSettings;
use super::stats::ServerStats;
use super::Security;
use crate::error::Error;
use crate::metrics::Exporter;

/// What [`Bound::serve`] needs of a server's state.
pub trait Server: Send + Sync + 'static {
    /// `node` or `proxy`: the `role` label of its metrics and the word in its banners.
    const ROLE: &'static str;
    /// The pieces of its state the shared steps use.
    fn parts(&self) -> Parts<'_>;
    /// The settings it was started with.
    fn settings(&self) -> ServerSettings;
    /// `/ready`: `Ok`, or the one-line reason it is not.
    fn readiness(&self) -> Result<(), String>;
    /// Copies its counters into the metrics registry (once a second while metrics are served).
    fn publish(&self);
    /// Serves one accepted connection; `tls` is whether TLS applies on its listener (false on
    /// a `notls:` one).
    fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        tls: bool,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// The pieces every server's state holds that [`Bound::serve`] uses.
pub struct Parts<'a> {
    /// Cancelled to stop the server.
    pub shutdown: &'a CancellationToken,
    /// The listener's TLS, users and gate.
    pub security: &'a Security,
    /// Its counters (the accept loop keeps the connection counts).
    pub stats: &'a ServerStats,
}

impl<'a> Parts<'a> {
    /// A server's pieces, borrowed from its state.
    pub fn new(
        shutdown: &'a CancellationToken,
        security: &'a Security,
        stats: &'a ServerStats,
    ) -> Parts<'a> {
        Parts {
            shutdown,
            security,
            stats,
        }
    }
}

/// One listen address of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    /// `host:port`, as `TcpListener::bind` takes it.
    pub addr: String,
    /// False for a `notls:` address: plain text even when the server has a certificate.
    pub tls: bool,
}

/// A server's sockets, bound, and the metrics recorder, installed: what its state is built
/// after.
pub struct Bound {
    listeners: Vec<(TcpListener, bool)>,
    metrics: Option<(TcpListener, Exporter)>,
}

/// A server running in background tasks.
pub struct Running {
    /// The first listener's address.
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    /// Ends when every accept loop has (after shutdown, once connections finished).
    pub task: JoinHandle<()>,
}

/// The first step of starting a server: binds `addrs` and `settings.metrics_listen` and
/// installs the metrics recorder when there is an endpoint.
pub async fn start(settings: &ServerSettings, addrs: &[ListenAddr]) -> Result<Bound, Error> {
    // What the process needs before its first socket (limits) belongs here: every server,
    // and `ringcache local`'s several, start through this one function.
    let mut listeners = Vec::with_capacity(addrs.len());
    for a in addrs {
        let l = TcpListener::bind(&a.addr)
            .await
            .map_err(|e| Error::Config(format!("listen {}: {e}", a.addr)))?;
        listeners.push((l, a.tls));
    }
    if listeners.is_empty() {
        return Err(Error::Config("listen needs at least one address".into()));
    }
    let metrics = match &settings.metrics_listen {
        Some(addr) => Some((crate::metrics::bind(addr).await?, crate::metrics::install())),
        None => None,
    };
    Ok(Bound { listeners, metrics })
}

impl Bound {
    /// Whether `/metrics` is served: the server's state registers its metric handles then.
    pub fn exports(&self) -> bool {
        self.metrics.is_some()
    }

    /// The second step: serves `server` on the bound sockets until its shutdown token is
    /// cancelled.
    pub fn serve<S: Server>(self, server: Arc<S>) -> Result<Running, Error> {
        let s = server.clone();
        listener::on_hangup(server.parts().shutdown.clone(), move || {
            s.parts().security.reload()
        });
        let mut metrics_addr = None;
        if let Some((l, exporter)) = self.metrics {
            metrics_addr = crate::metrics::local_addr(&l);
            if let Some(addr) = metrics_addr {
                println!("ringcache {} metrics on http://{addr}/metrics", S::ROLE);
            }
            let weak = Arc::downgrade(&server);
            let exporter = exporter.ready(move || match weak.upgrade() {
                Some(s) => s.readiness(),
                None => Err("shutting down".into()),
            });
            metrics::gauge!(crate::metrics::MAX_CONNECTIONS, "role" => S::ROLE)
                .set(server.settings().max_connections as f64);
            tokio::spawn(crate::metrics::serve(
                l,
                exporter,
                server.parts().shutdown.clone(),
            ));
            spawn_publisher(server.clone());
        }
        let addr = self.listeners[0].0.local_addr()?;
        let mut loops = tokio::task::JoinSet::new();
        for (l, tls) in self.listeners {
            let s = server.clone();
            loops.spawn(async move {
                let counters = s.parts().stats.conns.clone();
                let shutdown = s.parts().shutdown.clone();
                let max = s.settings().max_connections;
                listener::serve(l, max, counters, shutdown, move |stream| {
                    s.clone().serve(stream, tls)
                })
                .await
            });
        }
        let task = tokio::spawn(async move { while loops.join_next().await.is_some() {} });
        Ok(Running {
            addr,
            metrics_addr,
            task,
        })
    }
}

/// Runs `server.publish()` once a second until shutdown.
fn spawn_publisher<S: Server>(server: Arc<S>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => server.publish(),
                _ = server.parts().shutdown.cancelled() => break,
            }
        }
    });
}
