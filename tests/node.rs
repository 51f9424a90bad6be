//! The node in-process on 127.0.0.1:0 with a manual clock: expiry and flush without sleeping,
//! pipelining and split input, limits, concurrency, metrics, and the Rust `memcache` crate as a
//! third-party client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use ringcache::config::NodeConfig;
use ringcache::node::clock::{Clock, ManualClock};
use ringcache::node::{self, NodeHandle};
use testkit::{blocking, Conn};

/// A Unix time well past the 30-day boundary, so relative and absolute exptimes differ.
const T0: u64 = 1_700_000_000;

async fn start(cfg: NodeConfig) -> (NodeHandle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = NodeConfig {
        server: ringcache::server::ServerSettings {
            listen: "127.0.0.1:0".into(),
            ..cfg.server
        },
        ..cfg
    };
    let h = node::start(cfg, clock.clone() as Arc<dyn Clock>)
        .await
        .expect("node starts");
    (h, clock)
}

async fn start_default() -> (NodeHandle, Arc<ManualClock>) {
    start(NodeConfig::default()).await
}

/// Runs `body` (blocking code, given the node's address and its clock) against a node started
/// with `cfg`, then shuts the node down.
async fn on_node<T: Send + 'static>(
    cfg: NodeConfig,
    body: impl FnOnce(SocketAddr, Arc<ManualClock>) -> T + Send + 'static,
) -> T {
    let (h, clock) = start(cfg).await;
    let addr = h.addr;
    let out = blocking(move || body(addr, clock)).await;
    h.shutdown().await;
    out
}

