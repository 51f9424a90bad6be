//! The TCP driver: connections, pipelining and pacing against a server spoken to over TCP.
//!
//! Each connection is one tokio task that owns its socket, an op source and a FIFO of the ops it
//! has in flight. It keeps up to `--pipeline` ops outstanding: replies are matched to ops in
//! order (memcached answers in order), so no request ids are needed. Reading and writing are
//! driven together with `select!`, so a large pipeline can never deadlock with both sides' socket
//! buffers full.
//!
//! Two pacing modes:
//! - **closed loop** (default): a new op is sent as soon as one completes; latency is measured
//!   from the moment the op was sent.
//! - **open loop** (`--rate`): op *k* of a connection is due at `start + phase + k × interval`,
//!   and its latency is measured from that *intended* time, not from when it actually left. If
//!   the server stalls, ops queue up and their wait is counted, which avoids the coordinated
//!   omission that makes closed-loop tails look better than they are.
//!
//! With `--tls-ca FILE` every connection is TLS (rustls, through the client crate's own
//! [`Connector`], the one the proxy uses to reach TLS nodes), trusting the CAs in FILE and
//! checking the server's certificate against the host of the target. A TLS connection is
//! driven exactly as a plain one, with one addition: rustls may keep records it could not write
//! yet, so once the write buffer is handed over the connection also flushes.
//!
//! Faults never stop a run: an error reply is counted against its op; a broken, timed-out or
//! desynchronised connection fails the ops in flight (counted as `failed`) and is re-opened with
//! backoff. Every loop is bounded: sending stops at the deadline (or after `--requests`), the
//! drain is bounded by the request timeout, and reconnecting stops at the deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use hdrhistogram::Histogram;
use ringcache_client::protocol::{MetaStatus, Response};
use ringcache_client::transport::{Connector, Stream, TransportSettings};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::{
    join, measure, ConnResult, Load, LoadResult, PrefillResult, Source, Tickets, PREFILL_MAX,
};
use crate::error::{BenchError, Result};
use crate::report::{self, Counts};
use crate::workload::{Op, Protocol, Workload};

/// How often a connection publishes its latencies to the live (progress) histogram.
const LIVE_FLUSH: Duration = Duration::from_millis(100);

/// Open loop: an op may leave this much before it is due. tokio's timer has 1 ms granularity
/// and fires *after* its deadline, so the timer is set this much early and an op found within
/// this window is sent at once. Latency is measured from the earlier of the due time and the
/// actual send: an op that left early is timed from when it left (never flattered), an op that
/// left late from when it was due (its wait counts). Waiting for the late timer instead would add
/// up to 1 ms of the bench's own lateness to every open-loop latency.
const OPEN_LOOP_SLACK: Duration = Duration::from_millis(1);

/// Bytes kept free in a read buffer before each read.
const READ_RESERVE: usize = 16 * 1024;

/// Resolves `HOST:PORT` to the first address it names.
pub async fn resolve(target: &str) -> Result<SocketAddr> {
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(|e| BenchError::Connect {
            target: target.into(),
            source: e,
        })?;
    addrs.next().ok_or_else(|| BenchError::Connect {
        target: target.into(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
    })
}

/// How connections are opened: plain TCP, or TLS trusting the CAs of `tls_ca` (a PEM file).
/// The files are read once, here, for the whole run.
pub fn connector(tls_ca: Option<&std::path::Path>) -> Result<Connector> {
    let Some(ca) = tls_ca else {
        return Ok(Connector::plain());
    };
    Connector::new(&TransportSettings {
        tls: true,
        ssl_ca_cert: Some(ca.to_path_buf()),
        ..TransportSettings::default()
    })
    .map_err(|e| BenchError::InvalidArg(format!("--tls-ca {}: {e}", ca.display())))
}

/// Opens one connection (with its TLS handshake, bounded by the same timeout), `TCP_NODELAY`
/// set.
async fn connect(dial: &Connector, addr: SocketAddr, timeout: Duration) -> std::io::Result<Stream> {
    tokio::time::timeout(timeout, dial.connect(&addr.to_string()))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

async fn connect_all(
    target: &str,
    dial: &Connector,
    addr: SocketAddr,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Stream>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            connect(dial, addr, timeout)
                .await
                .map_err(|e| BenchError::Connect {
                    target: target.into(),
                    source: e,
                })?,
        );
    }
    Ok(out)
}

