//! DNS discovery (issue 12, docs/cluster.md "Discovery") against a real DNS server: a
//! `hickory-server` on 127.0.0.1 with an in-memory zone `nodes.test.` whose records each test
//! changes, in front of real `ringcache node` processes on loopback addresses (127.0.0.1,
//! .2 and .3, which Linux routes without setup), behind a proxy whose `[discovery]` asks that
//! server.
//!
//! - SRV records added and removed move keys with a transition: with one copy per key, the
//!   share of keys that read back right stays ≥ 99 % through each change (as
//!   tests/rebalance.rs measures for a config reload), and a client that knows only the new
//!   membership finds them all afterwards (the data really moved).
//! - A node whose name keeps its SRV record but whose A record changes (a pod recreated with a
//!   new IP) moves nothing: no transition, the same ring, the new process re-warmed from the
//!   replicas, every key still served.
//! - `dns+HOST:PORT` makes each A record a node named by its address; a record added is a
//!   member added, with a transition.
//! - An address change while a transition runs lets it finish; two changes seconds apart lose
//!   no key; a config reload keeps the discovered members; an embedded client follows DNS the
//!   same way.
//! - A node sent SIGTERM while its record stays (a StatefulSet scale-down) drains: it reports
//!   `draining 1`, the proxy takes it out of the ring with a transition that moves its keys
//!   to the other nodes, and when it is gone and its record removed nothing more happens.
//! - DNS failures (NXDOMAIN, empty answers, a server that does not answer) keep the last good
//!   list and are counted by reason; a proxy whose records do not exist yet starts empty and
//!   takes the nodes when they appear.

mod support;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{RData, RecordType};
use ringcache::proxy::{self, ProxyConfig, ProxyHandle};
use ringcache_client::cluster_config::{DiscoverySettings, RebalanceSettings};
use ringcache_client::health::NodeState;
use ringcache_client::ring::NodeSpec;
use ringcache_client::topology::Topology;
use ringcache_client::{Client, Router};
use support::dns::{Dns, SRV_NAME};
use support::{fresh_client, proxy_config, spawn_node_at, Server};
use testkit::aio::http_get;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

const KEYS: usize = 10_000;
/// Limit on any one exchange with the proxy.
const IO_LIMIT: Duration = Duration::from_secs(10);
/// Limit on discovery noticing a change (interval 1 s) or a transition ending.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

static SERIAL: Mutex<()> = Mutex::new(());

/// One test body at a time (each starts several processes), on its own runtime.
fn run<F: std::future::Future<Output = ()>>(body: F) {
    let _serial: MutexGuard<'_, ()> = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body);
}

// ----- a pipelined text-protocol connection to the proxy -----------------------------------

fn key(i: usize) -> String {
    format!("dk:{i:05}")
}

fn value(i: usize) -> Vec<u8> {
    format!("v:{i}:{}", "x".repeat(i % 40)).into_bytes()
}

struct Raw {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).await.expect("connect");
        let (rd, wr) = s.into_split();
        Raw {
            rd: BufReader::new(rd),
            wr,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.expect("write");
    }

    async fn line(&mut self) -> String {
        let mut l = String::new();
        let n = tokio::time::timeout(IO_LIMIT, self.rd.read_line(&mut l))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(n > 0, "connection closed");
        l.trim_end().to_string()
    }

    /// Pipelined `set`s of every key; every reply must be `STORED`.
    async fn load(&mut self) {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
            let mut req = Vec::new();
            for &i in chunk {
                let v = value(i);
                req.extend_from_slice(format!("set {} 0 0 {}\r\n", key(i), v.len()).as_bytes());
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
            }
            self.wr.write_all(&req).await.expect("write");
            for &i in chunk {
                assert_eq!(self.line().await, "STORED", "set {}", key(i));
            }
        }
    }

    /// Share of the keys that read back with their value (multi-gets of 100).
    async fn hit_ratio(&mut self) -> f64 {
        let mut good = 0;
        let keys: Vec<String> = (0..KEYS).map(key).collect();
        let mut got: HashMap<String, Vec<u8>> = HashMap::new();
        for chunk in keys.chunks(100) {
            self.wr
                .write_all(format!("get {}\r\n", chunk.join(" ")).as_bytes())
                .await
                .expect("write");
            loop {
                let l = self.line().await;
                if l == "END" {
                    break;
                }
                let parts: Vec<&str> = l.split(' ').collect();
                assert!(parts.len() == 4 && parts[0] == "VALUE", "bad line {l:?}");
                let len: usize = parts[3].parse().expect("length");
                let mut data = vec![0u8; len + 2];
                tokio::time::timeout(IO_LIMIT, self.rd.read_exact(&mut data))
                    .await
                    .expect("data in time")
                    .expect("data");
                data.truncate(len);
                got.insert(parts[1].to_string(), data);
            }
        }
        for i in 0..KEYS {
            if got.get(&key(i)).is_some_and(|v| *v == value(i)) {
                good += 1;
            }
        }
        good as f64 / KEYS as f64
    }
}

