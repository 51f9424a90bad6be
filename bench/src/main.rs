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
//! `ringcache-bench secure-cluster`.

use clap::Parser;
use ringcache_bench::scenario::{self, ScenarioArgs};
use ringcache_bench::{netns, secure_cluster, session_fuzz, soak};
use ringcache_bench::{run_blocking, write_json, Args};

fn main() {
    if let Some(passed) = harness_command() {
        std::process::exit(if passed { 0 } else { 1 });
    }
    if std::env::args().nth(1).as_deref() == Some("scenario") {
        let a = ScenarioArgs::parse_from(std::env::args().skip(1));
        if let Err(e) = scenario::run_blocking(&a) {
            eprintln!("ringcache-bench scenario: {e}");
            std::process::exit(1);
        }
        return;
    }
    let args = Args::parse();
    match run_blocking(&args).and_then(|report| {
        print!("{}", report.render());
        write_json(&args, &report)
    }) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("ringcache-bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs a defect-hunting subcommand if one was named: `Some(passed)`.
fn harness_command() -> Option<bool> {
    let name = std::env::args().nth(1)?;
    let args = std::env::args().skip(1);
    let outcome = match name.as_str() {
        "session-fuzz" => session_fuzz::main(&session_fuzz::SessionFuzzArgs::parse_from(args)),
        "soak" => soak::main(&soak::SoakArgs::parse_from(args)),
        "netns-faults" => {
            // 2: could not run (not root, no iproute2), which callers may treat as a skip.
            std::process::exit(netns::main(&netns::NetnsArgs::parse_from(args)));
        }
        "netns-counters" => {
            // The same codes as netns-faults.
            let a = netns::counters::CountersArgs::parse_from(args);
            std::process::exit(netns::counters::main(&a));
        }
        "secure-cluster" => {
            // The same codes as netns-faults.
            let a = secure_cluster::SecureClusterArgs::parse_from(args);
            std::process::exit(secure_cluster::main(&a));
        }
        _ => return None,
    };
    Some(outcome.unwrap_or_else(|e| {
        eprintln!("ringcache-bench {name}: {e}");
        false
    }))
}
