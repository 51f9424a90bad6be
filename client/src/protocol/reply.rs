//! Reply writers: the one place that writes the bytes of a memcached reply.
//!
//! The node answers requests with these, and [`Response::encode`](super::Response::encode)
//! (the proxy's and the tests' way to write a typed reply) is built from them too, so each reply
//! form has a single writer and the two servers cannot drift apart. Each writer appends to a
//! buffer the caller owns (`BytesMut` on a connection, `Vec<u8>` in a store walk) and formats
//! numbers without `fmt` or allocation: a reply costs nothing but its own bytes.
//!
//! Error lines are [`Fault`](super::Fault) messages, written with [`message`]. A check in
//! `.ci/run` (`.ci/check_reply_literals.sh`) keeps reply literals out of every other source
//! file (docs/architecture.md, "The crates and their layers").

use bytes::BufMut;

use super::meta::put_key;
use super::meta::MetaStatus;
use super::number::{put_i64, put_u64};

/// The answer to `stats reset`, as a line's text (for a typed `Response::Other`).
pub const RESET: &str = "RESET";

/// Ends a reply line.
pub const CRLF: &[u8] = b"\r\n";

/// Appends `\r\n`.
#[inline]
pub fn crlf(buf: &mut impl BufMut) {
    buf.put_slice(CRLF);
}

/// Appends one line: `text` and `\r\n`. For a [`Fault`](super::Fault) message or another
/// constant reply line held in this module or in `fault.rs`.
#[inline]
pub fn message(buf: &mut impl BufMut, text: &str) {
    buf.put_slice(text.as_bytes());
    crlf(buf);
}

/// `refresh_certs` that could not load the files: memcached's "Error loading …" line, with
/// why (kept on one line), sent even with `noreply`; the old certificates stay in use.
pub fn refresh_certs_failed(buf: &mut impl BufMut, why: &str) {
    buf.put_slice(b"Error loading the certificates: ");
    buf.put_slice(why.replace(['\r', '\n'], " ").as_bytes());
    crlf(buf);
}

