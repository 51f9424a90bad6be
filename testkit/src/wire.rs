//! A blocking client connection whose replies are parsed with the client crate's own
//! `Response` parser (the harnesses judge replies by meaning, not bytes), and a server's
//! `stats`. Every read has a deadline.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcache_client::protocol::{MetaStatus, Response};

use crate::conn::{read_before, timed_out};
use crate::{show, Error};

/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `stats` reply may take.
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// A blocking connection; replies parsed with `Response::parse`.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    pub addr: String,
}

impl Wire {
    pub fn connect(addr: &str) -> Result<Wire, Error> {
        let sa: SocketAddr = addr.to_socket_addrs()?.next().ok_or_else(|| Error::Reply {
            addr: addr.into(),
            why: "no address".into(),
        })?;
        let stream = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Wire {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            addr: addr.to_string(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads once into the buffer, waiting until `deadline` at most. `Ok(false)`: closed.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        let mut chunk = [0u8; 16 * 1024];
        match read_before(&mut self.stream, deadline, &mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if timed_out(&e) => Err("timed out".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The next reply, by `deadline`.
    pub fn reply(&mut self, deadline: Instant) -> Result<Response, String> {
        loop {
            match Response::parse(&mut self.buf) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(format!("unparsable reply: {e}")),
            }
            if !self.fill(deadline)? {
                return Err("connection closed".into());
            }
        }
    }

    /// Sends `bytes` and returns the first reply, within `timeout`.
    pub fn request(&mut self, bytes: &[u8], timeout: Duration) -> Result<Response, String> {
        self.send(bytes).map_err(|e| e.to_string())?;
        self.reply(Instant::now() + timeout)
    }

    /// Everything that arrives until `quiet` passes without a byte, the peer closes, `limit`
    /// passes or `max` bytes are held; whether the peer closed.
    pub fn drain(&mut self, quiet: Duration, limit: Duration, max: usize) -> (Vec<u8>, bool) {
        let end = Instant::now() + limit;
        let mut closed = false;
        while self.buf.len() < max {
            let step = (Instant::now() + quiet).min(end);
            match self.fill(step) {
                Ok(true) => {}
                Ok(false) => {
                    closed = true;
                    break;
                }
                Err(e) if e == "timed out" => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        (self.buf.split().to_vec(), closed)
    }

    /// Takes the reply bytes already read and not parsed.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.buf.split().to_vec()
    }

    /// Reads until `want` MN replies were parsed (quiet-mode pipelines end with `mn`); returns
    /// every reply before them. `Err` with what arrived when the deadline passes first.
    pub fn until_mn(&mut self, want: usize, deadline: Instant) -> Result<Vec<Response>, String> {
        let mut got = Vec::new();
        let mut seen = 0;
        while seen < want {
            match self.reply(deadline) {
                Ok(Response::Meta(m)) if m.status == MetaStatus::Mn => seen += 1,
                Ok(r) => got.push(r),
                Err(e) => {
                    return Err(format!(
                        "{e} after {seen} of {want} MN; replies before: {got:?}; unparsed: {}",
                        show(&self.buf)
                    ))
                }
            }
        }
        Ok(got)
    }
}

/// The `stats` of the server at `addr`, name → value.
pub fn stats_text(addr: &str) -> Result<HashMap<String, String>, Error> {
    let reply = |why: String| Error::Reply {
        addr: addr.into(),
        why,
    };
    let mut w = Wire::connect(addr)?;
    match w.request(b"stats\r\n", STATS_TIMEOUT).map_err(reply)? {
        Response::Stats(lines) => Ok(lines
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()),
        other => Err(reply(format!("stats answered {other:?}"))),
    }
}

/// The numeric `stats` of the server at `addr` (the others are left out).
pub fn stats(addr: &str) -> Result<HashMap<String, u64>, Error> {
    Ok(stats_text(addr)?
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect())
}
