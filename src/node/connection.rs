//! One client connection: read, decode every complete request, execute, write the replies.
//!
//! Replies to all the requests found in one read are gathered in one buffer and written with
//! one `write` when no complete request is left, so a pipelining client costs one syscall per
//! batch instead of one per request. A request split across reads waits in the read buffer for
//! the rest of its bytes. A batch's reply is flushed early once it passes `FLUSH_AT`, so a huge
//! multi-get does not build an unbounded buffer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::ServerCodec;

use super::exec::{self, Flow};
use super::stats::Verb;
use super::Node;

/// Reply bytes gathered before writing even though more requests are waiting.
const FLUSH_AT: usize = 256 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// Serves one connection until the client leaves, sends `quit`, breaks the protocol, or the node
/// shuts down (then in-flight requests are answered first).
pub async fn run(mut stream: TcpStream, node: &Arc<Node>) {
    let mut codec = ServerCodec::new(Limits {
        max_item_size: node.config.max_item_size,
    });
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let mut wbuf = BytesMut::with_capacity(READ_CHUNK);
    let shutdown = node.shutdown.clone();
    loop {
        // Execute everything that has fully arrived.
        let started = Instant::now();
        let mut first_verb = None;
        loop {
            match codec.decode(&mut rbuf) {
                Ok(Some(item)) => {
                    if first_verb.is_none() {
                        first_verb = Some(Verb::of(&item));
                    }
                    match exec::execute(node, item, &mut wbuf) {
                        Flow::Continue => {}
                        Flow::Close => {
                            let _ = write_out(&mut stream, &mut wbuf, node).await;
                            return;
                        }
                        Flow::Metadump => {
                            if write_out(&mut stream, &mut wbuf, node).await.is_err()
                                || exec::stream_metadump(node, &mut stream).await.is_err()
                            {
                                return;
                            }
                        }
                    }
                    if wbuf.len() >= FLUSH_AT
                        && write_out(&mut stream, &mut wbuf, node).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream can't be resynchronised (line too long, HTTP, ...): answer what
                    // was already executed, then hang up as memcached does.
                    tracing::debug!("closing connection: {e}");
                    node.stats.protocol_error("desync");
                    let _ = write_out(&mut stream, &mut wbuf, node).await;
                    return;
                }
            }
        }
        if !wbuf.is_empty() {
            if write_out(&mut stream, &mut wbuf, node).await.is_err() {
                return;
            }
            if let Some(verb) = first_verb {
                node.stats.record_batch(verb, started.elapsed());
            }
        }
        if rbuf.capacity() - rbuf.len() < READ_CHUNK / 4 {
            rbuf.reserve(READ_CHUNK);
        }
        let n = tokio::select! {
            r = stream.read_buf(&mut rbuf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = shutdown.cancelled() => return,
        };
        node.stats.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }
}

async fn write_out(
    stream: &mut TcpStream,
    wbuf: &mut BytesMut,
    node: &Node,
) -> std::io::Result<()> {
    if wbuf.is_empty() {
        return Ok(());
    }
    let r = stream.write_all(wbuf).await;
    node.stats
        .bytes_written
        .fetch_add(wbuf.len() as u64, Ordering::Relaxed);
    wbuf.clear();
    r
}