macro_rules! fixed_lines {
    ($($(#[$doc:meta])* $name:ident => $text:literal;)*) => {
        $(
            $(#[$doc])*
            #[inline]
            pub fn $name(buf: &mut impl BufMut) {
                buf.put_slice($text);
            }
        )*
    };
}

fixed_lines! {
    /// `STORED`.
    stored => b"STORED\r\n";
    /// `NOT_STORED`.
    not_stored => b"NOT_STORED\r\n";
    /// `EXISTS`: a CAS mismatch.
    exists => b"EXISTS\r\n";
    /// `NOT_FOUND`.
    not_found => b"NOT_FOUND\r\n";
    /// `DELETED`.
    deleted => b"DELETED\r\n";
    /// `TOUCHED`.
    touched => b"TOUCHED\r\n";
    /// `OK`.
    ok => b"OK\r\n";
    /// `END`: closes a `VALUE`, `STAT`, metadump or prefix listing.
    end => b"END\r\n";
    /// A bare `ERROR`.
    error => b"ERROR\r\n";
    /// `RESET`: the answer to `stats reset`.
    reset => b"RESET\r\n";
}

/// One `VALUE <key> <flags> <bytes> [<cas>]` line and its data block.
///
/// The numbers and the line end are formatted (`itoa`) into one stack buffer and appended
/// with a single `put_slice`: a multi-get writes this once per hit, and each `put_slice` on a
/// `BytesMut` is a capacity check and a `memcpy` call, which cost more than the digits.
#[inline]
pub fn value(buf: &mut impl BufMut, key: &[u8], flags: u32, cas: Option<u64>, data: &[u8]) {
    // " <flags> <bytes> <cas>\r\n": at most 1 + 10 + 1 + 20 + 1 + 20 + 2 = 55 bytes.
    let mut tail = [0u8; 56];
    let mut n = 0;
    let mut push = |s: &[u8]| {
        tail[n..n + s.len()].copy_from_slice(s);
        n += s.len();
    };
    let mut digits = itoa::Buffer::new();
    push(b" ");
    push(digits.format(flags).as_bytes());
    push(b" ");
    push(digits.format(data.len()).as_bytes());
    if let Some(c) = cas {
        push(b" ");
        push(digits.format(c).as_bytes());
    }
    push(CRLF);
    buf.put_slice(b"VALUE ");
    buf.put_slice(key);
    buf.put_slice(&tail[..n]);
    data_block(buf, data);
}

/// A data block: the bytes and `\r\n`.
#[inline]
pub fn data_block(buf: &mut impl BufMut, data: &[u8]) {
    buf.put_slice(data);
    crlf(buf);
}

/// The new value after `incr`/`decr`.
#[inline]
pub fn number(buf: &mut impl BufMut, n: u64) {
    put_u64(buf, n);
    crlf(buf);
}

/// `VERSION <text>`.
#[inline]
pub fn version(buf: &mut impl BufMut, text: &[u8]) {
    buf.put_slice(b"VERSION ");
    buf.put_slice(text);
    crlf(buf);
}

/// `CLIENT_ERROR <message>` with a message not known in advance (a proxy relaying one).
#[inline]
pub fn client_error(buf: &mut impl BufMut, msg: &[u8]) {
    buf.put_slice(b"CLIENT_ERROR ");
    buf.put_slice(msg);
    crlf(buf);
}

/// `SERVER_ERROR <message>` with a message not known in advance.
#[inline]
pub fn server_error(buf: &mut impl BufMut, msg: &[u8]) {
    buf.put_slice(b"SERVER_ERROR ");
    buf.put_slice(msg);
    crlf(buf);
}

/// A value of a `STAT` line, written without `fmt`.
pub trait StatValue {
    fn put(&self, buf: &mut impl BufMut);
}

macro_rules! number_stat {
    ($put:ident as $wide:ty: $($t:ty),*) => {$(
        impl StatValue for $t {
            #[inline]
            fn put(&self, buf: &mut impl BufMut) {
                $put(buf, *self as $wide);
            }
        }
    )*};
}
number_stat!(put_u64 as u64: u8, u16, u32, u64, usize);
number_stat!(put_i64 as i64: i32, i64);

impl StatValue for str {
    #[inline]
    fn put(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.as_bytes());
    }
}

impl StatValue for [u8] {
    #[inline]
    fn put(&self, buf: &mut impl BufMut) {
        buf.put_slice(self);
    }
}

impl<T: StatValue + ?Sized> StatValue for &T {
    #[inline]
    fn put(&self, buf: &mut impl BufMut) {
        (**self).put(buf);
    }
}

/// A CPU time as memcached prints `rusage_user`/`rusage_system`: `seconds.microseconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds {
    pub secs: u64,
    pub micros: u32,
}

impl StatValue for Seconds {
    fn put(&self, buf: &mut impl BufMut) {
        put_u64(buf, self.secs);
        buf.put_u8(b'.');
        let mut digits = [b'0'; 6];
        let mut m = self.micros.min(999_999);
        for d in digits.iter_mut().rev() {
            *d = b'0' + (m % 10) as u8;
            m /= 10;
        }
        buf.put_slice(&digits);
    }
}

/// A fixed-point ratio as memcached prints `slab_automove_ratio` (`%.2f`), from hundredths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hundredths(pub u64);

impl StatValue for Hundredths {
    fn put(&self, buf: &mut impl BufMut) {
        put_u64(buf, self.0 / 100);
        buf.put_u8(b'.');
        buf.put_slice(&[b'0' + (self.0 / 10 % 10) as u8, b'0' + (self.0 % 10) as u8]);
    }
}

/// One `STAT <name> <value>` line.
#[inline]
pub fn stat(buf: &mut impl BufMut, name: &str, value: impl StatValue) {
    stat_bytes(buf, name.as_bytes(), value);
}

/// One `STAT` line whose name is not text known in advance (a relayed listing).
#[inline]
pub fn stat_bytes(buf: &mut impl BufMut, name: &[u8], value: impl StatValue) {
    buf.put_slice(b"STAT ");
    buf.put_slice(name);
    buf.put_u8(b' ');
    value.put(buf);
    crlf(buf);
}

/// One `stats detail dump` line: `PREFIX <prefix> get <n> hit <n> set <n> del <n>`.
pub fn prefix(buf: &mut impl BufMut, prefix: &[u8], get: u64, hit: u64, set: u64, del: u64) {
    buf.put_slice(b"PREFIX ");
    buf.put_slice(prefix);
    for (name, n) in [
        (&b" get "[..], get),
        (b" hit ", hit),
        (b" set ", set),
        (b" del ", del),
    ] {
        buf.put_slice(name);
        put_u64(buf, n);
    }
    crlf(buf);
}

/// One `stats cachedump` line: `ITEM <key> [<value bytes> b; <exptime> s]`.
pub fn cachedump_item(buf: &mut impl BufMut, key: &[u8], bytes: u64, exptime: u64) {
    buf.put_slice(b"ITEM ");
    buf.put_slice(key);
    buf.put_slice(b" [");
    put_u64(buf, bytes);
    buf.put_slice(b" b; ");
    put_u64(buf, exptime);
    buf.put_slice(b" s]\r\n");
}

/// The fields `me` and `lru_crawler metadump` print about an item, in memcached's order:
/// ` exp=<n> la=<n> cas=<n> fetch=<yes|no> cls=<n> size=<n>`. What `exp` and `la` mean differs
/// (`me`: relative; metadump: Unix times), which the caller decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ItemFields {
    pub exp: i64,
    pub la: u64,
    pub cas: u64,
    pub fetch: bool,
    pub cls: u32,
    pub size: u64,
}

