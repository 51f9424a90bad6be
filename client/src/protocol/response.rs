//! The [`Response`] type: every reply a memcached server sends, its encoder and its parser.
//!
//! Replies are self-describing on the wire (a `VALUE` list ends with `END`, a meta reply starts
//! with its two-letter status), so the parser needs no knowledge of the request that caused them;
//! a pipelined connection still matches them to requests by order.

use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;

use super::meta::MetaStatus;
use super::number::{parse_u32, parse_u64};
use super::reply;
use crate::error::Error;

/// Longest reply line accepted from a server before the connection is judged out of sync.
const MAX_RESPONSE_LINE: usize = 64 * 1024;

/// Largest value a reply may announce: memcached's item size limit cannot exceed 1 GiB
/// (`ITEM_SIZE_MAX_UPPER_LIMIT`). A larger length is a broken stream, not a reason to allocate.
const MAX_RESPONSE_VALUE: u64 = 1024 * 1024 * 1024;

/// Bounds on one reply, checked while it is read: past any of them the stream is broken (or
/// hostile), and the caller resets the connection instead of buffering more.
///
/// [`Response::parse`] uses the loose defaults (a line of 64 KiB, a value of 1 GiB, no bound on
/// the number of items or listing lines); a router's backend connection sets them from what it
/// asked ([`ReplyLimits::for_items`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Longest line (a `VALUE`, meta or `STAT` line; not a data block).
    pub max_line: usize,
    /// Largest data block one `VALUE`/`VA` may announce.
    pub max_value: usize,
    /// Most `VALUE` items one reply may hold (a `get` of n keys gets at most n).
    pub max_items: usize,
    /// Most bytes of `STAT`/metadump lines one listing may take.
    pub max_listing: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: MAX_RESPONSE_LINE,
            max_value: MAX_RESPONSE_VALUE as usize,
            max_items: usize::MAX,
            max_listing: usize::MAX,
        }
    }
}

impl ReplyLimits {
    /// Longest line a memcached reply has: a `VALUE`/meta line with a 250-byte key and every
    /// return flag, an `ME` line, a `STAT` line, an error message. Far below a few KiB.
    pub const LINE: usize = 4 * 1024;
    /// Largest `STAT` listing a backend connection accepts (`stats items`/`slabs` of a node with
    /// every slab class in use are some tens of KiB).
    pub const LISTING: usize = 4 * 1024 * 1024;
    /// Room above the item size limit for what a value's size does not count exactly.
    pub const VALUE_SLACK: usize = 64 * 1024;

    /// The bounds of a reply to a request that names `items` keys, from servers whose items are
    /// at most `max_item_size` bytes.
    pub fn for_items(max_item_size: usize, items: usize) -> ReplyLimits {
        ReplyLimits {
            max_line: Self::LINE,
            max_value: max_item_size.saturating_add(Self::VALUE_SLACK),
            max_items: items,
            max_listing: Self::LISTING,
        }
    }
}

/// One item of a `get`-family reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub key: Bytes,
    pub flags: u32,
    /// Present for `gets`/`gats`.
    pub cas: Option<u64>,
    pub data: Bytes,
}

/// A meta reply: status, the return flags as sent (space separated), and the value for `VA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaResponse {
    pub status: MetaStatus,
    /// Return flags (`c123 f0 Oabc k...`), or for `ME` the key and its `name=value` fields.
    pub flags: Bytes,
    pub value: Option<Bytes>,
}

impl MetaResponse {
    /// The return flags, each as `(flag byte, token after the flag)`.
    pub fn tokens(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.flags
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .map(|t| (t[0], &t[1..]))
    }

    /// The token of return flag `flag`, if present (e.g. `b'c'` for the CAS).
    pub fn flag(&self, flag: u8) -> Option<&[u8]> {
        self.tokens().find(|(f, _)| *f == flag).map(|(_, t)| t)
    }

