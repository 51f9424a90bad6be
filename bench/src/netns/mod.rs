//! `ringcache-bench netns-faults`: faults on a real multi-host layout, with a writer/reader load
//! running through the proxy, and every acknowledged write checked on every owner at the end.
//!
//! Loopback cannot cut one host's link, so each `ringcache node` runs in its own network
//! namespace and the proxy in another, joined by veth pairs to a bridge in a namespace of its
//! own; addresses come from 198.18.0.0/15 (the benchmarking range) and exist only inside those
//! namespaces, with no default route. The bench's own load and check threads enter the proxy's
//! namespace (`setns`), so nothing is reachable from, or added to, the host's network. Every
//! namespace is deleted at the end (on failure and panic too: a guard owns them), after the
//! processes in them are killed.
//!
//! While writers (one per key set, so each key's values only grow) and readers run with
//! replicas 2, the harness cuts a node's link and restores it, SIGSTOPs and SIGCONTs a node,
//! and kills a node with SIGKILL and restarts it. It reports:
//! - acknowledged writes lost: a `set` answered `STORED`, whose value (or a newer one) is then
//!   missing on an owner, read directly from each owner at the end;
//! - stale reads: a `get` that returns a value older than one acknowledged before it was sent
//!   (or a miss);
//! - errors the clients saw.
//!
//! The goal is 0 lost and 0 stale; the command exits 1 otherwise, and 2 when it cannot run
//! (not root, no `ip`), which `.ci/run` treats as a failure on CI.
//!
//! The namespaces and the processes in them ([`hosts`]) and the checked load ([`load`]) are
//! shared with `secure-cluster`.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ringcache_client::protocol::Response;

use crate::error::Result;
use crate::harness::{self, Wire};
use crate::scenario::procs::TempDir;

pub mod cluster;
pub mod counters;
pub mod hosts;
pub mod load;

use cluster::Fault::{Kill, LinkDown, Stop};
pub use hosts::CannotRun;
use hosts::{enter_and, Net};
use load::{seq_of, value, Load, LoadSpec, Phase};

