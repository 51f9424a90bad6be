//! The checked load of the namespace harnesses: writers and readers through one or more
//! proxies, every acknowledged write remembered, every stale read counted.
//!
//! Each writer owns a share of the keys (keys `w`, `w + writers`, …), so a key's values only
//! grow: a value carries its sequence number (`s<seq>-padding`), and a read that returns a
//! lower one than was acknowledged before it was sent (or a miss) is stale. Connection `i`
//! (writer or reader) goes to proxy `i % proxies`. The load can be paused, so a check reads
//! the cluster with no request of the load in between.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use ringcache_client::protocol::Response;

use super::hosts::enter;
use crate::harness::Wire;

/// Limit on one request of the load.
const REQUEST_LIMIT: Duration = Duration::from_secs(3);

/// What the load saw.
#[derive(Default)]
pub struct Tally {
    pub acked: AtomicU64,
    pub write_errors: AtomicU64,
    pub reads: AtomicU64,
    pub read_errors: AtomicU64,
    pub stale: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    /// Keeps `s` as an example (a few of each kind: the text before its first `:`).
    pub fn example(&self, s: String) {
        let mut e = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        let kind = s.split(':').next().unwrap_or("").to_string();
        if e.iter().filter(|x| x.starts_with(&kind)).count() < 5 {
            e.push(s);
        }
    }

    pub fn examples(&self) -> Vec<String> {
        self.examples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The sequence number a value carries (`s<seq>-padding`).
pub fn seq_of(data: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(data).ok()?;
    s.strip_prefix('s')?.split('-').next()?.parse().ok()
}

/// The value of sequence number `seq`.
pub fn value(seq: u64) -> String {
    format!("s{seq}-{}", "x".repeat(40))
}

/// The current phase of a run, named in the examples and printed as it changes.
pub struct Phase {
    harness: &'static str,
    now: Mutex<String>,
}

impl Phase {
    pub fn new(harness: &'static str) -> Phase {
        Phase {
            harness,
            now: Mutex::new("steady".into()),
        }
    }

    pub fn set(&self, s: &str) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
        eprintln!("{}: {s}", self.harness);
    }

    pub fn get(&self) -> String {
        self.now.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Makes sure `conn` holds a connection to `addr`, connecting again after it was dropped. When
/// that fails it counts one error in `errors`, pauses 100 ms and returns false: the caller's
/// loop tries again.
fn ensure_connected(conn: &mut Option<Wire>, addr: &str, errors: &AtomicU64) -> bool {
    if conn.is_none() {
        *conn = Wire::connect(addr).ok();
        if conn.is_none() {
            errors.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
            return false;
        }
    }
    true
}

/// What to run.
pub struct LoadSpec {
    /// The namespace the load's threads enter.
    pub ns: String,
    /// The proxies, `HOST:PORT`.
    pub proxies: Vec<String>,
    /// Keys written, `<prefix><i>`.
    pub keys: usize,
    pub prefix: &'static str,
    pub writers: usize,
    pub readers: usize,
    pub seed: u64,
}

/// Stop and pause flags, shared with the threads.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    paused: AtomicBool,
    /// Threads idle because of the pause (none of their requests in flight).
    parked: AtomicUsize,
}

impl Control {
    /// Whether the calling thread must not send now; keeps `parked` counted. Sleeps a little
    /// when it must not.
    fn hold(&self, parked: &mut bool) -> bool {
        if self.paused.load(Ordering::Acquire) {
            if !*parked {
                *parked = true;
                self.parked.fetch_add(1, Ordering::AcqRel);
            }
            std::thread::sleep(Duration::from_millis(5));
            return true;
        }
        if *parked {
            *parked = false;
            self.parked.fetch_sub(1, Ordering::AcqRel);
        }
        false
    }
}

/// A running load.
pub struct Load {
    prefix: &'static str,
    /// The highest sequence number acknowledged for each key (0: none yet).
    pub acked: Arc<Vec<AtomicU64>>,
    /// The fault epoch ([`Load::fault`]) in which each key's last write was acknowledged.
    pub acked_epoch: Arc<Vec<AtomicU64>>,
    epoch: Arc<AtomicU64>,
    pub tally: Arc<Tally>,
    pub phase: Arc<Phase>,
    ctl: Arc<Control>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(spec: LoadSpec, phase: Arc<Phase>) -> Load {
        let writers = spec.writers.max(1);
        let keys = spec.keys.max(writers);
        let mut load = Load {
            prefix: spec.prefix,
            acked: Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect()),
            acked_epoch: Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect()),
            epoch: Arc::new(AtomicU64::new(0)),
            tally: Arc::new(Tally::default()),
            phase,
            ctl: Arc::new(Control::default()),
            threads: Vec::new(),
        };
        let proxies = spec.proxies.len().max(1);
        for w in 0..writers {
            let addr = spec.proxies[w % proxies].clone();
            let rng = Xoshiro256PlusPlus::seed_from_u64(spec.seed ^ (w as u64 + 1));
            let t = load.writer(w, writers, spec.ns.clone(), addr, rng);
            load.threads.push(t);
        }
        for r in 0..spec.readers {
            let addr = spec.proxies[(writers + r) % proxies].clone();
            let rng = Xoshiro256PlusPlus::seed_from_u64(spec.seed ^ (0x1000 + r as u64));
            let t = load.reader(spec.ns.clone(), addr, rng);
            load.threads.push(t);
        }
        load
    }

