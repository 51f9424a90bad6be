//! Meta commands (`mg`, `ms`, `md`, `ma`): their flags, parsed and validated as memcached does.
//!
//! A meta request keeps two views of its flags: [`MetaFlags`], the typed values the server acts
//! on, and `raw`, the flag tokens exactly as sent. Return flags are echoed in the order the client
//! gave them, so the server walks `raw` when it builds the reply.
//!
//! What goes on the wire is rendered from the typed flags, never copied from `raw`: `raw` only
//! lends its order. A router that clears a flag (`q`) has really removed it, however the client
//! spelled it (`qb` is read as `q` by memcached), and a token's ignored tail never reaches a node.
//!
//! [`MetaStatus`], a meta reply's two-letter code, lives here too: both the reply parser
//! (`response.rs`) and the reply writers (`reply.rs`) need it, and neither needs the other's.

use std::ops::Range;

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};

use super::fault::Fault;
use super::number::{put_i64, put_u64, safe_strtol, safe_strtoul, safe_strtoull};
use super::{valid_key, MAX_OPAQUE_LEN};

/// The four meta verbs that take flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaCmd {
    Get,
    Set,
    Delete,
    Arith,
}

impl MetaCmd {
    /// The verb as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MetaCmd::Get => "mg",
            MetaCmd::Set => "ms",
            MetaCmd::Delete => "md",
            MetaCmd::Arith => "ma",
        }
    }
}

/// The typed meaning of a meta request's flags. Numeric flags are `Some` when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaFlags {
    /// `b`: the key on the wire is base64; [`MetaRequest::key`] holds the decoded bytes.
    pub base64: bool,
    /// `q`: hide the nominal reply (`EN` for mg, `HD` for ms/md/ma).
    pub quiet: bool,
    /// `v`: return the value (mg, ma).
    pub value: bool,
    /// `u`: don't bump the item in the LRU.
    pub no_bump: bool,
    /// `I`: invalidate — mark stale instead of deleting (md), or store as stale if the CAS is older (ms).
    pub invalidate: bool,
    /// `x`: remove the value but keep the item (md).
    pub remove_value: bool,
    /// `c`, `f`, `h`, `k`, `l`, `s`, `t`: return CAS, client flags, hit-before, key, last access,
    /// size, TTL.
    pub ret_cas: bool,
    pub ret_flags: bool,
    pub ret_hit: bool,
    pub ret_key: bool,
    pub ret_last_access: bool,
    pub ret_size: bool,
    pub ret_ttl: bool,
    /// `O<token>`: opaque, echoed back (stored without the leading `O`).
    pub opaque: Option<Bytes>,
    /// `N<ttl>`: vivify on miss with this TTL.
    pub vivify: Option<i64>,
    /// `R<ttl>`: win the recache token if the remaining TTL is below this.
    pub recache: Option<i64>,
    /// `T<ttl>`: update the TTL.
    pub ttl: Option<i64>,
    /// `C<cas>`: compare CAS.
    pub compare_cas: Option<u64>,
    /// `E<cas>`: use this as the item's new CAS.
    pub new_cas: Option<u64>,
    /// `F<flags>`: client flags (ms).
    pub client_flags: Option<u32>,
    /// `M<mode>`: ms mode (E A P R S) or ma mode (I + D -).
    pub mode: Option<u8>,
    /// `D<delta>`: ma delta (default 1).
    pub delta: Option<u64>,
    /// `J<initial>`: ma initial value on vivify.
    pub initial: Option<u64>,
}

/// One `mg`/`ms`/`md`/`ma` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaRequest {
    pub cmd: MetaCmd,
    /// The key as stored (base64-decoded when the `b` flag was given).
    pub key: Bytes,
    pub flags: MetaFlags,
    /// The flag tokens as sent, space separated, in order (without key and `ms` data length).
    pub raw: Bytes,
    /// The data block of `ms`.
    pub value: Option<Bytes>,
}

impl MetaRequest {
    /// Builds a request from typed flags, rendering the wire flags in a canonical order. A key
    /// that is not a valid text key (binary, or read back decoded from a node) gets the `b`
    /// flag, so it travels base64 and can never end the request line.
    pub fn new(
        cmd: MetaCmd,
        key: Bytes,
        mut flags: MetaFlags,
        value: Option<Bytes>,
    ) -> MetaRequest {
        if !valid_key(&key) {
            flags.base64 = true;
        }
        let raw = flags.render();
        MetaRequest {
            cmd,
            key,
            flags,
            raw,
            value,
        }
    }

    /// The flag tokens as sent, in order, each as `(flag byte, token after the flag)`.
    pub fn tokens(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.raw
            .split(|&b| b == b' ')
            .filter(|t| !t.is_empty())
            .map(|t| (t[0], &t[1..]))
    }

