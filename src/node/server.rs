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

/// Serves `listener` on the current runtime in a background task.
pub fn spawn(listener: TcpListener, node: Arc<Node>) -> std::io::Result<NodeHandle> {
    let addr = listener.local_addr()?;
    let n = node.clone();
    let task = tokio::spawn(async move {
        let counters = n.stats.conns.clone();
        let shutdown = n.shutdown.clone();
        let max = n.config.max_connections;
        listener::serve(listener, max, counters, shutdown, move |stream| {
            let node = n.clone();
            async move { connection::run(stream, &node).await }
        })
        .await
    });
    Ok(NodeHandle {
        addr,
        metrics_addr: None,
        node,
        task,
    })
}
