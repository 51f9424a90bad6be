//! Prometheus metrics: the servers' metric names (the routing layer's are listed in
//! `ringcache_client::metric_names`), the recorder, and the HTTP endpoint that serves
//! `/metrics` and `/ready`.
//!
//! Names follow docs/architecture.md §7: prefix `ringcache_`, base units, `_total` on counters,
//! low-cardinality labels (`cmd`, `result`, `kind`, `cause`, `node`), never a key. Hot-path counters live in the
//! servers' own atomics (the same ones `stats` reports) and are published here once a second,
//! so serving a request costs no metrics-registry lookups.
//!
//! Two recorders sit behind one `metrics` router (metrics-util's routing layer): the per-node
//! families (`metric_names::PER_NODE`) go to one that drops a series untouched for
//! [`NODE_SERIES_IDLE`], everything else to one that never drops anything. The exporter has
//! no call to remove a series, and its idle timeout applies to every series of a recorder, so
//! it is confined to the series that must go: a node that left every ring is no longer kept
//! alive by its router (`Topology::keep_node_metrics_alive`, once a second) and leaves the
//! page, which is what stops `RingcacheNodeDown` firing for a node that is gone. The other
//! recorder's handles (the rebalancer's, the servers' histograms) are held for the process's
//! life and must never be dropped under them. A page is the two renders one after the other;
//! no family is in both, so each family's lines stay together as the text format requires.
//!
//! `/ready` answers 200 while the server can serve and 503 with a one-line reason while it
//! cannot (a proxy with no answering node, a draining node): [`Exporter::ready`].
//!
//! The endpoint is bounded like the cache ports: headers must arrive within a deadline (a
//! slowloris client is dropped), a connection lives at most a fixed time, at most a fixed number
//! are open (past it a newcomer is closed at once), and accept errors such as running out of file
//! descriptors back off instead of spinning.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::RouterBuilder;
use metrics_util::MetricKindMask;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use ringcache_client::metric_names::{m, Kind, Metric, Unit, ALL, PER_NODE};

use crate::error::Error;

/// Commands processed, by verb (`cmd`).
pub const COMMANDS_TOTAL: &str = "ringcache_commands_total";
/// Retrieval results by `result` = hit | miss | expired | flushed.
pub const GETS_TOTAL: &str = "ringcache_get_results_total";
/// Items currently stored.
pub const ITEMS: &str = "ringcache_items";
/// Bytes currently used by items (memcached's `bytes`).
pub const ITEM_BYTES: &str = "ringcache_item_bytes";
/// The memory budget.
pub const MEMORY_LIMIT_BYTES: &str = "ringcache_memory_limit_bytes";
/// Items removed before their time, by `cause` = capacity | expired | flushed.
pub const EVICTIONS_TOTAL: &str = "ringcache_evictions_total";
/// Open client connections.
pub const CONNECTIONS: &str = "ringcache_connections";
/// Client connections accepted since start.
pub const CONNECTIONS_TOTAL: &str = "ringcache_connections_accepted_total";
/// Client connections refused because of the connection limit.
pub const CONNECTIONS_REJECTED_TOTAL: &str = "ringcache_connections_rejected_total";
/// Requests refused as malformed, by `kind`.
pub const PROTOCOL_ERRORS_TOTAL: &str = "ringcache_protocol_errors_total";
/// Bytes read from and written to clients.
pub const READ_BYTES_TOTAL: &str = "ringcache_read_bytes_total";
pub const WRITTEN_BYTES_TOTAL: &str = "ringcache_written_bytes_total";
/// Time to serve one batch of pipelined requests (read to reply written), by `cmd` of the batch's
/// first request.
pub const REQUEST_DURATION_SECONDS: &str = "ringcache_request_duration_seconds";

