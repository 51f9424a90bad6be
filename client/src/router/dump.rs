//! Key dumps a proxy fans out: `stats cachedump` and `lru_crawler metadump` asked of every
//! node of the ring, each on a connection of its own.
//!
//! A dump can be megabytes, so it does not go through the node's pipelined connections,
//! where a reply past their bound resets the connection and fails every request queued on
//! it: a connection opened for the dump (by the transport, so TLS and authentication apply,
//! docs/architecture.md) reads the reply whole, up to [`ReplyLimits::LISTING`] bytes, and is
//! dropped. Past that bound only that node's part fails. Every wait is bounded: the connect
//! timeout, then [`DUMP_IDLE`] per read.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::Router;
use crate::error::Error;
use crate::protocol::{ReplyLimits, Request, Response};

/// Longest wait for a node's dump to make progress (the request written, the next bytes).
const DUMP_IDLE: Duration = Duration::from_secs(10);

/// Read size of a dump connection.
const READ_CHUNK: usize = 64 * 1024;

impl Router {
    /// `req` (`stats cachedump …`, `lru_crawler metadump …`) answered by every node of the
    /// ring, by node name, each on a connection of its own (see the module doc).
    pub async fn dump_each_node(&self, req: &Request) -> Vec<(String, Result<Response, Error>)> {
        let topo = self.topology();
        join_all(
            topo.nodes
                .iter()
                .map(|n| async move { (n.name.clone(), self.dump_one(&n.spec.addr, req).await) }),
        )
        .await
    }

    async fn dump_one(&self, addr: &str, req: &Request) -> Result<Response, Error> {
        let stalled = || Error::Timeout(addr.to_string());
        let connect = self.inner.opts.transport.connect(addr);
        let mut stream = timeout(self.inner.live.connect_timeout(), connect)
            .await
            .map_err(|_| stalled())??;
        let mut wbuf = BytesMut::new();
        req.encode(&mut wbuf);
        timeout(DUMP_IDLE, async {
            stream.write_all(&wbuf).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| stalled())??;
        let limits = ReplyLimits::for_items(self.inner.opts.max_item_size, 0);
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        loop {
            if let Some(r) = Response::parse_limited(&mut rbuf, &limits)? {
                return Ok(r);
            }
            rbuf.reserve(READ_CHUNK);
            let n = timeout(DUMP_IDLE, stream.read_buf(&mut rbuf))
                .await
                .map_err(|_| stalled())??;
            if n == 0 {
                return Err(Error::ConnectionClosed(addr.to_string()));
            }
        }
    }
}
