//! Fuzzes the request side of the wire: `ServerCodec` (memcached's tokenizer and every verb's
//! parser), which the node and the proxy run on every byte a client sends.
//!
//! For every input it checks that:
//! - decoding never panics and always makes progress (each item consumes bytes);
//! - the bytes fed in small chunks, as TCP may deliver them, decode to the same items as fed
//!   whole, up to the first connection-closing error (where a line is cut for length depends on
//!   how much has arrived, in memcached too);
//! - every request that parses re-encodes (`Request::encode`, what the proxy and the client send
//!   a node) to bytes that parse back, alone and completely, to the same request, and whose
//!   keys are valid keys or travel base64: what reaches a node is what the client meant.
//!
//! The first input byte picks the chunk size; the rest is the client's byte stream.
#![no_main]

mod chunking;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{valid_key, Fault, Request, ServerCodec};
use tokio_util::codec::Decoder;

/// A small item limit, so the "too large" refusal and its swallowed data block are reachable
/// with small inputs.
const LIMITS: Limits = Limits {
    max_item_size: 2048,
};

type Item = Result<Request, Fault>;

/// Decodes `data` delivered `chunk` bytes at a time; returns the items and whether the stream
/// ended with a connection-closing error.
fn decode(data: &[u8], chunk: usize) -> (Vec<Item>, bool) {
    let mut codec = ServerCodec::new(LIMITS);
    chunking::feed(data, chunk, |buf| {
        let before = buf.len();
        let r = codec.decode(buf);
        if let Ok(Some(item)) = &r {
            assert!(
                buf.len() < before,
                "an item was decoded without consuming a byte: {item:?}"
            );
        }
        r
    })
}

/// The keys a request carries, and whether they travel base64 on the wire.
fn keys(req: &Request) -> Vec<(&[u8], bool)> {
    match req {
        Request::Get { keys, .. } => keys.iter().map(|k| (&k[..], false)).collect(),
        Request::Store { key, .. }
        | Request::Delete { key, .. }
        | Request::Arith { key, .. }
        | Request::Touch { key, .. } => vec![(&key[..], false)],
        Request::MetaDebug { key, base64 } => vec![(&key[..], *base64)],
        Request::Meta(m) => vec![(&m.key[..], m.flags.base64)],
        _ => Vec::new(),
    }
}

/// The same request as far as a server can tell: meta flags compare as parsed, since the
/// encoder writes them from the parsed flags (a token `qb` is read as `q` and sent as `q`).
fn same(a: &Request, b: &Request) -> bool {
    match (a, b) {
        (Request::Meta(x), Request::Meta(y)) => {
            x.cmd == y.cmd && x.key == y.key && x.flags == y.flags && x.value == y.value
        }
        _ => a == b,
    }
}

fn round_trip(req: &Request) {
    for (key, base64) in keys(req) {
        assert!(
            base64 || valid_key(key),
            "a parsed request holds a key that is neither valid nor base64: {req:?}"
        );
    }
    let mut wire = BytesMut::new();
    req.encode(&mut wire);
    let sent = wire.clone();
    let mut codec = ServerCodec::new(LIMITS);
    let again = codec.decode(&mut wire);
    match again {
        Ok(Some(Ok(ref back))) if same(back, req) && wire.is_empty() => {}
        other => panic!(
            "re-encoding does not parse back to the same request\n  request: {req:?}\n  \
             wire: {:?}\n  parsed: {other:?}\n  left: {:?}",
            String::from_utf8_lossy(&sent),
            String::from_utf8_lossy(&wire)
        ),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((chunk, data)) = chunking::split(input) else {
        return;
    };
    let whole = chunking::read_both_ways(data, chunk, decode);
    for item in &whole {
        if let Ok(req) = item {
            round_trip(req);
        }
    }
});
