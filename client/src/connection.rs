//! One pipelined, multiplexed, self-healing connection to a memcached-protocol server.
//!
//! Many tasks share one socket, as redis-rs's `MultiplexedConnection` does, but no request
//! crosses a channel: the caller encodes its request straight into the connection's output
//! buffer and takes a completion slot in the same step, under one short lock, so the order of
//! the bytes is the order of the slots. One task per socket does both directions: it writes
//! whatever the callers put in the buffer (all of it in one syscall), reads the replies and
//! completes the slots in FIFO order, waking each caller. A request costs the caller one lock,
//! an encode and one wake-up of the socket's task (only when the buffer was empty); there is no
//! per-request channel, oneshot, task or timer (docs/architecture.md §3, "The data path").
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
//! (the request's own deadline). Reply deadlines are kept by the socket's task with one timer,
//! set to the oldest waiting request's deadline: requests mostly share one timeout, so a request
//! still waiting at its deadline means the oldest one is overdue too, and the connection is in
//! doubt and reset, failing it. Only a request with a shorter deadline than one queued before
//! it (rare: a probe behind ordinary requests) keeps a timer of its own. Nothing is written for
//! a request whose key could end the line ([`Request::check_wire`]).
//!
//! The socket is the [`Stream`](crate::transport::Stream) that [`ConnectOptions::transport`] opens (plain TCP or TLS,
//! `transport.rs`), driven by one task with no split into halves, which TLS could not have.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use crate::error::Error;
use crate::protocol::{Expect, ReplyLimits, Request, Response};
use crate::transport::{Connector, Stream};

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
    /// The name the server's TLS certificate must carry (`NodeSpec::tls_name`); `None`: the
    /// host of the address.
    pub tls_name: Option<String>,
    /// Asked of every new socket before it takes requests (see [`OnConnect`]).
    pub on_connect: Option<OnConnect>,
}

/// What a new socket must pass before it carries requests: the server's `stats` reply is
/// handed to this (once per connect, within the connect timeout), and the socket opens for
/// requests only after it returns. The router checks there who the server is, so a node that
/// restarted between two requests is fenced before a request can reach the new, empty
/// process (`router/lifecycle.rs`). A socket that cannot be asked (no reply in time, a
/// broken reply) counts as a failed connect and is retried under the backoff.
#[derive(Clone)]
pub struct OnConnect(Arc<dyn Fn(&Response) + Send + Sync>);

impl OnConnect {
    pub fn new(f: impl Fn(&Response) + Send + Sync + 'static) -> OnConnect {
        OnConnect(Arc::new(f))
    }
}

impl std::fmt::Debug for OnConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OnConnect")
    }
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
            tls_name: None,
            on_connect: None,
        }
    }
}

/// Where one request's reply is handed to its caller.
enum Cell {
    /// Unused, on the free list.
    Free,
    /// Waiting for the reply; the waker of the caller's task once it has polled.
    Waiting(Option<Waker>),
    /// Answered (or failed): the caller takes it.
    Done(Result<Response, Error>),
    /// The caller stopped waiting: the reply is dropped when it comes.
    Abandoned,
}

/// What the socket's task needs to know of a request whose bytes are on their way.
struct Slot {
    cell: usize,
    expect: Expect,
    deadline: Instant,
}

/// What callers and the socket's task share, under [`Shared::state`].
struct State {
    /// A socket is serving: requests are taken. While down, requests fail at once.
    open: bool,
    /// Request bytes the socket's task has not taken yet.
    out: BytesMut,
    /// The slots of the requests in `out`, in the order of their bytes.
    queued: VecDeque<Slot>,
    cells: Vec<Cell>,
    free: Vec<usize>,
    /// The latest deadline of a request waiting on this socket (`None` when none waits): a
    /// request with an earlier one needs a timer of its own (see the module doc).
    latest: Option<Instant>,
}

impl State {
    fn cell(&mut self) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.cells[i] = Cell::Waiting(None);
                i
            }
            None => {
                self.cells.push(Cell::Waiting(None));
                self.cells.len() - 1
            }
        }
    }

    fn release(&mut self, i: usize) {
        self.cells[i] = Cell::Free;
        self.free.push(i);
    }

    /// Hands `r` to the caller of `cell`, returning the waker to wake once the lock is gone.
    fn complete(&mut self, cell: usize, r: Result<Response, Error>) -> Option<Waker> {
        match std::mem::replace(&mut self.cells[cell], Cell::Done(r)) {
            Cell::Waiting(w) => w,
            _ => {
                self.release(cell);
                None
            }
        }
    }
}

