//! One pipelined, multiplexed, self-healing connection to a memcached-protocol server.
//!
//! Many tasks share one socket, as redis-rs's `MultiplexedConnection` does: each request goes
//! into a bounded queue with a oneshot for its reply; the connection's task encodes every queued
//! request into one buffer and writes it with a single syscall, and a reader task matches replies
//! to requests in FIFO order. A full queue pushes back on callers instead of growing.
//!
//! The handle never needs replacing: when the socket fails, every waiting request gets an error,
//! and the connection's task reconnects with exponential backoff. While it is down, new requests
//! fail at once rather than wait, so the caller's failover can go elsewhere without delay.
//!
//! Every request sent must produce exactly one reply: callers never send `noreply` or meta `q`
//! requests here (the proxy asks for the reply and drops it), so FIFO matching cannot slip. And
//! because a slip would hand every later reply to the wrong caller, a connection whose reply
//! stream is in doubt is never reused: a request past its deadline, a reply without a request,
//! a reply that cannot answer the request it is matched to ([`Expect`]), an unparsable or
//! oversized reply ([`ReplyLimits`]) — each closes the socket, fails the requests still waiting
//! and has the supervisor open a fresh one.
//!
//! Every wait has a deadline: connecting (the connect timeout), room in the queue and the reply
//! (the request's own deadline). Nothing is written for a request whose key could end the line
//! ([`Request::check_wire`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::error::Error;
use crate::protocol::{Expect, ReplyLimits, Request, Response};
use crate::transport::{Connector, Stream};

/// At most this many queued requests are encoded into one write.
const MAX_BATCH: usize = 128;

/// How a connection connects, queues and reconnects.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Limit on establishing the connection (TCP, TLS handshake, authentication).
    pub connect_timeout: Duration,
    /// Plain TCP or TLS, and credentials (`transport.rs`).
    pub transport: Connector,
    /// Requests queued (not yet written) before callers wait for room.
    pub queue_depth: usize,
    /// First and largest pause between reconnection attempts.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The servers' item size limit: a reply announcing a larger value (plus some slack) is a
    /// broken stream, and the connection is reset rather than buffer it.
    pub max_item_size: usize,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            transport: Connector::plain(),
            queue_depth: 1024,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_item_size: 1024 * 1024,
        }
    }
}

type Reply = oneshot::Sender<Result<Response, Error>>;

struct Pending {
    req: Request,
    reply: Reply,
    /// When the caller stops waiting: not written after it, and a reply still missing at it
    /// puts the connection in doubt.
    deadline: Instant,
}

/// What the reader needs to know of a request whose bytes are on their way.
struct Slot {
    reply: Reply,
    expect: Expect,
    deadline: Instant,
}

struct Shared {
    addr: Arc<str>,
    connected: AtomicBool,
    /// Woken on every successful (re)connection.
    up: Notify,
}

/// A cheap-to-clone handle on one pipelined connection.
#[derive(Clone)]
pub struct Connection {
    tx: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared.addr)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Connection {
    /// Starts a connection to `addr` in the background; it connects (and reconnects) by itself.
    pub fn new(addr: &str, opts: ConnectOptions) -> Connection {
        let (tx, rx) = mpsc::channel(opts.queue_depth.max(1));
        let shared = Arc::new(Shared {
            addr: Arc::from(addr),
            connected: AtomicBool::new(false),
            up: Notify::new(),
        });
        tokio::spawn(supervise(rx, shared.clone(), opts));
        Connection { tx, shared }
    }

    /// Starts a connection and waits until it is up, or fails after the connect timeout.
    pub async fn connect(addr: &str, opts: ConnectOptions) -> Result<Connection, Error> {
        let timeout = opts.connect_timeout;
        let conn = Connection::new(addr, opts);
        conn.wait_connected(timeout).await?;
        Ok(conn)
    }

    /// Waits until the connection is up, for at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let woken = self.shared.up.notified();
            if self.is_connected() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, woken).await.is_err() {
                return Err(Error::Timeout(self.addr().to_string()));
            }
        }
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        &self.shared.addr
    }

    /// Whether the socket is currently up.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Sends `req` and waits for its reply; queueing and reply together take at most `timeout`.
    /// A request that could not be written safely ([`Request::check_wire`]) fails with
    /// [`Error::InvalidKey`] before anything is queued: that is the caller's fault, not the
    /// server's.
    pub async fn request(&self, req: Request, timeout: Duration) -> Result<Response, Error> {
        req.check_wire()?;
        let deadline = Instant::now() + timeout;
        let rx = self.enqueue(req, deadline).await?;
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.closed()),
            Err(_) => Err(Error::Timeout(self.addr().to_string())),
        }
    }

    /// Queues `req` (waiting for room until `deadline` if the queue is full) and returns its
    /// reply's receiver.
    async fn enqueue(
        &self,
        req: Request,
        deadline: Instant,
    ) -> Result<oneshot::Receiver<Result<Response, Error>>, Error> {
        if !self.is_connected() {
            return Err(self.closed());
        }
        let (reply, rx) = oneshot::channel();
        let p = Pending {
            req,
            reply,
            deadline,
        };
        // Room in the queue is the common case: take it without the async acquire.
        match self.tx.try_send(p) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                match tokio::time::timeout_at(deadline, self.tx.send(p)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(self.closed()),
                    Err(_) => return Err(Error::Timeout(self.addr().to_string())),
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(self.closed()),
        }
        Ok(rx)
    }

    fn closed(&self) -> Error {
        Error::ConnectionClosed(self.addr().to_string())
    }
}

