//! The standard matrix (which loads, against which targets) and the maths on its results: the
//! per-target medians a workload produced, and the target ratios with met / not met.

use serde::Serialize;

use crate::report::{self, BenchReport};

/// The systems a scenario compares, in the order they run in every round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Debian's memcached 1.6, one process.
    Memcached,
    /// One `ringcache node`.
    Node,
    /// nutcracker (twemproxy 0.5), ketama/md5, in front of 3 memcached.
    Nutcracker,
    /// `ringcache proxy` (replicas 1) in front of 3 `ringcache node`.
    Proxy,
    /// `ringcache_client::Client` in the bench process, over the proxy's 3 nodes.
    Embedded,
    /// memcached 1.6 with `-Z` (OpenSSL), one process: the TLS rows' peer.
    MemcachedTls,
    /// One `ringcache node --ssl-chain-cert … --ssl-key …` (rustls).
    NodeTls,
    /// `ringcache proxy` with TLS to its clients and `[backend] tls` to 3 TLS nodes.
    ProxyTls,
    /// `ringcache proxy`, replicas 2, in front of 6 nodes without zones: the zone rows' peer.
    ProxyFlat,
    /// The same proxy and nodes with 3 zones (2 nodes each) and the proxy in one of them.
    ProxyZones,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Memcached,
        Kind::Node,
        Kind::Nutcracker,
        Kind::Proxy,
        Kind::Embedded,
    ];

    /// The TLS rows' targets, in the order they run.
    pub const TLS: [Kind; 3] = [Kind::MemcachedTls, Kind::NodeTls, Kind::ProxyTls];

    /// The zone rows' targets (issue 25), in the order they run.
    pub const ZONES: [Kind; 2] = [Kind::ProxyFlat, Kind::ProxyZones];

    pub fn label(self) -> &'static str {
        match self {
            Kind::Memcached => "memcached",
            Kind::Node => "node",
            Kind::Nutcracker => "nutcracker",
            Kind::Proxy => "proxy",
            Kind::Embedded => "embedded",
            Kind::MemcachedTls => "memcached -Z",
            Kind::NodeTls => "node tls",
            Kind::ProxyTls => "proxy tls",
            Kind::ProxyFlat => "proxy 6 nodes",
            Kind::ProxyZones => "proxy zones",
        }
    }

    /// Whose CPU time the ops/cpu-s column divides by.
    pub fn cpu_charged(self) -> &'static str {
        match self {
            Kind::Memcached => "the memcached process",
            Kind::Node => "the node process",
            Kind::Nutcracker => "the nutcracker process only (not its 3 memcached)",
            Kind::Proxy => "the proxy process only (not its 3 nodes)",
            Kind::Embedded => "the 3 node processes (the client runs inside the bench)",
            Kind::MemcachedTls => "the memcached process",
            Kind::NodeTls => "the node process",
            Kind::ProxyTls => "the proxy process only (not its 3 nodes)",
            Kind::ProxyFlat | Kind::ProxyZones => "the proxy process only (not its 6 nodes)",
        }
    }
}

/// One load of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Load {
    pub name: String,
    pub connections: usize,
    pub pipeline: usize,
    pub value_size: usize,
    /// Keys per get (1 = plain get).
    pub multiget: usize,
}

impl Load {
    fn new(connections: usize, pipeline: usize, value_size: usize, multiget: usize) -> Load {
        let size = if value_size % 1024 == 0 {
            format!("{}KiB", value_size / 1024)
        } else {
            format!("{value_size}B")
        };
        let mg = if multiget > 1 {
            format!("mget{multiget} ")
        } else {
            String::new()
        };
        Load {
            name: format!("{mg}c{connections} p{pipeline} {size}"),
            connections,
            pipeline,
            value_size,
            multiget,
        }
    }
}

