//! The [`Request`] type: every command the node understands, and its wire encoding.
//!
//! Keys and values are `Bytes` slices of the frame they were parsed from, so parsing copies
//! nothing; whoever keeps them beyond the request (the store) copies them into their own
//! allocation so a small key never pins a large read buffer.

use bytes::{BufMut, Bytes, BytesMut};

use super::meta::MetaStatus;
use super::meta::{put_key, MetaRequest};
use super::number::{put_i64, put_u64};
use super::response::{ReplyLimits, Response};
use super::{valid_key, wire_key_ok};
use crate::error::Error;

/// The storage verbs of the classic protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreCmd {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

impl StoreCmd {
    /// The verb as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreCmd::Set => "set",
            StoreCmd::Add => "add",
            StoreCmd::Replace => "replace",
            StoreCmd::Append => "append",
            StoreCmd::Prepend => "prepend",
            StoreCmd::Cas => "cas",
        }
    }
}

/// The retrieval verbs: with or without CAS, with or without a TTL update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GetCmd {
    Get,
    Gets,
    Gat,
    Gats,
}

impl GetCmd {
    /// The verb as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GetCmd::Get => "get",
            GetCmd::Gets => "gets",
            GetCmd::Gat => "gat",
            GetCmd::Gats => "gats",
        }
    }

    /// Whether `VALUE` lines carry the CAS unique.
    pub fn returns_cas(self) -> bool {
        matches!(self, GetCmd::Gets | GetCmd::Gats)
    }
}

/// `incr` or `decr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArithCmd {
    Incr,
    Decr,
}

impl ArithCmd {
    /// The verb as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ArithCmd::Incr => "incr",
            ArithCmd::Decr => "decr",
        }
    }
}

/// One parsed request. Exptimes are kept exactly as the client sent them (memcached's rules for
/// relative, absolute and negative values are applied by whoever stores the item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get`/`gets <key>*` and `gat`/`gats <exptime> <key>*`.
    Get {
        cmd: GetCmd,
        /// Only for `gat`/`gats`.
        exptime: Option<i64>,
        keys: Vec<Bytes>,
    },
    /// `set`/`add`/`replace`/`append`/`prepend`/`cas` with their data block.
    Store {
        cmd: StoreCmd,
        key: Bytes,
        flags: u32,
        exptime: i64,
        /// The compare value of `cas`; 0 for the other verbs.
        cas: u64,
        value: Bytes,
        noreply: bool,
    },
    /// `delete <key> [0] [noreply]`.
    Delete { key: Bytes, noreply: bool },
    /// `incr`/`decr <key> <delta> [noreply]`.
    Arith {
        cmd: ArithCmd,
        key: Bytes,
        delta: u64,
        noreply: bool,
    },
    /// `touch <key> <exptime> [noreply]`.
    Touch {
        key: Bytes,
        exptime: i64,
        noreply: bool,
    },
    /// `flush_all [delay] [noreply]`.
    FlushAll { delay: i64, noreply: bool },
    /// `version`.
    Version,
    /// `verbosity <level> [noreply]`.
    Verbosity { level: u32, noreply: bool },
    /// `stats [group]`: `None` for general stats, else the sub-command (`settings`, `items`, ...).
    Stats { group: Option<Bytes> },
    /// `quit`.
    Quit,
    /// `refresh_certs [noreply]`: re-read the listener's TLS certificate and key.
    RefreshCerts { noreply: bool },
    /// `shutdown [graceful]`; the argument is kept as sent (the server says which are valid,
    /// after checking whether shutdown is enabled at all, as memcached does).
    Shutdown { arg: Option<Bytes> },
    /// `cache_memlimit <megabytes> [noreply]`.
    CacheMemlimit { megabytes: u32, noreply: bool },
    /// `slabs automove <0|1|2> [noreply]`: memcached's slab rebalancer mode. Other levels and
    /// `slabs automove ratio` are refused by the parser.
    SlabsAutomove { level: u8, noreply: bool },
    /// `lru_crawler metadump <all|classes>`.
    Metadump { arg: Bytes },
    /// Any other `lru_crawler` sub-command (`crawl`, `tocrawl`, `sleep`, `enable`, `disable`).
    LruCrawler { args: Vec<Bytes> },
    /// `mn`: the meta no-op, answered `MN`; used to mark the end of a quiet pipeline.
    MetaNoop,
    /// `me <key> [b]`: meta debug. With `b` the key is held decoded, as for the other meta verbs.
    MetaDebug { key: Bytes, base64: bool },
    /// `mg`/`ms`/`md`/`ma`. Boxed: its flags make it 272 bytes against about 100 for every
    /// other request, and a request is moved through several futures on its way to a node.
    Meta(Box<MetaRequest>),
}

