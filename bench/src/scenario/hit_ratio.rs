//! Hit ratio under a skewed load: a cache-aside client (a multi-get; every miss then `set`)
//! drawing keys from a Zipf distribution, against a fresh server whose memory limit holds a
//! quarter of the working set. The first half of the requests warms the cache; the hit ratio is
//! of the second half. The same seed draws the same keys for every server, so the figures
//! differ only by what each server chose to keep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcache_client::protocol::Response;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::procs::{self, Proc};
use crate::error::{BenchError, Result};
use crate::workload::{Dist, ValueSize, Workload, WorkloadSpec};

/// The Zipf exponent of the load (issue 11: "Zipf 0.99").
pub const ZIPF_S: f64 = 0.99;
/// Value size of the load.
pub const VALUE_SIZE: usize = 100;
/// Keys per multi-get.
const BATCH: usize = 100;
/// A whole run is cut off after this long, whatever is left.
const DEADLINE: Duration = Duration::from_secs(300);
/// The longest wait for one reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The memory limit, MiB, that holds about a quarter of `keys` items of [`VALUE_SIZE`] bytes:
/// memcached keeps about 200 B per such item (bench/ANALYSIS.md), so the working set is
/// `keys × 200` bytes. At least 8 MiB, below which memcached has too few slab pages to compare.
pub fn quarter_limit_mib(keys: u64) -> u64 {
    (keys * 200 / 4 / (1 << 20)).max(8)
}

/// What one server did under the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HitFigures {
    pub server: String,
    pub keys: u64,
    pub limit_mib: u64,
    /// Keys asked for in the measured (second) half.
    pub asked: u64,
    pub hits: u64,
    pub evictions: Option<u64>,
    pub items_at_end: Option<u64>,
}

impl HitFigures {
    pub fn ratio(&self) -> Option<f64> {
        (self.asked > 0).then(|| self.hits as f64 / self.asked as f64)
    }
}

/// Runs `requests` key look-ups (in multi-gets of [`BATCH`]) against `server`.
pub async fn measure(
    server: &Proc,
    keys: u64,
    limit_mib: u64,
    requests: u64,
) -> Result<HitFigures> {
    let w = Arc::new(Workload::new(WorkloadSpec {
        keys,
        key_prefix: "z".into(),
        value_size: ValueSize {
            min: VALUE_SIZE,
            max: VALUE_SIZE,
        },
        dist: Dist::Zipf(ZIPF_S),
        ..WorkloadSpec::default()
    })?);
    let mut draw = w.generator(0);
    let value = w.value(VALUE_SIZE);
    let mut sock = TcpStream::connect(server.addr).await?;
    sock.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(64 << 10);
    let (mut asked, mut hits) = (0u64, 0u64);
    let started = Instant::now();
    let mut done = 0u64;
    while done < requests && started.elapsed() < DEADLINE {
        let n = BATCH.min((requests - done) as usize);
        let batch: Vec<_> = (0..n).map(|_| w.key(draw.next_key())).collect();
        let mut line = Vec::with_capacity(n * 20);
        line.extend_from_slice(b"get");
        for k in &batch {
            line.push(b' ');
            line.extend_from_slice(k);
        }
        line.extend_from_slice(b"\r\n");
        sock.write_all(&line).await?;
        let found = match read_reply(&mut sock, &mut buf)
            .await
            .map_err(|e| reply_error(server, e))?
        {
            Response::Values(v) => v,
            other => {
                return Err(reply_error(
                    server,
                    format!("a multi-get answered {other:?}"),
                ))
            }
        };
        let mut missed: Vec<_> = batch
            .iter()
            .filter(|k| !found.iter().any(|v| v.key == **k))
            .cloned()
            .collect();
        if done >= requests / 2 {
            asked += n as u64;
            hits += (n - missed.len()) as u64;
        }
        // A batch may draw a hot key twice: set each missing key once.
        missed.sort();
        missed.dedup();
        let mut sets = Vec::with_capacity(missed.len() * (40 + VALUE_SIZE));
        for k in &missed {
            sets.extend_from_slice(b"set ");
            sets.extend_from_slice(k);
            sets.extend_from_slice(format!(" 0 0 {VALUE_SIZE} noreply\r\n").as_bytes());
            sets.extend_from_slice(&value);
            sets.extend_from_slice(b"\r\n");
        }
        sock.write_all(&sets).await?;
        done += n as u64;
    }
    let st = procs::stats(&server.addr.to_string())?;
    Ok(HitFigures {
        server: server.name.clone(),
        keys,
        limit_mib,
        asked,
        hits,
        evictions: st.get("evictions").copied(),
        items_at_end: st.get("curr_items").copied(),
    })
}

fn reply_error(server: &Proc, reason: String) -> BenchError {
    BenchError::Reply {
        server: server.name.clone(),
        reason,
    }
}

/// Reads one reply, with a deadline.
async fn read_reply(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
) -> std::result::Result<Response, String> {
    let until = Instant::now() + REPLY_TIMEOUT;
    loop {
        match Response::parse(buf) {
            Ok(Some(r)) => return Ok(r),
            Ok(None) => {}
            Err(e) => return Err(format!("unparsable reply: {e}")),
        }
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sock.read_buf(buf)).await {
            Ok(Ok(0)) => return Err("the server closed the connection".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(format!("no reply in {REPLY_TIMEOUT:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_of_the_working_set() {
        assert_eq!(quarter_limit_mib(1_000_000), 47);
        assert_eq!(quarter_limit_mib(100_000), 8);
        let f = HitFigures {
            server: "x".into(),
            keys: 10,
            limit_mib: 8,
            asked: 200,
            hits: 150,
            evictions: None,
            items_at_end: None,
        };
        assert_eq!(f.ratio(), Some(0.75));
    }
}
