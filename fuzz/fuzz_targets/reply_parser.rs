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

mod chunking;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringcache_client::protocol::Response;

/// memcached's largest possible item, and the longest reply line the parser waits for.
const MAX_VALUE: usize = 1024 * 1024 * 1024;
const MAX_LINE: usize = 64 * 1024;

/// Parses `data` delivered `chunk` bytes at a time, checking each step (see the header).
fn parse(data: &[u8], chunk: usize) -> (Vec<Response>, bool) {
    chunking::feed(data, chunk, |buf| {
        let before = buf.clone();
        let r = Response::parse(buf);
        match &r {
            Ok(Some(r)) => {
                assert!(buf.len() < before.len(), "a reply consumed no bytes: {r:?}");
                assert_eq!(
                    before[before.len() - buf.len()..],
                    buf[..],
                    "parse changed bytes it did not consume"
                );
            }
            Ok(None) => {
                assert_eq!(*buf, before, "an incomplete reply consumed bytes");
                assert!(
                    buf.capacity() <= 2 * buf.len() + MAX_VALUE + 2 * MAX_LINE,
                    "the buffer grew to {} bytes for {} bytes in hand",
                    buf.capacity(),
                    buf.len()
                );
            }
            Err(_) => {}
        }
        r
    })
}

fuzz_target!(|input: &[u8]| {
    let Some((chunk, data)) = chunking::split(input) else {
        return;
    };
    let whole = chunking::read_both_ways(data, chunk, parse);
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
