//! Helpers shared by the integration tests that talk to real server processes on loopback.
//!
//! - [`spawn_memcached`]: Debian's memcached on a free port (`None` when it is not installed).
//! - [`spawn_node`]: `ringcache node --listen 127.0.0.1:0`, its address read from its stdout.
//! - [`Conn`]: a raw TCP connection with deadlines on every read, whose checks show both sides of
//!   a mismatch; expected replies may hold placeholders (see [`Pattern`]).
//!
//! Every process is killed when its [`Server`] is dropped, and every wait is bounded.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a reply may take before a check fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server process owned by a test; killed (the node gently first) when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// `memcached` or `ringcache`, for messages.
    pub name: &'static str,
    /// Ask with SIGTERM before killing (the node shuts down cleanly on it).
    graceful: bool,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Server {
    /// The last few KiB the process wrote to stderr (empty for memcached, whose stderr is not kept).
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// A new connection to this server.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr, self.name)
    }

    /// The process id, for reading its `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9 and reap: a crash, not a shutdown.
    pub fn kill9(&mut self) {
        self.graceful = false;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.graceful {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) on our own child's pid, which `self.child` has not reaped yet.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// `/usr/bin/memcached` if present, else `memcached` on `PATH`.
pub fn memcached_bin() -> Option<PathBuf> {
    let debian = Path::new("/usr/bin/memcached");
    if debian.is_file() {
        return Some(debian.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("memcached"))
        .find(|p| p.is_file())
}

/// Waits until `addr` accepts a connection; `Err` with a reason if the process exits first or
/// the deadline passes.
fn wait_accepting(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before accepting"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not accepting on {addr} after {START_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts memcached on a free loopback port (TCP only, default settings, LRU crawler on so that
/// `lru_crawler metadump` works) and waits until it accepts. `None` when memcached is not
/// installed; callers print a skip line.
pub fn spawn_memcached() -> Option<Server> {
    let bin = memcached_bin()?;
    let mut last = String::new();
    // The port is free when picked but may be taken before memcached binds it: retry a few times.
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"]);
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            // memcached refuses to run as root unless told which user to be.
            cmd.args(["-u", "root"]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match wait_accepting(&mut child, addr) {
            Ok(()) => {
                return Some(Server {
                    child,
                    addr,
                    name: "memcached",
                    graceful: false,
                    stderr: Arc::default(),
                })
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                last = e;
            }
        }
    }
    panic!("memcached did not start: {last}");
}

/// Starts `ringcache node --listen 127.0.0.1:0 <extra_args>` and reads the address it bound from
/// its `ringcache node listening on <addr>` line.
pub fn spawn_node(extra_args: &[&str]) -> Server {
    spawn_ringcache("node", "127.0.0.1:0", extra_args)
}

/// [`spawn_node`] on a given address (a restart on the port a node had before).
pub fn spawn_node_at(listen: &str, extra_args: &[&str]) -> Server {
    spawn_ringcache("node", listen, extra_args)
}

/// Starts `ringcache proxy --listen 127.0.0.1:0 --node <addr>... <extra_args>` in front of
/// `nodes` and reads the address it bound from its `ringcache proxy listening on` line.
pub fn spawn_proxy(nodes: &[SocketAddr], extra_args: &[&str]) -> Server {
    let mut args: Vec<String> = Vec::new();
    for n in nodes {
        args.push("--node".into());
        args.push(n.to_string());
    }
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_ringcache("proxy", "127.0.0.1:0", &args)
}

/// `ringcache <role> --listen <listen> <extra_args>`, its address read from its
/// `ringcache <role> listening on <addr>` line.
fn spawn_ringcache(role: &str, listen: &str, extra_args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringcache"))
        .args([role, "--listen", listen])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start ringcache {role}: {e}"));
    let stderr = Arc::new(Mutex::new(Vec::new()));
    {
        let sink = Arc::clone(&stderr);
        let mut pipe = child.stderr.take().expect("stderr piped");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut s = sink.lock().unwrap();
                s.extend_from_slice(&buf[..n]);
                let excess = s.len().saturating_sub(16 * 1024);
                s.drain(..excess);
            }
        });
    }
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout piped");
    // Keeps draining stdout after the address line so the node never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let prefix = format!("ringcache {role} listening on ");
    let deadline = Instant::now() + START_TIMEOUT;
    let fail = |child: &mut Child, why: String| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "ringcache {role} did not start: {why}\nstderr:\n{}",
            String::from_utf8_lossy(&stderr.lock().unwrap())
        );
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix(prefix.as_str()) {
                    let addr: SocketAddr = match addr.trim().parse() {
                        Ok(a) => a,
                        Err(e) => fail(&mut child, format!("bad address in {line:?}: {e}")),
                    };
                    if let Err(e) = wait_accepting(&mut child, addr) {
                        fail(&mut child, e);
                    }
                    return Server {
                        child,
                        addr,
                        name: "ringcache",
                        graceful: true,
                        stderr,
                    };
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                fail(&mut child, format!("no address line in {START_TIMEOUT:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.try_wait().ok().flatten();
                fail(&mut child, format!("stdout closed (exit: {status:?})"))
            }
        }
    }
}