    /// Key `i`'s name.
    pub fn key(&self, i: usize) -> String {
        format!("{}{i}", self.prefix)
    }

    fn writer(
        &self,
        w: usize,
        writers: usize,
        ns: String,
        addr: String,
        mut rng: Xoshiro256PlusPlus,
    ) -> JoinHandle<()> {
        let (acked, acked_epoch, epoch, tally, prefix) = (
            self.acked.clone(),
            self.acked_epoch.clone(),
            self.epoch.clone(),
            self.tally.clone(),
            self.prefix,
        );
        let mut seq = 0u64;
        // Writer w owns keys w, w + writers, …: each key's values only grow.
        let mine: Vec<usize> = (w..acked.len()).step_by(writers).collect();
        self.worker(
            ns,
            addr,
            |t| &t.write_errors,
            move |conn| {
                let k = mine[rng.random_range(0..mine.len())];
                seq += 1;
                let v = value(seq);
                let req = format!("set {prefix}{k} 0 0 {}\r\n{v}\r\n", v.len());
                match conn.request(req.as_bytes(), REQUEST_LIMIT) {
                    Ok(Response::Stored) => {
                        acked[k].fetch_max(seq, Ordering::Relaxed);
                        acked_epoch[k].store(epoch.load(Ordering::Acquire), Ordering::Relaxed);
                        tally.acked.fetch_add(1, Ordering::Relaxed);
                        true
                    }
                    // An error reply keeps the connection; a failed exchange loses it.
                    other => {
                        tally.write_errors.fetch_add(1, Ordering::Relaxed);
                        other.is_ok()
                    }
                }
            },
        )
    }

    fn reader(&self, ns: String, addr: String, mut rng: Xoshiro256PlusPlus) -> JoinHandle<()> {
        let (acked, tally, phase, prefix) = (
            self.acked.clone(),
            self.tally.clone(),
            self.phase.clone(),
            self.prefix,
        );
        self.worker(
            ns,
            addr.clone(),
            |t| &t.read_errors,
            move |conn| {
                let k = rng.random_range(0..acked.len());
                let before = acked[k].load(Ordering::Relaxed);
                let req = format!("get {prefix}{k}\r\n");
                let got = conn.request(req.as_bytes(), REQUEST_LIMIT);
                tally.reads.fetch_add(1, Ordering::Relaxed);
                match got {
                    Ok(Response::Values(v)) => {
                        let seen = v.first().and_then(|x| seq_of(&x.data));
                        if before > 0 && seen.is_none_or(|s| s < before) {
                            tally.stale.fetch_add(1, Ordering::Relaxed);
                            tally.example(format!(
                                "stale read: during \"{}\", {prefix}{k} read {seen:?} via {addr}, \
                             {before} was acknowledged",
                                phase.get(),
                            ));
                        }
                        true
                    }
                    // An error reply keeps the connection; a failed exchange loses it.
                    other => {
                        tally.read_errors.fetch_add(1, Ordering::Relaxed);
                        other.is_ok()
                    }
                }
            },
        )
    }

    /// A load thread in namespace `ns`: until stopped it waits while the load is held,
    /// (re)connects to `addr` (a failure counted in `errors` of the tally), and runs `step`
    /// on the connection; a `step` that returns false lost the connection, which is dropped
    /// and made again.
    fn worker(
        &self,
        ns: String,
        addr: String,
        errors: fn(&Tally) -> &AtomicU64,
        mut step: impl FnMut(&mut Wire) -> bool + Send + 'static,
    ) -> JoinHandle<()> {
        let (tally, ctl) = (self.tally.clone(), self.ctl.clone());
        std::thread::spawn(move || {
            if enter(&ns).is_err() {
                return;
            }
            let mut conn: Option<Wire> = None;
            let mut parked = false;
            while !ctl.stop.load(Ordering::Relaxed) {
                if ctl.hold(&mut parked) || !ensure_connected(&mut conn, &addr, errors(&tally)) {
                    continue;
                }
                if !conn.as_mut().is_some_and(&mut step) {
                    conn = None;
                }
            }
        })
    }

    /// Marks a fault: writes acknowledged from now on are of a new epoch.
    pub fn fault(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// The current fault epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Stops sending and waits (bounded by `limit`) until no request of the load is in
    /// flight; false if some thread is still inside a request then.
    pub fn pause(&self, limit: Duration) -> bool {
        self.ctl.paused.store(true, Ordering::Release);
        let end = Instant::now() + limit;
        let threads = self.threads.len();
        while self.ctl.parked.load(Ordering::Acquire) < threads {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    pub fn resume(&self) {
        self.ctl.paused.store(false, Ordering::Release);
    }

    /// Stops the threads and waits for them (each finishes its request, bounded by its limit).
    pub fn stop(&mut self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
        self.ctl.paused.store(false, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}
