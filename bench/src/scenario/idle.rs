//! Memory per idle connection (issue 24): open N client connections to a fresh server, each
//! sending `version` once and reading its reply, then leave them idle, and divide the growth of
//! the server's resident set (`VmRSS`, sampled before the first connection and after the last)
//! by N. Node, proxy, memcached and nutcracker are measured the same way at each count.
//!
//! A loopback client has about 28 000 ephemeral ports per source address, so connection `i`
//! is bound to source 127.0.0.(1 + i / 20 000). Every socket costs the bench one descriptor
//! and the server one: the bench raises its own `RLIMIT_NOFILE` soft limit to the hard one
//! (the servers it starts inherit that), and a count past what the hard limit allows is
//! measured at the most it allows, which the figures then say.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::procs::{self, Proc};
use crate::error::{BenchError, Result};

/// The connection counts of the table.
pub const COUNTS: [usize; 3] = [1_000, 10_000, 50_000];
/// Connections opened from one loopback source address.
const PER_SOURCE: usize = 20_000;
/// Connections being opened at once (few: a server's buffers for the requests being answered
/// are reused once freed, and many at once would count as memory per idle connection).
const OPENING: usize = 32;
/// How long one connection may take to open and answer `version`.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors kept besides the connections: the bench's own, and a server's beyond its
/// connection limit (memcached refuses connections short of `-c`: it counts its own files).
const OWN_FDS: u64 = 1_000;
/// What each server is told to take beyond the connections measured.
pub const LIMIT_SPARE: usize = 500;

/// What holding `opened` idle connections cost one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdleFigures {
    pub server: String,
    /// Connections asked for (a column of the table).
    pub asked: usize,
    /// Connections opened and answered (fewer when the descriptor limit capped the count).
    pub opened: usize,
    pub rss_before: u64,
    pub rss_after: u64,
}

impl IdleFigures {
    /// RSS growth per connection held, in bytes.
    pub fn per_connection(&self) -> Option<f64> {
        super::memory::per_item(self.rss_before, self.rss_after, self.opened as u64)
    }
}

/// Raises this process's soft open-file limit to its hard limit; returns how many connections
/// the bench (and a server inheriting the limit) can then hold.
pub fn raise_own_limit() -> usize {
    use rlimit::Resource;
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((1024, 1024));
    if hard > soft {
        if let Err(e) = Resource::NOFILE.set(hard, hard) {
            eprintln!("idle connections: cannot raise the open-file limit to {hard}: {e}");
            return soft.saturating_sub(OWN_FDS) as usize;
        }
    }
    hard.saturating_sub(OWN_FDS) as usize
}

/// The next unused source address (in units of [`PER_SOURCE`] connections): each measurement
/// takes fresh ones, since the ports of the one before are still in TIME_WAIT.
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

/// The source address of connection `i`.
fn source(i: usize) -> SocketAddr {
    let host = u8::try_from(1 + i / PER_SOURCE).unwrap_or(u8::MAX);
    SocketAddr::from((Ipv4Addr::new(127, 0, 0, host), 0))
}

/// Opens one connection from `from`, sends `version` and reads the one-line reply.
async fn open_one(from: SocketAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(from)?;
    let mut s = sock.connect(to).await?;
    s.write_all(b"version\r\n").await?;
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 64];
    while !line.ends_with(b"\r\n") {
        let n = s.read(&mut buf).await?;
        if n == 0 || line.len() > 256 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        line.extend_from_slice(&buf[..n]);
    }
    if !line.starts_with(b"VERSION ") {
        return Err(std::io::Error::other(format!(
            "version answered {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    Ok(s)
}

/// Opens `n` idle connections to `to`, [`OPENING`] at a time.
async fn open_many(to: SocketAddr, n: usize) -> Result<Vec<TcpStream>> {
    let mut held = Vec::with_capacity(n);
    let mut opening = FuturesUnordered::new();
    let mut next = 0;
    let base = NEXT_SOURCE.fetch_add(n.div_ceil(PER_SOURCE), Ordering::Relaxed) * PER_SOURCE;
    let deadline = Instant::now() + STEP_TIMEOUT + Duration::from_millis(10 * n as u64);
    while held.len() < n {
        while next < n && opening.len() < OPENING {
            let from = source(base + next);
            opening.push(tokio::time::timeout(STEP_TIMEOUT, open_one(from, to)));
            next += 1;
        }
        let Some(r) = opening.next().await else {
            break;
        };
        match r {
            Ok(Ok(s)) => held.push(s),
            Ok(Err(e)) => {
                return Err(BenchError::Io(std::io::Error::other(format!(
                    "connection {} of {n} to {to}: {e}",
                    held.len() + 1
                ))))
            }
            Err(_) => {
                return Err(BenchError::Io(std::io::Error::other(format!(
                    "connection {} of {n} to {to}: no answer within {STEP_TIMEOUT:?}",
                    held.len() + 1
                ))))
            }
        }
        if Instant::now() > deadline {
            return Err(BenchError::Io(std::io::Error::other(format!(
                "opened only {} of {n} connections to {to} in time",
                held.len()
            ))));
        }
    }
    Ok(held)
}

/// Measures `server` holding `asked` idle connections (at most `cap`).
pub async fn measure(server: &Proc, asked: usize, cap: usize) -> Result<IdleFigures> {
    let n = asked.min(cap);
    // Let the freshly started server settle before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = procs::vm_rss(server.pid())?;
    let held = open_many(server.addr, n).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = procs::vm_rss(server.pid())?;
    let figures = IdleFigures {
        server: server.name.clone(),
        asked,
        opened: held.len(),
        rss_before,
        rss_after,
    };
    drop(held);
    Ok(figures)
}

/// The servers of the table, in its column order.
pub const SERVERS: [&str; 4] = ["node", "proxy", "memcached", "nutcracker"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_spread_over_loopback_addresses() {
        assert_eq!(source(0), "127.0.0.1:0".parse().unwrap());
        assert_eq!(source(PER_SOURCE - 1), "127.0.0.1:0".parse().unwrap());
        assert_eq!(source(PER_SOURCE), "127.0.0.2:0".parse().unwrap());
        assert_eq!(source(49_999), "127.0.0.3:0".parse().unwrap());
    }

    #[test]
    fn per_connection_maths() {
        let f = IdleFigures {
            server: "node".into(),
            asked: 1000,
            opened: 500,
            rss_before: 1000,
            rss_after: 1000 + 500 * 700,
        };
        assert_eq!(f.per_connection(), Some(700.0));
    }
}
