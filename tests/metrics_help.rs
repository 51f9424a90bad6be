//! The families on `/metrics`: every one has a `# HELP` line, and the process collector's
//! CPU time has sub-second precision, as Prometheus' own has.
//!
//! `promtool check metrics` (run by
//! .ci/run on a node's and a proxy's pages) reports a family without one as a lint problem and
//! exits non-zero, and Grafana shows the help text next to each metric.
//!
//! A node and a proxy run in this process and share its one registry, so one page holds the
//! node's, the proxy's and the routing layer's (client and rebalance) families.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringcache::config::NodeConfig;
use ringcache::node::{self, clock::SystemClock};
use ringcache::proxy::{self, ProxyConfig};
use ringcache_client::ring::NodeSpec;
use testkit::aio::metrics_page;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Limit on any one exchange.
const IO_LIMIT: Duration = Duration::from_secs(10);

/// The metric names a page's `# <kind> NAME ...` lines declare.
fn declared<'a>(body: &'a str, kind: &str) -> HashSet<&'a str> {
    body.lines()
        .filter_map(|l| l.strip_prefix(kind))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// Loopback on a port the OS picks, `/metrics` likewise.
fn served() -> ringcache::server::ServerSettings {
    ringcache::server::ServerSettings {
        metrics_listen: Some("127.0.0.1:0".into()),
        ..ringcache::server::ServerSettings::listening("127.0.0.1:0")
    }
}

/// A node in this process on [`served`] addresses.
async fn start_node() -> node::NodeHandle {
    node::start(
        NodeConfig {
            server: served(),
            ..NodeConfig::default()
        },
        Arc::new(SystemClock),
    )
    .await
    .expect("node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_has_help() {
    let node = start_node().await;
    let proxy = proxy::start(
        ProxyConfig {
            server: served(),
            nodes: vec![NodeSpec::new(node.addr.to_string()).named("n0")],
            ..ProxyConfig::default()
        },
        None,
    )
    .await
    .expect("proxy starts");

    // One request through the proxy, so per-command and per-node series exist.
    let mut c = TcpStream::connect(proxy.addr).await.expect("connect proxy");
    c.write_all(b"set k 0 0 1\r\nv\r\nget k\r\n")
        .await
        .expect("send");
    let want = b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n";
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(IO_LIMIT, c.read_exact(&mut got))
        .await
        .expect("reply in time")
        .expect("reply");
    assert_eq!(got, want);

    // Counters are published once a second: look until the proxy's have been (bounded).
    let maddr = proxy.metrics_addr.expect("metrics bound");
    let deadline = Instant::now() + IO_LIMIT;
    let body = loop {
        let body = metrics_page(maddr).await;
        if body.contains(r#"ringcache_commands_total{role="proxy""#) || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let types = declared(&body, "# TYPE ");
    let helps = declared(&body, "# HELP ");
    for family in [
        "ringcache_items",
        "ringcache_commands_total",
        "ringcache_client_node_up",
        "ringcache_client_request_duration_seconds",
        "ringcache_rebalance_phase",
        "ringcache_proxy_config_reloads_total",
    ] {
        assert!(types.contains(family), "no {family} on the page:\n{body}");
    }
    let mut missing: Vec<&str> = types.difference(&helps).copied().collect();
    missing.sort_unstable();
    assert!(missing.is_empty(), "families without # HELP: {missing:?}");

    proxy.shutdown().await;
    node.shutdown().await;
}

/// `process_cpu_seconds_total` on `page`.
fn cpu_seconds(page: &str) -> f64 {
    page.lines()
        .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_cpu_seconds_total on:\n{page}"))
}

/// Two scrapes around a busy loop of this process: the CPU time grew, and not in whole
/// seconds (the metrics crate's counters hold integers; it was `1`, `2`, … before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_cpu_seconds_have_sub_second_precision() {
    let node = start_node().await;
    let maddr = node.metrics_addr.expect("metrics bound");
    let before = cpu_seconds(&metrics_page(maddr).await);
    // A bounded busy loop: 300 ms of wall time, at most 10^10 rounds.
    let spin = Instant::now();
    let mut x = 0u64;
    for i in 0..10_000_000_000u64 {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        if i % 4096 == 0 && spin.elapsed() > Duration::from_millis(300) {
            break;
        }
    }
    let page = metrics_page(maddr).await;
    let after = cpu_seconds(&page);
    // Declared as Prometheus' own collector declares it (promtool refuses a gauge `_total`).
    assert!(
        page.contains("# TYPE process_cpu_seconds_total counter\n"),
        "{page}"
    );
    assert!(
        after > before,
        "CPU time {before} → {after} after a busy loop"
    );
    assert!(
        before.fract() != 0.0 || after.fract() != 0.0,
        "CPU time in whole seconds: {before} → {after}"
    );
    node.shutdown().await;
}
