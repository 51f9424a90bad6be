//! The node's server: the shared accept loop with the node's connection handler.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use super::connection;
use super::Node;
use crate::server::listener;

/// A running node, as started in-process (tests, `ringcache local`).
pub struct NodeHandle {
    /// The address the memcached protocol is served on.
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Shared state, for tests that want to look inside (stats, store, clock).
    pub node: Arc<Node>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeHandle {
    /// Stops accepting, drains connections, and waits until the server has stopped.
    pub async fn shutdown(self) {
        self.node.shutdown.cancel();
        let _ = self.task.await;
    }
}

/// Serves `listeners` on the current runtime in background tasks, one accept loop each, all
/// under the node's one connection limit; `bool` is whether TLS applies (false: `notls:`).
/// The handle's `addr` is the first listener's.
pub fn spawn(listeners: Vec<(TcpListener, bool)>, node: Arc<Node>) -> std::io::Result<NodeHandle> {
    let Some(addr) = listeners.first().map(|(l, _)| l.local_addr()).transpose()? else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no listener",
        ));
    };
    let mut loops = tokio::task::JoinSet::new();
    for (listener, tls) in listeners {
        let n = node.clone();
        loops.spawn(async move {
            let counters = n.stats.conns.clone();
            let shutdown = n.shutdown.clone();
            let max = n.config.max_connections;
            listener::serve(listener, max, counters, shutdown, move |stream| {
                let node = n.clone();
                async move { connection::run(stream, tls, &node).await }
            })
            .await
        });
    }
    let task = tokio::spawn(async move { while loops.join_next().await.is_some() {} });
    Ok(NodeHandle {
        addr,
        metrics_addr: None,
        node,
        task,
    })
}