/// [`super::run_load`] for a TCP target.
pub(crate) async fn run_load(target: &str, load: Load<'_>) -> Result<LoadResult> {
    let (workload, opts, pids) = (load.workload, load.opts, load.pids);
    let addr = resolve(target).await?;
    let dial = connector(opts.tls_ca.as_deref())?;
    let streams = connect_all(target, &dial, addr, opts.connections, opts.timeout).await?;
    let start = Instant::now();
    let measure_start = start + opts.warmup;
    let interval = opts
        .rate
        .map(|r| Duration::from_secs_f64(opts.connections as f64 / r));
    let shared = Arc::new(Shared {
        workload: Arc::clone(workload),
        addr,
        dial: dial.clone(),
        pipeline: opts.pipeline,
        start,
        measure_start,
        end: measure_start + opts.duration,
        tickets: Tickets::new(opts.requests),
        interval,
        timeout: opts.timeout,
        live: Live::default(),
    });
    let mut handles = Vec::with_capacity(streams.len());
    for (i, s) in streams.into_iter().enumerate() {
        // Stagger open-loop connections over one interval so they do not fire in lockstep.
        let phase = interval.map_or(Duration::ZERO, |iv| {
            iv.mul_f64(i as f64 / opts.connections as f64)
        });
        let conn = Conn::new(
            Arc::clone(&shared),
            Source::Random(workload.generator(i as u64)),
            start + phase,
        );
        handles.push(tokio::spawn(conn.run(s)));
    }
    let progress = opts
        .progress
        .then(|| tokio::spawn(progress(Arc::clone(&shared), target.to_string())));
    measure(handles, measure_start, pids, progress).await
}

/// [`super::prefill`] for a TCP target.
pub(crate) async fn prefill(target: &str, load: Load<'_>) -> Result<PrefillResult> {
    let (workload, opts) = (load.workload, load.opts);
    let conns = load.prefill_tasks();
    let addr = resolve(target).await?;
    let dial = connector(opts.tls_ca.as_deref())?;
    let streams = connect_all(target, &dial, addr, conns, opts.timeout).await?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        workload: Arc::clone(workload),
        addr,
        dial: dial.clone(),
        pipeline: opts.pipeline.max(32),
        start,
        measure_start: start,
        end: start + PREFILL_MAX,
        tickets: Tickets::new(None),
        interval: None,
        timeout: opts.timeout,
        live: Live::default(),
    });
    let mut handles = Vec::with_capacity(conns);
    for (i, s) in streams.into_iter().enumerate() {
        let source = Source::prefill(workload, i, conns);
        handles.push(tokio::spawn(
            Conn::new(Arc::clone(&shared), source, start).run(s),
        ));
    }
    PrefillResult::gather(join(handles).await?, start)
}

/// Totals every connection adds to as it goes, read by the progress line.
#[derive(Debug)]
struct Live {
    ops: AtomicU64,
    get_keys: AtomicU64,
    hits: AtomicU64,
    errors: AtomicU64,
    hist: Mutex<Histogram<u64>>,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            ops: AtomicU64::new(0),
            get_keys: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            hist: Mutex::new(report::new_histogram()),
        }
    }
}

/// What every connection of one run shares.
#[derive(Debug)]
struct Shared {
    workload: Arc<Workload>,
    addr: SocketAddr,
    /// Opens (and re-opens) connections: plain or TLS.
    dial: Connector,
    pipeline: usize,
    /// When load began (warm-up included).
    start: Instant,
    measure_start: Instant,
    /// No op is sent at or after this instant.
    end: Instant,
    tickets: Tickets,
    /// Open-loop spacing of one connection's ops.
    interval: Option<Duration>,
    timeout: Duration,
    live: Live,
}