/// Proxy: multi-get keys answered as misses because no replica could be read.
pub const MULTIGET_PARTIAL_TOTAL: &str = "ringcache_proxy_multiget_failed_keys_total";
/// Proxy: config reloads applied.
pub const CONFIG_RELOADS_TOTAL: &str = "ringcache_proxy_config_reloads_total";
/// Proxy: 1 if the last config reload was applied (or nothing needed changing), 0 if the file
/// was refused; Prometheus' own name for it.
pub const CONFIG_LAST_RELOAD_SUCCESSFUL: &str = "ringcache_config_last_reload_successful";
/// Proxy: Unix time of the last reload that succeeded (the start, before any).
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP: &str =
    "ringcache_config_last_reload_success_timestamp_seconds";
/// Proxy: members of the current ring (0: the proxy has no cluster).
pub const PROXY_RING_NODES: &str = "ringcache_proxy_ring_nodes";
/// Proxy: 1 while `/ready` answers 200.
pub const PROXY_READY: &str = "ringcache_proxy_ready";
/// The client-connection limit (`max_connections`), by `role`.
pub const MAX_CONNECTIONS: &str = "ringcache_max_connections";
/// Always 1, labelled with the `version` and the git `commit` the binary was built from.
pub const BUILD_INFO: &str = "ringcache_build_info";

/// How long a per-node series (`metric_names::PER_NODE`) stays on the page after its router
/// last kept it alive. Routers keep their nodes' series alive once a second, so a live node's
/// series are never near it; a node that left goes this long after its transition ended
/// (plus up to one scrape). A node's latency histogram also goes after this long without a
/// request, and comes back with the next one.
pub const NODE_SERIES_IDLE: Duration = Duration::from_secs(10);

/// The commit the binary was built from (build.rs: `RINGCACHE_COMMIT` or `git rev-parse`,
/// else "unknown").
pub const COMMIT: &str = env!("RINGCACHE_COMMIT");

/// Histogram buckets for request durations: 10 µs to 1 s.
const DURATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
];

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// `process_cpu_seconds_total` as the process collector records it: a gauge (its
/// `use-gauge-on-cpu-seconds-total` feature), since a metrics counter holds whole numbers and
/// the CPU time has sub-second precision. The page declares it a counter, as Prometheus' own
/// process collector does (and `promtool check metrics` refuses a gauge named `_total`); the
/// value, read from `/proc` at every scrape, never goes down.
const CPU_AS_GAUGE: &str = "# TYPE process_cpu_seconds_total gauge\n";
const CPU_AS_COUNTER: &str = "# TYPE process_cpu_seconds_total counter\n";

/// Whether a server can serve now; the reason if not (one line, for `/ready`'s body).
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// What the endpoint serves: the two recorders' pages, the process collector, and the server's
/// readiness.
#[derive(Clone)]
pub struct Exporter {
    main: PrometheusHandle,
    nodes: PrometheusHandle,
    process: Arc<metrics_process::Collector>,
    ready: Option<Readiness>,
}

