//! The accept loop shared by the node and the proxy: connection limit, one task per connection,
//! graceful shutdown.
//!
//! Shutdown stops accepting at once; each connection finishes the requests it has already read,
//! writes their replies and closes; the loop waits for that (bounded) before returning.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ringcache_client::protocol::{reply, Fault};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long writing the refusal to a connection past the limit may take.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// How long shutdown waits for open connections to finish their in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Connection counters under memcached's `stats` names.
#[derive(Debug, Default)]
pub struct ConnCounters {
    pub curr_connections: AtomicU64,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
}

/// Accepts connections until `shutdown` is cancelled, running `handle` for each; past
/// `max_connections` open ones, a newcomer gets memcached's `ERROR Too many open connections`
/// and is closed.
pub async fn serve<H, F>(
    listener: TcpListener,
    max_connections: usize,
    counters: Arc<ConnCounters>,
    shutdown: CancellationToken,
    handle: H,
) where
    H: Fn(TcpStream) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let tracker = TaskTracker::new();
    loop {
        let (mut stream, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(v) => v,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let open = counters.curr_connections.fetch_add(1, Ordering::Relaxed) + 1;
        if open > max_connections as u64 {
            counters.curr_connections.fetch_sub(1, Ordering::Relaxed);
            counters
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            // memcached's answer (drive_machine, conn_listening, with maxconns_fast): write the
            // line and close. The write lands in an empty socket buffer; the deadline is for form.
            tracker.spawn(async move {
                let mut line = Vec::new();
                reply::message(&mut line, Fault::TOO_MANY_CONNECTIONS);
                let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
                    let _ = stream.write_all(&line).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        }
        counters.total_connections.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let fut = handle(stream);
        let counters = counters.clone();
        tracker.spawn(async move {
            fut.await;
            counters.curr_connections.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Writes all of `buf` to a client connection and flushes it, within `idle` when the server has
/// `idle_timeout` set (see [`write_all_within`]). The flush matters over TLS: rustls may accept
/// plaintext it could not yet send as records (the socket was full), and they would otherwise
/// wait for the connection's next write, which never comes after the last reply of a batch (a
/// long `lru_crawler metadump` stalled its reader until its deadline). Over plain TCP it is free.
///
/// The write is tried at once, without waiting ([`write_now`]): a reply almost always fits the
/// socket's buffer. Only a socket that is full waits, in a boxed future, so the waiting
/// write's state (its timeouts' timers, the flush) is not part of every connection's future,
/// which is as large as the largest state it can be in and which an idle connection keeps
/// whole (issue 24).
pub async fn write_reply<W: AsyncWrite + Unpin>(
    stream: &mut W,
    buf: &[u8],
    idle: Option<Duration>,
) -> std::io::Result<()> {
    let rest = match write_now(stream, buf)? {
        Now::Done => return Ok(()),
        Now::Wrote(n) => &buf[n..],
    };
    Box::pin(write_waiting(stream, rest, idle)).await
}

/// What [`write_now`] did.
enum Now {
    /// Every byte written and flushed.
    Done,
    /// The socket took this many bytes and no more (all of them but not flushed: `buf.len()`).
    Wrote(usize),
}

/// Writes what the socket takes now, and flushes if it took all, without waiting. Polls with a
/// waker that does nothing: a `Pending` leaves the socket's readiness cleared and the no-op
/// waker registered, and the real one replaces it when [`write_waiting`] polls again.
fn write_now<W: AsyncWrite + Unpin>(stream: &mut W, buf: &[u8]) -> std::io::Result<Now> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut done = 0;
    while done < buf.len() {
        match Pin::new(&mut *stream).poll_write(&mut cx, &buf[done..]) {
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => done += n,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(Now::Wrote(done)),
        }
    }
    match Pin::new(&mut *stream).poll_flush(&mut cx) {
        Poll::Ready(Ok(())) => Ok(Now::Done),
        Poll::Ready(Err(e)) => Err(e),
        Poll::Pending => Ok(Now::Wrote(done)),
    }
}

/// The rest of [`write_reply`] once the socket is full: waits for it to take `buf`, then
/// flushes.
async fn write_waiting<W: AsyncWrite + Unpin>(
    stream: &mut W,
    buf: &[u8],
    idle: Option<Duration>,
) -> std::io::Result<()> {
    match idle {
        None => {
            stream.write_all(buf).await?;
            stream.flush().await
        }
        Some(limit) => {
            write_all_within(stream, buf, limit).await?;
            match tokio::time::timeout(limit, stream.flush()).await {
                Ok(r) => r,
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
    }
}

/// `write_all` for a client connection with `idle_timeout` set: gives up (`TimedOut`) when one
/// write makes no progress within `limit`, so a client that stopped reading its replies is let
/// go instead of holding its connection (and the reply it was sent) forever. A slow reader that
/// keeps taking bytes is never cut off.
async fn write_all_within<W: AsyncWrite + Unpin>(
    stream: &mut W,
    mut buf: &[u8],
    limit: Duration,
) -> std::io::Result<()> {
    while !buf.is_empty() {
        match tokio::time::timeout(limit, stream.write(buf)).await {
            Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(Ok(n)) => buf = &buf[n..],
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                tracing::debug!("closing connection: client took no reply bytes for {limit:?}");
                return Err(std::io::ErrorKind::TimedOut.into());
            }
        }
    }
    Ok(())
}

/// A token cancelled by the first SIGINT or SIGTERM. The handlers are installed before this
/// returns, so a caller that announces readiness afterwards can never be killed by a signal's
/// default action in between. Must be called inside a Tokio runtime.
pub fn signal_token() -> CancellationToken {
    let signals = node_signals();
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = signals.leave.cancelled() => {},
            _ = signals.stop.cancelled() => {},
        }
        t.cancel();
    });
    token
}

/// A node's signals: SIGTERM asks it to leave (drain first, `src/node/drain.rs`); SIGINT
/// (Ctrl-C), or a second SIGTERM, asks it to stop now.
#[derive(Debug, Clone)]
pub struct NodeSignals {
    /// Cancelled by the first SIGTERM.
    pub leave: CancellationToken,
    /// Cancelled by SIGINT or by a SIGTERM after the first.
    pub stop: CancellationToken,
}

/// [`signal_token`] for a node, telling a request to leave (SIGTERM: an orchestrator scaling
/// down or replacing the pod, which waits a grace period) from one to stop now (SIGINT: an
/// operator at a terminal). The handlers are installed before this returns.
pub fn node_signals() -> NodeSignals {
    use tokio::signal::unix::{signal, SignalKind};
    let signals = NodeSignals {
        leave: CancellationToken::new(),
        stop: CancellationToken::new(),
    };
    let s = signals.clone();
    let streams = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut int)) = streams else {
            tracing::warn!("cannot install signal handlers; stop with the shutdown command");
            return;
        };
        loop {
            tokio::select! {
                _ = term.recv() => {
                    if s.leave.is_cancelled() {
                        tracing::info!("second SIGTERM: stopping now");
                        s.stop.cancel();
                        return;
                    }
                    tracing::info!("SIGTERM: leaving");
                    s.leave.cancel();
                }
                _ = int.recv() => {
                    tracing::info!("SIGINT: stopping now");
                    s.stop.cancel();
                    return;
                }
            }
        }
    });
    signals
}

/// Runs `reload` on every SIGHUP until `stop` is cancelled. Installing the handler also keeps
/// SIGHUP from killing the server (its default action): a closed terminal or an operator's
/// `kill -HUP` asks for certificates and auth files to be read again, nothing more.
pub fn on_hangup(stop: CancellationToken, reload: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                r = hup.recv() => {
                    if r.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: re-reading TLS and auth files");
                    reload();
                }
                _ = stop.cancelled() => return,
            }
        }
    });
}