    /// The key as it goes on the wire: base64 again when the client sent it so.
    pub fn wire_key(&self, buf: &mut BytesMut) {
        put_key(buf, &self.key, self.flags.base64);
    }

    /// Appends the request's wire form to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(self.cmd.as_str().as_bytes());
        buf.put_u8(b' ');
        self.wire_key(buf);
        if self.cmd == MetaCmd::Set {
            buf.put_u8(b' ');
            put_u64(buf, self.value.as_ref().map_or(0, |v| v.len()) as u64);
        }
        self.put_flags(buf);
        buf.put_slice(b"\r\n");
        if self.cmd == MetaCmd::Set {
            if let Some(v) = &self.value {
                buf.put_slice(v);
            }
            buf.put_slice(b"\r\n");
        }
    }
}

impl MetaRequest {
    /// Appends the flags the typed view holds, each as ` <flag>[<value>]`: first in the order of
    /// `raw` (so replies echo return flags in the client's order), then any set flag `raw` lacks
    /// (one a router added, such as `E<cas>`) in the canonical order of [`MetaFlags::render`].
    fn put_flags(&self, buf: &mut BytesMut) {
        let mut done = [false; 128];
        for (c, _) in self.tokens() {
            if c < 128 && !done[usize::from(c)] {
                done[usize::from(c)] = true;
                self.flags.put_flag(c, buf);
            }
        }
        for &c in CANONICAL {
            if !done[usize::from(c)] {
                self.flags.put_flag(c, buf);
            }
        }
    }
}

/// Every flag [`MetaFlags`] can hold, in the order [`MetaFlags::render`] writes them.
const CANONICAL: &[u8] = b"bcfhklstvuqIxNRTCEFDJMO";

impl MetaFlags {
    /// Appends ` <flag>[<value>]` for flag `c` if it is set; nothing for an unset or unknown
    /// flag (`P`, `L`: proxy hints memcached ignores).
    fn put_flag(&self, c: u8, buf: &mut BytesMut) {
        let switch = match c {
            b'b' => Some(self.base64),
            b'c' => Some(self.ret_cas),
            b'f' => Some(self.ret_flags),
            b'h' => Some(self.ret_hit),
            b'k' => Some(self.ret_key),
            b'l' => Some(self.ret_last_access),
            b's' => Some(self.ret_size),
            b't' => Some(self.ret_ttl),
            b'v' => Some(self.value),
            b'u' => Some(self.no_bump),
            b'q' => Some(self.quiet),
            b'I' => Some(self.invalidate),
            b'x' => Some(self.remove_value),
            _ => None,
        };
        let signed = match c {
            b'N' => self.vivify,
            b'R' => self.recache,
            b'T' => self.ttl,
            _ => None,
        };
        let unsigned = match c {
            b'C' => self.compare_cas,
            b'E' => self.new_cas,
            b'F' => self.client_flags.map(u64::from),
            b'D' => self.delta,
            b'J' => self.initial,
            _ => None,
        };
        let flag = |buf: &mut BytesMut| {
            buf.put_u8(b' ');
            buf.put_u8(c);
        };
        if switch == Some(true) {
            flag(buf);
        } else if let Some(v) = signed {
            flag(buf);
            put_i64(buf, v);
        } else if let Some(v) = unsigned {
            flag(buf);
            put_u64(buf, v);
        } else if let (b'M', Some(m)) = (c, self.mode) {
            flag(buf);
            buf.put_u8(m);
        } else if let (b'O', Some(o)) = (c, &self.opaque) {
            flag(buf);
            buf.put_slice(o);
        }
    }
}

/// Appends `key` to `buf`, base64-encoded when `binary`.
pub fn put_key(buf: &mut impl BufMut, key: &[u8], binary: bool) {
    if !binary {
        return buf.put_slice(key);
    }
    // Keys are at most 250 bytes: their base64 fits on the stack, so no allocation.
    let mut tmp = [0u8; 4 * (super::MAX_KEY_LEN + 2) / 3 + 4];
    match base64::engine::general_purpose::STANDARD.encode_slice(key, &mut tmp) {
        Ok(n) => buf.put_slice(&tmp[..n]),
        Err(_) => {
            let enc = base64::engine::general_purpose::STANDARD.encode(key);
            buf.put_slice(enc.as_bytes());
        }
    }
}

