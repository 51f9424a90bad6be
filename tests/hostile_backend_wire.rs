//! What the router writes to a backend and what it takes back from one, end to end.
//!
//! Three defects of issue 9, each reproduced exactly as filed on a `ringcache local`-like layout
//! (three in-process nodes on loopback, replicas 2, the proxy in front), with the outcome read
//! back from each node directly: a refused binary key must not reach a node raw, a long TTL must
//! survive a replica copy, and `md k qb` must not break the cluster. Then fake backends (a
//! `TcpListener` in the test) that answer garbage, stream forever, announce a 1 GiB value, never
//! answer or never read: the client must answer an error within its deadline, keep memory
//! bounded, and keep serving other keys; a connection whose reply stream is in doubt is reset.
//!
//! Tests run one at a time: some measure the process's RSS, which a parallel test would disturb.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringcache::config::NodeConfig;
use ringcache::node::{self, clock::SystemClock, NodeHandle};
use ringcache::proxy::{self, ProxyConfig, ProxyHandle};
use ringcache_client::cluster_config::RingSettings;
use ringcache_client::protocol::{MetaCmd, MetaFlags, MetaRequest};
use ringcache_client::ring::NodeSpec;
use ringcache_client::{Client, ClientOptions};
use testkit::{blocking, run, Conn};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

// ----- cluster ---------------------------------------------------------------------------

struct Cluster {
    nodes: Vec<NodeHandle>,
    proxy: ProxyHandle,
}

/// A proxy on a loopback port of its choosing over `nodes` (named `n<i>`) with `replicas`
/// copies; the rest default.
fn proxy_over(nodes: &[SocketAddr], replicas: usize) -> ProxyConfig {
    ProxyConfig {
        server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
        ring: RingSettings {
            replicas,
            ..RingSettings::default()
        },
        nodes: support::specs(nodes),
        ..ProxyConfig::default()
    }
}

impl Cluster {
    /// Three nodes, replicas 2, a proxy with `request_timeout_ms`.
    async fn start(request_timeout_ms: u64) -> Cluster {
        let nodes = support::local_nodes(3).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let cfg = ProxyConfig {
            request_timeout_ms,
            ..proxy_over(&addrs, 2)
        };
        let proxy = proxy::start(cfg, None).await.unwrap();
        Cluster { nodes, proxy }
    }

    fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }
}

/// Runs `body` (blocking code) against a fresh [`Cluster`] with `request_timeout_ms`, given the
/// proxy's address and the nodes'.
fn with_cluster(
    request_timeout_ms: u64,
    body: impl FnOnce(SocketAddr, Vec<SocketAddr>) + Send + 'static,
) {
    run(async {
        let c = Cluster::start(request_timeout_ms).await;
        let (proxy, nodes) = (c.proxy.addr, c.node_addrs());
        blocking(move || body(proxy, nodes)).await;
    });
}

/// A raw connection; every read bounded by `testkit::REPLY_TIMEOUT`.
fn raw(addr: SocketAddr) -> Conn {
    Conn::open(addr, "raw")
}

/// Each node's `cmd_flush`, read from the node directly.
fn flushes(nodes: &[SocketAddr]) -> Vec<String> {
    nodes.iter().map(|&a| raw(a).stat("cmd_flush")).collect()
}

/// For each key, which nodes (by index) hold it with the expected value (read directly); a
/// node holding a different value is a failure.
fn holders(nodes: &[SocketAddr], want: &HashMap<String, Vec<u8>>) -> HashMap<String, Vec<usize>> {
    let keys: Vec<String> = want.keys().cloned().collect();
    let mut out: HashMap<String, Vec<usize>> = keys.iter().map(|k| (k.clone(), vec![])).collect();
    for (i, &a) in nodes.iter().enumerate() {
        for (k, v) in raw(a).get_many(&keys) {
            assert_eq!(
                Some(&v),
                want.get(&k),
                "node {i} holds another value for {k}"
            );
            out.get_mut(&k).unwrap().push(i);
        }
    }
    out
}

/// Stores `n` keys `{prefix}{i}` through the proxy; returns key → value.
fn store_keys(proxy: SocketAddr, prefix: &str, n: usize) -> HashMap<String, Vec<u8>> {
    let mut c = raw(proxy);
    let mut want = HashMap::new();
    for i in 0..n {
        let (k, v) = (format!("{prefix}{i}"), format!("value-{i}"));
        let r = c.line(format!("set {k} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes());
        assert_eq!(r, "STORED", "{k}");
        want.insert(k, v.into_bytes());
    }
    want
}

fn assert_two_copies(nodes: &[SocketAddr], want: &HashMap<String, Vec<u8>>) {
    let lost: Vec<String> = holders(nodes, want)
        .into_iter()
        .filter(|(_, h)| h.len() != 2)
        .map(|(k, h)| format!("{k} on {h:?}"))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} keys are not on exactly 2 nodes: {lost:?}",
        lost.len(),
        want.len()
    );
}