impl Exporter {
    /// The same exporter, answering `/ready` with `check` (without one, `/ready` is 200).
    pub fn ready(mut self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> Self {
        self.ready = Some(Arc::new(check));
        self
    }

    /// The `/metrics` page: the process's figures are read first, as a scrape asks for them.
    pub fn render(&self) -> String {
        self.process.collect();
        let mut page = self.main.render();
        if let Some(at) = page.find(CPU_AS_GAUGE) {
            page.replace_range(at..at + CPU_AS_GAUGE.len(), CPU_AS_COUNTER);
        }
        page.push_str(&self.nodes.render());
        page
    }

    /// `/ready`'s answer: `Ok` or the reason the server cannot serve.
    pub fn check_ready(&self) -> Result<(), String> {
        self.ready.as_ref().map_or(Ok(()), |f| f())
    }

    fn run_upkeep(&self) {
        self.main.run_upkeep();
        self.nodes.run_upkeep();
    }
}

/// Installs the process-wide Prometheus recorders (once; later calls return the same exporter,
/// without readiness, so several servers in one process — `ringcache local`, tests — share
/// them).
pub fn install() -> Exporter {
    EXPORTER
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Suffix("duration_seconds".into()),
                        DURATION_BUCKETS,
                    )
                    .expect("static bucket list is not empty")
            };
            let main = builder().build_recorder();
            let nodes = builder()
                .idle_timeout(MetricKindMask::ALL, Some(NODE_SERIES_IDLE))
                .build_recorder();
            let exporter = Exporter {
                main: main.handle(),
                nodes: nodes.handle(),
                process: Arc::new(metrics_process::Collector::default()),
                ready: None,
            };
            let nodes = Arc::new(nodes);
            let mut router = RouterBuilder::from_recorder(main);
            for name in PER_NODE {
                router.add_route(MetricKindMask::ALL, *name, nodes.clone());
            }
            // Another recorder may already be installed (an embedding program's); then ours
            // still renders whatever is recorded through our handles' registries.
            let _ = metrics::set_global_recorder(router.build());
            describe();
            exporter.process.describe();
            metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"), "commit" => COMMIT)
                .set(1.0);
            exporter
        })
        .clone()
}

/// The servers' own metrics, in the routing layer's [`Metric`] form so that one loop describes
/// both lists.
const SERVER_METRICS: &[Metric] = &[
    m(
        COMMANDS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Commands processed, by verb",
    ),
    m(
        GETS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Retrieval results by result (hit, miss, expired, flushed)",
    ),
    m(ITEMS, Kind::Gauge, Unit::Count, "Items currently stored"),
    m(
        ITEM_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "Bytes used by stored items",
    ),
    m(
        MEMORY_LIMIT_BYTES,
        Kind::Gauge,
        Unit::Bytes,
        "Memory budget for items",
    ),
    m(
        EVICTIONS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Items removed early, by cause",
    ),
    m(
        CONNECTIONS,
        Kind::Gauge,
        Unit::Count,
        "Open client connections",
    ),
    m(
        CONNECTIONS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Client connections accepted",
    ),
    m(
        CONNECTIONS_REJECTED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Connections refused at the limit",
    ),
    m(
        PROTOCOL_ERRORS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Malformed requests, by kind",
    ),
    m(
        READ_BYTES_TOTAL,
        Kind::Counter,
        Unit::Bytes,
        "Bytes read from clients",
    ),
    m(
        WRITTEN_BYTES_TOTAL,
        Kind::Counter,
        Unit::Bytes,
        "Bytes written to clients",
    ),
    m(
        REQUEST_DURATION_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time to serve a batch of pipelined requests",
    ),
    m(
        MULTIGET_PARTIAL_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Multi-get keys answered as misses because no replica could be read",
    ),
    m(
        CONFIG_RELOADS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Proxy config reloads applied",
    ),
    m(
        CONFIG_LAST_RELOAD_SUCCESSFUL,
        Kind::Gauge,
        Unit::Count,
        "1 if the last config reload was applied, 0 if the file was refused",
    ),
    m(
        CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP,
        Kind::Gauge,
        Unit::Seconds,
        "Unix time of the last successful config reload (the start, before any)",
    ),
    m(
        PROXY_RING_NODES,
        Kind::Gauge,
        Unit::Count,
        "Members of the proxy's current ring (0: no cluster, not ready)",
    ),
    m(
        PROXY_READY,
        Kind::Gauge,
        Unit::Count,
        "1 while the proxy is ready (a member of its ring answers), as /ready says",
    ),
    m(
        MAX_CONNECTIONS,
        Kind::Gauge,
        Unit::Count,
        "Client connection limit (max_connections)",
    ),
    m(
        BUILD_INFO,
        Kind::Gauge,
        Unit::Count,
        "Always 1, labelled with the version and git commit of the build",
    ),
];

