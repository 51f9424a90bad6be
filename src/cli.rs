//! The command line: `ringcache node | proxy | local | ring`, parsed with clap.
//!
//! Flags override the config file, which overrides the built-in (memcached) defaults. Each
//! program's flags serialize to the config keys they override (their serde names are the keys;
//! unset flags, `None`, are left out by the TOML serializer), and `settings::layered` puts them
//! over the file in one step.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Serialize, Serializer};

use crate::error::Error;
use crate::memcached_flags::{self, MemcachedArgs};
use crate::settings::{is_false, merge, overrides};
use toml::Table;

/// A memcached-compatible distributed cache.
#[derive(Debug, Parser)]
#[command(name = "ringcache", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one cache server speaking memcached's text and meta protocols.
    Node(NodeArgs),
    /// Run the proxy: memcached clients talk to the whole cluster through one address.
    Proxy(ProxyArgs),
    /// Run a local cluster in one process: N nodes and a proxy in front of them.
    Local(LocalArgs),
    /// Look at placement on the hash ring.
    #[command(subcommand)]
    Ring(RingCommand),
}

/// `ringcache node` flags; each overrides the same key of `--config`. They take memcached
/// 1.6's names too (`-p`, `-l`, `-m`, `-c`, `-t`, `-I`, …: `memcached_flags`), so a node
/// starts with memcached's command line.
#[derive(Debug, Args, Default, Serialize)]
pub struct NodeArgs {
    /// TOML config file (see config/node.toml).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Addresses to listen on, a comma list or repeated, `notls:` first for a plain listener
    /// beside TLS ones; an address without a port takes -p's (memcached -l)
    /// [default: 127.0.0.1:11211].
    #[arg(short = 'l', long, value_name = "ADDR", value_delimiter = ',')]
    #[serde(skip)]
    pub listen: Vec<String>,
    /// Memory budget for items, in MiB (memcached -m) [default: 64].
    #[arg(short = 'm', long, value_name = "MIB")]
    #[serde(rename = "memory_limit_mb")]
    pub memory_limit: Option<u64>,
    /// Largest item, in bytes or with a k or m suffix (memcached -I) [default: 1m].
    #[arg(short = 'I', long, value_name = "SIZE", value_parser = memcached_flags::item_size)]
    pub max_item_size: Option<usize>,
    /// Simultaneous client connections (memcached -c) [default: 1024].
    #[arg(short = 'c', long, visible_alias = "conn-limit", value_name = "N")]
    pub max_connections: Option<usize>,
    /// Address for Prometheus /metrics and /ready [default: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Worker threads (memcached -t) [default: 4].
    #[arg(short = 't', long, value_name = "N")]
    pub threads: Option<usize>,
    /// Obey the `shutdown` command (memcached -A).
    #[arg(short = 'A', long)]
    #[serde(skip_serializing_if = "is_false")]
    pub enable_shutdown: bool,
    /// Close a client connection idle this many seconds; 0 never (memcached -o idle_timeout)
    /// [default: 0].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// On SIGTERM, keep serving up to this many seconds while the proxies move this node's
    /// keys off it; 0 stops at once, as memcached does (docs/operations.md) [default: 0; the
    /// Kubernetes StatefulSet sets 60].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<u64>,
    /// End the drain early once a proxy saw it and no request came for this many seconds
    /// [default: 15].
    #[arg(long, value_name = "SECS")]
    pub drain_quiet: Option<u64>,
    /// The zone the node runs in, reported in `stats` for routers that discover it
    /// (docs/placement.md, "Zones") [default: none].
    #[arg(long, env = "RINGCACHE_ZONE", value_name = "ZONE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
    /// memcached's flags that have no ringcache name of their own.
    #[command(flatten)]
    #[serde(skip)]
    pub memcached: MemcachedArgs,
}

impl NodeArgs {
    /// The config keys these flags set, the memcached ones included (`-p`/`-l` → `listen`,
    /// `-o ssl_*`, `-F` → `[commands]`, …), and notes on memcached flags that have no effect.
    pub fn overrides(&self) -> Result<(Table, Vec<String>), Error> {
        let mut t = overrides(self)?;
        let (memcached, notes) = self.memcached.overrides(&self.listen)?;
        merge(&mut t, memcached);
        Ok((t, notes))
    }
}

