//! A running node's handle: its addresses and state, and the way to stop it.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Node;
use crate::server::Running;

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
    /// The handle of `node` served as `running`.
    pub fn new(running: Running, node: Arc<Node>) -> NodeHandle {
        NodeHandle {
            addr: running.addr,
            metrics_addr: running.metrics_addr,
            node,
            task: running.task,
        }
    }

    /// Stops accepting, drains connections, and waits until the server has stopped.
    pub async fn shutdown(self) {
        self.node.shutdown.cancel();
        let _ = self.task.await;
    }
}