/// Gives every metric its `# HELP` line: the servers' own, and the routing layer's, which are
/// recorded in the client crate (it lists them with their help text) and described here, where
/// the recorder is installed.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for m in SERVER_METRICS.iter().chain(ALL) {
        let unit = match m.unit {
            Unit::Count => metrics::Unit::Count,
            Unit::Seconds => metrics::Unit::Seconds,
            Unit::Bytes => metrics::Unit::Bytes,
        };
        match m.kind {
            Kind::Counter => describe_counter!(m.name, unit, m.help),
            Kind::Gauge => describe_gauge!(m.name, unit, m.help),
            Kind::Histogram => describe_histogram!(m.name, unit, m.help),
        }
    }
}

/// Binds the `/metrics` endpoint; returns the bound address (useful with port 0).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Config(format!("metrics_listen {addr}: {e}")))
}

/// Bounds on the `/metrics` endpoint's clients.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// A request's headers must have arrived this long after the connection (or the previous
    /// response) began; otherwise the connection is closed.
    pub header_timeout: Duration,
    /// A connection is closed this long after it was accepted, whatever it is doing.
    pub max_lifetime: Duration,
    /// Connections open at once; past it a newcomer is closed without a response.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// A scrape takes milliseconds: 5 s for headers, 60 s in all, 64 scrapers at once.
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(5),
            max_lifetime: Duration::from_secs(60),
            max_connections: 64,
        }
    }
}

/// How long the accept loop pauses after an accept error (out of file descriptors and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `GET /metrics` and `GET /ready` on `listener` until `shutdown` is cancelled, with the
/// default limits.
pub async fn serve(listener: TcpListener, handle: Exporter, shutdown: CancellationToken) {
    serve_with(listener, handle, shutdown, HttpLimits::default()).await
}

/// Serves `GET /metrics` and `GET /ready` on `listener` until `shutdown` is cancelled, within
/// `limits`.
pub async fn serve_with(
    listener: TcpListener,
    handle: Exporter,
    shutdown: CancellationToken,
    limits: HttpLimits,
) {
    let upkeep = {
        let handle = handle.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => handle.run_upkeep(),
                    _ = shutdown.cancelled() => break,
                }
            }
        })
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!("metrics accept: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // At the cap: close the newcomer at once (dropping it) rather than queue it.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: connection limit reached; closing a new connection");
            continue;
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let handle = handle.clone();
                async move {
                    match req.uri().path() {
                        "/metrics" => Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(handle.render()))),
                        "/ready" => {
                            let (status, body) = match handle.check_ready() {
                                Ok(()) => (StatusCode::OK, "ready\n".to_string()),
                                Err(why) => (
                                    StatusCode::SERVICE_UNAVAILABLE,
                                    format!("not ready: {why}\n"),
                                ),
                            };
                            Response::builder()
                                .status(status)
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from(body)))
                        }
                        _ => Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"try /metrics or /ready\n"))),
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(limits.max_lifetime, conn).await;
        });
    }
    upkeep.abort();
}

/// Where a bound listener ended up, for the start-up line.
pub fn local_addr(l: &TcpListener) -> Option<SocketAddr> {
    l.local_addr().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// metrics-util's router matches a route as a prefix of the name: a family whose name
    /// starts with a per-node family's would be sent to the recorder that drops idle series,
    /// and its held handles would go dead. No other family may start with one.
    #[test]
    fn only_per_node_families_route_to_the_dropping_recorder() {
        for m in SERVER_METRICS.iter().chain(ALL) {
            if PER_NODE.contains(&m.name) {
                continue;
            }
            for p in PER_NODE {
                assert!(
                    !m.name.starts_with(p),
                    "{} would be routed as the per-node family {p}",
                    m.name
                );
            }
        }
        for p in PER_NODE {
            assert!(
                ALL.iter().any(|m| m.name == *p),
                "{p} is described in metric_names::ALL"
            );
        }
    }
}