/// The standard matrix: {100, 1} connections × pipeline {1, 16} × values {100 B, 4 KiB},
/// all 1:10 set:get, plus the 10-key multi-get at 100 connections × pipeline 1 and at
/// 1 connection × pipeline 16 (100-byte values).
pub fn standard() -> Vec<Load> {
    let mut v = Vec::new();
    for size in [100, 4096] {
        for (c, p) in [(100, 1), (100, 16), (1, 1), (1, 16)] {
            v.push(Load::new(c, p, size, 1));
        }
    }
    v.push(Load::new(100, 1, 100, 10));
    v.push(Load::new(1, 16, 100, 10));
    v
}

/// One target's medians over the rounds of one load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub kind: Kind,
    pub target: String,
    pub rounds: usize,
    pub ops_per_sec: f64,
    pub ops_per_cpu_sec: Option<f64>,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub hit_ratio: Option<f64>,
    /// Errors summed over all rounds (error replies + unanswered ops).
    pub errors: u64,
    /// The first connection fault of each round that had one (deduplicated), warm-up included.
    pub faults: Vec<String>,
}

/// A load and what every target did on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub load: Load,
    pub figures: Vec<Figures>,
}

impl Row {
    pub fn get(&self, k: Kind) -> Option<&Figures> {
        self.figures.iter().find(|f| f.kind == k)
    }
}

/// Per-target medians of a compare-mode report whose targets were `kinds`, in that order.
pub fn figures(report: &BenchReport, kinds: &[Kind]) -> Vec<Figures> {
    report
        .targets
        .iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (t, &kind))| {
            let mine: Vec<_> = report.runs.iter().filter(|r| r.target_index == i).collect();
            let med = |f: &dyn Fn(&crate::report::RunSummary) -> Option<f64>| {
                report::median(&mine.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            Figures {
                kind,
                target: t.target.clone(),
                rounds: t.rounds,
                ops_per_sec: t.median_ops_per_sec,
                ops_per_cpu_sec: t.median_ops_per_cpu_sec,
                p50_us: t.median_p50_us,
                p99_us: t.median_p99_us,
                p999_us: med(&|r| Some(r.latency_us.p999 as f64)).unwrap_or(0.0),
                hit_ratio: med(&|r| r.hit_ratio),
                errors: mine.iter().map(|r| r.errors).sum(),
                faults: mine.iter().fold(Vec::new(), |mut v, r| {
                    if let Some(e) = &r.first_error {
                        if !v.contains(e) {
                            v.push(e.clone());
                        }
                    }
                    v
                }),
            }
        })
        .collect()
}

/// Which way a goal points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    pub fn met(self, v: f64) -> bool {
        match self {
            Goal::AtLeast(g) => v >= g,
            Goal::AtMost(g) => v <= g,
        }
    }

    pub fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!("≥ {g}"),
            Goal::AtMost(g) => format!("≤ {g}"),
        }
    }
}

/// One target of the issue, measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// What is divided by what, e.g. "node / memcached, ops per server CPU-s".
    pub what: String,
    pub load: String,
    /// The measured ratio (`None` when a figure is missing).
    pub ratio: Option<f64>,
    pub goal: Goal,
}

impl Check {
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| self.goal.met(r))
    }
}

/// Which figure a check divides.
#[derive(Debug, Clone, Copy)]
enum Metric {
    OpsPerSec,
    OpsPerCpu,
    P50,
    P99,
}

impl Metric {
    fn of(self, f: &Figures) -> Option<f64> {
        let v = match self {
            Metric::OpsPerSec => Some(f.ops_per_sec),
            Metric::OpsPerCpu => f.ops_per_cpu_sec,
            Metric::P50 => Some(f.p50_us),
            Metric::P99 => Some(f.p99_us),
        };
        v.filter(|x| x.is_finite() && *x > 0.0)
    }

    fn label_for(self, k: Kind) -> &'static str {
        match (self, k) {
            (
                Metric::OpsPerCpu,
                Kind::Proxy | Kind::ProxyTls | Kind::ProxyFlat | Kind::ProxyZones,
            ) => "ops per proxy CPU-s",
            (Metric::OpsPerCpu, Kind::Embedded) => "ops per node CPU-s",
            (Metric::OpsPerCpu, _) => "ops per server CPU-s",
            (m, _) => m.label(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Metric::OpsPerSec => "ops/s",
            Metric::OpsPerCpu => "ops per server CPU-s",
            Metric::P50 => "p50 latency",
            Metric::P99 => "p99 latency",
        }
    }
}