/// A raw connection to the node, every read bounded.
fn raw(addr: SocketAddr) -> Conn {
    Conn::open(addr, "node")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_follows_memcached_rules_without_sleeping() {
    on_node(NodeConfig::default(), move |addr, c1| {
        let mut c = raw(addr);
        c.roundtrip(b"set rel 0 10 1\r\na\r\n", b"STORED\r\n");
        c.roundtrip(b"set abs 0 1700000020 1\r\nb\r\n", b"STORED\r\n");
        c.roundtrip(b"set never 0 0 1\r\nc\r\n", b"STORED\r\n");
        c.roundtrip(b"set neg 0 -1 1\r\nd\r\n", b"STORED\r\n");
        c.roundtrip(b"set past 0 1600000000 1\r\ne\r\n", b"STORED\r\n");
        c.roundtrip(b"get neg past\r\n", b"END\r\n");
        c.roundtrip(
            b"get rel abs never\r\n",
            b"VALUE rel 0 1\r\na\r\nVALUE abs 0 1\r\nb\r\nVALUE never 0 1\r\nc\r\nEND\r\n",
        );
        c1.advance(10);
        // Expiry is at the deadline second, as in memcached (exptime <= now is gone).
        c.roundtrip(b"get rel abs\r\n", b"VALUE abs 0 1\r\nb\r\nEND\r\n");
        c1.advance(11);
        c.roundtrip(b"get rel abs never\r\n", b"VALUE never 0 1\r\nc\r\nEND\r\n");
        // touch and gat move the deadline.
        c.roundtrip(b"set t 0 5 1\r\nx\r\n", b"STORED\r\n");
        c.roundtrip(b"touch t 100\r\n", b"TOUCHED\r\n");
        c1.advance(50);
        c.roundtrip(b"gat 10 t\r\n", b"VALUE t 0 1\r\nx\r\nEND\r\n");
        c1.advance(11);
        c.roundtrip(b"get t\r\n", b"END\r\n");
        c.roundtrip(b"touch t 100\r\n", b"NOT_FOUND\r\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_all_with_and_without_delay() {
    on_node(NodeConfig::default(), move |addr, clock| {
        let mut c = raw(addr);
        c.roundtrip(b"set a 0 0 1\r\n1\r\n", b"STORED\r\n");
        c.roundtrip(b"flush_all\r\n", b"OK\r\n");
        c.roundtrip(b"get a\r\n", b"END\r\n");
        c.roundtrip(b"set a 0 0 1\r\n1\r\n", b"STORED\r\n");
        c.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\n1\r\nEND\r\n");
        // Delayed: items that exist at the deadline go; until then they stay.
        c.roundtrip(b"flush_all 10\r\n", b"OK\r\n");
        c.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\n1\r\nEND\r\n");
        clock.advance(11);
        c.roundtrip(b"get a\r\n", b"END\r\n");
        c.roundtrip(b"set b 0 0 1\r\n2\r\n", b"STORED\r\n");
        c.roundtrip(b"get b\r\n", b"VALUE b 0 1\r\n2\r\nEND\r\n");
        c.send_raw(b"flush_all noreply\r\n");
        c.roundtrip(b"get b\r\n", b"END\r\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_split_input_works() {
    on_node(NodeConfig::default(), move |addr, _clock| {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for i in 0..500 {
            stream.extend_from_slice(
                format!("set k{i} {i} 0 {}\r\nv{i}\r\n", format!("v{i}").len()).as_bytes(),
            );
            want.extend_from_slice(b"STORED\r\n");
            stream.extend_from_slice(format!("get k{i}\r\n").as_bytes());
            want.extend_from_slice(
                format!(
                    "VALUE k{i} {i} {}\r\nv{i}\r\nEND\r\n",
                    format!("v{i}").len()
                )
                .as_bytes(),
            );
            stream.extend_from_slice(format!("incr k{i} 1\r\n").as_bytes());
            want.extend_from_slice(
                b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
            );
        }
        let mut c = raw(addr);
        c.roundtrip(&stream, &want);
        // The same requests, one byte per write.
        let mut c = raw(addr);
        let small = b"set split 0 0 5\r\nhello\r\nget split\r\nmn\r\n";
        for b in small.iter() {
            c.send_raw(&[*b]);
        }
        c.expect_exact(b"STORED\r\nVALUE split 0 5\r\nhello\r\nEND\r\nMN\r\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_item_size_line_length_and_connections() {
    let cfg = NodeConfig {
        server: ringcache::server::ServerSettings {
            max_connections: 2,
            ..Default::default()
        },
        max_item_size: 2048,
        ..NodeConfig::default()
    };
    on_node(cfg, move |addr, _clock| {
        let mut c = raw(addr);
        // Too large: refused, data swallowed, connection kept, and the old value removed.
        c.roundtrip(b"set big 0 0 1\r\nx\r\n", b"STORED\r\n");
        let mut req = b"set big 0 0 4000\r\n".to_vec();
        req.extend(std::iter::repeat_n(b'z', 4000));
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, b"SERVER_ERROR object too large for cache\r\n");
        c.roundtrip(b"get big\r\n", b"END\r\n");
        // Just under the limit: 57 header + 3 key + 2 CRLF + value.
        let fits = 2048 - 57 - 3 - 2;
        let mut req = format!("set big 0 0 {fits}\r\n").into_bytes();
        req.extend(std::iter::repeat_n(b'y', fits));
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, b"STORED\r\n");
        // Bad data chunk: memcached takes length + 2 bytes as the block, so the "\r\n" left
        // over is an empty command line (`ERROR`).
        c.roundtrip(
            b"set bad 0 0 2\r\nabcd\r\n",
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        );
        // A third connection is over the limit of two.
        let _second = raw(addr);
        std::thread::sleep(Duration::from_millis(100));
        let mut third = raw(addr);
        assert_eq!(
            third.read_to_close(),
            b"ERROR Too many open connections\r\n"
        );
        // A 2049-byte line without a newline closes the connection.
        c.send_raw(&vec![b'a'; 2049]);
        assert_eq!(c.read_to_close(), b"");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_and_cas_lose_nothing() {
    on_node(NodeConfig::default(), move |addr, _clock| {
        let mut c = raw(addr);
        c.roundtrip(b"set n 0 0 1\r\n0\r\n", b"STORED\r\n");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = raw(addr);
                    let mut batch = Vec::new();
                    for _ in 0..500 {
                        batch.extend_from_slice(b"incr n 1 noreply\r\n");
                    }
                    batch.extend_from_slice(b"mn\r\n");
                    c.roundtrip(&batch, b"MN\r\n");
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        c.roundtrip(b"get n\r\n", b"VALUE n 0 4\r\n4000\r\nEND\r\n");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_evicts_and_counts() {
    let cfg = NodeConfig {
        memory_limit_mb: 4,
        ..NodeConfig::default()
    };
    let (h, _clock) = start(cfg).await;
    let addr = h.addr;
    let stats = blocking(move || {
        let mut c = raw(addr);
        let value = [b'v'; 1000];
        for round in 0..10 {
            let mut batch = Vec::new();
            for i in 0..1000 {
                batch.extend_from_slice(
                    format!("set key:{round}:{i} 0 0 1000 noreply\r\n").as_bytes(),
                );
                batch.extend_from_slice(&value);
                batch.extend_from_slice(b"\r\n");
            }
            batch.extend_from_slice(b"mn\r\n");
            c.roundtrip(&batch, b"MN\r\n");
        }
        c.send_raw(b"stats\r\n");
        String::from_utf8(c.until(b"END\r\n")).unwrap()
    })
    .await;
    let get = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap_or_else(|| panic!("stat {name} missing"))
            .parse()
            .unwrap()
    };
    // Give moka's maintenance a moment to settle its counts.
    let limit = 4 * 1024 * 1024;
    assert_eq!(get("limit_maxbytes"), limit);
    assert!(get("bytes") <= limit, "bytes {} over limit", get("bytes"));
    assert!(get("evictions") > 0, "10 MB into 4 MB must evict");
    assert!(get("curr_items") < 10_000);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcache_crate_as_a_third_party_client() {
    let (h, _clock) = start_default().await;
    let url = format!(
        "memcache://{}?timeout=5&tcp_nodelay=true&protocol=ascii",
        h.addr
    );
    blocking(move || {
        let client = memcache::Client::connect(url.as_str()).expect("memcache connects");
        client.set("greeting", "hello", 0).unwrap();
        let v: Option<String> = client.get("greeting").unwrap();
        assert_eq!(v.as_deref(), Some("hello"));
        assert!(
            client.add("greeting", "again", 0).is_err() || {
                let v: Option<String> = client.get("greeting").unwrap();
                v.as_deref() == Some("hello")
            }
        );
        client.set("counter", 10u64, 0).unwrap();
        assert_eq!(client.increment("counter", 5).unwrap(), 15);
        assert_eq!(client.decrement("counter", 20).unwrap(), 0);
        client.append("greeting", " world").unwrap();
        client.prepend("greeting", "oh, ").unwrap();
        let v: Option<String> = client.get("greeting").unwrap();
        assert_eq!(v.as_deref(), Some("oh, hello world"));
        let got: std::collections::HashMap<String, String> =
            client.gets(&["greeting", "missing"]).unwrap();
        assert_eq!(
            got.get("greeting").map(String::as_str),
            Some("oh, hello world")
        );
        assert!(!got.contains_key("missing"));
        assert!(client.delete("greeting").unwrap());
        assert!(!client.delete("greeting").unwrap());
        client.flush().unwrap();
        let v: Option<u64> = client.get("counter").unwrap();
        assert_eq!(v, None);
    })
    .await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_reports_commands() {
    let cfg = NodeConfig {
        server: ringcache::server::ServerSettings {
            metrics_listen: Some("127.0.0.1:0".into()),
            ..Default::default()
        },
        ..NodeConfig::default()
    };
    let (h, _clock) = start(cfg).await;
    let addr = h.addr;
    let maddr = h.metrics_addr.expect("metrics bound");
    let body = blocking(move || {
        let mut c = raw(addr);
        c.roundtrip(
            b"set m 0 0 1\r\n1\r\nget m\r\nget nope\r\nbogus\r\n",
            b"STORED\r\nVALUE m 0 1\r\n1\r\nEND\r\nEND\r\nERROR\r\n",
        );
        // Counters are published once a second.
        std::thread::sleep(Duration::from_millis(1500));
        let mut s = TcpStream::connect(maddr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    })
    .await;
    assert!(body.starts_with("HTTP/1."), "{body}");
    for needle in [
        r#"ringcache_commands_total{role="node",cmd="get"} 2"#,
        r#"ringcache_commands_total{role="node",cmd="set"} 1"#,
        r#"ringcache_get_results_total{role="node",result="hit"} 1"#,
        r#"ringcache_get_results_total{role="node",result="miss"} 1"#,
        r#"ringcache_protocol_errors_total{role="node",kind="unknown_command"} 1"#,
        "ringcache_items",
        "ringcache_request_duration_seconds_bucket",
    ] {
        assert!(body.contains(needle), "metrics lack {needle}:\n{body}");
    }
    h.shutdown().await;
}

/// Starts `ringcache node --listen 127.0.0.1:0 <args>` as a plain child (the test signals it
/// itself) and returns it with its address.
fn node_child(args: &[&str]) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringcache"))
        .args(["node", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("node starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout piped");
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("banner");
    let addr: SocketAddr = line
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

/// Waits (at most `limit`) for `child` to exit; its status.
fn exit_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// With the drain off (`--drain-timeout 0`, as before drains existed) SIGTERM stops the node
/// at once: connections answered and closed, the port closed, exit status 0. SIGINT does the
/// same whatever the drain setting.
#[test]
fn sigterm_without_drain_and_sigint_stop_at_once() {
    for (args, sig) in [
        (&["--drain-timeout", "0"][..], libc::SIGTERM),
        (&[][..], libc::SIGINT),
    ] {
        let (mut child, addr) = node_child(args);
        let mut c = raw(addr);
        c.roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
        // SAFETY: sending a signal to our own child process, not yet reaped.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let status = exit_within(&mut child, Duration::from_secs(10));
        assert!(status.success(), "exit status {status:?}");
        // Its connection was closed, and nothing listens any more.
        assert_eq!(c.read_to_close(), b"");
        assert!(TcpStream::connect(addr).is_err());
    }
}

/// SIGTERM with the drain on: the node keeps serving (old and new connections), says
/// `draining 1` in `stats`, and once that was seen and nothing else was asked for
/// `drain_quiet` seconds it exits 0, well before `drain_timeout`.
#[test]
fn sigterm_drains_serving_until_quiet_then_exits_zero() {
    let (mut child, addr) = node_child(&["--drain-timeout", "60", "--drain-quiet", "1"]);
    let mut c = raw(addr);
    c.roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    assert_eq!(c.stat("draining"), "0");
    // SAFETY: sending a signal to our own child process, not yet reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c.stat("draining") != "1" {
        assert!(
            std::time::Instant::now() < deadline,
            "draining reported in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Still serving: the old connection, and a new one (a migrator lists keys on its own).
    let started = std::time::Instant::now();
    for _ in 0..5 {
        c.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
        raw(addr).roundtrip(b"set k2 0 0 1\r\nw\r\n", b"STORED\r\n");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "requests every 300 ms keep a 1 s quiet period from ending the drain"
    );
    let status = exit_within(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ended by the quiet rule, not at drain_timeout"
    );
    assert_eq!(c.read_to_close(), b"");
}

/// `stats items` moves as memcached's per-class counters do: evictions of items with a TTL
/// count in `evicted_nonzero` (it used to read 0 whatever happened), and the class's
/// counters agree with the general ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_items_counts_evictions_per_class() {
    let cfg = NodeConfig {
        memory_limit_mb: 4,
        ..NodeConfig::default()
    };
    let (h, _clock) = start(cfg).await;
    let addr = h.addr;
    let (general, items) = blocking(move || {
        let mut c = raw(addr);
        let value = [b'v'; 1000];
        let mut batch = Vec::new();
        for i in 0..8000 {
            batch.extend_from_slice(format!("set key:{i} 0 1000 1000 noreply\r\n").as_bytes());
            batch.extend_from_slice(&value);
            batch.extend_from_slice(b"\r\n");
        }
        batch.extend_from_slice(b"mn\r\n");
        c.roundtrip(&batch, b"MN\r\n");
        let mut read_stats = |cmd: &[u8]| {
            c.send_raw(cmd);
            String::from_utf8(c.until(b"END\r\n")).unwrap()
        };
        (read_stats(b"stats\r\n"), read_stats(b"stats items\r\n"))
    })
    .await;
    let get = |stats: &str, name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap_or_else(|| panic!("stat {name} missing in {stats}"))
            .parse()
            .unwrap()
    };
    let evictions = get(&general, "evictions");
    assert!(evictions > 0, "8 MB into 4 MB must evict");
    assert_eq!(get(&items, "items:1:evicted"), evictions);
    assert_eq!(
        get(&items, "items:1:evicted_nonzero"),
        evictions,
        "every evicted item had a TTL"
    );
    assert_eq!(get(&items, "items:1:evicted_unfetched"), evictions);
    assert_eq!(get(&items, "items:1:number"), get(&general, "curr_items"));
    assert_eq!(get(&items, "items:1:mem_requested"), get(&general, "bytes"));
    h.shutdown().await;
}

/// `lru_crawler metadump` over many chunks: the connection writes every chunk the store walk
/// hands it, in order, then `END`, then answers the next pipelined request. Each line reads
/// back with the protocol's one metadump parser to an item that was stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadump_streams_every_item_in_chunks_then_goes_on() {
    use ringcache_client::protocol::metadump::{DumpLine, MetadumpLine};
    on_node(NodeConfig::default(), move |addr, _clock| {
        const N: usize = 3000;
        let mut c = raw(addr);
        let key = |i: usize| format!("{i:06}:{}", "k".repeat(180));
        let mut sets = Vec::new();
        for i in 0..N {
            sets.extend_from_slice(format!("set {} 0 0 1\r\nv\r\n", key(i)).as_bytes());
        }
        c.send_raw(&sets);
        c.expect_exact(&b"STORED\r\n".repeat(N));
        c.send_raw(b"lru_crawler metadump all\r\nmn\r\n");
        let got = c.until(b"END\r\nMN\r\n");
        assert!(
            got.len() > 4 * 64 * 1024,
            "several chunks: {} bytes",
            got.len()
        );
        let body = &got[..got.len() - b"END\r\nMN\r\n".len()];
        let mut keys: Vec<Vec<u8>> = body
            .split_inclusive(|&b| b == b'\n')
            .map(|line| match MetadumpLine::parse(line) {
                DumpLine::Item(item) => {
                    assert_eq!((item.fields.exp, item.fields.size > 180), (-1, true));
                    item.key
                }
                other => panic!("not an item line: {other:?}"),
            })
            .collect();
        keys.sort();
        let want: Vec<Vec<u8>> = (0..N).map(|i| key(i).into_bytes()).collect();
        assert_eq!(keys, want);
    })
    .await;
}