struct Shared {
    addr: Arc<str>,
    connected: AtomicBool,
    /// Woken on every successful (re)connection.
    up: Notify,
    state: Mutex<State>,
    /// The socket's task, woken when `out` gets bytes or every handle is gone.
    task: AtomicWaker,
    /// `out` holds bytes the socket's task has not taken yet, fewer than [`FILLING_MAX`]: kept
    /// with `out` under the lock, read without it by [`Connection::is_filling`].
    filling: AtomicBool,
    /// Callers waiting for room in a full queue.
    room: Notify,
    /// Every handle was dropped: the task ends.
    gone: AtomicBool,
    queue_depth: usize,
    /// Bytes of encoded requests not yet taken by the socket past which callers wait for room
    /// (one request may always go into an empty buffer): `queue_depth` alone bounds a count,
    /// and 1024 queued 1 MiB sets behind a socket that stopped reading would be 1 GiB.
    queue_bytes: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn closed(&self) -> Error {
        Error::ConnectionClosed(self.addr.to_string())
    }

    fn timeout(&self) -> Error {
        Error::Timeout(self.addr.to_string())
    }
}

/// Unwritten bytes up to which a connection still draws new requests to itself
/// ([`Connection::is_filling`]).
const FILLING_MAX: usize = 64 * 1024;

/// The byte bound of a connection's unwritten requests: four of the largest items, at least
/// 4 MiB (a socket that drains normally empties it at every turn).
fn queue_bytes(max_item_size: usize) -> usize {
    max_item_size.saturating_mul(4).max(4 << 20)
}

/// Ends the socket's task when the last handle goes.
struct Alive(Arc<Shared>);

impl Drop for Alive {
    fn drop(&mut self) {
        self.0.gone.store(true, Ordering::Release);
        self.0.task.wake();
    }
}

/// A cheap-to-clone handle on one pipelined connection.
#[derive(Clone)]
pub struct Connection {
    alive: Arc<Alive>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.shared().addr)
            .field("connected", &self.is_connected())
            .finish()
    }
}

impl Connection {
    /// Starts a connection to `addr` in the background; it connects (and reconnects) by itself.
    pub fn new(addr: &str, opts: ConnectOptions) -> Connection {
        let shared = Arc::new(Shared {
            addr: Arc::from(addr),
            connected: AtomicBool::new(false),
            up: Notify::new(),
            state: Mutex::new(State {
                open: false,
                out: BytesMut::new(),
                queued: VecDeque::new(),
                cells: Vec::new(),
                free: Vec::new(),
                latest: None,
            }),
            task: AtomicWaker::new(),
            filling: AtomicBool::new(false),
            room: Notify::new(),
            gone: AtomicBool::new(false),
            queue_depth: opts.queue_depth.max(1),
            queue_bytes: queue_bytes(opts.max_item_size),
        });
        tokio::spawn(supervise(shared.clone(), opts));
        Connection {
            alive: Arc::new(Alive(shared)),
        }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.alive.0
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
            let woken = self.shared().up.notified();
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
        &self.shared().addr
    }

    /// Whether requests wait in the output buffer for the socket's task to write them, fewer
    /// than [`FILLING_MAX`] bytes of them: one more sent now leaves in the same write.
    pub(crate) fn is_filling(&self) -> bool {
        self.shared().filling.load(Ordering::Relaxed)
    }

    /// Whether the socket is currently up.
    pub fn is_connected(&self) -> bool {
        self.shared().connected.load(Ordering::Relaxed)
    }

    /// Sends `req` and waits for its reply; queueing and reply together take at most `timeout`.
    /// A request that could not be written safely ([`Request::check_wire`]) fails with
    /// [`Error::InvalidKey`] before anything is queued: that is the caller's fault, not the
    /// server's.
    pub async fn request(&self, req: Request, timeout: Duration) -> Result<Response, Error> {
        req.check_wire()?;
        self.request_checked(&req, timeout).await
    }

