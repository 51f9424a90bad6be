//! One client connection to the proxy: requests are routed concurrently, replies leave in order.
//!
//! Each decoded request joins the connection's line of requests in flight (`inflight.rs`), so
//! the backend work of many pipelined requests overlaps while their replies are still written
//! in request order. Replies that are ready are gathered and written together.
//!
//! An idle connection owns no buffer (issue 24): it reads through its worker thread's scratch
//! buffer (`server/scratch.rs`), keeps a read buffer only while a request is partial, drops its
//! write buffer once written, and gives back its line's storage when nothing is in flight.
//!
//! What a connection may hold is bounded in bytes, not only in requests. Every request reserves,
//! when it starts, the most its reply can be (a `get` of n keys: n items of `max_item_size`; a
//! set: its value); a finished reply counts until the socket has taken it. The connection starts
//! no request and reads no bytes while its total is at `max_pending_bytes_per_connection`, or
//! while all connections together are at `max_pending_bytes` (a connection holding nothing may
//! still run one request, so one client's stalled replies never stop the others). A multi-get
//! too big for that is sent to the nodes in pieces, each written out before the pieces after it
//! are asked for: `get k k k …` naming a large value half a million times streams through the
//! proxy instead of being gathered. A client that never reads stalls only itself, and with
//! `idle_timeout` it is closed once it made no progress that long.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::StreamExt;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::response::encode_values;
use ringcache_client::protocol::{Fault, GetCmd, Request, Response, ServerCodec};

use super::inflight::{Finished, Inflight, Reply};
use super::{route, Proxy};
use crate::server::stats::Verb;
use crate::server::stream::ServerStream;
use crate::server::Session;
use crate::server::{listener, scratch};

/// Reserved for a request whose reply is a line or two.
const SMALL_REPLY: usize = 512;
/// Reserved for `stats` and the like.
const LISTING_REPLY: usize = 64 * 1024;
/// What a connection's write buffer starts with when a reply is ready.
const REPLY_START: usize = 4 * 1024;
/// How often a connection held back by the proxy-wide cap looks again.
const GLOBAL_RETRY: Duration = Duration::from_millis(5);

/// The keys of a multi-get not yet asked for.
struct SplitGet {
    cmd: GetCmd,
    exptime: Option<i64>,
    keys: Vec<Bytes>,
    next: usize,
}

/// Bytes in flight and waiting to be written, over every client connection of a proxy.
#[derive(Debug, Default)]
pub struct PendingBytes(AtomicUsize);

impl PendingBytes {
    /// Bytes held now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// One connection's share of [`PendingBytes`], given back when the connection ends.
struct Share<'a> {
    total: &'a PendingBytes,
    mine: usize,
}

impl Share<'_> {
    fn set(&mut self, now: usize) {
        if now > self.mine {
            self.total.0.fetch_add(now - self.mine, Ordering::Relaxed);
        } else if now < self.mine {
            self.total.0.fetch_sub(self.mine - now, Ordering::Relaxed);
        }
        self.mine = now;
    }
}

impl Drop for Share<'_> {
    fn drop(&mut self) {
        self.set(0);
    }
}

/// The most `req`'s reply (and the request itself, for a value) can take.
fn reserve_for(req: &Request, max_item: usize) -> usize {
    match req {
        Request::Get { keys, .. } => keys.len().saturating_mul(max_item),
        Request::Store { value, .. } => value.len() + SMALL_REPLY,
        Request::Meta(m) => max_item + m.value.as_ref().map_or(0, Bytes::len),
        Request::MetaDebug { .. } => SMALL_REPLY,
        Request::Stats { .. } | Request::Metadump { .. } | Request::LruCrawler { .. } => {
            LISTING_REPLY
        }
        _ => SMALL_REPLY,
    }
}

/// The per-connection and proxy-wide caps, and what this connection holds.
struct Budget<'a> {
    conn_cap: usize,
    global_cap: usize,
    share: Share<'a>,
    /// Reserved by requests in flight.
    reserved: usize,
}