// ----- the cluster -------------------------------------------------------------------------

/// A ringcache node on `ip` (port chosen by the kernel, or `port`).
fn node_on(ip: Ipv4Addr, port: u16) -> Server {
    spawn_node_at(&format!("{ip}:{port}"), &[])
}

async fn start_proxy(dns: &Dns, replicas: usize) -> (ProxyHandle, Router) {
    start_proxy_with(dns, replicas, 1000).await
}

async fn start_proxy_with(
    dns: &Dns,
    replicas: usize,
    request_timeout_ms: u64,
) -> (ProxyHandle, Router) {
    start_proxy_rated(
        dns,
        replicas,
        request_timeout_ms,
        RebalanceSettings::default().rate,
    )
    .await
}

/// A proxy whose migrator moves `rate` keys a second.
async fn start_proxy_rated(
    dns: &Dns,
    replicas: usize,
    request_timeout_ms: u64,
    rate: u32,
) -> (ProxyHandle, Router) {
    let source = format!("dnssrv+{SRV_NAME}");
    start_proxy_source(dns, replicas, request_timeout_ms, rate, source).await
}

/// A proxy following `source` (see [`proxy_config`] for the rest); returns it and its client.
async fn start_proxy_source(
    dns: &Dns,
    replicas: usize,
    request_timeout_ms: u64,
    rate: u32,
    source: String,
) -> (ProxyHandle, Router) {
    let cfg = ProxyConfig {
        rebalance: RebalanceSettings {
            rate,
            ..RebalanceSettings::default()
        },
        discovery: Some(DiscoverySettings {
            interval_secs: 1,
            nameserver: Some(dns.addr.to_string()),
            timeout_ms: 500,
            remove_after_secs: 0,
            ..DiscoverySettings::new([source])
        }),
        ..proxy_config(request_timeout_ms, replicas)
    };
    let proxy = proxy::start(cfg, None).await.expect("proxy");
    let client = proxy.proxy.router().clone();
    (proxy, client)
}

/// The ring's members as `name=addr`, in ring order.
fn members(client: &Router) -> Vec<String> {
    client
        .topology()
        .ring
        .nodes()
        .iter()
        .map(|n| format!("{}={}", n.ring_name(), n.addr))
        .collect()
}

fn member(i: usize, addr: SocketAddr) -> String {
    format!("n{i}.nodes.test:{}={addr}", addr.port())
}

/// `nodes[i]` for each `i` in `ids`, as the members `n<i>`.
fn pick(nodes: &[Server], ids: std::ops::Range<usize>) -> Vec<(usize, &Server)> {
    ids.map(|i| (i, &nodes[i])).collect()
}

/// The ring names of `members` (see [`member`]).
fn names(members: &[(usize, &Server)]) -> Vec<String> {
    members.iter().map(|&(i, n)| member(i, n.addr)).collect()
}

/// A connection to the proxy at `addr` that has loaded every key through it.
async fn loaded(addr: SocketAddr) -> Raw {
    let mut conn = Raw::connect(addr).await;
    conn.load().await;
    conn
}