    /// [`Connection::request`] for a request its caller has already passed through
    /// [`Request::check_wire`] (the engine does, before its health bookkeeping): the key scan
    /// is not paid twice per request.
    ///
    /// The request is encoded into the output buffer and its slot taken here, when called, not
    /// when first polled, so the future returned holds no copy of it: a request is moved
    /// through several futures on its way to a node, and each would otherwise carry it.
    /// A full queue keeps only the request's bytes until there is room.
    pub(crate) fn request_checked<'a>(
        &'a self,
        req: &Request,
        timeout: Duration,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'a {
        let deadline = Instant::now() + timeout;
        // The slot is held by its `ReplyFuture` from the moment it is taken: a future dropped
        // before it is first polled still abandons its slot, so the reply is discarded and
        // the cell comes back.
        let first = match self.try_queue(Outgoing::Request(req), deadline, true) {
            Ok(Some((cell, own_timer))) => Admission::Queued(self.reply_for(cell), own_timer),
            Ok(None) => Admission::Full(Encoded::of(req)),
            Err(e) => Admission::Refused(e),
        };
        // The rare waits (for room, on a timer of its own) are boxed, so the common future is
        // a few words: every future above it in the engine and the proxy holds it.
        async move {
            let (reply, own_timer) = match first {
                Admission::Queued(reply, own_timer) => (reply, own_timer),
                Admission::Full(encoded) => {
                    let (cell, own_timer) =
                        Box::pin(self.queue_when_room(encoded, deadline)).await?;
                    (self.reply_for(cell), own_timer)
                }
                Admission::Refused(e) => return Err(e),
            };
            if own_timer {
                match Box::pin(tokio::time::timeout_at(deadline, reply)).await {
                    Ok(r) => r,
                    Err(_) => Err(self.shared().timeout()),
                }
            } else {
                reply.await
            }
        }
    }

    /// The wait for the reply in slot `cell`.
    fn reply_for(&self, cell: usize) -> ReplyFuture<&Shared> {
        ReplyFuture {
            shared: self.shared(),
            cell: Some(cell),
        }
    }

    /// [`Connection::request_checked`] for a caller that keeps the reply's slot in a queue of
    /// its own instead of awaiting a future per request (the proxy's pipelined one-key gets,
    /// `src/proxy/inflight.rs`): the request is encoded and its slot taken now. `Ok(None)` when
    /// that would need a wait the caller cannot keep without a future: room in a full queue,
    /// or a timer of the request's own (a deadline earlier than one queued before it). The
    /// caller then sends it with [`Connection::request_checked`]; nothing was written. The
    /// caller gives the deadline, having read the clock already for its own bookkeeping.
    pub(crate) fn send_now(
        &self,
        req: &Request,
        deadline: Instant,
    ) -> Result<Option<Awaiting>, Error> {
        let queued = self.try_queue(Outgoing::Request(req), deadline, false)?;
        Ok(queued.map(|(cell, _)| {
            Awaiting(ReplyFuture {
                shared: self.shared().clone(),
                cell: Some(cell),
            })
        }))
    }

    /// Encodes a request into the output buffer and takes its slot; `None` when the queue is
    /// full, or when the request would need a timer of its own and `own_timer` says it cannot
    /// have one. Returns the slot's cell and whether the request needs a timer of its own.
    fn try_queue(
        &self,
        req: Outgoing<'_>,
        deadline: Instant,
        own_timer: bool,
    ) -> Result<Option<(usize, bool)>, Error> {
        let shared = self.shared();
        let mut st = shared.lock();
        if !st.open {
            return Err(shared.closed());
        }
        if st.queued.len() >= shared.queue_depth || st.out.len() >= shared.queue_bytes {
            return Ok(None);
        }
        if !own_timer && matches!(st.latest, Some(l) if deadline < l) {
            return Ok(None);
        }
        let first = st.out.is_empty();
        let expect = match req {
            Outgoing::Request(r) => {
                r.encode(&mut st.out);
                r.expect()
            }
            Outgoing::Encoded(e) => {
                st.out.extend_from_slice(&e.bytes);
                e.expect
            }
        };
        // A buffer this big is not a burst about to leave: its socket is slow to take it
        // (a large value, a peer that reads slowly), and new requests go round robin.
        shared
            .filling
            .store(st.out.len() < FILLING_MAX, Ordering::Relaxed);
        let cell = st.cell();
        let own_timer = match st.latest {
            Some(l) if deadline < l => true,
            _ => {
                st.latest = Some(deadline);
                false
            }
        };
        st.queued.push_back(Slot {
            cell,
            expect,
            deadline,
        });
        drop(st);
        if first {
            shared.task.wake();
        }
        Ok(Some((cell, own_timer)))
    }

    /// [`Connection::try_queue`] for a request that found the queue full, waiting for room
    /// until `deadline`.
    async fn queue_when_room(
        &self,
        req: Encoded,
        deadline: Instant,
    ) -> Result<(usize, bool), Error> {
        let shared = self.shared();
        loop {
            let room = shared.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if let Some(queued) = self.try_queue(Outgoing::Encoded(&req), deadline, true)? {
                return Ok(queued);
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return Err(shared.timeout());
            }
        }
    }
}

/// What became of a request when it was sent: queued with its slot (and whether it needs a
/// timer of its own), kept as bytes until the full queue has room, or refused (connection down).
enum Admission<'a> {
    Queued(ReplyFuture<&'a Shared>, bool),
    Full(Encoded),
    Refused(Error),
}

