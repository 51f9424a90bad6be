//! The request parser: bytes from a client in, [`Request`]s (or memcached's exact error) out.
//!
//! It mirrors memcached 1.6's `proto_text.c`: lines end at `\n` (a `\r` before it is dropped),
//! tokens are split on spaces only, a line is cut at a NUL byte, at most 23 tokens are looked at
//! (multi-gets excepted), and each verb checks its token count and arguments in memcached's order
//! so that every bad request gets the same answer memcached would give. The tests in
//! `tests/protocol_table.rs` run the same request/response table against a real memcached.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::fault::Fault;
use super::meta::{self, MetaCmd, MetaRequest};
use super::number::{safe_strtol, safe_strtoul, safe_strtoull};
use super::request::{ArithCmd, GetCmd, Request, StoreCmd};
use super::{valid_key, MAX_GET_LINE_LEN, MAX_KEY_LEN, MAX_LINE_LEN};
use crate::error::Error;

/// memcached looks at no more than this many tokens of a line (`MAX_TOKENS - 1`).
const MAX_TOKENS: usize = 23;

/// Meta commands with more tokens than this (counting verb, key and the terminal token, as
/// memcached does) are refused (`MFLAG_MAX_OPT_LENGTH`).
const META_MAX_TOKENS: usize = 20;

/// memcached's per-item header: `sizeof(item)` (48) + CAS (8) + the key's NUL (1). Together with
/// the key, the value and its `\r\n`, and 4 bytes of client flags when they are non-zero, it makes
/// the item size that is compared with the item size limit, so our "too large" boundary is
/// memcached's to the byte.
pub const ITEM_HEADER_BYTES: usize = 57;

/// Limits the parser enforces while it reads.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest item (header + key + value) accepted; memcached's `-I`, default 1 MiB.
    pub max_item_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_item_size: 1024 * 1024,
        }
    }
}

/// The size memcached accounts for an item, compared with [`Limits::max_item_size`].
#[inline]
pub fn item_size(key_len: usize, value_len: usize, flags: u32) -> usize {
    ITEM_HEADER_BYTES + key_len + value_len + 2 + if flags != 0 { 4 } else { 0 }
}

/// One step of parsing.
// `Item` is the common case and is moved straight out; boxing it would cost an allocation per
// request to shrink the rare `Swallow`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A complete request, or a request refused with memcached's answer.
    Item(Result<Request, Fault>),
    /// A refused storage request whose data block (this many bytes, `\r\n` included) must still
    /// be read and thrown away before the next request starts.
    Swallow(Fault, usize),
}

/// The space-separated tokens of one line, as byte ranges into the line.
struct Tokens {
    r: [(usize, usize); MAX_TOKENS],
    n: usize,
}

impl Tokens {
    /// Splits `line` as memcached's `tokenize_command` does, keeping at most 23 tokens. The
    /// spaces are found with `memchr` (a request line is mostly long tokens: keys, numbers), not
    /// by looking at every byte.
    fn split(line: &[u8]) -> Tokens {
        let mut t = Tokens {
            r: [(0, 0); MAX_TOKENS],
            n: 0,
        };
        let mut start = 0;
        for sp in memchr::memchr_iter(b' ', line).chain(std::iter::once(line.len())) {
            if sp > start {
                t.r[t.n] = (start, sp);
                t.n += 1;
                if t.n == MAX_TOKENS {
                    return t;
                }
            }
            start = sp + 1;
        }
        t
    }

    fn get<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.r[i];
        &line[s..e]
    }

    fn range(&self, i: usize) -> Range<usize> {
        self.r[i].0..self.r[i].1
    }

    /// memcached's `set_noreply_maybe`: the last token is `noreply`.
    fn noreply(&self, line: &[u8]) -> bool {
        self.n > 0 && self.get(line, self.n - 1) == b"noreply"
    }
}