/// Faults on nodes in their own network namespaces under a writer/reader load (root only).
#[derive(Debug, Clone, Parser)]
#[command(name = "ringcache-bench netns-faults", version)]
pub struct NetnsArgs {
    /// The ringcache binary [default: target/release/ringcache].
    #[arg(long)]
    pub ringcache: Option<PathBuf>,
    /// Seconds each fault lasts (link down, process stopped, process dead).
    #[arg(long, default_value = "3", value_parser = harness::parse_secs)]
    pub fault: Duration,
    /// Keys written (split between the writers).
    #[arg(long, default_value_t = 400)]
    pub keys: usize,
    /// Keys written once before the faults and never again.
    #[arg(long, default_value_t = 1000)]
    pub cold: usize,
    /// Writer connections.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Reader connections.
    #[arg(long, default_value_t = 4)]
    pub readers: usize,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn cold_key(i: usize) -> String {
    format!("nfc_{i}")
}

/// Figures of a run.
pub struct Report {
    pub acked: u64,
    pub cold: usize,
    pub write_errors: u64,
    pub reads: u64,
    pub read_errors: u64,
    pub stale: u64,
    pub lost: u64,
    /// `cmd_flush` of each node at the end (node2's counts since its restart).
    pub flushes: String,
    pub examples: Vec<String>,
}

fn inner(a: &NetnsArgs, bin: &Path) -> Result<Report> {
    let tag = format!("rcf{}", std::process::id() % 100_000);
    let dir = TempDir::new()?;
    // Declared first so it is dropped last: processes die before their namespaces go.
    let net = Net::build(&tag, 4)?;
    let proxy_ns = net.hosts[3].clone();
    let node_addrs: Vec<String> = (0..3).map(|i| format!("{}:11211", Net::addr(i))).collect();
    let proxy_addr = format!("{}:11211", Net::addr(3));
    let mut nodes = cluster::start_nodes(&net, bin, &node_addrs, dir.path())?;
    let _proxy = cluster::start_proxy(
        "proxy",
        &proxy_ns,
        bin,
        &proxy_addr,
        &node_addrs,
        dir.path(),
    )?;
    enter_and(&proxy_ns, || {
        cluster::wait_all_up(node_addrs.iter().chain(std::iter::once(&proxy_addr)))
    })?;

    // Cold keys: written once before any fault and never again, so a flush that is not
    // repaired shows as a lost acknowledged write (hot keys are soon rewritten).
    let cold_acked = enter_and(&proxy_ns, || {
        let mut w = Wire::connect(&proxy_addr)?;
        let mut acked = Vec::new();
        for i in 0..a.cold {
            let v = value(1);
            let req = format!("set {} 0 0 {}\r\n{v}\r\n", cold_key(i), v.len());
            if let Ok(Response::Stored) = w.request(req.as_bytes(), Duration::from_secs(3)) {
                acked.push(i);
            }
        }
        Ok(acked)
    })?;
    let phase = Arc::new(Phase::new("netns-faults"));
    let mut load = Load::start(
        LoadSpec {
            ns: proxy_ns.clone(),
            proxies: vec![proxy_addr.clone()],
            keys: a.keys,
            prefix: "nf_",
            writers: a.writers,
            readers: a.readers,
            seed: a.seed,
        },
        phase.clone(),
    );
    let pause = |d: Duration| std::thread::sleep(d);
    let result = (|| -> Result<()> {
        pause(Duration::from_secs(3));
        cluster::run_faults(
            &phase,
            &net,
            &mut nodes,
            a.fault,
            &[
                (
                    LinkDown(0),
                    "node0 link down",
                    "after node0 link restored",
                    4,
                ),
                (Stop(1), "node1 SIGSTOP", "after node1 SIGCONT", 4),
                (
                    Kill(2),
                    "node2 killed (SIGKILL)",
                    "after node2 restarted",
                    5,
                ),
            ],
        )?;
        // Overlapping faults: node0's link is cut, and while it is away node1, which shares
        // keys with it, stops; node0 returns first, then node1.
        phase.set("node0 link down, then node1 SIGSTOP (overlap)");
        net.link(0, false)?;
        pause(Duration::from_secs(1));
        nodes[1].signal(libc::SIGSTOP);
        pause(a.fault);
        net.link(0, true)?;
        phase.set("node0 link restored while node1 is stopped");
        pause(a.fault);
        nodes[1].signal(libc::SIGCONT);
        phase.set("after node1 SIGCONT (overlap over)");
        pause(Duration::from_secs(6));
        Ok(())
    })();
    load.stop();
    result?;
    phase.set("settling before the final check");
    pause(Duration::from_secs(3));

    // Every acknowledged write, on every owner, read directly.
    let ring = cluster::owner_ring(&node_addrs)?;
    let (lost, flushes) = enter_and(&proxy_ns, || {
        let flushes: Vec<String> = node_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| match harness::cmd_flush(a) {
                Ok(n) => format!("node{i} {n}"),
                Err(e) => format!("node{i} ({e})"),
            })
            .collect();
        let mut wires = cluster::direct_wires(&node_addrs)?;
        let mut lost = 0u64;
        for (k, acked) in load.acked.iter().enumerate() {
            let want = acked.load(Ordering::Relaxed);
            if want == 0 {
                continue;
            }
            let mut bad = Vec::new();
            for owner in ring.replicas(load.key(k).as_bytes(), 2) {
                let got = wires[owner].request(
                    format!("get {}\r\n", load.key(k)).as_bytes(),
                    Duration::from_secs(3),
                );
                let seen = match &got {
                    Ok(Response::Values(v)) => v.first().and_then(|x| seq_of(&x.data)),
                    _ => None,
                };
                if seen.is_none_or(|s| s < want) {
                    bad.push(format!("node{owner} has {seen:?}"));
                }
            }
            if !bad.is_empty() {
                lost += 1;
                load.tally.example(format!(
                    "lost: {} acknowledged s{want}, {}",
                    load.key(k),
                    bad.join(", ")
                ));
            }
        }
        for &i in &cold_acked {
            let k = cold_key(i);
            let mut bad = Vec::new();
            for owner in ring.replicas(k.as_bytes(), 2) {
                let got =
                    wires[owner].request(format!("get {k}\r\n").as_bytes(), Duration::from_secs(3));
                let seen = match &got {
                    Ok(Response::Values(v)) => v.first().and_then(|x| seq_of(&x.data)),
                    _ => None,
                };
                if seen.is_none() {
                    bad.push(format!("node{owner} misses it"));
                }
            }
            if !bad.is_empty() {
                lost += 1;
                load.tally
                    .example(format!("lost: cold key {k}, {}", bad.join(", ")));
            }
        }
        Ok((lost, flushes.join(", ")))
    })?;
    let examples = load.tally.examples();
    let tally = load.tally.clone();
    drop(nodes);
    drop(net);
    Ok(Report {
        cold: cold_acked.len(),
        acked: tally.acked.load(Ordering::Relaxed),
        write_errors: tally.write_errors.load(Ordering::Relaxed),
        reads: tally.reads.load(Ordering::Relaxed),
        read_errors: tally.read_errors.load(Ordering::Relaxed),
        stale: tally.stale.load(Ordering::Relaxed),
        lost,
        flushes,
        examples,
    })
}

/// Runs and prints; exit code 0 (goal met), 1 (lost or stale writes), 2 (cannot run).
pub fn main(a: &NetnsArgs) -> i32 {
    match hosts::run_harness(a.ringcache.as_deref(), |bin| inner(a, bin)) {
        Ok(r) => {
            println!(
                "netns-faults: {} writes acknowledged (+ {} cold keys written once), {} write \
                 errors; {} reads, {} read errors; {} stale reads; {} acknowledged writes lost \
                 (goal: 0 stale, 0 lost)",
                r.acked, r.cold, r.write_errors, r.reads, r.read_errors, r.stale, r.lost
            );
            println!("  cmd_flush at the end: {}", r.flushes);
            for e in &r.examples {
                println!("  {e}");
            }
            i32::from(r.stale > 0 || r.lost > 0)
        }
        Err(why) => hosts::no_report_exit("netns-faults", why),
    }
}
