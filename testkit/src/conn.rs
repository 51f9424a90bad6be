//! A raw client connection for byte-exact checks: every read has a deadline, every mismatch
//! shows both sides, and expected replies may hold placeholders ([`crate::Pattern`]). Also the
//! common "send bytes, read until a terminator" exchange.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::pattern::{Outcome, Pattern};
use crate::{show, substitute};

/// How long a reply may take before a check fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads once from `stream` into `chunk`, waiting at most until `deadline` (`TimedOut` after
/// it). `Ok(0)` means closed.
pub(crate) fn read_before(
    stream: &mut TcpStream,
    deadline: Instant,
    chunk: &mut [u8],
) -> std::io::Result<usize> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(ErrorKind::TimedOut.into());
    }
    stream.set_read_timeout(Some(left))?;
    stream.read(chunk)
}

/// Whether a read error is the deadline passing.
pub(crate) fn timed_out(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
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
        let mut buf = vec![0u8; max.clamp(1, 64 * 1024)];
        let n = read_before(&mut self.stream, deadline, &mut buf)?;
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
                Err(e) if timed_out(&e) => return Err(self.mismatch(want, "timed out")),
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
                Err(e) if timed_out(&e) => return Err(self.mismatch(b"<closed>", "still open")),
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
                Err(e) if timed_out(&e) => break,
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

    /// Reads until `end` arrives (within [`REPLY_TIMEOUT`]) and returns everything up to and
    /// including it; later bytes stay for the next read. `Err` on a close or the deadline.
    pub fn read_until(&mut self, end: &[u8]) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        // Where the search resumes: bytes before it were searched and hold no `end`.
        let mut from = 0;
        loop {
            if let Some(at) = find(&self.pending[from..], end) {
                return Ok(self.pending.drain(..from + at + end.len()).collect());
            }
            from = self
                .pending
                .len()
                .saturating_sub(end.len().saturating_sub(1));
            match self.read_some(deadline, 64 * 1024) {
                Ok(0) => return Err(self.mismatch(end, "connection closed")),
                Ok(_) => {}
                Err(e) if timed_out(&e) => return Err(self.mismatch(end, "timed out")),
                Err(e) => return Err(self.mismatch(end, &format!("read failed: {e}"))),
            }
        }
    }

    /// [`Conn::read_until`], panicking on a close or the deadline.
    pub fn until(&mut self, end: &[u8]) -> Vec<u8> {
        self.read_until(end).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends `req` (verbatim: no `{name}` substitution) and returns the one-line reply without
    /// its `\r\n`.
    pub fn line(&mut self, req: &[u8]) -> String {
        self.send_raw(req);
        let r = self.until(b"\r\n");
        String::from_utf8_lossy(&r[..r.len() - 2]).into_owned()
    }

    /// Writes `bytes` as they are (no `{name}` substitution: for values that may hold braces).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if let Err(e) = self
            .stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
        {
            panic!("[{}] send {}: {e}", self.label, show(bytes));
        }
    }

    /// The value of `name` in this server's `stats` (panics when it has none).
    pub fn stat(&mut self, name: &str) -> String {
        self.send_raw(b"stats\r\n");
        let r = self.until(b"END\r\n");
        let text = String::from_utf8_lossy(&r).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")).map(str::to_string))
            .unwrap_or_else(|| panic!("[{}] no stat {name}", self.label))
    }

    /// `get keys...` in one request: key → value (panics on a malformed reply).
    pub fn get_many(&mut self, keys: &[String]) -> HashMap<String, Vec<u8>> {
        self.send_raw(format!("get {}\r\n", keys.join(" ")).as_bytes());
        let mut out = HashMap::new();
        loop {
            let head = self.until(b"\r\n");
            if head == b"END\r\n" {
                return out;
            }
            let line = String::from_utf8_lossy(&head[..head.len() - 2]).into_owned();
            let parts: Vec<&str> = line.split(' ').collect();
            let len: Option<usize> = match parts[..] {
                ["VALUE", _, _, len, ..] => len.parse().ok(),
                _ => None,
            };
            let Some(len) = len else {
                panic!("[{}] unexpected line {}", self.label, show(&head));
            };
            let mut data = self.read_exact(len + 2);
            assert_eq!(
                &data[len..],
                b"\r\n",
                "[{}] value of {}",
                self.label,
                parts[1]
            );
            data.truncate(len);
            out.insert(parts[1].to_string(), data);
        }
    }

    /// Exactly `n` bytes (within [`REPLY_TIMEOUT`]; panics on a close or the deadline).
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while self.pending.len() < n {
            match self.read_some(deadline, n - self.pending.len()) {
                Ok(0) => panic!("{}", self.mismatch(b"<more bytes>", "connection closed")),
                Ok(_) => {}
                Err(e) => panic!("{}", self.mismatch(b"<more bytes>", &e.to_string())),
            }
        }
        self.pending.drain(..n).collect()
    }

    /// Reads exactly `want.len()` bytes (fewer if the server closes or the deadline passes) and
    /// asserts they are `want`, byte for byte: no placeholders, for replies that may hold braces.
    pub fn expect_exact(&mut self, want: &[u8]) {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut why = None;
        while self.pending.len() < want.len() {
            match self.read_some(deadline, want.len() - self.pending.len()) {
                Ok(0) => why = Some("connection closed".to_string()),
                Ok(_) => continue,
                Err(e) => why = Some(format!("read failed: {e}")),
            }
            break;
        }
        let n = want.len().min(self.pending.len());
        if self.pending[..n] != *want {
            panic!(
                "{}",
                self.mismatch(want, why.as_deref().unwrap_or("wrong bytes"))
            );
        }
        self.pending.drain(..n);
    }

    /// Sends `req` verbatim and expects exactly `want` back ([`Conn::expect_exact`]).
    pub fn roundtrip(&mut self, req: &[u8], want: &[u8]) {
        self.send_raw(req);
        self.expect_exact(want);
    }

    /// Everything until the server closes (a reset counts as a close); panics if it is still
    /// open after [`REPLY_TIMEOUT`].
    pub fn read_to_close(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.read_some(deadline, 64 * 1024) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!(
                    "{}",
                    self.mismatch(b"<closed>", &format!("not closed: {e}"))
                ),
            }
        }
        std::mem::take(&mut self.pending)
    }

    /// The socket itself, for tests that need more control (a half-close, a raw read).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
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

