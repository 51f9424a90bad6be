//! Configuration files: serde structs for `ringcache node` (the proxy's live in `proxy`), loaded
//! from TOML with unknown keys refused, then overridden by command-line flags.

use std::path::Path;

use serde::Deserialize;

use crate::error::Error;
pub use crate::server::ListenAddr;
use crate::server::{SecuritySettings, ServerSettings};
use crate::settings::{self, ConfigFile};

/// Default `drain_timeout`: off, so SIGTERM stops a node promptly as it stops memcached; a
/// node only drains where routers watch it (discovery), and the StatefulSet turns it on
/// there (`--drain-timeout=60`: a discovery round and about a million keys moved at the
/// migrator's default rate, inside a grace period of 75 s).
pub const DEFAULT_DRAIN_TIMEOUT: u64 = 0;
/// Default `drain_quiet`: above discovery's default interval (10 s), so every proxy has had a
/// round to notice the drain before it can end early.
pub const DEFAULT_DRAIN_QUIET: u64 = 15;

/// Everything `ringcache node` can be told; each field has memcached's default.
/// `config/node.toml` documents every key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
// `deny_unknown_fields` still refuses a key no field took, the flattened ones included: serde
// checks what `security` left (tests/config_files.rs).
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// `listen` (addresses, comma-separated; one starting `notls:` serves plain text beside
    /// TLS ones: memcached's `-l`/`-p`, `-l notls:ADDR`), `metrics_listen`, `max_connections`
    /// (memcached: `-c`) and `idle_timeout` (memcached: `-o idle_timeout`): top-level keys.
    #[serde(flatten)]
    pub server: ServerSettings,
    /// Memory budget for items, in MiB (memcached: `-m`).
    pub memory_limit_mb: u64,
    /// Largest item in bytes, header and key included (memcached: `-I`).
    pub max_item_size: usize,
    /// Worker threads (memcached: `-t`).
    pub threads: usize,
    /// Whether the `shutdown` command is obeyed (memcached: `-A`).
    pub enable_shutdown: bool,
    /// Seconds a node told to leave (SIGTERM) keeps serving while the routers move its keys
    /// off it (`src/node/drain.rs`); 0 stops at once, as before drains existed.
    pub drain_timeout: u64,
    /// Seconds without a request (other than `stats`/`version`) after a router has seen the
    /// node draining that end the drain early; keep it above discovery's `interval_secs`.
    pub drain_quiet: u64,
    /// The `verbosity` a node starts with, as `stats settings` reports it and the `verbosity`
    /// command changes it (memcached: `-v`, `-vv`, `-vvv`).
    pub verbosity: u32,
    /// The zone (failure domain) the node runs in, reported in `stats` as `zone`: routers
    /// that discover the node read it there (docs/placement.md, "Zones"). None by default.
    pub zone: Option<String>,
    /// TLS, authentication and the admin gate of the listener: top-level keys of the file.
    #[serde(flatten)]
    pub security: SecuritySettings,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            server: ServerSettings::default(),
            memory_limit_mb: 64,
            max_item_size: 1024 * 1024,
            threads: 4,
            enable_shutdown: false,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            drain_quiet: DEFAULT_DRAIN_QUIET,
            verbosity: 0,
            zone: None,
            security: SecuritySettings::default(),
        }
    }
}

impl ConfigFile for NodeConfig {
    fn validate(&self) -> Result<(), Error> {
        NodeConfig::validate(self)
    }
}