/// Parses one request from the front of `buf`, consuming its bytes.
///
/// `Ok(None)` means more bytes are needed (nothing is consumed). `Err` means the connection must
/// be closed: a line with no `\n` in [`MAX_LINE_LEN`] bytes that is not a multi-get, a multi-get
/// line over [`MAX_GET_LINE_LEN`], or an HTTP request.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Step>, Error> {
    // memcached's binary protocol starts with the magic byte 0x80. ringcache speaks the text and
    // meta protocols only; hanging up at once beats waiting for a newline that never comes.
    if buf.first() == Some(&0x80) {
        return Err(Error::Protocol("binary protocol is not supported".into()));
    }
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        if buf.len() > MAX_LINE_LEN {
            let lead = buf.iter().take_while(|&&b| b == b' ').count();
            let rest = &buf[lead..];
            let multiget = rest.starts_with(b"get ") || rest.starts_with(b"gets ");
            if lead > 100 || !multiget || buf.len() > MAX_GET_LINE_LEN {
                return Err(Error::LineTooLong);
            }
        }
        return Ok(None);
    };
    let mut end = if nl > 1 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    // memcached treats the line as a C string.
    if let Some(z) = memchr::memchr(0, &buf[..end]) {
        end = z;
    }
    let toks = Tokens::split(&buf[..end]);
    let line = &buf[..end];
    if toks.n == 0 || toks.get(line, 0).len() < 2 {
        buf.advance_line(nl);
        return Ok(Some(Step::Item(Err(Fault::new(Fault::ERROR)))));
    }
    let n = toks.n;
    // The verb is copied out so the buffer can be split below; no verb is longer than 16 bytes,
    // so a longer token is replaced by one that matches nothing.
    let (vs, ve) = toks.r[0];
    let first = buf[vs];
    let mut verb_buf = [0u8; 16];
    let verb: &[u8] = if ve - vs <= verb_buf.len() {
        verb_buf[..ve - vs].copy_from_slice(&buf[vs..ve]);
        &verb_buf[..ve - vs]
    } else {
        b"<long>"
    };

    // Storage verbs need their data block too, so they are handled apart.
    let store = match verb {
        b"set" => Some(StoreCmd::Set),
        b"add" => Some(StoreCmd::Add),
        b"replace" => Some(StoreCmd::Replace),
        b"append" => Some(StoreCmd::Append),
        b"prepend" => Some(StoreCmd::Prepend),
        b"cas" => Some(StoreCmd::Cas),
        _ => None,
    };
    if let Some(cmd) = store {
        return Ok(parse_store(buf, nl, end, &toks, cmd, limits));
    }
    if verb == b"ms" {
        return Ok(parse_meta_set(buf, nl, end, &toks, limits));
    }

    let frame = buf.split_to(nl + 1).freeze();
    let line = &frame[..end];
    let item = match verb {
        b"get" | b"bget" => parse_get(&frame, end, GetCmd::Get, &toks),
        b"gets" => parse_get(&frame, end, GetCmd::Gets, &toks),
        b"gat" => parse_get(&frame, end, GetCmd::Gat, &toks),
        b"gats" => parse_get(&frame, end, GetCmd::Gats, &toks),
        b"mg" | b"md" | b"ma" => {
            let cmd = match verb[1] {
                b'g' => MetaCmd::Get,
                b'd' => MetaCmd::Delete,
                _ => MetaCmd::Arith,
            };
            parse_meta(&frame, &toks, cmd)
        }
        b"mn" => Ok(Request::MetaNoop),
        b"me" => parse_meta_debug(&frame, &toks),
        b"delete" => parse_delete(&frame, &toks),
        b"incr" | b"decr" => {
            let cmd = if verb == b"incr" {
                ArithCmd::Incr
            } else {
                ArithCmd::Decr
            };
            parse_arith(&frame, &toks, cmd)
        }
        b"touch" => parse_touch(&frame, &toks),
        b"flush_all" => parse_flush_all(line, &toks),
        b"version" => Ok(Request::Version),
        // memcached reads `noreply` anywhere after the verb (set_noreply_maybe) and ignores
        // other tokens.
        b"refresh_certs" => Ok(Request::RefreshCerts {
            noreply: toks.noreply(line),
        }),
        b"quit" => Ok(Request::Quit),
        b"verbosity" => one_number(line, &toks, Fault::BAD_FORMAT)
            .map(|(level, noreply)| Request::Verbosity { level, noreply }),
        b"stats" => Ok(Request::Stats {
            group: (n >= 2).then(|| frame.slice(toks.r[1].0..end)),
        }),
        b"shutdown" => Ok(Request::Shutdown {
            arg: (n >= 2).then(|| frame.slice(toks.r[1].0..end)),
        }),
        b"cache_memlimit" => one_number(line, &toks, Fault::ERROR)
            .map(|(megabytes, noreply)| Request::CacheMemlimit { megabytes, noreply }),
        b"slabs" => parse_slabs(line, &toks),
        b"lru_crawler" => {
            if n == 3 && toks.get(line, 1) == b"metadump" {
                Ok(Request::Metadump {
                    arg: frame.slice(toks.range(2)),
                })
            } else {
                Ok(Request::LruCrawler {
                    args: (1..n).map(|i| frame.slice(toks.range(i))).collect(),
                })
            }
        }
        _ if verb.len() == 2 && verb[0] == b'm' => Err(Fault::new(Fault::ERROR)),
        _ => {
            // memcached hangs up on what looks like an HTTP request instead of answering it.
            if toks.get(line, n - 1).starts_with(b"HTTP/") && !b"gsacidt".contains(&first) {
                return Err(Error::Protocol("HTTP request on memcached port".into()));
            }
            Err(Fault::new(Fault::ERROR))
        }
    };
    Ok(Some(Step::Item(item)))
}

