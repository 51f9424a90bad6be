//! The run: rounds of one case per worker connection sent at once, the cluster checked after
//! each, and a failing round turned into a finding.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::case::{all_cases, run_case, show_long, Sent};
use super::gen::Gen;
use super::shrink::{fails_alone, minimize, reset};
use super::target::{check_cluster, Target};
use super::SessionFuzzArgs;
use crate::error::{BenchError, Result};
use crate::harness::{Canaries, Wire};

/// A failure with the bytes that cause it.
#[derive(Debug)]
pub struct Finding {
    pub what: String,
    pub case: Vec<u8>,
    /// Whether replaying the case alone reproduced it.
    pub reproduced: bool,
}

/// Totals of a run.
#[derive(Debug, Default)]
pub struct Summary {
    pub seed: u64,
    pub cases: u64,
    pub rounds: u64,
    pub elapsed: Duration,
    pub findings: Vec<Finding>,
    /// Canary misses the proxy counted as partial multi-gets (an owner timed out) that read
    /// back when asked again: reported, not findings.
    pub excused: u64,
}

/// Runs cases round after round until the duration, the case count or the failure limit is
/// reached; a failing round is blamed on one case where one fails alone.
pub fn run(a: &SessionFuzzArgs) -> Result<Summary> {
    let seed = a.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!("session-fuzz: seed {seed}");
    let t = Target::open(a)?;
    let canaries = Canaries::new(&format!("{:x}", seed & 0xffff), a.canaries.max(1));
    let mut flush_base = reset(&t, &canaries)?;
    let mut witnesses = (0..a.witnesses)
        .map(|_| Wire::connect(&t.proxy).map_err(BenchError::from))
        .collect::<Result<Vec<_>>>()?;
    let mut workers: Vec<Option<Wire>> = (0..a.connections.max(1)).map(|_| None).collect();
    let mut checker = None;
    let mut gen = Gen::new(seed);
    let mut s = Summary {
        seed,
        ..Summary::default()
    };
    let start = Instant::now();
    let mut last_note = Instant::now();
    while start.elapsed() < a.duration && s.cases < a.cases && s.findings.len() < a.max_failures {
        // One case per worker, sent at the same time from their own threads.
        let cases: Vec<Vec<u8>> = workers.iter().map(|_| gen.case("sf")).collect();
        for w in workers.iter_mut() {
            if w.is_none() {
                *w = Wire::connect(&t.proxy).ok();
            }
        }
        let sent: Vec<Sent> = std::thread::scope(|sc| {
            let handles: Vec<_> = workers
                .iter_mut()
                .zip(&cases)
                .map(|(w, case)| {
                    sc.spawn(move || {
                        let Some(conn) = w.as_mut() else {
                            return Sent {
                                case: case.clone(),
                                problem: Some("cannot connect to the proxy".into()),
                            };
                        };
                        let (problem, usable) = run_case(conn, case, "sf");
                        if !usable {
                            *w = None;
                        }
                        Sent {
                            case: case.clone(),
                            problem,
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Sent {
                        case: Vec::new(),
                        problem: Some("worker thread panicked".into()),
                    })
                })
                .collect()
        });
        s.cases += sent.len() as u64;
        s.rounds += 1;
        let cluster = check_cluster(
            &t,
            &canaries,
            &mut checker,
            &mut witnesses,
            &flush_base,
            &mut s.excused,
        );
        let own: Vec<&Sent> = sent.iter().filter(|x| x.problem.is_some()).collect();
        if cluster.is_ok() && own.is_empty() {
            if last_note.elapsed() > Duration::from_secs(10) {
                eprintln!(
                    "session-fuzz: {} cases, {} rounds, {} failures, {:.0} s",
                    s.cases,
                    s.rounds,
                    s.findings.len(),
                    start.elapsed().as_secs_f64()
                );
                last_note = Instant::now();
            }
            continue;
        }
        let what = [
            cluster.err(),
            own.first()
                .and_then(|x| x.problem.clone().map(|p| format!("case connection: {p}"))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ");
        eprintln!("session-fuzz: round {} failed: {what}", s.rounds);
        // A control first: the same wait and checks with a harmless `mn`. If that fails too,
        // the cluster is failing on its own (nodes marked down and flushed again and again, a
        // backend connection out of step) and no case can be blamed: report it and stop.
        if let Ok(Some(why)) = fails_alone(&t, &canaries, b"mn\r\n") {
            eprintln!("session-fuzz: the cluster fails with no input at all: {why}");
            s.findings.push(Finding {
                what: format!(
                    "{what}; afterwards the cluster fails on its own, with no input ({why})"
                ),
                case: all_cases(&sent),
                reproduced: false,
            });
            break;
        }
        // Find the culprit: each case alone, the own-connection culprits first.
        let mut order: Vec<&Sent> = own.clone();
        order.extend(sent.iter().filter(|x| x.problem.is_none()));
        let mut finding = None;
        for x in order {
            if let Ok(Some(why)) = fails_alone(&t, &canaries, &x.case) {
                let small = minimize(&t, &canaries, &x.case, Duration::from_secs(60));
                finding = Some(Finding {
                    what: why,
                    case: small,
                    reproduced: true,
                });
                break;
            }
        }
        let f = finding.unwrap_or_else(|| Finding {
            what,
            case: all_cases(&sent),
            reproduced: false,
        });
        eprintln!(
            "session-fuzz: finding ({}): {}\n  case: {}",
            if f.reproduced {
                "reproduced alone"
            } else {
                "not reproduced alone; the whole round"
            },
            f.what,
            show_long(&f.case)
        );
        s.findings.push(f);
        flush_base = match reset(&t, &canaries) {
            Ok(b) => b,
            Err(e) => {
                // Nothing after this would be meaningful: report it and stop.
                s.findings.push(Finding {
                    what: format!("after that round {e}"),
                    case: Vec::new(),
                    reproduced: false,
                });
                break;
            }
        };
        for w in witnesses.iter_mut() {
            *w = Wire::connect(&t.proxy)?;
        }
        checker = None;
    }
    s.elapsed = start.elapsed();
    Ok(s)
}