/// What goes into the output buffer: a request, or the bytes kept of one that waited for room.
enum Outgoing<'r> {
    Request(&'r Request),
    Encoded(&'r Encoded),
}

/// A request that found the queue full, as it will be written, and what its reply must be.
struct Encoded {
    bytes: BytesMut,
    expect: Expect,
}

impl Encoded {
    fn of(req: &Request) -> Encoded {
        let mut bytes = BytesMut::new();
        req.encode(&mut bytes);
        Encoded {
            bytes,
            expect: req.expect(),
        }
    }
}

/// The slot of a request sent with [`Connection::send_now`], held by its caller: polled for
/// the reply like a future, dropped to abandon it. It keeps its connection alive while held.
pub(crate) struct Awaiting(ReplyFuture<Arc<Shared>>);

impl Awaiting {
    /// The reply, once the socket's task has read it (or failed the request).
    pub(crate) fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<Result<Response, Error>> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl std::fmt::Debug for Awaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Awaiting")
            .field("addr", &self.0.shared.addr)
            .field("cell", &self.0.cell)
            .finish()
    }
}

/// A caller's wait for its reply; dropping it abandons the slot (its reply is then discarded).
/// It borrows its connection (`&Shared`) inside a future of the engine, or holds it
/// ([`Awaiting`]) where the slot lives in a caller's own queue.
struct ReplyFuture<S: Borrow<Shared>> {
    shared: S,
    cell: Option<usize>,
}

impl<S: Borrow<Shared> + Unpin> Future for ReplyFuture<S> {
    type Output = Result<Response, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(cell) = self.cell else {
            return Poll::Ready(Err(self.shared.borrow().closed()));
        };
        let mut st = self.shared.borrow().lock();
        if let Cell::Waiting(w) = &mut st.cells[cell] {
            if !matches!(w, Some(w) if w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let r = match std::mem::replace(&mut st.cells[cell], Cell::Free) {
            Cell::Done(r) => r,
            // Not reachable: only this future frees its cell while it waits.
            _ => Err(self.shared.borrow().closed()),
        };
        st.free.push(cell);
        drop(st);
        self.cell = None;
        Poll::Ready(r)
    }
}

impl<S: Borrow<Shared>> Drop for ReplyFuture<S> {
    fn drop(&mut self) {
        let Some(cell) = self.cell else { return };
        let mut st = self.shared.borrow().lock();
        match st.cells[cell] {
            Cell::Waiting(_) => st.cells[cell] = Cell::Abandoned,
            Cell::Done(_) => st.release(cell),
            Cell::Free | Cell::Abandoned => {}
        }
    }
}

/// The connection's life: connect, serve until the socket fails, back off, again; ends when
/// every handle is dropped.
async fn supervise(shared: Arc<Shared>, opts: ConnectOptions) {
    let mut backoff = opts.backoff_min;
    loop {
        if shared.gone.load(Ordering::Acquire) {
            return;
        }
        match open(&shared.addr, &opts).await {
            Ok(stream) => {
                backoff = opts.backoff_min;
                shared.lock().open = true;
                shared.connected.store(true, Ordering::Relaxed);
                shared.up.notify_waiters();
                let ended = serve(stream, &shared, &opts).await;
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
            Err(e) => tracing::debug!(addr = %shared.addr, "connect failed: {e}"),
        }
        // Down: requests are refused at once (`open` is false) until the next attempt, so
        // callers fail over without delay.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        let gone = std::future::poll_fn(|cx| {
            shared.task.register(cx.waker());
            if shared.gone.load(Ordering::Acquire) {
                return Poll::Ready(true);
            }
            pause.as_mut().poll(cx).map(|()| false)
        })
        .await;
        if gone {
            return;
        }
        backoff = (backoff * 2).min(opts.backoff_max);
    }
}

/// Opens a socket (TCP, TLS, authentication: `transport.rs`) and puts it through the
/// [`OnConnect`] check, if there is one, all within the connect timeout. A socket that fails
/// its check (a reply that is not `stats`, too long, or too slow) is reset, not closed: its
/// peer is not speaking memcached, and a reset stops whatever it is still sending.
async fn open(addr: &str, opts: &ConnectOptions) -> Result<Stream, Error> {
    let deadline = Instant::now() + opts.connect_timeout;
    let timed_out = || Error::Timeout(addr.to_string());
    let connect = opts.transport.connect_named(addr, opts.tls_name.as_deref());
    let mut stream = tokio::time::timeout_at(deadline, connect)
        .await
        .map_err(|_| timed_out())??;
    if let Some(check) = &opts.on_connect {
        let asked = tokio::time::timeout_at(
            deadline,
            ask(&mut stream, addr, &Request::Stats { group: None }, opts),
        )
        .await;
        match asked {
            Ok(Ok(reply)) => (check.0)(&reply),
            Ok(Err(e)) => {
                stream.abort();
                return Err(e);
            }
            Err(_) => {
                stream.abort();
                return Err(timed_out());
            }
        }
    }
    Ok(stream)
}