/// `slabs automove <level>`, with memcached 1.6.18's replies: `slabs` alone or with another
/// sub-command is `ERROR`; a level that is not a number is `CLIENT_ERROR bad command line
/// format`, a number other than 0, 1 or 2 is `ERROR` (tokens after the level are ignored).
/// `slabs automove ratio` (no slab rebalancer to tune) and `slabs reassign` are not supported
/// and answer `ERROR`, as memcached does when their arguments are bad.
fn parse_slabs(line: &[u8], toks: &Tokens) -> Result<Request, Fault> {
    if toks.n < 3 || toks.get(line, 1) != b"automove" {
        return Err(Fault::new(Fault::ERROR));
    }
    let noreply = toks.noreply(line);
    if toks.get(line, 2) == b"ratio" {
        return Err(Fault::with_noreply(Fault::ERROR, noreply));
    }
    match safe_strtoul(toks.get(line, 2)) {
        Some(level @ 0..=2) => Ok(Request::SlabsAutomove {
            level: level as u8,
            noreply,
        }),
        Some(_) => Err(Fault::with_noreply(Fault::ERROR, noreply)),
        None => Err(Fault::with_noreply(Fault::BAD_FORMAT, noreply)),
    }
}

/// Small helper so the early-return paths read like memcached's "consume the line" step.
trait AdvanceLine {
    fn advance_line(&mut self, nl: usize);
}

impl AdvanceLine for BytesMut {
    fn advance_line(&mut self, nl: usize) {
        let _ = self.split_to(nl + 1);
    }
}

fn key_ok(key: &[u8]) -> bool {
    valid_key(key)
}

/// `get`/`gets`/`gat`/`gats`. A line of fewer than [`MAX_TOKENS`] tokens was split whole by
/// [`Tokens::split`], so its keys are taken from those ranges instead of scanning the line a
/// second time (a multi-get's line is mostly keys); only a longer line is split again here.
fn parse_get(frame: &Bytes, end: usize, cmd: GetCmd, toks: &Tokens) -> Result<Request, Fault> {
    let n = toks.n;
    if n < 2 {
        return Err(Fault::new(Fault::ERROR));
    }
    let line = &frame[..end];
    if n < MAX_TOKENS {
        return get_request(frame, cmd, n, toks.r[1..n].iter().map(|&(s, e)| s..e));
    }
    let ranges = line
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .map(|t| {
            let s = t.as_ptr() as usize - line.as_ptr() as usize;
            s..s + t.len()
        })
        .skip(1);
    get_request(frame, cmd, n, ranges)
}

/// The `Get` request for the tokens after the verb (`ranges`, into `frame`): the exptime first
/// for `gat`/`gats`, then the keys, each checked in turn.
fn get_request(
    frame: &Bytes,
    cmd: GetCmd,
    n: usize,
    mut it: impl Iterator<Item = Range<usize>>,
) -> Result<Request, Fault> {
    let exptime = if matches!(cmd, GetCmd::Gat | GetCmd::Gats) {
        let r = it.next().ok_or(Fault::new(Fault::ERROR))?;
        match safe_strtol(&frame[r]) {
            Some(e) => Some(e),
            None => return Err(Fault::new("CLIENT_ERROR invalid exptime argument")),
        }
    } else {
        None
    };
    let mut keys = Vec::with_capacity(n.saturating_sub(1));
    for r in it {
        if !key_ok(&frame[r.clone()]) {
            return Err(Fault::new(Fault::BAD_FORMAT));
        }
        keys.push(frame.slice(r));
    }
    Ok(Request::Get { cmd, exptime, keys })
}