    /// The token of return flag `flag` as an unsigned number (`c`, `t`, `s`…); `None` if it is
    /// absent or not one (a TTL of `-1`, "never expires", is `None`).
    pub fn flag_u64(&self, flag: u8) -> Option<u64> {
        self.flag(flag).and_then(super::number::parse_u64)
    }
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    /// The items of a `get`-family reply; empty when the reply was a bare `END`.
    Values(Vec<Value>),
    /// The new value after `incr`/`decr`.
    Number(u64),
    /// `VERSION <text>`.
    Version(Bytes),
    /// `STAT <name> <value>` lines.
    Stats(Vec<(Bytes, Bytes)>),
    /// `lru_crawler metadump` or `stats cachedump` lines (without their `\n`; a cachedump
    /// line keeps its `\r`), written back byte for byte.
    Dump(Vec<Bytes>),
    Meta(MetaResponse),
    /// A bare `ERROR`.
    Error,
    /// `CLIENT_ERROR <message>`.
    ClientError(Bytes),
    /// `SERVER_ERROR <message>`.
    ServerError(Bytes),
    /// Any other one-line reply (`RESET`, `MEMLIMIT_TOO_SMALL ...`, `ERROR: shutdown not enabled`).
    Other(Bytes),
}

/// Appends one `VALUE` line and its data block (the writer lives in [`super::reply`]).
pub use super::reply::value as encode_value;

/// `VALUE` lines for `vals`, then `END` when `end` (a whole get's reply; without it, one
/// piece of a multi-get a proxy answers in pieces, whose last piece ends it).
pub fn encode_values(buf: &mut BytesMut, vals: &[Value], end: bool) {
    for v in vals {
        buf.reserve(v.key.len() + v.data.len() + 48);
        reply::value(buf, &v.key, v.flags, v.cas, &v.data);
    }
    if end {
        reply::end(buf)
    }
}

impl Response {
    /// Appends the reply's wire form to `buf`, with the [`reply`] writers.
    pub fn encode(&self, buf: &mut BytesMut) {
        match self {
            Response::Stored => reply::stored(buf),
            Response::NotStored => reply::not_stored(buf),
            Response::Exists => reply::exists(buf),
            Response::NotFound => reply::not_found(buf),
            Response::Deleted => reply::deleted(buf),
            Response::Touched => reply::touched(buf),
            Response::Ok => reply::ok(buf),
            Response::Error => reply::error(buf),
            Response::Values(vals) => encode_values(buf, vals, true),
            Response::Number(n) => reply::number(buf, *n),
            Response::Version(v) => reply::version(buf, v),
            Response::Stats(stats) => {
                for (k, v) in stats {
                    reply::stat_bytes(buf, k, &v[..]);
                }
                reply::end(buf)
            }
            Response::Dump(lines) => {
                for l in lines {
                    buf.put_slice(l);
                    buf.put_u8(b'\n');
                }
                reply::end(buf)
            }
            Response::Meta(m) => {
                if m.status == MetaStatus::Va {
                    reply::meta_va(buf, m.value.as_ref().map_or(0, |v| v.len()) as u64);
                } else {
                    reply::meta_status(buf, m.status);
                }
                if !m.flags.is_empty() {
                    buf.put_u8(b' ');
                    buf.put_slice(&m.flags);
                }
                reply::crlf(buf);
                if let Some(v) = &m.value {
                    reply::data_block(buf, v);
                }
            }
            Response::ClientError(m) => reply::client_error(buf, m),
            Response::ServerError(m) => reply::server_error(buf, m),
            Response::Other(l) => reply::data_block(buf, l),
        }
    }

