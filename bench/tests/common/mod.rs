//! Helpers shared by the bench's integration tests, on top of `testkit`.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;

use testkit::Proc;

/// A server started for one test, its address as the bench's `--target` takes it.
pub struct Server {
    pub proc: Proc,
    pub addr: String,
}

impl Server {
    pub fn new(proc: Proc) -> Server {
        Server {
            addr: proc.addr.to_string(),
            proc,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// A server's general `stats`, numeric fields only, parsed with the shared protocol parser.
pub fn stats(addr: &str) -> HashMap<String, u64> {
    testkit::stats(addr).unwrap_or_else(|e| panic!("stats: {e}"))
}

/// The words of `line`, a command line's options written as one string.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// `ringcache-bench --target TARGET --quiet <base> <extra>`, parsed.
pub fn bench_args(target: &str, base: &[&str], extra: &[&str]) -> ringcache_bench::Args {
    use clap::Parser;
    let mut argv = vec!["ringcache-bench", "--target", target, "--quiet"];
    argv.extend_from_slice(base);
    argv.extend_from_slice(extra);
    ringcache_bench::Args::try_parse_from(argv).expect("bench args")
}
