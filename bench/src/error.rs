//! The bench's error type: what can stop a run before or after it measures.
//!
//! Faults *during* a run — a server error line, a timed-out request, a dropped connection — are
//! never errors of this type: they are counted in the report and the run goes on. Only a bad
//! command line, an unreachable target at start, or a failure to read `/proc` or write the JSON
//! report ends the program.

use std::io;

/// Everything that can make `ringcache-bench` give up.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A flag's value could not be understood or is out of range.
    #[error("invalid argument: {0}")]
    InvalidArg(String),
    /// No connection to the target could be made at start.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    /// `/proc/PID/stat` could not be read or parsed.
    #[error("cannot read CPU time of pid {pid}: {reason}")]
    Proc { pid: u32, reason: String },
    /// Building the async runtime, or another local I/O operation, failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A server process did not start, or a server answered what the harness cannot use.
    #[error(transparent)]
    Kit(#[from] testkit::Error),
    /// The JSON report could not be produced.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A server's reply broke the exchange (unparsable, unexpected, missing by a deadline).
    #[error("{server}: {reason}")]
    Reply { server: String, reason: String },
    /// A histogram could not be created or merged (bounds out of range).
    #[error("histogram: {0}")]
    Histogram(String),
}

/// The crate's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
