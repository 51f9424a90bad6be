//! memcached's text and meta protocols, as memcached 1.6 speaks them.
//!
//! One parser and one encoder for both directions, shared by the node (which parses requests and
//! encodes responses), the proxy (which does both on each side) and the client and bench (which
//! encode requests and parse responses):
//!
//! - [`request`]: the [`Request`] type and its encoder.
//! - [`parse`]: the request parser, byte-for-byte faithful to memcached's tokenizer and error replies.
//! - [`meta`]: meta-command flags (`mg`/`ms`/`md`/`ma`), parsed and validated.
//! - [`response`]: the [`Response`] type, its encoder and its parser.
//! - [`metadump`]: the `lru_crawler metadump` line, written by the node, and the request and the
//!   bounded, incremental reader with which a router lists a node's keys.
//! - [`auth`]: memcached's text-protocol authentication as a client sends it and reads its answer.
//! - [`reply`]: the writer of every reply form, used by the node and by [`Response::encode`].
//! - [`codec`]: `tokio-util` codecs for the server side and the client side of a connection.
//! - [`admin`]: the sub-commands of `stats` and `lru_crawler`, read for a server that answers them.
//! - [`fault`]: recoverable request faults and the exact error line memcached answers with.
//! - [`verb`]: the one table of command names.
//! - [`refusal`]: the replies to unauthenticated connections and disabled commands.

pub mod admin;
pub mod auth;
pub mod codec;
pub mod expiry;
pub mod fault;
pub mod meta;
pub mod metadump;
pub mod number;
pub mod parse;
pub mod refusal;
pub mod reply;
pub mod request;
pub mod response;
pub mod verb;

#[cfg(test)]
mod tests;

pub use codec::{ClientCodec, ServerCodec};
pub use fault::Fault;
pub use meta::{MetaCmd, MetaFlags, MetaRequest, MetaStatus};
pub use request::{ArithCmd, Expect, GetCmd, Request, StoreCmd};
pub use response::{MetaResponse, ReplyLimits, Response, Value};
pub use verb::Verb;

/// Longest key memcached accepts (`KEY_MAX_LENGTH`).
pub const MAX_KEY_LEN: usize = 250;

/// A request line without `\n` in this many bytes closes the connection, unless it is a `get`/`gets`
/// (memcached's rule: only multi-gets may have long lines).
pub const MAX_LINE_LEN: usize = 2048;

/// Upper bound on a `get`/`gets` line. memcached grows its buffer without limit for long multi-gets;
/// we cap it so one connection cannot take unbounded memory (4 000 keys of 250 bytes fit).
pub const MAX_GET_LINE_LEN: usize = 1024 * 1024;

/// Longest opaque token (`O...`, including the `O`) memcached accepts.
pub const MAX_OPAQUE_LEN: usize = 32;

/// Relative exptimes up to this many seconds (30 days) are offsets; larger ones are Unix times.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// Is `key` acceptable as a memcached key: 1..=250 bytes and no space or control byte.
///
/// memcached itself only splits on spaces; ringcache also refuses control bytes (`\0`..`\x1f`,
/// `\x7f`), which no client library sends on purpose and which break line-oriented tooling.
///
/// The bytes are checked without stopping at the first bad one: a loop without an early exit is
/// vectorised (16 bytes or more a step instead of one), and every key a proxied request carries
/// is checked twice on its way (parsed from the client, and before it is written to a node).
#[inline]
pub fn valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && key
            .iter()
            .fold(0u8, |bad, &b| bad | u8::from(b <= b' ' || b == 0x7f))
            == 0
}

/// Longest key a `b` (base64) meta request can carry: memcached checks the key token as sent
/// against [`MAX_KEY_LEN`] before decoding it; 186 bytes encode to 248 characters, 187 to 252.
pub const MAX_BINARY_KEY_LEN: usize = MAX_KEY_LEN / 4 * 3;

/// Whether `key` can be written on a request line as it is. A key that cannot (a binary key a
/// client sent base64, or one read back from a node's metadump) must travel base64 with the meta
/// `b` flag, or it could end the line early and smuggle a second command to the node.
#[inline]
pub fn wire_key_ok(key: &[u8], base64: bool) -> bool {
    if base64 {
        !key.is_empty() && key.len() <= MAX_BINARY_KEY_LEN
    } else {
        valid_key(key)
    }
}
