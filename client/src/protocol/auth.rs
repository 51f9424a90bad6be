//! memcached's text-protocol authentication as a client speaks it: the request a router sends
//! first on every connection to a node started with an auth file (`-Y`), and the reading of
//! its one-line answer. The server's side of the same exchange is `src/server/auth.rs`; the
//! answers themselves are in [`refusal`](super::refusal).
//!
//! The request is an ordinary `set` whose data block is `<user> <password>` (memcached ignores
//! the key, flags and exptime), so it is encoded by [`Request::encode`] like any other `set`,
//! and its answer is read by the reply parser: `STORED` authenticates, anything else (memcached
//! sends `CLIENT_ERROR authentication failure`, `... bad authentication token format`) refuses.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::request::{Request, StoreCmd};
use super::response::{ReplyLimits, Response};
use crate::error::Error;

/// The key the authentication `set` carries. memcached reads no key here; this one says what
/// the line is to anyone reading a capture.
const AUTH_KEY: &[u8] = b"auth";

/// Longest answer line read: memcached's are under 50 bytes. A longer one is not an answer to
/// authentication, and is not buffered.
pub const MAX_REPLY_LINE: usize = 256;

/// The whole authentication request, `set auth 0 0 <len>\r\n<user> <password>\r\n`, for the
/// credentials a config gives. Both must be non-empty and free of spaces and control bytes:
/// memcached splits the block on a space and the block ends the line at `\r\n`.
pub fn request(user: &str, password: &str) -> Result<Vec<u8>, Error> {
    let bad = |s: &str| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == 0x7f);
    if bad(user) || bad(password) {
        return Err(Error::Config(
            "auth_user and the password must be non-empty, without spaces or control bytes".into(),
        ));
    }
    let set = Request::Store {
        cmd: StoreCmd::Set,
        key: Bytes::from_static(AUTH_KEY),
        flags: 0,
        exptime: 0,
        cas: 0,
        value: Bytes::from(format!("{user} {password}")),
        noreply: false,
    };
    let mut out = BytesMut::new();
    set.encode(&mut out);
    Ok(out.to_vec())
}

/// What the server answered to the authentication request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthReply {
    /// `STORED`: the connection is authenticated.
    Accepted,
    /// Any other answer, as the server wrote it (without its line end).
    Refused(String),
}

/// Reads the one answer to [`request`], bounded by [`MAX_REPLY_LINE`]. The server sends
/// nothing before it, so a caller that reads only this reply never takes bytes of a later one.
#[derive(Debug, Default, Clone, Copy)]
pub struct AuthReplyCodec;

impl Decoder for AuthReplyCodec {
    type Item = AuthReply;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<AuthReply>, Error> {
        let limits = ReplyLimits {
            max_line: MAX_REPLY_LINE,
            max_value: 0,
            max_items: 0,
            max_listing: MAX_REPLY_LINE,
        };
        Ok(match Response::parse_limited(src, &limits)? {
            None => None,
            Some(Response::Stored) => Some(AuthReply::Accepted),
            Some(other) => {
                let mut line = BytesMut::new();
                other.encode(&mut line);
                Some(AuthReply::Refused(
                    String::from_utf8_lossy(line.trim_ascii_end()).into_owned(),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_memcacheds() {
        assert_eq!(
            request("alice", "secret").unwrap(),
            b"set auth 0 0 12\r\nalice secret\r\n"
        );
        assert!(request("al ice", "x").is_err());
        assert!(request("alice", "").is_err());
        assert!(request("alice", "a\r\nflush_all").is_err());
    }

    fn decode(bytes: &[u8]) -> Result<Option<AuthReply>, Error> {
        AuthReplyCodec.decode(&mut BytesMut::from(bytes))
    }

    /// memcached 1.6.18's answers (tests/auth.rs sends the same exchanges to it).
    #[test]
    fn replies() {
        assert_eq!(decode(b"STORED\r\n").unwrap(), Some(AuthReply::Accepted));
        assert_eq!(
            decode(b"CLIENT_ERROR authentication failure\r\n").unwrap(),
            Some(AuthReply::Refused(
                "CLIENT_ERROR authentication failure".into()
            ))
        );
        assert_eq!(
            decode(b"CLIENT_ERROR unauthenticated\r\n").unwrap(),
            Some(AuthReply::Refused("CLIENT_ERROR unauthenticated".into()))
        );
        // Not all there yet; a line past the bound is an error, not more buffering.
        assert_eq!(decode(b"STOR").unwrap(), None);
        assert!(decode(&[b'x'; MAX_REPLY_LINE + 1]).is_err());
        // A TLS record read as text (a plain connection to a TLS node) is no answer.
        assert!(matches!(
            decode(b"\x15\x03\x03\x00\x02\x02\x46\n").unwrap(),
            Some(AuthReply::Refused(_))
        ));
    }
}
