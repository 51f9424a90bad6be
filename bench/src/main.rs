//! `ringcache-bench`: load generator and A/B comparison harness for memcached-compatible servers.
//!
//! Progress lines go to stderr; the final table goes to stdout; `--json FILE` writes the same
//! figures as JSON. Exit status: 0 after a run (even with counted errors), 1 when the run could
//! not be made (bad flags, unreachable target, unreadable pid), 2 for clap's usage errors.
//!
//! `ringcache-bench scenario [--quick]` runs the whole side-by-side comparison instead and
//! writes `bench/RESULTS.md` (see `ringcache-bench scenario --help`).

use clap::Parser;
use ringcache_bench::scenario::{self, ScenarioArgs};
use ringcache_bench::{run_blocking, write_json, Args};

fn main() {
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