impl Request {
    /// A short, static name of the verb, for metrics labels and logs.
    pub fn verb(&self) -> &'static str {
        super::Verb::of_request(self).name()
    }

    /// Whether the client asked not to be answered (classic `noreply`; meta `q` is different:
    /// it hides only nominal answers, see [`MetaRequest`]).
    pub fn noreply(&self) -> bool {
        match self {
            Request::Store { noreply, .. }
            | Request::Delete { noreply, .. }
            | Request::Arith { noreply, .. }
            | Request::Touch { noreply, .. }
            | Request::FlushAll { noreply, .. }
            | Request::Verbosity { noreply, .. }
            | Request::CacheMemlimit { noreply, .. }
            | Request::SlabsAutomove { noreply, .. } => *noreply,
            _ => false,
        }
    }

    /// Appends the request's wire form (line, and data block where there is one) to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        fn noreply(buf: &mut BytesMut, on: bool) {
            if on {
                buf.put_slice(b" noreply");
            }
        }
        /// The verb, then its optional argument after a space.
        fn verb_and_arg(buf: &mut BytesMut, verb: &[u8], arg: &Option<Bytes>) {
            buf.put_slice(verb);
            if let Some(a) = arg {
                buf.put_u8(b' ');
                buf.put_slice(a);
            }
        }
        /// `verb <number>[ noreply]` (verbosity, cache_memlimit, slabs automove).
        fn verb_number(buf: &mut BytesMut, verb: &[u8], n: u64, nr: bool) {
            buf.put_slice(verb);
            put_u64(buf, n);
            noreply(buf, nr);
        }
        match self {
            Request::Get { cmd, exptime, keys } => {
                buf.put_slice(cmd.as_str().as_bytes());
                if let Some(e) = exptime {
                    buf.put_u8(b' ');
                    put_i64(buf, *e);
                }
                for k in keys {
                    buf.put_u8(b' ');
                    buf.put_slice(k);
                }
            }
            Request::Store {
                cmd,
                key,
                flags,
                exptime,
                cas,
                value,
                noreply: nr,
            } => {
                buf.reserve(key.len() + value.len() + 64);
                buf.put_slice(cmd.as_str().as_bytes());
                buf.put_u8(b' ');
                buf.put_slice(key);
                buf.put_u8(b' ');
                put_u64(buf, u64::from(*flags));
                buf.put_u8(b' ');
                put_i64(buf, *exptime);
                buf.put_u8(b' ');
                put_u64(buf, value.len() as u64);
                if *cmd == StoreCmd::Cas {
                    buf.put_u8(b' ');
                    put_u64(buf, *cas);
                }
                noreply(buf, *nr);
                buf.put_slice(b"\r\n");
                buf.put_slice(value);
            }
            Request::Delete { key, noreply: nr } => {
                buf.put_slice(b"delete ");
                buf.put_slice(key);
                noreply(buf, *nr);
            }
            Request::Arith {
                cmd,
                key,
                delta,
                noreply: nr,
            } => {
                buf.put_slice(cmd.as_str().as_bytes());
                buf.put_u8(b' ');
                buf.put_slice(key);
                buf.put_u8(b' ');
                put_u64(buf, *delta);
                noreply(buf, *nr);
            }
            Request::Touch {
                key,
                exptime,
                noreply: nr,
            } => {
                buf.put_slice(b"touch ");
                buf.put_slice(key);
                buf.put_u8(b' ');
                put_i64(buf, *exptime);
                noreply(buf, *nr);
            }
            Request::FlushAll { delay, noreply: nr } => {
                buf.put_slice(b"flush_all");
                if *delay != 0 {
                    buf.put_u8(b' ');
                    put_i64(buf, *delay);
                }
                noreply(buf, *nr);
            }
            Request::Version => buf.put_slice(b"version"),
            Request::Verbosity { level, noreply: nr } => {
                verb_number(buf, b"verbosity ", u64::from(*level), *nr)
            }
            Request::Stats { group } => verb_and_arg(buf, b"stats", group),
            Request::Quit => buf.put_slice(b"quit"),
            Request::RefreshCerts { noreply: nr } => {
                buf.put_slice(b"refresh_certs");
                noreply(buf, *nr);
            }
            Request::Shutdown { arg } => verb_and_arg(buf, b"shutdown", arg),
            Request::CacheMemlimit {
                megabytes,
                noreply: nr,
            } => verb_number(buf, b"cache_memlimit ", u64::from(*megabytes), *nr),
            Request::SlabsAutomove { level, noreply: nr } => {
                verb_number(buf, b"slabs automove ", u64::from(*level), *nr)
            }
            Request::Metadump { arg } => {
                buf.put_slice(b"lru_crawler metadump ");
                buf.put_slice(arg);
            }
            Request::LruCrawler { args } => {
                buf.put_slice(b"lru_crawler");
                for a in args {
                    buf.put_u8(b' ');
                    buf.put_slice(a);
                }
            }
            Request::MetaNoop => buf.put_slice(b"mn"),
            Request::MetaDebug { key, base64 } => {
                // The key is held decoded (as the parser leaves it), so `b` re-encodes it.
                buf.put_slice(b"me ");
                put_key(buf, key, *base64);
                if *base64 {
                    buf.put_slice(b" b");
                }
            }
            Request::Meta(m) => {
                m.encode(buf);
                return;
            }
        }
        buf.put_slice(b"\r\n");
    }
}

