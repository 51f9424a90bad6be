//! Fuzzes the reply side of the wire: `Response::parse`, which the proxy and the embedded client
//! run on every byte a node sends back.
//!
//! For every input it checks that:
//! - parsing never panics; `Ok(None)` consumes nothing and `Ok(Some)` consumes something, so a
//!   reader can neither lose bytes nor spin;
//! - memory is bounded: the buffer never grows past the bytes in hand plus one value of at most
//!   memcached's 1 GiB item limit (`ITEM_SIZE_MAX_UPPER_LIMIT`) and its line — a longer
//!   announcement is a broken stream, never an allocation;
//! - the bytes fed in small chunks parse to the same replies as fed whole, up to the first
//!   out-of-sync error;
//! - every reply that parses re-encodes to bytes that parse back to the same reply.
//!
//! The first input byte picks the chunk size; the rest is the node's byte stream.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringcache_client::protocol::Response;

/// memcached's largest possible item, and the longest reply line the parser waits for.
const MAX_VALUE: usize = 1024 * 1024 * 1024;
const MAX_LINE: usize = 64 * 1024;

fn parse(data: &[u8], chunk: usize) -> (Vec<Response>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            let before = buf.clone();
            match Response::parse(&mut buf) {
                Ok(Some(r)) => {
                    assert!(buf.len() < before.len(), "a reply consumed no bytes: {r:?}");
                    assert_eq!(
                        before[before.len() - buf.len()..],
                        buf[..],
                        "parse changed bytes it did not consume"
                    );
                    out.push(r);
                }
                Ok(None) => {
                    assert_eq!(buf, before, "an incomplete reply consumed bytes");
                    assert!(
                        buf.capacity() <= 2 * buf.len() + MAX_VALUE + 2 * MAX_LINE,
                        "the buffer grew to {} bytes for {} bytes in hand",
                        buf.capacity(),
                        buf.len()
                    );
                    break;
                }
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|input: &[u8]| {
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(first % 32) + 1;
    let (whole, whole_err) = parse(data, data.len().max(1));
    let (pieces, pieces_err) = parse(data, chunk);
    let n = whole.len().min(pieces.len());
    assert_eq!(
        whole[..n],
        pieces[..n],
        "chunked delivery parses differently"
    );
    if !whole_err && !pieces_err {
        assert_eq!(
            whole.len(),
            pieces.len(),
            "chunked delivery parses differently"
        );
    }
    for r in &whole {
        let mut wire = BytesMut::new();
        r.encode(&mut wire);
        let sent = wire.clone();
        match Response::parse(&mut wire) {
            Ok(Some(ref back)) if back == r && wire.is_empty() => {}
            other => panic!(
                "re-encoding does not parse back to the same reply\n  reply: {r:?}\n  wire: {:?}\n  \
                 parsed: {other:?}",
                String::from_utf8_lossy(&sent)
            ),
        }
    }
});
