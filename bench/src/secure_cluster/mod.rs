//! `ringcache-bench secure-cluster`: the acceptance test of the deployed shape (issue 23).
//!
//! Every capability passes its own tests alone; this runs them together, as a Kubernetes
//! deployment does: 4 `ringcache node` processes, each in its own network namespace, with TLS
//! (a certificate per node naming only its DNS name, `node-<i>.nodes.test`, all from one CA,
//! client certificates required) and authentication (`lru_crawler` for admins only); a DNS
//! server (hickory, in this process, bound in the proxies' namespace) publishing one SRV record
//! per member and an A record per node; 2 proxies that follow those records
//! (`dnssrv+`, re-resolved every second) and reach the nodes over TLS with a user and password
//! (`[backend]`). A writer/reader load runs through both proxies (netns-faults' checked load)
//! while the run:
//!
//! 1. adds the 4th node to DNS;
//! 2. rolls every node, one at a time: SIGTERM (it drains: the proxies move its keys away),
//!    then a restart under the same name at a new address (a new IP on its host, the A record
//!    changed);
//! 3. kills one node with SIGKILL and restarts it empty, once under load, and once within
//!    300 ms with the load paused (no request reaches the proxies in between, so only a
//!    reconnect can tell them it restarted);
//! 4. removes a node from DNS.
//!
//! After each step, once both proxies' metrics say its transition ended (transitions started
//! = completed, migrator idle, every member up, no key copied for a second), the load pauses
//! and, with no read in between, every member is read directly over TLS and auth (reads
//! through a proxy would copy keys and hide a failed migration), then every key through both
//! proxies. Checks: each member holds ≥ 99 % of the keys it owns; every key written reads back
//! through both proxies (≥ 99 %, and 100 % of those acknowledged since the last fault); no stale
//! read (load or check); the migrator listed at least the items the nodes held, without an
//! error; a removed node's series are gone from both proxies' `/metrics`. Exit 0 when all
//! pass, 1 naming each failed check, 2 when it cannot run (not root, no iproute2).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use ringcache_client::cluster_config::RingSettings;
use ringcache_client::metric_names as names;
use ringcache_client::protocol::Response;
use ringcache_client::ring::NodeSpec;
use tokio::runtime::Runtime;

use crate::error::Result;
use crate::harness::{self, fail, Wire};
use crate::netns::hosts::{self, enter_and, wait_up, CannotRun, Net, NsProc};
use crate::netns::load::{seq_of, value, Load, LoadSpec, Phase};
use crate::scenario::procs::TempDir;

pub mod dns;
pub mod observe;
pub mod pki;

use dns::{node_fqdn, node_name, SRV_NAME, ZONE};
use observe::{Direct, Page, AUTH_PASSWORD, AUTH_USER};
use pki::Pki;
use testkit::dns::TestDns;

/// The deployed shape under membership changes, restarts and kills (root only).
#[derive(Debug, Clone, Parser)]
#[command(name = "ringcache-bench secure-cluster", version)]
pub struct SecureClusterArgs {
    /// The ringcache binary [default: target/release/ringcache].
    #[arg(long)]
    pub ringcache: Option<PathBuf>,
    /// Keys the load rewrites (split between the writers).
    #[arg(long, default_value_t = 400)]
    pub keys: usize,
    /// Keys written once before the steps and never again: only the migrator and the
    /// re-warm keep them where they belong.
    #[arg(long, default_value_t = 2000)]
    pub cold: usize,
    /// Writer connections (alternately through each proxy).
    #[arg(long, default_value_t = 2)]
    pub writers: usize,
    /// Reader connections.
    #[arg(long, default_value_t = 2)]
    pub readers: usize,
    /// Seconds a step's transition may take to end before the step fails.
    #[arg(long, default_value = "20", value_parser = harness::parse_secs)]
    pub settle: Duration,
    /// Seed of the key choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also name every address a node may take in its certificate, so proxies that check a
    /// node's certificate against its IP reach it: to see what fails beyond that.
    #[arg(long)]
    pub ip_sans: bool,
    /// Report, without failing on, the stale reads the load sees *while* a membership change
    /// is under way (steps 1, 2 and 4): for diagnosis only, `.ci/run` fails on them since a
    /// transition keeps the past owners in step across routers (docs/cluster.md, "Several
    /// routers during a membership change"). The checks after each step still fail on any
    /// stale value, and the kill steps still fail on stale reads during the step.
    #[arg(long)]
    pub report_membership_stale: bool,
}

