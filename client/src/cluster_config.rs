//! The cluster part of a config file (docs/placement.md): `[ring]` and `[[nodes]]`, as read by the
//! proxy, by `ringcache ring locate/diff` and by the embedded client's loader.
//!
//! ```toml
//! [ring]
//! hash = "xxh3"      # or "ketama"; default "xxh3"
//! vnodes = 160       # points per node per unit of weight (xxh3 only); default 160
//! replicas = 2       # copies of each key; default 2, clamped to the number of nodes
//! [[nodes]]
//! addr = "127.0.0.1:11311"
//! name = "a"         # optional; defaults to addr
//! weight = 1         # optional; default 1
//! ```
//!
//! Instead of `[[nodes]]`, a `[discovery]` table may name DNS records the node list is read
//! from ([`DiscoverySettings`], docs/cluster.md); start it with [`crate::discovery::Discovery`].
//!
//! [`RingSettings`] and [`NodeSpec`] refuse unknown keys, so a typo inside `[ring]` or
//! `[[nodes]]` is an error rather than a silently different placement. [`ClusterConfig`]
//! ignores every other top-level key (`listen`, `metrics_listen`, the proxy's timeouts…) so it
//! can read a proxy's file; a program with its own top-level keys embeds the two parts in its
//! own `deny_unknown_fields` struct instead (as the proxy's `ProxyConfig` does) and calls
//! [`RingSettings::build`] to validate them together.

use std::path::Path;

use serde::Deserialize;

pub use crate::discovery::DiscoverySettings;
use crate::error::Error;
pub use crate::ring::DEFAULT_REPLICAS;
pub use crate::ring::{HashKind, NodeSpec};
use crate::ring::{Ring, DEFAULT_VNODES};
use crate::router::migrate::RebalanceOptions;

/// `[ring]`: how keys are placed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingSettings {
    /// Placement: "xxh3" (default) or "ketama".
    pub hash: HashKind,
    /// Points per node per unit of weight (default 160; ketama ignores it).
    pub vnodes: u32,
    /// Copies of each key (default 2; a larger number than there are nodes means "every node").
    pub replicas: usize,
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings {
            hash: HashKind::Xxh3,
            vnodes: DEFAULT_VNODES,
            replicas: DEFAULT_REPLICAS,
        }
    }
}

impl RingSettings {
    /// Refuses settings no ring can be built with.
    pub fn validate(&self) -> Result<(), Error> {
        if self.vnodes == 0 {
            return Err(Error::Config("[ring] vnodes must be at least 1".into()));
        }
        if self.replicas == 0 {
            return Err(Error::Config("[ring] replicas must be at least 1".into()));
        }
        Ok(())
    }

    /// Validates these settings with `nodes` and builds their ring.
    pub fn build(&self, nodes: &[NodeSpec]) -> Result<Ring, Error> {
        self.validate()?;
        Ring::new(nodes, self.hash, self.vnodes)
    }

    /// The replica count lookups will actually give with `node_count` nodes.
    pub fn effective_replicas(&self, node_count: usize) -> usize {
        self.replicas.min(node_count)
    }
}

/// `[rebalance]`: what a membership change does with the data (docs/cluster.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RebalanceSettings {
    /// Keep the old ring through a transition and move the data (default true).
    pub enabled: bool,
    /// Run the migrator in this process (default true).
    pub migrate: bool,
    /// Keys moved per second; 0 = unlimited (default 20000).
    pub rate: u32,
    /// Keys in flight at once (default 32).
    pub concurrency: usize,
    /// Seconds a process that does not migrate keeps reading through the old ring (default 600).
    pub hold_secs: u64,
    /// Re-warm a node back from being down, then lift its fence (default true).
    pub rewarm: bool,
}

impl Default for RebalanceSettings {
    fn default() -> Self {
        let o = RebalanceOptions::default();
        RebalanceSettings {
            enabled: o.enabled,
            migrate: o.migrate,
            rate: o.rate,
            concurrency: o.concurrency,
            hold_secs: o.hold.as_secs(),
            rewarm: o.rewarm,
        }
    }
}

impl RebalanceSettings {
    /// The client options these settings stand for.
    pub fn options(&self) -> Result<RebalanceOptions, Error> {
        if self.concurrency == 0 {
            return Err(Error::Config(
                "[rebalance] concurrency must be at least 1".into(),
            ));
        }
        Ok(RebalanceOptions {
            enabled: self.enabled,
            migrate: self.migrate,
            rate: self.rate,
            concurrency: self.concurrency,
            hold: std::time::Duration::from_secs(self.hold_secs),
            rewarm: self.rewarm,
        })
    }
}

