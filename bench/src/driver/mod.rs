//! Putting load on a target: the knobs, what a run measures, and the dispatch to the target's
//! driver — [`tcp`] for a server spoken to over TCP (node, proxy, memcached, twemproxy), and
//! [`embedded`] for `embedded:ADDR,…`, which drives `ringcache_client::Client` in-process.
//!
//! Both drivers take their ops from a [`Source`] and hand back one [`ConnResult`] per load task,
//! which [`LoadResult::gather`] sums, so the two report the same figures the same way.

pub mod embedded;
pub mod tcp;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::time::Instant;

use crate::cpu::{self, CpuSample, CpuUsage};
use crate::error::{BenchError, Result};
use crate::report::{self, Counts};
use crate::workload::{Op, OpGen, Workload};

pub use tcp::resolve;

/// The longest a prefill pass may take before it gives up on the keys not yet written.
pub const PREFILL_MAX: Duration = Duration::from_secs(600);

/// Knobs of the load itself (what to send is the [`Workload`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DriverOptions {
    pub connections: usize,
    /// Ops in flight per connection.
    pub pipeline: usize,
    /// Length of the measured window (a cap when `requests` is set).
    pub duration: Duration,
    /// Stop after this many measured ops (across all connections).
    pub requests: Option<u64>,
    /// Load applied before measuring starts.
    pub warmup: Duration,
    /// Open loop at this many ops per second in total; closed loop when `None`.
    pub rate: Option<f64>,
    /// Connect timeout, and the longest a connection with ops in flight may go without progress.
    pub timeout: Duration,
    /// Print a progress line per second on stderr.
    pub progress: bool,
    /// Speak TLS to TCP targets, trusting the CA certificates in this PEM file.
    pub tls_ca: Option<PathBuf>,
}

impl Default for DriverOptions {
    fn default() -> Self {
        DriverOptions {
            connections: 50,
            pipeline: 1,
            duration: Duration::from_secs(10),
            requests: None,
            warmup: Duration::ZERO,
            rate: None,
            timeout: Duration::from_secs(5),
            progress: false,
            tls_ca: None,
        }
    }
}

impl DriverOptions {
    /// Checks the knobs make sense together.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(BenchError::InvalidArg(m.into()));
        if self.connections == 0 {
            return bad("--connections must be at least 1");
        }
        if self.pipeline == 0 {
            return bad("--pipeline must be at least 1");
        }
        if self.duration.is_zero() {
            return bad("--duration must be positive");
        }
        if self.requests == Some(0) {
            return bad("--requests must be at least 1");
        }
        if self.timeout.is_zero() {
            return bad("--timeout must be positive");
        }
        if let Some(r) = self.rate {
            if !r.is_finite() || r <= 0.0 {
                return bad("--rate must be a positive number of ops per second");
            }
            // Interval per connection must be representable and not absurdly long.
            if self.connections as f64 / r > 3600.0 {
                return bad("--rate is too low for that many connections (over 1 h between ops)");
            }
        }
        Ok(())
    }
}

/// What one load run measured.
#[derive(Debug)]
pub struct LoadResult {
    /// Counts in the measured window.
    pub counts: Counts,
    /// Counts during warm-up.
    pub warmup: Counts,
    /// Latencies of measured ops (µs).
    pub hist: Histogram<u64>,
    /// From the end of warm-up to the last reply.
    pub elapsed: Duration,
    pub cpu: Option<CpuUsage>,
    /// The first connection fault seen, for the operator.
    pub first_error: Option<String>,
}