const NODES: usize = 4;
const NODE_PORT: u16 = 11211;
const PROXIES: usize = 2;
/// The proxies' host: the last namespace.
const PROXY_HOST: usize = NODES;
/// A node's drain: at most this long, ended once the proxies were quiet for `DRAIN_QUIET`.
const DRAIN_TIMEOUT: u64 = 20;
/// Above the time the run takes to see a drain's transition end and remove the node's SRV
/// record (a node that stops saying `draining 1` while its record stays is a member again).
const DRAIN_QUIET: u64 = 4;
/// How long after a kill's restart the proxies are given before the step may end: they learn
/// of it only when they next reach the node, and the re-warm follows.
const RESTART_GRACE: Duration = Duration::from_secs(3);
/// Share of the keys that must read back, and that each member must hold.
const GOAL: f64 = 0.99;
/// The first of the addresses nodes restart at (198.18.0.N).
const FIRST_NEW_IP: usize = 20;
const COLD_PREFIX: &str = "scc_";
const HOT_PREFIX: &str = "sch_";

/// The proxies' name for node `i`.
fn ring_name(i: usize) -> String {
    format!("{}:{NODE_PORT}", node_name(i))
}

/// The label the proxies' per-node series carry for node `i`.
fn node_label(i: usize) -> String {
    format!("node=\"{}\"", ring_name(i))
}

/// One step's figures and failed checks.
pub struct StepReport {
    pub line: String,
    pub failures: Vec<String>,
}

/// What a run found.
pub struct Report {
    pub steps: Vec<StepReport>,
    pub examples: Vec<String>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &String> {
        self.steps.iter().flat_map(|s| s.failures.iter())
    }
}

/// Everything of one run; fields drop in order, so processes die before their namespaces go.
struct Cluster<'n> {
    net: &'n Net,
    rt: Runtime,
    dns: TestDns,
    nodes: Vec<NsProc>,
    proxies: Vec<NsProc>,
    /// Node `i`'s current address.
    ips: Vec<String>,
    /// Nodes with an SRV record.
    members: Vec<usize>,
    /// Addresses handed out so far (new ones for restarts at a new IP).
    next_ip: usize,
    pki: Pki,
    conf_dir: PathBuf,
}

/// Per-proxy counters at a moment.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    started: f64,
    completed: f64,
    phase: f64,
    scanned: f64,
    copied: f64,
    errors: f64,
    draining: f64,
    nodes: f64,
}

impl Counters {
    fn of(p: &Page) -> Counters {
        Counters {
            started: p.sum(names::REBALANCE_TRANSITIONS_STARTED_TOTAL),
            completed: p.sum(names::REBALANCE_TRANSITIONS_COMPLETED_TOTAL),
            phase: p.sum(names::REBALANCE_PHASE),
            scanned: p.sum(names::REBALANCE_KEYS_SCANNED_TOTAL),
            copied: p.sum(names::REBALANCE_KEYS_COPIED_TOTAL),
            errors: p.sum(names::REBALANCE_ERRORS_TOTAL),
            draining: p.sum(names::DISCOVERY_DRAINING),
            nodes: p.sum(names::DISCOVERY_NODES),
        }
    }
}

fn proxy_addr(p: usize) -> String {
    format!("{}:{}", Net::addr(PROXY_HOST), 11211 + p)
}

