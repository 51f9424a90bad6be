//! `ringcache-bench soak`: a real proxy and real nodes under mixed load for minutes, with the
//! clients a cache tier meets on a bad day, and the RSS of every process sampled against the
//! bound it was configured with.
//!
//! Clients: writers and readers of values up to 100 KB (enough to fill every node to its memory
//! limit), slow readers (big multi-gets read a few KB at a time), clients that pipeline big
//! reads and never read a byte, clients that disconnect in the middle of a request, and clients
//! that send garbage. RSS comes from `/proc/PID/status` once a second. A node's bound is its
//! `memory_limit_mb`; the proxy's is `--proxy-bound-mb`, which should be the sum of the caps its
//! config sets (`--proxy-config` adds settings, e.g. in-flight byte caps). The run passes when
//! every process's RSS growth over its idle RSS (taken before the load) stays within 10 % of its
//! bound and the cluster still answers at the end; the total is printed beside it. It is not part of `cargo test`: it takes minutes by design.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use ringcache_client::protocol::Response;

use crate::error::Result;
use crate::harness::{self, Cluster, Wire};
use crate::scenario::procs;

/// Mixed load with hostile clients; RSS of every process against its configured bound.
#[derive(Debug, Clone, Parser)]
#[command(name = "ringcache-bench soak", version)]
pub struct SoakArgs {
    /// How long the load runs.
    #[arg(long, default_value = "180", value_parser = harness::parse_secs)]
    pub duration: Duration,
    /// Memory limit of each node, MiB (its RSS bound).
    #[arg(long, default_value_t = 64)]
    pub node_mem_mb: u64,
    /// The proxy's RSS bound, MiB: what its configured caps allow.
    #[arg(long, default_value_t = 64)]
    pub proxy_bound_mb: u64,
    /// Extra top-level settings for the proxy's config (TOML lines, e.g. byte caps).
    #[arg(long, default_value = "")]
    pub proxy_config: String,
    /// Clients of each kind.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// The ringcache binary [default: target/release/ringcache].
    #[arg(long)]
    pub ringcache: Option<PathBuf>,
    /// Seed of the load.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

const KEYS: u64 = 20_000;

fn key(i: u64) -> String {
    format!("soak_{i}")
}

/// What a client kind does in one step; returns false to reconnect.
fn step(kind: usize, w: &mut Wire, rng: &mut Xoshiro256PlusPlus, ops: &AtomicU64) -> bool {
    let t = Duration::from_secs(5);
    match kind {
        // Writer: values of 100 B to 100 KB.
        0 => {
            let len = [100, 1000, 10_000, 100_000][rng.random_range(0..4)];
            let v = vec![b'v'; len];
            let mut req =
                format!("set {} 0 0 {len}\r\n", key(rng.random_range(0..KEYS))).into_bytes();
            req.extend_from_slice(&v);
            req.extend_from_slice(b"\r\n");
            ops.fetch_add(1, Ordering::Relaxed);
            w.request(&req, t).is_ok()
        }
        // Reader.
        1 => {
            ops.fetch_add(1, Ordering::Relaxed);
            w.request(
                format!("get {}\r\n", key(rng.random_range(0..KEYS))).as_bytes(),
                t,
            )
            .is_ok()
        }
        // Garbage: random bytes, then a resync check.
        2 => {
            let n = rng.random_range(1..2000);
            let junk: Vec<u8> = (0..n).map(|_| rng.random::<u8>() & 0x7f).collect();
            ops.fetch_add(1, Ordering::Relaxed);
            let _ = w.send(&junk);
            let _ = w.send(b"\r\n");
            let _ = w.drain(
                Duration::from_millis(50),
                Duration::from_millis(200),
                1 << 20,
            );
            false
        }
        _ => true,
    }
}

/// A client that pipelines big multi-gets and reads `rate` bytes per 100 ms, or never reads.
fn slow(addr: &str, stop: &AtomicBool, rate: usize, ops: &AtomicU64) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut line = String::from("get");
    for i in 0..400 {
        line.push_str(&format!(" {}", key(i)));
    }
    line.push_str("\r\n");
    let mut buf = vec![0u8; rate.max(1)];
    while !stop.load(Ordering::Relaxed) {
        // Writes stop succeeding once the proxy stops reading us: that is the point.
        if s.write_all(line.as_bytes()).is_ok() {
            ops.fetch_add(1, Ordering::Relaxed);
        }
        if rate > 0 {
            let _ = s.read(&mut buf);
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A client that sends half a request and hangs up.
fn quitter(addr: &str, rng: &mut Xoshiro256PlusPlus, ops: &AtomicU64) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return;
    };
    let req = match rng.random_range(0..3) {
        0 => format!(
            "set {} 0 0 100000\r\n{}",
            key(rng.random_range(0..KEYS)),
            "h".repeat(50_000)
        ),
        1 => format!("get {}", (0..300).map(key).collect::<Vec<_>>().join(" ")),
        _ => format!(
            "get {}\r\n",
            (0..300).map(key).collect::<Vec<_>>().join(" ")
        ),
    };
    let _ = s.write_all(req.as_bytes());
    ops.fetch_add(1, Ordering::Relaxed);
    drop(s);
}

/// One process's RSS figures.
pub struct Sampled {
    pub name: String,
    pub pid: u32,
    pub bound: u64,
    pub max_rss: u64,
    /// RSS before any load (code pages, runtime, empty tables): the fixed part of `max_rss`,
    /// reported so a small bound's ratio can be read as fixed base + growth.
    pub idle_rss: u64,
}

pub fn main(a: &SoakArgs) -> Result<bool> {
    let bin = harness::ringcache_bin(a.ringcache.as_deref())?;
    let c = Cluster::start(&bin, 3, 2, a.node_mem_mb, &a.proxy_config)?;
    let proxy = c.proxy_addr();
    eprintln!(
        "soak: proxy {proxy} (pid {}), nodes {} with {} MiB each, {:.0} s",
        c.proxy.pid(),
        c.node_addrs().join(","),
        a.node_mem_mb,
        a.duration.as_secs_f64()
    );
    let mut sampled: Vec<Sampled> = c
        .nodes
        .iter()
        .map(|p| (p, a.node_mem_mb))
        .chain(std::iter::once((&c.proxy, a.proxy_bound_mb)))
        .map(|(p, mb)| Sampled {
            name: p.name.clone(),
            pid: p.pid(),
            bound: mb * 1024 * 1024,
            max_rss: 0,
            idle_rss: procs::vm_rss(p.pid()).unwrap_or(0),
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for kind in 0..6 {
        for n in 0..a.clients.max(1) {
            let (stop, ops, addr) = (stop.clone(), ops.clone(), proxy.clone());
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(a.seed ^ ((kind * 1000 + n) as u64));
            threads.push(std::thread::spawn(move || match kind {
                0..=2 => {
                    let mut w: Option<Wire> = None;
                    while !stop.load(Ordering::Relaxed) {
                        if w.is_none() {
                            w = Wire::connect(&addr).ok();
                        }
                        let keep = w.as_mut().is_some_and(|c| step(kind, c, &mut rng, &ops));
                        if !keep {
                            w = None;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
                3 => slow(&addr, &stop, 2048, &ops),
                4 => slow(&addr, &stop, 0, &ops),
                _ => {
                    while !stop.load(Ordering::Relaxed) {
                        quitter(&addr, &mut rng, &ops);
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }));
        }
    }
    let start = Instant::now();
    let mut last_note = Instant::now();
    while start.elapsed() < a.duration {
        std::thread::sleep(Duration::from_secs(1));
        for s in sampled.iter_mut() {
            if let Ok(rss) = procs::vm_rss(s.pid) {
                s.max_rss = s.max_rss.max(rss);
            }
        }
        if last_note.elapsed() > Duration::from_secs(15) {
            let now: Vec<String> = sampled
                .iter()
                .map(|s| format!("{} {:.1} MiB", s.name, s.max_rss as f64 / 1048576.0))
                .collect();
            eprintln!(
                "soak: {:.0} s, max RSS so far: {}",
                start.elapsed().as_secs_f64(),
                now.join(", ")
            );
            last_note = Instant::now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // The cluster must still answer.
    let alive = Wire::connect(&proxy)
        .ok()
        .and_then(|mut w| w.request(b"mn\r\n", Duration::from_secs(5)).ok())
        .is_some_and(|r| matches!(r, Response::Meta(_)));
    println!(
        "soak: {:.0} s, {} client operations; proxy answers mn at the end: {alive}",
        start.elapsed().as_secs_f64(),
        ops.load(Ordering::Relaxed)
    );
    let mut ok = alive;
    for s in &sampled {
        let ratio = s.max_rss as f64 / s.bound as f64;
        let growth = s.max_rss.saturating_sub(s.idle_rss) as f64 / s.bound as f64;
        // The verdict is on growth: what the configured bound governs. The idle base (the
        // binary's code pages, the runtime, empty tables) is outside `-m` for memcached too,
        // and printed so the total can be read as well.
        let within = growth <= 1.10;
        ok &= within;
        println!(
            "  {:<6} pid {:<7} max RSS {:>7.1} MiB, bound {:>5} MiB: growth {:>5.1} % of bound — \
             {} (idle {:.1} MiB; total {:.1} % of bound)",
            s.name,
            s.pid,
            s.max_rss as f64 / 1048576.0,
            s.bound / 1048576,
            growth * 100.0,
            if within { "within 10 %" } else { "OVER" },
            s.idle_rss as f64 / 1048576.0,
            ratio * 100.0,
        );
    }
    Ok(ok)
}