// ----- defect 1: key injection -------------------------------------------------------------

/// `ms eAoNZmx1c2hfYWxs 2000000 b` (the key decodes to `x\r\nflush_all`, the size is over the
/// item limit) is refused as memcached refuses it, and the unlink that follows must not carry
/// the decoded key raw to a node, where it ran `flush_all`. A binary key's replica copy after a
/// conditional write must not either.
#[test]
fn refused_binary_key_never_reaches_a_node_raw() {
    with_cluster(1000, |proxy, nodes| {
        let want = store_keys(proxy, "inj", 7);
        let mut p = raw(proxy);
        // The key (`x\n\r...` in fact), then one that decodes to `x\r\nflush_all`.
        for key in ["eAoNZmx1c2hfYWxs", "eA0KZmx1c2hfYWxs"] {
            let mut req = format!("ms {key} 2000000 b\r\n").into_bytes();
            req.resize(req.len() + 2_000_000, b'z');
            req.extend_from_slice(b"\r\n");
            p.send(&req);
            assert_eq!(
                p.until(b"\r\n"),
                b"SERVER_ERROR object too large for cache\r\n"
            );
            assert_eq!(p.line(b"mn\r\n"), "MN");
        }
        // Past the health probe's first pause: a node a slipped reply marked down is flushed.
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(flushes(&nodes), ["0", "0", "0"], "cmd_flush per node");
        assert_two_copies(&nodes, &get_many_checked(&mut raw(proxy), &want));
        // The binary key itself, through a conditional write and its replica copy.
        assert_eq!(p.line(b"ms eAoNZmx1c2hfYWxs 1 b\r\n5\r\n"), "HD");
        assert_eq!(p.line(b"ma eAoNZmx1c2hfYWxs b\r\n"), "HD");
        assert_eq!(p.line(b"mn\r\n"), "MN");
        assert_eq!(flushes(&nodes), ["0", "0", "0"], "cmd_flush per node");
        let binary: Vec<String> = nodes
            .iter()
            .map(|&a| {
                let mut n = raw(a);
                n.send(b"mg eAoNZmx1c2hfYWxs b v\r\nmn\r\n");
                let r = n.until(b"MN\r\n");
                let r = String::from_utf8_lossy(&r).into_owned();
                match r.strip_prefix("VA 1\r\n") {
                    Some(v) => v.trim_end_matches("\r\nMN\r\n").to_string(),
                    None => r,
                }
            })
            .collect();
        let held: Vec<&String> = binary.iter().filter(|v| *v == "6").collect();
        assert_eq!(
            held.len(),
            2,
            "binary key after ma on each node: {binary:?}"
        );
    });
}

/// The proxy still answers every stored key (a sanity check before reading the nodes).
fn get_many_checked(c: &mut Conn, want: &HashMap<String, Vec<u8>>) -> HashMap<String, Vec<u8>> {
    let keys: Vec<String> = want.keys().cloned().collect();
    let got = c.get_many(&keys);
    assert_eq!(&got, want, "through the proxy");
    got
}

/// `lru_crawler metadump` prints binary keys as memcached 1.6 does (URI-encoded raw bytes), so
/// the migrator, which percent-decodes them, gets the same keys from either kind of node.
#[test]
fn metadump_prints_binary_keys_as_memcached_does() {
    let Some(mc) = support::spawn_memcached() else {
        eprintln!("memcached not installed; skipped");
        return;
    };
    let node = support::spawn_node(&[]);
    let keys = |addr: SocketAddr| -> Vec<String> {
        let mut c = raw(addr);
        c.send(b"ms eA0KZmx1c2hfYWxs 1 b\r\n5\r\nms YSBi/w== 1 b\r\n6\r\n");
        c.send(b"set plain~k-._ 0 0 1\r\n7\r\nmn\r\n");
        assert_eq!(c.until(b"MN\r\n"), b"HD\r\nHD\r\nSTORED\r\nMN\r\n");
        c.send(b"lru_crawler metadump all\r\n");
        let dump = String::from_utf8_lossy(&c.until(b"END\r\n")).into_owned();
        let mut k: Vec<String> = dump
            .lines()
            .filter_map(|l| l.strip_prefix("key="))
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect();
        k.sort();
        k
    };
    let want = ["a%20b%FF", "plain~k-._", "x%0D%0Aflush_all"];
    assert_eq!(keys(mc.addr), want, "memcached");
    assert_eq!(keys(node.addr), want, "ringcache node");
}