/// One op waiting for its reply (or replies: a meta multi-get is one `mg` per key).
#[derive(Debug)]
struct Pending {
    /// Send time (closed loop) or intended send time (open loop).
    start: Instant,
    replies_left: u32,
    is_get: bool,
    keys: u32,
    hits: u32,
    error: bool,
    measured: bool,
}

/// How one reply bears on its op.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Hits(u32),
    Ok,
    Error,
}

/// Judges a reply to a get (`is_get`) or a set in the given protocol.
fn judge(protocol: Protocol, is_get: bool, resp: &Response) -> Verdict {
    match (protocol, is_get, resp) {
        (Protocol::Text, true, Response::Values(v)) => {
            Verdict::Hits(u32::try_from(v.len()).unwrap_or(u32::MAX))
        }
        (Protocol::Text, false, Response::Stored | Response::Number(_)) => Verdict::Ok,
        (Protocol::Meta, true, Response::Meta(m)) => match m.status {
            MetaStatus::Va | MetaStatus::Hd => Verdict::Hits(1),
            MetaStatus::En => Verdict::Hits(0),
            _ => Verdict::Error,
        },
        (Protocol::Meta, false, Response::Meta(m)) if m.status == MetaStatus::Hd => Verdict::Ok,
        _ => Verdict::Error,
    }
}

/// Deltas not yet added to [`Live`].
#[derive(Debug, Default)]
struct LiveDelta {
    ops: u64,
    get_keys: u64,
    hits: u64,
    errors: u64,
}

/// One connection's state.
struct Conn {
    shared: Arc<Shared>,
    source: Source,
    protocol: Protocol,
    inflight: VecDeque<Pending>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Bytes of `wbuf` already written.
    wpos: usize,
    hist: Histogram<u64>,
    live_hist: Histogram<u64>,
    live: LiveDelta,
    last_live_flush: Instant,
    counts: Counts,
    warmup: Counts,
    /// Open loop: when the next op is due.
    next_due: Instant,
    done_sending: bool,
    first_error: Option<String>,
}

/// Writes what `buf` holds, or flushes when it holds nothing (one branch of the connection's
/// `select!`, as both borrow the write half).
async fn write_or_flush<W: AsyncWrite + Unpin>(wr: &mut W, buf: &[u8]) -> Event {
    if buf.is_empty() {
        Event::Flushed(wr.flush().await)
    } else {
        Event::Wrote(wr.write(buf).await)
    }
}

/// What woke the connection up.
enum Event {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Flushed(std::io::Result<()>),
    Due,
    Idle,
}

impl Conn {
    fn new(shared: Arc<Shared>, source: Source, first_due: Instant) -> Conn {
        let protocol = shared.workload.spec().protocol;
        let cap = shared.pipeline.min(64);
        Conn {
            shared,
            source,
            protocol,
            inflight: VecDeque::with_capacity(cap),
            rbuf: BytesMut::with_capacity(READ_RESERVE * 2),
            wbuf: BytesMut::with_capacity(READ_RESERVE),
            wpos: 0,
            hist: report::new_histogram(),
            live_hist: report::new_histogram(),
            live: LiveDelta::default(),
            last_live_flush: Instant::now(),
            counts: Counts::default(),
            warmup: Counts::default(),
            next_due: first_due,
            done_sending: false,
            first_error: None,
        }
    }

    fn bucket(&mut self, measured: bool) -> &mut Counts {
        if measured {
            &mut self.counts
        } else {
            &mut self.warmup
        }
    }