/// Decodes a base64 key as memcached's `b` flag does (its `base64_decode`); `None` where memcached
/// says `error decoding key`.
///
/// memcached's decoder is lenient in its own way, and keys are matched on the decoded bytes, so we
/// follow it rather than RFC 4648: bytes outside the alphabet are skipped, the alphabet bytes
/// (counting `=`) must come in groups of four, decoding stops after the first group with padding,
/// and a result of zero bytes is an error.
pub fn decode_key(key: &[u8]) -> Option<Bytes> {
    fn sextet(b: u8) -> Option<u8> {
        match b {
            b'A'..=b'Z' => Some(b - b'A'),
            b'a'..=b'z' => Some(b - b'a' + 26),
            b'0'..=b'9' => Some(b - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            b'=' => Some(0),
            _ => None,
        }
    }
    let count = key.iter().filter(|&&b| sextet(b).is_some()).count();
    if count == 0 || count % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(count / 4 * 3);
    let (mut block, mut n, mut pad) = ([0u8; 4], 0, 0);
    for &b in key {
        let Some(v) = sextet(b) else { continue };
        if b == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out.push((block[0] << 2) | (block[1] >> 4));
            out.push((block[1] << 4) | (block[2] >> 2));
            out.push((block[2] << 6) | block[3]);
            n = 0;
            if pad > 0 {
                if pad > 2 {
                    return None;
                }
                out.truncate(out.len() - pad);
                break;
            }
        }
    }
    (!out.is_empty()).then(|| Bytes::from(out))
}

impl MetaFlags {
    /// Renders the flags as wire tokens in a fixed order (used for requests we build ourselves).
    pub fn render(&self) -> Bytes {
        let mut b = BytesMut::new();
        let tok = |b: &mut BytesMut, c: u8| {
            if !b.is_empty() {
                b.put_u8(b' ');
            }
            b.put_u8(c);
        };
        for (on, c) in [
            (self.base64, b'b'),
            (self.ret_cas, b'c'),
            (self.ret_flags, b'f'),
            (self.ret_hit, b'h'),
            (self.ret_key, b'k'),
            (self.ret_last_access, b'l'),
            (self.ret_size, b's'),
            (self.ret_ttl, b't'),
            (self.value, b'v'),
            (self.no_bump, b'u'),
            (self.quiet, b'q'),
            (self.invalidate, b'I'),
            (self.remove_value, b'x'),
        ] {
            if on {
                tok(&mut b, c);
            }
        }
        for (v, c) in [(self.vivify, b'N'), (self.recache, b'R'), (self.ttl, b'T')] {
            if let Some(v) = v {
                tok(&mut b, c);
                put_i64(&mut b, v);
            }
        }
        for (v, c) in [
            (self.compare_cas, b'C'),
            (self.new_cas, b'E'),
            (self.client_flags.map(u64::from), b'F'),
            (self.delta, b'D'),
            (self.initial, b'J'),
        ] {
            if let Some(v) = v {
                tok(&mut b, c);
                put_u64(&mut b, v);
            }
        }
        if let Some(m) = self.mode {
            tok(&mut b, b'M');
            b.put_u8(m);
        }
        if let Some(o) = &self.opaque {
            tok(&mut b, b'O');
            b.put_slice(o);
        }
        b.freeze()
    }
}

/// Which error message a flag problem turns into: `md` and `ma` answer one generic line for any
/// flag problem, `mg` and `ms` say what was wrong.
fn flag_fault(cmd: MetaCmd, specific: &'static str) -> Fault {
    match cmd {
        MetaCmd::Delete | MetaCmd::Arith => Fault::new("CLIENT_ERROR invalid or duplicate flag"),
        _ => Fault::new(specific),
    }
}

