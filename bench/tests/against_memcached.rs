//! The bench's counts against the server's own: run a known op mix against a real server and
//! check that `stats` (cmd_get, cmd_set, get_hits) agrees with what the bench reports.
//!
//! A get of N keys is N `cmd_get` in memcached; the prefill pass and the warm-up are sent too, so
//! they are added in. The server comes from a [`Spawner`]: today Debian's memcached (skipped with
//! a message when it is not installed); a spawner for `ringcache node` can be dropped in later
//! and the same checks run against it. Every child process is killed when its guard drops.

mod common;

use clap::Parser;
use common::{bench_args, stats, words, Server};
use ringcache_bench::{run_blocking, Args, BenchReport};
use testkit::servers::{memcached, memcached_spawn};
use testkit::Output;

/// Starts a memcached-compatible server on a free loopback port.
trait Spawner {
    fn name(&self) -> &'static str;
    /// `None` when this kind of server is not available here (the test is then skipped).
    fn spawn(&self) -> Option<Server>;
}

/// Debian's `/usr/bin/memcached`, or `memcached` on PATH.
struct Memcached;

impl Spawner for Memcached {
    fn name(&self) -> &'static str {
        "memcached"
    }

    fn spawn(&self) -> Option<Server> {
        let bin = testkit::bins::memcached_bin()?;
        let how = memcached_spawn("memcached").output(Output::Inherit);
        let proc =
            memcached(&bin, &["-t", "2", "-m", "64"], &how).unwrap_or_else(|e| panic!("{e}"));
        Some(Server::new(proc))
    }
}

/// The spawners every check runs against. (Add `ringcache node` here when it exists.)
fn spawners() -> Vec<Box<dyn Spawner>> {
    vec![Box::new(Memcached)]
}

/// The bench's arguments against `addr`: two threads, then `options`, a command line's words.
fn args(addr: &str, options: &str) -> Args {
    bench_args(addr, &["--threads", "2"], &words(options))
}

/// A running server and the spawner it came from.
struct Target<'a> {
    spawner: &'a dyn Spawner,
    server: Server,
}

impl Target<'_> {
    /// Runs the bench against the server with `options`, checks that the server counted exactly
    /// what the bench reports (see [`assert_counts_agree`]) and returns the report for the
    /// caller's own checks.
    fn run(&self, options: &str) -> BenchReport {
        let report = run_blocking(&args(&self.server.addr, options)).expect("bench run");
        assert_counts_agree(self.spawner.name(), &self.server.addr, &report);
        report
    }

    /// Another server of the same kind, fresh.
    fn another(&self) -> Target<'_> {
        let server = self.spawner.spawn().expect("second server");
        Target {
            spawner: self.spawner,
            server,
        }
    }
}

/// Runs `check` against a fresh server of every spawner, skipping (with a message) the kinds not
/// installed here.
fn for_each_server(check: impl Fn(Target)) {
    for spawner in spawners() {
        let Some(server) = spawner.spawn() else {
            println!("skip: {} not installed", spawner.name());
            continue;
        };
        check(Target {
            spawner: spawner.as_ref(),
            server,
        });
    }
}

/// Checks that the server counted exactly what the bench says it sent and got.
fn assert_counts_agree(server: &str, addr: &str, report: &BenchReport) {
    let st = stats(addr);
    let run = &report.runs[0];
    let prefill_sets: u64 = report.prefill.iter().map(|p| p.counts.sets).sum();
    let sets = prefill_sets + run.warmup.sets + run.counts.sets;
    let get_keys = run.warmup.get_keys + run.counts.get_keys;
    let hits = run.warmup.hits + run.counts.hits;
    assert_eq!(run.errors, 0, "{server}: errors: {:?}", run.first_error);
    assert_eq!(st["cmd_set"], sets, "{server}: cmd_set vs bench sets");
    assert_eq!(
        st["cmd_get"], get_keys,
        "{server}: cmd_get vs bench get keys"
    );
    assert_eq!(st["get_hits"], hits, "{server}: get_hits vs bench hits");
    assert_eq!(
        st["get_hits"] + st["get_misses"],
        st["cmd_get"],
        "{server}: its own books balance"
    );
}

