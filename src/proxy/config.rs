//! The proxy's configuration file: the shared cluster shape (`[ring]`, `[[nodes]]`, read by
//! `ringcache ring` and the embedded client too) plus the proxy's own server settings.

use std::path::Path;
use std::time::Duration;

use ringcache_client::cluster_config::{RebalanceSettings, RingSettings};
use ringcache_client::discovery::DiscoverySettings;
use ringcache_client::health::HintLimits;
use ringcache_client::ring::NodeSpec;
use ringcache_client::transport::{Connector, TransportSettings};
use ringcache_client::{Ack, LockOptions, RouterOptions};
use serde::Deserialize;

use crate::error::Error;
use crate::server::{SecuritySettings, ServerSettings};
use crate::settings::{self, ConfigFile};

/// Everything `ringcache proxy` can be told. `config/proxy.toml` documents every key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
// `deny_unknown_fields` still refuses a key no field took, the flattened ones included: serde
// checks what `security` left (tests/config_files.rs).
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// `listen` (the address clients connect to), `metrics_listen`, `max_connections` and
    /// `idle_timeout`: top-level keys of the file.
    #[serde(flatten)]
    pub server: ServerSettings,
    /// Largest item accepted from clients (bigger ones are refused before reaching a node).
    pub max_item_size: usize,
    /// Limit on connecting to a node, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Limit on one request to a node, in milliseconds; past it the next replica is tried.
    pub request_timeout_ms: u64,
    /// Consecutive failures that mark a node down.
    pub failure_limit: u32,
    /// Milliseconds a key's primary must be down before its conditional writes (`incr`,
    /// `add`, `cas`, …) run on the first in-sync replica instead of being refused; 0 fails
    /// over at once, `"never"` never does (`None`).
    #[serde(deserialize_with = "ms_or_never")]
    pub conditional_failover_after_ms: Option<u64>,
    /// Pipelined connections kept to each node.
    pub connections_per_node: usize,
    /// Replicas that must acknowledge a write: "primary", "quorum" or "all".
    #[serde(with = "AckName")]
    pub ack: Ack,
    /// Requests one client connection may have in flight before the proxy stops reading it.
    pub max_inflight_per_connection: usize,
    /// Worker threads of `ringcache proxy` (1: everything on one thread); restart to change.
    pub threads: usize,
    /// Reply bytes one client connection may have waiting to be written; past it the proxy
    /// stops reading that connection (and starting its requests) until the client reads.
    pub max_pending_bytes_per_connection: usize,
    /// Reply bytes all client connections together may have waiting; past it every connection
    /// stops reading until replies drain.
    pub max_pending_bytes: usize,
    /// Keys a node that is down may miss before it needs a full flush and re-warm on return
    /// (hinted handoff; per node).
    pub hint_max_keys: usize,
    /// Bytes of keys remembered per down node, likewise.
    pub hint_max_bytes: usize,
    /// With `ack = "quorum"`, `add` is a lock (docs/locks.md): a node counts toward its majority
    /// only after it has been up this many seconds plus one, the longest lock TTL clients may
    /// use plus a margin. Every router of one cluster must use the same value.
    pub lock_max_ttl: u64,
    /// TLS, authentication and the admin gate of the listener clients reach: top-level keys
    /// of the file.
    #[serde(flatten)]
    pub security: SecuritySettings,
    /// How the proxy reaches the nodes: TLS, credentials.
    pub backend: TransportSettings,
    pub ring: RingSettings,
    /// What membership changes do with the data; applies on restart.
    pub rebalance: RebalanceSettings,
    pub nodes: Vec<NodeSpec>,
    /// The node list from DNS instead of `[[nodes]]` (docs/cluster.md, "Discovery"); applies
    /// on restart. While it is set, `nodes` holds the list discovery applied last.
    pub discovery: Option<DiscoverySettings>,
    /// The zone the proxy runs in (flag `--zone`, environment `RINGCACHE_ZONE`): reads ask a
    /// key's owner in this zone first (docs/placement.md, "Zones"); applies on restart.
    /// Read through [`ProxyConfig::zone`] (empty is none).
    pub zone: Option<String>,
}