impl Budget<'_> {
    /// Bytes this connection holds: in flight plus written to `wbuf` but not yet sent.
    fn held(&self, wbuf: &BytesMut) -> usize {
        self.reserved + wbuf.len()
    }

    /// Whether a request costing `cost` may start; `Err(true)` when only the proxy-wide cap
    /// stops it. A connection holding nothing may always start one.
    fn admits(&self, cost: usize, wbuf: &BytesMut) -> Result<(), bool> {
        let held = self.held(wbuf);
        if held == 0 {
            return Ok(());
        }
        if held + cost > self.conn_cap {
            return Err(false);
        }
        if self.share.total.get() + cost > self.global_cap {
            return Err(true);
        }
        Ok(())
    }

    /// Whether reading more requests makes sense now.
    fn has_room(&self, wbuf: &BytesMut) -> bool {
        let held = self.held(wbuf);
        held == 0 || (held < self.conn_cap && self.share.total.get() < self.global_cap)
    }

    fn take(&mut self, cost: usize, wbuf: &BytesMut) {
        self.reserved += cost;
        self.sync(wbuf);
    }

    fn give_back(&mut self, cost: usize, wbuf: &BytesMut) {
        self.reserved -= cost;
        self.sync(wbuf);
    }

    fn sync(&mut self, wbuf: &BytesMut) {
        let now = self.held(wbuf);
        self.share.set(now);
    }
}

/// Serves one client until it leaves, sends `quit`, breaks the protocol or the proxy stops.
pub async fn run(tcp: TcpStream, proxy: Arc<Proxy>) {
    let mut rbuf = BytesMut::new();
    let shutdown = proxy.shutdown.clone();
    // TLS handshake and authentication first (docs/operations.md); bytes pipelined after the
    // credentials stay in `rbuf`. Boxed: a TLS handshake's state is kilobytes, and inline it
    // would stay part of the connection's future (so of its memory) for the connection's life.
    let idle = proxy.config().idle_timeout();
    let Some((stream, session)) =
        Box::pin(proxy.security.accept(tcp, &mut rbuf, idle, &shutdown)).await
    else {
        return;
    };
    // A plain socket splits into halves without a lock; a TLS stream (one state for both
    // directions) needs tokio's split.
    match stream {
        // Borrowed halves, not `into_split`'s: its `Arc` would be one more allocation that
        // every connection, idle or not, keeps (issue 24).
        ServerStream::Plain(mut tcp) => {
            let (rd, wr) = tcp.split();
            serve(rd, wr, rbuf, session, proxy).await
        }
        tls => {
            let (rd, wr) = tokio::io::split(tls);
            serve(rd, wr, rbuf, session, proxy).await
        }
    }
}

/// The connection's loop, on either kind of stream.
async fn serve<R, W>(rd: R, wr: W, rbuf: BytesMut, session: Session, proxy: Arc<Proxy>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // One wait for shutdown for the connection's life (made anew in each `select!`, it would
    // join and leave the token's waiter list, a lock each way, on every turn).
    let shutdown = proxy.shutdown.clone();
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let mut conn = Conn::new(rd, wr, rbuf, session, &proxy);
    conn.run(cancelled).await;
}

/// What one turn of starting requests left behind.
#[derive(Default)]
struct Turn {
    /// Held back only by the proxy-wide cap: look again shortly.
    held_back: bool,
    /// Whether every request that has arrived was started. If not (the byte budget or the
    /// in-flight limit stopped us, or a split multi-get has pieces left), the rest is taken up
    /// as soon as replies drain: no read would wake us for bytes already in `rbuf`.
    drained: bool,
}

/// What a wait ended with.
enum Woke {
    Go,
    Stop,
}

