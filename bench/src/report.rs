//! Turning counts and latency histograms into the figures a person reads: percentiles, medians
//! over rounds, ratios between targets, the final table and its JSON twin.
//!
//! Latencies are kept in `hdrhistogram`s in microseconds (1 µs .. 60 s, 3 significant digits).
//! Each connection records into its own histogram; they are merged once at the end, which is
//! exact (histogram addition), unlike averaging per-connection percentiles.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::cpu::CpuUsage;
use crate::error::{BenchError, Result};

/// Highest latency the histograms track, in microseconds (larger values saturate here).
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A fresh latency histogram (µs).
pub fn new_histogram() -> Histogram<u64> {
    // Constant bounds (low 1 ≥ 1, high ≥ 2 × low, 3 significant digits ≤ 5): cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("constant histogram bounds are valid")
}

/// Adds all `parts` into one histogram.
pub fn merge<'a>(parts: impl IntoIterator<Item = &'a Histogram<u64>>) -> Result<Histogram<u64>> {
    let mut total = new_histogram();
    for h in parts {
        total
            .add(h)
            .map_err(|e| BenchError::Histogram(format!("{e:?}")))?;
    }
    Ok(total)
}

/// What the ops of a run amounted to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Ops that got their reply (including error replies).
    pub ops: u64,
    /// Get ops, and the keys they asked for (a get of N keys is one op and N keys).
    pub gets: u64,
    pub get_keys: u64,
    /// Keys that came back with a value.
    pub hits: u64,
    pub sets: u64,
    /// Ops answered with an error line or a reply of the wrong kind.
    pub errors: u64,
    /// Ops never answered: their connection failed or timed out.
    pub failed: u64,
    /// Connections lost and made again.
    pub reconnects: u64,
}

impl Counts {
    /// Adds one answered op: a get of `keys` keys of which `hits` came back, or a set; `error`
    /// when its reply was an error.
    pub fn answered(&mut self, is_get: bool, keys: u32, hits: u32, error: bool) {
        self.ops += 1;
        if is_get {
            self.gets += 1;
            self.get_keys += u64::from(keys);
            self.hits += u64::from(hits);
        } else {
            self.sets += 1;
        }
        if error {
            self.errors += 1;
        }
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counts) {
        self.ops += other.ops;
        self.gets += other.gets;
        self.get_keys += other.get_keys;
        self.hits += other.hits;
        self.sets += other.sets;
        self.errors += other.errors;
        self.failed += other.failed;
        self.reconnects += other.reconnects;
    }

    /// Hits per key asked for; `None` when no get was answered.
    pub fn hit_ratio(&self) -> Option<f64> {
        (self.get_keys > 0).then(|| self.hits as f64 / self.get_keys as f64)
    }

    /// Error replies plus ops never answered.
    pub fn all_errors(&self) -> u64 {
        self.errors + self.failed
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    /// The percentiles of `h` (all zero when it is empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            samples: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// One measured run against one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    pub target: String,
    /// Position of the target on the command line (the same address may be given twice).
    pub target_index: usize,
    /// 1-based round number (always 1 outside compare mode).
    pub round: usize,
    /// The measured window: from the end of warm-up until the last op was answered.
    pub elapsed_s: f64,
    pub ops_per_sec: f64,
    pub hit_ratio: Option<f64>,
    /// Error replies plus unanswered ops in the measured window.
    pub errors: u64,
    pub latency_us: Latency,
    /// Counts in the measured window.
    pub counts: Counts,
    /// Counts during warm-up (sent to the server, not measured).
    pub warmup: Counts,
    pub cpu: Option<CpuUsage>,
    /// The first connection fault of the run, if any (its ops are in `counts.failed`).
    pub first_error: Option<String>,
}

impl RunSummary {
    /// Builds the summary from a run's raw results.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: &str,
        target_index: usize,
        round: usize,
        elapsed_s: f64,
        counts: Counts,
        warmup: Counts,
        hist: &Histogram<u64>,
        cpu: Option<CpuUsage>,
    ) -> RunSummary {
        RunSummary {
            target: target.to_string(),
            target_index,
            round,
            elapsed_s,
            ops_per_sec: if elapsed_s > 0.0 {
                counts.ops as f64 / elapsed_s
            } else {
                0.0
            },
            hit_ratio: counts.hit_ratio(),
            errors: counts.all_errors(),
            latency_us: Latency::of(hist),
            counts,
            warmup,
            cpu,
            first_error: None,
        }
    }