fn metrics_addr(p: usize) -> SocketAddr {
    SocketAddr::new(
        Net::addr(PROXY_HOST)
            .parse()
            .unwrap_or(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        9151 + p as u16,
    )
}

impl Cluster<'_> {
    fn node_addr(&self, i: usize) -> String {
        format!("{}:{NODE_PORT}", self.ips[i])
    }

    fn direct(&self, i: usize) -> Result<Direct> {
        Direct::new(&self.pki, &node_name(i), &self.node_addr(i))
    }

    /// Both proxies' pages.
    fn pages(&self) -> std::result::Result<Vec<Page>, String> {
        (0..PROXIES)
            .map(|p| self.rt.block_on(Page::fetch(metrics_addr(p))))
            .collect()
    }

    fn counters(&self) -> std::result::Result<Vec<Counters>, String> {
        Ok(self.pages()?.iter().map(Counters::of).collect())
    }

    fn set_a(&mut self, i: usize) -> Result<()> {
        let ip: Ipv4Addr = self.ips[i]
            .parse()
            .map_err(|e| fail(format!("{}: {e}", self.ips[i])))?;
        Ok(self.rt.block_on(self.dns.set_a(&node_fqdn(i), ip))?)
    }

    fn set_srv(&mut self) -> Result<()> {
        let targets: Vec<(String, u16)> = self
            .members
            .iter()
            .map(|&i| (node_fqdn(i), NODE_PORT))
            .collect();
        Ok(self.rt.block_on(self.dns.set_srv(SRV_NAME, &targets))?)
    }

    /// The node's command line at its current address.
    fn node_args(&self, i: usize) -> Vec<String> {
        vec![
            "node".into(),
            "--config".into(),
            self.conf_dir
                .join(format!("node-{i}.toml"))
                .display()
                .to_string(),
            "--listen".into(),
            self.node_addr(i),
        ]
    }

    /// Waits until both proxies say the membership settled: the members resolved (all but
    /// `draining`, which must be reported draining), every transition completed (at least
    /// one more than `before` when `new_transition`), the migrator idle, every member up, and
    /// no key copied for a second (a re-warm is over), and at least `min` has passed. `Err`
    /// says what was still missing at the limit.
    fn settled(
        &self,
        before: &[Counters],
        new_transition: bool,
        draining: Option<usize>,
        min: Duration,
        limit: Duration,
    ) -> std::result::Result<Duration, String> {
        let start = Instant::now();
        let mut quiet_since: Option<(Instant, Vec<f64>)> = None;
        let mut missing = String::from("no metrics yet");
        while start.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(200));
            let pages = match self.pages() {
                Ok(p) => p,
                Err(e) => {
                    missing = e;
                    continue;
                }
            };
            let now: Vec<Counters> = pages.iter().map(Counters::of).collect();
            let mut why = Vec::new();
            for (p, (c, b)) in now.iter().zip(before).enumerate() {
                if new_transition && c.started <= b.started {
                    why.push(format!("proxy{p}: no transition started"));
                }
                if c.started != c.completed || c.phase != 0.0 {
                    why.push(format!(
                        "proxy{p}: transitions {}/{} completed, phase {}",
                        c.completed, c.started, c.phase
                    ));
                }
                if draining.is_some() != (c.draining > 0.0) {
                    why.push(format!("proxy{p}: {} nodes draining", c.draining));
                }
                if draining.is_none() && c.nodes != self.members.len() as f64 {
                    why.push(format!("proxy{p}: {} nodes resolved", c.nodes));
                }
                for &m in self.members.iter().filter(|&&m| Some(m) != draining) {
                    if pages[p].labelled(names::CLIENT_NODE_UP, &node_label(m)) != Some(1.0) {
                        why.push(format!("proxy{p}: {} not up", ring_name(m)));
                    }
                }
            }
            if !why.is_empty() {
                missing = why.join("; ");
                quiet_since = None;
                continue;
            }
            let copied: Vec<f64> = now.iter().map(|c| c.copied).collect();
            match &quiet_since {
                Some((t, c)) if *c == copied => {
                    if t.elapsed() >= Duration::from_secs(1) && start.elapsed() >= min {
                        return Ok(start.elapsed());
                    }
                }
                _ => {
                    quiet_since = Some((Instant::now(), copied));
                    missing = "keys still being copied".into();
                }
            }
        }
        Err(missing)
    }
}

/// What the checks compare against: every key acknowledged so far, with its sequence number
/// and whether it was acknowledged since the last fault.
struct Expected {
    keys: Vec<(String, u64, bool)>,
}

impl Expected {
    fn now(load: &Load, cold: &[String]) -> Expected {
        // Before the first kill every key counts as acknowledged since the last fault: a
        // graceful roll may lose nothing.
        let epoch = load.epoch();
        let mut keys: Vec<(String, u64, bool)> =
            cold.iter().map(|k| (k.clone(), 1, epoch == 0)).collect();
        for (k, a) in load.acked.iter().enumerate() {
            let seq = a.load(Ordering::Relaxed);
            if seq > 0 {
                let recent = load.acked_epoch[k].load(Ordering::Relaxed) == epoch;
                keys.push((load.key(k), seq, recent));
            }
        }
        Expected { keys }
    }
}

/// The figures of one step's checks.
#[derive(Default)]
struct Figures {
    keys: usize,
    hit: Vec<f64>,
    stale: u64,
    lost: u64,
    lost_recent: u64,
    owners_min: Option<(f64, usize)>,
    scanned: Vec<f64>,
    items: u64,
    errors: Vec<f64>,
}

pub fn run(
    a: &SecureClusterArgs,
) -> std::result::Result<Report, std::result::Result<CannotRun, crate::BenchError>> {
    hosts::can_run().map_err(Ok)?;
    let bin = harness::ringcache_bin(a.ringcache.as_deref()).map_err(Err)?;
    inner(a, &bin).map_err(Err)
}

