//! One client connection: read, decode every complete request, execute, write the replies.
//!
//! Replies to all the requests found in one read are gathered in one buffer and written with
//! one `write` when no complete request is left, so a pipelining client costs one syscall per
//! batch instead of one per request. A request split across reads waits in the read buffer for
//! the rest of its bytes. A batch's reply is flushed early once it passes `FLUSH_AT`, and a
//! multi-get is answered in pieces of [`exec::REPLY_CHUNK`] bytes, each written before the next
//! is gathered: the write buffer never holds much more than that plus one item, however many
//! times a request names a large value.
//!
//! An idle connection owns no buffer (issue 24): it waits for bytes without one, reads through
//! its worker thread's scratch buffer (`server/scratch.rs`), keeps a read buffer of its own only
//! while a request is partial (then only as large as that request's bytes) and drops its write
//! buffer once the batch's replies are written.
//!
//! Writes wait for the socket (back-pressure): a client that never reads stalls only its own
//! connection. With `idle_timeout` set, a connection that makes no progress that long — no
//! request bytes arrive while it waits for one, or the socket takes no reply bytes — is closed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::server::stream::ServerStream;
use crate::server::Session;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::ServerCodec;

use super::exec::{self, Flow};
use super::stats::Verb;
use super::Node;
use crate::server::{listener, scratch};

/// Reply bytes gathered before writing even though more requests are waiting.
const FLUSH_AT: usize = 256 * 1024;
/// What a batch's write buffer starts with: most batches' replies fit, so they are gathered
/// without growing it step by step.
const REPLY_START: usize = 4 * 1024;

