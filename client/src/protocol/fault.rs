//! Recoverable request faults: what memcached answers when a request is bad but the connection
//! stays usable.
//!
//! Following tokio-util's codec contract, a bad request is an *item* (`Err(Fault)` inside the
//! decoded stream), not a stream error: the connection answers the exact memcached line and goes
//! on. Only a fault that desynchronises the stream (an over-long line) is a stream error.

use bytes::Bytes;

/// A request the parser refused, with the exact line memcached would answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The reply line, without `\r\n`, byte-exact as memcached 1.6 sends it.
    pub message: &'static str,
    /// The request asked for `noreply`: memcached then sends nothing, even for an error.
    pub noreply: bool,
    /// A key whose current item must be dropped: memcached unlinks the old item when a `set`
    /// (or `ms`) fails because the new value is too large, so no stale value survives it.
    pub unlink: Option<Bytes>,
}

impl Fault {
    /// `refresh_certs` on a listener without TLS (memcached's line, sent even with `noreply`).
    pub const TLS_NOT_ENABLED: &'static str = "Error TLS not enabled";
    /// `ERROR`: unknown command or wrong number of tokens.
    pub const ERROR: &'static str = "ERROR";
    /// The generic malformed-request error.
    pub const BAD_FORMAT: &'static str = "CLIENT_ERROR bad command line format";
    /// A data block not followed by `\r\n`.
    pub const BAD_CHUNK: &'static str = "CLIENT_ERROR bad data chunk";
    /// A value larger than the item size limit (its data block is swallowed).
    pub const TOO_LARGE: &'static str = "SERVER_ERROR object too large for cache";
    /// `incr`/`decr`/`ma` on a value that is not a decimal number.
    pub const NON_NUMERIC: &'static str =
        "CLIENT_ERROR cannot increment or decrement non-numeric value";
    /// `shutdown` on a server started without it enabled.
    pub const SHUTDOWN_DISABLED: &'static str = "ERROR: shutdown not enabled";
    /// `shutdown <mode>` with a mode other than `graceful`.
    pub const BAD_SHUTDOWN_MODE: &'static str = "CLIENT_ERROR invalid shutdown mode";
    /// `lru_crawler metadump <class>` naming no class the server has.
    pub const BAD_CLASS: &'static str = "BADCLASS invalid class id";
    /// `stats cachedump` with too few arguments.
    pub const BAD_COMMAND_LINE: &'static str = "CLIENT_ERROR bad command line";
    /// `stats cachedump` of a class id past memcached's 63.
    pub const ILLEGAL_SLAB: &'static str = "CLIENT_ERROR Illegal slab id";
    /// `stats detail` with a sub-command other than `on`, `off` or `dump`.
    pub const DETAIL_USAGE: &'static str = "CLIENT_ERROR usage: stats detail on|off|dump";
    /// `cache_memlimit` below memcached's 8 MiB floor.
    pub const MEMLIMIT_TOO_SMALL: &'static str =
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m";
    /// `cache_memlimit` with a value that looks like bytes, not megabytes.
    pub const MEMLIMIT_ADJUST_FAILED: &'static str =
        "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes";
    /// A connection over the server's limit, answered once before it is closed.
    pub const TOO_MANY_CONNECTIONS: &'static str = "ERROR Too many open connections";

    /// A fault that is always answered.
    pub const fn new(message: &'static str) -> Fault {
        Fault::with_noreply(message, false)
    }

    /// A fault answered only when the request did not say `noreply`.
    pub const fn with_noreply(message: &'static str, noreply: bool) -> Fault {
        Fault {
            message,
            noreply,
            unlink: None,
        }
    }

    /// A short, low-cardinality label for metrics (`protocol errors by kind`).
    pub fn kind(&self) -> &'static str {
        match self.message {
            Fault::ERROR => "unknown_command",
            Fault::BAD_CHUNK => "bad_data_chunk",
            Fault::TOO_LARGE => "too_large",
            m if m.starts_with("CLIENT_ERROR") => "bad_format",
            _ => "other",
        }
    }
}