/// The proxy re-renders meta flags from the parsed request; the node's reply must still echo
/// the client's return flags in the client's order, as a node asked directly does.
#[test]
fn rerendered_meta_flags_keep_the_reply_order() {
    run(async {
        let c = Cluster::start(1000).await;
        // A node outside the cluster, asked the same script directly.
        let alone = real_node().await;
        let (proxy, node) = (c.proxy.addr, alone.addr);
        blocking(move || {
            let mask = |r: String| -> String {
                r.split_whitespace()
                    .map(|t| match t.strip_prefix('c') {
                        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => "c#",
                        _ => t,
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            for req in [
                "ms ordk 2 Oab k c T0 F3\r\nhi\r\n",
                "mg ordk s Oz9 v f k t c\r\n",
                "md ordk k Oq qb\r\nmn\r\n",
                "mg ordk k Oe\r\n",
            ] {
                let end: &[u8] = if req.ends_with("mn\r\n") {
                    b"MN\r\n"
                } else {
                    b"\r\n"
                };
                let ask = |addr: SocketAddr| {
                    let mut c = raw(addr);
                    c.send(req.as_bytes());
                    let mut r = c.until(end);
                    if r.starts_with(b"VA ") {
                        c.send(b"mn\r\n");
                        r.extend(c.until(b"MN\r\n"));
                    }
                    mask(String::from_utf8_lossy(&r).into_owned())
                };
                let via_proxy = ask(proxy);
                let direct = ask(node);
                assert_eq!(via_proxy, direct, "{req:?}");
            }
        })
        .await;
    });
}

/// The migrator lists keys with `lru_crawler metadump` (URI-encoded) and copies and cleans up
/// the moved ones: a binary key decoding to `x\r\nflush_all...` must travel base64 with `b`, or
/// the copy's `mg` and the cleanup's `md` flush the nodes.
#[test]
fn migrator_moves_binary_keys_without_writing_them_raw() {
    run(async {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(real_node().await);
        }
        let spec = |n: &NodeHandle| NodeSpec::new(n.addr.to_string());
        let client = Client::builder()
            .node_specs(nodes[..2].iter().map(spec).collect())
            .replicas(1)
            .request_timeout(Duration::from_millis(1000))
            .build()
            .await
            .expect("client");
        let binary: Vec<bytes::Bytes> = (0..30)
            .map(|i| bytes::Bytes::from(format!("x\r\nflush_all{i}")))
            .collect();
        for k in &binary {
            let f = MetaFlags {
                base64: true,
                ..MetaFlags::default()
            };
            let ms = MetaRequest::new(MetaCmd::Set, k.clone(), f, Some("bin".into()));
            client.router().meta(Box::new(ms)).await.expect("ms");
        }
        let plain: Vec<String> = (0..30).map(|i| format!("plain{i}")).collect();
        for k in &plain {
            client.set(k.as_bytes(), "p", 0, 0).await.unwrap();
        }
        client
            .set_nodes(nodes.iter().map(spec).collect())
            .await
            .unwrap();
        assert!(
            client.wait_settled(Duration::from_secs(30)).await,
            "settled"
        );
        // The cleanup pass runs after the transition (after twice the request timeout).
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let topo = client.topology();
        let owner_of = |k: &[u8]| {
            let o = topo.owners(k);
            let a = &topo.nodes[o.as_slice()[0]].spec.addr;
            addrs.iter().position(|x| &x.to_string() == a).unwrap()
        };
        let status = client.rebalance_status();
        let (binary, plain, want_owner): (Vec<_>, Vec<_>, Vec<_>) = (
            binary.clone(),
            plain.clone(),
            binary.iter().map(|k| owner_of(k)).collect(),
        );
        let plain_owner: Vec<usize> = plain.iter().map(|k| owner_of(k.as_bytes())).collect();
        blocking(move || {
            assert_eq!(flushes(&addrs), ["0", "0", "0"], "cmd_flush per node");
            for (k, &owner) in binary.iter().zip(&want_owner) {
                let mut b64 = bytes::BytesMut::new();
                ringcache_client::protocol::meta::put_key(&mut b64, k, true);
                let b64 = String::from_utf8_lossy(&b64).into_owned();
                let held: Vec<usize> = (0..addrs.len())
                    .filter(|&i| {
                        let mut c = raw(addrs[i]);
                        c.line(format!("mg {b64} b\r\n").as_bytes()) == "HD"
                    })
                    .collect();
                assert_eq!(held, [owner], "{k:?} ({status:?})");
            }
            for (k, &owner) in plain.iter().zip(&plain_owner) {
                let held: Vec<usize> = (0..addrs.len())
                    .filter(|&i| raw(addrs[i]).line(format!("mg {k}\r\n").as_bytes()) == "HD")
                    .collect();
                assert_eq!(held, [owner], "{k}");
            }
        })
        .await;
    });
}

// ----- defect 2: long TTLs -----------------------------------------------------------------

/// `set longttl 0 <now + 60 days> 1`, `incr longttl 1`, `append`: both replicas keep the key,
/// with the original expiry (memcached reads a relative `T` over 30 days as a Unix time).
#[test]
fn long_ttl_survives_replica_copies() {
    with_cluster(1000, |proxy, nodes| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let sixty_days = 60 * 86_400;
        let mut p = raw(proxy);
        let set = format!("set longttl 0 {} 1\r\n1\r\n", now + sixty_days);
        assert_eq!(p.line(set.as_bytes()), "STORED");
        assert_eq!(p.line(b"incr longttl 1\r\n"), "2");
        assert_eq!(p.line(b"append longttl 0 0 1\r\n3\r\n"), "STORED");
        let mut held = Vec::new();
        for (i, &a) in nodes.iter().enumerate() {
            let r = raw(a).line(b"mg longttl t\r\n");
            if r == "EN" {
                continue;
            }
            let t: u64 = r
                .strip_prefix("HD t")
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("node {i}: {r}"));
            assert!(
                t + 30 >= sixty_days && t <= sixty_days,
                "node {i}: remaining TTL {t}, expected about {sixty_days}"
            );
            let v = raw(a).get_many(&["longttl".into()]);
            assert_eq!(
                v.get("longttl").map(|v| &v[..]),
                Some(&b"23"[..]),
                "node {i}"
            );
            held.push(i);
        }
        assert_eq!(held.len(), 2, "nodes holding longttl: {held:?}");
    });
}