/// Whether `arg` (a sub-command word or words, as `stats detail on`) stays on one line: no
/// line break, no NUL, not empty.
fn arg_ok(arg: &[u8]) -> bool {
    !arg.is_empty() && !arg.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0))
}

/// A request refused before any of its bytes is written.
fn unsafe_key(key: &[u8]) -> Error {
    Error::InvalidKey(String::from_utf8_lossy(key).into_owned())
}

impl Request {
    /// The keys the request reads or changes, in the order it names them; `None` for a request
    /// that names no key (`stats`, `flush_all`, `version`, …). The one walk over a request's
    /// keys: routing, per-key ordering and hinted handoff all use it.
    pub fn keys(&self) -> Option<&[Bytes]> {
        match self {
            Request::Get { keys, .. } => Some(keys),
            Request::Store { key, .. }
            | Request::Delete { key, .. }
            | Request::Arith { key, .. }
            | Request::Touch { key, .. }
            | Request::MetaDebug { key, .. } => Some(std::slice::from_ref(key)),
            Request::Meta(m) => Some(std::slice::from_ref(&m.key)),
            _ => None,
        }
    }

    /// The last line of defence before a socket: `Ok` only if every key and argument of the
    /// request is written so that it cannot end the line early or split into more tokens (a
    /// key must be a valid text key, or travel base64 with the meta `b` flag). Whoever writes
    /// to a backend calls this first and refuses the request — without writing a byte, and
    /// without blaming the node — when it fails.
    pub fn check_wire(&self) -> Result<(), Error> {
        let key = |k: &[u8]| {
            if valid_key(k) {
                Ok(())
            } else {
                Err(unsafe_key(k))
            }
        };
        let arg = |a: &[u8]| {
            if arg_ok(a) {
                Ok(())
            } else {
                Err(Error::InvalidKey(format!(
                    "argument {:?}",
                    String::from_utf8_lossy(a)
                )))
            }
        };
        match self {
            Request::Get { keys, .. } => {
                if keys.is_empty() {
                    return Err(Error::InvalidKey(String::new()));
                }
                keys.iter().try_for_each(|k| key(k))
            }
            Request::Store { key: k, .. }
            | Request::Delete { key: k, .. }
            | Request::Arith { key: k, .. }
            | Request::Touch { key: k, .. } => key(k),
            Request::Stats { group: Some(a) }
            | Request::Shutdown { arg: Some(a) }
            | Request::Metadump { arg: a } => arg(a),
            Request::LruCrawler { args } => args.iter().try_for_each(|a| {
                if a.contains(&b' ') {
                    Err(Error::InvalidKey(String::from_utf8_lossy(a).into_owned()))
                } else {
                    arg(a)
                }
            }),
            Request::MetaDebug { key: k, base64 } => {
                if wire_key_ok(k, *base64) {
                    Ok(())
                } else {
                    Err(unsafe_key(k))
                }
            }
            Request::Meta(m) => {
                if !wire_key_ok(&m.key, m.flags.base64) {
                    return Err(unsafe_key(&m.key));
                }
                // The opaque is echoed back in the reply, so only what could end the line
                // at the node (or the reply at us) is refused; other bytes go as memcached
                // echoes them.
                match &m.flags.opaque {
                    Some(o) if !arg_ok(o) => Err(Error::InvalidKey(format!(
                        "opaque {:?}",
                        String::from_utf8_lossy(o)
                    ))),
                    _ => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// What a reply to this request may look like; see [`Expect`].
    pub fn expect(&self) -> Expect {
        match self {
            Request::Get { keys, .. } => Expect::Values(keys.len()),
            Request::Store { .. } => Expect::Store,
            Request::Delete { .. } => Expect::Delete,
            Request::Arith { .. } => Expect::Arith,
            Request::Touch { .. } => Expect::Touch,
            Request::FlushAll { .. }
            | Request::Verbosity { .. }
            | Request::SlabsAutomove { .. } => Expect::Ok,
            Request::Version => Expect::Version,
            Request::Stats { .. } => Expect::Stats,
            Request::MetaNoop => Expect::Noop,
            Request::MetaDebug { .. } => Expect::Debug,
            Request::Meta(_) => Expect::Meta,
            Request::Quit
            | Request::RefreshCerts { .. }
            | Request::Shutdown { .. }
            | Request::CacheMemlimit { .. }
            | Request::Metadump { .. }
            | Request::LruCrawler { .. } => Expect::FreeForm,
        }
    }
}

/// The replies a request can get, so that a pipelined connection notices at once when the reply
/// it matched to a request cannot be that request's (a reply lost or added upstream, a stream
/// out of step): the connection is then reset rather than have every later reply handed to the
/// wrong caller. Error lines (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`) fit every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `VALUE`s (at most this many) and `END`.
    Values(usize),
    Store,
    Delete,
    Arith,
    Touch,
    /// `OK`.
    Ok,
    Version,
    /// `STAT` lines, a bare `END`, or a one-line answer (`RESET`, `OK`).
    Stats,
    /// `MN`.
    Noop,
    /// `ME` or `EN`.
    Debug,
    /// A meta reply other than `MN`/`ME`.
    Meta,
    /// Anything but a meta reply (admin verbs with memcached's assorted one-line answers).
    FreeForm,
}

impl Expect {
    /// Whether `r` can be the reply to a request of this kind.
    pub fn accepts(&self, r: &Response) -> bool {
        if r.is_error() {
            return true;
        }
        match (self, r) {
            (Expect::Values(n), Response::Values(v)) => v.len() <= *n,
            (
                Expect::Store,
                Response::Stored | Response::NotStored | Response::Exists | Response::NotFound,
            ) => true,
            (Expect::Delete, Response::Deleted | Response::NotFound) => true,
            (Expect::Arith, Response::Number(_) | Response::NotFound) => true,
            (Expect::Touch, Response::Touched | Response::NotFound) => true,
            (Expect::Ok, Response::Ok) => true,
            (Expect::Version, Response::Version(_)) => true,
            (
                Expect::Stats,
                Response::Stats(_) | Response::Values(_) | Response::Ok | Response::Other(_),
            ) => true,
            (Expect::Noop, Response::Meta(m)) => m.status == MetaStatus::Mn,
            (Expect::Debug, Response::Meta(m)) => {
                matches!(m.status, MetaStatus::Me | MetaStatus::En)
            }
            (Expect::Meta, Response::Meta(m)) => {
                !matches!(m.status, MetaStatus::Mn | MetaStatus::Me)
            }
            (Expect::FreeForm, r) => !matches!(r, Response::Meta(_)),
            _ => false,
        }
    }

    /// The bounds of this reply from servers whose items are at most `max_item_size` bytes.
    pub fn limits(&self, max_item_size: usize) -> ReplyLimits {
        let items = match self {
            Expect::Values(n) => *n,
            _ => 0,
        };
        ReplyLimits::for_items(max_item_size, items)
    }
}
