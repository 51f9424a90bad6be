//! What the defect-hunting harnesses (`session-fuzz`, `soak`, `netns-faults`) share: the
//! `ringcache` binary, a real cluster of `ringcache node` processes behind a `ringcache proxy`,
//! a blocking connection whose every read has a deadline, and canary keys.
//!
//! The processes are the scenario's [`Proc`]s: killed on drop and with the bench.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcache_client::protocol::Response;

use crate::error::{BenchError, Result};
use crate::scenario::procs::{self, Proc, TempDir};
use crate::scenario::workspace_root;

/// A local error with a message.
pub fn fail(msg: impl Into<String>) -> BenchError {
    BenchError::Io(std::io::Error::other(msg.into()))
}

/// The `ringcache` binary: `explicit`, else `target/release/ringcache`, else
/// `target/debug/ringcache` of this workspace.
pub fn ringcache_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(fail(format!("--ringcache {}: no such file", p.display())))
        };
    }
    let root = workspace_root();
    for profile in ["release", "debug"] {
        let p = root.join("target").join(profile).join("ringcache");
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(fail(
        "no ringcache binary: run `cargo build --release --bin ringcache` or pass --ringcache",
    ))
}

/// A proxy config: `listen`, `extra` top-level settings, the ring, one `[[nodes]]` per address.
pub fn proxy_toml(listen: &str, extra: &str, nodes: &[String], replicas: usize) -> String {
    let mut t = format!("listen = \"{listen}\"\n{extra}\n[ring]\nreplicas = {replicas}\n");
    for n in nodes {
        t.push_str(&format!("\n[[nodes]]\naddr = \"{n}\"\n"));
    }
    t
}

/// Real processes on loopback: `nodes` × `ringcache node`, one `ringcache proxy` in front.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    pub proxy: Proc,
    /// Each node's memory limit, MiB.
    pub node_mem_mb: u64,
    // Dropped last: the logs live here.
    pub dir: TempDir,
}

impl Cluster {
    /// Starts the cluster; `proxy_extra` is added to the proxy's config (top-level keys).
    pub fn start(
        bin: &Path,
        nodes: usize,
        replicas: usize,
        node_mem_mb: u64,
        proxy_extra: &str,
    ) -> Result<Cluster> {
        let dir = TempDir::new()?;
        let nodes = (1..=nodes)
            .map(|i| procs::ringcache_node(bin, &format!("node{i}"), node_mem_mb, dir.path()))
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = nodes.iter().map(|p| p.addr.clone()).collect();
        let listen = procs::free_addr()?;
        let conf = dir.path().join("proxy.toml");
        procs::write_atomically(&conf, &proxy_toml(&listen, proxy_extra, &addrs, replicas))?;
        let mut cmd = Command::new(bin);
        cmd.arg("proxy").arg("--config").arg(&conf);
        let proxy = procs::spawn("proxy", cmd, &listen, dir.path())?;
        Ok(Cluster {
            nodes,
            proxy,
            node_mem_mb,
            dir,
        })
    }

    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|p| p.addr.clone()).collect()
    }
}

/// `stats` `cmd_flush` of the server at `addr`.
pub fn cmd_flush(addr: &str) -> Result<u64> {
    procs::stats(addr)?
        .get("cmd_flush")
        .copied()
        .ok_or_else(|| fail(format!("{addr}: no cmd_flush in stats")))
}

/// A blocking client connection whose reads all have deadlines; replies are parsed with the
/// shared `Response` parser.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    pub addr: String,
}