    /// Runs the connection to the end, re-opening it after faults until the deadline.
    async fn run(mut self, first: Stream) -> ConnResult {
        let mut stream = Some(first);
        let mut backoff = Duration::from_millis(10);
        loop {
            let s = match stream.take() {
                Some(s) => s,
                None => {
                    if self.done_sending || Instant::now() + backoff >= self.shared.end {
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    match connect(&self.shared.dial, self.shared.addr, self.shared.timeout).await {
                        Ok(s) => {
                            let measured = Instant::now() >= self.shared.measure_start;
                            self.bucket(measured).reconnects += 1;
                            backoff = Duration::from_millis(10);
                            s
                        }
                        Err(e) => {
                            self.note_error(format!("reconnect: {e}"));
                            continue;
                        }
                    }
                }
            };
            match self.drive(s).await {
                Ok(()) => break,
                Err(e) => {
                    self.note_error(e);
                    self.fail_inflight();
                }
            }
        }
        self.flush_live(Instant::now(), true);
        ConnResult {
            counts: self.counts,
            warmup: self.warmup,
            hist: self.hist,
            first_error: self.first_error,
        }
    }

    fn note_error(&mut self, e: String) {
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// Counts every op in flight as failed and forgets the connection's buffers.
    fn fail_inflight(&mut self) {
        while let Some(p) = self.inflight.pop_front() {
            self.bucket(p.measured).failed += 1;
            self.live.errors += 1;
        }
        self.rbuf.clear();
        self.wbuf.clear();
        self.wpos = 0;
    }

    /// Queues as many new ops as pacing and the pipeline allow.
    fn fill(&mut self, now: Instant) {
        while !self.done_sending && self.inflight.len() < self.shared.pipeline {
            let start = match self.shared.interval {
                Some(iv) => {
                    if self.next_due > now + OPEN_LOOP_SLACK {
                        break;
                    }
                    let due = self.next_due;
                    self.next_due += iv;
                    due
                }
                None => now,
            };
            if start >= self.shared.end {
                self.done_sending = true;
                break;
            }
            let measured = start >= self.shared.measure_start;
            if measured && !self.shared.tickets.take() {
                self.done_sending = true;
                break;
            }
            let Some(op) = self.source.next() else {
                self.done_sending = true;
                break;
            };
            let replies = self.shared.workload.encode(&op, &mut self.wbuf);
            let (is_get, keys) = match &op {
                Op::Get { keys } => (true, u32::try_from(keys.len()).unwrap_or(u32::MAX)),
                Op::Set { .. } | Op::Incr { .. } => (false, 0),
            };
            self.inflight.push_back(Pending {
                // Open loop: from the intended time, or from the actual send if it left early.
                start: start.min(now),
                replies_left: replies.max(1),
                is_get,
                keys,
                hits: 0,
                error: false,
                measured,
            });
        }
    }

    /// Drives one connection until sending is done and every reply is in (`Ok`) or it fails.
    async fn drive(&mut self, stream: Stream) -> Result<(), String> {
        match stream {
            Stream::Plain(mut tcp) => {
                let (rd, wr) = tcp.split();
                self.drive_halves(rd, wr, false).await
            }
            Stream::Tls(mut tls) => {
                // rustls's state is one object for both directions: halves that share it.
                let (rd, wr) = tokio::io::split(tls.as_mut());
                self.drive_halves(rd, wr, true).await
            }
        }
    }

    /// Drives a connection's two halves; `tls`: flush after the write buffer is handed over
    /// (rustls may hold records the socket did not take yet; a plain socket holds nothing).
    async fn drive_halves<R, W>(&mut self, mut rd: R, mut wr: W, tls: bool) -> Result<(), String>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut unflushed = false;
        let timeout = self.shared.timeout;
        let mut last_progress = Instant::now();
        let idle = tokio::time::sleep(timeout);
        tokio::pin!(idle);
        let due_timer = tokio::time::sleep_until(self.next_due);
        tokio::pin!(due_timer);
        loop {
            let now = Instant::now();
            self.fill(now);
            let writing = self.wpos < self.wbuf.len();
            if self.done_sending && self.inflight.is_empty() && !writing && !unflushed {
                return Ok(());
            }
            let wait_due = self.shared.interval.is_some()
                && !self.done_sending
                && self.inflight.len() < self.shared.pipeline;
            let wake = self
                .next_due
                .checked_sub(OPEN_LOOP_SLACK)
                .unwrap_or(self.next_due);
            if wait_due && due_timer.deadline() != wake {
                due_timer.as_mut().reset(wake);
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_RESERVE {
                self.rbuf.reserve(READ_RESERVE);
            }
            let event = tokio::select! {
                biased;
                r = rd.read_buf(&mut self.rbuf) => Event::Read(r),
                e = write_or_flush(&mut wr, &self.wbuf[self.wpos..]), if writing || unflushed => e,
                () = &mut due_timer, if wait_due => Event::Due,
                () = &mut idle => Event::Idle,
            };
            let now = Instant::now();
            match event {
                Event::Read(Ok(0)) => return Err("connection closed by server".into()),
                Event::Read(Ok(_)) => {
                    last_progress = now;
                    self.on_replies(now)?;
                    self.flush_live(now, false);
                }
                Event::Read(Err(e)) => return Err(format!("read: {e}")),
                Event::Wrote(Ok(0)) => return Err("write returned 0".into()),
                Event::Wrote(Ok(n)) => {
                    last_progress = now;
                    self.wpos += n;
                    if self.wpos >= self.wbuf.len() {
                        self.wbuf.clear();
                        self.wpos = 0;
                        unflushed = tls;
                    }
                }
                Event::Wrote(Err(e)) => return Err(format!("write: {e}")),
                Event::Flushed(Ok(())) => {
                    last_progress = now;
                    unflushed = false;
                }
                Event::Flushed(Err(e)) => return Err(format!("flush: {e}")),
                Event::Due => {}
                Event::Idle => {
                    let waiting =
                        !self.inflight.is_empty() || self.wpos < self.wbuf.len() || unflushed;
                    if waiting && now >= last_progress + timeout {
                        return Err(format!("no reply for {timeout:?}"));
                    }
                    let next = if waiting {
                        last_progress + timeout
                    } else {
                        now + timeout
                    };
                    idle.as_mut().reset(next);
                }
            }
        }
    }

    /// Consumes every complete reply in the read buffer.
    fn on_replies(&mut self, now: Instant) -> Result<(), String> {
        loop {
            let resp = match Response::parse(&mut self.rbuf) {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad reply: {e}")),
            };
            let Some(p) = self.inflight.front_mut() else {
                return Err("reply with no request outstanding".into());
            };
            match judge(self.protocol, p.is_get, &resp) {
                Verdict::Hits(n) => p.hits = p.hits.saturating_add(n).min(p.keys),
                Verdict::Ok => {}
                Verdict::Error => p.error = true,
            }
            p.replies_left -= 1;
            if p.replies_left == 0 {
                if let Some(p) = self.inflight.pop_front() {
                    self.complete(p, now);
                }
            }
        }
    }

    fn complete(&mut self, p: Pending, now: Instant) {
        let us = now.saturating_duration_since(p.start).as_micros();
        let us = u64::try_from(us).unwrap_or(u64::MAX);
        self.bucket(p.measured)
            .answered(p.is_get, p.keys, p.hits, p.error);
        if p.measured {
            self.hist.saturating_record(us);
        }
        self.live_hist.saturating_record(us);
        self.live.ops += 1;
        if p.is_get {
            self.live.get_keys += u64::from(p.keys);
            self.live.hits += u64::from(p.hits);
        }
        if p.error {
            self.live.errors += 1;
        }
    }

    /// Publishes counters (always) and latencies (every [`LIVE_FLUSH`]) for the progress line.
    fn flush_live(&mut self, now: Instant, force: bool) {
        let live = &self.shared.live;
        let d = std::mem::take(&mut self.live);
        live.ops.fetch_add(d.ops, Ordering::Relaxed);
        live.get_keys.fetch_add(d.get_keys, Ordering::Relaxed);
        live.hits.fetch_add(d.hits, Ordering::Relaxed);
        live.errors.fetch_add(d.errors, Ordering::Relaxed);
        if force || now.saturating_duration_since(self.last_live_flush) >= LIVE_FLUSH {
            self.last_live_flush = now;
            if let Ok(mut h) = live.hist.lock() {
                let _ = h.add(&self.live_hist);
            }
            self.live_hist.reset();
        }
    }
}

/// Prints one line per second on stderr: ops/s, hit ratio and errors of the last second, and
/// the p99 of the measured window so far (of the warm-up while warming up).
async fn progress(shared: Arc<Shared>, target: String) {
    let start = shared.start;
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at(start + second, second);
    let (mut ops0, mut keys0, mut hits0) = (0u64, 0u64, 0u64);
    let mut warm_forgotten = shared.measure_start <= start;
    // Bounded: the run's deadline plus the drain; the caller aborts it earlier in practice.
    let stop = shared.end + shared.timeout * 2;
    while Instant::now() < stop {
        let t = tick.tick().await;
        let live = &shared.live;
        let ops = live.ops.load(Ordering::Relaxed);
        let keys = live.get_keys.load(Ordering::Relaxed);
        let hits = live.hits.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        // The second just ended, [t - 1 s, t), was (at least partly) warm-up.
        let warming = t.checked_sub(second).unwrap_or(start) < shared.measure_start;
        let p99 = match live.hist.lock() {
            Ok(mut h) => {
                let p = (!h.is_empty()).then(|| h.value_at_quantile(0.99));
                if !warm_forgotten && t >= shared.measure_start {
                    // From here on "p99 so far" is of the measured window only.
                    h.reset();
                    warm_forgotten = true;
                }
                p
            }
            Err(_) => None,
        };
        let dk = keys - keys0;
        let hit = if dk > 0 {
            format!("{:6.2}%", (hits - hits0) as f64 * 100.0 / dk as f64)
        } else {
            "      -".into()
        };
        eprintln!(
            "[{:>4}s] {} {:>10} ops/s  hit {}  errors {}  p99 {}{}",
            t.saturating_duration_since(start).as_secs(),
            target,
            ops - ops0,
            hit,
            errors,
            p99.map_or("-".into(), |v| format!("{v}us")),
            if warming { "  (warmup)" } else { "" }
        );
        (ops0, keys0, hits0) = (ops, keys, hits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ringcache_client::protocol::{MetaResponse, Value};

    fn meta(status: MetaStatus) -> Response {
        Response::Meta(MetaResponse {
            status,
            flags: Bytes::new(),
            value: None,
        })
    }

    #[test]
    fn judges_replies() {
        let v = |n: usize| {
            Response::Values(
                (0..n)
                    .map(|i| Value {
                        key: Bytes::from(format!("k{i}")),
                        flags: 0,
                        cas: None,
                        data: Bytes::from_static(b"x"),
                    })
                    .collect(),
            )
        };
        assert_eq!(judge(Protocol::Text, true, &v(0)), Verdict::Hits(0));
        assert_eq!(judge(Protocol::Text, true, &v(3)), Verdict::Hits(3));
        assert_eq!(judge(Protocol::Text, false, &Response::Stored), Verdict::Ok);
        assert_eq!(
            judge(Protocol::Text, false, &Response::NotStored),
            Verdict::Error
        );
        assert_eq!(
            judge(Protocol::Text, true, &Response::Error),
            Verdict::Error
        );
        assert_eq!(
            judge(
                Protocol::Text,
                false,
                &Response::ServerError(Bytes::from_static(b"out of memory"))
            ),
            Verdict::Error
        );
        assert_eq!(
            judge(Protocol::Meta, true, &meta(MetaStatus::Va)),
            Verdict::Hits(1)
        );
        assert_eq!(
            judge(Protocol::Meta, true, &meta(MetaStatus::En)),
            Verdict::Hits(0)
        );
        assert_eq!(
            judge(Protocol::Meta, false, &meta(MetaStatus::Hd)),
            Verdict::Ok
        );
        assert_eq!(
            judge(Protocol::Meta, false, &meta(MetaStatus::Ns)),
            Verdict::Error
        );
        assert_eq!(judge(Protocol::Meta, true, &v(1)), Verdict::Error);
    }
}