impl ItemFields {
    /// Appends the fields, each after a space.
    pub fn put(&self, buf: &mut impl BufMut) {
        buf.put_slice(b" exp=");
        put_i64(buf, self.exp);
        buf.put_slice(b" la=");
        put_u64(buf, self.la);
        buf.put_slice(b" cas=");
        put_u64(buf, self.cas);
        buf.put_slice(if self.fetch {
            b" fetch=yes"
        } else {
            b" fetch=no"
        });
        buf.put_slice(b" cls=");
        put_u64(buf, u64::from(self.cls));
        buf.put_slice(b" size=");
        put_u64(buf, self.size);
    }
}

/// `ME <key> exp=.. la=.. cas=.. fetch=.. cls=.. size=..`: the answer to `me`; the key base64
/// when it was stored binary, as memcached prints it.
pub fn meta_debug(buf: &mut impl BufMut, key: &[u8], binary: bool, fields: &ItemFields) {
    buf.put_slice(b"ME ");
    put_key(buf, key, binary);
    fields.put(buf);
    crlf(buf);
}

/// The status of a meta reply (`HD`, `EN`, `NF`…) without its flags or line end; a `VA` reply
/// starts with [`meta_va`] instead.
#[inline]
pub fn meta_status(buf: &mut impl BufMut, status: MetaStatus) {
    buf.put_slice(status.as_str().as_bytes());
}

/// `VA <size>`: the start of a meta reply carrying a value of `size` bytes.
#[inline]
pub fn meta_va(buf: &mut impl BufMut, size: u64) {
    buf.put_slice(b"VA ");
    put_u64(buf, size);
}

/// `MN`: the meta no-op's whole answer.
#[inline]
pub fn meta_noop(buf: &mut impl BufMut) {
    meta_status(buf, MetaStatus::Mn);
    crlf(buf);
}

