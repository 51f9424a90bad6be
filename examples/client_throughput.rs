//! Throughput of the embedded `ringcache_client::Client` against one server, beside the Rust
//! `memcache` crate against the same server, same workload, alternating rounds.
//!
//! `cargo run --release --example client_throughput -- 127.0.0.1:11211 [rounds] [secs]`
//!
//! Workload: 1:10 set:get over 10 000 keys of 100-byte values, 32 concurrent callers (tasks for
//! the async client, threads for the blocking crate). Prints ops/s per round and the medians.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CALLERS: usize = 32;
const KEYS: u64 = 10_000;

fn key(i: u64) -> String {
    format!("bench:{:08}", i % KEYS)
}

async fn ringcache_round(client: &ringcache_client::Client, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let value = bytes::Bytes::from(vec![b'v'; 100]);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS as u64)
        .map(|t| {
            let (client, stop, ops, value) =
                (client.clone(), stop.clone(), ops.clone(), value.clone());
            tokio::spawn(async move {
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let k = key(i);
                    let ok = if i % 11 == 0 {
                        client.set(k.as_bytes(), value.clone(), 0, 0).await.is_ok()
                    } else {
                        client.get(k.as_bytes()).await.is_ok()
                    };
                    if ok {
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn memcache_round(addr: &str, secs: u64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let url = format!("memcache://{addr}?protocol=ascii&tcp_nodelay=true&timeout=5");
    let start = Instant::now();
    let threads: Vec<_> = (0..CALLERS as u64)
        .map(|t| {
            let (stop, ops, url) = (stop.clone(), ops.clone(), url.clone());
            std::thread::spawn(move || {
                let Ok(client) = memcache::Client::connect(url.as_str()) else {
                    return;
                };
                let value = [b'v'; 100];
                let mut i = t * 7919;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let k = key(i);
                    let ok = if i % 11 == 0 {
                        client.set(&k, &value[..], 0).is_ok()
                    } else {
                        client.get::<Vec<u8>>(&k).is_ok()
                    };
                    if ok {
                        ops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    ops.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:11211".into());
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = rt
        .block_on(
            ringcache_client::Client::builder()
                .nodes([addr.clone()])
                .replicas(1)
                .build(),
        )
        .expect("client connects");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 1..=rounds {
        let a = rt.block_on(ringcache_round(&client, secs));
        let b = memcache_round(&addr, secs);
        println!("round {r}: ringcache-client {a:.0} ops/s, memcache crate {b:.0} ops/s");
        ours.push(a);
        theirs.push(b);
    }
    let (a, b) = (median(ours), median(theirs));
    println!(
        "median: ringcache-client {a:.0} ops/s, memcache crate {b:.0} ops/s, ratio {:.2}",
        a / b
    );
}
