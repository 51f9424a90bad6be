//! The memcached text protocol over a tokio connection, for tests that drive load from async
//! tasks: each exchange is bounded by [`IO_LIMIT`] and a failure is a value (`Err` with a
//! reason), since the fault tests expect some.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Limit on any single exchange.
pub const IO_LIMIT: Duration = Duration::from_secs(5);

/// An exchange's outcome: `Err` says why it failed (closed, timeout, a bad line).
pub type IoResult<T> = Result<T, String>;

/// One hit of a `get`/`gets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawValue {
    pub data: Vec<u8>,
    pub flags: u32,
    /// Present for `gets`.
    pub cas: Option<u64>,
}

/// A plain text-protocol connection.
pub struct Raw {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
    limit: Duration,
}

impl Raw {
    /// Connects within [`IO_LIMIT`] (panics otherwise: a test's setup).
    pub async fn connect(addr: SocketAddr) -> Raw {
        let s = tokio::time::timeout(IO_LIMIT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect {addr}: timeout"))
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_nodelay(true).expect("nodelay");
        let (rd, wr) = s.into_split();
        Raw {
            rd: BufReader::new(rd),
            wr,
            limit: IO_LIMIT,
        }
    }

    /// The same with another limit on each exchange.
    pub fn with_limit(mut self, limit: Duration) -> Raw {
        self.limit = limit;
        self
    }

    /// The next line, without its `\r\n` (unbounded: callers bound the whole exchange).
    async fn read_line(&mut self) -> IoResult<String> {
        let mut l = String::new();
        let n = self.rd.read_line(&mut l).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        Ok(l.trim_end_matches(['\r', '\n']).to_string())
    }

    /// The next reply line, bounded.
    pub async fn line(&mut self) -> IoResult<String> {
        let limit = self.limit;
        tokio::time::timeout(limit, self.read_line())
            .await
            .map_err(|_| "timeout".to_string())?
    }

    pub async fn send(&mut self, bytes: &[u8]) -> IoResult<()> {
        let limit = self.limit;
        tokio::time::timeout(limit, self.wr.write_all(bytes))
            .await
            .map_err(|_| "timeout".to_string())?
            .map_err(|e| e.to_string())
    }

    /// One request whose reply is one line.
    pub async fn simple(&mut self, req: &[u8]) -> IoResult<String> {
        self.send(req).await?;
        self.line().await
    }

    /// `set key 0 0 len`: the reply line.
    pub async fn set(&mut self, key: &str, value: &[u8]) -> IoResult<String> {
        self.simple(&set_request(key, value)).await
    }

    /// `delete key`: the reply line.
    pub async fn delete(&mut self, key: &str) -> IoResult<String> {
        self.simple(format!("delete {key}\r\n").as_bytes()).await
    }

    /// `get`/`gets` of `keys` in one request: the hits by key.
    pub async fn fetch(
        &mut self,
        cmd: &str,
        keys: &[String],
    ) -> IoResult<HashMap<String, RawValue>> {
        self.send(format!("{cmd} {}\r\n", keys.join(" ")).as_bytes())
            .await?;
        let limit = self.limit;
        tokio::time::timeout(limit, self.read_values())
            .await
            .map_err(|_| "timeout".to_string())?
    }

    async fn read_values(&mut self) -> IoResult<HashMap<String, RawValue>> {
        let mut out = HashMap::new();
        loop {
            let l = self.read_line().await?;
            if l == "END" {
                return Ok(out);
            }
            let parts: Vec<&str> = l.split(' ').collect();
            if parts.len() < 4 || parts[0] != "VALUE" {
                return Err(format!("unexpected line {l:?}"));
            }
            let len: usize = parts[3].parse().map_err(|_| format!("bad line {l:?}"))?;
            let mut data = vec![0u8; len + 2];
            self.rd
                .read_exact(&mut data)
                .await
                .map_err(|e| e.to_string())?;
            data.truncate(len);
            out.insert(
                parts[1].to_string(),
                RawValue {
                    data,
                    flags: parts[2].parse().map_err(|_| format!("bad line {l:?}"))?,
                    cas: parts.get(4).and_then(|c| c.parse().ok()),
                },
            );
        }
    }

    /// `get key`.
    pub async fn get(&mut self, key: &str) -> IoResult<Option<RawValue>> {
        Ok(self.fetch("get", &[key.to_string()]).await?.remove(key))
    }

    /// `stats`: name → value.
    pub async fn stats(&mut self) -> IoResult<HashMap<String, String>> {
        self.send(b"stats\r\n").await?;
        let limit = self.limit;
        tokio::time::timeout(limit, async {
            let mut out = HashMap::new();
            loop {
                let l = self.read_line().await?;
                if l == "END" {
                    return Ok(out);
                }
                let mut p = l.splitn(3, ' ');
                match (p.next(), p.next(), p.next()) {
                    (Some("STAT"), Some(k), Some(v)) => {
                        out.insert(k.to_string(), v.to_string());
                    }
                    _ => return Err(format!("unexpected stats line {l:?}")),
                }
            }
        })
        .await
        .map_err(|_| "timeout".to_string())?
    }
}

/// The bytes of `set key 0 0 len\r\nvalue\r\n`.
pub fn set_request(key: &str, value: &[u8]) -> Vec<u8> {
    let mut req = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(value);
    req.extend_from_slice(b"\r\n");
    req
}

/// One numeric `stats` value of the server at `addr`.
pub async fn stat(addr: SocketAddr, name: &str) -> u64 {
    let mut c = Raw::connect(addr).await;
    let all = c
        .stats()
        .await
        .unwrap_or_else(|e| panic!("stats of {addr}: {e}"));
    let v = all
        .get(name)
        .unwrap_or_else(|| panic!("{addr}: no stat {name}"));
    v.parse()
        .unwrap_or_else(|_| panic!("{addr}: stat {name} is {v:?}"))
}

/// `GET <path>` on the HTTP endpoint at `addr` (HTTP/1.0, read to the close): the status code
/// and the body. For `/ready` (200 or 503 with a reason) and `/metrics`.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::time::timeout(IO_LIMIT, TcpStream::connect(addr))
        .await
        .expect("connect HTTP in time")
        .expect("connect HTTP");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut all = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut all))
        .await
        .expect("HTTP response in time")
        .expect("HTTP response");
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((all.as_str(), ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{addr}{path}: no status line in {head:?}"));
    (status, body.to_string())
}

/// The `/metrics` page of the HTTP endpoint at `addr` (HTTP/1.0, read to the close).
pub async fn metrics_page(addr: SocketAddr) -> String {
    metrics_text(addr)
        .await
        .unwrap_or_else(|e| panic!("metrics of {addr}: {e}"))
}

/// Largest `/metrics` response [`metrics_text`] reads.
const METRICS_MAX: u64 = 16 << 20;

/// The same as [`metrics_page`], a failure as a value (for the harnesses): connecting within
/// [`IO_LIMIT`], the whole response within 10 s and at most 16 MiB.
pub async fn metrics_text(addr: SocketAddr) -> IoResult<String> {
    let mut s = tokio::time::timeout(IO_LIMIT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect: timeout".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .map_err(|e| format!("request: {e}"))?;
    let mut body = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        (&mut s).take(METRICS_MAX).read_to_string(&mut body),
    )
    .await
    .map_err(|_| "response: timeout".to_string())?
    .map_err(|e| format!("response: {e}"))?;
    Ok(body)
}
