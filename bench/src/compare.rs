//! One bench invocation from start to finish: prefill, then A B A B … rounds, then medians.
//!
//! The machine this runs on is shared and noisy, so comparing two targets by running one for a
//! minute and then the other measures the drift as much as the targets. Instead each round runs
//! every target once, in command-line order, with the same seed (so the same ops), and the
//! figures that matter are the per-target medians over rounds and their ratio to the first
//! target. With one target and one round this is simply a single run.

use std::sync::Arc;

use crate::args::Args;
use crate::driver;
use crate::error::Result;
use crate::report::{self, BenchReport, PrefillSummary, RunSummary};
use crate::workload::Workload;

/// Runs everything `args` asks for and returns the report (nothing is written to files here).
pub async fn run(args: &Args) -> Result<BenchReport> {
    args.validate()?;
    let workload = Arc::new(Workload::new(args.workload_spec())?);
    let opts = args.driver_options();
    let mut prefill = Vec::new();
    if args.prefill {
        for t in &args.targets {
            let r = driver::prefill(t, &workload, &opts).await?;
            if let Some(e) = &r.first_error {
                eprintln!("prefill {t}: connection fault: {e}");
            }
            let p = PrefillSummary {
                target: t.clone(),
                elapsed_s: r.elapsed.as_secs_f64(),
                counts: r.counts,
            };
            if !args.quiet {
                eprintln!(
                    "prefill {t}: {} sets in {:.2}s, {} errors",
                    p.counts.sets,
                    p.elapsed_s,
                    p.counts.all_errors()
                );
            }
            prefill.push(p);
        }
    }
    let mut runs = Vec::with_capacity(args.rounds * args.targets.len());
    for round in 1..=args.rounds {
        for (i, t) in args.targets.iter().enumerate() {
            let r = driver::run_load(t, &workload, &opts, &args.pids_for(i)).await?;
            if let Some(e) = &r.first_error {
                eprintln!("{t}: connection fault: {e}");
            }
            let mut s = RunSummary::new(
                t,
                i,
                round,
                r.elapsed.as_secs_f64(),
                r.counts,
                r.warmup,
                &r.hist,
                r.cpu,
            );
            s.first_error = r.first_error;
            if !args.quiet {
                eprintln!("{}", round_line(&s));
            }
            runs.push(s);
        }
    }
    let targets = report::summarize_targets(&args.targets, &runs);
    Ok(BenchReport {
        config: serde_json::to_value(args)?,
        prefill,
        runs,
        targets,
    })
}

/// The one-line figures of a finished run.
pub fn round_line(s: &RunSummary) -> String {
    format!(
        "round {} {}: {:.0} ops/s, hit {}, errors {}, p50 {}us, p99 {}us, p99.9 {}us{}",
        s.round,
        s.target,
        s.ops_per_sec,
        s.hit_ratio
            .map_or("-".into(), |h| format!("{:.2}%", h * 100.0)),
        s.errors,
        s.latency_us.p50,
        s.latency_us.p99,
        s.latency_us.p999,
        s.cpu.as_ref().map_or(String::new(), |c| format!(
            ", server cpu {:.2}s, {} ops/cpu-s",
            c.seconds,
            c.ops_per_cpu_sec.map_or("-".into(), |v| format!("{v:.0}"))
        ))
    )
}