fn inner(a: &SecureClusterArgs, bin: &Path) -> Result<Report> {
    let tag = format!("rcs{}", std::process::id() % 100_000);
    let dir = TempDir::new()?;
    let names: Vec<String> = (0..NODES).map(node_name).collect();
    let extra: Vec<String> = if a.ip_sans {
        (0..NODES)
            .map(Net::addr)
            .chain((FIRST_NEW_IP..FIRST_NEW_IP + 2 * NODES).map(Net::subnet_addr))
            .collect()
    } else {
        Vec::new()
    };
    let pki = Pki::make(dir.path(), &names, &extra)?;
    write_configs(dir.path(), &pki)?;
    let net = Net::build(&tag, NODES + 1)?;
    let proxy_ns = net.hosts[PROXY_HOST].clone();
    // Everything runs in the proxies' namespace (the DNS server, the load, the checks); the
    // processes are put in theirs by `ip netns exec`.
    enter_and(&proxy_ns, || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let dns_bind = SocketAddr::new(
            Net::addr(PROXY_HOST)
                .parse()
                .map_err(|e| fail(format!("proxy host address: {e}")))?,
            53,
        );
        let dns = rt.block_on(TestDns::start(ZONE, dns_bind))?;
        let mut c = Cluster {
            net: &net,
            rt,
            dns,
            nodes: Vec::new(),
            proxies: Vec::new(),
            ips: (0..NODES).map(Net::addr).collect(),
            members: vec![0, 1, 2],
            next_ip: FIRST_NEW_IP,
            pki,
            conf_dir: dir.path().to_path_buf(),
        };
        for i in 0..NODES {
            let args = c.node_args(i);
            c.nodes.push(NsProc::start(
                &format!("node-{i}"),
                &net.hosts[i],
                bin,
                &args,
                dir.path(),
            )?);
            c.set_a(i)?;
        }
        c.set_srv()?;
        for i in 0..NODES {
            if !wait_up(&c.node_addr(i), Duration::from_secs(15)) {
                return Err(fail(format!(
                    "node-{i} did not come up:\n{}",
                    c.nodes[i].log_tail(20)
                )));
            }
        }
        for p in 0..PROXIES {
            let args: Vec<String> = vec![
                "proxy".into(),
                "--config".into(),
                dir.path()
                    .join(format!("proxy{p}.toml"))
                    .display()
                    .to_string(),
            ];
            c.proxies.push(NsProc::start(
                &format!("proxy{p}"),
                &proxy_ns,
                bin,
                &args,
                dir.path(),
            )?);
        }
        for p in 0..PROXIES {
            if !wait_up(&proxy_addr(p), Duration::from_secs(15)) {
                return Err(fail(format!(
                    "proxy{p} did not come up:\n{}",
                    c.proxies[p].log_tail(20)
                )));
            }
        }
        steps(a, &mut c)
    })
}

/// The node and proxy config files.
fn write_configs(dir: &Path, pki: &Pki) -> Result<()> {
    let users = dir.join("users");
    std::fs::write(&users, format!("{AUTH_USER}:{AUTH_PASSWORD}\n"))?;
    let password = dir.join("password");
    std::fs::write(&password, format!("{AUTH_PASSWORD}\n"))?;
    for (i, pem) in pki.nodes.iter().enumerate() {
        let text = format!(
            "memory_limit_mb = 64\nthreads = 2\ndrain_timeout = {DRAIN_TIMEOUT}\n\
             drain_quiet = {DRAIN_QUIET}\nssl_chain_cert = \"{}\"\nssl_key = \"{}\"\n\
             ssl_ca_cert = \"{}\"\nssl_verify_mode = 2\nauth_file = \"{}\"\n\
             admin_users = [\"{AUTH_USER}\"]\n\n[commands]\nlru_crawler = \"admin\"\n\
             flush_all = \"admin\"\n",
            pem.cert.display(),
            pem.key.display(),
            pki.ca.display(),
            users.display(),
        );
        std::fs::write(dir.join(format!("node-{i}.toml")), text)?;
    }
    for p in 0..PROXIES {
        let text = format!(
            "listen = \"{}\"\nmetrics_listen = \"{}\"\nconnect_timeout_ms = 1000\n\
             request_timeout_ms = 1000\nack = \"all\"\n\n[ring]\nreplicas = 2\n\n\
             [rebalance]\nenabled = true\nmigrate = true\nrewarm = true\n\n\
             [backend]\ntls = true\nssl_ca_cert = \"{}\"\nssl_chain_cert = \"{}\"\n\
             ssl_key = \"{}\"\nauth_user = \"{AUTH_USER}\"\nauth_password_file = \"{}\"\n\n\
             [discovery]\nsources = [\"dnssrv+{SRV_NAME}\"]\ninterval_secs = 1\n\
             nameserver = \"{}:53\"\ntimeout_ms = 500\nremove_after_secs = 2\n",
            proxy_addr(p),
            metrics_addr(p),
            pki.ca.display(),
            pki.client.cert.display(),
            pki.client.key.display(),
            password.display(),
            Net::addr(PROXY_HOST),
        );
        std::fs::write(dir.join(format!("proxy{p}.toml")), text)?;
    }
    Ok(())
}

