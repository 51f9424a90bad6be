//! The command line: `ringcache node | proxy | local | ring`, parsed with clap.
//!
//! Flags override the config file, which overrides the built-in (memcached) defaults. Each
//! program's flags serialize to the config keys they override (their serde names are the keys),
//! and `settings::layered` puts them over the file in one step. `--help` shows each flag's
//! default, read from the settings types' `Default` (clap's `default_value_t`); a flag left at
//! it overrides nothing: only the flags given on the command line ([`Given`]) reach the table.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use ringcache_client::cluster_config::RingSettings;
use serde::{Serialize, Serializer};

use crate::config::NodeConfig;
use crate::error::Error;
use crate::local::LocalConfig;
use crate::memcached_flags::{self, MemcachedArgs};
use crate::proxy::ProxyConfig;
use crate::server::settings::{ServerArgs, DEFAULT_LISTEN};
use crate::settings::{is_false, merge, overrides};
use toml::Table;

/// A memcached-compatible distributed cache.
#[derive(Debug, Parser)]
#[command(name = "ringcache", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The process's command line, parsed; on a usage error (or `--help`) clap prints and exits.
    pub fn from_env() -> Cli {
        Cli::try_from_argv(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// `argv` parsed, each program's flags knowing which of them were given.
    pub fn try_from_argv<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let Some((_, sub)) = matches.subcommand() {
            let given = Given::of(sub);
            match &mut cli.command {
                Command::Node(a) => a.given = given,
                Command::Proxy(a) => a.given = given,
                Command::Local(a) => a.given = given,
                Command::Ring(_) => {}
            }
        }
        Ok(cli)
    }
}

/// The ids of the flags given on the command line (a flag's id is its field's name, which is
/// also its config key). The others hold the defaults `--help` shows and override nothing.
#[derive(Debug, Default, Clone)]
pub struct Given(BTreeSet<String>);

