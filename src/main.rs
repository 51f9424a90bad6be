//! The `ringcache` binary: parses the command line and runs the chosen subcommand.

use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use ringcache::cli::{Cli, Command, LocalArgs, NodeArgs, ProxyArgs, RingCommand};
use ringcache::config::NodeConfig;
use ringcache::local::{self, LocalConfig};
use ringcache::node::{self, clock::SystemClock};
use ringcache::proxy::{self, ProxyConfig};
use ringcache::settings::layered;
use ringcache::Error;

/// mimalloc: less per-allocation overhead and fragmentation than glibc's malloc for the many
/// small, long-lived allocations a cache holds.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::from_env();
    // memcached's -vv prints every command, -vvv its state transitions: debug and trace here.
    let level = match &cli.command {
        Command::Node(args) if args.memcached.verbose >= 3 => "trace",
        Command::Node(args) if args.memcached.verbose == 2 => "debug",
        _ => "info",
    };
    init_tracing(level);
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

fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: a container's or journald's log is read as text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Config file first, then flags on top (memcached's among them); memcached flags that have
/// no effect here are logged.
fn node_config(args: &NodeArgs) -> Result<NodeConfig, Error> {
    let (flags, notes) = args.overrides()?;
    for note in notes {
        tracing::warn!("memcached flag {note}");
    }
    layered(args.config.as_deref(), &flags)
}

fn run_node(args: NodeArgs) -> Result<(), Error> {
    let cfg = node_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cfg.threads)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // Handlers first: the "listening" line tells callers they may signal us.
        let signals = ringcache::server::listener::node_signals();
        let drain = cfg.drain();
        let handle = node::start(cfg, Arc::new(SystemClock)).await?;
        // memcached's order: bound, pid file, then root given up (-P, -u).
        let _pid = args
            .memcached
            .pidfile
            .as_deref()
            .map(ringcache::process::PidFile::write)
            .transpose()?;
        if let Some(user) = &args.memcached.user {
            ringcache::process::drop_privileges(user)?;
        }
        println!("ringcache node listening on {}", handle.addr);
        // Stopped by SIGINT, a second SIGTERM or the `shutdown` command.
        let stop = CancellationToken::new();
        let (a, b, s) = (
            signals.stop.clone(),
            handle.node.shutdown.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            tokio::select! {
                _ = a.cancelled() => {}
                _ = b.cancelled() => {}
            }
            s.cancel();
        });
        tokio::select! {
            _ = signals.leave.cancelled() => {}
            _ = stop.cancelled() => {}
        }
        if let (false, Some((timeout, quiet))) = (stop.is_cancelled(), drain) {
            tracing::info!(
                "draining: serving on for at most {timeout:?} while the proxies move the keys \
                 (stats: draining 1)"
            );
            let end = handle.node.drain.run(timeout, quiet, &stop).await;
            tracing::info!("drain over ({end:?}): shutting down");
        }
        handle.shutdown().await;
        tracing::info!("node stopped");
        Ok(())
    })
}

/// Config file first, then flags on top.
fn proxy_config(args: &ProxyArgs) -> Result<ProxyConfig, Error> {
    layered(args.config.as_deref(), &args.overrides()?)
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
    let local_cfg: LocalConfig = layered(args.config.as_deref(), &args.overrides()?)?;
    runtime()?.block_on(async move {
        let signals = ringcache::server::listener::signal_token();
        let cluster = local::start(&local_cfg).await?;
        for (i, n) in cluster.nodes.iter().enumerate() {
            println!("node{} listening on {}", i + 1, n.addr);
        }
        println!(
            "ringcache proxy listening on {} ({} nodes, {} replicas)",
            cluster.proxy.addr, local_cfg.nodes, local_cfg.replicas
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
