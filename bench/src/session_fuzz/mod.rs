//! `ringcache-bench session-fuzz`: mutated classic and meta commands from many connections
//! through a real proxy in front of real nodes, with the cluster's data checked after every
//! round of cases.
//!
//! Coverage-guided fuzzing (`fuzz/`) finds what one connection's bytes can do inside one
//! process; this finds what they do to a real cluster: processes, backend connections shared by
//! every client, health marking, copies. Each case is a mutation of valid commands (flag tokens
//! merged, split or repeated; keys with control bytes or base64 that decodes to `\r\n`; sizes
//! over the limit; `noreply`/`q`; huge multi-gets; truncated data blocks). After each round —
//! one case per worker connection, sent at once — the harness checks that:
//!
//! - every canary key reads back through the proxy with its exact value;
//! - no node was flushed (`stats` `cmd_flush` of each node stays where it was; no case sends
//!   `flush_all`);
//! - every idle witness connection still answers `mn` with `MN`, and so does each case's own
//!   connection when the case left it in step (decided by running the case through the same
//!   codec the proxy runs);
//! - every `VALUE` a case gets back is for a key of that case.
//!
//! A failing round is replayed case by case to find the culprit, which is then shrunk line by
//! line (bounded) and reported with its bytes.
//!
//! One job per file: [`framing`] (what the proxy's codec makes of a case), [`gen`] (the cases),
//! [`case`] (one case on its connection), [`target`] (the cluster and its checks), [`shrink`]
//! (blaming and shrinking), [`run`] (the rounds) and [`report`] (what is printed).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::harness;

mod case;
mod framing;
mod gen;
mod report;
mod run;
mod shrink;
mod target;

pub use report::main;
pub use run::{run, Finding, Summary};

/// Mutated commands through a real proxy and real nodes; canaries, `mn` and node flushes
/// checked after every round.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringcache-bench session-fuzz", version)]
pub struct SessionFuzzArgs {
    /// Stop after this many seconds.
    #[arg(long, default_value = "60", value_parser = harness::parse_secs)]
    pub duration: Duration,
    /// Stop after this many cases.
    #[arg(long, default_value_t = 1_000_000)]
    pub cases: u64,
    /// Seed of the case generator [default: from the clock; printed].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Connections sending cases (one case each per round).
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Idle connections that must keep answering `mn`.
    #[arg(long, default_value_t = 8)]
    pub witnesses: usize,
    /// Canary keys stored before the run.
    #[arg(long, default_value_t = 32)]
    pub canaries: usize,
    /// Stop after this many failing rounds.
    #[arg(long, default_value_t = 5)]
    pub max_failures: usize,
    /// Use this running proxy instead of starting one (then --nodes names its nodes).
    #[arg(long, requires = "nodes")]
    pub proxy: Option<String>,
    /// The running proxy's nodes, HOST:PORT,… (their `cmd_flush` is watched).
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
    /// The ringcache binary [default: target/release/ringcache].
    #[arg(long)]
    pub ringcache: Option<PathBuf>,
}