    /// Ops per server CPU-second, when `--pids` was given and CPU time was measurable.
    pub fn ops_per_cpu_sec(&self) -> Option<f64> {
        self.cpu.as_ref().and_then(|c| c.ops_per_cpu_sec)
    }
}

/// The prefill pass against one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefillSummary {
    pub target: String,
    pub elapsed_s: f64,
    pub counts: Counts,
}

/// Medians of one target over its rounds, and their ratio to the first target's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSummary {
    pub target: String,
    pub rounds: usize,
    pub median_ops_per_sec: f64,
    pub median_p50_us: f64,
    pub median_p99_us: f64,
    pub median_ops_per_cpu_sec: Option<f64>,
    /// This target's median divided by the first target's (1.0 for the first target).
    pub ratio_ops_per_sec: Option<f64>,
    pub ratio_p99: Option<f64>,
    pub ratio_ops_per_cpu_sec: Option<f64>,
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// `value / base`, `None` when either is missing or the base is zero.
pub fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (value, base) {
        (Some(v), Some(b)) if b != 0.0 => Some(v / b),
        _ => None,
    }
}

/// Per-target medians over `runs`, in the order of `targets`, with ratios against the first.
pub fn summarize_targets(targets: &[String], runs: &[RunSummary]) -> Vec<TargetSummary> {
    let mut out: Vec<TargetSummary> = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mine: Vec<&RunSummary> = runs.iter().filter(|r| r.target_index == i).collect();
            let col = |f: &dyn Fn(&RunSummary) -> f64| {
                median(&mine.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let cpu: Vec<f64> = mine.iter().filter_map(|r| r.ops_per_cpu_sec()).collect();
            TargetSummary {
                target: t.clone(),
                rounds: mine.len(),
                median_ops_per_sec: col(&|r| r.ops_per_sec).unwrap_or(0.0),
                median_p50_us: col(&|r| r.latency_us.p50 as f64).unwrap_or(0.0),
                median_p99_us: col(&|r| r.latency_us.p99 as f64).unwrap_or(0.0),
                median_ops_per_cpu_sec: median(&cpu),
                ratio_ops_per_sec: None,
                ratio_p99: None,
                ratio_ops_per_cpu_sec: None,
            }
        })
        .collect();
    if let Some(first) = out.first().cloned() {
        for t in &mut out {
            t.ratio_ops_per_sec = ratio(Some(t.median_ops_per_sec), Some(first.median_ops_per_sec));
            t.ratio_p99 = ratio(Some(t.median_p99_us), Some(first.median_p99_us));
            t.ratio_ops_per_cpu_sec = ratio(t.median_ops_per_cpu_sec, first.median_ops_per_cpu_sec);
        }
    }
    out
}

/// Everything a bench invocation produced; `--json` writes exactly this.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// The knobs the run used.
    pub config: serde_json::Value,
    pub prefill: Vec<PrefillSummary>,
    pub runs: Vec<RunSummary>,
    pub targets: Vec<TargetSummary>,
}

