//! One client connection to the proxy: requests are routed concurrently, replies leave in order.
//!
//! Each decoded request joins the connection's line of requests in flight (`inflight.rs`), so
//! the backend work of many pipelined requests overlaps while their replies are still written
//! in request order. Replies that are ready are gathered and written together.
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::StreamExt;
use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{
    Fault, GetCmd, MetaCmd, MetaFlags, MetaRequest, Request, Response, ServerCodec,
};

use super::inflight::{Finished, Inflight, Reply};
use super::{route, Proxy};
use crate::server::listener;
use crate::server::stats::Verb;
use crate::server::stream::ServerStream;
use crate::server::Session;

/// Reserved for a request whose reply is a line or two.
const SMALL_REPLY: usize = 512;
/// Reserved for `stats` and the like.
const LISTING_REPLY: usize = 64 * 1024;
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
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let shutdown = proxy.shutdown.clone();
    // TLS handshake and authentication first (docs/operations.md); bytes pipelined after the
    // credentials stay in `rbuf`.
    let idle = proxy.config().idle_timeout();
    let Some((stream, session)) = proxy.security.accept(tcp, &mut rbuf, idle, &shutdown).await
    else {
        return;
    };
    // A plain socket splits into owned halves without a lock; a TLS stream (one state for both
    // directions) needs tokio's split.
    match stream {
        ServerStream::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            serve(rd, wr, rbuf, session, proxy).await
        }
        tls => {
            let (rd, wr) = tokio::io::split(tls);
            serve(rd, wr, rbuf, session, proxy).await
        }
    }
}

