//! The crate's error type: one enum for everything `ringcache-client` can fail with.

use std::io;

/// Everything the client crate can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer's bytes could not be parsed as memcached's (a malformed or over-long reply
    /// line, the binary protocol, HTTP); the connection is no longer in sync.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A well-formed reply that cannot answer the request it was matched with (a `STORED` to a
    /// `get`, a reply with no request waiting, a line memcached never sends to this verb): the
    /// connection is out of step with its requests, or the peer is not memcached.
    #[error("unexpected reply: {0}")]
    UnexpectedReply(String),
    /// A line longer than the protocol allows arrived without its terminating newline.
    #[error("line too long")]
    LineTooLong,
    /// Reading from or writing to a socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// The connection to a node closed (or could not be made) before the reply arrived.
    #[error("connection to {0} closed")]
    ConnectionClosed(String),
    /// No owner of the key could take the request: every replica is down (or fenced for a
    /// conditional write), or none answered. Nothing reached a node that would answer it, so a
    /// caller may retry later or fall back; the proxy answers `SERVER_ERROR backend unavailable`.
    #[error("no live replica for the key")]
    NoReplica,
    /// The node did not answer within the request timeout.
    #[error("request to {0} timed out")]
    Timeout(String),
    /// A node stayed busy with the same work past the router's retries (its `lru_crawler`
    /// crawling for someone else); asked again later, it may succeed.
    #[error("busy: {0}")]
    Busy(String),
    /// A key kept changing on a node while the router copied it, past the retries; the copy
    /// is left to a later repair.
    #[error("contended: {0}")]
    Contended(String),
    /// The node (or the router, for a refusal it makes itself) answered with one of
    /// memcached's error lines; [`Refused`] says which, so a caller can tell a malformed or
    /// forbidden request from a server that could not carry it out.
    #[error("server error: {0}")]
    Server(Refused),
    /// A configuration (membership, ring settings) that cannot be used.
    #[error("config error: {0}")]
    Config(String),
    /// A key that memcached would refuse (empty, over 250 bytes, or with spaces/control bytes).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A lock request that cannot be granted safely as asked (see docs/locks.md).
    #[error("lock: {0}")]
    Lock(String),
}

/// A request answered with one of memcached's three error lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// `ERROR`: the server does not know the command.
    Unknown,
    /// `CLIENT_ERROR <message>`: the request is malformed or not allowed; retrying it as it is
    /// gets the same answer.
    Client(String),
    /// `SERVER_ERROR <message>`: the server could not carry it out (out of memory, no replica
    /// in sync, too few replicas for a majority); it may succeed later.
    Server(String),
}

impl std::fmt::Display for Refused {
    /// The error line as memcached writes it, without the line end.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Unknown => f.write_str("ERROR"),
            Refused::Client(m) => write!(f, "CLIENT_ERROR {m}"),
            Refused::Server(m) => write!(f, "SERVER_ERROR {m}"),
        }
    }
}