/// Waits for the ring to become `want`, then reads every key through `conn` during the
/// transition and after it has settled, and with a fresh client that knows only the new ring:
/// returns those three hit ratios (during, after, placed).
async fn across_change(
    client: &Router,
    conn: &mut Raw,
    want: Vec<String>,
    replicas: usize,
) -> (f64, f64, f64) {
    wait_members(client, want).await;
    let during = conn.hit_ratio().await;
    settle(client).await;
    let after = conn.hit_ratio().await;
    let placed = placed_ratio(client.topology().ring.nodes().to_vec(), replicas).await;
    (during, after, placed)
}

/// `N` ringcache nodes on 127.0.0.1.
fn on_loopback<const N: usize>() -> [Server; N] {
    std::array::from_fn(|_| node_on(LOCAL, 0))
}

/// Members n0, n1, n2 published (n1 on 127.0.0.2, so that it can move to another address).
async fn published_trio() -> ([Server; 3], Dns) {
    let nodes = [
        node_on(LOCAL, 0),
        node_on(Ipv4Addr::new(127, 0, 0, 2), 0),
        node_on(LOCAL, 0),
    ];
    let dns = Dns::publishing(&[&nodes[0], &nodes[1], &nodes[2]]).await;
    (nodes, dns)
}

/// Member `n<i>`'s pod dies and comes back at `ip`, empty, on the same port, and its A record
/// follows; returns the new process.
async fn readdress(dns: &mut Dns, i: usize, old: &mut Server, ip: Ipv4Addr) -> Server {
    let port = old.addr.port();
    old.kill9();
    let new = node_on(ip, port);
    dns.set_a(i, ip).await;
    new
}

/// Once the member at `addr` is up again (re-warmed from its replicas): the hit ratio through
/// `conn` and the share of keys placed where the ring says.
async fn rewarmed(
    client: &Router,
    conn: &mut Raw,
    addr: SocketAddr,
    replicas: usize,
) -> (f64, f64) {
    let topo = client.topology();
    wait_up(&topo, addr).await;
    let ratio = conn.hit_ratio().await;
    let placed = placed_ratio(topo.ring.nodes().to_vec(), replicas).await;
    (ratio, placed)
}

/// Prints `what`'s hit ratio and share of keys placed where the ring says; both must be at
/// least 0.99.
fn assert_served_and_placed(what: &str, ratio: f64, placed: f64) {
    println!("{what}: hit ratio {ratio:.4}, placed {placed:.4}");
    assert!(ratio >= 0.99 && placed >= 0.99, "{ratio} {placed}");
}