/// The connection's loop, on either kind of stream.
async fn serve<R, W>(mut rd: R, mut wr: W, mut rbuf: BytesMut, session: Session, proxy: Arc<Proxy>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let shutdown = proxy.shutdown.clone();
    // One wait for shutdown for the connection's life (made anew in each `select!`, it would
    // join and leave the token's waiter list, a lock each way, on every turn).
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let cfg = proxy.config();
    let mut codec = ServerCodec::new(Limits {
        max_item_size: cfg.max_item_size,
    });
    let max_inflight = cfg.max_inflight_per_connection.max(1);
    let max_item = cfg.max_item_size.max(1);
    // Two pieces of a split multi-get fit the connection's cap, so one is fetched while the
    // one before it is written.
    let piece_keys = (cfg.max_pending_bytes_per_connection / max_item / 2).max(1);
    let idle = cfg.idle_timeout();
    let mut budget = Budget {
        conn_cap: cfg.max_pending_bytes_per_connection,
        global_cap: cfg.max_pending_bytes,
        share: Share {
            total: &proxy.pending_bytes,
            mine: 0,
        },
        reserved: 0,
    };
    drop(cfg);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut inflight = Inflight::new(proxy.clone());
    let mut split: Option<SplitGet> = None;
    // Stop taking requests (quit, protocol desync, shutdown, EOF) but finish those in flight.
    let mut closing = false;
    loop {
        // Held back only by the proxy-wide cap: look again shortly.
        let mut held_back = false;
        // Whether every request that has arrived was started. If not (the byte budget or the
        // in-flight limit stopped us, or a split multi-get has pieces left), the rest is taken
        // up as soon as replies drain: no read would wake us for bytes already in `rbuf`.
        let mut drained = false;
        while inflight.len() < max_inflight {
            // The rest of a split multi-get comes before any later request.
            if let Some(sp) = split.as_mut() {
                let left = sp.keys.len() - sp.next;
                let n = left.min(piece_keys);
                let cost = n * max_item;
                if let Err(global) = budget.admits(cost, &wbuf) {
                    held_back = global;
                    break;
                }
                let keys = sp.keys[sp.next..sp.next + n].to_vec();
                sp.next += n;
                let last = sp.next == sp.keys.len();
                let req = Request::Get {
                    cmd: sp.cmd,
                    exptime: sp.exptime,
                    keys,
                };
                if last {
                    split = None;
                }
                budget.take(cost, &wbuf);
                inflight.push_request(req, cost, Some(last));
                continue;
            }
            if closing {
                drained = true;
                break;
            }
            match codec.decode(&mut rbuf) {
                Ok(Some(item)) => {
                    let verb = Verb::of(&item);
                    proxy.stats.command(verb);
                    // A command the gate refuses this connection: its reply, in order.
                    let item = match item
                        .as_ref()
                        .ok()
                        .and_then(|req| proxy.security.refuse(req, &session))
                    {
                        Some(no) => Err(no),
                        None => Ok(item),
                    };
                    let item = match item {
                        Ok(item) => item,
                        Err(no) => {
                            budget.take(SMALL_REPLY, &wbuf);
                            let reply = (!no.noreply)
                                .then(|| Response::Other(Bytes::from_static(no.line.as_bytes())));
                            inflight.push_boxed(Box::pin(async move {
                                Finished {
                                    reply: Reply::Full(reply),
                                    reserved: SMALL_REPLY,
                                }
                            }));
                            continue;
                        }
                    };
                    match item {
                        Ok(Request::Quit) => closing = true,
                        Ok(Request::Get { cmd, exptime, keys }) if keys.len() > piece_keys => {
                            split = Some(SplitGet {
                                cmd,
                                exptime,
                                keys,
                                next: 0,
                            });
                        }
                        Ok(req)
                            if inflight.is_empty()
                                && rbuf.is_empty()
                                && budget.held(&wbuf) == 0 =>
                        {
                            // The only request in hand (every request of a client that waits
                            // for each reply): run it right here, without a boxed future, an
                            // ordering ticket or the ordered queue.
                            let cost = reserve_for(&req, max_item);
                            budget.take(cost, &wbuf);
                            if let Some(r) = route::execute(&proxy, req).await {
                                r.encode(&mut wbuf);
                            }
                            budget.give_back(cost, &wbuf);
                        }
                        Ok(req) => {
                            let cost = reserve_for(&req, max_item);
                            budget.take(cost, &wbuf);
                            inflight.push_request(req, cost, None);
                        }
                        Err(fault) => {
                            proxy.stats.protocol_error(fault.kind());
                            let p = proxy.clone();
                            budget.take(SMALL_REPLY, &wbuf);
                            inflight.push_boxed(Box::pin(async move {
                                // A failed set must not leave the previous value readable.
                                // The key is held decoded: meta `md` sends a binary one
                                // base64 with `b`, never raw where it could end the line.
                                if let Some(key) = fault.unlink.clone() {
                                    let md = MetaRequest::new(
                                        MetaCmd::Delete,
                                        key,
                                        MetaFlags::default(),
                                        None,
                                    );
                                    let _ = p.router().meta(Box::new(md)).await;
                                }
                                Finished {
                                    reply: Reply::Full(refusal(fault)),
                                    reserved: SMALL_REPLY,
                                }
                            }));
                        }
                    }
                }
                Ok(None) => {
                    drained = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!("closing client connection: {e}");
                    proxy.stats.protocol_error("desync");
                    closing = true;
                }
            }
            // A request too big for what is left of the budget waits in `rbuf`.
            if !budget.has_room(&wbuf) {
                break;
            }
        }
        // Gather every reply that is ready, in order, then write them together.
        while let Some(Some(done)) = inflight.next().now_or_never() {
            finish(done, &mut budget, &mut wbuf);
        }
        if !wbuf.is_empty() {
            if write_out(&mut wr, &wbuf, idle).await.is_err() {
                return;
            }
            proxy
                .stats
                .bytes_written
                .fetch_add(wbuf.len() as u64, Ordering::Relaxed);
            wbuf.clear();
            budget.sync(&wbuf);
            if wbuf.capacity() > 1024 * 1024 {
                wbuf = BytesMut::with_capacity(16 * 1024);
            }
        }
        if closing && inflight.is_empty() && split.is_none() {
            let _ = wr.shutdown().await;
            return;
        }
        // Everything finished and was written while work waited: there is room now (a
        // connection holding nothing is always admitted), and no event would wake us for it.
        if !drained && inflight.is_empty() {
            continue;
        }
        if rbuf.is_empty() && rbuf.capacity() > 1024 * 1024 {
            rbuf = BytesMut::with_capacity(16 * 1024);
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        let can_read =
            !closing && split.is_none() && inflight.len() < max_inflight && budget.has_room(&wbuf);
        // Idle: nothing in flight and nothing arriving.
        let idle_wait = idle.filter(|_| can_read && inflight.is_empty());
        tokio::select! {
            r = rd.read_buf(&mut rbuf), if can_read => match r {
                Ok(0) | Err(_) => closing = true,
                Ok(n) => {
                    proxy.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            Some(done) = inflight.next(), if !inflight.is_empty() => {
                finish(done, &mut budget, &mut wbuf);
            }
            _ = &mut cancelled, if !closing => closing = true,
            // Timers are built only when polled, so a connection without them pays nothing.
            _ = async { tokio::time::sleep(GLOBAL_RETRY).await }, if held_back => {}
            _ = async {
                match idle_wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            }, if idle_wait.is_some() => {
                tracing::debug!("closing client connection idle for {idle_wait:?}");
                return;
            }
        }
    }
}

/// Moves a finished request's reply into `wbuf`, trading its reservation for its real size.
fn finish(done: Finished, budget: &mut Budget<'_>, wbuf: &mut BytesMut) {
    done.reply.encode(wbuf);
    budget.give_back(done.reserved, wbuf);
}

/// Writes `buf`; with an idle limit, gives up once the client took no byte for that long.
async fn write_out<W: AsyncWrite + Unpin>(
    wr: &mut W,
    buf: &[u8],
    idle: Option<Duration>,
) -> std::io::Result<()> {
    listener::write_reply(wr, buf, idle).await
}

/// memcached's answer to a refused request; the proxy never forwards it.
fn refusal(fault: Fault) -> Option<Response> {
    if fault.noreply {
        return None;
    }
    let msg = fault.message;
    Some(if msg == Fault::ERROR {
        Response::Error
    } else if let Some(m) = msg.strip_prefix("CLIENT_ERROR ") {
        Response::ClientError(bytes::Bytes::from_static(m.as_bytes()))
    } else if let Some(m) = msg.strip_prefix("SERVER_ERROR ") {
        Response::ServerError(bytes::Bytes::from_static(m.as_bytes()))
    } else {
        Response::Other(bytes::Bytes::from_static(msg.as_bytes()))
    })
}