/// One goal: kind A's figure over kind B's, on each of these loads.
type Spec = (Kind, Kind, Metric, &'static [&'static str], Goal);

/// Evaluates `spec` on `rows` (loads missing from `rows` are left out).
fn evaluate(rows: &[Row], spec: &[Spec]) -> Vec<Check> {
    let mut out = Vec::new();
    for &(a, b, metric, loads, goal) in spec {
        for &load in loads {
            let Some(row) = rows.iter().find(|r| r.load.name == load) else {
                continue;
            };
            let ratio = match (row.get(a).and_then(|f| metric.of(f)), row.get(b)) {
                (Some(x), Some(fb)) => metric.of(fb).map(|y| x / y),
                _ => None,
            };
            out.push(Check {
                what: format!("{} / {}, {}", a.label(), b.label(), metric.label_for(a)),
                load: load.to_string(),
                ratio,
                goal,
            });
        }
    }
    out
}

/// The TLS loads (issue 23, item 8): the node's loads of issue 11 at one connection too, and
/// the 10-key multi-get at both concurrencies; 100-byte values.
pub fn tls_loads() -> Vec<Load> {
    vec![
        Load::new(100, 1, 100, 1),
        Load::new(1, 16, 100, 1),
        Load::new(100, 1, 100, 10),
        Load::new(1, 16, 100, 10),
    ]
}

/// The zone rows' loads (issue 25): one-key gets at 100 connections and pipelined at one, and
/// the 10-key multi-get; 100-byte values.
pub fn zone_loads() -> Vec<Load> {
    vec![
        Load::new(100, 1, 100, 1),
        Load::new(1, 16, 100, 1),
        Load::new(100, 1, 100, 10),
    ]
}

/// Issue 25's bench goal: ops/s through the proxy with zones within noise of zone-less
/// placement, here at least 0.95× (the rounds of one run differ by a few per cent on this
/// machine).
pub fn zone_checks(rows: &[Row]) -> Vec<Check> {
    evaluate(
        rows,
        &[(
            Kind::ProxyZones,
            Kind::ProxyFlat,
            Metric::OpsPerSec,
            &["c100 p1 100B", "c1 p16 100B", "mget10 c100 p1 100B"],
            Goal::AtLeast(0.95),
        )],
    )
}

/// Issue 23's TLS goal, evaluated on the TLS rows: the node over TLS against `memcached -Z`,
/// ops per server CPU-second ≥ 1.2 at c100 p1, c1 p16 and the 10-key multi-gets. The proxy's
/// TLS rows have no peer and no goal.
pub fn tls_checks(rows: &[Row]) -> Vec<Check> {
    evaluate(
        rows,
        &[(
            Kind::NodeTls,
            Kind::MemcachedTls,
            Metric::OpsPerCpu,
            &[
                "c100 p1 100B",
                "c1 p16 100B",
                "mget10 c100 p1 100B",
                "mget10 c1 p16 100B",
            ],
            Goal::AtLeast(1.2),
        )],
    )
}

