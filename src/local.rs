//! `ringcache local`: a whole cluster in one process — N nodes on loopback ports it picks and a
//! proxy in front of them — for trying ringcache out and for tests. Ctrl-C stops everything.

use std::sync::Arc;

use ringcache_client::cluster_config::RingSettings;
use ringcache_client::ring::NodeSpec;

use crate::cli::SecurityArgs;
use crate::config::NodeConfig;
use crate::error::Error;
use crate::node::{self, clock::SystemClock, NodeHandle};
use crate::proxy::{self, ProxyConfig, ProxyHandle};
use crate::server::gate::{Access, CommandsConfig};

/// What `ringcache local` starts.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub nodes: usize,
    pub replicas: usize,
    pub listen: String,
    pub metrics_listen: Option<String>,
    pub memory_limit_mb: u64,
    /// TLS and auth of the proxy's listener.
    pub security: SecurityArgs,
}

/// A running local cluster.
pub struct LocalCluster {
    pub nodes: Vec<NodeHandle>,
    pub proxy: ProxyHandle,
}

impl LocalCluster {
    /// Stops the proxy first (so clients see it go), then the nodes.
    pub async fn shutdown(self) {
        self.proxy.shutdown().await;
        for n in self.nodes {
            n.shutdown().await;
        }
    }
}

/// Starts the nodes and the proxy on the current runtime.
pub async fn start(opts: &LocalOptions) -> Result<LocalCluster, Error> {
    if opts.nodes == 0 {
        return Err(Error::Config("--nodes must be at least 1".into()));
    }
    let mut nodes = Vec::with_capacity(opts.nodes);
    for _ in 0..opts.nodes {
        let cfg = NodeConfig {
            listen: "127.0.0.1:0".into(),
            memory_limit_mb: opts.memory_limit_mb,
            threads: 1,
            ..NodeConfig::default()
        };
        nodes.push(node::start(cfg, Arc::new(SystemClock)).await?);
    }
    let specs = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeSpec {
            addr: n.addr.to_string(),
            name: Some(format!("node{}", i + 1)),
            weight: 1,
        })
        .collect();
    let cfg = ProxyConfig {
        listen: opts.listen.clone(),
        metrics_listen: opts.metrics_listen.clone(),
        ring: RingSettings {
            replicas: opts.replicas,
            ..RingSettings::default()
        },
        nodes: specs,
        ssl_chain_cert: opts.security.ssl_chain_cert.clone(),
        ssl_key: opts.security.ssl_key.clone(),
        ssl_ca_cert: opts.security.ssl_ca_cert.clone(),
        ssl_verify_mode: opts.security.ssl_verify_mode.unwrap_or(0),
        auth_file: opts.security.auth_file.clone(),
        admin_users: opts.security.admin_users.clone(),
        // A cluster for trying things out: flush_all works as on one memcached.
        commands: CommandsConfig {
            flush_all: Some(Access::Allow),
            ..CommandsConfig::default()
        },
        ..ProxyConfig::default()
    };
    let proxy = proxy::start(cfg, None).await?;
    Ok(LocalCluster { nodes, proxy })
}