/// Waits until the proxy's ring is `want` (sorted by name, as discovery orders it).
async fn wait_members(client: &Router, mut want: Vec<String>) {
    want.sort();
    let deadline = Instant::now() + SETTLE_LIMIT;
    while members(client) != want {
        assert!(
            Instant::now() < deadline,
            "discovery did not reach {want:?}; ring is {:?}",
            members(client)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (bounded) until the member at `addr` is up: a restarted node is flushed, re-warmed
/// from its replicas, then serves again.
async fn wait_up(topo: &Topology, addr: SocketAddr) {
    let entry = topo
        .nodes
        .iter()
        .find(|n| n.spec.addr == addr.to_string())
        .unwrap_or_else(|| panic!("{addr} is a member"))
        .clone();
    let deadline = Instant::now() + SETTLE_LIMIT;
    while entry.health.state() != NodeState::Up {
        assert!(
            Instant::now() < deadline,
            "{addr} re-warmed in time: {:?}",
            entry.health.state()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn settle(client: &Router) {
    assert!(
        client.wait_settled(SETTLE_LIMIT).await,
        "transition ended in time"
    );
}

/// Share of the keys a client that knows only `nodes` (no old ring, no rebalancing) reads
/// back right: the data is where the ring says.
async fn placed_ratio(nodes: Vec<NodeSpec>, replicas: usize) -> f64 {
    let fresh = fresh_client(nodes, replicas).await;
    let keys: Vec<String> = (0..KEYS).map(key).collect();
    let got = fresh.get_many(&keys).await.expect("get_many");
    assert_eq!(got.errors, 0, "the fresh client reached every node");
    let good = got
        .items
        .iter()
        .enumerate()
        .filter(|(i, h)| h.as_ref().is_some_and(|h| h.value[..] == value(*i)[..]))
        .count();
    good as f64 / KEYS as f64
}

/// The value of the counter `name{reason="<reason>"}` on the metrics page (0 if absent).
fn failures(reason: &str) -> f64 {
    let page = ringcache::metrics::install().render();
    let prefix = format!("ringcache_discovery_failures_total{{reason=\"{reason}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().expect("counter value"))
}

const LOCAL: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

// ----- the tests -------------------------------------------------------------------------

/// SRV records added, then removed: each change is a transition that keeps every key readable
/// (one copy per key, so nothing else could serve a moved key) and moves the data.
#[test]
fn srv_records_added_and_removed_move_keys_with_a_transition() {
    run(async {
        let nodes: [Server; 4] = on_loopback();
        let mut dns = Dns::start().await;
        for (i, n) in nodes.iter().enumerate() {
            dns.set_a(i, LOCAL).await;
            assert_eq!(n.addr.ip(), IpAddr::V4(LOCAL));
        }
        dns.set_srv_of(&pick(&nodes, 0..3)).await;
        let (proxy, client) = start_proxy(&dns, 1).await;
        // Resolved before the proxy took its first client.
        let mut sorted = names(&pick(&nodes, 0..3));
        sorted.sort();
        assert_eq!(members(&client), sorted);
        assert_eq!(
            proxy.proxy.config().nodes.len(),
            3,
            "the list in force is recorded"
        );
        let mut conn = loaded(proxy.addr).await;
        assert_eq!(conn.hit_ratio().await, 1.0);

        // Scale out: n3 appears.
        dns.set_srv_of(&pick(&nodes, 0..4)).await;
        let (during, after, placed) =
            across_change(&client, &mut conn, names(&pick(&nodes, 0..4)), 1).await;
        println!("add n3: hit ratio {during:.4} during, {after:.4} after, placed {placed:.4}");
        assert!(during >= 0.99 && after >= 0.99, "{during} {after}");
        assert!(
            placed >= 0.99,
            "the keys moved to their new owners: {placed}"
        );
        assert!(client.rebalance_status().copied > 0, "keys were copied");

        // Scale in: n0's record goes (its process still runs, as a pod being drained does).
        dns.set_srv_of(&pick(&nodes, 1..4)).await;
        let (during, after, placed) =
            across_change(&client, &mut conn, names(&pick(&nodes, 1..4)), 1).await;
        println!("remove n0: hit ratio {during:.4} during, {after:.4} after, placed {placed:.4}");
        println!("{:?}", client.rebalance_status());
        assert!(during >= 0.99 && after >= 0.99, "{during} {after}");
        assert!(placed >= 0.99, "n0's keys moved off it: {placed}");
        proxy.shutdown().await;
    });
}

/// Two changes seconds apart (a StatefulSet scales pod by pod; here a node is added, then
/// another removed) lose no key: the first transition's cleanup, which waits two request
/// timeouts before deleting leftover copies, must not run against the ring the second change
/// replaced. (It did: it judged keys by the old ring and confirmed them on the new one, where
/// the node holding the only copy counted as "another owner has it", and deleted it.)
#[test]
fn a_change_right_after_a_transition_loses_no_key() {
    run(async {
        let nodes: [Server; 4] = on_loopback();
        let mut dns = Dns::start().await;
        for i in 0..4 {
            dns.set_a(i, LOCAL).await;
        }
        let port = |i: usize| nodes[i].addr.port();
        dns.set_srv(&[(0, port(0)), (1, port(1)), (2, port(2))])
            .await;
        // The cleanup waits 2 × 3 s: the second change lands inside that window.
        let (proxy, client) = start_proxy_with(&dns, 1, 3000).await;
        Raw::connect(proxy.addr).await.load().await;

        dns.set_srv(&[(0, port(0)), (1, port(1)), (2, port(2)), (3, port(3))])
            .await;
        wait_members(&client, (0..4).map(|i| member(i, nodes[i].addr)).collect()).await;
        settle(&client).await;
        dns.set_srv(&[(1, port(1)), (2, port(2)), (3, port(3))])
            .await;
        wait_members(&client, (1..4).map(|i| member(i, nodes[i].addr)).collect()).await;
        settle(&client).await;
        // Both cleanups over (the first one's window has passed, the second's has run).
        let deadline = Instant::now() + SETTLE_LIMIT;
        tokio::time::sleep(Duration::from_secs(7)).await;
        while client.rebalance_status().phase != ringcache_client::Phase::Idle {
            assert!(Instant::now() < deadline, "cleanup ended in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let placed = placed_ratio(client.topology().ring.nodes().to_vec(), 1).await;
        println!(
            "add then remove: placed {placed:.4}, {:?}",
            client.rebalance_status()
        );
        assert!(placed >= 0.99, "keys lost: {placed}");
        proxy.shutdown().await;
    });
}

/// `dns+HOST:PORT`: every A record is a node at that port, named by its address; an address
/// added is a member added, with a transition that keeps every key readable.
#[test]
fn a_records_name_nodes_by_address() {
    run(async {
        let ips = [
            Ipv4Addr::new(127, 0, 0, 2),
            Ipv4Addr::new(127, 0, 0, 3),
            Ipv4Addr::new(127, 0, 0, 4),
        ];
        let first = node_on(ips[0], 0);
        let port = first.addr.port();
        let nodes = [first, node_on(ips[1], port), node_on(ips[2], port)];
        let mut dns = Dns::start().await;
        let a = |n: usize| {
            ips[..n]
                .iter()
                .map(|&ip| RData::A(A(ip)))
                .collect::<Vec<_>>()
        };
        dns.set("all.nodes.test.", RecordType::A, a(2)).await;
        let source = format!("dns+all.nodes.test:{port}");
        let (proxy, client) = start_proxy_source(&dns, 1, 1000, 20_000, source).await;
        let by_addr = |n: usize| -> Vec<String> {
            nodes[..n]
                .iter()
                .map(|s| format!("{}={}", s.addr, s.addr))
                .collect()
        };
        assert_eq!(members(&client), by_addr(2));
        assert!(client
            .topology()
            .ring
            .nodes()
            .iter()
            .all(|n| n.name.is_none()));
        let mut conn = loaded(proxy.addr).await;

        dns.set("all.nodes.test.", RecordType::A, a(3)).await;
        wait_members(&client, by_addr(3)).await;
        let during = conn.hit_ratio().await;
        settle(&client).await;
        let placed = placed_ratio(client.topology().ring.nodes().to_vec(), 1).await;
        assert_served_and_placed("A record added (hit ratio during)", during, placed);
        proxy.shutdown().await;
    });
}

/// n1's pod is recreated with a new IP: same SRV record (same name), another A record. No
/// key changes owner, no transition starts, the new process is re-warmed from the replicas,
/// and every key is still served.
#[test]
fn a_new_address_under_the_same_name_moves_nothing() {
    run(async {
        let ([n0, mut n1, n2], mut dns) = published_trio().await;
        let (proxy, client) = start_proxy(&dns, 2).await;
        let mut conn = loaded(proxy.addr).await;
        let ring_before: Vec<(u64, usize)> = client.topology().ring.points().collect();
        let started_before = client.rebalance_status().started;

        // The pod dies and comes back elsewhere, empty, on the same port.
        let n1b = readdress(&mut dns, 1, &mut n1, Ipv4Addr::new(127, 0, 0, 3)).await;
        wait_members(&client, names(&[(0, &n0), (1, &n1b), (2, &n2)])).await;
        let topo = client.topology();
        assert!(topo.past.is_empty(), "no transition");
        assert_eq!(
            client.rebalance_status().started,
            started_before,
            "no transition"
        );
        let ring_after: Vec<(u64, usize)> = topo.ring.points().collect();
        assert!(
            ring_before == ring_after,
            "every ring point stayed with its node"
        );

        // Re-warmed from the replicas, then serving again.
        let (ratio, placed) = rewarmed(&client, &mut conn, n1b.addr, 2).await;
        println!("n1 readdressed: hit ratio {ratio:.4}, placed {placed:.4}");
        assert!(ratio >= 0.99, "{ratio}");
        assert!(
            placed >= 0.99,
            "the new process holds n1's keys again: {placed}"
        );
        assert_eq!(
            client.rebalance_status().started,
            started_before,
            "still no transition"
        );
        proxy.shutdown().await;
    });
}

/// A node's IP changes while a transition (a node added) is under way: the transition still
/// completes (the address change replaces the topology the migrator was working on, so it gets
/// a new migrator), and every key is served and placed afterwards.
#[test]
fn an_address_change_during_a_transition_lets_it_finish() {
    run(async {
        let ([n0, mut n1, n2], mut dns) = published_trio().await;
        let n3 = node_on(LOCAL, 0);
        dns.set_a(3, LOCAL).await;
        // Slow migration: the transition lasts seconds.
        let (proxy, client) = start_proxy_rated(&dns, 2, 1000, 1000).await;
        let mut conn = loaded(proxy.addr).await;

        let four = [(0, &n0), (1, &n1), (2, &n2), (3, &n3)];
        dns.set_srv_of(&four).await;
        wait_members(&client, names(&four)).await;
        assert!(
            client.in_transition(),
            "the migration is slow enough to overlap"
        );
        let n1b = readdress(&mut dns, 1, &mut n1, Ipv4Addr::new(127, 0, 0, 3)).await;
        wait_members(&client, names(&[(0, &n0), (1, &n1b), (2, &n2), (3, &n3)])).await;
        settle(&client).await;
        let (ratio, placed) = rewarmed(&client, &mut conn, n1b.addr, 2).await;
        assert_served_and_placed("readdress mid-transition", ratio, placed);
        proxy.shutdown().await;
    });
}

/// NXDOMAIN, an empty answer and a server that stops answering each keep the last good list,
/// and each is counted by reason.
#[test]
fn dns_failures_keep_the_last_good_list() {
    run(async {
        let [n0, n1] = on_loopback();
        let mut dns = Dns::publishing(&[&n0, &n1]).await;
        let (proxy, client) = start_proxy(&dns, 2).await;
        let good = vec![member(0, n0.addr), member(1, n1.addr)];
        wait_members(&client, good.clone()).await;

        let wait_counted = |reason: &'static str, before: f64| async move {
            let deadline = Instant::now() + SETTLE_LIMIT;
            while failures(reason) <= before {
                assert!(Instant::now() < deadline, "no {reason} failure counted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        // The SRV name vanishes: NXDOMAIN.
        let before = failures("nxdomain");
        dns.set(SRV_NAME, RecordType::SRV, Vec::new()).await;
        wait_counted("nxdomain", before).await;
        assert_eq!(members(&client), good);

        // The name exists but has no SRV records: an empty answer (NOERROR, no data).
        let before = failures("empty");
        dns.set(
            SRV_NAME,
            RecordType::TXT,
            vec![RData::TXT(hickory_server::proto::rr::rdata::TXT::new(
                vec!["x".into()],
            ))],
        )
        .await;
        wait_counted("empty", before).await;
        assert_eq!(members(&client), good);

        // The server stops answering (its port still bound, so no ICMP refusal): timeouts.
        let before = failures("timeout");
        dns.stop().await;
        // The server's socket closes once its tasks (aborted with it) are dropped: retry.
        let deadline = Instant::now() + IO_LIMIT;
        let _silent = loop {
            match std::net::UdpSocket::bind(dns.addr) {
                Ok(s) => break s,
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebind the DNS port: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        wait_counted("timeout", before).await;
        assert_eq!(members(&client), good);
        // Still serving on the last good list.
        let mut conn = loaded(proxy.addr).await;
        assert_eq!(conn.hit_ratio().await, 1.0);
        proxy.shutdown().await;
    });
}

/// A proxy whose first resolution fails starts with no members, says so to clients and on
/// `/ready` (503), and takes the nodes as soon as DNS has them (then `/ready` is 200).
#[test]
fn a_proxy_started_before_its_records_exist_waits_for_them() {
    run(async {
        let n0 = node_on(LOCAL, 0);
        let mut dns = Dns::start().await;
        let (proxy, client) = start_proxy(&dns, 1).await;
        assert!(members(&client).is_empty());
        let mut conn = Raw::connect(proxy.addr).await;
        conn.send(b"set k 0 0 1\r\nv\r\nget k\r\n").await;
        // As with every owner of a key down: writes fail, reads miss.
        assert_eq!(conn.line().await, "SERVER_ERROR backend unavailable");
        assert_eq!(conn.line().await, "END");
        // Its port accepts, but /ready says it has no cluster.
        let maddr = proxy.metrics_addr.expect("metrics bound");
        assert_eq!(
            http_get(maddr, "/ready").await,
            (
                503,
                "not ready: the ring has no nodes: discovery has resolved none\n".to_string()
            )
        );

        dns.set_a(0, LOCAL).await;
        dns.set_srv(&[(0, n0.addr.port())]).await;
        wait_members(&client, vec![member(0, n0.addr)]).await;
        conn.send(b"set k 0 0 1\r\nv\r\nget k\r\n").await;
        assert_eq!(conn.line().await, "STORED");
        assert_eq!(conn.line().await, "VALUE k 0 1");
        // The node answered: ready.
        assert_eq!(
            http_get(maddr, "/ready").await,
            (200, "ready\n".to_string())
        );
        proxy.shutdown().await;
    });
}

/// The embedded client follows DNS the same way (`Discovery::start` on a `Client`), and stops
/// following it when the handle is dropped.
#[test]
fn an_embedded_client_follows_dns_until_the_handle_is_dropped() {
    run(async {
        let [n0, n1] = on_loopback();
        let mut dns = Dns::publishing(&[&n0]).await;
        dns.set_a(1, LOCAL).await;
        let client = Client::builder().replicas(2).build().await.expect("client");
        let settings = DiscoverySettings {
            interval_secs: 1,
            nameserver: Some(dns.addr.to_string()),
            timeout_ms: 500,
            remove_after_secs: 0,
            ..DiscoverySettings::new([format!("dnssrv+{SRV_NAME}")])
        };
        let handle =
            ringcache_client::discovery::Discovery::start(client.router(), &settings, None)
                .await
                .expect("discovery");
        assert_eq!(
            members(client.router()),
            vec![member(0, n0.addr)],
            "resolved at start"
        );
        client.set(b"k", &b"v"[..], 0, 0).await.expect("set");

        dns.set_srv(&[(0, n0.addr.port()), (1, n1.addr.port())])
            .await;
        wait_members(
            client.router(),
            vec![member(0, n0.addr), member(1, n1.addr)],
        )
        .await;
        settle(client.router()).await;
        assert_eq!(
            &client.get(b"k").await.expect("get").expect("hit").value[..],
            b"v"
        );

        drop(handle);
        dns.set_srv(&[(1, n1.addr.port())]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            members(client.router()),
            vec![member(0, n0.addr), member(1, n1.addr)],
            "no change applied after the handle was dropped"
        );
    });
}

/// A config reload under discovery changes what it may (here the request timeout) and keeps
/// the discovered members: the file has no `[[nodes]]`, and that must not empty the ring.
#[test]
fn a_reload_keeps_the_discovered_members() {
    run(async {
        let n0 = node_on(LOCAL, 0);
        let dns = Dns::publishing(&[&n0]).await;
        let (proxy, client) = start_proxy(&dns, 1).await;
        let good = vec![member(0, n0.addr)];
        assert_eq!(members(&client), good);
        let path = std::env::temp_dir().join(format!(
            "ringcache-discovery-reload-{}.toml",
            std::process::id()
        ));
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n\
                 request_timeout_ms = 1500\nconnect_timeout_ms = 500\nfailure_limit = 2\n\
                 [ring]\nreplicas = 1\n[discovery]\nsources = [\"dnssrv+{SRV_NAME}\"]\n\
                 interval_secs = 1\nnameserver = \"{}\"\ntimeout_ms = 500\nremove_after_secs = 0\n",
                dns.addr
            ),
        )
        .expect("write config");
        let changed = proxy::reload::reload(&proxy.proxy, &path)
            .await
            .expect("reload");
        let _ = std::fs::remove_file(&path);
        assert!(changed, "the timeout changed");
        assert_eq!(proxy.proxy.config().request_timeout_ms, 1500);
        assert_eq!(members(&client), good, "the ring kept its members");
        assert_eq!(
            proxy.proxy.config().nodes,
            client.topology().ring.nodes().to_vec()
        );
        let mut conn = Raw::connect(proxy.addr).await;
        conn.send(b"set k 0 0 1\r\nv\r\n").await;
        assert_eq!(conn.line().await, "STORED");
        proxy.shutdown().await;
    });
}

/// Scale-in on Kubernetes: the pod gets SIGTERM while its SRV record stays (the headless
/// Service publishes not-ready addresses) and, with one copy per key, its keys must move
/// rather than go cold. The node drains (serves on, `stats` says `draining 1`); the proxy takes
/// it out of the ring at its next round and the transition copies its keys to the other two.
/// Afterwards every key reads through the proxy and sits where the two-node ring puts it (read
/// from those nodes directly). The drain ends on its own once the node went unasked; while
/// its record lingers it stays out, and when the record goes nothing more changes; the pod
/// back under its name is a member again. Before drains, the node stopped at once on SIGTERM,
/// stayed a (down) member, and a third of the keys were cold.
#[test]
fn a_node_sent_sigterm_is_drained_before_it_goes() {
    run(async {
        let drain = ["--drain-timeout", "60", "--drain-quiet", "3"];
        let mut nodes: Vec<Server> = (0..3)
            .map(|_| spawn_node_at(&format!("{LOCAL}:0"), &drain))
            .collect();
        let mut dns = Dns::publishing(&[&nodes[0], &nodes[1], &nodes[2]]).await;
        let (proxy, client) = start_proxy(&dns, 1).await;
        wait_members(&client, names(&pick(&nodes, 0..3))).await;
        let mut conn = loaded(proxy.addr).await;
        assert_eq!(conn.hit_ratio().await, 1.0);
        let started = client.rebalance_status().started;

        // SIGTERM to n2; its records stay.
        nodes[2]
            .process()
            .signal(libc::SIGTERM)
            .expect("SIGTERM n2");
        let rest = names(&pick(&nodes, 0..2));
        let (during, after, placed) = across_change(&client, &mut conn, rest.clone(), 1).await;
        assert_eq!(client.topology().ring.nodes().len(), 2);
        println!(
            "drain n2: hit ratio {during:.4} during, {after:.4} after, placed {placed:.4}; {:?}",
            client.rebalance_status()
        );
        assert!(
            during >= 0.99,
            "read-through during the transition: {during}"
        );
        assert_eq!(after, 1.0, "every key reads through the proxy");
        assert_eq!(
            placed, 1.0,
            "every key now lives on n0 or n1, where the ring says"
        );
        assert!(
            client.rebalance_status().copied > 0,
            "n2's keys were copied"
        );

        // Unasked since the transition ended, n2 ends its drain by itself (well before its
        // 60 s drain_timeout) and exits cleanly.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = nodes[2].process().exited() {
                break s;
            }
            assert!(Instant::now() < deadline, "n2's drain ended in time");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(status.success(), "n2 exit status {status:?}");
        let mut rest = rest;
        rest.sort();

        // Exited, but its record lingers (the pod object is not deleted yet): rounds that find
        // it silent keep it out, rather than routing keys to a dead node.
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            members(&client),
            rest,
            "a silent node seen draining stays out"
        );

        // The pod is gone and its record with it: nothing more happens.
        let n2_addr = nodes[2].addr;
        nodes[2].kill9();
        dns.publish(&[&nodes[0], &nodes[1]]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(members(&client), rest);
        assert_eq!(
            client.rebalance_status().started,
            started + 1,
            "one transition: the drain's"
        );
        assert_eq!(conn.hit_ratio().await, 1.0, "every key still reads");

        // The pod comes back under its name (same address here), not draining: a member
        // again at the next round, with a transition that moves its keys back.
        nodes[2] = spawn_node_at(&n2_addr.to_string(), &drain);
        dns.publish(&[&nodes[0], &nodes[1], &nodes[2]]).await;
        wait_members(&client, names(&pick(&nodes, 0..3))).await;
        settle(&client).await;
        assert_eq!(
            conn.hit_ratio().await,
            1.0,
            "every key reads after the return"
        );
        let placed = placed_ratio(client.topology().ring.nodes().to_vec(), 1).await;
        assert_eq!(placed, 1.0, "n2's keys moved back to it");
        proxy.shutdown().await;
    });
}
