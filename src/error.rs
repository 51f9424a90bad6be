//! The crate's error type: one enum for everything the servers and the command line fail with.

use std::io;

/// Everything `ringcache` (node, proxy, CLI) can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading from or writing to a socket or file failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A configuration file or flag was not acceptable.
    #[error("config error: {0}")]
    Config(String),
    /// An error from the shared protocol/ring crate.
    #[error(transparent)]
    Client(#[from] ringcache_client::Error),
}
