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

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use ringcache_client::cluster_config::RingSettings;
use ringcache_client::protocol::Response;
use ringcache_client::ring::NodeSpec;

use crate::error::{BenchError, Result};
use crate::harness::{self, fail, Wire};
use crate::scenario::procs::TempDir;

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

/// Why the harness could not run at all (as opposed to finding a failure).
pub struct CannotRun(pub String);

/// Runs `cmd` (`ip ...`), failing with its stderr.
fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(fail(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The namespaces and links of one run; deleting a namespace deletes the veth ends inside it.
struct Net {
    bridge_ns: String,
    /// Node namespaces, then the proxy's.
    hosts: Vec<String>,
    /// The bridge-side veth of each host (cut to take a host off the network).
    ports: Vec<String>,
}

const SUBNET: &str = "198.18.0";

impl Net {
    /// Builds a bridge namespace and `hosts` host namespaces, host `i` at 198.18.0.(i+1)/24.
    fn build(tag: &str, hosts: usize) -> Result<Net> {
        let mut net = Net {
            bridge_ns: format!("{tag}br"),
            hosts: Vec::new(),
            ports: Vec::new(),
        };
        // Registered before creation, so a half-built layout is still torn down.
        ip(&["netns", "add", &net.bridge_ns])?;
        let br = net.bridge_ns.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..hosts {
            let ns = format!("{tag}h{i}");
            ip(&["netns", "add", &ns])?;
            net.hosts.push(ns.clone());
            let (host_if, port) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
            // Created directly inside the namespaces: nothing appears in the host's.
            ip(&[
                "-n", &ns, "link", "add", &host_if, "type", "veth", "peer", "name", &port, "netns",
                &br,
            ])?;
            net.ports.push(port.clone());
            let addr = format!("{SUBNET}.{}/24", i + 1);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &host_if])?;
            ip(&["-n", &ns, "link", "set", &host_if, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
        }
        Ok(net)
    }

    fn addr(i: usize) -> String {
        format!("{SUBNET}.{}", i + 1)
    }

    /// Takes host `i`'s link down or up (at the bridge, as a pulled cable).
    fn link(&self, i: usize, up: bool) -> Result<()> {
        ip(&[
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &self.ports[i],
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.bridge_ns)) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns-faults: cleanup: {e}");
            }
        }
    }
}

