//! `ringcache-bench` as a library: the load generator and comparison harness behind the
//! `ringcache-bench` binary, callable from integration tests.
//!
//! - [`cli`]: the binary's command line: a run or a subcommand, parsed by clap.
//! - [`args`]: a run's flags ([`Args`]), which are also the description of a run.
//! - [`workload`]: keys, values and the op mix, deterministic from the seed.
//! - [`driver`]: connections, pipelining, open/closed loop, counting and timing.
//! - [`driver::embedded`]: the `embedded:ADDR,…` target, driving `ringcache_client::Client` in-process.
//! - [`report`]: histogram merge, percentiles, medians, ratios, the table and the JSON.
//! - [`cpu`]: server CPU time from `/proc/PID/stat`.
//! - [`compare`]: a whole invocation: prefill, alternating rounds, medians.
//! - [`scenario`]: `ringcache-bench scenario`, which starts memcached, nutcracker and ringcache,
//!   runs the standard matrix and writes `bench/RESULTS.md` with SVG plots.
//! - [`harness`], [`session_fuzz`], [`netns`], [`secure_cluster`], [`soak`]: the defect-hunting
//!   harnesses (see docs/testing.md).
//!
//! Requests are encoded and replies parsed by `ringcache-client`'s protocol module, the same
//! code the node and the proxy use.

pub mod args;
pub mod cli;
pub mod compare;
pub mod cpu;
pub mod driver;
pub mod error;
pub mod harness;
pub mod netns;
pub mod report;
pub mod scenario;
pub mod secure_cluster;
pub mod session_fuzz;
pub mod soak;
pub mod workload;

pub use args::Args;
pub use error::{BenchError, Result};
pub use report::{BenchReport, Counts, RunSummary};

/// Runs `args` on a fresh multi-threaded runtime with `--threads` workers; blocks until done.
pub fn run_blocking(args: &Args) -> Result<BenchReport> {
    args.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.worker_threads())
        .enable_all()
        .build()?;
    rt.block_on(compare::run(args))
}

/// Writes the report as JSON to `args.json`, when given.
pub fn write_json(args: &Args, report: &BenchReport) -> Result<()> {
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json()? + "\n")?;
    }
    Ok(())
}