/// Parses the flag tokens of a meta request (memcached's `_meta_flag_preparse`), decoding the key
/// when `b` is present. `key` is the key token as sent. Returns the typed flags and the real key.
///
/// `frame` holds the request line and `tokens` are the byte ranges of the flag tokens within it.
pub fn parse_flags(
    cmd: MetaCmd,
    key: &Bytes,
    frame: &Bytes,
    tokens: &[Range<usize>],
) -> Result<(MetaFlags, Bytes), Fault> {
    let mut f = MetaFlags::default();
    let mut seen = [false; 128];
    // memcached keeps scanning after a bad numeric token and reports the last such problem.
    let mut late: Option<&'static str> = None;
    let mut opaque_too_long = false;
    let mut real_key = key.clone();
    for r in tokens {
        let t = &frame[r.clone()];
        let c = t[0];
        if c >= 127 || seen[c as usize] {
            return Err(flag_fault(cmd, "CLIENT_ERROR duplicate flag"));
        }
        seen[c as usize] = true;
        let arg = &t[1..];
        let bad_token = "CLIENT_ERROR bad token in command line format";
        match c {
            b'b' => match decode_key(key) {
                Some(k) => {
                    real_key = k;
                    f.base64 = true;
                }
                None => late = Some("CLIENT_ERROR error decoding key"),
            },
            b'N' => match safe_strtol(arg) {
                Some(v) => f.vivify = Some(v),
                None => late = Some(bad_token),
            },
            b'T' => match safe_strtol(arg) {
                Some(v) => f.ttl = Some(v),
                None => late = Some(bad_token),
            },
            b'R' => match safe_strtol(arg) {
                Some(v) => f.recache = Some(v),
                None => late = Some(bad_token),
            },
            b'C' => match safe_strtoull(arg) {
                Some(v) => f.compare_cas = Some(v),
                None => late = Some(bad_token),
            },
            b'E' => match safe_strtoull(arg) {
                Some(v) => f.new_cas = Some(v),
                None => late = Some(bad_token),
            },
            b'F' => match safe_strtoul(arg) {
                Some(v) => f.client_flags = Some(v),
                None => late = Some(bad_token),
            },
            b'M' => {
                if t.len() != 2 {
                    late = Some("CLIENT_ERROR incorrect length for M token");
                } else {
                    f.mode = Some(arg[0]);
                }
            }
            b'J' => match safe_strtoull(arg) {
                Some(v) => f.initial = Some(v),
                None => late = Some("CLIENT_ERROR invalid numeric initial value"),
            },
            b'D' => match safe_strtoull(arg) {
                Some(v) => f.delta = Some(v),
                None => late = Some("CLIENT_ERROR invalid numeric delta value"),
            },
            b'O' => {
                // Checked after the other flags, as memcached does when it echoes the opaque.
                opaque_too_long = t.len() > MAX_OPAQUE_LEN;
                f.opaque = Some(frame.slice(r.start + 1..r.end));
            }
            b'P' | b'L' => {}
            b'k' => f.ret_key = true,
            b's' => f.ret_size = true,
            b't' => f.ret_ttl = true,
            b'c' => f.ret_cas = true,
            b'f' => f.ret_flags = true,
            b'l' => f.ret_last_access = true,
            b'h' => f.ret_hit = true,
            b'v' => f.value = true,
            b'u' => f.no_bump = true,
            b'q' => f.quiet = true,
            b'I' => f.invalidate = true,
            b'x' => f.remove_value = true,
            _ => return Err(flag_fault(cmd, "CLIENT_ERROR invalid flag")),
        }
    }
    if let Some(msg) = late {
        return Err(flag_fault(cmd, msg));
    }
    // memcached switches on the mode before it looks at the opaque's length, so a bad mode wins.
    if let Some(m) = f.mode {
        match cmd {
            MetaCmd::Set if !b"EAPRS".contains(&m) => {
                return Err(Fault::new("CLIENT_ERROR invalid mode for ms M token"))
            }
            MetaCmd::Arith if !b"I+D-".contains(&m) => {
                return Err(Fault::new("CLIENT_ERROR invalid mode for ma M token"))
            }
            _ => {}
        }
    }
    if opaque_too_long {
        return Err(Fault::new("CLIENT_ERROR opaque token too long"));
    }
    Ok((f, real_key))
}

/// The status code of a meta reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaStatus {
    /// `VA <size>`: a value follows.
    Va,
    /// `HD`: success, no value.
    Hd,
    /// `EN`: miss.
    En,
    /// `NF`: not found.
    Nf,
    /// `NS`: not stored.
    Ns,
    /// `EX`: CAS mismatch.
    Ex,
    /// `MN`: the no-op's answer.
    Mn,
    /// `ME`: the debug command's answer.
    Me,
}

impl MetaStatus {
    /// Every status, in declaration order.
    pub const ALL: [MetaStatus; 8] = [
        MetaStatus::Va,
        MetaStatus::Hd,
        MetaStatus::En,
        MetaStatus::Nf,
        MetaStatus::Ns,
        MetaStatus::Ex,
        MetaStatus::Mn,
        MetaStatus::Me,
    ];

    /// The two-letter code.
    pub fn as_str(self) -> &'static str {
        match self {
            MetaStatus::Va => "VA",
            MetaStatus::Hd => "HD",
            MetaStatus::En => "EN",
            MetaStatus::Nf => "NF",
            MetaStatus::Ns => "NS",
            MetaStatus::Ex => "EX",
            MetaStatus::Mn => "MN",
            MetaStatus::Me => "ME",
        }
    }

    /// The status for a two-letter code, if it is one: [`as_str`](Self::as_str) read backwards.
    pub(super) fn from_code(code: &[u8]) -> Option<MetaStatus> {
        MetaStatus::ALL
            .into_iter()
            .find(|s| s.as_str().as_bytes() == code)
    }
}
