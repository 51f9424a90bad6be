//! Readiness and the metrics issue 23 added, against real servers on loopback:
//!
//! - a proxy answers `/ready` 503 with a reason while no node of its ring answers, 200 once
//!   one does, and 503 again when it goes (the empty ring of a discovery that resolved nothing
//!   is in tests/discovery.rs);
//! - a node answers `/ready` 503 while it drains after SIGTERM;
//! - a node removed from the ring has every per-node series dropped from the proxy's
//!   `/metrics` once its transition ended, while the remaining node keeps its own;
//! - a refused config reload sets `ringcache_config_last_reload_successful 0` and keeps the
//!   last success's timestamp; the process, build and connection-limit metrics are on the page.
//!
//! Node processes are real `ringcache node`s; the proxies run in this process where a test
//! needs its router, and as processes where a test reads process-wide metrics.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use ringcache::proxy::{self, reload, ProxyConfig};
use ringcache_client::metric_names::{CLIENT_REQUEST_DURATION_SECONDS, PER_NODE};
use ringcache_client::ring::NodeSpec;
use support::{free_port, proxy_config, spawn_node, spawn_node_at, spawn_with_metrics};
use testkit::aio::{http_get, metrics_page, Raw};

/// Limit on anything a test waits for, but the removed node's series.
const WAIT: Duration = Duration::from_secs(30);

/// Polls `/ready` at `addr` until its status is `want` (bounded by [`WAIT`]); returns the body.
async fn ready_becomes(addr: SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(addr, "/ready").await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/ready stayed {status} {body:?}, wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `series` (name and labels exactly as rendered) on `page`.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().expect("sample value"))
}

/// Polls the page at `addr` until `f` holds (bounded by `limit`); returns the page.
async fn page_until(addr: SocketAddr, limit: Duration, what: &str, f: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + limit;
    loop {
        let page = metrics_page(addr).await;
        if f(&page) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}; page:\n{page}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spec(name: &str, addr: SocketAddr) -> NodeSpec {
    NodeSpec::new(addr.to_string()).named(name)
}

/// A temporary config file path for this test process.
fn temp_config(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ringcache-ready-{tag}-{}.toml", std::process::id()))
}

/// A proxy whose one node is not there yet: not ready, with the reason; ready once a node
/// listens at that address and the proxy's connection to it is up; not ready again when the
/// node is killed. Before, the proxy's port accepted all along, so a TCP probe passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_is_ready_only_while_a_node_answers() {
    let node_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let proxy = proxy::start(
        ProxyConfig {
            nodes: vec![spec("ready-n0", node_addr)],
            ..proxy_config(1000, 1)
        },
        None,
    )
    .await
    .expect("proxy starts");
    let maddr = proxy.metrics_addr.expect("metrics bound");

    let body = ready_becomes(maddr, 503).await;
    assert_eq!(body, "not ready: none of the ring's 1 nodes answers\n");

    let mut node = spawn_node_at(&node_addr.to_string(), &[]);
    assert_eq!(ready_becomes(maddr, 200).await, "ready\n");
    let mut c = Raw::connect(proxy.addr).await;
    assert_eq!(c.set("k", b"v").await.expect("set"), "STORED");

    node.kill9();
    let body = ready_becomes(maddr, 503).await;
    assert_eq!(body, "not ready: none of the ring's 1 nodes answers\n");
    proxy.shutdown().await;
}

/// A node told to leave (SIGTERM with a drain) still serves, but `/ready` says 503 so that no
/// new client is sent to it. Its page also shows its connection limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_is_not_ready() {
    let (mut node, maddr) = spawn_with_metrics(
        "node",
        &["--drain-timeout", "60", "--max-connections", "77"],
    );
    assert_eq!(ready_becomes(maddr, 200).await, "ready\n");
    let page = metrics_page(maddr).await;
    assert_eq!(
        sample(&page, r#"ringcache_max_connections{role="node"}"#),
        Some(77.0)
    );

    node.process().signal(libc::SIGTERM).expect("SIGTERM");
    let body = ready_becomes(maddr, 503).await;
    assert_eq!(
        body,
        "not ready: draining: leaving the cluster while the routers move its keys\n"
    );
    // Still serving while it drains.
    let mut c = Raw::connect(node.addr).await;
    assert_eq!(c.set("k", b"v").await.expect("set"), "STORED");
    assert_eq!(
        c.stats().await.expect("stats").get("draining"),
        Some(&"1".to_string())
    );
}