/// `conditional_failover_after_ms`: a number of milliseconds, or `"never"` (`None`).
fn ms_or_never<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum MsOrWord {
        Ms(u64),
        Word(String),
    }
    match MsOrWord::deserialize(d)? {
        MsOrWord::Ms(ms) => Ok(Some(ms)),
        MsOrWord::Word(w) if w == "never" => Ok(None),
        MsOrWord::Word(w) => Err(serde::de::Error::custom(format!(
            "expected milliseconds or \"never\", found {w:?}"
        ))),
    }
}

/// `ack`'s names in the file: serde reads them straight into the client's [`Ack`] (a name
/// that is not one of these is refused with the list of those that are).
#[derive(Deserialize)]
#[serde(remote = "Ack", rename_all = "lowercase")]
enum AckName {
    Primary,
    Quorum,
    All,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            server: ServerSettings::default(),
            max_item_size: 1024 * 1024,
            connect_timeout_ms: 1000,
            request_timeout_ms: 1000,
            failure_limit: 3,
            conditional_failover_after_ms: Some(
                ringcache_client::DEFAULT_CONDITIONAL_FAILOVER_AFTER.as_millis() as u64,
            ),
            connections_per_node: 2,
            ack: Ack::All,
            max_inflight_per_connection: 1024,
            threads: 1,
            max_pending_bytes_per_connection: 64 * 1024 * 1024,
            max_pending_bytes: 1024 * 1024 * 1024,
            hint_max_keys: HintLimits::default().max_keys,
            hint_max_bytes: HintLimits::default().max_bytes,
            lock_max_ttl: LockOptions::default().max_ttl.as_secs(),
            security: SecuritySettings::default(),
            backend: TransportSettings::default(),
            ring: RingSettings::default(),
            rebalance: RebalanceSettings::default(),
            nodes: Vec::new(),
            discovery: None,
            zone: None,
        }
    }
}

impl ConfigFile for ProxyConfig {
    fn validate(&self) -> Result<(), Error> {
        ProxyConfig::validate(self)
    }
}

