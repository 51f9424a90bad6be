//! The rebalance scenario: load a 3-server cluster, then grow it to 4 while reading every loaded
//! key over and over, and record per second the share of keys that came back with the value
//! that was written. Whatever the system does on a membership change (move data, or not) shows
//! up as that share over time.
//!
//! Reads are 100-key text `get`s on one connection through the proxy (or nutcracker); a read
//! that fails (connection refused while a proxy restarts, a timeout) counts its keys as asked
//! and not read back.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ringcache_client::protocol::{GetCmd, Request, Response};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::driver::{self, DriverOptions};
use crate::error::{BenchError, Result};
use crate::workload::{Workload, WorkloadSpec};

/// Keys per read request.
const BATCH: usize = 100;

/// One second of reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Point {
    /// Start of the one-second bucket, seconds since reading began.
    pub t_s: f64,
    /// Keys asked for in this second.
    pub asked: u64,
    /// Keys that came back with the value written.
    pub correct: u64,
}

impl Point {
    /// `correct / asked`, `None` when nothing was asked.
    pub fn ratio(&self) -> Option<f64> {
        (self.asked > 0).then(|| self.correct as f64 / self.asked as f64)
    }
}

/// What one system did during the rebalance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    pub system: String,
    /// When membership changed, seconds since reading began.
    pub change_at_s: f64,
    pub points: Vec<Point>,
    /// How the change was made.
    pub how: String,
    /// `cmd_get` and `curr_items` of the added server at the end: whether the system used it.
    pub new_server_gets: Option<u64>,
    pub new_server_items: Option<u64>,
}

impl Series {
    /// Hit ratio over all the seconds before the change.
    pub fn before(&self) -> Option<f64> {
        pooled(
            self.points
                .iter()
                .filter(|p| p.t_s + 1.0 <= self.change_at_s),
        )
    }

    /// Lowest per-second hit ratio after the change.
    pub fn lowest_after(&self) -> Option<f64> {
        self.points
            .iter()
            .filter(|p| p.t_s + 1.0 > self.change_at_s)
            .filter_map(Point::ratio)
            .reduce(f64::min)
    }

    /// Hit ratio over the last `n` seconds.
    pub fn last(&self, n: usize) -> Option<f64> {
        pooled(self.points.iter().rev().take(n))
    }
}

fn pooled<'a>(pts: impl Iterator<Item = &'a Point>) -> Option<f64> {
    let (a, c) = pts.fold((0u64, 0u64), |(a, c), p| (a + p.asked, c + p.correct));
    Point {
        t_s: 0.0,
        asked: a,
        correct: c,
    }
    .ratio()
}

/// Adds `asked`/`correct` keys to the bucket of the second `at` falls in.
pub fn record(points: &mut Vec<Point>, at: Duration, asked: u64, correct: u64) {
    let i = at.as_secs() as usize;
    while points.len() <= i {
        let t = points.len() as f64;
        points.push(Point {
            t_s: t,
            ..Point::default()
        });
    }
    points[i].asked += asked;
    points[i].correct += correct;
}

/// The 20 000 keys (16 bytes, prefix `r`) of 100-byte values the scenario loads and reads.
pub fn workload(keys: u64) -> Result<Arc<Workload>> {
    Ok(Arc::new(Workload::new(WorkloadSpec {
        keys,
        key_prefix: "r".into(),
        ..WorkloadSpec::default()
    })?))
}

/// Writes every key of `w` through `addr` (the bench's prefill: 4 connections, 32 in flight).
pub async fn load(addr: &str, w: &Arc<Workload>) -> Result<u64> {
    let opts = DriverOptions {
        connections: 4,
        pipeline: 32,
        ..DriverOptions::default()
    };
    let r = driver::prefill(addr, w, &opts).await?;
    if let Some(e) = r.first_error {
        eprintln!("rebalance load through {addr}: {e}");
    }
    Ok(r.counts.sets - r.counts.errors)
}

