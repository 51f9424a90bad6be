//! Two proxies that see a membership change at different moments read no stale value
//! (issue 23; docs/cluster.md, "Several routers").
//!
//! Four real node processes with mutual TLS and authentication; two proxy processes, each
//! following its own DNS server (`dnssrv+`, re-resolved every [`INTERVAL_SECS`]) and reaching
//! the nodes over TLS with a password. The 4th node is published on proxy A's DNS server
//! first and on proxy B's a second later, so for a while A places keys on the new ring and
//! B on the old one, as two proxies do that re-resolve at their own rounds. Throughout,
//! every key in turn is written through one proxy and, once acknowledged, read through the
//! other (the direction alternating key by key): the read must return exactly that value.
//!
//! Without a transition that keeps the past owners in step across routers, a write through
//! A reaches owners B does not read first, and a write through B owners A does not read first:
//! the test counts those stale reads and wants none.
//!
//! Every wait is bounded, the probe loops bounded in count and time, and every process is
//! killed on drop.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::dns::{Dns, SRV_NAME};
use support::pki::Pki;
use support::{spawn_node, spawn_with_metrics, Server};
use testkit::aio::{metrics_page, Raw};
use testkit::run;

const USERS: &str = "router:r0uter-pw\n";
/// The proxies' discovery interval: each sees a DNS change within it.
const INTERVAL_SECS: u64 = 3;
const KEYS: usize = 200;
/// How long the probe runs once A is on the new ring and before B's DNS server changes.
const SPLIT: Duration = Duration::from_secs(1);
/// Most probes of one phase (a bound besides its time).
const MAX_PROBES: usize = 20_000;

