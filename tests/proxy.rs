//! The proxy in-process in front of real nodes on loopback: replies byte for byte like a node,
//! ordered pipelines with quiet meta commands, and hot reload of membership from its config file.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringcache::node::NodeHandle;
use ringcache::proxy::{self, ProxyConfig, ProxyHandle};
use ringcache_client::cluster_config::RingSettings;
use ringcache_client::ring::NodeSpec;
use testkit::exchange;

async fn nodes(n: usize) -> Vec<NodeHandle> {
    support::local_nodes(n).await
}

fn specs(nodes: &[NodeHandle]) -> Vec<NodeSpec> {
    support::specs(&nodes.iter().map(|n| n.addr).collect::<Vec<_>>())
}

async fn proxy_for(nodes: &[NodeHandle], replicas: usize) -> ProxyHandle {
    let cfg = ProxyConfig {
        server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
        ring: RingSettings {
            replicas,
            ..RingSettings::default()
        },
        nodes: specs(nodes),
        ..ProxyConfig::default()
    };
    proxy::start(cfg, None).await.unwrap()
}

/// Replaces every run of digits after `cas`-bearing positions with `#`, so CAS values, which
/// differ between a node and a cluster, compare equal.
fn mask_cas(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    text.lines()
        .map(|l| {
            let mut parts: Vec<String> = l.split(' ').map(str::to_string).collect();
            if parts.first().map(String::as_str) == Some("VALUE") && parts.len() == 5 {
                parts[4] = "#".into();
            }
            for p in parts.iter_mut() {
                if p.starts_with('c') && p.len() > 1 && p[1..].bytes().all(|b| b.is_ascii_digit()) {
                    *p = "c#".into();
                }
            }
            parts.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One script of requests (pipelined, one write) whose replies must be identical from a node
/// and from the proxy (CAS values masked).
const SCRIPT: &[u8] = b"set a 5 0 3\r\none\r\n\
get a\r\n\
gets a\r\n\
add a 0 0 1\r\nx\r\n\
add b 0 0 1\r\nx\r\n\
replace c 0 0 1\r\nx\r\n\
append a 0 0 2\r\n++\r\n\
prepend a 0 0 2\r\n--\r\n\
get a b c\r\n\
cas a 0 0 1 1\r\nz\r\n\
cas nokey 0 0 1 1\r\nz\r\n\
set n 0 0 2\r\n10\r\n\
incr n 5\r\n\
decr n 100\r\n\
incr a 1\r\n\
incr nokey 1\r\n\
touch a 100\r\n\
touch nokey 100\r\n\
gat 100 a nokey b\r\n\
delete b\r\n\
delete b\r\n\
set q 0 0 1 noreply\r\nq\r\n\
get q\r\n\
bogus\r\n\
set k 0 0 abc\r\n\
get\r\n\
set big 0 0 2000000\r\n\
mg a v f t\r\n\
mg nokey v\r\n\
mg nokey v q\r\n\
ms m 2 T0 F3\r\nhi\r\n\
ms m 2 q\r\nho\r\n\
mg m v f k Oop1\r\n\
md m q\r\n\
md m\r\n\
ma n\r\n\
ma n MD D4 v\r\n\
mn\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_answers_like_a_node() {
    let direct = nodes(1).await;
    let backends = nodes(3).await;
    let proxy = proxy_for(&backends, 2).await;
    let (node_addr, proxy_addr) = (direct[0].addr, proxy.addr);
    let mut script = SCRIPT.to_vec();
    // The too-large value's data block, swallowed by both.
    let pos = script
        .windows(20)
        .position(|w| w == b"set big 0 0 2000000\r")
        .unwrap()
        + 21;
    let mut body = vec![b'x'; 2_000_000];
    body.extend_from_slice(b"\r\n");
    script.splice(pos..pos, body);
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            exchange(node_addr, &script, b"MN\r\n"),
            exchange(proxy_addr, &script, b"MN\r\n"),
        )
    })
    .await
    .unwrap();
    assert!(
        a.ends_with(b"MN\r\n"),
        "node reply incomplete: {}",
        String::from_utf8_lossy(&a)
    );
    assert_eq!(mask_cas(&a), mask_cas(&b));
    // And the node's reply is what memcached says (spot checks of the shape).
    let text = String::from_utf8_lossy(&a);
    for want in [
        "VALUE a 5 3\r\none\r\nEND\r\n",
        "NOT_STORED\r\nSTORED\r\nNOT_STORED\r\nSTORED\r\nSTORED\r\n",
        "15\r\n0\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\nNOT_FOUND\r\n",
        "TOUCHED\r\nNOT_FOUND\r\n",
        "DELETED\r\nNOT_FOUND\r\n",
        "ERROR\r\nCLIENT_ERROR bad command line format\r\nERROR\r\nSERVER_ERROR object too large for cache\r\n",
        "EN\r\nHD\r\n",
        "VA 2 f0 km Oop1\r\nho\r\n",
        "NF\r\nHD\r\nVA 1\r\n0\r\nMN\r\n",
    ] {
        assert!(text.contains(want), "node reply lacks {want:?}:\n{text}");
    }
    proxy.shutdown().await;
    for n in backends.into_iter().chain(direct) {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_nodes_without_dropping_clients() {
    let backends = nodes(3).await;
    let dir = std::env::temp_dir().join(format!("ringcache-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("proxy.toml");
    let write_cfg = |nodes: &[NodeSpec], extra: &str| {
        let mut t = String::from("listen = \"127.0.0.1:0\"\n[ring]\nreplicas = 1\n");
        for n in nodes {
            t.push_str(&format!(
                "[[nodes]]\naddr = \"{}\"\nname = \"{}\"\n",
                n.addr,
                n.name.as_deref().unwrap()
            ));
        }
        t.push_str(extra);
        std::fs::write(&path, t).unwrap();
    };
    let all = specs(&backends);
    write_cfg(&all[..2], "");
    let cfg = ProxyConfig::load(&path).unwrap();
    let proxy = proxy::start(cfg, Some(path.clone())).await.unwrap();
    let addr = proxy.addr;
    let p = proxy.proxy.clone();
    let wait_nodes = |n: usize| {
        let p = p.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            while p.router().topology().nodes.len() != n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            p.router().topology().nodes.len()
        }
    };
    let mut conn = tokio::task::spawn_blocking(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    })
    .await
    .unwrap();
    let roundtrip = |conn: &mut TcpStream, req: &[u8]| -> String {
        conn.write_all(req).unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(roundtrip(&mut conn, b"set k1 0 0 1\r\na\r\n"), "STORED\r\n");
    // Add the third node (and change mtime-visible size).
    write_cfg(&all, "");
    assert_eq!(wait_nodes(3).await, 3, "reload did not add the node");
    assert_eq!(roundtrip(&mut conn, b"set k2 0 0 1\r\nb\r\n"), "STORED\r\n");
    // A broken file is refused; the running membership stays.
    std::fs::write(&path, "this is = not [valid toml").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(p.router().topology().nodes.len(), 3);
    assert_eq!(
        roundtrip(&mut conn, b"get k2\r\n"),
        "VALUE k2 0 1\r\nb\r\nEND\r\n"
    );
    // Remove a node: still serving on the same connection.
    write_cfg(&all[1..], "");
    assert_eq!(wait_nodes(2).await, 2, "reload did not remove the node");
    assert_eq!(roundtrip(&mut conn, b"set k3 0 0 1\r\nc\r\n"), "STORED\r\n");
    assert_eq!(
        roundtrip(&mut conn, b"get k3\r\n"),
        "VALUE k3 0 1\r\nc\r\nEND\r\n"
    );
    assert!(p.reloads.get() >= 2);
    proxy.shutdown().await;
    for n in backends {
        n.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A multi-get that names a key twice, pipelined behind other requests, is answered (once per
/// name, as memcached does) instead of waiting on itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_key_in_a_pipelined_multiget_is_answered() {
    let nodes = nodes(3).await;
    let proxy = proxy_for(&nodes, 2).await;
    let addr = proxy.addr;
    let reply = tokio::task::spawn_blocking(move || {
        exchange(
            addr,
            b"set a 0 0 1\r\n1\r\nget a a\r\nget a b a\r\nget a\r\n",
            b"END\r\nVALUE a 0 1\r\n1\r\nEND\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        "STORED\r\nVALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nEND\r\n\
         VALUE a 0 1\r\n1\r\nVALUE a 0 1\r\n1\r\nEND\r\nVALUE a 0 1\r\n1\r\nEND\r\n"
    );
    proxy.shutdown().await;
}

/// With every replica of a key gone, a one-key `get` is an error (a miss would claim the key is
/// absent); in a multi-get the unreadable keys are misses so the readable ones still arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_no_readable_replica_is_an_error_for_one_key_a_miss_in_a_multiget() {
    let nodes = nodes(2).await;
    let proxy = proxy_for(&nodes, 2).await;
    let addr = proxy.addr;
    let stored =
        tokio::task::spawn_blocking(move || exchange(addr, b"set k 0 0 1\r\nv\r\n", b"\r\n"))
            .await
            .unwrap();
    assert_eq!(stored, b"STORED\r\n");
    for n in nodes {
        n.shutdown().await;
    }
    let (one, many) = tokio::task::spawn_blocking(move || {
        (
            exchange(addr, b"get k\r\n", b"\r\n"),
            exchange(addr, b"get k j\r\n", b"END\r\n"),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&one),
        "SERVER_ERROR backend unavailable\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&many), "END\r\n");
    proxy.shutdown().await;
}

/// The proxy's own `stats` count every key of a `get` or `gat` once, hit or miss, on the
/// one-key path (which forwards the request as it came) and the multi-get path alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_gat_are_counted_in_stats_on_both_paths() {
    let nodes = nodes(2).await;
    let proxy = proxy_for(&nodes, 1).await;
    let addr = proxy.addr;
    let stats = tokio::task::spawn_blocking(move || {
        exchange(
            addr,
            b"set a 0 0 1\r\n1\r\nget a\r\nget b\r\nget a b c\r\ngat 0 a\r\ngat 0 b\r\n\
              gats 0 a b\r\nset z 0 0 1\r\nz\r\n",
            b"END\r\nSTORED\r\n",
        );
        exchange(addr, b"stats\r\n", b"END\r\n")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&stats).into_owned();
    let stat = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    // get: a, b, a b c -> 5 keys, 2 hits; gat/gats: a, b, a b -> 4 keys, 2 hits; misses of both.
    assert_eq!(stat("cmd_get"), "5");
    assert_eq!(stat("get_hits"), "2");
    assert_eq!(stat("cmd_touch"), "4");
    assert_eq!(stat("touch_hits"), "2");
    assert_eq!(stat("get_misses"), "5");
    proxy.shutdown().await;
}

/// A multi-get too big for one round trip is sent to the nodes in pieces; a piece that
/// happens to hold one key is still part of a multi-get, so its unreadable key is a miss like
/// any other, never the one-key `get`'s `SERVER_ERROR` spliced into the middle of the reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_key_piece_of_a_split_multiget_misses_an_unreadable_key() {
    let mut nodes = nodes(2).await;
    let cfg = ProxyConfig {
        server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
        ring: RingSettings {
            replicas: 1,
            ..RingSettings::default()
        },
        nodes: specs(&nodes),
        // One key per piece: two pieces of 1 KiB items fill the 2 KiB cap.
        max_item_size: 1024,
        max_pending_bytes_per_connection: 2048,
        ..ProxyConfig::default()
    };
    let ring = cfg.ring.build(&cfg.nodes).unwrap();
    let proxy = proxy::start(cfg, None).await.unwrap();
    let addr = proxy.addr;
    let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
    let sets: String = keys
        .iter()
        .map(|k| format!("set {k} 0 0 1\r\nv\r\n"))
        .collect();
    let all_stored = "STORED\r\n".repeat(keys.len());
    let stored =
        tokio::task::spawn_blocking(move || exchange(addr, sets.as_bytes(), all_stored.as_bytes()))
            .await
            .unwrap();
    assert_eq!(stored, "STORED\r\n".repeat(keys.len()).as_bytes());
    // Node 0 goes: its keys have no other replica (replicas = 1).
    nodes.remove(0).shutdown().await;
    let mut want = String::new();
    for k in &keys {
        if ring.replicas(k.as_bytes(), 1) == [1] {
            want.push_str(&format!("VALUE {k} 0 1\r\nv\r\n"));
        }
    }
    want.push_str("END\r\n");
    assert!(
        want.len() > "END\r\n".len() && want.matches("VALUE").count() < keys.len(),
        "the keys must be spread over both nodes: {want}"
    );
    // A write after the get marks the end of its reply, whatever the reply is.
    want.push_str("STORED\r\n");
    let get = format!("get {}\r\nset z 0 0 1\r\nz\r\n", keys.join(" "));
    let got = tokio::task::spawn_blocking(move || exchange(addr, get.as_bytes(), b"STORED\r\n"))
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
    proxy.shutdown().await;
}