/// The cluster part of a config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct ClusterConfig {
    #[serde(default)]
    pub ring: RingSettings,
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// The node list from DNS instead of `[[nodes]]`.
    #[serde(default)]
    pub discovery: Option<DiscoverySettings>,
}

impl ClusterConfig {
    /// Parses and validates the `[ring]` and `[[nodes]]` of a TOML document (other top-level
    /// keys are ignored). At least one node is required, or `[discovery]` (not both): a file
    /// without either is far more likely a misspelt table than a wish for an empty cluster.
    pub fn from_toml(text: &str) -> Result<ClusterConfig, Error> {
        let c: ClusterConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        match (&c.discovery, c.nodes.is_empty()) {
            (None, true) => return Err(Error::Config("no [[nodes]] entries".into())),
            (Some(_), false) => {
                return Err(Error::Config(
                    "[[nodes]] and [discovery] exclude each other".into(),
                ))
            }
            (Some(d), true) => {
                d.validate()?;
            }
            (None, false) => {}
        }
        c.ring.build(&c.nodes)?;
        Ok(c)
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<ClusterConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        ClusterConfig::from_toml(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The ring this config describes.
    pub fn ring(&self) -> Result<Ring, Error> {
        self.ring.build(&self.nodes)
    }

    /// Copies of each key lookups give: `[ring] replicas` clamped to the number of nodes.
    pub fn replicas(&self) -> usize {
        self.ring.effective_replicas(self.nodes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_proxy_keys() {
        let c = ClusterConfig::from_toml(
            "listen = \"127.0.0.1:11211\"\nmetrics_listen = \"127.0.0.1:9151\"\n\
             request_timeout_ms = 5\n[[nodes]]\naddr = \"127.0.0.1:11311\"\n",
        )
        .unwrap();
        assert_eq!(c.ring, RingSettings::default());
        assert_eq!(c.ring.replicas, 2);
        assert_eq!(c.replicas(), 1, "clamped to one node");
        assert_eq!(c.nodes, vec![NodeSpec::new("127.0.0.1:11311")]);
    }

    #[test]
    fn full_shape() {
        let c = ClusterConfig::from_toml(
            "[ring]\nhash = \"ketama\"\nvnodes = 100\nreplicas = 3\n\
             [[nodes]]\naddr = \"10.0.0.1:11211\"\nname = \"a\"\nweight = 2\n\
             [[nodes]]\naddr = \"[::1]:11212\"\n",
        )
        .unwrap();
        assert_eq!(c.ring.hash, HashKind::Ketama);
        assert_eq!((c.ring.vnodes, c.ring.replicas), (100, 3));
        assert_eq!(
            c.nodes[0],
            NodeSpec::new("10.0.0.1:11211").named("a").weighted(2)
        );
        assert_eq!(c.replicas(), 2);
        assert_eq!(c.ring().unwrap().nodes().len(), 2);
    }

    #[test]
    fn refusals() {
        let node = "[[nodes]]\naddr = \"127.0.0.1:1\"\n";
        for bad in [
            format!("[ring]\nhahs = \"xxh3\"\n{node}"),
            format!("[ring]\nhash = \"md5\"\n{node}"),
            format!("[ring]\nvnodes = 0\n{node}"),
            format!("[ring]\nreplicas = 0\n{node}"),
            "[[nodes]]\naddr = \"127.0.0.1:1\"\nwieght = 2\n".to_string(),
            "[[nodes]]\naddr = \"127.0.0.1\"\n".to_string(),
            "[[nodes]]\naddr = \"127.0.0.1:1\"\nweight = 0\n".to_string(),
            format!("{node}{node}"),
            "[[node]]\naddr = \"127.0.0.1:1\"\n".to_string(),
            String::new(),
        ] {
            assert!(
                matches!(ClusterConfig::from_toml(&bad), Err(Error::Config(_))),
                "accepted {bad:?}"
            );
        }
    }

    #[test]
    fn discovery_instead_of_nodes() {
        let c = ClusterConfig::from_toml(
            "[discovery]\nsources = [\"dnssrv+_memcache._tcp.nodes.ns.svc\"]\ninterval_secs = 5\n",
        )
        .unwrap();
        assert!(c.nodes.is_empty());
        assert_eq!(c.discovery.unwrap().interval_secs, 5);
        for bad in [
            "[discovery]\nsources = [\"dns+x:1\"]\n[[nodes]]\naddr = \"127.0.0.1:1\"\n",
            "[discovery]\nsources = [\"x:1\"]\n",
            "[discovery]\nsources = [\"dns+x:1\"]\nintervall_secs = 5\n",
        ] {
            assert!(ClusterConfig::from_toml(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let err = ClusterConfig::load(Path::new("/nonexistent/ringcache.toml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/ringcache.toml"),
            "{err}"
        );
    }
}
