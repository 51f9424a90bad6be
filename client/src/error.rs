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
}