/// TLS and authentication flags of a listener, named after memcached's settings; each
/// overrides the same key of `--config` (docs/operations.md). Flattened into each program's
/// flags, so they serialize as top-level keys of its settings.
#[derive(Debug, Args, Default, Clone, Serialize)]
pub struct SecurityArgs {
    /// PEM certificate chain; the listener then serves TLS only (memcached ssl_chain_cert).
    #[arg(long, value_name = "PEM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_chain_cert: Option<PathBuf>,
    /// PEM private key [default: read from --ssl-chain-cert] (memcached ssl_key).
    #[arg(long, value_name = "PEM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<PathBuf>,
    /// PEM CA(s) client certificates must chain to (memcached ssl_ca_cert).
    #[arg(long, value_name = "PEM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_ca_cert: Option<PathBuf>,
    /// Client certificates: 0 none, 1 request, 2 require, 3 once (= 1) [default: 0]
    /// (memcached ssl_verify_mode).
    #[arg(long, value_name = "0-3")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_verify_mode: Option<u8>,
    /// File of user:password lines; every connection must authenticate first (memcached -Y).
    #[arg(long, short = 'Y', value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<PathBuf>,
    /// A user of --auth-file allowed the admin-only commands (repeat for each); replaces the
    /// config's admin_users.
    #[arg(long = "admin-user", value_name = "USER")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<String>,
}

/// `ringcache proxy` flags; each overrides the same key of `--config`.
#[derive(Debug, Args, Default, Serialize)]
pub struct ProxyArgs {
    /// TOML config file (see config/proxy.toml); watched for membership changes.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:11211].
    #[arg(long)]
    pub listen: Option<String>,
    /// A node address (repeat for each node); replaces the config's [[nodes]].
    #[arg(long = "node", value_name = "ADDR")]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "node_tables")]
    pub nodes: Vec<String>,
    /// A DNS source of the node list, `dns+HOST:PORT` (A/AAAA records) or `dnssrv+NAME` (SRV
    /// records); repeat for each. Replaces the config's [[nodes]] and [discovery] sources;
    /// the other [discovery] keys keep their values (docs/cluster.md, "Discovery").
    #[arg(long = "discovery", value_name = "SOURCE", conflicts_with = "nodes")]
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "discovery_table"
    )]
    pub discovery: Vec<String>,
    #[command(flatten)]
    pub ring: RingArgs,
    /// Address for Prometheus /metrics and /ready [default: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Worker threads; 1 runs the whole proxy on one thread, as twemproxy does [default: 1].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Simultaneous client connections [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Close a client connection idle this many seconds; 0 never (memcached -o idle_timeout)
    /// [default: 0].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Reply bytes one client connection may have waiting to be written before the proxy stops
    /// reading it [default: 67108864].
    #[arg(long, value_name = "BYTES")]
    pub max_pending_bytes_per_connection: Option<usize>,
    /// Reply bytes all client connections together may have waiting before every connection
    /// stops reading [default: 1073741824].
    #[arg(long, value_name = "BYTES")]
    pub max_pending_bytes: Option<usize>,
    /// The zone the proxy runs in: reads ask a key's owner in it first (docs/placement.md,
    /// "Zones") [default: none].
    #[arg(long, env = "RINGCACHE_ZONE", value_name = "ZONE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
}

/// `[ring]` flags of `ringcache proxy`: they override keys of the config's `[ring]` table.
#[derive(Debug, Args, Default, Serialize)]
pub struct RingArgs {
    /// Copies of each key [default: 2].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Ring points per node [default: 160].
    #[arg(long)]
    pub vnodes: Option<u32>,
    /// Placement: xxh3 or ketama [default: xxh3].
    #[arg(long, value_name = "xxh3|ketama")]
    pub hash: Option<String>,
}

/// `--discovery SOURCE` flags as the `[discovery]` table's `sources`.
fn discovery_table<S: Serializer>(sources: &[String], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Discovery<'a> {
        sources: &'a [String],
    }
    Discovery { sources }.serialize(s)
}

/// `--node ADDR` flags as the `[[nodes]]` tables they replace (name and weight default).
fn node_tables<S: Serializer>(nodes: &[String], s: S) -> Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Node<'a> {
        addr: &'a str,
    }
    s.collect_seq(nodes.iter().map(|addr| Node { addr }))
}

/// `ringcache local` flags; each overrides the same key of `--config`.
#[derive(Debug, Args, Default, Serialize)]
pub struct LocalArgs {
    /// TOML config file (see config/local.toml).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// How many nodes to start [default: 3].
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Copies of each key [default: 2].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Where the proxy listens [default: 127.0.0.1:11211].
    #[arg(long)]
    pub listen: Option<String>,
    /// Address for the proxy's Prometheus /metrics and /ready [default: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Memory budget of each node, MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    #[serde(rename = "memory_limit_mb")]
    pub memory_limit: Option<u64>,
    /// TLS and authentication of the proxy's listener (the nodes listen on loopback only).
    #[command(flatten)]
    #[serde(flatten)]
    pub security: SecurityArgs,
}