fn parse_store(
    buf: &mut BytesMut,
    nl: usize,
    end: usize,
    toks: &Tokens,
    cmd: StoreCmd,
    limits: &Limits,
) -> Option<Step> {
    let line = &buf[..end];
    let n = toks.n;
    let want = if cmd == StoreCmd::Cas { 6 } else { 5 };
    if n != want && n != want + 1 {
        buf.advance_line(nl);
        return Some(Step::Item(Err(Fault::new(Fault::ERROR))));
    }
    let noreply = toks.noreply(line);
    let bad = |buf: &mut BytesMut| {
        buf.advance_line(nl);
        Some(Step::Item(Err(Fault::with_noreply(
            Fault::BAD_FORMAT,
            noreply,
        ))))
    };
    let key = toks.get(line, 1);
    if key.len() > MAX_KEY_LEN || !key_ok(key) {
        return bad(buf);
    }
    let (Some(flags), Some(exptime), Some(vlen)) = (
        safe_strtoul(toks.get(line, 2)),
        safe_strtol(toks.get(line, 3)),
        safe_strtol(toks.get(line, 4)),
    ) else {
        return bad(buf);
    };
    let cas = if cmd == StoreCmd::Cas {
        match safe_strtoull(toks.get(line, 5)) {
            Some(c) => c,
            None => return bad(buf),
        }
    } else {
        0
    };
    // memcached refuses lengths its `vlen + 2` could overflow.
    if !(0..=i64::from(i32::MAX) - 2).contains(&vlen) {
        return bad(buf);
    }
    let vlen = vlen as usize;
    if item_size(key.len(), vlen, flags) > limits.max_item_size {
        let key = Bytes::copy_from_slice(key);
        buf.advance_line(nl);
        let mut fault = Fault::with_noreply(Fault::TOO_LARGE, noreply);
        fault.unlink = (cmd == StoreCmd::Set).then_some(key);
        return Some(Step::Swallow(fault, vlen + 2));
    }
    let total = nl + 1 + vlen + 2;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return None;
    }
    let frame = buf.split_to(total).freeze();
    if &frame[total - 2..] != b"\r\n" {
        return Some(Step::Item(Err(Fault::with_noreply(
            Fault::BAD_CHUNK,
            noreply,
        ))));
    }
    Some(Step::Item(Ok(Request::Store {
        cmd,
        key: frame.slice(toks.range(1)),
        flags,
        exptime,
        cas,
        value: frame.slice(nl + 1..nl + 1 + vlen),
        noreply,
    })))
}

fn parse_delete(frame: &Bytes, toks: &Tokens) -> Result<Request, Fault> {
    let line = &frame[..];
    let n = toks.n;
    if !(2..=4).contains(&n) {
        return Err(Fault::new(Fault::ERROR));
    }
    let mut noreply = false;
    if n > 2 {
        let hold_is_zero = toks.get(line, 2) == b"0";
        noreply = toks.noreply(line);
        let valid = (n == 3 && (hold_is_zero || noreply)) || (n == 4 && hold_is_zero && noreply);
        if !valid {
            return Err(Fault::with_noreply(
                "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]",
                noreply,
            ));
        }
    }
    let key = toks.get(line, 1);
    if !key_ok(key) {
        return Err(Fault::with_noreply(Fault::BAD_FORMAT, noreply));
    }
    Ok(Request::Delete {
        key: frame.slice(toks.range(1)),
        noreply,
    })
}

/// `<verb> <number> [noreply]` (`verbosity`, `cache_memlimit`): the number and `noreply`;
/// `bad_number` is memcached's line for a number it cannot read.
fn one_number(line: &[u8], toks: &Tokens, bad_number: &'static str) -> Result<(u32, bool), Fault> {
    if !(toks.n == 2 || toks.n == 3) {
        return Err(Fault::new(Fault::ERROR));
    }
    let noreply = toks.noreply(line);
    safe_strtoul(toks.get(line, 1))
        .map(|n| (n, noreply))
        .ok_or(Fault::with_noreply(bad_number, noreply))
}

