//! The kit's error type, for callers that carry on after a failure (the bench's harnesses);
//! tests mostly panic with the message.

use std::io;

/// What can go wrong starting a server or talking to one.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A local I/O operation (bind, spawn, connect, write) failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A server process did not become ready; `output` is the end of what it wrote.
    #[error("{name} did not start: {why}\n{output}")]
    Start {
        name: String,
        why: String,
        output: String,
    },
    /// A server answered something the caller cannot use, closed, or timed out.
    #[error("{addr}: {why}")]
    Reply { addr: String, why: String },
}