/// Moves the calling thread into network namespace `ns`.
fn enter(ns: &str) -> Result<()> {
    let f = File::open(Path::new("/run/netns").join(ns))?;
    // SAFETY: setns(2) on a valid namespace fd; it only changes this thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// A process started in a namespace; SIGKILLed and reaped on drop.
struct NsProc {
    name: String,
    ns: String,
    args: Vec<String>,
    bin: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NsProc {
    fn start(name: &str, ns: &str, bin: &Path, args: &[String], dir: &Path) -> Result<NsProc> {
        let mut p = NsProc {
            name: name.into(),
            ns: ns.into(),
            args: args.to_vec(),
            bin: bin.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<()> {
        let out = File::options().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: prctl only sets this child's death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {} in {}: {e}", self.name, self.ns)))?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NsProc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill9();
    }
}

/// Waits (bounded) until `addr` accepts, from the calling thread's namespace.
fn wait_up(addr: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if Wire::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// What the load saw.
#[derive(Default)]
struct Tally {
    acked: AtomicU64,
    write_errors: AtomicU64,
    reads: AtomicU64,
    read_errors: AtomicU64,
    stale: AtomicU64,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn example(&self, s: String) {
        let mut e = self.examples.lock().unwrap_or_else(|p| p.into_inner());
        // A few of each kind.
        let kind = s.split(':').next().unwrap_or("").to_string();
        if e.iter().filter(|x| x.starts_with(&kind)).count() < 5 {
            e.push(s);
        }
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

fn key(i: usize) -> String {
    format!("nf_{i}")
}

fn cold_key(i: usize) -> String {
    format!("nfc_{i}")
}

/// The sequence number a value carries (`s<seq>-padding`).
fn seq_of(data: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(data).ok()?;
    s.strip_prefix('s')?.split('-').next()?.parse().ok()
}

fn value(seq: u64) -> String {
    format!("s{seq}-{}", "x".repeat(40))
}

/// Current phase, for the examples.
struct Phase(Mutex<String>);

impl Phase {
    fn set(&self, s: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = s.to_string();
        eprintln!("netns-faults: {s}");
    }
    fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
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

pub fn run(
    a: &NetnsArgs,
) -> std::result::Result<Report, std::result::Result<CannotRun, crate::BenchError>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Ok(CannotRun("not root".into())));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err(Ok(CannotRun("no `ip` command (iproute2)".into())));
    }
    let bin = harness::ringcache_bin(a.ringcache.as_deref()).map_err(Err)?;
    inner(a, &bin).map_err(Err)
}

fn inner(a: &NetnsArgs, bin: &Path) -> Result<Report> {
    let tag = format!("rcf{}", std::process::id() % 100_000);
    let dir = TempDir::new()?;
    // Declared first so it is dropped last: processes die before their namespaces go.
    let net = Net::build(&tag, 4)?;
    let proxy_ns = net.hosts[3].clone();
    let node_addrs: Vec<String> = (0..3).map(|i| format!("{}:11211", Net::addr(i))).collect();
    let proxy_addr = format!("{}:11211", Net::addr(3));
    let mut nodes = Vec::new();
    for (i, addr) in node_addrs.iter().enumerate() {
        let args: Vec<String> = ["node", "--listen", addr, "--memory-limit", "64"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        nodes.push(NsProc::start(
            &format!("node{i}"),
            &net.hosts[i],
            bin,
            &args,
            dir.path(),
        )?);
    }
    let conf = dir.path().join("proxy.toml");
    std::fs::write(
        &conf,
        crate::scenario::procs::proxy_toml(&proxy_addr, "", &node_addrs, 2),
    )?;
    let _proxy = NsProc::start(
        "proxy",
        &proxy_ns,
        bin,
        &[
            "proxy".into(),
            "--config".into(),
            conf.display().to_string(),
        ],
        dir.path(),
    )?;
    enter_and(&proxy_ns, || {
        for addr in node_addrs.iter().chain(std::iter::once(&proxy_addr)) {
            if !wait_up(addr, Duration::from_secs(15)) {
                return Err(fail(format!("{addr} did not come up in its namespace")));
            }
        }
        Ok(())
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
    let keys = a.keys.max(a.writers.max(1));
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..keys).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let phase = Arc::new(Phase(Mutex::new("steady".into())));
    let writers = a.writers.max(1);
    let mut threads = Vec::new();
    for w in 0..writers {
        let (acked, stop, tally, ns, addr) = (
            acked.clone(),
            stop.clone(),
            tally.clone(),
            proxy_ns.clone(),
            proxy_addr.clone(),
        );
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(a.seed ^ (w as u64 + 1));
        threads.push(std::thread::spawn(move || {
            if enter(&ns).is_err() {
                return;
            }
            let mut conn: Option<Wire> = None;
            let mut seq = 0u64;
            // Writer w owns keys w, w + writers, …: each key's values only grow.
            let mine: Vec<usize> = (w..acked.len()).step_by(writers).collect();
            while !stop.load(Ordering::Relaxed) {
                if !ensure_connected(&mut conn, &addr, &tally.write_errors) {
                    continue;
                }
                let k = mine[rng.random_range(0..mine.len())];
                seq += 1;
                let v = value(seq);
                let req = format!("set {} 0 0 {}\r\n{v}\r\n", key(k), v.len());
                let ok = conn
                    .as_mut()
                    .map(|c| c.request(req.as_bytes(), Duration::from_secs(3)));
                match ok {
                    Some(Ok(Response::Stored)) => {
                        acked[k].fetch_max(seq, Ordering::Relaxed);
                        tally.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(_)) => {
                        tally.write_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        tally.write_errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    for r in 0..a.readers {
        let (acked, stop, tally, ns, addr, phase) = (
            acked.clone(),
            stop.clone(),
            tally.clone(),
            proxy_ns.clone(),
            proxy_addr.clone(),
            phase.clone(),
        );
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(a.seed ^ (0x1000 + r as u64));
        threads.push(std::thread::spawn(move || {
            if enter(&ns).is_err() {
                return;
            }
            let mut conn: Option<Wire> = None;
            while !stop.load(Ordering::Relaxed) {
                if !ensure_connected(&mut conn, &addr, &tally.read_errors) {
                    continue;
                }
                let k = rng.random_range(0..acked.len());
                let before = acked[k].load(Ordering::Relaxed);
                let req = format!("get {}\r\n", key(k));
                let got = conn
                    .as_mut()
                    .map(|c| c.request(req.as_bytes(), Duration::from_secs(3)));
                tally.reads.fetch_add(1, Ordering::Relaxed);
                match got {
                    Some(Ok(Response::Values(v))) => {
                        let seen = v.first().and_then(|x| seq_of(&x.data));
                        if before > 0 && seen.is_none_or(|s| s < before) {
                            tally.stale.fetch_add(1, Ordering::Relaxed);
                            tally.example(format!(
                                "stale read: during \"{}\", {} read {:?}, {} was acknowledged",
                                phase.get(),
                                key(k),
                                seen,
                                before
                            ));
                        }
                    }
                    Some(Ok(_)) => {
                        tally.read_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        tally.read_errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }

    let pause = |d: Duration| std::thread::sleep(d);
    let result = (|| -> Result<()> {
        pause(Duration::from_secs(3));
        phase.set("node0 link down");
        net.link(0, false)?;
        pause(a.fault);
        net.link(0, true)?;
        phase.set("after node0 link restored");
        pause(Duration::from_secs(4));
        phase.set("node1 SIGSTOP");
        nodes[1].signal(libc::SIGSTOP);
        pause(a.fault);
        nodes[1].signal(libc::SIGCONT);
        phase.set("after node1 SIGCONT");
        pause(Duration::from_secs(4));
        phase.set("node2 killed (SIGKILL)");
        nodes[2].kill9();
        pause(a.fault);
        nodes[2].spawn()?;
        phase.set("after node2 restarted");
        pause(Duration::from_secs(5));
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
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    result?;
    phase.set("settling before the final check");
    pause(Duration::from_secs(3));

    // Every acknowledged write, on every owner, read directly.
    let specs: Vec<NodeSpec> = node_addrs.iter().map(NodeSpec::new).collect();
    let ring = RingSettings {
        replicas: 2,
        ..RingSettings::default()
    }
    .build(&specs)
    .map_err(|e| fail(e.to_string()))?;
    let (lost, flushes) = enter_and(&proxy_ns, || {
        let flushes: Vec<String> = node_addrs
            .iter()
            .enumerate()
            .map(|(i, a)| match harness::cmd_flush(a) {
                Ok(n) => format!("node{i} {n}"),
                Err(e) => format!("node{i} ({e})"),
            })
            .collect();
        let mut wires = node_addrs
            .iter()
            .map(|a| Wire::connect(a).map_err(BenchError::from))
            .collect::<Result<Vec<_>>>()?;
        let mut lost = 0u64;
        for (k, acked) in acked.iter().enumerate() {
            let want = acked.load(Ordering::Relaxed);
            if want == 0 {
                continue;
            }
            let mut bad = Vec::new();
            for owner in ring.replicas(key(k).as_bytes(), 2) {
                let got = wires[owner].request(
                    format!("get {}\r\n", key(k)).as_bytes(),
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
                tally.example(format!(
                    "lost: {} acknowledged s{want}, {}",
                    key(k),
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
                tally.example(format!("lost: cold key {k}, {}", bad.join(", ")));
            }
        }
        Ok((lost, flushes.join(", ")))
    })?;
    let examples = tally
        .examples
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
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

/// Runs `f` on a thread inside namespace `ns`.
fn enter_and<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(fail("a namespace thread panicked")))
    })
}

/// Runs and prints; exit code 0 (goal met), 1 (lost or stale writes), 2 (cannot run).
pub fn main(a: &NetnsArgs) -> i32 {
    match run(a) {
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
        Err(Ok(CannotRun(why))) => {
            eprintln!("netns-faults: SKIPPED, cannot run: {why} (needs root and iproute2)");
            2
        }
        Err(Err(e)) => {
            eprintln!("netns-faults: {e}");
            1
        }
    }
}
