//! One client connection to the proxy: requests are routed concurrently, replies leave in order.
//!
//! Each decoded request becomes a future in a `FuturesOrdered`, so the backend work of many
//! pipelined requests overlaps while their replies are still written in request order. Replies
//! that are ready are gathered and written together. When too many requests are in flight the
//! proxy stops reading the socket, pushing back on the client instead of queueing without bound.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::stream::{FuturesOrdered, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{
    Fault, MetaCmd, MetaFlags, MetaRequest, Request, Response, ServerCodec,
};

use super::order::KeyOrder;
use super::{route, Proxy};
use crate::node::stats::Verb;

type Pending = Pin<Box<dyn Future<Output = Option<Response>> + Send>>;

/// Serves one client until it leaves, sends `quit`, breaks the protocol or the proxy stops.
pub async fn run(stream: TcpStream, proxy: Arc<Proxy>) {
    let (mut rd, mut wr) = stream.into_split();
    let mut codec = ServerCodec::new(Limits {
        max_item_size: proxy.config().max_item_size,
    });
    let max_inflight = proxy.config().max_inflight_per_connection.max(1);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut inflight: FuturesOrdered<Pending> = FuturesOrdered::new();
    let mut order = KeyOrder::default();
    let shutdown = proxy.shutdown.clone();
    // Stop taking requests (quit, protocol desync, shutdown, EOF) but finish those in flight.
    let mut closing = false;
    loop {
        while !closing && inflight.len() < max_inflight {
            match codec.decode(&mut rbuf) {
                Ok(Some(item)) => {
                    let verb = Verb::of(&item);
                    proxy.stats.command(verb);
                    match item {
                        Ok(Request::Quit) => closing = true,
                        Ok(req) if inflight.is_empty() && rbuf.is_empty() => {
                            // The only request in hand (every request of a client that waits
                            // for each reply): run it right here, without a boxed future, an
                            // ordering ticket or the ordered queue.
                            if let Some(r) = route::execute(&proxy, req).await {
                                r.encode(&mut wbuf);
                            }
                        }
                        Ok(req) => {
                            if inflight.is_empty() {
                                order.clear();
                            }
                            let mut ticket = order.admit(&req);
                            let p = proxy.clone();
                            inflight.push_back(Box::pin(async move {
                                ticket.ready().await;
                                let reply = route::execute(&p, req).await;
                                ticket.finish();
                                reply
                            }));
                        }
                        Err(fault) => {
                            proxy.stats.protocol_error(fault.kind());
                            let p = proxy.clone();
                            inflight.push_back(Box::pin(async move {
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
                                    let _ = p.client().meta(md).await;
                                }
                                refusal(fault)
                            }));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!("closing client connection: {e}");
                    proxy.stats.protocol_error("desync");
                    closing = true;
                }
            }
        }
        // Gather every reply that is ready, in order, then write them together.
        while let Some(Some(reply)) = inflight.next().now_or_never() {
            if let Some(r) = reply {
                r.encode(&mut wbuf);
            }
        }
        if !wbuf.is_empty() {
            if wr.write_all(&wbuf).await.is_err() {
                return;
            }
            proxy
                .stats
                .bytes_written
                .fetch_add(wbuf.len() as u64, Ordering::Relaxed);
            wbuf.clear();
        }
        if closing && inflight.is_empty() {
            let _ = wr.shutdown().await;
            return;
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        let can_read = !closing && inflight.len() < max_inflight;
        tokio::select! {
            r = rd.read_buf(&mut rbuf), if can_read => match r {
                Ok(0) | Err(_) => closing = true,
                Ok(n) => {
                    proxy.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                }
            },
            Some(reply) = inflight.next(), if !inflight.is_empty() => {
                if let Some(r) = reply {
                    r.encode(&mut wbuf);
                }
            }
            _ = shutdown.cancelled(), if !closing => closing = true,
        }
    }
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
