//! The one verb table: every command the servers know, by the name memcached gives it.
//!
//! The node and the proxy count commands per verb and label metrics with its name; the client
//! names requests in logs and errors. All of them take the name from here, so a command added
//! to [`Request`] is named once.

use super::{ArithCmd, Fault, GetCmd, MetaCmd, Request, StoreCmd};

/// Every verb; the discriminant indexes per-verb counters (see [`VERBS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    Gets,
    Gat,
    Gats,
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
    Delete,
    Incr,
    Decr,
    Touch,
    FlushAll,
    Version,
    Verbosity,
    Stats,
    Quit,
    RefreshCerts,
    Shutdown,
    CacheMemlimit,
    Slabs,
    LruCrawler,
    Mn,
    Me,
    Mg,
    Ms,
    Md,
    Ma,
    /// A request refused by the parser.
    Invalid,
}

/// Verb names, indexed by `Verb as usize`; used as the `cmd` metric label.
pub const VERBS: &[&str] = &[
    "get",
    "gets",
    "gat",
    "gats",
    "set",
    "add",
    "replace",
    "append",
    "prepend",
    "cas",
    "delete",
    "incr",
    "decr",
    "touch",
    "flush_all",
    "version",
    "verbosity",
    "stats",
    "quit",
    "refresh_certs",
    "shutdown",
    "cache_memlimit",
    "slabs",
    "lru_crawler",
    "mn",
    "me",
    "mg",
    "ms",
    "md",
    "ma",
    "invalid",
];

impl Verb {
    /// The verb of a decoded item: a parsed request, or `Invalid` for a refused one.
    pub fn of(item: &Result<Request, Fault>) -> Verb {
        match item {
            Ok(req) => Verb::of_request(req),
            Err(_) => Verb::Invalid,
        }
    }

    /// The verb of a request.
    pub fn of_request(req: &Request) -> Verb {
        match req {
            Request::Get { cmd, .. } => match cmd {
                GetCmd::Get => Verb::Get,
                GetCmd::Gets => Verb::Gets,
                GetCmd::Gat => Verb::Gat,
                GetCmd::Gats => Verb::Gats,
            },
            Request::Store { cmd, .. } => match cmd {
                StoreCmd::Set => Verb::Set,
                StoreCmd::Add => Verb::Add,
                StoreCmd::Replace => Verb::Replace,
                StoreCmd::Append => Verb::Append,
                StoreCmd::Prepend => Verb::Prepend,
                StoreCmd::Cas => Verb::Cas,
            },
            Request::Delete { .. } => Verb::Delete,
            Request::Arith { cmd, .. } => match cmd {
                ArithCmd::Incr => Verb::Incr,
                ArithCmd::Decr => Verb::Decr,
            },
            Request::Touch { .. } => Verb::Touch,
            Request::FlushAll { .. } => Verb::FlushAll,
            Request::Version => Verb::Version,
            Request::Verbosity { .. } => Verb::Verbosity,
            Request::Stats { .. } => Verb::Stats,
            Request::Quit => Verb::Quit,
            Request::RefreshCerts { .. } => Verb::RefreshCerts,
            Request::Shutdown { .. } => Verb::Shutdown,
            Request::CacheMemlimit { .. } => Verb::CacheMemlimit,
            Request::SlabsAutomove { .. } => Verb::Slabs,
            Request::Metadump { .. } | Request::LruCrawler { .. } => Verb::LruCrawler,
            Request::MetaNoop => Verb::Mn,
            Request::MetaDebug { .. } => Verb::Me,
            Request::Meta(m) => match m.cmd {
                MetaCmd::Get => Verb::Mg,
                MetaCmd::Set => Verb::Ms,
                MetaCmd::Delete => Verb::Md,
                MetaCmd::Arith => Verb::Ma,
            },
        }
    }

    /// The command's name on the wire (`lru_crawler` for every crawler subcommand).
    pub fn name(self) -> &'static str {
        VERBS[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_enum_line_up() {
        assert_eq!(VERBS.len(), Verb::Invalid as usize + 1);
        assert_eq!(Verb::FlushAll.name(), "flush_all");
        assert_eq!(Verb::Ma.name(), "ma");
        assert_eq!(Verb::Invalid.name(), "invalid");
    }
}