impl NodeConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<NodeConfig, Error> {
        settings::load(path)
    }

    /// Parses and validates a config from TOML text.
    pub fn from_toml(text: &str) -> Result<NodeConfig, Error> {
        settings::parse(text)
    }

    /// The node's zone, if it has one. Empty is none: Kubernetes' downward API gives an empty
    /// `RINGCACHE_ZONE` where the pod has no zone label (docs/operations.md, "Zones").
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref().filter(|z| !z.is_empty())
    }

    /// The drain's bounds (`drain_timeout`, `drain_quiet`); `None` when draining is off.
    pub fn drain(&self) -> Option<(std::time::Duration, std::time::Duration)> {
        (self.drain_timeout > 0).then(|| {
            (
                std::time::Duration::from_secs(self.drain_timeout),
                std::time::Duration::from_secs(self.drain_quiet),
            )
        })
    }

    /// The idle limit for client connections, if there is one.
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        self.server.idle_timeout()
    }

    /// The addresses of `listen`, each with whether TLS (when configured) applies to it.
    pub fn listen_addrs(&self) -> Vec<ListenAddr> {
        self.server
            .listen
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| match a.strip_prefix("notls:") {
                Some(addr) => ListenAddr {
                    addr: addr.to_string(),
                    tls: false,
                },
                None => ListenAddr {
                    addr: a.to_string(),
                    tls: true,
                },
            })
            .collect()
    }

    /// Refuses settings no server could run with.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(z) = self.zone() {
            ringcache_client::ring::check_zone(z)?;
        }
        if self.listen_addrs().is_empty() {
            return Err(Error::Config("listen needs at least one address".into()));
        }
        if self.memory_limit_mb == 0 {
            return Err(Error::Config("memory_limit_mb must be at least 1".into()));
        }
        if self.max_item_size < 1024 {
            return Err(Error::Config(
                "max_item_size must be at least 1024 bytes".into(),
            ));
        }
        if self.max_item_size as u64 > self.memory_limit_mb * 1024 * 1024 / 2 {
            return Err(Error::Config(
                "max_item_size cannot be larger than half of memory_limit_mb".into(),
            ));
        }
        if self.threads == 0 {
            return Err(Error::Config("threads must be at least 1".into()));
        }
        self.server.validate()?;
        self.security.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_memcacheds() {
        let c = NodeConfig::from_toml("").unwrap();
        assert_eq!(c, NodeConfig::default());
        assert_eq!(c.server.listen, "127.0.0.1:11211");
        assert_eq!(c.memory_limit_mb, 64);
        assert_eq!(c.max_item_size, 1 << 20);
        assert_eq!(c.server.max_connections, 1024);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(NodeConfig::from_toml("listn = \"x\"").is_err());
        assert!(NodeConfig::from_toml("threads = 0").is_err());
        assert!(NodeConfig::from_toml("memory_limit_mb = 1\nmax_item_size = 1048576").is_err());
    }

    #[test]
    fn listen_is_a_list_with_notls_addresses() {
        let c = NodeConfig::from_toml("listen = \"127.0.0.1:1, notls:[::1]:2\"").unwrap();
        assert_eq!(
            c.listen_addrs(),
            [
                ListenAddr {
                    addr: "127.0.0.1:1".into(),
                    tls: true
                },
                ListenAddr {
                    addr: "[::1]:2".into(),
                    tls: false
                }
            ]
        );
        assert!(NodeConfig::from_toml("listen = \" , \"").is_err());
    }

    #[test]
    fn idle_timeout_is_off_unless_set() {
        assert_eq!(NodeConfig::default().idle_timeout(), None);
        let c = NodeConfig::from_toml("idle_timeout = 30").unwrap();
        assert_eq!(c.idle_timeout(), Some(std::time::Duration::from_secs(30)));
    }

    #[test]
    fn drain_is_off_by_default_as_memcached_and_a_timeout_turns_it_on() {
        assert_eq!(NodeConfig::default().drain(), None, "SIGTERM stops at once");
        assert_eq!(
            NodeConfig::from_toml("drain_timeout = 0").unwrap().drain(),
            None
        );
        let c = NodeConfig::from_toml("drain_timeout = 5\ndrain_quiet = 2").unwrap();
        assert_eq!(
            c.drain(),
            Some((
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(2)
            ))
        );
    }

    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../config/node.toml");
        let c = NodeConfig::from_toml(text).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:11211");
    }
}