/// How long the load may take to pause (a request in flight ends within 3 s).
const PAUSE_LIMIT: Duration = Duration::from_secs(5);

fn steps(a: &SecureClusterArgs, c: &mut Cluster<'_>) -> Result<Report> {
    let mut report = Report {
        steps: Vec::new(),
        examples: Vec::new(),
    };
    // The proxies' first resolution and connections.
    let zero = vec![Counters::default(); PROXIES];
    if let Err(e) = c.settled(&zero, false, None, Duration::ZERO, a.settle) {
        report.steps.push(StepReport {
            line: "set-up: the proxies did not take the 3 nodes".into(),
            failures: vec![format!(
                "set-up: the proxies did not settle on 3 nodes: {e}\nproxy0's log ends:\n{}",
                c.proxies[0].log_tail(6)
            )],
        });
        return Ok(report);
    }
    // Cold keys through both proxies, alternately.
    let mut cold = Vec::new();
    let mut wires = (0..PROXIES)
        .map(|p| Wire::connect(&proxy_addr(p)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut refusals = Vec::new();
    for i in 0..a.cold {
        let k = format!("{COLD_PREFIX}{i}");
        let v = value(1);
        let req = format!("set {k} 0 0 {}\r\n{v}\r\n", v.len());
        match wires[i % PROXIES].request(req.as_bytes(), Duration::from_secs(3)) {
            Ok(Response::Stored) => cold.push(k),
            other => {
                if refusals.len() < 3 {
                    refusals.push(format!("{k}: {other:?}"));
                }
                if other.is_err() {
                    wires[i % PROXIES] = Wire::connect(&proxy_addr(i % PROXIES))?;
                }
            }
        }
    }
    drop(wires);
    let acked = cold.len() as f64 / a.cold.max(1) as f64;
    eprintln!(
        "secure-cluster: {} of {} cold keys acknowledged through the proxies",
        cold.len(),
        a.cold
    );
    if acked < GOAL {
        report.steps.push(StepReport {
            line: format!("set-up: {} of {} writes acknowledged", cold.len(), a.cold),
            failures: vec![format!(
                "set-up: writes acknowledged through the proxies {:.1} % < 99 % ({})",
                acked * 100.0,
                refusals.join("; ")
            )],
        });
        return Ok(report);
    }
    let phase = Arc::new(Phase::new("secure-cluster"));
    let mut load = Load::start(
        LoadSpec {
            ns: c.net.hosts[PROXY_HOST].clone(),
            proxies: (0..PROXIES).map(proxy_addr).collect(),
            keys: a.keys,
            prefix: HOT_PREFIX,
            writers: a.writers,
            readers: a.readers,
            seed: a.seed,
        },
        phase.clone(),
    );
    std::thread::sleep(Duration::from_secs(2));

    // 1. The 4th node joins.
    report
        .steps
        .push(step(a, c, &load, &cold, "1 add node-3", true, |c, _| {
            c.members.push(3);
            c.set_srv()?;
            Ok(Vec::new())
        })?);

    // 2. Every node rolled: drained, restarted at a new address under its name.
    report.steps.push(step(
        a,
        c,
        &load,
        &cold,
        "2 roll every node",
        true,
        |c, fails| {
            for i in 0..NODES {
                roll(a, c, i, fails)?;
            }
            Ok(Vec::new())
        },
    )?);

    // 3a. A node killed under load and restarted empty.
    let killed = 2;
    report.steps.push(step(
        a,
        c,
        &load,
        &cold,
        "3a kill -9 node-2 under load",
        false,
        |c, _| {
            load.fault();
            c.nodes[killed].kill9();
            std::thread::sleep(Duration::from_secs(1));
            c.nodes[killed].spawn()?;
            if !wait_up(&c.node_addr(killed), Duration::from_secs(10)) {
                return Err(fail("node-2 did not come back"));
            }
            Ok(Vec::new())
        },
    )?);

    // 3b. Killed and back within 300 ms, no request in between.
    let quick = 0;
    report.steps.push(step(
        a,
        c,
        &load,
        &cold,
        "3b kill -9 node-0, back in 300 ms",
        false,
        |c, fails| {
            if !load.pause(PAUSE_LIMIT) {
                fails.push("3b: the load did not pause".into());
            }
            load.fault();
            let t = Instant::now();
            c.nodes[quick].kill9();
            c.nodes[quick].spawn()?;
            let up = wait_up(&c.node_addr(quick), Duration::from_secs(10));
            let took = t.elapsed();
            load.resume();
            if !up {
                return Err(fail("node-0 did not come back"));
            }
            if took > Duration::from_millis(300) {
                fails.push(format!(
                    "3b: node-0 took {} ms to come back (the step wants < 300 ms)",
                    took.as_millis()
                ));
            }
            Ok(Vec::new())
        },
    )?);

    // 4. A node leaves DNS.
    let removed = 1;
    report.steps.push(step(
        a,
        c,
        &load,
        &cold,
        "4 remove node-1",
        true,
        |c, _| {
            c.members.retain(|&m| m != removed);
            c.set_srv()?;
            Ok(vec![removed])
        },
    )?);

    load.stop();
    let t = &load.tally;
    eprintln!(
        "secure-cluster: load: {} writes acknowledged, {} write errors; {} reads, {} read errors, {} stale",
        t.acked.load(Ordering::Relaxed),
        t.write_errors.load(Ordering::Relaxed),
        t.reads.load(Ordering::Relaxed),
        t.read_errors.load(Ordering::Relaxed),
        t.stale.load(Ordering::Relaxed),
    );
    report.examples = t.examples();
    Ok(report)
}

/// Rolls node `i`: SIGTERM, the drain watched through the proxies, a restart at a new
/// address under the same name.
fn roll(
    a: &SecureClusterArgs,
    c: &mut Cluster<'_>,
    i: usize,
    fails: &mut Vec<String>,
) -> Result<()> {
    let before = c.counters().map_err(fail)?;
    c.nodes[i].signal(libc::SIGTERM);
    if let Err(e) = c.settled(&before, true, Some(i), Duration::ZERO, a.settle) {
        fails.push(format!(
            "2: node-{i}'s drain: the proxies did not move its keys away: {e}"
        ));
    }
    // Its keys moved, it is out of the ring: its pod and so its record go, as in a
    // StatefulSet roll (it is no member for the proxies any more, so nothing changes).
    c.members.retain(|&m| m != i);
    c.set_srv()?;
    if !c.nodes[i].wait_exit(Duration::from_secs(DRAIN_TIMEOUT + 5)) {
        fails.push(format!("2: node-{i} did not end its drain"));
        c.nodes[i].kill9();
    }
    let old = c.ips[i].clone();
    let new = Net::subnet_addr(c.next_ip);
    c.next_ip += 1;
    // The old address goes first: deleting an interface's primary address deletes the
    // secondary ones of its subnet too.
    c.net.del_addr(i, &old)?;
    c.net.add_addr(i, &new)?;
    c.ips[i] = new;
    c.set_a(i)?;
    let before = c.counters().map_err(fail)?;
    c.nodes[i].args = c.node_args(i);
    c.nodes[i].spawn()?;
    if !wait_up(&c.node_addr(i), Duration::from_secs(10)) {
        return Err(fail(format!("node-{i} did not come back at {}", c.ips[i])));
    }
    c.members.push(i);
    c.members.sort_unstable();
    c.set_srv()?;
    if let Err(e) = c.settled(&before, true, None, Duration::ZERO, a.settle) {
        fails.push(format!("2: node-{i} back at {}: {e}", c.ips[i]));
    }
    Ok(())
}

/// Runs one step (`act` returns the nodes it removed) and its checks.
fn step(
    a: &SecureClusterArgs,
    c: &mut Cluster<'_>,
    load: &Load,
    cold: &[String],
    name: &str,
    membership: bool,
    act: impl FnOnce(&mut Cluster<'_>, &mut Vec<String>) -> Result<Vec<usize>>,
) -> Result<StepReport> {
    load.phase.set(name);
    let started = Instant::now();
    let mut fails = Vec::new();
    let before = c.counters().map_err(fail)?;
    let stale_before = load.tally.stale.load(Ordering::Relaxed);
    // What the migrator must list at least: the items the members held before the change.
    let mut items = 0;
    for &m in &c.members {
        items += c.rt.block_on(c.direct(m)?.items()).map_err(fail)?;
    }
    let removed = act(c, &mut fails)?;
    let min = if membership {
        Duration::ZERO
    } else {
        RESTART_GRACE
    };
    if let Err(e) = c.settled(&before, membership, None, min, a.settle) {
        fails.push(format!(
            "{name}: transition did not end within {:?}: {e}",
            a.settle
        ));
    }
    let duration = started.elapsed();
    if !load.pause(PAUSE_LIMIT) {
        fails.push(format!("{name}: the load did not pause"));
    }
    let expected = Expected::now(load, cold);
    let mut f = Figures {
        keys: expected.keys.len(),
        items,
        ..Figures::default()
    };
    // Owners first, directly: nothing has read through a proxy since the transition ended.
    check_owners(c, &expected, &mut f, &mut fails, name)?;
    check_proxies(&expected, &mut f, &mut fails, name, load);
    let after = c.counters().map_err(fail)?;
    for (p, (x, b)) in after.iter().zip(&before).enumerate() {
        let scanned = x.scanned - b.scanned;
        let errors = x.errors - b.errors;
        f.scanned.push(scanned);
        f.errors.push(errors);
        if errors > 0.0 {
            fails.push(format!(
                "{name}: proxy{p} counted {errors} rebalance errors"
            ));
        }
        if membership && scanned < GOAL * items as f64 {
            fails.push(format!(
                "{name}: proxy{p}'s migrator listed {scanned} keys, the nodes held {items}"
            ));
        }
    }
    for r in removed {
        gone(c, r, name, &mut fails);
    }
    let during = load.tally.stale.load(Ordering::Relaxed) - stale_before;
    f.stale += during;
    if membership && a.report_membership_stale {
        // Reported in the step's line; only the check after the step (f.stale - during)
        // decides.
        if f.stale > during {
            fails.push(format!(
                "{name}: {} stale reads after the step",
                f.stale - during
            ));
        }
    } else if f.stale > 0 {
        fails.push(format!("{name}: {} stale reads", f.stale));
    }
    load.resume();
    let line = format!(
        "step {name}: keys {}, hit {} %, stale {}, lost {} ({} since the last fault), \
         owners min {}, scanned {} of {} items, errors {}, duration {:.1} s",
        f.keys,
        f.hit
            .iter()
            .map(|h| format!("{:.2}", h * 100.0))
            .collect::<Vec<_>>()
            .join("/"),
        f.stale,
        f.lost,
        f.lost_recent,
        f.owners_min.map_or("-".into(), |(r, n)| format!(
            "{:.2} % (node-{n})",
            r * 100.0
        )),
        f.scanned
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        f.items,
        f.errors
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        duration.as_secs_f64(),
    );
    println!("secure-cluster: {line}");
    for e in &fails {
        println!("  FAILED {e}");
    }
    Ok(StepReport {
        line,
        failures: fails,
    })
}

/// Every member, read directly, holds ≥ 99 % of the keys it owns.
fn check_owners(
    c: &Cluster<'_>,
    want: &Expected,
    f: &mut Figures,
    fails: &mut Vec<String>,
    name: &str,
) -> Result<()> {
    let mut members = c.members.clone();
    members.sort_by_key(|&m| ring_name(m));
    let specs: Vec<NodeSpec> = members
        .iter()
        .map(|&m| NodeSpec::new(c.node_addr(m)).named(ring_name(m)))
        .collect();
    let ring = RingSettings {
        replicas: 2,
        ..RingSettings::default()
    }
    .build(&specs)
    .map_err(|e| fail(e.to_string()))?;
    for (slot, &m) in members.iter().enumerate() {
        let owned: Vec<&(String, u64, bool)> = want
            .keys
            .iter()
            .filter(|(k, _, _)| ring.replicas(k.as_bytes(), 2).contains(&slot))
            .collect();
        let keys: Vec<String> = owned.iter().map(|(k, _, _)| k.clone()).collect();
        let held = match c.rt.block_on(c.direct(m)?.seqs(&keys)) {
            Ok(h) => h,
            Err(e) => {
                fails.push(format!("{name}: node-{m} cannot be read directly: {e}"));
                continue;
            }
        };
        let ok = owned
            .iter()
            .filter(|(k, seq, _)| held.get(k).is_some_and(|s| s >= seq))
            .count();
        let ratio = ok as f64 / owned.len().max(1) as f64;
        if f.owners_min.is_none_or(|(r, _)| ratio < r) {
            f.owners_min = Some((ratio, m));
        }
        if ratio < GOAL {
            fails.push(format!(
                "{name}: node-{m} holds {ok} of the {} keys it owns ({:.2} % < 99 %)",
                owned.len(),
                ratio * 100.0
            ));
        }
    }
    Ok(())
}

/// Every key through both proxies: hits, stale values, misses.
fn check_proxies(
    want: &Expected,
    f: &mut Figures,
    fails: &mut Vec<String>,
    name: &str,
    load: &Load,
) {
    for p in 0..PROXIES {
        let addr = proxy_addr(p);
        let mut wire = match Wire::connect(&addr) {
            Ok(w) => w,
            Err(e) => {
                fails.push(format!("{name}: proxy{p} unreachable: {e}"));
                f.hit.push(0.0);
                continue;
            }
        };
        let (mut hits, mut stale, mut lost, mut lost_recent) = (0u64, 0u64, 0u64, 0u64);
        for chunk in want.keys.chunks(100) {
            let req = format!(
                "get {}\r\n",
                chunk
                    .iter()
                    .map(|(k, _, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let got = match wire.request(req.as_bytes(), Duration::from_secs(5)) {
                Ok(Response::Values(v)) => v,
                other => {
                    fails.push(format!("{name}: proxy{p} answered a multi-get {other:?}"));
                    break;
                }
            };
            for (k, seq, recent) in chunk {
                let seen = got
                    .iter()
                    .find(|v| v.key == k.as_bytes())
                    .and_then(|v| seq_of(&v.data));
                match seen {
                    Some(s) if s >= *seq => hits += 1,
                    Some(s) => {
                        stale += 1;
                        load.tally.example(format!(
                            "stale: {name}: {k} reads s{s} via proxy{p}, s{seq} was acknowledged"
                        ));
                    }
                    None => {
                        lost += 1;
                        lost_recent += u64::from(*recent);
                        load.tally.example(format!(
                            "lost: {name}: {k} (s{seq}{}) misses via proxy{p}",
                            if *recent {
                                ", since the last fault"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
        }
        let ratio = hits as f64 / want.keys.len().max(1) as f64;
        f.hit.push(ratio);
        f.stale += stale;
        f.lost += lost;
        f.lost_recent += lost_recent;
        if ratio < GOAL {
            fails.push(format!(
                "{name}: {:.2} % of the keys read back through proxy{p} (< 99 %)",
                ratio * 100.0
            ));
        }
        if lost_recent > 0 {
            fails.push(format!(
                "{name}: {lost_recent} keys acknowledged since the last fault miss through proxy{p}"
            ));
        }
    }
}

/// The removed node's series are gone from both proxies' `/metrics`, looked at for 15 s: a
/// proxy drops them 10 s after its transition ended (`NODE_SERIES_IDLE` in src/metrics.rs),
/// plus a scrape.
fn gone(c: &Cluster<'_>, r: usize, name: &str, fails: &mut Vec<String>) {
    let label = node_label(r);
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<usize> = match c.pages() {
            Ok(pages) => (0..PROXIES)
                .filter(|&p| pages[p].mentions(&label))
                .collect(),
            Err(_) => (0..PROXIES).collect(),
        };
        if left.is_empty() {
            return;
        }
        if Instant::now() >= end {
            fails.push(format!(
                "{name}: series with {label} still on the /metrics of proxy {left:?}"
            ));
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs and prints; exit code 0 (every check passed), 1 (a check failed), 2 (cannot run).
pub fn main(a: &SecureClusterArgs) -> i32 {
    let started = Instant::now();
    match run(a) {
        Ok(r) => {
            let failures: Vec<&String> = r.failures().collect();
            for e in &r.examples {
                println!("  {e}");
            }
            println!(
                "secure-cluster: {} steps in {:.0} s, {} failed checks",
                r.steps.len(),
                started.elapsed().as_secs_f64(),
                failures.len()
            );
            if let Some(first) = failures.first() {
                println!("secure-cluster: FAILED, first failed check: {first}");
                return 1;
            }
            0
        }
        Err(Ok(CannotRun(why))) => {
            eprintln!("secure-cluster: SKIPPED, cannot run: {why} (needs root and iproute2)");
            2
        }
        Err(Err(e)) => {
            eprintln!("secure-cluster: {e}");
            1
        }
    }
}