/// A numeric return flag: ` <c><n>` (`s`, `c`, `f`, `l`).
#[inline]
pub fn meta_flag_num(buf: &mut impl BufMut, flag: u8, n: u64) {
    buf.put_u8(b' ');
    buf.put_u8(flag);
    put_u64(buf, n);
}

/// The TTL return flag: ` t<seconds>`, ` t-1` for an item that never expires.
#[inline]
pub fn meta_flag_ttl(buf: &mut impl BufMut, ttl: Option<i64>) {
    buf.put_slice(b" t");
    put_i64(buf, ttl.unwrap_or(-1));
}

/// A return flag echoing a token as sent (` O<opaque>`).
#[inline]
pub fn meta_flag_token(buf: &mut impl BufMut, flag: u8, token: &[u8]) {
    buf.put_u8(b' ');
    buf.put_u8(flag);
    buf.put_slice(token);
}

/// ` k<key>`; base64 with ` b` after it when the key is binary.
#[inline]
pub fn meta_flag_key(buf: &mut impl BufMut, key: &[u8], binary: bool) {
    buf.put_slice(b" k");
    put_key(buf, key, binary);
    if binary {
        buf.put_slice(b" b");
    }
}

/// A flag without a token: ` <c>` (`Z`, `X`, `W`).
#[inline]
pub fn meta_flag(buf: &mut impl BufMut, flag: u8) {
    buf.put_u8(b' ');
    buf.put_u8(flag);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_listings_are_memcached_text() {
        let mut b = Vec::new();
        stat(&mut b, "pid", 42u32);
        stat(&mut b, "rusage_user", Seconds { secs: 3, micros: 7 });
        stat(&mut b, "slab_automove_ratio", Hundredths(80));
        stat(&mut b, "neg", -5i64);
        stat(&mut b, "libevent", "tokio");
        prefix(&mut b, b"a", 3, 1, 1, 0);
        cachedump_item(&mut b, b"k", 2, 0);
        end(&mut b);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "STAT pid 42\r\nSTAT rusage_user 3.000007\r\nSTAT slab_automove_ratio 0.80\r\n\
             STAT neg -5\r\nSTAT libevent tokio\r\nPREFIX a get 3 hit 1 set 1 del 0\r\n\
             ITEM k [2 b; 0 s]\r\nEND\r\n"
        );
    }

    #[test]
    fn value_and_meta_lines() {
        let mut b = Vec::new();
        value(&mut b, b"k", 5, Some(9), b"ab");
        value(&mut b, b"k", 0, None, b"");
        meta_va(&mut b, 2);
        meta_flag_num(&mut b, b'c', 9);
        meta_flag_ttl(&mut b, None);
        meta_flag_token(&mut b, b'O', b"x");
        meta_flag_key(&mut b, b"\n", true);
        meta_flag(&mut b, b'W');
        crlf(&mut b);
        let fields = ItemFields {
            exp: -1,
            la: 2,
            cas: 3,
            fetch: true,
            cls: 1,
            size: 70,
        };
        meta_debug(&mut b, b"k", false, &fields);
        meta_noop(&mut b);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "VALUE k 5 2 9\r\nab\r\nVALUE k 0 0\r\n\r\nVA 2 c9 t-1 Ox kCg== b W\r\n\
             ME k exp=-1 la=2 cas=3 fetch=yes cls=1 size=70\r\nMN\r\n"
        );
    }

    #[test]
    fn value_line_holds_the_widest_numbers() {
        let mut b = Vec::new();
        value(&mut b, b"key", u32::MAX, Some(u64::MAX), b"x");
        value(&mut b, b"k", 10, Some(0), &[b'y'; 100]);
        let want = format!(
            "VALUE key {} 1 {}\r\nx\r\nVALUE k 10 100 0\r\n{}\r\n",
            u32::MAX,
            u64::MAX,
            "y".repeat(100)
        );
        assert_eq!(String::from_utf8(b).unwrap(), want);
    }
}