/// Renders bytes for a failure message: printable ASCII as is, the rest escaped, long runs cut.
pub fn show(bytes: &[u8]) -> String {
    const MAX: usize = 600;
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

/// An expected reply with placeholders:
///
/// - `{n}`: one or more ASCII digits (CAS values, times, sizes that vary between servers);
/// - `{n:name}`: the same, and the digits are remembered as `name` for later requests;
/// - `{*}`: any run of bytes other than `\r` and `\n` (a version string);
/// - `{**}`: any bytes at all, as few as possible (the middle of a `stats` listing).
///
/// Everything else must match byte for byte.
#[derive(Debug, Clone)]
pub struct Pattern(Vec<Seg>);

#[derive(Debug, Clone)]
enum Seg {
    Lit(Vec<u8>),
    Digits(Option<String>),
    Line,
    Any,
}

enum Outcome {
    /// Matched, using this many bytes.
    Done(usize),
    /// The bytes so far could still become a match.
    More,
    /// They cannot.
    Fail,
}

impl Pattern {
    pub fn new(p: &[u8]) -> Pattern {
        let mut segs = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < p.len() {
            let rest = &p[i..];
            let special = if rest.starts_with(b"{n}") {
                Some((Seg::Digits(None), 3))
            } else if rest.starts_with(b"{n:") {
                let end = rest
                    .iter()
                    .position(|&b| b == b'}')
                    .expect("unterminated {n:name}");
                let name = String::from_utf8(rest[3..end].to_vec()).expect("ASCII name");
                Some((Seg::Digits(Some(name)), end + 1))
            } else if rest.starts_with(b"{**}") {
                Some((Seg::Any, 4))
            } else if rest.starts_with(b"{*}") {
                Some((Seg::Line, 3))
            } else {
                None
            };
            match special {
                Some((seg, len)) => {
                    if !lit.is_empty() {
                        segs.push(Seg::Lit(std::mem::take(&mut lit)));
                    }
                    segs.push(seg);
                    i += len;
                }
                None => {
                    lit.push(p[i]);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            segs.push(Seg::Lit(lit));
        }
        Pattern(segs)
    }

    /// A pattern with no placeholders can be read with a fixed length.
    fn literal_len(&self) -> Option<usize> {
        self.0
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => Some(l.len()),
                _ => None,
            })
            .sum()
    }

    fn matches(&self, data: &[u8], caps: &mut Vec<(String, Vec<u8>)>) -> Outcome {
        fn go(
            segs: &[Seg],
            data: &[u8],
            used: usize,
            caps: &mut Vec<(String, Vec<u8>)>,
        ) -> Outcome {
            let Some((seg, rest)) = segs.split_first() else {
                return Outcome::Done(used);
            };
            match seg {
                Seg::Lit(l) => {
                    let n = l.len().min(data.len());
                    if data[..n] != l[..n] {
                        Outcome::Fail
                    } else if n < l.len() {
                        Outcome::More
                    } else {
                        go(rest, &data[n..], used + n, caps)
                    }
                }
                Seg::Digits(name) => {
                    let d = data.iter().take_while(|b| b.is_ascii_digit()).count();
                    if d == data.len() {
                        return Outcome::More;
                    }
                    if d == 0 {
                        return Outcome::Fail;
                    }
                    let mark = caps.len();
                    if let Some(name) = name {
                        caps.push((name.clone(), data[..d].to_vec()));
                    }
                    let r = go(rest, &data[d..], used + d, caps);
                    if !matches!(r, Outcome::Done(_)) {
                        caps.truncate(mark);
                    }
                    r
                }
                Seg::Line => {
                    let d = data
                        .iter()
                        .take_while(|&&b| b != b'\r' && b != b'\n')
                        .count();
                    if d == data.len() {
                        return Outcome::More;
                    }
                    go(rest, &data[d..], used + d, caps)
                }
                Seg::Any => {
                    for skip in 0..=data.len() {
                        if let Outcome::Done(n) = go(rest, &data[skip..], used + skip, caps) {
                            return Outcome::Done(n);
                        }
                    }
                    Outcome::More
                }
            }
        }
        go(&self.0, data, 0, caps)
    }
}

/// Replaces `{name}` in `bytes` with values captured by `{n:name}` placeholders.
pub fn substitute(bytes: &[u8], vars: &HashMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    'outer: while i < bytes.len() {
        if bytes[i] == b'{' {
            for (name, value) in vars {
                let tag = format!("{{{name}}}");
                if bytes[i..].starts_with(tag.as_bytes()) {
                    out.extend_from_slice(value);
                    i += tag.len();
                    continue 'outer;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// A raw client connection with bounded waits.
pub struct Conn {
    stream: TcpStream,
    /// Which server, for messages.
    pub label: &'static str,
    /// Bytes read past the end of the last expected reply.
    pending: Vec<u8>,
    /// Values captured by `{n:name}` placeholders.
    pub vars: HashMap<String, Vec<u8>>,
}

impl Conn {
    pub fn open(addr: SocketAddr, label: &'static str) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("[{label}] connect to {addr}: {e}"));
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_write_timeout(Some(REPLY_TIMEOUT))
            .expect("write timeout");
        Conn {
            stream,
            label,
            pending: Vec::new(),
            vars: HashMap::new(),
        }
    }

    /// Writes all of `bytes` (after `{name}` substitution). A server that closed the connection
    /// may make this fail; that is reported as `Err` so `expect_closed` can follow.
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let bytes = substitute(bytes, &self.vars);
        self.stream
            .write_all(&bytes)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("[{}] send {}: {e}", self.label, show(&bytes)))
    }

    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.try_send(bytes) {
            panic!("{e}");
        }
    }

    /// Reads once, waiting at most until `deadline`. `Ok(0)` means closed.
    fn read_some(&mut self, deadline: Instant, max: usize) -> std::io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buf = vec![0u8; max.clamp(1, 64 * 1024)];
        let n = self.stream.read(&mut buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// Reads until `want` (a [`Pattern`]) is matched; `Err` shows both sides on a mismatch, a
    /// close or a timeout. Bytes beyond the match stay for the next check.
    pub fn check(&mut self, want: &[u8]) -> Result<(), String> {
        let pattern = Pattern::new(want);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let fixed = pattern.literal_len();
        loop {
            let mut caps = Vec::new();
            match pattern.matches(&self.pending, &mut caps) {
                Outcome::Done(n) => {
                    self.pending.drain(..n);
                    self.vars.extend(caps);
                    return Ok(());
                }
                Outcome::Fail => return Err(self.mismatch(want, "wrong bytes")),
                Outcome::More => {}
            }
            // A fixed-length reply is read exactly; anything else a chunk at a time.
            let max = fixed.map_or(64 * 1024, |n| n.saturating_sub(self.pending.len()));
            match self.read_some(deadline, max) {
                Ok(0) => return Err(self.mismatch(want, "connection closed")),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.mismatch(want, "timed out"))
                }
                Err(e) => return Err(self.mismatch(want, &format!("read failed: {e}"))),
            }
        }
    }

    /// [`Conn::check`], panicking on a mismatch.
    pub fn expect(&mut self, want: &[u8]) {
        if let Err(e) = self.check(want) {
            panic!("{e}");
        }
    }

    /// Checks that the server closes the connection without sending anything (more).
    pub fn check_closed(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            if !self.pending.is_empty() {
                return Err(self.mismatch(b"<closed>", "data instead of a close"));
            }
            match self.read_some(deadline, 64 * 1024) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(self.mismatch(b"<closed>", "still open"))
                }
                // A close with our bytes unread arrives as a reset.
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    return Ok(())
                }
                Err(e) => return Err(self.mismatch(b"<closed>", &format!("read failed: {e}"))),
            }
        }
    }

    pub fn expect_closed(&mut self) {
        if let Err(e) = self.check_closed() {
            panic!("{e}");
        }
    }

    /// Everything that arrives until the server has been quiet for `quiet` (at most
    /// [`REPLY_TIMEOUT`] in all), with `<closed>` appended if it closed. For recording replies.
    pub fn read_quiet(&mut self, quiet: Duration) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let step = (Instant::now() + quiet).min(deadline);
            match self.read_some(step, 64 * 1024) {
                Ok(0) => {
                    self.pending.extend_from_slice(b"<closed>");
                    break;
                }
                Ok(_) if Instant::now() < deadline => {}
                Ok(_) => break,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(_) => {
                    self.pending.extend_from_slice(b"<reset>");
                    break;
                }
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// Matches `want` against bytes already read (by [`Conn::read_quiet`]), only to capture its
    /// `{n:name}` values; the bytes are dropped either way.
    pub fn replay(&mut self, got: &[u8], want: &[u8]) {
        let mut caps = Vec::new();
        if let Outcome::Done(_) = Pattern::new(want).matches(got, &mut caps) {
            self.vars.extend(caps);
        }
    }

    fn mismatch(&self, want: &[u8], why: &str) -> String {
        format!(
            "[{}] {why}\n    want: {}\n    got:  {}",
            self.label,
            show(want),
            show(&self.pending)
        )
    }
}