fn key(i: usize) -> String {
    format!("ms:{i:04}")
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A proxy following `dns`, with `[backend]` TLS and authentication.
fn spawn_proxy(pki: &Pki, dns: &Dns, tag: &str) -> (Server, SocketAddr) {
    let p = |n: &str| pki.path(n);
    let config = format!(
        "request_timeout_ms = 1000\nconnect_timeout_ms = 1000\n\
         [ring]\nreplicas = 2\n\
         [backend]\ntls = true\nssl_ca_cert = {:?}\nssl_chain_cert = {:?}\nssl_key = {:?}\n\
         auth_user = \"router\"\nauth_password_file = {:?}\n\
         [discovery]\nsources = [\"dnssrv+{SRV_NAME}\"]\ninterval_secs = {INTERVAL_SECS}\n\
         nameserver = \"{}\"\ntimeout_ms = 500\nremove_after_secs = 600\n",
        p("ca.pem"),
        p("client.pem"),
        p("client.key"),
        p("router-password"),
        dns.addr
    );
    let path = pki.put(&format!("proxy-{tag}.toml"), &config);
    spawn_with_metrics("proxy", &["--config", path.to_str().expect("utf-8 path")])
}

/// How many members the proxy with metrics at `metrics` counts up.
async fn members_up(metrics: SocketAddr) -> usize {
    metrics_page(metrics)
        .await
        .lines()
        .filter(|l| l.starts_with("ringcache_client_node_up{") && l.ends_with(" 1"))
        .count()
}

/// Waits (up to 20 s) until the proxy with metrics at `metrics` counts `n` members up.
async fn wait_up(metrics: SocketAddr, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while members_up(metrics).await != n {
        assert!(Instant::now() < deadline, "not {n} nodes up in 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The write-here, read-there probe over both proxies.
struct Probe {
    conns: [Raw; 2],
    seq: u64,
    next: usize,
    probes: u64,
    stale: Vec<String>,
    write_errors: Vec<String>,
}

impl Probe {
    /// One key: written through one proxy, read through the other.
    async fn once(&mut self, phase: &str) {
        let i = self.next % KEYS;
        let (w, r) = if self.next % 2 == 0 { (0, 1) } else { (1, 0) };
        self.next += 1;
        self.seq += 1;
        let v = format!("s{}", self.seq).into_bytes();
        let k = key(i);
        // A write not acknowledged (a proxy meeting a node it has just added) says nothing
        // of what a read must return: counted, not read.
        match self.conns[w].set(&k, &v).await {
            Ok(line) if line == "STORED" => {}
            other => {
                self.write_errors
                    .push(format!("{phase}: set {k} via {w}: {other:?}"));
                return;
            }
        }
        let got = self.conns[r]
            .get(&k)
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}"));
        self.probes += 1;
        if got.as_ref().map(|g| &g.data) != Some(&v) {
            self.stale.push(format!(
                "{phase}: {k} written s{} via {}, read {:?} via {}",
                self.seq,
                ["A", "B"][w],
                got.map(|g| String::from_utf8_lossy(&g.data).into_owned()),
                ["A", "B"][r],
            ));
        }
    }

    /// Probes for `time` (at most [`MAX_PROBES`]).
    async fn run_for(&mut self, phase: &str, time: Duration) {
        let end = Instant::now() + time;
        for _ in 0..MAX_PROBES {
            if Instant::now() >= end {
                break;
            }
            self.once(phase).await;
        }
    }

    /// Probes until the proxy at `metrics` counts `n` members up (at most 20 s).
    async fn run_until_up(&mut self, phase: &str, metrics: SocketAddr, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while members_up(metrics).await != n {
            assert!(Instant::now() < deadline, "not {n} nodes up in 20 s");
            self.run_for(phase, Duration::from_millis(100)).await;
        }
    }
}

#[test]
fn two_proxies_switching_rings_apart_read_no_stale_value() {
    run(async {
        let pki = Pki::new("membership-stale");
        pki.put("users", USERS);
        pki.put("router-password", "r0uter-pw\n");
        let mut node_args = pki.node_args(2);
        node_args.extend([
            "-Y".into(),
            pki.path("users").to_string_lossy().into_owned(),
        ]);
        let nodes: Vec<Server> = (0..4).map(|_| spawn_node(&strs(&node_args))).collect();
        let first: Vec<&Server> = nodes.iter().take(3).collect();
        let all: Vec<&Server> = nodes.iter().collect();
        let mut dns = [Dns::publishing(&first).await, Dns::publishing(&first).await];
        let (a, a_metrics) = spawn_proxy(&pki, &dns[0], "a");
        let (b, b_metrics) = spawn_proxy(&pki, &dns[1], "b");
        wait_up(a_metrics, 3).await;
        wait_up(b_metrics, 3).await;

        let mut probe = Probe {
            conns: [Raw::connect(a.addr).await, Raw::connect(b.addr).await],
            seq: 0,
            next: 0,
            probes: 0,
            stale: Vec::new(),
            write_errors: Vec::new(),
        };
        // Every key written (and read back across) before the change.
        for _ in 0..KEYS {
            probe.once("before").await;
        }

        // A sees the 4th node, B does not yet.
        dns[0].publish(&all).await;
        probe.run_until_up("A switching", a_metrics, 4).await;
        probe.run_for("A switched, B not", SPLIT).await;
        // Then B, within one interval of A.
        dns[1].publish(&all).await;
        probe.run_until_up("B switching", b_metrics, 4).await;
        probe.run_for("both switched", SPLIT).await;

        // How many of each phase and direction (the text before the key's value).
        let mut kinds: Vec<(String, usize)> = Vec::new();
        for st in &probe.stale {
            let kind = st.split(':').next().unwrap_or("").to_string()
                + if st.contains("via A, read") {
                    " A->B"
                } else {
                    " B->A"
                };
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        assert!(
            probe.stale.is_empty(),
            "{} stale reads of {} probes {kinds:?}; first ones:\n{}",
            probe.stale.len(),
            probe.probes,
            probe.stale[..probe.stale.len().min(10)].join("\n")
        );
        // The probe did run through the split (not a vacuous pass).
        assert!(
            probe.probes > KEYS as u64 * 2,
            "{} probes; write errors: {:?}",
            probe.probes,
            &probe.write_errors[..probe.write_errors.len().min(10)]
        );
        eprintln!(
            "{} probes, {} writes not acknowledged",
            probe.probes,
            probe.write_errors.len()
        );
    });
}
