//! The `ringcache` binary: parses the command line and runs the chosen subcommand.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use ringcache::cli::{Cli, Command, LocalArgs, NodeArgs, ProxyArgs, RingCommand};
use ringcache::config::NodeConfig;
use ringcache::local::{self, LocalOptions};
use ringcache::node::{self, clock::SystemClock};
use ringcache::proxy::{self, ProxyConfig};
use ringcache::Error;
use ringcache_client::ring::{HashKind, NodeSpec};

/// mimalloc: less per-allocation overhead and fragmentation than glibc's malloc for the many
/// small, long-lived allocations a cache holds.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Node(args) => run_node(args),
        Command::Proxy(args) => run_proxy(args),
        Command::Local(args) => run_local(args),
        Command::Ring(RingCommand::Locate { config, keys }) => {
            ringcache::ring_cli::locate(&config, &keys).map(|out| print!("{out}"))
        }
        Command::Ring(RingCommand::Diff { old, new }) => {
            ringcache::ring_cli::diff(&old, &new).map(|out| print!("{out}"))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringcache: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The security flags on top of a config's keys (the node's and the proxy's are named alike).
macro_rules! apply_security {
    ($cfg:expr, $args:expr) => {{
        let a = &$args;
        if let Some(v) = &a.ssl_chain_cert {
            $cfg.ssl_chain_cert = Some(v.clone());
        }
        if let Some(v) = &a.ssl_key {
            $cfg.ssl_key = Some(v.clone());
        }
        if let Some(v) = &a.ssl_ca_cert {
            $cfg.ssl_ca_cert = Some(v.clone());
        }
        if let Some(v) = a.ssl_verify_mode {
            $cfg.ssl_verify_mode = v;
        }
        if let Some(v) = &a.auth_file {
            $cfg.auth_file = Some(v.clone());
        }
        if !a.admin_users.is_empty() {
            $cfg.admin_users = a.admin_users.clone();
        }
    }};
}

/// Config file first, then flags on top.
fn node_config(args: &NodeArgs) -> Result<NodeConfig, Error> {
    let mut cfg = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    if let Some(v) = &args.listen {
        cfg.listen = v.clone();
    }
    if let Some(v) = args.memory_limit {
        cfg.memory_limit_mb = v;
    }
    if let Some(v) = args.max_item_size {
        cfg.max_item_size = v;
    }
    if let Some(v) = args.max_connections {
        cfg.max_connections = v;
    }
    if let Some(v) = &args.metrics_listen {
        cfg.metrics_listen = Some(v.clone());
    }
    if let Some(v) = args.threads {
        cfg.threads = v;
    }
    if let Some(v) = args.threads {
        cfg.threads = v;
    }
    if args.enable_shutdown {
        cfg.enable_shutdown = true;
    }
    if let Some(v) = args.idle_timeout {
        cfg.idle_timeout = v;
    }
    apply_security!(cfg, args.security);
    cfg.validate()?;
    Ok(cfg)
}

fn run_node(args: NodeArgs) -> Result<(), Error> {
    let cfg = node_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Handlers first: the "listening" line tells callers they may signal us.
        let signals = ringcache::server::listener::signal_token();
        let handle = node::start(cfg, Arc::new(SystemClock)).await?;
        println!("ringcache node listening on {}", handle.addr);
        let stop = handle.node.shutdown.clone();
        tokio::select! {
            _ = signals.cancelled() => {}
            _ = stop.cancelled() => {}
        }
        handle.shutdown().await;
        tracing::info!("node stopped");
        Ok(())
    })
}

/// Config file first, then flags on top.
fn proxy_config(args: &ProxyArgs) -> Result<ProxyConfig, Error> {
    let mut cfg = match &args.config {
        Some(path) => ProxyConfig::load(path)?,
        None => ProxyConfig::default(),
    };
    if let Some(v) = &args.listen {
        cfg.listen = v.clone();
    }
    if !args.nodes.is_empty() {
        // `--node` replaces the file's node list, whichever form it has.
        cfg.discovery = None;
        cfg.nodes = args
            .nodes
            .iter()
            .map(|a| NodeSpec {
                addr: a.clone(),
                name: None,
                weight: 1,
            })
            .collect();
    }
    if let Some(v) = args.replicas {
        cfg.ring.replicas = v;
    }
    if let Some(v) = args.vnodes {
        cfg.ring.vnodes = v;
    }
    if let Some(v) = &args.hash {
        cfg.ring.hash = v.parse::<HashKind>()?;
    }
    if let Some(v) = &args.metrics_listen {
        cfg.metrics_listen = Some(v.clone());
    }
    if let Some(v) = args.threads {
        cfg.threads = v;
    }
    if let Some(v) = args.idle_timeout {
        cfg.idle_timeout = v;
    }
    if let Some(v) = args.max_connections {
        cfg.max_connections = v;
    }
    if let Some(v) = args.max_pending_bytes_per_connection {
        cfg.max_pending_bytes_per_connection = v;
    }
    if let Some(v) = args.max_pending_bytes {
        cfg.max_pending_bytes = v;
    }
    apply_security!(cfg, args.security);
    cfg.validate()?;
    Ok(cfg)
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// The proxy's runtime: with one thread, a current-thread runtime, so a request's hops between
/// the client connection, the backend writer and the backend reader are plain task switches
/// instead of cross-thread wake-ups.
fn proxy_runtime(threads: usize) -> Result<tokio::runtime::Runtime, Error> {
    Ok(match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    })
}

fn run_proxy(args: ProxyArgs) -> Result<(), Error> {
    let cfg = proxy_config(&args)?;
    let watch = args.config.clone();
    proxy_runtime(cfg.threads)?.block_on(async move {
        let signals = ringcache::server::listener::signal_token();
        let handle = proxy::start(cfg, watch).await?;
        println!("ringcache proxy listening on {}", handle.addr);
        signals.cancelled().await;
        handle.shutdown().await;
        tracing::info!("proxy stopped");
        Ok(())
    })
}

fn run_local(args: LocalArgs) -> Result<(), Error> {
    let opts = LocalOptions {
        nodes: args.nodes,
        replicas: args.replicas,
        listen: args.listen,
        metrics_listen: args.metrics_listen,
        memory_limit_mb: args.memory_limit,
        security: args.security,
    };
    runtime()?.block_on(async move {
        let signals = ringcache::server::listener::signal_token();
        let cluster = local::start(&opts).await?;
        for (i, n) in cluster.nodes.iter().enumerate() {
            println!("node{} listening on {}", i + 1, n.addr);
        }
        println!(
            "ringcache proxy listening on {} ({} nodes, {} replicas)",
            cluster.proxy.addr, opts.nodes, opts.replicas
        );
        println!(
            "try: printf 'set hello 0 0 5\\r\\nworld\\r\\nget hello\\r\\n' | nc -q1 {} {}",
            cluster.proxy.addr.ip(),
            cluster.proxy.addr.port()
        );
        println!("Ctrl-C stops the cluster.");
        signals.cancelled().await;
        cluster.shutdown().await;
        tracing::info!("local cluster stopped");
        Ok(())
    })
}