    /// Whether this is an error reply (`ERROR`, `CLIENT_ERROR`, `SERVER_ERROR`).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Response::Error | Response::ClientError(_) | Response::ServerError(_)
        )
    }

    /// Parses one reply from the front of `buf`, consuming it. `Ok(None)`: more bytes needed.
    /// `Err`: the bytes are not a memcached reply; the connection is out of sync.
    pub fn parse(buf: &mut BytesMut) -> Result<Option<Response>, Error> {
        Response::parse_limited(buf, &ReplyLimits::default())
    }

    /// [`Response::parse`] within `limits`: a reply (or the part of it already received) that
    /// passes one of them is an error at once, before more of it is buffered.
    pub fn parse_limited(
        buf: &mut BytesMut,
        limits: &ReplyLimits,
    ) -> Result<Option<Response>, Error> {
        let Some(nl) = find_line(buf, 0, limits.max_line)? else {
            return Ok(None);
        };
        let line = trim_cr(&buf[..nl]);
        let simple = match line {
            b"STORED" => Some(Response::Stored),
            b"NOT_STORED" => Some(Response::NotStored),
            b"EXISTS" => Some(Response::Exists),
            b"NOT_FOUND" => Some(Response::NotFound),
            b"DELETED" => Some(Response::Deleted),
            b"TOUCHED" => Some(Response::Touched),
            b"OK" => Some(Response::Ok),
            b"END" => Some(Response::Values(Vec::new())),
            b"ERROR" => Some(Response::Error),
            _ => None,
        };
        if let Some(r) = simple {
            let _ = buf.split_to(nl + 1);
            return Ok(Some(r));
        }
        if line.starts_with(b"VALUE ") {
            return parse_values(buf, limits);
        }
        // `stats cachedump` lists `ITEM <key> [<n> b; <t> s]` lines: kept byte for byte as
        // metadump's are.
        if line.starts_with(b"STAT ") || line.starts_with(b"key=") || line.starts_with(b"ITEM ") {
            return parse_listing(buf, limits);
        }
        if line.len() >= 2 {
            if let Some(status) = MetaStatus::from_code(&line[..2]) {
                if line.len() == 2 || line[2] == b' ' {
                    return parse_meta(buf, nl, status, limits);
                }
            }
        }
        let frame = buf.split_to(nl + 1).freeze();
        let len = trim_cr(&frame[..nl]).len();
        let line = frame.slice(..len);
        Ok(Some(if let Some(rest) = line.strip_prefix(b"VERSION ") {
            Response::Version(line.slice(line.len() - rest.len()..))
        } else if let Some(rest) = line.strip_prefix(b"CLIENT_ERROR ") {
            Response::ClientError(line.slice(line.len() - rest.len()..))
        } else if let Some(rest) = line.strip_prefix(b"SERVER_ERROR ") {
            Response::ServerError(line.slice(line.len() - rest.len()..))
        } else if let Some(n) = (!line.is_empty() && line.iter().all(u8::is_ascii_digit))
            .then(|| parse_u64(&line))
            .flatten()
        {
            Response::Number(n)
        } else {
            Response::Other(line)
        }))
    }
}