/// Sends `req` on a socket nothing else uses yet and reads its one reply, under the same
/// bounds as replies on an open connection. The caller bounds the time.
async fn ask(
    stream: &mut Stream,
    addr: &str,
    req: &Request,
    opts: &ConnectOptions,
) -> Result<Response, Error> {
    let mut out = BytesMut::new();
    req.encode(&mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let expect = req.expect();
    let limits = expect.limits(opts.max_item_size);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        if let Some(resp) = Response::parse_limited(&mut buf, &limits)? {
            // Nothing else was asked: more bytes, or a reply of another kind, is not memcached.
            if !buf.is_empty() || !expect.accepts(&resp) {
                return Err(Error::UnexpectedReply(format!(
                    "{addr}: {resp:?} cannot answer {req:?} on a new connection"
                )));
            }
            return Ok(resp);
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(Error::ConnectionClosed(addr.to_string()));
        }
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

/// Serves one socket until it fails or its reply stream is in doubt, then fails every request
/// still waiting on it.
async fn serve(mut stream: Stream, shared: &Arc<Shared>, opts: &ConnectOptions) -> Ended {
    let mut io = Io {
        shared,
        max_item_size: opts.max_item_size,
        rbuf: BytesMut::with_capacity(16 * 1024),
        wbuf: BytesMut::with_capacity(16 * 1024),
        written: 0,
        unflushed: false,
        waiting: VecDeque::new(),
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        timer_at: None,
        answered: false,
        done: Vec::new(),
        wakers: Vec::new(),
    };
    let (ended, failure) = std::future::poll_fn(|cx| io.poll(cx, &mut stream)).await;
    tracing::debug!(addr = %shared.addr, "socket ended: {failure}");
    // Requests written (or partly written) and not answered: their bytes may still sit in the
    // kernel's send queue. A reset drops them; a FIN would have them retransmitted whenever
    // the server is reachable again, long after their callers were told they failed and the
    // keys were hinted and repaired (see `Stream::abort`).
    let unanswered = !io.waiting.is_empty();
    io.fail_all();
    drop(io);
    if unanswered {
        stream.abort();
    } else {
        // A polite end for the server; it may keep the socket open, so not for long.
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.shutdown()).await;
    }
    ended
}

/// Dropped with its task (a runtime shutting down): nobody is left waiting on a socket that
/// nothing serves.
impl Drop for Io<'_> {
    fn drop(&mut self) {
        self.fail_all();
    }
}

/// The socket's task state: its two buffers and the slots of requests written or being written.
struct Io<'a> {
    shared: &'a Shared,
    max_item_size: usize,
    rbuf: BytesMut,
    /// Bytes being written; `written` of them are out. Refilled from `State::out` when empty.
    wbuf: BytesMut,
    written: usize,
    unflushed: bool,
    /// Slots of the requests in `wbuf` or already written, oldest first.
    waiting: VecDeque<Slot>,
    /// The one reply timer, set to `timer_at`: at most the oldest waiting slot's deadline.
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    answered: bool,
    /// Replies parsed from one read, handed over under one lock.
    done: Vec<(usize, Result<Response, Error>)>,
    wakers: Vec<Waker>,
}

