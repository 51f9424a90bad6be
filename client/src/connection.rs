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
//! requests here (the proxy asks for the reply and drops it), so FIFO matching cannot slip.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::error::Error;
use crate::protocol::{Request, Response};

/// At most this many queued requests are encoded into one write.
const MAX_BATCH: usize = 128;

/// How a connection connects, queues and reconnects.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// Limit on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Requests queued (not yet written) before callers wait for room.
    pub queue_depth: usize,
    /// First and largest pause between reconnection attempts.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: Duration::from_secs(1),
            queue_depth: 1024,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
        }
    }
}

type Reply = oneshot::Sender<Result<Response, Error>>;

struct Pending {
    req: Request,
    reply: Reply,
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
        let conn = Connection::new(addr, opts);
        conn.wait_connected(opts.connect_timeout).await?;
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

    /// Sends `req` and waits for its reply, for at most `timeout`.
    pub async fn request(&self, req: Request, timeout: Duration) -> Result<Response, Error> {
        let rx = self.enqueue(req).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.closed()),
            Err(_) => Err(Error::Timeout(self.addr().to_string())),
        }
    }

    /// Queues `req` (waiting for room if the queue is full) and returns its reply's receiver.
    pub async fn enqueue(
        &self,
        req: Request,
    ) -> Result<oneshot::Receiver<Result<Response, Error>>, Error> {
        if !self.is_connected() {
            return Err(self.closed());
        }
        let (reply, rx) = oneshot::channel();
        // Room in the queue is the common case: take it without the async acquire.
        match self.tx.try_send(Pending { req, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                self.tx.send(p).await.map_err(|_| self.closed())?;
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
            tokio::time::timeout(opts.connect_timeout, TcpStream::connect(&*shared.addr)).await;
        match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                backoff = opts.backoff_min;
                shared.connected.store(true, Ordering::Relaxed);
                shared.up.notify_waiters();
                let alive = serve(stream, &mut rx, &shared).await;
                shared.connected.store(false, Ordering::Relaxed);
                if !alive {
                    return;
                }
                tracing::debug!(addr = %shared.addr, "connection lost; reconnecting");
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

/// Serves one socket until it fails. Returns false when every handle is gone (stop for good).
async fn serve(stream: TcpStream, rx: &mut mpsc::Receiver<Pending>, shared: &Arc<Shared>) -> bool {
    let (rd, mut wr) = stream.into_split();
    // Reply slots go to the reader before the request bytes go out, so the reader always knows
    // whom the next reply belongs to.
    let (slot_tx, slot_rx) = mpsc::unbounded_channel::<Reply>();
    let mut reader = tokio::spawn(read_loop(rd, slot_rx, shared.addr.clone()));
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let alive = loop {
        tokio::select! {
            p = rx.recv() => {
                let Some(first) = p else { break false };
                let mut next = Some(first);
                let mut n = 0;
                while let Some(p) = next.take() {
                    p.req.encode(&mut buf);
                    let _ = slot_tx.send(p.reply);
                    n += 1;
                    if n < MAX_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
                if let Err(e) = write_all(&mut wr, &mut buf).await {
                    tracing::debug!(addr = %shared.addr, "write failed: {e}");
                    break true;
                }
            }
            _ = &mut reader => break true,
        }
    };
    drop(slot_tx);
    // Let the reader fail (or finish) whatever is still waiting.
    let _ = wr.shutdown().await;
    drop(wr);
    if !reader.is_finished() {
        // The server may keep the socket open; waiting replies are failed by aborting.
        let _ = tokio::time::timeout(Duration::from_millis(100), &mut reader).await;
        reader.abort();
    }
    alive
}

async fn write_all(wr: &mut OwnedWriteHalf, buf: &mut BytesMut) -> std::io::Result<()> {
    let r = wr.write_all(buf).await;
    buf.clear();
    r
}

/// Matches replies to reply slots in order; fails all waiting slots when the socket ends.
async fn read_loop(
    mut rd: OwnedReadHalf,
    mut slots: mpsc::UnboundedReceiver<Reply>,
    addr: Arc<str>,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut waiting = Waiting(VecDeque::new(), addr.clone());
    let mut slots_open = true;
    let failure: Error = 'outer: loop {
        loop {
            match Response::parse(&mut buf) {
                Ok(Some(resp)) => {
                    while let Ok(s) = slots.try_recv() {
                        waiting.0.push_back(s);
                    }
                    match waiting.0.pop_front() {
                        Some(slot) => {
                            let _ = slot.send(Ok(resp));
                        }
                        None => {
                            break 'outer Error::Protocol(format!(
                                "{addr}: reply without a request"
                            ))
                        }
                    }
                }
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
        }
    };
    tracing::debug!(%addr, "reader stopped: {failure}");
    slots.close();
    while let Ok(s) = slots.try_recv() {
        waiting.0.push_back(s);
    }
}

/// Reply slots still waiting; dropping it (also when the reader task is aborted) fails them all.
struct Waiting(VecDeque<Reply>, Arc<str>);

impl Drop for Waiting {
    fn drop(&mut self) {
        for s in self.0.drain(..) {
            let _ = s.send(Err(Error::ConnectionClosed(self.1.to_string())));
        }
    }
}