/// What a prefill pass did.
#[derive(Debug)]
pub struct PrefillResult {
    pub counts: Counts,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

/// Runs the load described by `workload` and `opts` against `target`; reads the CPU time of
/// `pids` around the measured window. A target spelled `embedded:ADDR,ADDR,…` is driven
/// in-process through `ringcache_client::Client` instead (see [`embedded`]).
pub async fn run_load(
    target: &str,
    workload: &Arc<Workload>,
    opts: &DriverOptions,
    pids: &[u32],
) -> Result<LoadResult> {
    opts.validate()?;
    if !pids.is_empty() {
        // Fail before loading the target if a pid is wrong.
        cpu::sample(pids)?;
    }
    let load = Load {
        workload,
        opts,
        pids,
    };
    match embedded::parse(target) {
        Some(t) => embedded::run_load(&t?, load).await,
        None => tcp::run_load(target, load).await,
    }
}

/// Writes every key of the workload once (sets, closed loop), spread over `opts.connections`
/// connections (or tasks) with at least 32 in flight each.
pub async fn prefill(
    target: &str,
    workload: &Arc<Workload>,
    opts: &DriverOptions,
) -> Result<PrefillResult> {
    opts.validate()?;
    let load = Load {
        workload,
        opts,
        pids: &[],
    };
    match embedded::parse(target) {
        Some(t) => embedded::prefill(&t?, load).await,
        None => tcp::prefill(target, load).await,
    }
}

/// A run as [`run_load`] and [`prefill`] hand it to the driver of the target's kind.
#[derive(Clone, Copy)]
pub(crate) struct Load<'a> {
    pub(crate) workload: &'a Arc<Workload>,
    pub(crate) opts: &'a DriverOptions,
    /// The processes whose CPU time is read around the measured window.
    pub(crate) pids: &'a [u32],
}

impl Load<'_> {
    /// How many connections (or tasks) a prefill uses: one per `--connections`, but no more
    /// than there are keys.
    pub(crate) fn prefill_tasks(&self) -> usize {
        (self.opts.connections as u64)
            .min(self.workload.spec().keys)
            .max(1) as usize
    }
}