/// `ringcache ring ...`.
#[derive(Debug, Subcommand)]
pub enum RingCommand {
    /// Print the owners of each KEY, one `KEY<TAB>owner1,owner2` line per key.
    Locate {
        /// Cluster config file (the proxy's format).
        #[arg(long)]
        config: PathBuf,
        /// Keys to locate.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print the share of the keyspace that changes owner between two configs, per node.
    Diff {
        /// The current config.
        old: PathBuf,
        /// The proposed config.
        new: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::proxy::ProxyConfig;
    use crate::settings::layered;

    /// A file to layer flags over, removed on drop.
    struct File(PathBuf);

    impl File {
        fn new(name: &str, text: &str) -> File {
            let p =
                std::env::temp_dir().join(format!("ringcache-cli-{}-{name}", std::process::id()));
            std::fs::write(&p, text).unwrap();
            File(p)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn unset_flags_override_nothing() {
        assert!(overrides(&NodeArgs::default()).unwrap().is_empty());
        assert!(overrides(&LocalArgs::default()).unwrap().is_empty());
        let p = overrides(&ProxyArgs::default()).unwrap();
        assert_eq!(p.keys().collect::<Vec<_>>(), ["ring"], "{p:?}");
        assert!(p["ring"].as_table().unwrap().is_empty());
    }

    #[test]
    fn node_flags_override_the_file() {
        let f = File::new(
            "node.toml",
            "threads = 2\nmemory_limit_mb = 128\nidle_timeout = 5\n",
        );
        let args = NodeArgs {
            config: Some(f.0.clone()),
            memory_limit: Some(256),
            enable_shutdown: true,
            ..NodeArgs::default()
        };
        let cfg: NodeConfig = layered(args.config.as_deref(), &args).unwrap();
        assert_eq!(
            cfg,
            NodeConfig {
                threads: 2,
                memory_limit_mb: 256,
                idle_timeout: 5,
                enable_shutdown: true,
                ..NodeConfig::default()
            }
        );
    }

    #[test]
    fn security_flags_override_the_file_on_every_program() {
        let security = SecurityArgs {
            ssl_chain_cert: Some("/flag/chain.pem".into()),
            ssl_verify_mode: Some(2),
            admin_users: vec!["root".into()],
            ..SecurityArgs::default()
        };
        let f = File::new(
            "security.toml",
            "ssl_key = \"/file/key.pem\"\nssl_verify_mode = 1\nadmin_users = [\"a\", \"b\"]\n",
        );
        let node = NodeArgs {
            config: Some(f.0.clone()),
            security: security.clone(),
            ..NodeArgs::default()
        };
        let n: NodeConfig = layered(node.config.as_deref(), &node).unwrap();
        assert_eq!(
            n.security.ssl_chain_cert,
            Some(PathBuf::from("/flag/chain.pem"))
        );
        assert_eq!(n.security.ssl_key, Some(PathBuf::from("/file/key.pem")));
        assert_eq!(n.security.ssl_verify_mode, 2);
        assert_eq!(n.security.admin_users, ["root"]);
        let proxy = ProxyArgs {
            nodes: vec!["127.0.0.1:7".into()],
            security: security.clone(),
            ..ProxyArgs::default()
        };
        let p: ProxyConfig = layered(None, &proxy).unwrap();
        assert_eq!(
            p.security.ssl_chain_cert,
            Some(PathBuf::from("/flag/chain.pem"))
        );
        assert_eq!(p.security.ssl_verify_mode, 2);
        let local = LocalArgs {
            security: SecurityArgs {
                auth_file: Some("/flag/users".into()),
                ..security
            },
            ..LocalArgs::default()
        };
        let l: crate::local::LocalConfig = layered(None, &local).unwrap();
        assert_eq!(l.security.auth_file, Some(PathBuf::from("/flag/users")));
        assert_eq!(l.security.admin_users, ["root"]);
        // memcached's modes are 0-3; anything else is refused whichever program reads it.
        let bad = SecurityArgs {
            ssl_verify_mode: Some(4),
            ..SecurityArgs::default()
        };
        let bad_node = NodeArgs {
            security: bad.clone(),
            ..NodeArgs::default()
        };
        assert!(layered::<NodeConfig>(None, &bad_node).is_err());
        let bad_local = LocalArgs {
            security: bad,
            ..LocalArgs::default()
        };
        assert!(layered::<crate::local::LocalConfig>(None, &bad_local).is_err());
    }

    /// `--zone` (or `RINGCACHE_ZONE`, clap reads it into the same field) reaches the router;
    /// an empty one (Kubernetes' downward API where the pod has no zone label) is none, and a
    /// zone that is not one token is refused, for the proxy as for the node.
    #[test]
    fn zone_flags() {
        let proxy = |zone: &str| ProxyArgs {
            nodes: vec!["127.0.0.1:7".into()],
            zone: Some(zone.into()),
            ..ProxyArgs::default()
        };
        let cfg: ProxyConfig = layered(None, &proxy("eu-west-1a")).unwrap();
        assert_eq!(cfg.zone(), Some("eu-west-1a"));
        let opts = cfg.client_options().unwrap();
        assert_eq!(opts.zone.as_deref(), Some("eu-west-1a"));
        let cfg: ProxyConfig = layered(None, &proxy("")).unwrap();
        assert_eq!(
            (cfg.zone(), cfg.client_options().unwrap().zone),
            (None, None)
        );
        assert!(layered::<ProxyConfig>(None, &proxy("eu west")).is_err());
        let node = |zone: &str| NodeArgs {
            zone: Some(zone.into()),
            ..NodeArgs::default()
        };
        let cfg: NodeConfig = layered(None, &node("eu-west-1b")).unwrap();
        assert_eq!(cfg.zone(), Some("eu-west-1b"));
        let cfg: NodeConfig = layered(None, &node("")).unwrap();
        assert_eq!(cfg.zone(), None);
        assert!(layered::<NodeConfig>(None, &node("a,b")).is_err());
    }

    #[test]
    fn proxy_flags_override_ring_keys_and_replace_nodes() {
        let f = File::new(
            "proxy.toml",
            "ack = \"quorum\"\n[ring]\nhash = \"ketama\"\nreplicas = 3\n\
             [[nodes]]\naddr = \"127.0.0.1:1\"\nname = \"a\"\n",
        );
        let args = ProxyArgs {
            config: Some(f.0.clone()),
            nodes: vec!["127.0.0.1:7".into(), "127.0.0.1:8".into()],
            ring: RingArgs {
                replicas: Some(1),
                ..RingArgs::default()
            },
            ..ProxyArgs::default()
        };
        let cfg: ProxyConfig = layered(args.config.as_deref(), &args).unwrap();
        assert_eq!(cfg.ack, ringcache_client::Ack::Quorum);
        assert_eq!(cfg.ring.hash, ringcache_client::ring::HashKind::Ketama);
        assert_eq!(cfg.ring.replicas, 1);
        let addrs: Vec<(&str, Option<&str>)> = cfg
            .nodes
            .iter()
            .map(|n| (n.addr.as_str(), n.name.as_deref()))
            .collect();
        assert_eq!(addrs, [("127.0.0.1:7", None), ("127.0.0.1:8", None)]);
        // Without a file the flags are the whole config; a bad flag value is refused.
        let bad = ProxyArgs {
            ring: RingArgs {
                hash: Some("md5".into()),
                ..RingArgs::default()
            },
            ..ProxyArgs::default()
        };
        assert!(layered::<ProxyConfig>(None, &bad).is_err());
    }

    /// `--discovery` replaces a file's fixed `[[nodes]]` or its `[discovery]` sources, keeping
    /// the other `[discovery]` keys; with `--node` it is a usage error.
    #[test]
    fn discovery_flags_replace_the_node_list() {
        let fixed = File::new("fixed.toml", "[[nodes]]\naddr = \"127.0.0.1:1\"\n");
        let args = ProxyArgs {
            config: Some(fixed.0.clone()),
            discovery: vec!["dnssrv+_memcache._tcp.nodes.example".into()],
            ..ProxyArgs::default()
        };
        let cfg: ProxyConfig = layered(args.config.as_deref(), &args).unwrap();
        let d = cfg.discovery.expect("discovery from the flag");
        assert_eq!(d.sources, ["dnssrv+_memcache._tcp.nodes.example"]);
        assert!(cfg.nodes.is_empty(), "{:?}", cfg.nodes);

        let dns = File::new(
            "dns.toml",
            "[discovery]\nsources = [\"dns+old:11211\"]\ninterval_secs = 3\n",
        );
        let args = ProxyArgs {
            config: Some(dns.0.clone()),
            discovery: vec!["dns+new:11211".into(), "dns+other:11211".into()],
            ..ProxyArgs::default()
        };
        let cfg: ProxyConfig = layered(args.config.as_deref(), &args).unwrap();
        let d = cfg.discovery.expect("discovery");
        assert_eq!(d.sources, ["dns+new:11211", "dns+other:11211"]);
        assert_eq!(d.interval_secs, 3);

        let both = Cli::try_parse_from([
            "ringcache",
            "proxy",
            "--node",
            "127.0.0.1:1",
            "--discovery",
            "dns+x:1",
        ]);
        assert!(both.is_err());
    }
}