/// Sends `req` on a fresh connection to `addr` and reads until the bytes received end with
/// `end`, the server closes, or [`REPLY_TIMEOUT`] passes; returns whatever arrived (the caller
/// asserts on it, so a short reply shows in its message).
pub fn exchange(addr: SocketAddr, req: &[u8], end: &[u8]) -> Vec<u8> {
    let mut c = Conn::open(addr, "exchange");
    c.send_raw(req);
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while !c.pending.ends_with(end) {
        match c.read_some(deadline, 64 * 1024) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    c.pending
}

/// Where `needle` first starts in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that writes `chunks` one by one, pausing between them, then closes.
    fn trickle(chunks: &'static [&'static [u8]]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            for c in chunks {
                s.write_all(c).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        addr
    }

    #[test]
    fn until_finds_a_terminator_split_across_reads_and_keeps_the_rest() {
        let mut c = Conn::open(trickle(&[b"ab", b"c\r", b"\nEN", b"D\r\nrest"]), "t");
        assert_eq!(c.until(b"\r\n"), b"abc\r\n");
        assert_eq!(c.until(b"END\r\n"), b"END\r\n");
        assert_eq!(c.read_exact(4), b"rest");
        assert_eq!(c.read_to_close(), b"");
    }

    #[test]
    fn read_until_reports_a_close_before_the_terminator() {
        let mut c = Conn::open(trickle(&[b"VALUE k 0 1\r\n"]), "t");
        let e = c.read_until(b"END\r\n").unwrap_err();
        assert!(e.contains("connection closed"), "{e}");
    }

    #[test]
    fn exchange_reads_until_the_reply_ends_with_the_terminator() {
        let got = exchange(trickle(&[b"STORED\r\n", b"END\r\n"]), b"x", b"END\r\n");
        assert_eq!(got, b"STORED\r\nEND\r\n");
    }
}