/// `<verb> <key> <number> [noreply]` (`incr`, `decr`, `touch`): the key, the number read with
/// `number`, and `noreply`; `bad_number` is memcached's line for a number it cannot read.
fn key_and_number<T>(
    frame: &Bytes,
    toks: &Tokens,
    number: fn(&[u8]) -> Option<T>,
    bad_number: &'static str,
) -> Result<(Bytes, T, bool), Fault> {
    let line = &frame[..];
    if !(toks.n == 3 || toks.n == 4) {
        return Err(Fault::new(Fault::ERROR));
    }
    let noreply = toks.noreply(line);
    if !key_ok(toks.get(line, 1)) {
        return Err(Fault::with_noreply(Fault::BAD_FORMAT, noreply));
    }
    let Some(n) = number(toks.get(line, 2)) else {
        return Err(Fault::with_noreply(bad_number, noreply));
    };
    Ok((frame.slice(toks.range(1)), n, noreply))
}

fn parse_arith(frame: &Bytes, toks: &Tokens, cmd: ArithCmd) -> Result<Request, Fault> {
    let (key, delta, noreply) = key_and_number(
        frame,
        toks,
        safe_strtoull,
        "CLIENT_ERROR invalid numeric delta argument",
    )?;
    Ok(Request::Arith {
        cmd,
        key,
        delta,
        noreply,
    })
}

fn parse_touch(frame: &Bytes, toks: &Tokens) -> Result<Request, Fault> {
    let (key, exptime, noreply) = key_and_number(
        frame,
        toks,
        safe_strtol,
        "CLIENT_ERROR invalid exptime argument",
    )?;
    Ok(Request::Touch {
        key,
        exptime,
        noreply,
    })
}

fn parse_flush_all(line: &[u8], toks: &Tokens) -> Result<Request, Fault> {
    let n = toks.n;
    if !(1..=3).contains(&n) {
        return Err(Fault::new(Fault::ERROR));
    }
    let noreply = toks.noreply(line);
    let mut delay = 0;
    if n != if noreply { 2 } else { 1 } {
        match safe_strtol(toks.get(line, 1)) {
            Some(d) => delay = d,
            None => {
                return Err(Fault::with_noreply(
                    "CLIENT_ERROR invalid exptime argument",
                    noreply,
                ))
            }
        }
    }
    Ok(Request::FlushAll { delay, noreply })
}

fn parse_meta_debug(frame: &Bytes, toks: &Tokens) -> Result<Request, Fault> {
    let line = &frame[..];
    if toks.n < 2 || toks.get(line, 1).len() > MAX_KEY_LEN {
        return Err(Fault::new(Fault::BAD_FORMAT));
    }
    let raw = frame.slice(toks.range(1));
    if toks.n >= 3 && toks.get(line, 2) == b"b" {
        return match meta::decode_key(&raw) {
            Some(key) => Ok(Request::MetaDebug { key, base64: true }),
            None => Err(Fault::new(Fault::BAD_FORMAT)),
        };
    }
    if !key_ok(&raw) {
        return Err(Fault::new(Fault::BAD_FORMAT));
    }
    Ok(Request::MetaDebug {
        key: raw,
        base64: false,
    })
}

/// The byte range covering tokens `from..` of the line (the raw flags of a meta request).
fn raw_range(toks: &Tokens, from: usize) -> Range<usize> {
    if from >= toks.n {
        return 0..0;
    }
    toks.r[from].0..toks.r[toks.n - 1].1
}

fn flag_ranges(toks: &Tokens, from: usize) -> Vec<Range<usize>> {
    (from..toks.n).map(|i| toks.range(i)).collect()
}

fn parse_meta(frame: &Bytes, toks: &Tokens, cmd: MetaCmd) -> Result<Request, Fault> {
    let line = &frame[..];
    if toks.n < 2 {
        return Err(Fault::new(Fault::ERROR));
    }
    let key = toks.get(line, 1);
    if key.len() > MAX_KEY_LEN {
        return Err(Fault::new(Fault::BAD_FORMAT));
    }
    // memcached counts the terminal token too.
    if toks.n + 1 > META_MAX_TOKENS {
        return Err(Fault::new(match cmd {
            MetaCmd::Get => "CLIENT_ERROR options flags are too long",
            _ => "CLIENT_ERROR options flags too long",
        }));
    }
    let key = frame.slice(toks.range(1));
    let (flags, key) = meta::parse_flags(cmd, &key, frame, &flag_ranges(toks, 2))?;
    if !flags.base64 && !key_ok(&key) {
        return Err(Fault::new(Fault::BAD_FORMAT));
    }
    Ok(Request::Meta(Box::new(MetaRequest {
        cmd,
        key,
        flags,
        raw: frame.slice(raw_range(toks, 2)),
        value: None,
    })))
}