impl Given {
    /// The flags of `m` that came from the command line or from their environment variable
    /// (`RINGCACHE_ZONE`).
    fn of(m: &ArgMatches) -> Given {
        Given(
            m.ids()
                .map(|id| id.as_str())
                .filter(|id| {
                    matches!(
                        m.value_source(id),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(str::to_string)
                .collect(),
        )
    }

    /// Whether flag `id` was given.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(id)
    }

    /// The keys of `table` that given flags set: a key named by a flag is kept whole, a table
    /// named by none (`[ring]`) keeps the given flags inside it, and nothing else stays.
    pub fn only_given(&self, table: Table) -> Table {
        table
            .into_iter()
            .filter_map(|(k, v)| match v {
                _ if self.contains(&k) => Some((k, v)),
                toml::Value::Table(t) => {
                    let t = self.only_given(t);
                    (!t.is_empty()).then_some((k, toml::Value::Table(t)))
                }
                _ => None,
            })
            .collect()
    }

    /// The config keys a program's flags set: its flags' serde form, given ones only.
    fn overrides(&self, flags: &impl Serialize) -> Result<Table, Error> {
        Ok(self.only_given(overrides(flags)?))
    }
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
#[derive(Debug, Args, Serialize)]
pub struct NodeArgs {
    /// TOML config file (see config/node.toml).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Addresses to listen on, a comma list or repeated, `notls:` first for a plain listener
    /// beside TLS ones; an address without a port takes -p's (memcached -l).
    #[arg(short = 'l', long, value_name = "ADDR", value_delimiter = ',', default_value = DEFAULT_LISTEN)]
    #[serde(skip)]
    pub listen: Vec<String>,
    /// Memory budget for items, in MiB (memcached -m).
    #[arg(short = 'm', long = "memory-limit", value_name = "MIB", default_value_t = NodeConfig::default().memory_limit_mb)]
    pub memory_limit_mb: u64,
    /// Largest item, in bytes or with a k or m suffix (memcached -I).
    #[arg(short = 'I', long, value_name = "SIZE", value_parser = memcached_flags::item_size, default_value_t = NodeConfig::default().max_item_size)]
    pub max_item_size: usize,
    /// Worker threads (memcached -t).
    #[arg(short = 't', long, value_name = "N", default_value_t = NodeConfig::default().threads)]
    pub threads: usize,
    /// Obey the `shutdown` command (memcached -A).
    #[arg(short = 'A', long)]
    #[serde(skip_serializing_if = "is_false")]
    pub enable_shutdown: bool,
    /// On SIGTERM, keep serving up to this many seconds while the proxies move this node's
    /// keys off it; 0 stops at once, as memcached does (docs/operations.md; the Kubernetes
    /// StatefulSet sets 60).
    #[arg(long, value_name = "SECS", default_value_t = NodeConfig::default().drain_timeout)]
    pub drain_timeout: u64,
    /// End the drain early once a proxy saw it and no request came for this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = NodeConfig::default().drain_quiet)]
    pub drain_quiet: u64,
    /// The zone the node runs in, reported in `stats` for routers that discover it
    /// (docs/placement.md, "Zones") [default: none].
    #[arg(long, env = "RINGCACHE_ZONE", value_name = "ZONE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerArgs,
    /// memcached's flags that have no ringcache name of their own.
    #[command(flatten)]
    #[serde(skip)]
    pub memcached: MemcachedArgs,
    #[arg(skip)]
    #[serde(skip)]
    pub given: Given,
}

impl NodeArgs {
    /// The config keys these flags set, the memcached ones included (`-p`/`-l` → `listen`,
    /// `-o ssl_*`, `-F` → `[commands]`, …), and notes on memcached flags that have no effect.
    pub fn overrides(&self) -> Result<(Table, Vec<String>), Error> {
        let mut t = self.given.overrides(self)?;
        // `-l` and `-p` left at their defaults set no address: the file's `listen` stands.
        let listen: &[String] = match self.given.contains("listen") {
            true => &self.listen,
            false => &[],
        };
        let port = Some(self.memcached.port).filter(|_| self.given.contains("port"));
        let (memcached, notes) = self.memcached.overrides(listen, port)?;
        merge(&mut t, memcached);
        Ok((t, notes))
    }
}

/// `ringcache proxy` flags; each overrides the same key of `--config`.
#[derive(Debug, Args, Serialize)]
pub struct ProxyArgs {
    /// TOML config file (see config/proxy.toml); watched for membership changes.
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: String,
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
    /// Worker threads; 1 runs the whole proxy on one thread, as twemproxy does.
    #[arg(long, default_value_t = ProxyConfig::default().threads)]
    pub threads: usize,
    /// Reply bytes one client connection may have waiting to be written before the proxy stops
    /// reading it.
    #[arg(long, value_name = "BYTES", default_value_t = ProxyConfig::default().max_pending_bytes_per_connection)]
    pub max_pending_bytes_per_connection: usize,
    /// Reply bytes all client connections together may have waiting before every connection
    /// stops reading.
    #[arg(long, value_name = "BYTES", default_value_t = ProxyConfig::default().max_pending_bytes)]
    pub max_pending_bytes: usize,
    /// The zone the proxy runs in: reads ask a key's owner in it first (docs/placement.md,
    /// "Zones") [default: none].
    #[arg(long, env = "RINGCACHE_ZONE", value_name = "ZONE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerArgs,
    #[arg(skip)]
    #[serde(skip)]
    pub given: Given,
}

impl ProxyArgs {
    /// The config keys these flags set.
    pub fn overrides(&self) -> Result<Table, Error> {
        self.given.overrides(self)
    }
}

/// `[ring]` flags of `ringcache proxy`: they override keys of the config's `[ring]` table.
#[derive(Debug, Args, Serialize)]
pub struct RingArgs {
    /// Copies of each key.
    #[arg(long, default_value_t = RingSettings::default().replicas)]
    pub replicas: usize,
    /// Ring points per node.
    #[arg(long, default_value_t = RingSettings::default().vnodes)]
    pub vnodes: u32,
    /// Placement: xxh3 or ketama.
    #[arg(long, value_name = "xxh3|ketama", default_value_t = RingSettings::default().hash.to_string())]
    pub hash: String,
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

/// `ringcache local` flags; each overrides the same key of `--config`. The server flags are
/// the proxy's (the nodes listen on loopback ports the OS picks).
#[derive(Debug, Args, Serialize)]
pub struct LocalArgs {
    /// TOML config file (see config/local.toml).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// How many nodes to start.
    #[arg(long, default_value_t = LocalConfig::default().nodes)]
    pub nodes: usize,
    /// Copies of each key.
    #[arg(long, default_value_t = LocalConfig::default().replicas)]
    pub replicas: usize,
    /// Where the proxy listens.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Memory budget of each node, MiB.
    #[arg(long = "memory-limit", value_name = "MIB", default_value_t = LocalConfig::default().memory_limit_mb)]
    pub memory_limit_mb: u64,
    /// The proxy's metrics, connection limit, TLS and authentication.
    #[command(flatten)]
    #[serde(flatten)]
    pub server: ServerArgs,
    #[arg(skip)]
    #[serde(skip)]
    pub given: Given,
}

impl LocalArgs {
    /// The config keys these flags set.
    pub fn overrides(&self) -> Result<Table, Error> {
        self.given.overrides(self)
    }
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
    use crate::server::settings::ServerSettings;
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

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    /// `ringcache ARGS` as `main` parses it.
    fn parse(program: &str, args: &[&str]) -> Command {
        let argv = ["ringcache", program]
            .into_iter()
            .chain(args.iter().copied());
        Cli::try_from_argv(argv).unwrap().command
    }

    fn node_args(args: &[&str]) -> NodeArgs {
        match parse("node", args) {
            Command::Node(a) => a,
            _ => unreachable!("parsed as node"),
        }
    }

    fn proxy_args(args: &[&str]) -> ProxyArgs {
        match parse("proxy", args) {
            Command::Proxy(a) => a,
            _ => unreachable!("parsed as proxy"),
        }
    }

    fn local_args(args: &[&str]) -> LocalArgs {
        match parse("local", args) {
            Command::Local(a) => a,
            _ => unreachable!("parsed as local"),
        }
    }

    fn node(args: &[&str]) -> NodeConfig {
        let a = node_args(args);
        layered(a.config.as_deref(), &a.overrides().unwrap().0).unwrap()
    }

    fn proxy(args: &[&str]) -> Result<ProxyConfig, Error> {
        let a = proxy_args(args);
        layered(a.config.as_deref(), &a.overrides()?)
    }

    fn local(args: &[&str]) -> Result<LocalConfig, Error> {
        let a = local_args(args);
        layered(a.config.as_deref(), &a.overrides()?)
    }

    /// The flags left at the defaults `--help` shows set no key.
    #[test]
    fn unset_flags_override_nothing() {
        let n = node_args(&[]);
        assert!(n.overrides().unwrap().0.is_empty());
        let l = local_args(&[]);
        assert!(l.overrides().unwrap().is_empty());
        let p = proxy_args(&[]);
        assert!(p.overrides().unwrap().is_empty());
    }

    /// The defaults clap shows are the settings types' own: parsing no flag gives them.
    #[test]
    fn help_defaults_are_the_settings_defaults() {
        let n = node_args(&[]);
        let d = NodeConfig::default();
        assert_eq!(n.listen, std::slice::from_ref(&d.server.listen));
        assert_eq!(
            (n.memory_limit_mb, n.max_item_size, n.threads),
            (d.memory_limit_mb, d.max_item_size, d.threads)
        );
        assert_eq!(
            (n.drain_timeout, n.drain_quiet),
            (d.drain_timeout, d.drain_quiet)
        );
        assert_eq!(
            (n.server.max_connections, n.server.idle_timeout),
            (d.server.max_connections, d.server.idle_timeout)
        );
        let p = proxy_args(&[]);
        let d = ProxyConfig::default();
        assert_eq!(p.listen, d.server.listen);
        assert_eq!(
            (
                p.threads,
                p.max_pending_bytes,
                p.max_pending_bytes_per_connection
            ),
            (
                d.threads,
                d.max_pending_bytes,
                d.max_pending_bytes_per_connection
            )
        );
        assert_eq!(
            (p.ring.replicas, p.ring.vnodes, p.ring.hash.as_str()),
            (d.ring.replicas, d.ring.vnodes, d.ring.hash.as_str())
        );
        let l = local_args(&[]);
        let d = LocalConfig::default();
        assert_eq!(
            (l.nodes, l.replicas, l.memory_limit_mb, l.listen.as_str()),
            (
                d.nodes,
                d.replicas,
                d.memory_limit_mb,
                d.server.listen.as_str()
            )
        );
    }

    #[test]
    fn node_flags_override_the_file() {
        let f = File::new(
            "node.toml",
            "threads = 2\nmemory_limit_mb = 128\nidle_timeout = 5\n",
        );
        let cfg = node(&["--config", f.path(), "--memory-limit", "256", "-A"]);
        assert_eq!(
            cfg,
            NodeConfig {
                threads: 2,
                memory_limit_mb: 256,
                enable_shutdown: true,
                server: ServerSettings {
                    idle_timeout: 5,
                    ..ServerSettings::default()
                },
                ..NodeConfig::default()
            }
        );
        // A flag given at its default value still overrides the file.
        let cfg = node(&["--config", f.path(), "--threads", "4"]);
        assert_eq!(cfg.threads, 4);
    }

    #[test]
    fn security_flags_override_the_file_on_every_program() {
        let f = File::new(
            "security.toml",
            "ssl_key = \"/file/key.pem\"\nssl_verify_mode = 1\nadmin_users = [\"a\", \"b\"]\n",
        );
        let security = [
            "--ssl-chain-cert",
            "/flag/chain.pem",
            "--ssl-verify-mode",
            "2",
            "--admin-user",
            "root",
        ];
        let mut args = vec!["--config", f.path()];
        args.extend(security);
        let n = node(&args);
        assert_eq!(
            n.security.ssl_chain_cert,
            Some(PathBuf::from("/flag/chain.pem"))
        );
        assert_eq!(n.security.ssl_key, Some(PathBuf::from("/file/key.pem")));
        assert_eq!(n.security.ssl_verify_mode, 2);
        assert_eq!(n.security.admin_users, ["root"]);
        let mut args = vec!["--node", "127.0.0.1:7"];
        args.extend(security);
        let p = proxy(&args).unwrap();
        assert_eq!(
            p.security.ssl_chain_cert,
            Some(PathBuf::from("/flag/chain.pem"))
        );
        assert_eq!(p.security.ssl_verify_mode, 2);
        let mut args = vec!["--auth-file", "/flag/users"];
        args.extend(security);
        let l = local(&args).unwrap();
        assert_eq!(l.security.auth_file, Some(PathBuf::from("/flag/users")));
        assert_eq!(l.security.admin_users, ["root"]);
        // memcached's modes are 0-3; anything else is refused whichever program reads it.
        let bad = node_args(&["--ssl-verify-mode", "4"]);
        assert!(layered::<NodeConfig>(None, &bad.overrides().unwrap().0).is_err());
        assert!(local(&["--ssl-verify-mode", "4"]).is_err());
    }

    /// `--zone` (or `RINGCACHE_ZONE`, clap reads it into the same field) reaches the router;
    /// an empty one (Kubernetes' downward API where the pod has no zone label) is none, and a
    /// zone that is not one token is refused, for the proxy as for the node.
    #[test]
    fn zone_flags() {
        let proxy_zone = |zone: &str| proxy(&["--node", "127.0.0.1:7", "--zone", zone]);
        let cfg = proxy_zone("eu-west-1a").unwrap();
        assert_eq!(cfg.zone(), Some("eu-west-1a"));
        let opts = cfg.client_options().unwrap();
        assert_eq!(opts.zone.as_deref(), Some("eu-west-1a"));
        let cfg = proxy_zone("").unwrap();
        assert_eq!(
            (cfg.zone(), cfg.client_options().unwrap().zone),
            (None, None)
        );
        assert!(proxy_zone("eu west").is_err());
        let node_zone = |zone: &str| -> Result<NodeConfig, Error> {
            let a = node_args(&["--zone", zone]);
            layered(a.config.as_deref(), &a.overrides()?.0)
        };
        assert_eq!(node_zone("eu-west-1b").unwrap().zone(), Some("eu-west-1b"));
        assert_eq!(node_zone("").unwrap().zone(), None);
        assert!(node_zone("a,b").is_err());
    }

    #[test]
    fn proxy_flags_override_ring_keys_and_replace_nodes() {
        let f = File::new(
            "proxy.toml",
            "ack = \"quorum\"\n[ring]\nhash = \"ketama\"\nreplicas = 3\n\
             [[nodes]]\naddr = \"127.0.0.1:1\"\nname = \"a\"\n",
        );
        let cfg = proxy(&[
            "--config",
            f.path(),
            "--node",
            "127.0.0.1:7",
            "--node",
            "127.0.0.1:8",
            "--replicas",
            "1",
        ])
        .unwrap();
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
        assert!(proxy(&["--hash", "md5"]).is_err());
    }

    /// `--discovery` replaces a file's fixed `[[nodes]]` or its `[discovery]` sources, keeping
    /// the other `[discovery]` keys; with `--node` it is a usage error.
    #[test]
    fn discovery_flags_replace_the_node_list() {
        let fixed = File::new("fixed.toml", "[[nodes]]\naddr = \"127.0.0.1:1\"\n");
        let cfg = proxy(&[
            "--config",
            fixed.path(),
            "--discovery",
            "dnssrv+_memcache._tcp.nodes.example",
        ])
        .unwrap();
        let d = cfg.discovery.expect("discovery from the flag");
        assert_eq!(d.sources, ["dnssrv+_memcache._tcp.nodes.example"]);
        assert!(cfg.nodes.is_empty(), "{:?}", cfg.nodes);

        let dns = File::new(
            "dns.toml",
            "[discovery]\nsources = [\"dns+old:11211\"]\ninterval_secs = 3\n",
        );
        let cfg = proxy(&[
            "--config",
            dns.path(),
            "--discovery",
            "dns+new:11211",
            "--discovery",
            "dns+other:11211",
        ])
        .unwrap();
        let d = cfg.discovery.expect("discovery");
        assert_eq!(d.sources, ["dns+new:11211", "dns+other:11211"]);
        assert_eq!(d.interval_secs, 3);

        let both = Cli::try_from_argv([
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