impl ProxyConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<ProxyConfig, Error> {
        settings::load(path)
    }

    /// Parses and validates a config from TOML text.
    pub fn from_toml(text: &str) -> Result<ProxyConfig, Error> {
        settings::parse(text)
    }

    /// Refuses settings the proxy could not run with.
    pub fn validate(&self) -> Result<(), Error> {
        match &self.discovery {
            Some(_) if !self.nodes.is_empty() => {
                return Err(Error::Config(
                    "[[nodes]] and [discovery] exclude each other: the node list comes from \
                     one or the other"
                        .into(),
                ));
            }
            Some(d) => {
                d.validate()?;
            }
            None if self.nodes.is_empty() => {
                return Err(Error::Config(
                    "at least one [[nodes]] entry (or [discovery]) is needed".into(),
                ));
            }
            None => {}
        }
        // Building the ring checks replicas, vnodes, duplicates, weights and addresses.
        self.ring.build(&self.nodes)?;
        self.rebalance.options()?;
        self.server.validate()?;
        if self.connections_per_node == 0 || self.threads == 0 {
            return Err(Error::Config(
                "connections_per_node and threads must be at least 1".into(),
            ));
        }
        if self.max_pending_bytes_per_connection < self.max_item_size
            || self.max_pending_bytes < self.max_pending_bytes_per_connection
        {
            return Err(Error::Config(
                "max_pending_bytes_per_connection must be at least max_item_size, and \
                 max_pending_bytes at least max_pending_bytes_per_connection"
                    .into(),
            ));
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err(Error::Config("timeouts must be at least 1 ms".into()));
        }
        if self.failure_limit == 0 {
            return Err(Error::Config("failure_limit must be at least 1".into()));
        }
        if self.lock_max_ttl < 2 {
            return Err(Error::Config(
                "lock_max_ttl must be at least 2 seconds".into(),
            ));
        }
        self.security.validate()?;
        if let Some(z) = self.zone() {
            // The same spelling rule as a node's zone, which it is compared with.
            ringcache_client::ring::check_zone(z)?;
        }
        if self.hint_max_keys == 0 || self.hint_max_bytes == 0 {
            return Err(Error::Config(
                "hint_max_keys and hint_max_bytes must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The settings of `new` that differ from `self` and take effect only on a restart, by
    /// their names in the file. A reload keeps the running values of these.
    pub fn restart_only_changes(&self, new: &ProxyConfig) -> Vec<String> {
        let mut out = self.server.restart_only_changes(&new.server);
        let mut next = new.clone();
        for (name, keep) in RESTART_ONLY {
            if keep(self, &mut next) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// `new` with the restart-only settings of `self`: what is in force after a reload. Under
    /// discovery the node list stays the one discovery applied (a file's `[[nodes]]` is
    /// ignored then).
    pub fn reloaded(&self, new: &ProxyConfig) -> ProxyConfig {
        let mut next = new.clone();
        next.server = self.server.reloaded(&new.server);
        for (_, keep) in RESTART_ONLY {
            keep(self, &mut next);
        }
        if self.discovery.is_some() {
            next.nodes = self.nodes.clone();
        }
        next
    }

    /// The proxy's zone, if it has one. Empty is none: Kubernetes' downward API gives an empty
    /// `RINGCACHE_ZONE` where the pod has no zone label (docs/operations.md, "Zones").
    pub fn zone(&self) -> Option<&str> {
        self.zone.as_deref().filter(|z| !z.is_empty())
    }

    /// The lock settings quorum `add`s are judged by.
    pub fn lock_options(&self) -> LockOptions {
        LockOptions {
            max_ttl: Duration::from_secs(self.lock_max_ttl),
            ..LockOptions::default()
        }
    }

    /// The idle limit for client connections, if there is one.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.server.idle_timeout()
    }

    /// The embedded client's options for this config.
    pub fn client_options(&self) -> Result<RouterOptions, Error> {
        Ok(RouterOptions {
            replicas: self.ring.replicas,
            vnodes: self.ring.vnodes,
            hash: self.ring.hash,
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            connections_per_node: self.connections_per_node,
            failure_limit: self.failure_limit,
            conditional_failover_after: self
                .conditional_failover_after_ms
                .map(Duration::from_millis),
            ack: self.ack,
            rebalance: self.rebalance.options()?,
            max_item_size: self.max_item_size,
            hints: HintLimits {
                max_keys: self.hint_max_keys,
                max_bytes: self.hint_max_bytes,
            },
            transport: Connector::new(&self.backend)?,
            zone: self.zone().map(str::to_string),
            ..RouterOptions::default()
        })
    }
}

/// Puts the running value of one setting into what a reload would apply; true when the two
/// differed.
type Keep = fn(running: &ProxyConfig, next: &mut ProxyConfig) -> bool;

/// `Keep` for the field at `path`.
macro_rules! keep {
    ($($field:ident).+) => {
        |running: &ProxyConfig, next: &mut ProxyConfig| {
            let differs = running.$($field).+ != next.$($field).+;
            next.$($field).+ = running.$($field).+.clone();
            differs
        }
    };
}

/// The proxy's own settings a reload does not change, by their names in the file, listed once
/// for [`ProxyConfig::restart_only_changes`] and [`ProxyConfig::reloaded`] (the server's are
/// [`ServerSettings::reloaded`]'s): the runtime's threads, the node connections, the
/// migrator, the listener's TLS and the backends' transport are built once, at start.
const RESTART_ONLY: [(&str, Keep); 7] = [
    ("threads", keep!(threads)),
    ("connections_per_node", keep!(connections_per_node)),
    ("[rebalance]", keep!(rebalance)),
    ("TLS, auth and [commands]", keep!(security)),
    ("[backend]", keep!(backend)),
    ("[discovery]", keep!(discovery)),
    ("zone", keep!(zone)),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented example is a config the proxy takes, with every key at its default.
    #[test]
    fn shipped_example_parses_and_validates() {
        let cfg = ProxyConfig::from_toml(include_str!("../../config/proxy.toml")).unwrap();
        assert_eq!(cfg.nodes.len(), 3);
        assert_eq!(cfg.hint_max_keys, HintLimits::default().max_keys);
        assert_eq!(cfg.failure_limit, ProxyConfig::default().failure_limit);
        assert_eq!(cfg.idle_timeout(), None);
        assert_eq!(cfg.max_pending_bytes_per_connection, 64 << 20);
        assert_eq!(cfg.max_pending_bytes, 1 << 30);
    }

    #[test]
    fn ack_is_read_by_name_and_a_wrong_name_is_refused() {
        let nodes = "[[nodes]]\naddr = \"127.0.0.1:1\"\n";
        for (name, want) in [
            ("primary", Ack::Primary),
            ("quorum", Ack::Quorum),
            ("all", Ack::All),
        ] {
            let cfg = ProxyConfig::from_toml(&format!("ack = \"{name}\"\n{nodes}")).unwrap();
            assert_eq!(cfg.ack, want);
        }
        let e = ProxyConfig::from_toml(&format!("ack = \"most\"\n{nodes}")).unwrap_err();
        assert!(e.to_string().contains("primary"), "{e}");
    }

    #[test]
    fn conditional_failover_takes_milliseconds_or_never() {
        let nodes = "[[nodes]]\naddr = \"127.0.0.1:1\"\n";
        let at = |line: &str| {
            ProxyConfig::from_toml(&format!("{line}\n{nodes}"))
                .map(|c| c.client_options().unwrap().conditional_failover_after)
        };
        assert_eq!(
            at("").unwrap(),
            Some(ringcache_client::DEFAULT_CONDITIONAL_FAILOVER_AFTER)
        );
        assert_eq!(
            at("conditional_failover_after_ms = 0").unwrap(),
            Some(Duration::ZERO)
        );
        assert_eq!(
            at("conditional_failover_after_ms = 2500").unwrap(),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            at("conditional_failover_after_ms = \"never\"").unwrap(),
            None
        );
        assert!(at("conditional_failover_after_ms = \"soon\"").is_err());
    }

    #[test]
    fn pending_byte_caps_must_hold_an_item() {
        let nodes = "[[nodes]]\naddr = \"127.0.0.1:1\"\n";
        let small = format!("max_pending_bytes_per_connection = 1000\n{nodes}");
        assert!(ProxyConfig::from_toml(&small).is_err());
        let inverted = format!("max_pending_bytes = 2000000\n{nodes}");
        assert!(ProxyConfig::from_toml(&inverted).is_err());
    }

    #[test]
    fn reload_keeps_restart_only_settings() {
        let old = ProxyConfig::from_toml("[[nodes]]\naddr = \"127.0.0.1:1\"\n").unwrap();
        let new = ProxyConfig::from_toml(
            "listen = \"127.0.0.1:2\"\nthreads = 4\nrequest_timeout_ms = 5\nack = \"quorum\"\n\
             [[nodes]]\naddr = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        assert_eq!(old.restart_only_changes(&new), vec!["listen", "threads"]);
        let next = old.reloaded(&new);
        assert_eq!(
            (next.server.listen.as_str(), next.threads),
            ("127.0.0.1:11211", 1)
        );
        assert_eq!((next.request_timeout_ms, next.ack), (5, Ack::Quorum));
        assert!(
            ProxyConfig::from_toml("failure_limit = 0\n[[nodes]]\naddr = \"127.0.0.1:1\"\n")
                .is_err()
        );
    }

    /// `[discovery]` stands in for `[[nodes]]` (never both), changes on a restart only, and a
    /// reload under it keeps the list discovery applied rather than the file's (empty) one.
    #[test]
    fn discovery_replaces_nodes() {
        let disc = "[discovery]\nsources = [\"dnssrv+_memcache._tcp.n.ns.svc\"]\n";
        let cfg = ProxyConfig::from_toml(disc).unwrap();
        assert!(cfg.nodes.is_empty());
        assert!(
            ProxyConfig::from_toml(&format!("{disc}[[nodes]]\naddr = \"127.0.0.1:1\"\n")).is_err()
        );
        assert!(ProxyConfig::from_toml("[discovery]\nsources = [\"n.ns.svc:1\"]\n").is_err());
        let mut running = cfg.clone();
        running.nodes = vec![NodeSpec::new("10.0.0.1:11211").named("a:11211")];
        let new = ProxyConfig::from_toml(&format!(
            "request_timeout_ms = 5\n{disc}interval_secs = 3\n"
        ))
        .unwrap();
        assert_eq!(running.restart_only_changes(&new), vec!["[discovery]"]);
        let next = running.reloaded(&new);
        assert_eq!(next.nodes, running.nodes);
        assert_eq!(next.discovery, running.discovery);
        assert_eq!(next.request_timeout_ms, 5);
    }
}