/// The issues' targets (10: the router against nutcracker, 11: the node against memcached, and
/// issue 6's node rows before them), evaluated on `rows` (loads missing from `rows` are left
/// out), on the memory per item of node and memcached at each value size (`(size, node,
/// memcached, items)`, [`super::memory::pairs`]) and on the Zipf hit ratios (`(node,
/// memcached)`).
pub fn checks(
    rows: &[Row],
    memory: &[(usize, f64, f64, u64)],
    hits: Option<(f64, f64)>,
) -> Vec<Check> {
    use Kind::*;
    use Metric::*;
    const ROUTER_LOADS: &[&str] = &[
        "c100 p1 100B",
        "c1 p16 100B",
        "mget10 c100 p1 100B",
        "mget10 c1 p16 100B",
    ];
    let spec: &[Spec] = &[
        (
            Node,
            Memcached,
            OpsPerCpu,
            &["c100 p1 100B", "c100 p16 100B", "mget10 c100 p1 100B"],
            Goal::AtLeast(1.2),
        ),
        (
            Node,
            Memcached,
            P99,
            &["c100 p1 100B", "c100 p16 100B"],
            Goal::AtMost(1.0),
        ),
        (
            Node,
            Memcached,
            P50,
            &["c1 p1 100B", "c1 p16 100B"],
            Goal::AtMost(1.1),
        ),
        (
            Proxy,
            Nutcracker,
            OpsPerSec,
            &["c100 p1 100B"],
            Goal::AtLeast(1.3),
        ),
        (
            Proxy,
            Nutcracker,
            OpsPerSec,
            &["c1 p16 100B", "mget10 c100 p1 100B"],
            Goal::AtLeast(2.0),
        ),
        (
            Proxy,
            Nutcracker,
            OpsPerSec,
            &["mget10 c1 p16 100B"],
            Goal::AtLeast(1.5),
        ),
        (
            Proxy,
            Nutcracker,
            OpsPerCpu,
            ROUTER_LOADS,
            Goal::AtLeast(1.5),
        ),
        (Proxy, Nutcracker, P99, ROUTER_LOADS, Goal::AtMost(1.0)),
        (
            Embedded,
            Proxy,
            OpsPerSec,
            &["c100 p1 100B", "c1 p16 100B"],
            Goal::AtLeast(1.5),
        ),
    ];
    let mut out = evaluate(rows, spec);
    for &(size, node, mc, items) in memory {
        out.push(Check {
            what: format!("node / memcached, memory per {size}-byte item (RSS)"),
            load: format!("{items} items"),
            ratio: (mc > 0.0 && node.is_finite()).then(|| node / mc),
            goal: Goal::AtMost(0.85),
        });
    }
    if let Some((node, mc)) = hits {
        out.push(Check {
            what: "node / memcached, hit ratio".into(),
            load: format!(
                "Zipf {} get/set, cache = ¼ of the working set",
                super::hit_ratio::ZIPF_S
            ),
            ratio: (mc > 0.0).then(|| node / mc),
            goal: Goal::AtLeast(1.0),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(kind: Kind, ops: f64, cpu: Option<f64>, p50: f64, p99: f64) -> Figures {
        Figures {
            kind,
            target: kind.label().into(),
            rounds: 3,
            ops_per_sec: ops,
            ops_per_cpu_sec: cpu,
            p50_us: p50,
            p99_us: p99,
            p999_us: p99 * 2.0,
            hit_ratio: Some(1.0),
            errors: 0,
            faults: Vec::new(),
        }
    }

    #[test]
    fn standard_matrix_names() {
        let names: Vec<String> = standard().into_iter().map(|l| l.name).collect();
        assert_eq!(names.len(), 10);
        assert_eq!(names[0], "c100 p1 100B");
        assert_eq!(names[7], "c1 p16 4KiB");
        assert_eq!(names[8], "mget10 c100 p1 100B");
        assert_eq!(names[9], "mget10 c1 p16 100B");
    }

    #[test]
    fn ratios_and_verdicts() {
        let row = Row {
            load: Load::new(100, 1, 100, 1),
            figures: vec![
                fig(Kind::Memcached, 100.0, Some(1000.0), 50.0, 200.0),
                fig(Kind::Node, 120.0, Some(1300.0), 40.0, 250.0),
                fig(Kind::Nutcracker, 50.0, Some(400.0), 90.0, 400.0),
                fig(Kind::Proxy, 60.0, None, 80.0, 300.0),
                fig(Kind::Embedded, 120.0, Some(10.0), 30.0, 100.0),
            ],
        };
        let c = checks(
            &[row],
            &[
                (100, 80.0, 100.0, 1_000_000),
                (1000, 900.0, 1000.0, 1_000_000),
            ],
            Some((0.70, 0.72)),
        );
        let find = |what: &str| {
            c.iter()
                .find(|c| c.what.starts_with(what))
                .unwrap_or_else(|| panic!("{what} in {c:?}"))
        };
        let cpu = find("node / memcached, ops per server");
        assert!((cpu.ratio.expect("ratio") - 1.3).abs() < 1e-9);
        assert_eq!(cpu.met(), Some(true));
        let p99 = find("node / memcached, p99");
        assert!((p99.ratio.expect("ratio") - 1.25).abs() < 1e-9);
        assert_eq!(p99.met(), Some(false));
        let ops = find("proxy / nutcracker, ops/s");
        assert!((ops.ratio.expect("ratio") - 1.2).abs() < 1e-9);
        assert_eq!(ops.met(), Some(false));
        // A missing CPU figure gives no ratio and no verdict, not a zero.
        let pc = find("proxy / nutcracker, ops per proxy CPU-s");
        assert_eq!((pc.ratio, pc.met()), (None, None));
        assert_eq!(find("embedded / proxy").met(), Some(true));
        let mem = find("node / memcached, memory per 100-byte");
        assert!((mem.ratio.expect("ratio") - 0.8).abs() < 1e-9);
        assert_eq!(mem.met(), Some(true));
        let big = find("node / memcached, memory per 1000-byte");
        assert!((big.ratio.expect("ratio") - 0.9).abs() < 1e-9);
        assert_eq!(big.met(), Some(false), "the goal is ≤ 0.85");
        let hit = find("node / memcached, hit ratio");
        assert_eq!(hit.met(), Some(false), "0.70 is below memcached's 0.72");
        // Only the loads present are checked.
        assert!(c.iter().all(|c| c.load == "c100 p1 100B"
            || c.load == "1000000 items"
            || c.load.starts_with("Zipf")));
        assert_eq!(Goal::AtMost(1.0).text(), "≤ 1");
    }

    #[test]
    fn tls_checks_compare_node_with_memcached_z() {
        let row = |load: Load| Row {
            load,
            figures: vec![
                fig(Kind::MemcachedTls, 100.0, Some(1000.0), 50.0, 200.0),
                fig(Kind::NodeTls, 90.0, Some(1100.0), 40.0, 250.0),
                fig(Kind::ProxyTls, 60.0, Some(500.0), 80.0, 300.0),
            ],
        };
        let rows: Vec<Row> = tls_loads().into_iter().map(row).collect();
        let c = tls_checks(&rows);
        assert_eq!(c.len(), 4);
        for check in &c {
            assert_eq!(check.what, "node tls / memcached -Z, ops per server CPU-s");
            assert!((check.ratio.expect("ratio") - 1.1).abs() < 1e-9);
            assert_eq!(check.met(), Some(false), "1.1 is under 1.2");
        }
        // The plain matrix's goals find no plain targets in TLS rows: no verdict at all.
        assert!(checks(&rows, &[], None).iter().all(|c| c.ratio.is_none()));
    }

    #[test]
    fn figures_from_a_report() {
        use crate::report::{Counts, RunSummary};
        let mut h = report::new_histogram();
        for v in 1..=1000u64 {
            h.saturating_record(v);
        }
        let mk = |t: &str, i: usize, round: usize, ops: u64| {
            RunSummary::new(
                t,
                i,
                round,
                1.0,
                Counts {
                    ops,
                    ..Counts::default()
                },
                Counts::default(),
                &h,
                None,
            )
        };
        let runs = vec![
            mk("a", 0, 1, 10),
            mk("b", 1, 1, 30),
            mk("a", 0, 2, 20),
            mk("b", 1, 2, 50),
        ];
        let targets = report::summarize_targets(&["a".into(), "b".into()], &runs);
        let rep = BenchReport {
            config: serde_json::Value::Null,
            prefill: vec![],
            runs,
            targets,
        };
        let f = figures(&rep, &[Kind::Memcached, Kind::Node]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].kind, Kind::Node);
        assert!((f[0].ops_per_sec - 15.0).abs() < 1e-9);
        assert!((f[1].ops_per_sec - 40.0).abs() < 1e-9);
        assert!((f[0].p999_us - 999.0).abs() <= 2.0, "{}", f[0].p999_us);
    }
}