impl BenchReport {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    /// The final human-readable table(s).
    pub fn render(&self) -> String {
        let mut s = String::new();
        for p in &self.prefill {
            let _ = writeln!(
                s,
                "prefill {}: {} sets in {:.2}s, {} errors",
                p.target,
                p.counts.sets,
                p.elapsed_s,
                p.counts.all_errors()
            );
        }
        let _ = writeln!(
            s,
            "{:<22} {:>5} {:>11} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>11}",
            "target",
            "round",
            "ops/s",
            "hit%",
            "errors",
            "p50us",
            "p90us",
            "p99us",
            "p99.9us",
            "maxus",
            "cpu_s",
            "ops/cpu_s"
        );
        for r in &self.runs {
            let _ = writeln!(
                s,
                "{:<22} {:>5} {:>11.0} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>8} {:>7} {:>11}",
                r.target,
                r.round,
                r.ops_per_sec,
                pct(r.hit_ratio),
                r.errors,
                r.latency_us.p50,
                r.latency_us.p90,
                r.latency_us.p99,
                r.latency_us.p999,
                r.latency_us.max,
                r.cpu
                    .as_ref()
                    .map_or("-".to_string(), |c| format!("{:.2}", c.seconds)),
                opt0(r.ops_per_cpu_sec()),
            );
        }
        if self.runs.len() > 1 {
            let _ = writeln!(s, "\nmedians per target (ratio = target / first target):");
            let _ = writeln!(
                s,
                "{:<22} {:>6} {:>11} {:>8} {:>8} {:>11} {:>9} {:>9} {:>11}",
                "target",
                "rounds",
                "ops/s",
                "p50us",
                "p99us",
                "ops/cpu_s",
                "x ops/s",
                "x p99",
                "x ops/cpu"
            );
            for t in &self.targets {
                let _ = writeln!(
                    s,
                    "{:<22} {:>6} {:>11.0} {:>8.0} {:>8.0} {:>11} {:>9} {:>9} {:>11}",
                    t.target,
                    t.rounds,
                    t.median_ops_per_sec,
                    t.median_p50_us,
                    t.median_p99_us,
                    opt0(t.median_ops_per_cpu_sec),
                    ratio_str(t.ratio_ops_per_sec),
                    ratio_str(t.ratio_p99),
                    ratio_str(t.ratio_ops_per_cpu_sec),
                );
            }
        }
        s
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{:.2}", v * 100.0))
}

fn opt0(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn ratio_str(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_histogram();
        for v in values {
            h.saturating_record(v);
        }
        h
    }

    /// Within hdrhistogram's 3-significant-digit resolution.
    fn close(got: u64, want: u64) -> bool {
        let tol = (want / 500).max(1);
        got.abs_diff(want) <= tol
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        // 1..=10_000 µs once each: p50 = 5000, p90 = 9000, p99 = 9900, p99.9 = 9990.
        let l = Latency::of(&hist_of(1..=10_000));
        assert_eq!(l.samples, 10_000);
        assert!(close(l.p50, 5_000), "p50 {}", l.p50);
        assert!(close(l.p90, 9_000), "p90 {}", l.p90);
        assert!(close(l.p99, 9_900), "p99 {}", l.p99);
        assert!(close(l.p999, 9_990), "p99.9 {}", l.p999);
        assert!(close(l.max, 10_000), "max {}", l.max);
        assert!((l.mean - 5_000.5).abs() < 10.0, "mean {}", l.mean);
        // A bimodal one: 99% at 100 µs, 1% at 50 ms.
        let l = Latency::of(&hist_of(
            std::iter::repeat_n(100, 9_900).chain(std::iter::repeat_n(50_000, 100)),
        ));
        assert!(close(l.p50, 100) && close(l.p90, 100) && close(l.p99, 100));
        assert!(close(l.p999, 50_000), "p99.9 {}", l.p999);
        assert_eq!(Latency::of(&new_histogram()), Latency::default());
    }

    #[test]
    fn saturates_instead_of_failing() {
        let l = Latency::of(&hist_of([MAX_LATENCY_US * 10, 0]));
        assert!(l.max >= MAX_LATENCY_US && l.max <= MAX_LATENCY_US + MAX_LATENCY_US / 500);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let a = hist_of(1..=5_000);
        let b = hist_of(5_001..=10_000);
        let c = hist_of(std::iter::empty());
        let merged = merge([&a, &b, &c]).expect("merge");
        let whole = hist_of(1..=10_000);
        assert_eq!(Latency::of(&merged), Latency::of(&whole));
        // The merge is not just the larger part: p50 of the halves is 2500 and 7500.
        assert!(close(Latency::of(&merged).p50, 5_000));
    }

    #[test]
    fn median_and_ratio() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN, 9.0, 5.0]), Some(5.0));
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }

    fn run(target: &str, round: usize, ops_per_sec: f64, p99: u64, cpu: Option<f64>) -> RunSummary {
        let counts = Counts {
            ops: (ops_per_sec * 2.0) as u64,
            ..Counts::default()
        };
        let index = usize::from(target == "b");
        let mut r = RunSummary::new(
            target,
            index,
            round,
            2.0,
            counts,
            Counts::default(),
            &hist_of([p99]),
            None,
        );
        r.latency_us.p99 = p99;
        r.cpu = cpu.map(|c| CpuUsage {
            pids: vec![1],
            seconds: 1.0,
            ops_per_cpu_sec: Some(c),
        });
        r
    }

    #[test]
    fn compare_mode_medians_and_ratios() {
        let runs = vec![
            run("a", 1, 100.0, 10, Some(1000.0)),
            run("b", 1, 150.0, 30, Some(3000.0)),
            run("a", 2, 300.0, 20, Some(2000.0)),
            run("b", 2, 250.0, 10, Some(1000.0)),
            run("a", 3, 200.0, 40, Some(4000.0)),
            run("b", 3, 600.0, 20, Some(2000.0)),
        ];
        let t = summarize_targets(&["a".into(), "b".into()], &runs);
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].rounds, t[1].rounds), (3, 3));
        assert!((t[0].median_ops_per_sec - 200.0).abs() < 1e-9);
        assert!((t[1].median_ops_per_sec - 250.0).abs() < 1e-9);
        assert_eq!(t[0].median_p99_us, 20.0);
        assert_eq!(t[1].median_p99_us, 20.0);
        assert_eq!(t[0].median_ops_per_cpu_sec, Some(2000.0));
        assert_eq!(t[1].median_ops_per_cpu_sec, Some(2000.0));
        assert_eq!(t[0].ratio_ops_per_sec, Some(1.0));
        assert!((t[1].ratio_ops_per_sec.unwrap_or(0.0) - 1.25).abs() < 1e-9);
        assert_eq!(t[1].ratio_p99, Some(1.0));
        assert_eq!(t[1].ratio_ops_per_cpu_sec, Some(1.0));
        // Without CPU figures the CPU ratio is absent, not zero.
        let t = summarize_targets(&["a".into()], &[run("a", 1, 1.0, 1, None)]);
        assert_eq!(t[0].median_ops_per_cpu_sec, None);
        assert_eq!(t[0].ratio_ops_per_cpu_sec, None);
    }

    #[test]
    fn summary_and_rendering() {
        let counts = Counts {
            ops: 1000,
            gets: 900,
            get_keys: 1800,
            hits: 900,
            sets: 100,
            errors: 2,
            failed: 3,
            reconnects: 1,
        };
        let r = RunSummary::new(
            "127.0.0.1:1",
            0,
            1,
            2.0,
            counts,
            Counts::default(),
            &hist_of(1..=100),
            None,
        );
        assert_eq!(r.ops_per_sec, 500.0);
        assert_eq!(r.hit_ratio, Some(0.5));
        assert_eq!(r.errors, 5);
        let report = BenchReport {
            config: serde_json::json!({"connections": 1}),
            prefill: vec![],
            runs: vec![r.clone(), r],
            targets: vec![],
        };
        let table = report.render();
        assert!(table.contains("ops/s") && table.contains("50.00") && table.contains("medians"));
        let json: serde_json::Value =
            serde_json::from_str(&report.to_json().expect("json")).expect("valid json");
        assert_eq!(json["runs"][0]["counts"]["get_keys"], 1800);
        assert_eq!(json["runs"][0]["latency_us"]["p50"], 50);
        assert_eq!(json["config"]["connections"], 1);
    }
}
