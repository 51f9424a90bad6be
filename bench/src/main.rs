//! `ringcache-bench`: load generator and A/B comparison harness for memcached-compatible servers.
//!
//! Progress lines go to stderr; the final table goes to stdout; `--json FILE` writes the same
//! figures as JSON. Exit status: 0 after a run (even with counted errors), 1 when the run could
//! not be made (bad flags, unreachable target, unreadable pid), 2 for clap's usage errors.
//!
//! `ringcache-bench scenario [--quick]` runs the whole side-by-side comparison instead and
//! writes `bench/RESULTS.md` (see `ringcache-bench scenario --help`).
//!
//! The defect-hunting harnesses (docs/testing.md) exit 1 when they find a failure:
//! `ringcache-bench session-fuzz`, `ringcache-bench soak`, `ringcache-bench netns-faults`,
//! `ringcache-bench secure-cluster`, `ringcache-bench netns-counters`. The command line is one clap parse (`cli::Cli`): a run's
//! flags, or a subcommand with its own.

use clap::Parser;
use ringcache_bench::cli::{Cli, Command};
use ringcache_bench::{netns, scenario, secure_cluster, session_fuzz, soak};
use ringcache_bench::{run_blocking, write_json, Args};

fn main() {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return run(&cli.run);
    };
    let (name, outcome) = match command {
        Command::Scenario(a) => {
            if let Err(e) = scenario::run_blocking(&a) {
                eprintln!("ringcache-bench scenario: {e}");
                std::process::exit(1);
            }
            return;
        }
        Command::SessionFuzz(a) => ("session-fuzz", session_fuzz::main(&a)),
        Command::Soak(a) => ("soak", soak::main(&a)),
        // 2: could not run (not root, no iproute2), which callers may treat as a skip.
        Command::NetnsFaults(a) => std::process::exit(netns::main(&a)),
        // The same codes as netns-faults.
        Command::SecureCluster(a) => std::process::exit(secure_cluster::main(&a)),
        // The same codes as netns-faults.
        Command::NetnsCounters(a) => std::process::exit(netns::counters::main(&a)),
    };
    let passed = outcome.unwrap_or_else(|e| {
        eprintln!("ringcache-bench {name}: {e}");
        false
    });
    std::process::exit(if passed { 0 } else { 1 });
}

/// One load run (or an A/B comparison): the table on stdout, the JSON to `--json`.
fn run(args: &Args) {
    match run_blocking(args).and_then(|report| {
        print!("{}", report.render());
        write_json(args, &report)
    }) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ringcache-bench: {e}");
            std::process::exit(1);
        }
    }
}