/// Serves one connection until the client leaves, sends `quit`, breaks the protocol, or the node
/// shuts down (then in-flight requests are answered first). `tls`: whether the listener's TLS
/// applies (false on a `notls:` listener).
pub async fn run(tcp: TcpStream, tls: bool, node: &Arc<Node>) {
    let mut codec = ServerCodec::new(Limits {
        max_item_size: node.config.max_item_size,
    });
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let shutdown = node.shutdown.clone();
    let idle = node.config.idle_timeout();
    // TLS handshake and authentication first (docs/operations.md); bytes pipelined after the
    // credentials stay in `rbuf`.
    // Boxed: a TLS handshake's state is kilobytes, and inline it would stay part of the
    // connection's future (so of its memory) for the connection's life.
    let Some((mut stream, session)) = Box::pin(
        node.security
            .accept_on(tcp, tls, &mut rbuf, idle, &shutdown),
    )
    .await
    else {
        return;
    };
    // One wait for shutdown for the connection's life: made anew in every `select!` below, it
    // would join and leave the token's waiter list (a lock each way) on every read.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    loop {
        // Execute everything that has fully arrived.
        let started = Instant::now();
        let mut first_verb = None;
        if !rbuf.is_empty() && wbuf.capacity() == 0 {
            wbuf.reserve(REPLY_START);
        }
        // Decoding and executing is synchronous; only what it stops for waits, so none of its
        // locals (the request, the multi-get's cursor) is part of the connection's future.
        loop {
            match execute_some(
                node,
                &mut codec,
                &session,
                &mut rbuf,
                &mut wbuf,
                &mut first_verb,
            ) {
                Pause::Done => break,
                Pause::Flush => {
                    if write_out(&mut stream, &mut wbuf, node, idle).await.is_err() {
                        return;
                    }
                }
                Pause::More(cursor) => {
                    // Boxed: a multi-get answered in pieces is rare, and its state would
                    // otherwise be part of every connection's future.
                    let more = more_pieces(&mut stream, &mut wbuf, node, idle, &shutdown, cursor);
                    if Box::pin(more).await.is_err() {
                        return;
                    }
                }
                Pause::Close => {
                    let _ = write_out(&mut stream, &mut wbuf, node, idle).await;
                    return;
                }
                Pause::Metadump => {
                    // Boxed: rare, and its state would otherwise be part of every
                    // connection's future.
                    if Box::pin(metadump(&mut stream, &mut wbuf, node, idle))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        if !wbuf.is_empty() {
            if write_out(&mut stream, &mut wbuf, node, idle).await.is_err() {
                return;
            }
            if let Some(verb) = first_verb {
                node.stats.record_batch(verb, started.elapsed());
            }
        }
        // Waiting for the next bytes holds no buffer that holds no bytes: the write buffer is
        // empty now, the read buffer is dropped once decoded, and a partial request keeps
        // a buffer of its own size, not of the read's that brought it.
        wbuf = BytesMut::new();
        if rbuf.is_empty() {
            rbuf = BytesMut::new();
        } else if rbuf.capacity() > 2 * rbuf.len() + 1024 {
            rbuf = BytesMut::from(&rbuf[..]);
        }
        let n = match idle {
            None => tokio::select! {
                r = scratch::read_into(&mut stream, &mut rbuf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
                _ = &mut cancelled => return,
            },
            Some(limit) => tokio::select! {
                r = scratch::read_into(&mut stream, &mut rbuf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                },
                _ = &mut cancelled => return,
                // Boxed: a timer is 112 bytes, and inline it would be part of the
                // connection's future whether `idle_timeout` is set or not (issue 24).
                _ = Box::pin(tokio::time::sleep(limit)) => {
                    tracing::debug!("closing connection idle for {limit:?}");
                    return;
                }
            },
        };
        node.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// What [`execute_some`] stopped for.
enum Pause {
    /// No complete request is left.
    Done,
    /// The replies passed [`FLUSH_AT`]: write them, then go on.
    Flush,
    /// A multi-get too big to answer at once: write what is gathered, then its other pieces.
    More(exec::GetCursor),
    /// Write what is gathered and close (`quit`, `shutdown`, a protocol desync).
    Close,
    /// Write what is gathered, then stream `lru_crawler metadump`.
    Metadump,
}

/// Decodes and executes the complete requests in `rbuf`, gathering their replies in `wbuf`,
/// until none is left or one needs the socket.
fn execute_some(
    node: &Arc<Node>,
    codec: &mut ServerCodec,
    session: &Session,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    first_verb: &mut Option<Verb>,
) -> Pause {
    loop {
        let item = match codec.decode(rbuf) {
            Ok(Some(item)) => item,
            Ok(None) => return Pause::Done,
            Err(e) => {
                // The stream can't be resynchronised (line too long, HTTP, ...): answer what
                // was already executed, then hang up as memcached does.
                tracing::debug!("closing connection: {e}");
                node.stats.protocol_error("desync");
                return Pause::Close;
            }
        };
        if first_verb.is_none() {
            *first_verb = Some(Verb::of(&item));
        }
        if let Some(no) = item
            .as_ref()
            .ok()
            .and_then(|req| node.security.refuse(req, session))
        {
            node.stats.command(Verb::of(&item));
            if !no.noreply {
                ringcache_client::protocol::reply::message(wbuf, no.line);
            }
            continue;
        }
        match exec::execute(node, item, wbuf) {
            Flow::Continue => {}
            Flow::More(cursor) => return Pause::More(cursor),
            Flow::Close => return Pause::Close,
            Flow::Metadump => return Pause::Metadump,
        }
        if wbuf.len() >= FLUSH_AT {
            return Pause::Flush;
        }
    }
}

/// Writes what `wbuf` holds and the other pieces of the multi-get at `cursor`, each written
/// before the next is gathered.
async fn more_pieces(
    stream: &mut ServerStream,
    wbuf: &mut BytesMut,
    node: &Arc<Node>,
    idle: Option<Duration>,
    shutdown: &CancellationToken,
    cursor: exec::GetCursor,
) -> Result<(), ()> {
    let mut flow = Flow::More(cursor);
    while let Flow::More(cursor) = flow {
        // A reply that could run for hours does not hold up shutdown.
        if write_out(stream, wbuf, node, idle).await.is_err() || shutdown.is_cancelled() {
            return Err(());
        }
        // Lookups without hits write nothing: yield so the worker thread's other connections
        // run between pieces anyway.
        tokio::task::yield_now().await;
        flow = exec::resume(node, cursor, wbuf);
    }
    match flow {
        Flow::Continue | Flow::More(_) => {}
        Flow::Close => {
            let _ = write_out(stream, wbuf, node, idle).await;
            return Err(());
        }
        Flow::Metadump => metadump(stream, wbuf, node, idle).await.map_err(|_| ())?,
    }
    if wbuf.len() >= FLUSH_AT {
        write_out(stream, wbuf, node, idle).await.map_err(|_| ())?;
    }
    Ok(())
}

/// Writes what `wbuf` holds, then streams `lru_crawler metadump`'s listing.
async fn metadump(
    stream: &mut ServerStream,
    wbuf: &mut BytesMut,
    node: &Arc<Node>,
    idle: Option<Duration>,
) -> std::io::Result<()> {
    write_out(stream, wbuf, node, idle).await?;
    let mut dump = exec::MetadumpChunks::start(node);
    while let Some(mut chunk) = dump.next().await {
        // A router listing a draining node's keys still needs it, however long the listing
        // streams.
        node.drain.touch();
        write_out(stream, &mut chunk, node, idle).await?;
    }
    Ok(())
}

/// Writes and clears `wbuf`. With an idle limit, fails once the socket has taken no byte for
/// that long (a client that stopped reading), so a stalled connection is let go.
async fn write_out(
    stream: &mut ServerStream,
    wbuf: &mut BytesMut,
    node: &Node,
    idle: Option<Duration>,
) -> std::io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    let r = listener::write_reply(stream, wbuf, idle).await;
    node.stats
        .bytes_written
        .fetch_add(wbuf.len() as u64, Ordering::Relaxed);
    wbuf.clear();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Server;
    use std::future::Future;

    /// The size of the future `f` returns, without making one.
    fn future_size<A, B, F: Future>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// What every idle connection keeps of its future stays small (issue 24): a connection's
    /// future is as large as its largest state, so a large state added inline (a handshake, a
    /// waiting write with its timers, a routing future) shows here. Debug builds lay futures
    /// out less tightly than release ones; the bounds hold for both (bench/ANALYSIS.md has
    /// the release figures).
    #[test]
    fn sizes() {
        let node = future_size(|n: Arc<Node>, tcp: TcpStream| n.serve(tcp, true));
        let proxy = future_size(|p: Arc<crate::proxy::Proxy>, tcp: TcpStream| p.serve(tcp, true));
        let write = future_size(|s: &'static mut ServerStream, w: &'static [u8]| {
            listener::write_reply(s, w, Some(Duration::from_secs(1)))
        });
        eprintln!("connection futures: node {node} B, proxy {proxy} B, write_reply {write} B");
        assert!(node <= 600, "node connection future: {node} B");
        assert!(proxy <= 1176, "proxy connection future: {proxy} B");
        assert!(write <= 128, "write_reply's future: {write} B");
    }
}