/// How long a connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Wire {
    pub fn connect(addr: &str) -> Result<Wire> {
        let sa: SocketAddr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| fail(format!("{addr}: no address")))?;
        let stream = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Wire {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
            addr: addr.to_string(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes)?;
        Ok(())
    }

    /// Reads once into the buffer, waiting until `deadline` at most. `Ok(false)`: closed.
    fn fill(&mut self, deadline: Instant) -> std::result::Result<bool, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err("timed out".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The next reply, by `deadline`.
    pub fn reply(&mut self, deadline: Instant) -> std::result::Result<Response, String> {
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
    pub fn request(
        &mut self,
        bytes: &[u8],
        timeout: Duration,
    ) -> std::result::Result<Response, String> {
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
    pub fn until_mn(
        &mut self,
        want: usize,
        deadline: Instant,
    ) -> std::result::Result<Vec<Response>, String> {
        let mut got = Vec::new();
        let mut seen = 0;
        while seen < want {
            match self.reply(deadline) {
                Ok(Response::Meta(m)) if m.status == ringcache_client::protocol::MetaStatus::Mn => {
                    seen += 1;
                }
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

/// Keys stored before a run and read back, value for value, during it.
pub struct Canaries {
    pub items: Vec<(String, String)>,
}

impl Canaries {
    pub fn new(tag: &str, n: usize) -> Canaries {
        Canaries {
            items: (0..n)
                .map(|i| {
                    (
                        format!("canary_{tag}_{i}"),
                        format!("canary-value-{tag}-{i}"),
                    )
                })
                .collect(),
        }
    }

    /// Stores every canary through `w`.
    pub fn store(&self, w: &mut Wire) -> Result<()> {
        for (k, v) in &self.items {
            let req = format!("set {k} 0 0 {}\r\n{v}\r\n", v.len());
            match w.request(req.as_bytes(), Duration::from_secs(5)) {
                Ok(Response::Stored) => {}
                other => return Err(fail(format!("storing canary {k}: {other:?}"))),
            }
        }
        Ok(())
    }

    /// Reads every canary with one multi-get through `w`; `Err` names the first one missing or
    /// wrong. A multi-get answers a key it cannot read as a miss, so a missing canary is looked
    /// up on each of `nodes` directly: the report then tells a lost key from an unreadable one.
    pub fn check(&self, w: &mut Wire, nodes: &[String]) -> std::result::Result<(), String> {
        let mut req = String::from("get");
        for (k, _) in &self.items {
            req.push(' ');
            req.push_str(k);
        }
        req.push_str("\r\n");
        let values = match w.request(req.as_bytes(), Duration::from_secs(5))? {
            Response::Values(v) => v,
            other => return Err(format!("canary read answered {other:?}")),
        };
        for (k, v) in &self.items {
            match values.iter().find(|x| x.key == k.as_bytes()) {
                Some(x) if x.data == v.as_bytes() => {}
                Some(x) => return Err(format!("canary {k} reads {:?}", show(&x.data))),
                None => return Err(format!("canary {k} is missing{}", where_is(k, nodes))),
            }
        }
        if values.len() != self.items.len() {
            return Err(format!(
                "{} values for {} canaries",
                values.len(),
                self.items.len()
            ));
        }
        Ok(())
    }
}

/// Where a canary the proxy did not return still is: `" (on no node: lost)"` or
/// `" (unreadable through the proxy; held by …)"`, as read from each node directly.
fn where_is(key: &str, nodes: &[String]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let mut held = Vec::new();
    for n in nodes {
        let got = Wire::connect(n)
            .map_err(|e| e.to_string())
            .and_then(|mut w| {
                w.request(format!("get {key}\r\n").as_bytes(), Duration::from_secs(5))
            });
        match got {
            Ok(Response::Values(v)) if !v.is_empty() => held.push(n.clone()),
            Ok(_) => {}
            Err(e) => held.push(format!("{n}: unreachable ({e})")),
        }
    }
    if held.is_empty() {
        " (on no node: lost)".into()
    } else {
        format!(
            " (unreadable through the proxy; held by {})",
            held.join(", ")
        )
    }
}

/// Bytes for a report: printable ASCII as is, the rest escaped, long runs cut.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 400;
    let mut s = String::new();
    for &b in bytes.iter().take(MAX) {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX {
        s.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    s
}

/// Seconds as a decimal number, for the harnesses' flags.
pub fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!("{s:?}: seconds must be in (0, 86400]"));
    }
    Ok(Duration::from_secs_f64(v))
}
