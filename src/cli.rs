//! The command line: `ringcache node | proxy | local | ring`, parsed with clap.
//!
//! Flags override the config file, which overrides the built-in (memcached) defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

/// `ringcache node` flags; each overrides the same key of `--config`.
#[derive(Debug, Args, Default)]
pub struct NodeArgs {
    /// TOML config file (see config/node.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:11211].
    #[arg(long)]
    pub listen: Option<String>,
    /// Memory budget for items, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub memory_limit: Option<u64>,
    /// Largest item in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    pub max_item_size: Option<usize>,
    /// Simultaneous client connections [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Address for Prometheus /metrics [default: none].
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Worker threads [default: 4].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Obey the `shutdown` command (memcached -A).
    #[arg(long)]
    pub enable_shutdown: bool,
    /// Close a client connection idle this many seconds; 0 never (memcached -o idle_timeout)
    /// [default: 0].
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// TLS and authentication flags of a listener, named after memcached's settings; each
/// overrides the same key of `--config` (docs/operations.md).
#[derive(Debug, Args, Default, Clone)]
pub struct SecurityArgs {
    /// PEM certificate chain; the listener then serves TLS only (memcached ssl_chain_cert).
    #[arg(long, value_name = "PEM")]
    pub ssl_chain_cert: Option<PathBuf>,
    /// PEM private key [default: read from --ssl-chain-cert] (memcached ssl_key).
    #[arg(long, value_name = "PEM")]
    pub ssl_key: Option<PathBuf>,
    /// PEM CA(s) client certificates must chain to (memcached ssl_ca_cert).
    #[arg(long, value_name = "PEM")]
    pub ssl_ca_cert: Option<PathBuf>,
    /// Client certificates: 0 none, 1 request, 2 require, 3 once (= 1) [default: 0]
    /// (memcached ssl_verify_mode).
    #[arg(long, value_name = "0-3")]
    pub ssl_verify_mode: Option<u8>,
    /// File of user:password lines; every connection must authenticate first (memcached -Y).
    #[arg(long, short = 'Y', value_name = "FILE")]
    pub auth_file: Option<PathBuf>,
    /// A user of --auth-file allowed the admin-only commands (repeat for each).
    #[arg(long = "admin-user", value_name = "USER")]
    pub admin_users: Vec<String>,
}

/// `ringcache proxy` flags; each overrides the same key of `--config`.
#[derive(Debug, Args, Default)]
pub struct ProxyArgs {
    /// TOML config file (see config/proxy.toml); watched for membership changes.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:11211].
    #[arg(long)]
    pub listen: Option<String>,
    /// A node address (repeat for each node); replaces the config's [[nodes]].
    #[arg(long = "node", value_name = "ADDR")]
    pub nodes: Vec<String>,
    /// Copies of each key [default: 2].
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Ring points per node [default: 160].
    #[arg(long)]
    pub vnodes: Option<u32>,
    /// Placement: xxh3 or ketama [default: xxh3].
    #[arg(long, value_name = "xxh3|ketama")]
    pub hash: Option<String>,
    /// Address for Prometheus /metrics [default: none].
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
    #[command(flatten)]
    pub security: SecurityArgs,
}

/// `ringcache local` flags.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// How many nodes to start.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Copies of each key.
    #[arg(long, default_value_t = 2)]
    pub replicas: usize,
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:11211")]
    pub listen: String,
    /// Address for the proxy's Prometheus /metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// Memory budget of each node, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub memory_limit: u64,
    /// TLS and authentication of the proxy's listener (the nodes listen on loopback only).
    #[command(flatten)]
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
