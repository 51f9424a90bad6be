//! `ringcache-bench`: load generator and A/B comparison harness for memcached-compatible servers.
//!
//! Progress lines go to stderr; the final table goes to stdout; `--json FILE` writes the same
//! figures as JSON. Exit status: 0 after a run (even with counted errors), 1 when the run could
//! not be made (bad flags, unreachable target, unreadable pid), 2 for clap's usage errors.

use clap::Parser;
use ringcache_bench::{run_blocking, write_json, Args};

fn main() {
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
