//! The `ringcache` binary: parses the command line and runs the chosen subcommand.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use ringcache::cli::{Cli, Command, NodeArgs};
use ringcache::config::NodeConfig;
use ringcache::node::{self, clock::SystemClock};
use ringcache::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Node(args) => run_node(args),
        _ => Err(Error::Config("not available in this build".into())),
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
    if args.enable_shutdown {
        cfg.enable_shutdown = true;
    }
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
        let handle = node::start(cfg, Arc::new(SystemClock)).await?;
        println!("ringcache node listening on {}", handle.addr);
        let signals = ringcache::listener::signal_token();
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
