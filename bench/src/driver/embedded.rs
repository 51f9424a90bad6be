//! The embedded-client target: `embedded:ADDR1,ADDR2,…[?replicas=N]` drives
//! [`ringcache_client::Client`] in-process instead of speaking the text protocol over TCP, so the
//! bench measures what an application linking the client gets (no proxy hop).
//!
//! The workload knobs mean the same as for a TCP target where they apply: `--connections` is the
//! number of load tasks sharing one `Client` (the client keeps its own pipelined connections per
//! node), `--pipeline` is the number of requests each task keeps in flight at once, `--ratio`,
//! `--multiget` (one `get_many` of N keys), keys, values, distribution, seed, `--duration`,
//! `--warmup`, `--requests` and `--prefill` are honoured. `--protocol` does not apply (the client
//! picks its own wire form) and `--rate` (open loop) is refused.
//!
//! CPU accounting: the bench process is the client here, so `--pids` should name the *nodes*;
//! ops per CPU-second is then ops per node CPU-second.
//!
//! Counting follows the TCP driver: an op that got an answer counts in `ops` (a server error or a
//! multi-get with some keys unreadable also in `errors`); an op that failed for want of an answer
//! (timeout, closed connection, no live replica) counts in `failed` only.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use ringcache_client::{Client, Error as ClientError};
use tokio::time::Instant;

use super::{
    join, measure, ConnResult, DriverOptions, Load, LoadResult, PrefillResult, Source, Tickets,
    PREFILL_MAX,
};
use crate::error::{BenchError, Result};
use crate::report::{self, Counts};
use crate::workload::{Op, Workload};

/// What a target must start with to be driven through the embedded client.
pub const PREFIX: &str = "embedded:";

/// A parsed `embedded:` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedTarget {
    /// Node addresses, `HOST:PORT`.
    pub nodes: Vec<String>,
    /// Copies of each key (the client's `replicas`).
    pub replicas: usize,
}

impl fmt::Display for EmbeddedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.nodes.join(","))?;
        if self.replicas != 1 {
            write!(f, "?replicas={}", self.replicas)?;
        }
        Ok(())
    }
}

/// `None` when `target` is a plain `HOST:PORT`; otherwise the embedded target or why it is
/// malformed.
pub fn parse(target: &str) -> Option<Result<EmbeddedTarget>> {
    target.strip_prefix(PREFIX).map(parse_rest)
}

fn parse_rest(rest: &str) -> Result<EmbeddedTarget> {
    let bad = |m: String| BenchError::InvalidArg(format!("target {PREFIX}{rest}: {m}"));
    let (list, query) = match rest.split_once('?') {
        Some((l, q)) => (l, Some(q)),
        None => (rest, None),
    };
    let nodes: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if nodes.is_empty() {
        return Err(bad("no node addresses".into()));
    }
    let mut replicas = 1;
    for kv in query.into_iter().flat_map(|q| q.split('&')) {
        match kv.split_once('=') {
            Some(("replicas", v)) => {
                replicas = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| bad(format!("replicas {v:?} is not a number >= 1")))?;
            }
            _ => return Err(bad(format!("unknown option {kv:?} (only replicas=N)"))),
        }
    }
    Ok(EmbeddedTarget { nodes, replicas })
}

/// Builds the client and checks every node answers, so an unreachable node fails the run at
/// start as it does for a TCP target.
async fn connect(t: &EmbeddedTarget, opts: &DriverOptions) -> Result<Client> {
    let conn_err = |target: String, e: ClientError| BenchError::Connect {
        target,
        source: std::io::Error::other(e.to_string()),
    };
    let client = Client::builder()
        .nodes(t.nodes.clone())
        .replicas(t.replicas)
        .connect_timeout(opts.timeout)
        .request_timeout(opts.timeout)
        .build()
        .await
        .map_err(|e| conn_err(t.to_string(), e))?;
    for (node, r) in client.version().await {
        r.map_err(|e| conn_err(node, e))?;
    }
    Ok(client)
}

/// What one op came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Outcome {
    is_get: bool,
    keys: u32,
    hits: u32,
    /// Answered, but with an error (or some keys of a multi-get unreadable).
    error: bool,
    /// Never answered.
    failed: bool,
}

/// Whether a client error means "answered with an error" (`true`) or "no answer" (`false`).
fn is_answered_error(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Server(_)
            | ClientError::Protocol(_)
            | ClientError::UnexpectedReply(_)
            | ClientError::InvalidKey(_)
    )
}

fn outcome_of_error(mut o: Outcome, e: &ClientError) -> (Outcome, String) {
    if is_answered_error(e) {
        o.error = true;
    } else {
        o.failed = true;
    }
    (o, e.to_string())
}

