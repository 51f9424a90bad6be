//! The `embedded:` target against real `ringcache node` processes: run the in-process client for
//! about a second and check the bench's counts against the nodes' own `stats` (summed over the
//! three nodes, replicas 1, so every op lands on exactly one node).
//!
//! The `ringcache` binary is not built for this package's tests by itself: the test uses
//! `$RINGCACHE_BIN`, else the `ringcache` next to this test's target directory (debug, then
//! release; `cargo test --workspace` and `cargo build --release` put it there), and is skipped
//! with a message when there is none. Every node is killed when its guard drops.

mod common;

use std::path::Path;

use common::{bench_args, stats, words, Server as Node};
use ringcache_bench::{run_blocking, BenchReport};
use testkit::bins::ringcache_bin;
use testkit::servers::{ringcache_node, ringcache_spawn};
use testkit::Output;

fn start_node(bin: &Path) -> Node {
    let how = ringcache_spawn("node").output(Output::Inherit);
    let proc = ringcache_node(bin, "127.0.0.1:0", &["--memory-limit", "64"], &how)
        .unwrap_or_else(|e| panic!("{e}"));
    Node::new(proc)
}

fn summed(nodes: &[Node], name: &str) -> u64 {
    nodes.iter().map(|n| stats(&n.addr)[name]).sum()
}

/// Runs the bench's embedded target with `options` over three fresh nodes and checks that the
/// nodes counted what the bench reports ([`assert_counts_agree`]); `None` (with a message: the
/// test is skipped) without a `ringcache` binary.
fn run_on_three_nodes(options: &str) -> Option<(Vec<Node>, BenchReport)> {
    let Some(bin) = ringcache_bin() else {
        println!("skip: no ringcache binary (set RINGCACHE_BIN or build the workspace first)");
        return None;
    };
    let nodes: Vec<Node> = (0..3).map(|_| start_node(&bin)).collect();
    let report = run(&nodes, options);
    assert_counts_agree(&nodes, &report);
    Some((nodes, report))
}

/// Runs the bench's embedded target over `nodes` with `options`, a command line's words.
fn run(nodes: &[Node], options: &str) -> BenchReport {
    let target = format!(
        "embedded:{}",
        nodes
            .iter()
            .map(|n| n.addr.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let pids = nodes
        .iter()
        .map(|n| n.pid().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let a = bench_args(
        &target,
        &["--pids", &pids, "--threads", "2"],
        &words(options),
    );
    run_blocking(&a).expect("bench run")
}

fn assert_counts_agree(nodes: &[Node], report: &BenchReport) {
    let run = &report.runs[0];
    assert_eq!(run.errors, 0, "errors: {:?}", run.first_error);
    let prefill_sets: u64 = report.prefill.iter().map(|p| p.counts.sets).sum();
    assert_eq!(
        summed(nodes, "cmd_set"),
        prefill_sets + run.warmup.sets + run.counts.sets,
        "cmd_set over the nodes vs the bench's sets"
    );
    assert_eq!(
        summed(nodes, "cmd_get"),
        run.warmup.get_keys + run.counts.get_keys,
        "cmd_get over the nodes vs the bench's get keys"
    );
    assert_eq!(
        summed(nodes, "get_hits"),
        run.warmup.hits + run.counts.hits,
        "get_hits over the nodes vs the bench's hits"
    );
}

#[test]
fn embedded_target_counts_match_node_stats() {
    let Some((_nodes, report)) = run_on_three_nodes(
        "--connections 4 --pipeline 8 --duration 1 --warmup 0.2 --ratio 1:4 --keys 2000 \
         --value-size 10-200 --prefill",
    ) else {
        return;
    };
    let run = &report.runs[0];
    assert_eq!(report.prefill[0].counts.sets, 2000, "every key once");
    assert!(run.counts.ops > 100, "some load was applied: {run:?}");
    assert!(run.warmup.ops > 0, "warm-up ran and was kept apart");
    assert_eq!(run.hit_ratio, Some(1.0), "everything was prefilled");
    assert_eq!(run.latency_us.samples, run.counts.ops);
    let cpu = run.cpu.as_ref().expect("cpu figures with --pids");
    assert_eq!(cpu.pids.len(), 3);
}

#[test]
fn embedded_multiget_and_requests_limit() {
    // No prefill and a large key space: most keys miss, and the books must still agree.
    let Some((nodes, report)) = run_on_three_nodes(
        "--connections 3 --pipeline 4 --requests 1500 --duration 5 --ratio 1:1 --multiget 10 \
         --keys 1000000 --dist zipf:1.1",
    ) else {
        return;
    };
    let run = &report.runs[0];
    assert_eq!(run.counts.ops, 1500, "exactly --requests ops");
    assert_eq!(run.counts.get_keys, run.counts.gets * 10);
    let hr = run.hit_ratio.expect("gets were answered");
    assert!(hr > 0.0 && hr < 1.0, "hot keys hit, cold ones miss: {hr}");
    // Open loop is refused for embedded targets, with a clear message.
    let target = format!("embedded:{}", nodes[0].addr);
    let a = bench_args(&target, &[], &words("--rate 100 --duration 0.2"));
    let e = run_blocking(&a).expect_err("open loop refused");
    assert!(e.to_string().contains("--rate"), "{e}");
}
