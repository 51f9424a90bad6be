//! The crate's error type: one enum for everything `ringcache-client` can fail with.

use std::io;

/// Everything the client crate can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer's bytes could not be understood; the connection is no longer in sync.
    #[error("protocol error: {0}")]
    Protocol(String),
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
    /// The node's request queue is full; the caller should back off.
    #[error("request queue for {0} is full")]
    Busy(String),
    /// The node answered with an error line (`ERROR`, `CLIENT_ERROR ...`, `SERVER_ERROR ...`).
    #[error("server error: {0}")]
    Server(String),
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