/// One client connection's state: its stream halves, buffers, budget and requests in flight.
struct Conn<'p, R, W> {
    rd: R,
    wr: W,
    rbuf: BytesMut,
    wbuf: BytesMut,
    session: Session,
    proxy: &'p Arc<Proxy>,
    codec: ServerCodec,
    max_inflight: usize,
    max_item: usize,
    /// Keys per piece of a split multi-get: two pieces fit the connection's cap, so one is
    /// fetched while the one before it is written.
    piece_keys: usize,
    idle: Option<Duration>,
    budget: Budget<'p>,
    /// The line of requests in flight, made for the first request that joins it and dropped
    /// when it empties: its ordered queue and key order are allocations of their own, which
    /// an idle connection, or one whose client waits for each reply (it never uses the line),
    /// need not keep (issue 24).
    inflight: Option<Box<Inflight>>,
    split: Option<SplitGet>,
    /// Stop taking requests (quit, protocol desync, shutdown, EOF) but finish those in flight.
    closing: bool,
}

impl<'p, R, W> Conn<'p, R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    fn new(rd: R, wr: W, rbuf: BytesMut, session: Session, proxy: &'p Arc<Proxy>) -> Self {
        let cfg = proxy.config();
        let max_item = cfg.max_item_size.max(1);
        Conn {
            rd,
            wr,
            rbuf,
            wbuf: BytesMut::new(),
            session,
            proxy,
            codec: ServerCodec::new(Limits {
                max_item_size: cfg.max_item_size,
            }),
            max_inflight: cfg.max_inflight_per_connection.max(1),
            max_item,
            piece_keys: (cfg.max_pending_bytes_per_connection / max_item / 2).max(1),
            idle: cfg.idle_timeout(),
            budget: Budget {
                conn_cap: cfg.max_pending_bytes_per_connection,
                global_cap: cfg.max_pending_bytes,
                share: Share {
                    total: &proxy.pending_bytes,
                    mine: 0,
                },
                reserved: 0,
            },
            inflight: None,
            split: None,
            closing: false,
        }
    }

    /// Serves until the client leaves, sends `quit`, breaks the protocol or the proxy stops.
    async fn run<C: Future<Output = ()> + Unpin>(&mut self, mut cancelled: C) {
        loop {
            let turn = self.start_requests().await;
            if self.flush().await.is_err() {
                return;
            }
            if self.closing && self.line_empty() && self.split.is_none() {
                let _ = self.wr.shutdown().await;
                return;
            }
            // Everything finished and was written while work waited: there is room now (a
            // connection holding nothing is always admitted), and no event would wake us.
            if !turn.drained && self.line_empty() {
                continue;
            }
            if let Woke::Stop = self.wait(&turn, &mut cancelled).await {
                return;
            }
        }
    }

    /// Requests in flight.
    fn in_flight(&self) -> usize {
        self.inflight.as_ref().map_or(0, |line| line.len())
    }

    /// Whether nothing is in flight.
    fn line_empty(&self) -> bool {
        self.inflight.as_ref().is_none_or(|line| line.is_empty())
    }

    /// The line of requests in flight, made if there is none.
    fn line(&mut self) -> &mut Inflight {
        let proxy = self.proxy;
        self.inflight
            .get_or_insert_with(|| Box::new(Inflight::new(proxy.clone())))
    }

    /// Starts every request that has arrived, as far as the in-flight limit and the budget
    /// allow.
    async fn start_requests(&mut self) -> Turn {
        let mut turn = Turn::default();
        while self.in_flight() < self.max_inflight {
            // The rest of a split multi-get comes before any later request.
            if self.split.is_some() {
                match self.next_piece() {
                    Ok(()) => continue,
                    Err(global) => {
                        turn.held_back = global;
                        break;
                    }
                }
            }
            if self.closing {
                turn.drained = true;
                break;
            }
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(item)) => self.start(item).await,
                Ok(None) => {
                    turn.drained = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!("closing client connection: {e}");
                    self.proxy.stats.protocol_error("desync");
                    self.closing = true;
                }
            }
            // A request too big for what is left of the budget waits in `rbuf`.
            if !self.budget.has_room(&self.wbuf) {
                break;
            }
        }
        turn
    }

    /// Starts the next piece of the split multi-get; `Err(global)` when the budget stops it
    /// (`global`: only the proxy-wide cap).
    fn next_piece(&mut self) -> Result<(), bool> {
        let Some(sp) = self.split.as_mut() else {
            return Ok(());
        };
        let n = (sp.keys.len() - sp.next).min(self.piece_keys);
        let cost = n * self.max_item;
        self.budget.admits(cost, &self.wbuf)?;
        let keys = sp.keys[sp.next..sp.next + n].to_vec();
        sp.next += n;
        let last = sp.next == sp.keys.len();
        let req = Request::Get {
            cmd: sp.cmd,
            exptime: sp.exptime,
            keys,
        };
        if last {
            self.split = None;
        }
        self.budget.take(cost, &self.wbuf);
        self.line().push_request(req, cost, Some(last));
        Ok(())
    }

    /// Counts, gates and starts one decoded request (or a recoverable protocol fault).
    async fn start(&mut self, item: Result<Request, Fault>) {
        let proxy = self.proxy;
        proxy.stats.command(Verb::of(&item));
        if self.gated(&item) {
            return;
        }
        match item {
            Ok(Request::Quit) => self.closing = true,
            Ok(Request::Get { cmd, exptime, keys }) if keys.len() > self.piece_keys => {
                self.split = Some(SplitGet {
                    cmd,
                    exptime,
                    keys,
                    next: 0,
                });
            }
            Ok(req)
                if self.line_empty()
                    && self.rbuf.is_empty()
                    && self.budget.held(&self.wbuf) == 0 =>
            {
                // The only request in hand (every request of a client that waits for each
                // reply): run it right here, without a boxed future, an ordering ticket or the
                // ordered queue.
                let cost = reserve_for(&req, self.max_item);
                self.budget.take(cost, &self.wbuf);
                // Boxed: the routing future's state (a replicated write's is kilobytes) would
                // otherwise be part of the connection's future, so of every idle connection.
                if let Some(r) = Box::pin(route::execute(proxy, req)).await {
                    r.encode(reply_buf(&mut self.wbuf));
                }
                self.budget.give_back(cost, &self.wbuf);
            }
            Ok(req) => {
                let cost = reserve_for(&req, self.max_item);
                self.budget.take(cost, &self.wbuf);
                self.line().push_request(req, cost, None);
            }
            Err(fault) => {
                proxy.stats.protocol_error(fault.kind());
                let p = proxy.clone();
                self.budget.take(SMALL_REPLY, &self.wbuf);
                self.line().push_boxed(Box::pin(async move {
                    Finished {
                        reply: Reply::Full(route::refused(&p, fault).await),
                        reserved: SMALL_REPLY,
                    }
                }));
            }
        }
    }

    /// Whether the gate refuses `item` on this connection; if so its refusal takes its place in
    /// line.
    fn gated(&mut self, item: &Result<Request, Fault>) -> bool {
        let Some(no) = item
            .as_ref()
            .ok()
            .and_then(|req| self.proxy.security.refuse(req, &self.session))
        else {
            return false;
        };
        self.budget.take(SMALL_REPLY, &self.wbuf);
        let reply = (!no.noreply).then(|| Response::Other(Bytes::from_static(no.line.as_bytes())));
        self.line().push_boxed(Box::pin(async move {
            Finished {
                reply: Reply::Full(reply),
                reserved: SMALL_REPLY,
            }
        }));
        true
    }

    /// Gathers every reply that is ready, in order, and writes them together.
    async fn flush(&mut self) -> std::io::Result<()> {
        while let Some(done) = self
            .inflight
            .as_mut()
            .and_then(|line| line.next().now_or_never().flatten())
        {
            finish(done, &mut self.budget, &mut self.wbuf);
        }
        if self.wbuf.is_empty() {
            return Ok(());
        }
        write_out(&mut self.wr, &self.wbuf, self.idle).await?;
        self.proxy
            .stats
            .bytes_written
            .fetch_add(self.wbuf.len() as u64, Ordering::Relaxed);
        // Written: the buffer goes with its bytes (issue 24), the next replies get a new one.
        self.wbuf = BytesMut::new();
        self.budget.sync(&self.wbuf);
        Ok(())
    }

    /// Waits for bytes from the client, a finished request, shutdown or a timer.
    async fn wait<C: Future<Output = ()> + Unpin>(
        &mut self,
        turn: &Turn,
        cancelled: &mut C,
    ) -> Woke {
        // No buffer waits without bytes in it: reads go through the worker's scratch buffer,
        // and a partial request keeps a buffer of its own size, not of the read that brought it.
        if self.rbuf.is_empty() {
            self.rbuf = BytesMut::new();
        } else if self.rbuf.capacity() > 2 * self.rbuf.len() + 1024 {
            self.rbuf = BytesMut::from(&self.rbuf[..]);
        }
        if self.line_empty() {
            self.inflight = None;
        }
        let can_read = !self.closing
            && self.split.is_none()
            && self.in_flight() < self.max_inflight
            && self.budget.has_room(&self.wbuf);
        // Idle: nothing in flight and nothing arriving.
        let idle_wait = self.idle.filter(|_| can_read && self.line_empty());
        let waiting = self.in_flight() > 0;
        let held_back = turn.held_back;
        let closing = self.closing;
        tokio::select! {
            r = scratch::read_into(&mut self.rd, &mut self.rbuf), if can_read => match r {
                Ok(0) | Err(_) => self.closing = true,
                Ok(n) => {
                    self.proxy.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            Some(done) = next_done(self.inflight.as_deref_mut()), if waiting => {
                finish(done, &mut self.budget, &mut self.wbuf);
            }
            _ = cancelled, if !closing => self.closing = true,
            // Timers are built only when polled, so a connection without them pays nothing,
            // and boxed, so that they are not part of every connection's future either.
            _ = async { Box::pin(tokio::time::sleep(GLOBAL_RETRY)).await }, if held_back => {}
            _ = async {
                match idle_wait {
                    Some(d) => Box::pin(tokio::time::sleep(d)).await,
                    None => std::future::pending().await,
                }
            }, if idle_wait.is_some() => {
                tracing::debug!("closing client connection idle for {idle_wait:?}");
                return Woke::Stop;
            }
        }
        Woke::Go
    }
}

/// The next reply of `line`, in order (`None` when there is no line or nothing in it).
async fn next_done(line: Option<&mut Inflight>) -> Option<Finished> {
    match line {
        Some(line) => line.next().await,
        None => None,
    }
}

/// Moves a finished request's reply into `wbuf`, trading its reservation for its real size.
fn finish(done: Finished, budget: &mut Budget<'_>, wbuf: &mut BytesMut) {
    match done.reply {
        Reply::Full(Some(r)) => r.encode(reply_buf(wbuf)),
        Reply::Full(None) => {}
        Reply::Piece { values, last } => encode_values(reply_buf(wbuf), &values, last),
    }
    budget.give_back(done.reserved, wbuf);
}

/// `wbuf`, given the room most replies need when it has none (it is dropped once written), so
/// a reply is not gathered through a series of small reallocations.
fn reply_buf(wbuf: &mut BytesMut) -> &mut BytesMut {
    if wbuf.capacity() == 0 {
        wbuf.reserve(REPLY_START);
    }
    wbuf
}

/// Writes `buf`; with an idle limit, gives up once the client took no byte for that long.
async fn write_out<W: AsyncWrite + Unpin>(
    wr: &mut W,
    buf: &[u8],
    idle: Option<Duration>,
) -> std::io::Result<()> {
    listener::write_reply(wr, buf, idle).await
}