impl Io<'_> {
    /// Drives the socket; returns how it ended and the error that ended it.
    fn poll<S>(&mut self, cx: &mut Context<'_>, stream: &mut S) -> Poll<(Ended, Error)>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.shared.task.register(cx.waker());
        loop {
            if self.shared.gone.load(Ordering::Acquire) {
                return Poll::Ready((Ended::Gone, self.shared.closed()));
            }
            let mut progress = false;
            // Take what callers queued once the last batch is out.
            if self.written == self.wbuf.len() {
                self.take_queued();
            }
            // A server that stops reading blocks this write; the deadline of the oldest waiting
            // request ends it.
            while self.written < self.wbuf.len() {
                match Pin::new(&mut *stream).poll_write(cx, &self.wbuf[self.written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready((Ended::Lost, self.shared.closed()));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.written += n;
                        self.unflushed = true;
                        progress = true;
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(addr = %self.shared.addr, "write failed: {e}");
                        return Poll::Ready((Ended::Lost, Error::Io(e)));
                    }
                    Poll::Pending => break,
                }
            }
            if self.unflushed && self.written == self.wbuf.len() {
                match Pin::new(&mut *stream).poll_flush(cx) {
                    Poll::Ready(Ok(())) => self.unflushed = false,
                    Poll::Ready(Err(e)) => return Poll::Ready((Ended::Lost, Error::Io(e))),
                    Poll::Pending => {}
                }
            }
            // Replies.
            if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                if self.rbuf.is_empty() && self.rbuf.capacity() > 1024 * 1024 {
                    self.rbuf = BytesMut::with_capacity(16 * 1024);
                } else {
                    self.rbuf.reserve(16 * 1024);
                }
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut *stream), cx, &mut self.rbuf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready((Ended::Lost, self.shared.closed()));
                }
                Poll::Ready(Ok(_)) => {
                    progress = true;
                    if let Err(e) = self.match_replies() {
                        let ended = match e {
                            Error::Protocol(_) | Error::UnexpectedReply(_) | Error::LineTooLong => {
                                Ended::Reset {
                                    answered: self.answered,
                                }
                            }
                            _ => Ended::Lost,
                        };
                        return Poll::Ready((ended, e));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready((Ended::Lost, Error::Io(e))),
                Poll::Pending => {}
            }
            // The oldest request's caller has given up: its reply may still come, or never
            // (a request the server took as quiet); either way the stream can no longer be
            // matched to requests with certainty.
            //
            // The timer is moved only when the oldest deadline is earlier than the one it is set
            // to; when it fires early (its request was answered), it is set again to the oldest
            // deadline then. Deadlines mostly grow in queue order, so this is about one timer
            // operation per timeout period, not one per request.
            if let Some(front) = self.waiting.front() {
                let deadline = front.deadline;
                if self.timer_at.is_none_or(|at| deadline < at) {
                    self.timer.as_mut().reset(deadline);
                    self.timer_at = Some(deadline);
                }
                while self.timer.as_mut().poll(cx).is_ready() {
                    if deadline <= Instant::now() {
                        return Poll::Ready((
                            Ended::Reset {
                                answered: self.answered,
                            },
                            self.shared.timeout(),
                        ));
                    }
                    self.timer.as_mut().reset(deadline);
                    self.timer_at = Some(deadline);
                }
            }
            // Checked on every turn, not only when idle: a server streaming an endless reply
            // keeps this loop busy, and its request's deadline must still end it.
            if progress {
                continue;
            }
            return Poll::Pending;
        }
    }

    /// Moves the queued bytes into `wbuf` and their slots into `waiting`.
    fn take_queued(&mut self) {
        self.wbuf.clear();
        self.written = 0;
        if self.wbuf.capacity() > 1024 * 1024 {
            self.wbuf = BytesMut::with_capacity(16 * 1024);
        }
        let mut st = self.shared.lock();
        if st.out.is_empty() {
            return;
        }
        let was_full =
            st.queued.len() >= self.shared.queue_depth || st.out.len() >= self.shared.queue_bytes;
        std::mem::swap(&mut self.wbuf, &mut st.out);
        self.shared.filling.store(false, Ordering::Relaxed);
        self.waiting.extend(st.queued.drain(..));
        drop(st);
        if was_full {
            self.shared.room.notify_waiters();
        }
    }

    /// Parses every whole reply in `rbuf` and completes the slots they answer, in order.
    fn match_replies(&mut self) -> Result<(), Error> {
        // Bounds for bytes that arrive with nobody waiting: they are an error either way.
        let orphan = ReplyLimits::for_items(self.max_item_size, 0);
        let mut failure = None;
        loop {
            let limits = self
                .waiting
                .front()
                .map_or(orphan, |s| s.expect.limits(self.max_item_size));
            match Response::parse_limited(&mut self.rbuf, &limits) {
                Ok(Some(resp)) => match self.waiting.pop_front() {
                    Some(slot) if slot.expect.accepts(&resp) => {
                        self.answered = true;
                        self.done.push((slot.cell, Ok(resp)));
                    }
                    Some(slot) => {
                        let e = format!("{}: {resp:?} cannot answer its request", self.shared.addr);
                        self.done
                            .push((slot.cell, Err(Error::UnexpectedReply(e.clone()))));
                        failure = Some(Error::UnexpectedReply(e));
                        break;
                    }
                    None => {
                        failure = Some(Error::UnexpectedReply(format!(
                            "{}: a reply without a request",
                            self.shared.addr
                        )));
                        break;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if !self.done.is_empty() {
            let mut st = self.shared.lock();
            for (cell, r) in self.done.drain(..) {
                if let Some(w) = st.complete(cell, r) {
                    self.wakers.push(w);
                }
            }
            if self.waiting.is_empty() && st.queued.is_empty() {
                st.latest = None;
            }
            drop(st);
            for w in self.wakers.drain(..) {
                w.wake();
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Closes the socket to callers and fails every request still waiting: those past their
    /// deadline with a timeout, the others as closed (their stream was cut, not answered).
    fn fail_all(&mut self) {
        let now = Instant::now();
        let mut st = self.shared.lock();
        st.open = false;
        st.out.clear();
        self.shared.filling.store(false, Ordering::Relaxed);
        st.latest = None;
        let queued: Vec<Slot> = st.queued.drain(..).collect();
        for slot in self.waiting.drain(..).chain(queued) {
            let e = if slot.deadline <= now {
                self.shared.timeout()
            } else {
                self.shared.closed()
            };
            if let Some(w) = st.complete(slot.cell, Err(e)) {
                self.wakers.push(w);
            }
        }
        drop(st);
        for w in self.wakers.drain(..) {
            w.wake();
        }
        self.shared.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that reads every request and answers each read with `reply(bytes read)`.
    async fn reading_server(reply: fn(&[u8]) -> Vec<u8>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = vec![0; 4096];
                    while let Ok(n) = s.read(&mut b).await {
                        let out = reply(&b[..n]);
                        if n == 0 || (!out.is_empty() && s.write_all(&out).await.is_err()) {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// A server that reads every request and never answers.
    async fn silent_server() -> String {
        reading_server(|_| Vec::new()).await
    }

    /// A server that accepts and never reads: its socket buffers fill, then nothing moves.
    async fn deaf_server() -> String {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        addr
    }

    /// A server that answers every line with `VERSION 1.6.0`, as memcached answers `version`.
    async fn version_server() -> String {
        reading_server(|read| {
            let lines = read.iter().filter(|&&c| c == b'\n').count();
            b"VERSION 1.6.0\r\n".repeat(lines)
        })
        .await
    }

    /// With an [`OnConnect`] check, a new socket asks `stats` first and hands the reply to the
    /// check before any request is written on it; requests sent meanwhile are refused (the
    /// socket is not open yet), never written before the check.
    #[tokio::test]
    async fn a_new_socket_is_checked_before_it_takes_requests() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let addr = reading_server(|read| {
            let mut out = Vec::new();
            for line in read.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                out.extend_from_slice(match line {
                    b"stats\r" => &b"STAT pid 7\r\nSTAT uptime 5\r\nEND\r\n"[..],
                    _ => &b"VERSION 1.6.0\r\n"[..],
                });
            }
            out
        })
        .await;
        let log = seen.clone();
        let opts = ConnectOptions {
            on_connect: Some(OnConnect::new(move |r| {
                log.lock().unwrap().push(r.clone());
            })),
            ..ConnectOptions::default()
        };
        for _ in 0..2 {
            let conn = Connection::connect(&addr, opts.clone()).await.unwrap();
            let r = conn
                .request(Request::Version, Duration::from_secs(2))
                .await
                .unwrap();
            assert_eq!(r, Response::Version(bytes::Bytes::from_static(b"1.6.0")));
        }
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "once per connect, not per request");
        let Response::Stats(s) = &seen[0] else {
            panic!("{:?}", seen[0])
        };
        assert_eq!(&s[0].0[..], b"pid");
        assert_eq!(&s[0].1[..], b"7");
    }

    /// A socket whose check gets no usable answer never opens: the server is not taken for
    /// one that was checked.
    #[tokio::test]
    async fn a_socket_that_fails_its_check_does_not_open() {
        let addr = reading_server(|_| b"VALUE x 0 1\r\nx\r\nEND\r\n".to_vec()).await;
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(200),
            on_connect: Some(OnConnect::new(|_| panic!("not a stats reply"))),
            ..ConnectOptions::default()
        };
        let r = Connection::connect(&addr, opts).await;
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        let silent = silent_server().await;
        let opts = ConnectOptions {
            connect_timeout: Duration::from_millis(200),
            on_connect: Some(OnConnect::new(|_| {})),
            ..ConnectOptions::default()
        };
        let conn = Connection::new(&silent, opts);
        let r = conn.request(Request::Version, Duration::from_secs(1)).await;
        assert!(matches!(r, Err(Error::ConnectionClosed(_))), "{r:?}");
        assert!(conn
            .wait_connected(Duration::from_millis(500))
            .await
            .is_err());
    }

    /// A request's bytes and slot are taken when it is sent, before its future is polled; a
    /// future dropped unpolled must still give its slot back, and its reply must not reach
    /// the next caller.
    #[tokio::test]
    async fn a_request_dropped_before_it_is_polled_gives_its_slot_back() {
        let conn = Connection::connect(&version_server().await, ConnectOptions::default())
            .await
            .unwrap();
        let timeout = Duration::from_secs(2);
        for _ in 0..3 {
            drop(conn.request_checked(&Request::Version, timeout));
        }
        for _ in 0..3 {
            let r = conn.request(Request::Version, timeout).await.unwrap();
            assert_eq!(r, Response::Version(bytes::Bytes::from_static(b"1.6.0")));
        }
        // The three abandoned replies came first (FIFO) and were discarded.
        let st = conn.shared().lock();
        assert!(st.queued.is_empty(), "no request left waiting");
        assert!(
            st.cells.iter().all(|c| matches!(c, Cell::Free)),
            "every slot is free again"
        );
    }

    /// Unwritten requests are bounded in bytes, not only in count: 64 sets of 512 KiB behind a
    /// server that never reads wait for room (and time out) instead of piling 32 MiB into the
    /// connection's buffer.
    #[tokio::test]
    async fn unwritten_requests_are_bounded_in_bytes() {
        let addr = deaf_server().await;
        let conn = Connection::connect(&addr, ConnectOptions::default())
            .await
            .unwrap();
        let value = bytes::Bytes::from(vec![b'v'; 512 * 1024]);
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let (conn, value) = (conn.clone(), value.clone());
                tokio::spawn(async move {
                    let req = Request::Store {
                        cmd: crate::protocol::StoreCmd::Set,
                        key: bytes::Bytes::from(format!("k{i}")),
                        flags: 0,
                        exptime: 0,
                        cas: 0,
                        value,
                        noreply: false,
                    };
                    conn.request(req, Duration::from_secs(2)).await
                })
            })
            .collect();
        let bound = queue_bytes(ConnectOptions::default().max_item_size) + 513 * 1024;
        let mut most = 0;
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            most = most.max(conn.shared().lock().out.len());
        }
        assert!(most > 0, "the socket backed up");
        assert!(most <= bound, "{most} unwritten bytes, bound {bound}");
        for t in tasks {
            assert!(t.await.unwrap().is_err(), "a deaf server answers nothing");
        }
    }

    /// The socket's one timer watches the oldest request; a request with a shorter deadline
    /// queued behind it must still fail at its own deadline, not at the older one's.
    #[tokio::test]
    async fn a_shorter_deadline_behind_a_longer_one_is_kept() {
        let addr = silent_server().await;
        let conn = Connection::connect(&addr, ConnectOptions::default())
            .await
            .unwrap();
        let first = conn.clone();
        let long = tokio::spawn(async move {
            first
                .request(Request::Version, Duration::from_secs(60))
                .await
        });
        // The long request is queued first.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let r = conn
            .request(Request::Version, Duration::from_millis(100))
            .await;
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "waited {:?}, the older request's deadline",
            started.elapsed()
        );
        // Its caller gave up; the socket is not in doubt until the oldest request's deadline.
        assert!(!long.is_finished());
        long.abort();
    }

    /// The oldest request past its deadline puts the socket in doubt: every request waiting on
    /// it fails (the late one with a timeout), and a fresh socket is opened.
    #[tokio::test]
    async fn an_overdue_request_fails_every_waiting_one_and_reopens() {
        let addr = silent_server().await;
        let conn = Connection::connect(&addr, ConnectOptions::default())
            .await
            .unwrap();
        let c = conn.clone();
        let first = tokio::spawn(async move {
            c.request(Request::Version, Duration::from_millis(100))
                .await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = conn
            .request(Request::Version, Duration::from_secs(60))
            .await;
        assert!(
            matches!(second, Err(Error::ConnectionClosed(_))),
            "{second:?}"
        );
        let first = first.await.unwrap();
        assert!(matches!(first, Err(Error::Timeout(_))), "{first:?}");
        conn.wait_connected(Duration::from_secs(10)).await.unwrap();
    }

    /// A socket closed with a request unanswered is reset, not ended with a FIN: a FIN would
    /// leave the request's unacknowledged bytes to be retransmitted whenever the server is
    /// reachable again (docs/cluster.md, "Writes that time out"). The server sees the reset
    /// as its read failing, where an orderly close reads as the end of the stream.
    #[tokio::test]
    async fn a_socket_closed_with_a_request_unanswered_is_reset() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut b = vec![0; 4096];
            // The request, then whatever ends the stream.
            let first = s.read(&mut b).await.map(|n| b[..n].to_vec());
            let end = s.read(&mut b).await;
            let _ = tx.send((first, end.map_err(|e| e.kind())));
        });
        let conn = Connection::connect(&addr, ConnectOptions::default())
            .await
            .unwrap();
        let r = conn
            .request(Request::Version, Duration::from_millis(100))
            .await;
        assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
        let (first, end) = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("the server saw the socket end")
            .unwrap();
        assert_eq!(first.unwrap(), b"version\r\n");
        assert_eq!(end, Err(std::io::ErrorKind::ConnectionReset));
    }
}
