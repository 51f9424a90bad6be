//! The shared cluster file shape (DESIGN §3): `[ring]` and `[[nodes]]`, read by the proxy,
//! `ringcache ring locate/diff` and the embedded client's loader. Other top-level keys (the
//! proxy's own settings) are ignored here; inside `[ring]` and `[[nodes]]` unknown keys are
//! refused.

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
use crate::ring::{HashKind, NodeSpec, Ring};

/// `[ring]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RingSettings {
    /// Placement: "xxh3" (default) or "ketama".
    pub hash: HashKind,
    /// Points per node per unit of weight (default 160).
    pub vnodes: u32,
    /// Copies of each key (default 2; clamped to the number of nodes).
    pub replicas: usize,
}

impl Default for RingSettings {
    fn default() -> Self {
        RingSettings {
            hash: HashKind::Xxh3,
            vnodes: 160,
            replicas: 2,
        }
    }
}

/// The cluster part of a config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
pub struct ClusterConfig {
    #[serde(default)]
    pub ring: RingSettings,
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
}

impl ClusterConfig {
    /// Parses the `[ring]` and `[[nodes]]` of a TOML document.
    pub fn from_toml(text: &str) -> Result<ClusterConfig, Error> {
        let c: ClusterConfig = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        if c.ring.vnodes == 0 || c.ring.replicas == 0 {
            return Err(Error::Config(
                "vnodes and replicas must be at least 1".into(),
            ));
        }
        Ring::new(&c.nodes, c.ring.hash, c.ring.vnodes)?;
        Ok(c)
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<ClusterConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        ClusterConfig::from_toml(&text)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The ring this config describes.
    pub fn ring(&self) -> Result<Ring, Error> {
        Ring::new(&self.nodes, self.ring.hash, self.ring.vnodes)
    }
}
