//! memcached's text-protocol authentication as a client speaks it: the request a router sends
//! first on every connection to a node started with an auth file (`-Y`), and the reading of
//! its one-line answer; and the server's side of the same exchange ([`Exchange`]), which reads
//! the client's lines until it authenticates (the auth file and the socket are the servers',
//! `src/server/auth.rs`). The answers themselves are in [`refusal`](super::refusal).
//!
//! The request is an ordinary `set` whose data block is `<user> <password>` (memcached ignores
//! the key, flags and exptime), so it is encoded by [`Request::encode`] like any other `set`,
//! and its answer is read by the reply parser: `STORED` authenticates, anything else (memcached
//! sends `CLIENT_ERROR authentication failure`, `... bad authentication token format`) refuses.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::number::safe_strtoul;
use super::refusal;
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

/// A line without `\n` in this many bytes closes an unauthenticated connection (memcached's
/// limit here).
const MAX_LINE: usize = 2048;
/// Largest credentials block accepted. memcached waits for any size a `u32` can name; we close
/// the connection instead of buffering more than this for someone who has not authenticated.
pub const MAX_CREDENTIALS: usize = 4096;

/// What one step of the exchange found in the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// More bytes are needed.
    More,
    /// Answer this line and go on.
    Reply(&'static str),
    /// Authenticated as this user (answer `STORED`).
    Done(String),
    /// Hang up without answering.
    Close,
}

/// memcached's exchange on the server's side, one request at a time, over buffered bytes.
#[derive(Debug, Default)]
pub struct Exchange {
    /// Bytes of credentials (with their `\r\n`) awaited after a valid `set` line.
    awaiting: Option<usize>,
}

impl Exchange {
    /// Reads what `buf` holds of the next request: more needed, an answer to send (and go
    /// on), the user `check` accepted (answer `STORED`), or a hang-up. What follows the
    /// credentials stays in `buf`.
    pub fn step(&mut self, buf: &mut BytesMut, check: impl Fn(&[u8], &[u8]) -> bool) -> Step {
        let need = match self.awaiting {
            Some(n) => n,
            None => {
                let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                    return if buf.len() > MAX_LINE {
                        Step::Close
                    } else {
                        Step::More
                    };
                };
                let line = buf.split_to(nl + 1);
                let tokens: Vec<&[u8]> = line[..nl]
                    .split(|&b| b == b' ')
                    .filter(|t| !t.is_empty())
                    .collect();
                // memcached reads the length with `safe_strtoul`, the line's `\r` still on the
                // last token (a white-space byte after the number is allowed).
                let size = (tokens.len() >= 5 && tokens[0] == b"set")
                    .then(|| safe_strtoul(tokens[4]))
                    .flatten();
                let Some(size) = size else {
                    return Step::Reply(refusal::UNAUTHENTICATED);
                };
                let n = size as usize + 2;
                if n > MAX_CREDENTIALS {
                    return Step::Close;
                }
                self.awaiting = Some(n);
                n
            }
        };
        if buf.len() < need {
            return Step::More;
        }
        self.awaiting = None;
        let block = buf.split_to(need);
        if !block.ends_with(b"\r\n") {
            return Step::Reply(refusal::AUTH_BAD_TERMINATION);
        }
        let mut tokens = block[..need - 2]
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty());
        let (Some(user), Some(password)) = (tokens.next(), tokens.next()) else {
            return Step::Reply(refusal::AUTH_BAD_FORMAT);
        };
        if check(user, password) {
            Step::Done(String::from_utf8_lossy(user).into_owned())
        } else {
            Step::Reply(refusal::AUTH_FAILURE)
        }
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