fn parse_meta_set(
    buf: &mut BytesMut,
    nl: usize,
    end: usize,
    toks: &Tokens,
    limits: &Limits,
) -> Option<Step> {
    let line = &buf[..end];
    let refuse = |buf: &mut BytesMut, msg: &'static str| {
        buf.advance_line(nl);
        Some(Step::Item(Err(Fault::new(msg))))
    };
    if toks.n < 2 {
        return refuse(buf, Fault::ERROR);
    }
    if toks.get(line, 1).len() > MAX_KEY_LEN || toks.n == 2 {
        return refuse(buf, Fault::BAD_FORMAT);
    }
    if toks.n + 1 > META_MAX_TOKENS {
        return refuse(buf, "CLIENT_ERROR options flags too long");
    }
    let vlen = match safe_strtol(toks.get(line, 2)) {
        Some(v) if (0..=i64::from(i32::MAX) - 2).contains(&v) => v as usize,
        _ => return refuse(buf, Fault::BAD_FORMAT),
    };
    // From here on a refusal still has to swallow the data block.
    let swallow = |buf: &mut BytesMut, fault: Fault| {
        buf.advance_line(nl);
        Some(Step::Swallow(fault, vlen + 2))
    };
    let total = nl + 1 + vlen + 2;
    // Flags are parsed from a copy of the line so we can decide before the data has arrived.
    let head = Bytes::copy_from_slice(&buf[..end]);
    let key_tok = head.slice(toks.range(1));
    let (flags, key) = match meta::parse_flags(MetaCmd::Set, &key_tok, &head, &flag_ranges(toks, 3))
    {
        Ok(v) => v,
        Err(f) => return swallow(buf, f),
    };
    if !flags.base64 && !key_ok(&key) {
        return swallow(buf, Fault::new(Fault::BAD_FORMAT));
    }
    if item_size(key.len(), vlen, flags.client_flags.unwrap_or(0)) > limits.max_item_size {
        let mut fault = Fault::new(Fault::TOO_LARGE);
        fault.unlink = Some(key);
        return swallow(buf, fault);
    }
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return None;
    }
    let frame = buf.split_to(total).freeze();
    if &frame[total - 2..] != b"\r\n" {
        return Some(Step::Item(Err(Fault::new(Fault::BAD_CHUNK))));
    }
    Some(Step::Item(Ok(Request::Meta(Box::new(MetaRequest {
        cmd: MetaCmd::Set,
        key,
        flags,
        raw: head.slice(raw_range(toks, 3)),
        value: Some(frame.slice(nl + 1..nl + 1 + vlen)),
    })))))
}

#[cfg(test)]
mod tokens_tests {
    use super::{Tokens, MAX_TOKENS};
    use proptest::prelude::*;

    /// memcached's `tokenize_command`, byte by byte: tokens split on single spaces, empty ones
    /// skipped, and no more than `MAX_TOKENS` kept.
    fn reference(line: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = 0;
        for (i, &b) in line.iter().enumerate() {
            if b == b' ' {
                if i > start {
                    out.push((start, i));
                    if out.len() == MAX_TOKENS {
                        return out;
                    }
                }
                start = i + 1;
            }
        }
        if line.len() > start {
            out.push((start, line.len()));
        }
        out
    }

    proptest! {
        /// The `memchr` split finds exactly memcached's tokens, runs of spaces, leading and
        /// trailing spaces and lines of more than 23 tokens included.
        #[test]
        fn split_matches_memcacheds_tokenizer(
            line in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'a'), Just(b'\t')], 0..120)
        ) {
            let t = Tokens::split(&line);
            prop_assert_eq!(t.r[..t.n].to_vec(), reference(&line));
        }
    }

    #[test]
    fn split_keeps_at_most_23_tokens() {
        let line = "k ".repeat(40);
        let t = Tokens::split(line.as_bytes());
        assert_eq!(t.n, MAX_TOKENS);
        assert_eq!(t.r[MAX_TOKENS - 1], (44, 45));
    }
}
