//! The settings every server has — where it listens, where it publishes metrics, how many
//! client connections it takes and how long an idle one may stay — declared once: as config
//! keys ([`ServerSettings`], flattened into `NodeConfig`, `ProxyConfig` and `LocalConfig`) and
//! as flags ([`ServerArgs`], flattened into each program's command line, whose `--help`
//! shows the defaults of [`ServerSettings::default`]).
//!
//! A new server setting is a field here (in both structs) and its paragraph in `config/`
//! (docs/architecture.md, "Settings"); a reload keeps it until a restart unless
//! [`ServerSettings::reloaded`] says otherwise.

use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use toml::Table;

use super::security::SecurityArgs;
use crate::error::Error;

/// memcached's default address: loopback, never every interface unless asked.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:11211";
/// memcached's `-c` default.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The keys of a server's listener, top-level in each program's file. No
/// `deny_unknown_fields`: serde does not support it on a flattened struct; each program's
/// own struct refuses whatever key no field took.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ServerSettings {
    /// Where memcached clients connect (a node takes a comma list, `notls:` ones among them:
    /// `NodeConfig::listen_addrs`).
    pub listen: String,
    /// Address for Prometheus `/metrics` and `/ready`; none by default.
    pub metrics_listen: Option<String>,
    /// Simultaneous client connections (memcached: `-c`).
    pub max_connections: usize,
    /// Seconds a client connection may make no progress before it is closed; 0 (the default,
    /// as in memcached) never closes one (memcached: `-o idle_timeout`).
    pub idle_timeout: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: DEFAULT_LISTEN.into(),
            metrics_listen: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: 0,
        }
    }
}

impl ServerSettings {
    /// The defaults, listening on `addr` (tests and `ringcache local` pass `127.0.0.1:0`).
    pub fn listening(addr: &str) -> ServerSettings {
        ServerSettings {
            listen: addr.into(),
            ..ServerSettings::default()
        }
    }

    /// Refuses settings no server could run with.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_connections == 0 {
            return Err(Error::Config("max_connections must be at least 1".into()));
        }
        Ok(())
    }

    /// The idle limit for client connections, if there is one.
    pub fn idle_timeout(&self) -> Option<Duration> {
        (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout))
    }

    /// `new` as a reload applies it: `idle_timeout` (read by each connection accepted from
    /// then on) changes; everything else was used when the listeners were bound and keeps
    /// its running value, so a setting added here is restart-only unless named here.
    pub fn reloaded(&self, new: &ServerSettings) -> ServerSettings {
        ServerSettings {
            idle_timeout: new.idle_timeout,
            ..self.clone()
        }
    }

    /// The names of the settings of `new` a reload does not apply ([`ServerSettings::reloaded`]).
    pub fn restart_only_changes(&self, new: &ServerSettings) -> Vec<String> {
        let (kept, asked) = (keys(&self.reloaded(new)), keys(new));
        let mut names: Vec<String> = kept
            .keys()
            .chain(asked.keys())
            .filter(|k| kept.get(*k) != asked.get(*k))
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// `s` as the table its keys make (an unset option has no key); every field is a plain value,
/// so the conversion cannot fail.
fn keys(s: &ServerSettings) -> Table {
    Table::try_from(s).unwrap_or_default()
}

/// The flags of [`ServerSettings`] (those every program has), and the listener's TLS and
/// authentication flags; each overrides the key of its name. `listen` is each program's own
/// flag: a node's takes memcached's `-l` list and `-p`, a proxy's one address.
#[derive(Debug, Args, Default, Clone, Serialize)]
pub struct ServerArgs {
    /// Address for Prometheus /metrics and /ready; off unless given.
    #[arg(long, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    /// Simultaneous client connections (memcached -c).
    #[arg(
        short = 'c',
        long,
        visible_alias = "conn-limit",
        value_name = "N",
        default_value_t = ServerSettings::default().max_connections
    )]
    pub max_connections: usize,
    /// Close a client connection idle this many seconds; 0 never (memcached -o idle_timeout).
    #[arg(long, value_name = "SECS", default_value_t = ServerSettings::default().idle_timeout)]
    pub idle_timeout: u64,
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_applies_idle_timeout_only() {
        let old = ServerSettings::default();
        let new = ServerSettings {
            listen: "127.0.0.1:2".into(),
            metrics_listen: Some("127.0.0.1:3".into()),
            max_connections: 5,
            idle_timeout: 7,
        };
        assert_eq!(
            old.restart_only_changes(&new),
            ["listen", "max_connections", "metrics_listen"]
        );
        let next = old.reloaded(&new);
        assert_eq!(
            next,
            ServerSettings {
                idle_timeout: 7,
                ..old
            }
        );
    }
}