// ----- defect 3: `md k qb` -----------------------------------------------------------------

/// `md k qb` (q and b in one token, read as quiet by memcached and the node) must be sent
/// without its quiet flag: nothing waits for a reply that never comes, no replica is marked
/// down and flushed, and the backend connections stay in step.
#[test]
fn quiet_flag_run_together_does_not_break_the_cluster() {
    with_cluster(300, |proxy, nodes| {
        let want = store_keys(proxy, "qb", 30);
        let mut p = raw(proxy);
        assert_eq!(p.line(b"set k 0 0 3\r\nabc\r\n"), "STORED");
        // Quiet delete of a present key: nothing, then the no-op's MN.
        p.send(b"md k qb\r\nmn\r\n");
        assert_eq!(p.until(b"\r\n"), b"MN\r\n");
        for (i, &a) in nodes.iter().enumerate() {
            assert_eq!(raw(a).line(b"mg k\r\n"), "EN", "node {i} still holds k");
        }
        assert_eq!(flushes(&nodes), ["0", "0", "0"], "cmd_flush per node");
        assert_two_copies(&nodes, &want);
        // Well past the request timeout, ordinary pairs still work on the same backends.
        std::thread::sleep(Duration::from_millis(700));
        let mut p = raw(proxy);
        for i in 0..20 {
            let v = format!("after-{i}");
            let set = format!("set after{i} 0 0 {}\r\n{v}\r\n", v.len());
            assert_eq!(p.line(set.as_bytes()), "STORED", "set after{i}");
            let got = p.get_many(&[format!("after{i}")]);
            assert_eq!(got.get(&format!("after{i}")), Some(&v.into_bytes()));
        }
        assert_eq!(flushes(&nodes), ["0", "0", "0"], "cmd_flush per node");
    });
}

/// A write the proxy refuses before sending it (its opaque holds a `\r`, which could end the
/// line at a node) says nothing about the replicas: none may be marked down for it. Session-fuzz
/// seed 2 found both owners of a key marked down by such a write, and every key they held read
/// as a miss until the repair ran. An opaque with other control bytes (`\x7f`) cannot end a line
/// and is echoed as memcached echoes it.
#[test]
fn refused_write_does_not_mark_replicas_down() {
    with_cluster(300, |proxy, nodes| {
        let want = store_keys(proxy, "rw", 30);
        let keys: Vec<String> = want.keys().cloned().collect();
        let mut p = raw(proxy);
        assert_eq!(p.line(b"ms k 3 O4\x7f2\r\nabc\r\n"), "HD O4\x7f2");
        let refused = p.line(b"ms k 3 O4\r2\r\nabc\r\n");
        assert!(refused.starts_with("SERVER_ERROR "), "{refused:?}");
        // At once, before any repair could run: every key still reads.
        let got = p.get_many(&keys);
        assert_eq!(
            got.len(),
            want.len(),
            "keys readable right after the refusal"
        );
        p.send(b"mg k v\r\n");
        assert_eq!(p.until(b"abc\r\n"), b"VA 3\r\nabc\r\n");
        assert_eq!(flushes(&nodes), ["0", "0", "0"], "cmd_flush per node");
    });
}

