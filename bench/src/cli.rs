//! The binary's command line, parsed by clap in one step: a load run (`ringcache-bench
//! --target …`, [`Args`]) or one of the subcommands, each with its own flags.

use clap::{Parser, Subcommand};

use crate::args::Args;
use crate::netns::counters::CountersArgs;
use crate::netns::NetnsArgs;
use crate::scenario::ScenarioArgs;
use crate::secure_cluster::SecureClusterArgs;
use crate::session_fuzz::SessionFuzzArgs;
use crate::soak::SoakArgs;

/// Load generator and A/B comparison harness for memcached-compatible servers; its subcommands
/// run the side-by-side scenario and the defect-hunting harnesses (docs/testing.md).
#[derive(Debug, Parser)]
#[command(
    name = "ringcache-bench",
    version,
    long_about = None,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The load run's flags, when no subcommand is named.
    #[command(flatten)]
    pub run: Args,
}

/// What `ringcache-bench NAME` runs; each one's `--help` is its flags' struct's.
#[derive(Debug, Subcommand)]
pub enum Command {
    Scenario(ScenarioArgs),
    SessionFuzz(SessionFuzzArgs),
    Soak(SoakArgs),
    NetnsFaults(NetnsArgs),
    SecureCluster(SecureClusterArgs),
    NetnsCounters(CountersArgs),
}