/// Waits for every load task; a task that panicked fails the run.
pub(crate) async fn join(
    handles: Vec<tokio::task::JoinHandle<ConnResult>>,
) -> Result<Vec<ConnResult>> {
    let mut out = Vec::with_capacity(handles.len());
    let mut err = None;
    for h in handles {
        match h.await {
            Ok(r) => out.push(r),
            Err(e) => {
                err = Some(BenchError::Io(std::io::Error::other(format!(
                    "load task failed: {e}"
                ))))
            }
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Measures a run whose load tasks are `handles`: waits for the end of the warm-up at
/// `measure_start`, samples the CPU time of `pids` there and once the tasks are done, stops the
/// progress line, and sums the tasks' results.
pub(crate) async fn measure(
    handles: Vec<tokio::task::JoinHandle<ConnResult>>,
    measure_start: Instant,
    pids: &[u32],
    progress: Option<tokio::task::JoinHandle<()>>,
) -> Result<LoadResult> {
    tokio::time::sleep_until(measure_start).await;
    let before = if pids.is_empty() {
        None
    } else {
        cpu::sample(pids).ok()
    };
    let results = join(handles).await;
    let measure_end = Instant::now();
    if let Some(p) = progress {
        p.abort();
    }
    let window = match before {
        Some(b) => Some((b, cpu::sample(pids)?)),
        None if pids.is_empty() => None,
        None => {
            return Err(BenchError::Proc {
                pid: pids[0],
                reason: "a process went away during the run".into(),
            })
        }
    };
    LoadResult::gather(results?, measure_start, measure_end, window)
}

/// Where a connection's ops come from.
pub(crate) enum Source {
    /// The workload's random mix.
    Random(OpGen),
    /// Sets of keys `next, next+step, …` below `end` (prefill); sizes drawn from `sizes`.
    Sequence {
        next: u64,
        step: u64,
        end: u64,
        sizes: OpGen,
    },
}

impl Source {
    /// Task `i` of `tasks` in a prefill: every `tasks`-th key from `i`, each set once.
    pub(crate) fn prefill(workload: &Arc<Workload>, i: usize, tasks: usize) -> Source {
        Source::Sequence {
            next: i as u64,
            step: tasks as u64,
            end: workload.spec().keys,
            sizes: workload.generator((1 << 32) + i as u64),
        }
    }

    pub(crate) fn next(&mut self) -> Option<Op> {
        match self {
            Source::Random(g) => Some(g.next_op()),
            Source::Sequence {
                next,
                step,
                end,
                sizes,
            } => {
                if *next >= *end {
                    return None;
                }
                let key = *next;
                *next = next.saturating_add(*step);
                Some(Op::Set {
                    key,
                    size: sizes.next_size(),
                })
            }
        }
    }
}

/// What a load task (a connection, or an embedded-client task) hands back.
#[derive(Debug)]
pub(crate) struct ConnResult {
    pub(crate) counts: Counts,
    pub(crate) warmup: Counts,
    pub(crate) hist: Histogram<u64>,
    pub(crate) first_error: Option<String>,
}

/// The `--requests` budget a run's tasks share: each op measured takes a ticket.
#[derive(Debug)]
pub(crate) struct Tickets {
    limit: Option<u64>,
    issued: AtomicU64,
}

impl Tickets {
    pub(crate) fn new(limit: Option<u64>) -> Tickets {
        Tickets {
            limit,
            issued: AtomicU64::new(0),
        }
    }

    /// Takes one ticket; false when they are used up (never without a limit).
    pub(crate) fn take(&self) -> bool {
        match self.limit {
            None => true,
            Some(n) => self.issued.fetch_add(1, Ordering::Relaxed) < n,
        }
    }
}

impl PrefillResult {
    /// Sums the prefill tasks' results; `start` is when the pass began.
    pub(crate) fn gather(results: Vec<ConnResult>, start: Instant) -> Result<PrefillResult> {
        let mut counts = Counts::default();
        for r in &results {
            counts.add(&r.counts);
        }
        Ok(PrefillResult {
            counts,
            elapsed: start.elapsed(),
            first_error: results.into_iter().find_map(|r| r.first_error),
        })
    }
}

impl LoadResult {
    /// Sums the tasks' results over the measured window; `window` is the CPU times of the
    /// sampled processes at its start and end, when they were sampled.
    pub(crate) fn gather(
        results: Vec<ConnResult>,
        measure_start: Instant,
        measure_end: Instant,
        window: Option<(CpuSample, CpuSample)>,
    ) -> Result<LoadResult> {
        let ops = results.iter().map(|r| r.counts.ops).sum();
        let cpu = window.map(|(b, a)| CpuUsage::between(&b, &a, ops));
        let mut counts = Counts::default();
        let mut warmup = Counts::default();
        for r in &results {
            counts.add(&r.counts);
            warmup.add(&r.warmup);
        }
        let hist = report::merge(results.iter().map(|r| &r.hist))?;
        Ok(LoadResult {
            counts,
            warmup,
            hist,
            elapsed: measure_end.saturating_duration_since(measure_start),
            cpu,
            first_error: results.into_iter().find_map(|r| r.first_error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_options() {
        let ok = DriverOptions::default();
        assert!(ok.validate().is_ok());
        for bad in [
            DriverOptions {
                connections: 0,
                ..ok.clone()
            },
            DriverOptions {
                pipeline: 0,
                ..ok.clone()
            },
            DriverOptions {
                duration: Duration::ZERO,
                ..ok.clone()
            },
            DriverOptions {
                requests: Some(0),
                ..ok.clone()
            },
            DriverOptions {
                rate: Some(0.0),
                ..ok.clone()
            },
            DriverOptions {
                rate: Some(f64::NAN),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefill_source_covers_each_key_once() {
        let w = Arc::new(Workload::new(Default::default()).expect("workload"));
        let mut seen = vec![0u8; 1000];
        for i in 0..3u64 {
            let mut s = Source::Sequence {
                next: i,
                step: 3,
                end: 1000,
                sizes: w.generator(i),
            };
            for _ in 0..2000 {
                match s.next() {
                    Some(Op::Set { key, .. }) => seen[key as usize] += 1,
                    Some(op) => panic!("unexpected {op:?}"),
                    None => break,
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
    }
}