// ----- fake backends -----------------------------------------------------------------------

/// How a fake backend misbehaves once `version` has been answered.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// `STAT a b` lines forever for any request.
    EndlessStats,
    /// `VALUE <k> 0 1073741824` and then bytes forever.
    HugeValue,
    /// Bytes forever without a newline.
    EndlessLine,
    /// Never answers anything but `version`; keeps reading.
    Silent,
    /// Never reads again after `version`.
    Deaf,
    /// A tiny honest server that ignores the first `get` it is sent (as a node does a quiet
    /// request), then answers each `get k` with its own value.
    DropsFirstReply,
    /// Answers each `get k` with a value under another key, `VALUE not-k …`.
    WrongKey,
}

/// Bytes a fake backend streams at most (so the old code's runaway buffers stay survivable).
const STREAM_CAP: u64 = 256 << 20;

struct Fake {
    addr: SocketAddr,
    /// Bytes of hostile reply it managed to write.
    streamed: Arc<AtomicU64>,
    /// The client closed a socket in the middle of a hostile stream.
    cut: Arc<AtomicBool>,
}

async fn fake_backend(mode: Hostile) -> Fake {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let streamed = Arc::new(AtomicU64::new(0));
    let counter = streamed.clone();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_seen = cut.clone();
    tokio::spawn(async move {
        let first_dropped = Arc::new(AtomicBool::new(false));
        while let Ok((s, _)) = l.accept().await {
            let counter = counter.clone();
            let first_dropped = first_dropped.clone();
            let cut_seen = cut_seen.clone();
            tokio::spawn(async move {
                let (rd, mut wr) = s.into_split();
                let mut rd = BufReader::new(rd);
                let mut line = Vec::new();
                // Bounded in count: a test never sends more than this many lines per socket.
                for _ in 0..100_000 {
                    line.clear();
                    let read = rd.read_until(b'\n', &mut line);
                    match tokio::time::timeout(Duration::from_secs(20), read).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                    let text = String::from_utf8_lossy(&line).trim_end().to_string();
                    // Every new connection asks `stats` before it carries requests (the
                    // identity check, docs/cluster.md): answered with an empty listing (no
                    // identity to compare), so each fake is hostile only to the requests that
                    // follow. The endless `stats` stream is hostile to the check itself.
                    if text == "stats" && !matches!(mode, Hostile::EndlessStats) {
                        if wr.write_all(b"END\r\n").await.is_err() {
                            return;
                        }
                        continue;
                    }
                    if text == "version" {
                        if wr.write_all(b"VERSION 1.6.38\r\n").await.is_err() {
                            return;
                        }
                        if let Hostile::Deaf = mode {
                            tokio::time::sleep(Duration::from_secs(20)).await;
                            return;
                        }
                        continue;
                    }
                    match mode {
                        Hostile::Silent => continue,
                        Hostile::Deaf => return,
                        Hostile::DropsFirstReply | Hostile::WrongKey => {
                            let Some(key) = text
                                .strip_prefix("gets ")
                                .or_else(|| text.strip_prefix("get "))
                            else {
                                let _ = wr.write_all(b"ERROR\r\n").await;
                                continue;
                            };
                            let dropping = matches!(mode, Hostile::DropsFirstReply);
                            if dropping && !first_dropped.swap(true, Ordering::SeqCst) {
                                continue;
                            }
                            let mut r = String::new();
                            // Every key of a multi-get answered under another key.
                            let keys: Vec<&str> = if dropping {
                                vec![key]
                            } else {
                                key.split(' ').collect()
                            };
                            for key in keys {
                                let v = format!("val-{key}");
                                let key = if dropping {
                                    key.to_string()
                                } else {
                                    format!("not-{key}")
                                };
                                r.push_str(&format!("VALUE {key} 0 {}\r\n{v}\r\n", v.len()));
                            }
                            r.push_str("END\r\n");
                            if wr.write_all(r.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        Hostile::EndlessStats | Hostile::HugeValue | Hostile::EndlessLine => {
                            let (head, chunk): (Vec<u8>, Vec<u8>) = match mode {
                                Hostile::EndlessStats => (Vec::new(), b"STAT a b\r\n".repeat(6554)),
                                Hostile::HugeValue => {
                                    let key = text.split(' ').nth(1).unwrap_or("k").to_string();
                                    (
                                        format!("VALUE {key} 0 1073741824\r\n").into_bytes(),
                                        vec![b'v'; 64 * 1024],
                                    )
                                }
                                _ => (Vec::new(), vec![b'x'; 64 * 1024]),
                            };
                            if wr.write_all(&head).await.is_err() {
                                return;
                            }
                            while counter.load(Ordering::Relaxed) < STREAM_CAP {
                                if wr.write_all(&chunk).await.is_err() {
                                    cut_seen.store(true, Ordering::Relaxed);
                                    return;
                                }
                                counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                            }
                            // Capped: keep the socket open, say nothing more.
                            tokio::time::sleep(Duration::from_secs(20)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    Fake {
        addr,
        streamed,
        cut,
    }
}

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

const CLIENT_TIMEOUT: Duration = Duration::from_millis(500);

/// A client of one real node and one fake one, replicas 1, one connection per node.
async fn mixed_client(real: SocketAddr, fake: SocketAddr, queue_depth: usize) -> Client {
    Client::builder()
        .node_specs(
            [real, fake]
                .iter()
                .map(|a| NodeSpec::new(a.to_string()))
                .collect(),
        )
        .options(ClientOptions {
            replicas: 1,
            request_timeout: CLIENT_TIMEOUT,
            connect_timeout: Duration::from_millis(500),
            connections_per_node: 1,
            queue_depth,
            failure_limit: 1000,
            ..ClientOptions::default()
        })
        .build()
        .await
        .expect("client")
}

/// A real node, a fake backend that behaves as `mode`, and a [`mixed_client`] of the two.
async fn real_and_fake(mode: Hostile, queue_depth: usize) -> (NodeHandle, Fake, Client) {
    let real = real_node().await;
    let fake = fake_backend(mode).await;
    let client = mixed_client(real.addr, fake.addr, queue_depth).await;
    (real, fake, client)
}

/// A key `client` places on the real node (`good…`) and one it places on the fake (`bad…`).
fn good_and_bad(client: &Client, real: &NodeHandle, fake: &Fake) -> (String, String) {
    (
        key_on(client, real.addr, "good"),
        key_on(client, fake.addr, "bad"),
    )
}

/// A key `client` places on the node at `addr`.
fn key_on(client: &Client, addr: SocketAddr, prefix: &str) -> String {
    let t = client.topology();
    (0..10_000)
        .map(|i| format!("{prefix}{i}"))
        .find(|k| {
            let o = t.owners(k.as_bytes());
            t.nodes[o.as_slice()[0]].spec.addr == addr.to_string()
        })
        .expect("a key on that node")
}

async fn real_node() -> NodeHandle {
    let cfg = NodeConfig {
        server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
        threads: 1,
        ..NodeConfig::default()
    };
    node::start(cfg, Arc::new(SystemClock)).await.unwrap()
}

/// One hostile backend: its key fails within the deadline, the real node's key keeps working,
/// the fake's stream is cut off well before the cap, and RSS stays bounded.
async fn hostile_case(mode: Hostile) {
    let (real, fake, client) = real_and_fake(mode, 1024).await;
    let (good, bad) = good_and_bad(&client, &real, &fake);
    client
        .set(good.as_bytes(), "ok", 0, 0)
        .await
        .unwrap_or_else(|e| panic!("{mode:?}: set on the real node: {e}"));
    let before = rss_kib();
    for round in 0..3 {
        let started = Instant::now();
        let r = match mode {
            Hostile::EndlessStats => {
                let all = client.stats().await;
                let mine = all
                    .into_iter()
                    .find(|(n, _)| *n == fake.addr.to_string())
                    .expect("fake node's stats");
                mine.1.map(|_| ())
            }
            _ => client.get(bad.as_bytes()).await.map(|_| ()),
        };
        let took = started.elapsed();
        assert!(r.is_err(), "{mode:?} round {round}: {r:?}");
        assert!(
            took < CLIENT_TIMEOUT + Duration::from_millis(500),
            "{mode:?} round {round}: error after {took:?}"
        );
        let item = client
            .get(good.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{mode:?} round {round}: get on the real node: {e}"))
            .unwrap_or_else(|| panic!("{mode:?} round {round}: the real node's key is missing"));
        assert_eq!(&item.value[..], b"ok", "{mode:?} round {round}");
    }
    // Give a runaway reader time to show itself, then look at the memory.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let grown = rss_kib().saturating_sub(before);
    let streamed = fake.streamed.load(Ordering::Relaxed);
    assert!(
        grown < 48 * 1024,
        "{mode:?}: RSS grew by {grown} KiB (fake streamed {streamed} bytes)"
    );
    assert!(
        streamed < STREAM_CAP,
        "{mode:?}: the client kept reading the hostile stream ({streamed} bytes)"
    );
    if !matches!(mode, Hostile::Silent) {
        assert!(
            fake.cut.load(Ordering::Relaxed),
            "{mode:?}: the client never reset the connection of a hostile stream"
        );
    }
    eprintln!("{mode:?}: RSS +{grown} KiB, fake streamed {streamed} bytes before the reset");
}

/// Each hostile backend in turn, every failure naming it: an endless `stats` reply (here
/// already to the identity check every new connection makes, so the connection never opens)
/// and a gigabyte value announcement are cut off, as is an endless reply line; a silent
/// backend fails within the deadline.
#[test]
fn hostile_backends_are_cut_off_or_fail_within_the_deadline() {
    for mode in [
        Hostile::EndlessStats,
        Hostile::HugeValue,
        Hostile::EndlessLine,
        Hostile::Silent,
    ] {
        run(hostile_case(mode));
    }
}

/// A backend that stops reading fills the socket and then the request queue: callers must not
/// wait for queue room without a deadline.
#[test]
fn full_queue_to_a_deaf_backend_fails_within_the_deadline() {
    run(async {
        let (real, fake, client) = real_and_fake(Hostile::Deaf, 2).await;
        let (good, bad) = good_and_bad(&client, &real, &fake);
        let value = bytes::Bytes::from(vec![b'd'; 256 * 1024]);
        let started = Instant::now();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (c, k, v) = (client.clone(), bad.clone(), value.clone());
                tokio::spawn(async move { c.set(k.as_bytes(), v, 0, 0).await })
            })
            .collect();
        let all = tokio::time::timeout(
            Duration::from_secs(10),
            futures_util::future::join_all(tasks),
        )
        .await
        .expect("every set to a deaf backend ends");
        let took = started.elapsed();
        for r in all {
            assert!(r.unwrap().is_err());
        }
        assert!(
            took < CLIENT_TIMEOUT * 2 + Duration::from_millis(500),
            "sets to a deaf backend took {took:?}"
        );
        client.set(good.as_bytes(), "ok", 0, 0).await.unwrap();
    });
}

/// A reply that never comes (a node that took the request as quiet) must not shift every later
/// reply onto the wrong request: after the timeout the connection is reset, and each key then
/// reads its own value.
#[test]
fn connection_in_doubt_is_reset_not_reused() {
    run(async {
        let (_real, fake, client) = real_and_fake(Hostile::DropsFirstReply, 1024).await;
        let a = key_on(&client, fake.addr, "a");
        let b = key_on(&client, fake.addr, "b");
        assert!(client.get(a.as_bytes()).await.is_err(), "first get dropped");
        // The reset connection reopens in the background; requests made before it is up fail
        // fast (so a router can fail over). Wait for it, bounded, before judging the replies.
        let deadline = Instant::now() + Duration::from_secs(10);
        while client.get(b.as_bytes()).await.is_err() {
            assert!(Instant::now() < deadline, "the connection never came back");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for _ in 0..5 {
            for k in [&b, &a] {
                let got = client.get(k.as_bytes()).await.expect("get after the reset");
                let want = format!("val-{k}");
                assert_eq!(got.map(|i| i.value), Some(bytes::Bytes::from(want)), "{k}");
            }
        }
    });
}

/// A proxy answers a one-key `get` with the list the node's reply was parsed into; a backend
/// that answers under another key must not have that key reach the client, from a one-key
/// get or a multi-get. The item is not the one asked for, so the client reads a miss.
#[test]
fn a_value_under_another_key_never_reaches_the_client() {
    run(async {
        let fake = fake_backend(Hostile::WrongKey).await;
        let cfg = proxy_over(&[fake.addr], 1);
        let proxy = proxy::start(cfg, None).await.unwrap();
        let addr = proxy.addr;
        // `mn`, answered by the proxy itself, marks the end of the replies. The multi-gets
        // are pipelined, so their pieces' replies are matched in the line's own slots.
        let req = b"get a\r\ngets a\r\nget b c\r\nget d e f\r\ngets c g\r\nmn\r\n";
        let got = blocking(move || testkit::exchange(addr, req, b"MN\r\n")).await;
        assert_eq!(
            String::from_utf8_lossy(&got),
            "END\r\n".repeat(5) + "MN\r\n"
        );
        proxy.shutdown().await;
    });
}

/// Replicas 2 over a real node and a backend that never answers, and 8 keys stored on the
/// real node, interleaved: one whose primary is the silent backend, then one whose primary is
/// the real node. The handles keep both backends running.
struct SilentPrimary {
    proxy: ProxyHandle,
    keys: Vec<String>,
    _real: NodeHandle,
    _fake: Fake,
}

async fn silent_primary() -> SilentPrimary {
    let real = real_node().await;
    let fake = fake_backend(Hostile::Silent).await;
    let cfg = ProxyConfig {
        request_timeout_ms: 300,
        // Never marked down: every get whose primary is the fake times out there first.
        failure_limit: 1000,
        ..proxy_over(&[real.addr, fake.addr], 2)
    };
    let proxy = proxy::start(cfg, None).await.unwrap();
    let topo = proxy.proxy.router().topology();
    let primary = |k: &String| {
        let o = topo.owners(k.as_bytes());
        topo.nodes[o.as_slice()[0]].spec.addr.clone()
    };
    let on = |addr: SocketAddr, n: usize| -> Vec<String> {
        (0..10_000)
            .map(|i| format!("k{i}"))
            .filter(|k| primary(k) == addr.to_string())
            .take(n)
            .collect()
    };
    let (keys, on_real) = (on(fake.addr, 4), on(real.addr, 4));
    assert_eq!(keys.len(), 4, "keys whose primary is the silent backend");
    // Interleaved: the answered gets wait behind the timed-out ones.
    let keys: Vec<String> = keys
        .into_iter()
        .zip(on_real)
        .flat_map(|(a, b)| [a, b])
        .collect();
    // Every value lives on the real node, which is each key's first or second owner.
    let mut sets = Vec::new();
    for k in &keys {
        let v = format!("v-{k}");
        sets.extend_from_slice(format!("set {k} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes());
    }
    let stored = blocking({
        let addr = real.addr;
        move || testkit::exchange(addr, &sets, b"STORED\r\n".repeat(8).as_slice())
    })
    .await;
    assert_eq!(stored, b"STORED\r\n".repeat(8));
    SilentPrimary {
        proxy,
        keys,
        _real: real,
        _fake: fake,
    }
}

/// A pipelined one-key get is written to its first owner when it is read, and the proxy keeps
/// only its reply slot (`src/proxy/inflight.rs`). When that owner never answers, the get must
/// still go on to the next replica once the request times out, and every reply must come back
/// in the order the gets were sent.
#[test]
fn a_pipelined_get_whose_owner_never_answers_is_read_from_the_next_replica() {
    run(async {
        let SilentPrimary { proxy, keys, .. } = silent_primary().await;
        let mut req = Vec::new();
        let mut want = String::new();
        for k in &keys {
            req.extend_from_slice(format!("get {k}\r\n").as_bytes());
            let v = format!("v-{k}");
            want.push_str(&format!("VALUE {k} 0 {}\r\n{v}\r\nEND\r\n", v.len()));
        }
        req.extend_from_slice(b"mn\r\n");
        want.push_str("MN\r\n");
        let addr = proxy.addr;
        let got = blocking(move || testkit::exchange(addr, &req, b"MN\r\n")).await;
        assert_eq!(String::from_utf8_lossy(&got), want);
        proxy.shutdown().await;
    });
}

/// Pipelined multi-gets are written to their keys' owners when they are read, one piece per
/// node, and the proxy keeps their reply slots (`Router::start_many`). A piece sent to an owner
/// that never answers must go on to the next replica after the timeout, every reply must list
/// its hits in the order its keys were asked, and the replies must keep the order of the
/// requests, with one-key gets between them.
#[test]
fn pipelined_multi_gets_whose_owner_never_answers_are_read_from_the_next_replica() {
    run(async {
        let SilentPrimary { proxy, keys, .. } = silent_primary().await;
        let value = |k: &str| {
            let v = format!("v-{k}");
            format!("VALUE {k} 0 {}\r\n{v}\r\n", v.len())
        };
        // Silent primary first, real primary first, a one-key get between them, and a key
        // nobody holds, which must be a miss (not an error) inside a multi-get.
        let batches: [&[&str]; 4] = [
            &[&keys[0], &keys[1], &keys[2]],
            &[&keys[3]],
            &[&keys[5], "absent", &keys[4], &keys[6]],
            &[&keys[7], &keys[1]],
        ];
        let mut req = Vec::new();
        let mut want = String::new();
        for b in batches {
            req.extend_from_slice(format!("get {}\r\n", b.join(" ")).as_bytes());
            for k in b.iter().filter(|k| **k != "absent") {
                want.push_str(&value(k));
            }
            want.push_str("END\r\n");
        }
        req.extend_from_slice(b"mn\r\n");
        want.push_str("MN\r\n");
        let addr = proxy.addr;
        let got = blocking(move || testkit::exchange(addr, &req, b"MN\r\n")).await;
        assert_eq!(String::from_utf8_lossy(&got), want);
        // Alone on its connection, a multi-get runs in the connection's task (route.rs),
        // with the same pieces and the same walk on to the replica.
        let lone = format!("get {} {} {}\r\n", keys[2], keys[3], keys[4]);
        let want = [&keys[2], &keys[3], &keys[4]].map(|k| value(k)).concat() + "END\r\n";
        let got = blocking(move || testkit::exchange(addr, lone.as_bytes(), b"END\r\n")).await;
        assert_eq!(String::from_utf8_lossy(&got), want);
        proxy.shutdown().await;
    });
}