async fn exec(client: &Client, w: &Workload, op: Op) -> (Outcome, Option<String>) {
    match op {
        Op::Get { keys } if keys.len() == 1 => {
            let o = Outcome {
                is_get: true,
                keys: 1,
                ..Outcome::default()
            };
            match client.get(&w.key(keys[0])).await {
                Ok(item) => (
                    Outcome {
                        hits: u32::from(item.is_some()),
                        ..o
                    },
                    None,
                ),
                Err(e) => {
                    let (o, m) = outcome_of_error(o, &e);
                    (o, Some(m))
                }
            }
        }
        Op::Get { keys } => {
            let o = Outcome {
                is_get: true,
                keys: u32::try_from(keys.len()).unwrap_or(u32::MAX),
                ..Outcome::default()
            };
            let ks: Vec<Bytes> = keys.iter().map(|&k| w.key(k)).collect();
            match client.get_many(&ks).await {
                Ok(g) => {
                    let hits = g.items.iter().filter(|i| i.is_some()).count();
                    let o = Outcome {
                        hits: u32::try_from(hits).unwrap_or(u32::MAX),
                        error: g.errors > 0,
                        ..o
                    };
                    let msg = (g.errors > 0).then(|| format!("{} keys unreadable", g.errors));
                    (o, msg)
                }
                Err(e) => {
                    let (o, m) = outcome_of_error(o, &e);
                    (o, Some(m))
                }
            }
        }
        Op::Set { key, size } => match client.set(&w.key(key), w.value(size), 0, 0).await {
            Ok(()) => (Outcome::default(), None),
            Err(e) => {
                let (o, m) = outcome_of_error(Outcome::default(), &e);
                (o, Some(m))
            }
        },
        Op::Incr { key } => match client.incr(&w.key(key), 1).await {
            Ok(Some(_)) => (Outcome::default(), None),
            Ok(None) => (
                Outcome {
                    error: true,
                    ..Outcome::default()
                },
                Some("incr of a missing key".into()),
            ),
            Err(e) => {
                let (o, m) = outcome_of_error(Outcome::default(), &e);
                (o, Some(m))
            }
        },
    }
}

/// Adds one finished op to `c`.
fn count(c: &mut Counts, o: &Outcome) {
    if o.failed {
        c.failed += 1;
        return;
    }
    c.answered(o.is_get, o.keys, o.hits, o.error);
}

/// What the load tasks of one run share.
struct Shared {
    client: Client,
    workload: Arc<Workload>,
    pipeline: usize,
    measure_start: Instant,
    /// No op is started at or after this instant.
    end: Instant,
    /// In-flight ops still unanswered this long after `end` are counted as failed.
    drain: Duration,
    tickets: Tickets,
    /// Completed ops, for the progress line.
    live_ops: AtomicU64,
    live_errors: AtomicU64,
}

/// One load task: keeps up to `pipeline` ops in flight until the deadline, then drains.
async fn task(shared: Arc<Shared>, mut source: Source) -> ConnResult {
    let client = &shared.client;
    let w: &Workload = &shared.workload;
    let mut inflight = FuturesUnordered::new();
    let mut done = false;
    let mut out = ConnResult {
        counts: Counts::default(),
        warmup: Counts::default(),
        hist: report::new_histogram(),
        first_error: None,
    };
    let give_up = shared.end + shared.drain;
    loop {
        while !done && inflight.len() < shared.pipeline {
            let now = Instant::now();
            if now >= shared.end {
                done = true;
                break;
            }
            let measured = now >= shared.measure_start;
            if measured && !shared.tickets.take() {
                done = true;
                break;
            }
            let Some(op) = source.next() else {
                done = true;
                break;
            };
            inflight.push(async move {
                let r = exec(client, w, op).await;
                (now, measured, r)
            });
        }
        if inflight.is_empty() {
            break;
        }
        match tokio::time::timeout_at(give_up, inflight.next()).await {
            Ok(Some((start, measured, (o, msg)))) => {
                let now = Instant::now();
                let bucket = if measured {
                    &mut out.counts
                } else {
                    &mut out.warmup
                };
                count(bucket, &o);
                if measured && !o.failed {
                    let us = now.saturating_duration_since(start).as_micros();
                    out.hist
                        .saturating_record(u64::try_from(us).unwrap_or(u64::MAX));
                }
                shared.live_ops.fetch_add(1, Ordering::Relaxed);
                if o.error || o.failed {
                    shared.live_errors.fetch_add(1, Ordering::Relaxed);
                }
                if out.first_error.is_none() {
                    out.first_error = msg;
                }
            }
            Ok(None) => break,
            Err(_) => {
                // Bounded drain: whatever is still in flight never got its answer.
                out.counts.failed += inflight.len() as u64;
                if out.first_error.is_none() {
                    out.first_error = Some("ops still unanswered after the drain".into());
                }
                break;
            }
        }
    }
    out
}