/// Reads every key of `w` through `addr` round and round for `total`, bucketing per second.
/// Runs until `total` has passed; every I/O is bounded by a 1 s timeout.
pub async fn read_loop(addr: String, w: Arc<Workload>, total: Duration) -> Vec<Point> {
    let start = Instant::now();
    let end = start + total;
    let keys: Vec<Bytes> = (0..w.spec().keys).map(|i| w.key(i)).collect();
    let want = w.value(w.spec().value_size.max);
    let mut points = Vec::new();
    let mut conn: Option<TcpStream> = None;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::with_capacity(4096);
    'outer: while Instant::now() < end {
        for chunk in keys.chunks(BATCH) {
            if Instant::now() >= end {
                break 'outer;
            }
            let stream = match conn.as_mut() {
                Some(s) => s,
                None => {
                    match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(&addr))
                        .await
                    {
                        Ok(Ok(s)) => {
                            let _ = s.set_nodelay(true);
                            buf.clear();
                            conn.insert(s)
                        }
                        _ => {
                            record(&mut points, start.elapsed(), chunk.len() as u64, 0);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                }
            };
            out.clear();
            Request::Get {
                cmd: GetCmd::Get,
                exptime: None,
                keys: chunk.to_vec(),
            }
            .encode(&mut out);
            let reply =
                tokio::time::timeout(Duration::from_secs(1), exchange(stream, &out, &mut buf))
                    .await;
            match reply {
                Ok(Ok(values)) => {
                    let correct = values
                        .iter()
                        .filter(|v| v.data == want && chunk.contains(&v.key))
                        .count();
                    record(
                        &mut points,
                        start.elapsed(),
                        chunk.len() as u64,
                        correct as u64,
                    );
                }
                _ => {
                    record(&mut points, start.elapsed(), chunk.len() as u64, 0);
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    // A last second cut short by the end holds only a few reads: leave it out.
    points.truncate(whole_seconds(total));
    points
}

/// The whole one-second buckets in `total`.
pub fn whole_seconds(total: Duration) -> usize {
    total.as_secs() as usize
}

/// Sends one request and reads its `VALUE … END` reply.
async fn exchange(
    s: &mut TcpStream,
    req: &[u8],
    buf: &mut BytesMut,
) -> std::io::Result<Vec<ringcache_client::protocol::Value>> {
    s.write_all(req).await?;
    loop {
        match Response::parse(buf) {
            Ok(Some(Response::Values(v))) => return Ok(v),
            Ok(Some(other)) => {
                return Err(std::io::Error::other(format!("unexpected reply {other:?}")))
            }
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::other(e.to_string())),
        }
        buf.reserve(16 * 1024);
        if s.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Loads `w` through `addr`, reads for `total`, and calls `change` (which grows the cluster) at
/// `change_at`. `change` runs on the calling task while the reader runs on another.
pub async fn run<F>(
    system: &str,
    how: &str,
    addr: &str,
    w: &Arc<Workload>,
    total: Duration,
    change_at: Duration,
    change: F,
) -> Result<Series>
where
    F: FnOnce() -> Result<()>,
{
    let loaded = load(addr, w).await?;
    if loaded != w.spec().keys {
        eprintln!(
            "rebalance {system}: only {loaded} of {} keys stored",
            w.spec().keys
        );
    }
    let reader = tokio::spawn(read_loop(addr.to_string(), Arc::clone(w), total));
    let started = Instant::now();
    tokio::time::sleep(change_at).await;
    let changed_at = started.elapsed();
    let changed = change();
    let points = reader
        .await
        .map_err(|e| BenchError::Io(std::io::Error::other(format!("reader failed: {e}"))))?;
    changed?;
    Ok(Series {
        system: system.to_string(),
        change_at_s: changed_at.as_secs_f64(),
        points,
        how: how.to_string(),
        new_server_gets: None,
        new_server_items: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_per_second_and_summaries() {
        let mut pts = Vec::new();
        record(&mut pts, Duration::from_millis(100), 100, 100);
        record(&mut pts, Duration::from_millis(900), 100, 100);
        record(&mut pts, Duration::from_millis(2500), 100, 75);
        record(&mut pts, Duration::from_millis(3100), 100, 50);
        record(&mut pts, Duration::from_millis(4100), 100, 100);
        assert_eq!(pts.len(), 5);
        assert_eq!(pts[0].asked, 200);
        assert_eq!(pts[1].ratio(), None, "an empty second has no ratio");
        assert_eq!(pts[2].t_s, 2.0);
        let s = Series {
            system: "x".into(),
            change_at_s: 2.0,
            points: pts,
            how: String::new(),
            new_server_gets: None,
            new_server_items: None,
        };
        assert_eq!(s.before(), Some(1.0));
        assert_eq!(s.lowest_after(), Some(0.5));
        assert_eq!(s.last(2), Some(0.75));
        assert_eq!(whole_seconds(Duration::from_millis(15_000)), 15);
        assert_eq!(whole_seconds(Duration::from_millis(6_900)), 6);
    }
}