/// The connection's life: connect, serve until the socket fails, back off, again; ends when
/// every handle is dropped.
async fn supervise(mut rx: mpsc::Receiver<Pending>, shared: Arc<Shared>, opts: ConnectOptions) {
    let mut backoff = opts.backoff_min;
    loop {
        let attempt =
            tokio::time::timeout(opts.connect_timeout, opts.transport.connect(&shared.addr)).await;
        match attempt {
            Ok(Ok(stream)) => {
                backoff = opts.backoff_min;
                shared.connected.store(true, Ordering::Relaxed);
                shared.up.notify_waiters();
                let ended = serve(stream, &mut rx, &shared, &opts).await;
                shared.connected.store(false, Ordering::Relaxed);
                match ended {
                    Ended::Gone => return,
                    // A stream in doubt on a socket that had been answering: the server is
                    // there, only this socket's replies are untrustworthy. A fresh one at once.
                    Ended::Reset { answered: true } => {
                        tracing::debug!(addr = %shared.addr, "connection in doubt; reopened");
                        continue;
                    }
                    Ended::Reset { answered: false } | Ended::Lost => {
                        tracing::debug!(addr = %shared.addr, "connection lost; reconnecting");
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(addr = %shared.addr, "connect failed: {e}"),
            Err(_) => tracing::debug!(addr = %shared.addr, "connect timed out"),
        }
        // Down: refuse what arrives until the next attempt, so callers fail over at once.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                p = rx.recv() => match p {
                    Some(p) => {
                        let _ = p.reply.send(Err(Error::ConnectionClosed(shared.addr.to_string())));
                    }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(opts.backoff_max);
    }
}

/// How a socket's service ended.
enum Ended {
    /// Every handle is gone: stop for good.
    Gone,
    /// The socket failed (closed, reset, write error).
    Lost,
    /// The reply stream is in doubt (see the module doc); `answered` if some reply on this socket
    /// was matched first.
    Reset { answered: bool },
}

/// Serves one socket until it fails or its reply stream is in doubt.
async fn serve(
    stream: Stream,
    rx: &mut mpsc::Receiver<Pending>,
    shared: &Arc<Shared>,
    opts: &ConnectOptions,
) -> Ended {
    let (rd, mut wr) = tokio::io::split(stream);
    // Reply slots go to the reader before the request bytes go out, so the reader always knows
    // whom the next reply belongs to.
    let (slot_tx, slot_rx) = mpsc::unbounded_channel::<Slot>();
    let mut reader = tokio::spawn(read_loop(
        rd,
        slot_rx,
        shared.addr.clone(),
        opts.max_item_size,
    ));
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let ended = loop {
        tokio::select! {
            p = rx.recv() => {
                let Some(first) = p else { break Ended::Gone };
                let mut next = Some(first);
                let mut n = 0;
                let now = Instant::now();
                while let Some(p) = next.take() {
                    if p.deadline <= now {
                        // Its caller has given up: not a byte of it goes out.
                        let _ = p.reply.send(Err(Error::Timeout(shared.addr.to_string())));
                    } else {
                        p.req.encode(&mut buf);
                        let _ = slot_tx.send(Slot {
                            expect: p.req.expect(),
                            reply: p.reply,
                            deadline: p.deadline,
                        });
                    }
                    n += 1;
                    if n < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if buf.is_empty() {
                    continue;
                }
                // A server that stops reading blocks this write; the reader's deadline on the
                // oldest waiting request ends it.
                tokio::select! {
                    r = write_all(&mut wr, &mut buf) => if let Err(e) = r {
                        tracing::debug!(addr = %shared.addr, "write failed: {e}");
                        break Ended::Lost;
                    },
                    r = &mut reader => break ended_by(r),
                }
            }
            r = &mut reader => break ended_by(r),
        }
    };
    drop(slot_tx);
    // Let the reader fail (or finish) whatever is still waiting.
    let _ = tokio::time::timeout(Duration::from_millis(100), wr.shutdown()).await;
    drop(wr);
    if !reader.is_finished() {
        // The server may keep the socket open; waiting replies are failed by aborting.
        let _ = tokio::time::timeout(Duration::from_millis(100), &mut reader).await;
        reader.abort();
    }
    ended
}

/// Why the reader stopped, as the supervisor sees it.
fn ended_by(r: Result<(Error, bool), tokio::task::JoinError>) -> Ended {
    match r {
        Ok((Error::Timeout(_) | Error::Protocol(_) | Error::LineTooLong, answered)) => {
            Ended::Reset { answered }
        }
        _ => Ended::Lost,
    }
}

async fn write_all(wr: &mut WriteHalf<Stream>, buf: &mut BytesMut) -> std::io::Result<()> {
    let r = wr.write_all(buf).await;
    buf.clear();
    r
}

/// Matches replies to reply slots in order; fails all waiting slots when the socket ends or its
/// stream is in doubt. Returns why it stopped, and whether any reply was matched before.
async fn read_loop(
    mut rd: ReadHalf<Stream>,
    mut slots: mpsc::UnboundedReceiver<Slot>,
    addr: Arc<str>,
    max_item_size: usize,
) -> (Error, bool) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut waiting = Waiting(VecDeque::new(), addr.clone());
    let mut slots_open = true;
    let mut answered = false;
    // Bounds for bytes that arrive with nobody waiting: they are an error either way.
    let orphan = ReplyLimits::for_items(max_item_size, 0);
    let failure: Error = 'outer: loop {
        loop {
            while let Ok(s) = slots.try_recv() {
                waiting.0.push_back(s);
            }
            let limits = waiting
                .0
                .front()
                .map_or(orphan, |s| s.expect.limits(max_item_size));
            match Response::parse_limited(&mut buf, &limits) {
                Ok(Some(resp)) => match waiting.0.pop_front() {
                    Some(slot) if slot.expect.accepts(&resp) => {
                        answered = true;
                        let _ = slot.reply.send(Ok(resp));
                    }
                    Some(slot) => {
                        let e = format!("{addr}: reply {resp:?} cannot answer its request");
                        let _ = slot.reply.send(Err(Error::Protocol(e.clone())));
                        break 'outer Error::Protocol(e);
                    }
                    None => {
                        break 'outer Error::Protocol(format!("{addr}: reply without a request"))
                    }
                },
                Ok(None) => break,
                Err(e) => break 'outer e,
            }
        }
        if !slots_open && waiting.0.is_empty() {
            break Error::ConnectionClosed(addr.to_string());
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16 * 1024);
        }
        let deadline = waiting.0.front().map(|s| s.deadline);
        tokio::select! {
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => break Error::ConnectionClosed(addr.to_string()),
                Ok(_) => {}
                Err(e) => break Error::Io(e),
            },
            s = slots.recv(), if slots_open => match s {
                Some(s) => waiting.0.push_back(s),
                None => slots_open = false,
            },
            // The oldest request's caller has given up: its reply may still come, or never
            // (a request the server took as quiet); either way the stream can no longer be
            // matched to requests with certainty.
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                break Error::Timeout(addr.to_string());
            }
        }
    };
    tracing::debug!(%addr, "reader stopped: {failure}");
    slots.close();
    while let Ok(s) = slots.try_recv() {
        waiting.0.push_back(s);
    }
    (failure, answered)
}

/// Reply slots still waiting; dropping it (also when the reader task is aborted) fails them all.
struct Waiting(VecDeque<Slot>, Arc<str>);

impl Drop for Waiting {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            let _ = s
                .reply
                .send(Err(Error::ConnectionClosed(self.1.to_string())));
        }
    }
}