/// Index of the `\n` ending the line that starts at `from`, if it has arrived; an error once
/// more than `max` bytes have come without one (or the line that came is longer).
fn find_line(buf: &[u8], from: usize, max: usize) -> Result<Option<usize>, Error> {
    let window = &buf[from..buf.len().min(from.saturating_add(max).saturating_add(1))];
    match memchr::memchr(b'\n', window) {
        Some(i) => Ok(Some(from + i)),
        None if buf.len() - from > max => Err(Error::Protocol("reply line too long".into())),
        None => Ok(None),
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn bad(what: &str) -> Error {
    Error::Protocol(format!("malformed reply: {what}"))
}

/// `VALUE <key> <flags> <bytes> [<cas>]` + data, repeated, then `END`.
fn parse_values(buf: &mut BytesMut, limits: &ReplyLimits) -> Result<Option<Response>, Error> {
    // First pass: check that the whole reply has arrived and where each piece is. Up to 8
    // items' places stay on the stack (a `SmallVec` moves to the heap past that): most replies
    // hold one item (every single-key get) or a few (a multi-get's share of one node), and a
    // list for them would be an allocation per reply on top of the values' own.
    let mut pos = 0;
    let mut spans: SmallVec<[Span; INLINE_SPANS]> = SmallVec::new();
    loop {
        let Some(nl) = find_line(buf, pos, limits.max_line)? else {
            return Ok(None);
        };
        let line = trim_cr(&buf[pos..nl]);
        if line == b"END" {
            pos = nl + 1;
            break;
        }
        if spans.len() >= limits.max_items {
            return Err(bad("more items than keys asked"));
        }
        let mut parts = line.split(|&b| b == b' ');
        if parts.next() != Some(b"VALUE") {
            return Err(bad("expected VALUE or END"));
        }
        let key = parts.next().ok_or_else(|| bad("VALUE without key"))?;
        let key_start = key.as_ptr() as usize - buf.as_ptr() as usize;
        let flags = parts
            .next()
            .and_then(parse_u32)
            .ok_or_else(|| bad("flags"))?;
        let len = parts
            .next()
            .and_then(parse_u64)
            .filter(|&n| n <= limits.max_value as u64)
            .ok_or_else(|| bad("length"))? as usize;
        let cas = match parts.next() {
            Some(c) => Some(parse_u64(c).ok_or_else(|| bad("cas"))?),
            None => None,
        };
        let data_start = nl + 1;
        let data_end = data_start + len;
        if buf.len() < data_end + 2 {
            buf.reserve(data_end + 2 - buf.len());
            return Ok(None);
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return Err(bad("data block not terminated"));
        }
        spans.push(Span {
            key: (key_start, key_start + key.len()),
            flags,
            cas,
            data: (data_start, data_end),
        });
        pos = data_end + 2;
    }
    let frame = buf.split_to(pos).freeze();
    let mut values = Vec::with_capacity(spans.len());
    values.extend(spans.iter().map(|s| Value {
        key: frame.slice(s.key.0..s.key.1),
        flags: s.flags,
        cas: s.cas,
        data: frame.slice(s.data.0..s.data.1),
    }));
    Ok(Some(Response::Values(values)))
}

/// Items of a `VALUE` reply whose places [`parse_values`] keeps on the stack.
const INLINE_SPANS: usize = 8;

/// Where one item of a `VALUE` reply lies in the buffer: its key and data (start, end), with
/// its flags and cas.
#[derive(Debug, Clone, Copy)]
struct Span {
    key: (usize, usize),
    flags: u32,
    cas: Option<u64>,
    data: (usize, usize),
}

/// `STAT` lines or metadump lines, then `END`.
fn parse_listing(buf: &mut BytesMut, limits: &ReplyLimits) -> Result<Option<Response>, Error> {
    let mut pos = 0;
    let mut lines = Vec::new();
    let stats = buf.starts_with(b"STAT ");
    loop {
        if pos > limits.max_listing {
            return Err(bad("listing too long"));
        }
        let Some(nl) = find_line(buf, pos, limits.max_line)? else {
            return Ok(None);
        };
        let line = trim_cr(&buf[pos..nl]);
        if stats && line != b"END" && !line.starts_with(b"STAT ") {
            return Err(bad("expected STAT or END"));
        }
        if line == b"END" {
            let end = nl + 1;
            let frame = buf.split_to(end).freeze();
            return Ok(Some(if stats {
                Response::Stats(
                    lines
                        .into_iter()
                        .map(|(s, e): (usize, usize)| {
                            let body = &frame[s + 5..e];
                            let sp = memchr::memchr(b' ', body).unwrap_or(body.len());
                            let name = frame.slice(s + 5..s + 5 + sp);
                            let value = frame.slice((s + 5 + sp + 1).min(e)..e);
                            (name, value)
                        })
                        .collect(),
                )
            } else {
                Response::Dump(lines.into_iter().map(|(s, e)| frame.slice(s..e)).collect())
            }));
        }
        // STAT lines end in "\r\n"; metadump lines in "\n", and are kept byte for byte.
        lines.push((pos, if stats { pos + line.len() } else { nl }));
        pos = nl + 1;
    }
}

/// A meta reply line, plus its data block for `VA`.
fn parse_meta(
    buf: &mut BytesMut,
    nl: usize,
    status: MetaStatus,
    limits: &ReplyLimits,
) -> Result<Option<Response>, Error> {
    let line_len = trim_cr(&buf[..nl]).len();
    let rest = if line_len > 3 { 3..line_len } else { 0..0 };
    if status != MetaStatus::Va {
        let frame = buf.split_to(nl + 1).freeze();
        return Ok(Some(Response::Meta(MetaResponse {
            status,
            flags: frame.slice(rest),
            value: None,
        })));
    }
    let body = &buf[rest.clone()];
    let sp = memchr::memchr(b' ', body).unwrap_or(body.len());
    let len = parse_u64(&body[..sp])
        .filter(|&n| n <= limits.max_value as u64)
        .ok_or_else(|| bad("VA length"))? as usize;
    let flags = (rest.start + sp + 1).min(rest.end)..rest.end;
    let end = nl + 1 + len + 2;
    if buf.len() < end {
        buf.reserve(end - buf.len());
        return Ok(None);
    }
    if &buf[end - 2..end] != b"\r\n" {
        return Err(bad("VA data block not terminated"));
    }
    let frame = buf.split_to(end).freeze();
    Ok(Some(Response::Meta(MetaResponse {
        status,
        flags: frame.slice(flags),
        value: Some(frame.slice(nl + 1..nl + 1 + len)),
    })))
}