/// One progress line a second on stderr (ops/s and errors of the last second).
async fn progress(shared: Arc<Shared>, label: String, start: Instant) {
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(start + second, second);
    let (mut ops0, mut err0) = (0u64, 0u64);
    let stop = shared.end + shared.drain;
    while Instant::now() < stop {
        let t = tick.tick().await;
        let ops = shared.live_ops.load(Ordering::Relaxed);
        let errors = shared.live_errors.load(Ordering::Relaxed);
        eprintln!(
            "[{:>4}s] {} {:>10} ops/s  errors {}{}",
            t.saturating_duration_since(start).as_secs(),
            label,
            ops - ops0,
            errors - err0,
            if t.checked_sub(second).unwrap_or(start) < shared.measure_start {
                "  (warmup)"
            } else {
                ""
            }
        );
        (ops0, err0) = (ops, errors);
    }
}

#[allow(clippy::too_many_arguments)]
fn shared(
    client: Client,
    workload: &Arc<Workload>,
    pipeline: usize,
    measure_start: Instant,
    end: Instant,
    drain: Duration,
    requests: Option<u64>,
) -> Arc<Shared> {
    Arc::new(Shared {
        client,
        workload: Arc::clone(workload),
        pipeline,
        measure_start,
        end,
        drain,
        tickets: Tickets::new(requests),
        live_ops: AtomicU64::new(0),
        live_errors: AtomicU64::new(0),
    })
}

/// [`crate::driver::run_load`] for an embedded target.
pub(crate) async fn run_load(t: &EmbeddedTarget, load: Load<'_>) -> Result<LoadResult> {
    let (workload, opts, pids) = (load.workload, load.opts, load.pids);
    if opts.rate.is_some() {
        return Err(BenchError::InvalidArg(
            "--rate (open loop) is not supported for embedded: targets".into(),
        ));
    }
    let client = connect(t, opts).await?;
    let start = Instant::now();
    let measure_start = start + opts.warmup;
    let sh = shared(
        client,
        workload,
        opts.pipeline,
        measure_start,
        measure_start + opts.duration,
        opts.timeout * 2,
        opts.requests,
    );
    let handles: Vec<_> = (0..opts.connections)
        .map(|i| {
            let source = Source::Random(workload.generator(i as u64));
            tokio::spawn(task(Arc::clone(&sh), source))
        })
        .collect();
    let prog = opts
        .progress
        .then(|| tokio::spawn(progress(Arc::clone(&sh), t.to_string(), start)));
    measure(handles, measure_start, pids, prog).await
}

/// [`crate::driver::prefill`] for an embedded target: every key set once, by
/// `min(connections, keys)` tasks with at least 32 sets in flight each.
pub(crate) async fn prefill(t: &EmbeddedTarget, load: Load<'_>) -> Result<PrefillResult> {
    let (workload, opts) = (load.workload, load.opts);
    let tasks = load.prefill_tasks();
    let client = connect(t, opts).await?;
    let start = Instant::now();
    let sh = shared(
        client,
        workload,
        opts.pipeline.max(32),
        start,
        start + PREFILL_MAX,
        opts.timeout * 2,
        None,
    );
    let handles: Vec<_> = (0..tasks)
        .map(|i| {
            let source = Source::prefill(workload, i, tasks);
            tokio::spawn(task(Arc::clone(&sh), source))
        })
        .collect();
    PrefillResult::gather(join(handles).await?, start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert!(parse("127.0.0.1:11211").is_none());
        let t = parse("embedded:127.0.0.1:1,127.0.0.1:2, 127.0.0.1:3")
            .expect("embedded")
            .expect("valid");
        assert_eq!(t.nodes, vec!["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]);
        assert_eq!(t.replicas, 1);
        assert_eq!(
            t.to_string(),
            "embedded:127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
        );
        let t = parse("embedded:a:1,b:2?replicas=2")
            .expect("embedded")
            .expect("valid");
        assert_eq!(t.replicas, 2);
        assert_eq!(t.to_string(), "embedded:a:1,b:2?replicas=2");
        for bad in [
            "embedded:",
            "embedded: , ",
            "embedded:a:1?replicas=0",
            "embedded:a:1?replicas=x",
            "embedded:a:1?hash=ketama",
        ] {
            assert!(parse(bad).expect("embedded").is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_outcomes_like_the_tcp_driver() {
        let mut c = Counts::default();
        count(
            &mut c,
            &Outcome {
                is_get: true,
                keys: 10,
                hits: 7,
                error: true,
                failed: false,
            },
        );
        count(&mut c, &Outcome::default());
        count(
            &mut c,
            &Outcome {
                failed: true,
                ..Outcome::default()
            },
        );
        assert_eq!(
            c,
            Counts {
                ops: 2,
                gets: 1,
                get_keys: 10,
                hits: 7,
                sets: 1,
                errors: 1,
                failed: 1,
                reconnects: 0,
            }
        );
        assert!(is_answered_error(&ClientError::Server(
            ringcache_client::error::Refused::Client("x".into())
        )));
        assert!(!is_answered_error(&ClientError::Timeout("n".into())));
    }
}