#[test]
fn text_multiget_with_prefill_and_warmup_matches_server_stats() {
    for_each_server(|t| {
        let pid = t.server.pid();
        let report = t.run(&format!(
            "--connections 4 --pipeline 8 --duration 1 --warmup 0.3 --ratio 1:4 --multiget 3 \
             --keys 2000 --value-size 10-200 --prefill --pids {pid}"
        ));
        let run = &report.runs[0];
        assert_eq!(
            report.prefill[0].counts.sets, 2000,
            "prefill writes every key once"
        );
        assert!(run.counts.ops > 100, "some load was applied: {run:?}");
        assert_eq!(run.counts.get_keys, run.counts.gets * 3, "3 keys per get");
        // Everything was prefilled and 64 MiB holds it all: every key is a hit.
        assert_eq!(run.hit_ratio, Some(1.0));
        assert!(run.warmup.ops > 0, "warm-up ran and was kept apart");
        assert!(run.latency_us.samples == run.counts.ops);
        let cpu = run.cpu.as_ref().expect("cpu figures with --pids");
        assert_eq!(cpu.pids, vec![pid]);
        let json = report.to_json().expect("json");
        assert!(json.contains("\"get_keys\""));
    });
}

#[test]
fn meta_protocol_with_misses_matches_server_stats() {
    for_each_server(|t| {
        // No prefill and a big key space: most gets miss, and the counts must still agree.
        let report = t.run(
            "--connections 3 --pipeline 4 --duration 0.7 --ratio 1:1 --multiget 2 --keys 1000000 \
             --protocol meta --dist zipf:1.1",
        );
        let run = &report.runs[0];
        assert!(run.counts.gets > 0 && run.counts.sets > 0);
        let hr = run.hit_ratio.expect("gets were answered");
        assert!(
            hr > 0.0 && hr < 1.0,
            "some hits (hot zipf keys) and some misses: {hr}"
        );
    });
}

#[test]
fn requests_limit_and_open_loop_send_exact_counts() {
    for_each_server(|t| {
        let report = t.run("--connections 5 --pipeline 4 --requests 3000 --ratio 1:2");
        assert_eq!(report.runs[0].counts.ops, 3000);

        // Open loop: 4 connections at 2000 ops/s for 1 s intend exactly 2000 sends, each
        // connection's k-th op due at its phase + k × 2 ms; all of them are sent even if late.
        let report = t
            .another()
            .run("--connections 4 --rate 2000 --duration 1 --ratio 0:1");
        let ops = report.runs[0].counts.ops;
        assert!((1996..=2004).contains(&ops), "open loop sent {ops}");
    });
}

#[test]
fn compare_mode_alternates_and_reports_medians() {
    for spawner in spawners() {
        let (Some(a_srv), Some(b_srv)) = (spawner.spawn(), spawner.spawn()) else {
            println!("skip: {} not installed", spawner.name());
            continue;
        };
        let a = Args::try_parse_from([
            "ringcache-bench",
            "--quiet",
            "--threads",
            "2",
            "--target",
            &a_srv.addr,
            "--target",
            &b_srv.addr,
            "--rounds",
            "3",
            "--connections",
            "2",
            "--duration",
            "0.2",
            "--pids",
            &a_srv.pid().to_string(),
            "--pids",
            &b_srv.pid().to_string(),
        ])
        .expect("args");
        let report = run_blocking(&a).expect("bench run");
        let order: Vec<(usize, usize)> = report
            .runs
            .iter()
            .map(|r| (r.round, r.target_index))
            .collect();
        assert_eq!(order, vec![(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]);
        assert_eq!(report.targets.len(), 2);
        assert_eq!(report.targets[0].ratio_ops_per_sec, Some(1.0));
        assert!(report.targets[1].ratio_ops_per_sec.is_some_and(|r| r > 0.0));
        assert_eq!(report.targets[1].rounds, 3);
        assert!(report.render().contains("medians per target"));
    }
}