/// Two nodes, one removed by a reload: once the transition that moved its keys has ended, every
/// per-node series of the removed node leaves the page (so `RingcacheNodeDown` cannot fire
/// for it for ever), within the recorder's idle timeout; the remaining node keeps its own,
/// and its latency histogram, dropped while it got no request, takes the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_nodes_series_leave_the_page() {
    let (keep, gone) = (spawn_node(&[]), spawn_node(&[]));
    let path = temp_config("removed");
    let cfg = ProxyConfig {
        nodes: vec![spec("keep-n0", keep.addr), spec("gone-n1", gone.addr)],
        ..proxy_config(1000, 1)
    };
    let proxy = proxy::start(cfg, None).await.expect("proxy starts");
    let maddr = proxy.metrics_addr.expect("metrics bound");
    let router = proxy.proxy.router().clone();

    // Traffic to both nodes, so each has every series (latency, requests...).
    let mut c = Raw::connect(proxy.addr).await;
    for i in 0..200 {
        assert_eq!(c.set(&format!("k{i}"), b"v").await.expect("set"), "STORED");
    }
    let has_all = |page: &str, node: &str| {
        PER_NODE.iter().all(|name| {
            page.lines()
                .any(|l| l.starts_with(name) && l.contains(&format!("node=\"{node}\"")))
        })
    };
    page_until(maddr, WAIT, "both nodes' series on the page", |p| {
        has_all(p, "keep-n0") && has_all(p, "gone-n1")
    })
    .await;

    // gone-n1 leaves the ring; its keys move to keep-n0.
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\n[ring]\nreplicas = 1\n[[nodes]]\naddr = \"{}\"\nname = \"keep-n0\"\n",
            keep.addr
        ),
    )
    .expect("write config");
    assert!(reload::reload(&proxy.proxy, &path).await.expect("reload"));
    let deadline = Instant::now() + WAIT;
    while !router.topology().past.is_empty() {
        assert!(Instant::now() < deadline, "the transition ended in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = Instant::now();

    let limit = ringcache::metrics::NODE_SERIES_IDLE + WAIT;
    page_until(maddr, limit, "gone-n1's series left the page", |p| {
        !p.contains("node=\"gone-n1\"")
    })
    .await;
    println!(
        "gone-n1's series left {:?} after its transition",
        ended.elapsed()
    );
    // keep-n0 keeps its series; its latency histogram, which got no sample for as long,
    // went too (a histogram cannot be kept alive without one) and comes back with the next
    // request.
    let page = metrics_page(maddr).await;
    for name in PER_NODE {
        let series = format!("{name}{{node=\"keep-n0\"}}");
        if *name != CLIENT_REQUEST_DURATION_SECONDS {
            assert!(page.contains(&series), "keep-n0 keeps {series}:\n{page}");
        }
    }
    assert_eq!(
        sample(&page, r#"ringcache_client_node_up{node="keep-n0"}"#),
        Some(1.0)
    );
    assert_eq!(c.set("after", b"v").await.expect("set"), "STORED");
    page_until(maddr, WAIT, "keep-n0's latency histogram is back", |p| {
        has_all(p, "keep-n0")
            && sample(
                p,
                r#"ringcache_client_request_duration_seconds_count{node="keep-n0"}"#,
            )
            .is_some_and(|n| n >= 1.0)
    })
    .await;
    let _ = std::fs::remove_file(&path);
    proxy.shutdown().await;
}

/// A proxy process: its page has the process, build and connection-limit metrics, the start
/// counted as a successful load; a config file that does not parse, once the watcher reads it,
/// sets `ringcache_config_last_reload_successful 0` and leaves the last success's timestamp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reload_shows_and_process_metrics_are_there() {
    let node = spawn_node(&[]);
    let path = temp_config("refused");
    std::fs::write(
        &path,
        format!(
            "max_connections = 99\n[[nodes]]\naddr = \"{}\"\n",
            node.addr
        ),
    )
    .expect("write config");
    let config = path.to_string_lossy().to_string();
    let (_proxy, maddr) = spawn_with_metrics("proxy", &["--config", &config]);
    ready_becomes(maddr, 200).await;

    let page = metrics_page(maddr).await;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert_eq!(
        sample(&page, r#"ringcache_max_connections{role="proxy"}"#),
        Some(99.0)
    );
    assert_eq!(
        sample(&page, "ringcache_config_last_reload_successful"),
        Some(1.0)
    );
    let loaded = sample(
        &page,
        "ringcache_config_last_reload_success_timestamp_seconds",
    )
    .expect("reload timestamp");
    assert!(
        (now - 600.0..=now + 1.0).contains(&loaded),
        "{loaded} vs {now}"
    );
    let build = format!(
        "ringcache_build_info{{version=\"{}\",commit=\"{}\"}}",
        env!("CARGO_PKG_VERSION"),
        ringcache::metrics::COMMIT
    );
    assert_eq!(sample(&page, &build), Some(1.0), "{build} on:\n{page}");
    let commit = ringcache::metrics::COMMIT;
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "commit {commit:?}"
    );
    let started = sample(&page, "process_start_time_seconds").expect("start time");
    assert!(
        (now - 600.0..=now + 1.0).contains(&started),
        "{started} vs {now}"
    );
    assert!(sample(&page, "process_resident_memory_bytes").expect("RSS") > 1e6);
    assert!(sample(&page, "process_open_fds").expect("open fds") >= 3.0);
    assert!(sample(&page, "process_cpu_seconds_total").expect("CPU") >= 0.0);
    assert_eq!(sample(&page, "ringcache_proxy_ring_nodes"), Some(1.0));

    std::fs::write(&path, "this is not toml = = =\n").expect("write a broken config");
    page_until(maddr, WAIT, "the refused reload shows", |p| {
        sample(p, "ringcache_config_last_reload_successful") == Some(0.0)
    })
    .await;
    let page = metrics_page(maddr).await;
    assert_eq!(
        sample(
            &page,
            "ringcache_config_last_reload_success_timestamp_seconds"
        ),
        Some(loaded),
        "a refused reload keeps the last success's time"
    );
    // The running config stays: still ready, still serving.
    assert_eq!(ready_becomes(maddr, 200).await, "ready\n");
    let _ = std::fs::remove_file(&path);
}
