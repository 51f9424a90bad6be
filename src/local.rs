//! `ringcache local`: a whole cluster in one process — N nodes on loopback ports it picks and a
//! proxy in front of them — for trying ringcache out and for tests. Ctrl-C stops everything.

use std::sync::Arc;

use ringcache_client::cluster_config::{RingSettings, DEFAULT_REPLICAS};
use ringcache_client::ring::NodeSpec;
use serde::Deserialize;

use crate::config::NodeConfig;
use crate::error::Error;
use crate::node::{self, clock::SystemClock, NodeHandle};
use crate::proxy::{self, ProxyConfig, ProxyHandle};
use crate::server::gate::{Access, CommandsConfig};
use crate::server::{SecuritySettings, ServerSettings};
use crate::settings::ConfigFile;

/// What `ringcache local` starts. `config/local.toml` documents every key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
// `deny_unknown_fields` still refuses a key no field took, the flattened ones included: serde
// checks what `security` left (tests/config_files.rs).
#[serde(deny_unknown_fields, default)]
pub struct LocalConfig {
    /// Cache nodes, each on a loopback port the OS picks.
    pub nodes: usize,
    /// Copies of each key.
    pub replicas: usize,
    /// The proxy's `listen`, `metrics_listen`, `max_connections` and `idle_timeout`:
    /// top-level keys of the file, as in the proxy's.
    #[serde(flatten)]
    pub server: ServerSettings,
    /// Memory budget of each node, MiB.
    pub memory_limit_mb: u64,
    /// TLS, authentication and the admin gate of the proxy's listener (the nodes listen on
    /// loopback, without them): top-level keys of the file, as in the proxy's. `[commands]`
    /// keeps the proxy's defaults except that `flush_all` is allowed unless set: a cluster for
    /// trying things out works as one memcached does.
    #[serde(flatten)]
    pub security: SecuritySettings,
}

impl Default for LocalConfig {
    fn default() -> Self {
        LocalConfig {
            nodes: 3,
            replicas: DEFAULT_REPLICAS,
            server: ServerSettings::default(),
            memory_limit_mb: NodeConfig::default().memory_limit_mb,
            security: SecuritySettings::default(),
        }
    }
}

impl ConfigFile for LocalConfig {
    fn validate(&self) -> Result<(), Error> {
        LocalConfig::validate(self)
    }
}

impl LocalConfig {
    /// Refuses a cluster that cannot be started.
    pub fn validate(&self) -> Result<(), Error> {
        if self.nodes == 0 {
            return Err(Error::Config("nodes must be at least 1".into()));
        }
        self.server.validate()?;
        self.security.validate()?;
        Ok(())
    }
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
pub async fn start(local: &LocalConfig) -> Result<LocalCluster, Error> {
    local.validate()?;
    let mut nodes = Vec::with_capacity(local.nodes);
    for _ in 0..local.nodes {
        let cfg = NodeConfig {
            server: ServerSettings::listening("127.0.0.1:0"),
            memory_limit_mb: local.memory_limit_mb,
            threads: 1,
            ..NodeConfig::default()
        };
        nodes.push(node::start(cfg, Arc::new(SystemClock)).await?);
    }
    let specs = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| NodeSpec::new(n.addr.to_string()).named(format!("node{}", i + 1)))
        .collect();
    let cfg = ProxyConfig {
        server: local.server.clone(),
        ring: RingSettings {
            replicas: local.replicas,
            ..RingSettings::default()
        },
        nodes: specs,
        // A cluster for trying things out: flush_all works as on one memcached.
        security: SecuritySettings {
            commands: CommandsConfig {
                flush_all: local.security.commands.flush_all.or(Some(Access::Allow)),
                ..local.security.commands.clone()
            },
            ..local.security.clone()
        },
        ..ProxyConfig::default()
    };
    let proxy = proxy::start(cfg, None).await?;
    Ok(LocalCluster { nodes, proxy })
}
