//! Reading a client's bytes through one buffer per worker thread, so that a connection waiting
//! for its next request owns no read buffer (issue 24: an idle connection costs ≤ 1 KiB).
//!
//! A connection that waits with a buffer of its own keeps it, for nothing, as long as it is
//! idle: 16 KiB each, 800 MB at 50 000 connections. Here the read is attempted into this
//! thread's scratch buffer within one poll, and only the bytes that arrived are appended to the
//! connection's own buffer, which is then allocated for exactly those bytes and which the
//! connection drops once it has decoded them all (it keeps it only while a request is partial).
//! The borrow of the scratch buffer never spans an `.await` (the poll that reads also copies),
//! so a task that moves to another worker thread never shares it. Waiting costs no buffer:
//! `poll_read` on a socket with nothing to read returns `Pending` without touching it, and
//! rustls reads TLS records into its own buffers, never ours.
//!
//! The cost is one copy of each byte read, small beside the system call that brought it.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes one read may bring: what a pipelining client's burst usually fits in.
pub const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH_BYTES].into_boxed_slice());
}

/// Reads what `rd` has (waiting for it if nothing has arrived) and appends it to `buf`.
/// `Ok(0)` is the end of the stream.
pub async fn read_into<R: AsyncRead + Unpin>(rd: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    poll_fn(|cx| poll_read_into(Pin::new(&mut *rd), cx, buf)).await
}

/// One attempt of [`read_into`].
fn poll_read_into<R: AsyncRead>(
    rd: Pin<&mut R>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let mut rb = ReadBuf::new(&mut scratch[..]);
            ready!(rd.poll_read(cx, &mut rb))?;
            buf.extend_from_slice(rb.filled());
            Poll::Ready(Ok(rb.filled().len()))
        }
        // Only if a reader ran inside another one's poll on this thread, which none does: read
        // into the connection's own buffer rather than fail.
        Err(_) => {
            buf.reserve(SCRATCH_BYTES / 4);
            tokio_util::io::poll_read_buf(rd, cx, buf)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// The bytes arrive whole and in order through the scratch buffer, however they are split,
    /// and the connection's buffer grows only by what arrived.
    #[tokio::test]
    async fn appends_what_arrived() {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        let mut buf = BytesMut::new();
        a.write_all(b"get k\r\n").await.unwrap();
        assert_eq!(read_into(&mut b, &mut buf).await.unwrap(), 7);
        assert_eq!(&buf[..], b"get k\r\n");
        let big = vec![b'x'; SCRATCH_BYTES + 10];
        a.write_all(&big).await.unwrap();
        drop(a);
        let mut total = 0;
        loop {
            match read_into(&mut b, &mut buf).await.unwrap() {
                0 => break,
                n => total += n,
            }
        }
        assert_eq!(total, big.len());
        assert_eq!(buf.len(), 7 + big.len());
        assert!(buf[7..].iter().all(|&c| c == b'x'));
    }
}
