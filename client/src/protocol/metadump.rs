//! One `lru_crawler metadump` line: the node writes it, the rebalancer reads it back from
//! ringcache and memcached nodes alike, so both go through this one type.
//!
//! The format is memcached's crawler output, one line per live item (crawler.c):
//! `key=<uri-encoded key> exp=<unix time or -1> la=<unix time> cas=<n> fetch=<yes|no> cls=<n>
//! size=<n>\n`. Newer memcached versions append more fields (`flags=<n>`); the parser reads
//! `flags` when present and skips any field it does not know.
//!
//! A router lists a node's keys with [`request_all`] on a connection of its own (opened by the
//! same `transport::Connector` as every other, so TLS and authentication apply) and reads the
//! answer with [`ListingCodec`]: line by line as it arrives, each line bounded, so a listing of
//! millions of items never has to be held whole and a stream that is not a listing (a TLS
//! record read as text, a refusal) is an error at its first line.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::number::{parse_u32, parse_u64};
use super::reply::ItemFields;
use super::request::Request;
use crate::error::Error;

/// Longest metadump line read back: memcached's is `key=` with up to 250 bytes URI-encoded
/// (750 characters) and seven short fields; a longer one is a broken or hostile stream.
pub const MAX_LINE: usize = 4096;

/// One item of a metadump listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetadumpLine {
    /// The key's raw bytes (decoded from the line's URI encoding; may be binary).
    pub key: Vec<u8>,
    /// `exp`: the Unix time the item expires, -1 if never; `la`: the Unix time of its last
    /// access; the rest as `me` prints them.
    pub fields: ItemFields,
    /// Client flags, printed by memcached versions after 1.6.18 only.
    pub flags: Option<u32>,
}

/// What one line of a metadump reply is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpLine<'a> {
    Item(MetadumpLine),
    /// `END`: the listing is over.
    End,
    /// Anything else (`BUSY ...`, `BADCLASS ...`, `ERROR ...`), as sent without its line end.
    Other(&'a [u8]),
}

impl MetadumpLine {
    /// Appends the line, with its `\n` (metadump lines end in a bare `\n`, unlike replies).
    pub fn write(&self, buf: &mut impl BufMut) {
        write_line(buf, &self.key, &self.fields, self.flags);
    }

    /// Reads one line of a metadump reply (with or without its `\n`/`\r\n`). A `key=` line
    /// whose numbers do not parse leaves them 0: only the key is needed to move an item.
    pub fn parse(line: &[u8]) -> DumpLine<'_> {
        let l = line.strip_suffix(b"\n").unwrap_or(line);
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l == b"END" {
            return DumpLine::End;
        }
        let Some(rest) = l.strip_prefix(b"key=") else {
            return DumpLine::Other(l);
        };
        let mut fields = rest.split(|&b| b == b' ');
        let mut item = MetadumpLine {
            key: percent_encoding::percent_decode(fields.next().unwrap_or_default()).collect(),
            ..MetadumpLine::default()
        };
        let f = &mut item.fields;
        for field in fields {
            let Some(eq) = field.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, value) = (&field[..eq], &field[eq + 1..]);
            let num = || parse_u64(value).unwrap_or(0);
            match name {
                b"exp" => f.exp = if value == b"-1" { -1 } else { num() as i64 },
                b"la" => f.la = num(),
                b"cas" => f.cas = num(),
                b"fetch" => f.fetch = value == b"yes",
                b"cls" => f.cls = parse_u32(value).unwrap_or(0),
                b"size" => f.size = num(),
                b"flags" => item.flags = parse_u32(value),
                _ => {}
            }
        }
        DumpLine::Item(item)
    }
}

/// Whether a line that is not an item (a [`DumpLine::Other`]) says another crawl is running
/// (`BUSY currently processing crawler request`): worth asking again a little later.
pub fn is_busy(line: &[u8]) -> bool {
    line.starts_with(b"BUSY")
}

/// `lru_crawler metadump all`: every live item of every slab class, one line each, then `END`.
pub fn request_all() -> Request {
    Request::Metadump {
        arg: Bytes::from_static(b"all"),
    }
}

/// One line of a node's answer to [`request_all`], as [`ListingCodec`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    Item(MetadumpLine),
    /// `END`: the listing is complete.
    End,
    /// `BUSY ...`: another crawl is running; ask again a little later.
    Busy,
    /// Any other line (`ERROR metadump not allowed`, `CLIENT_ERROR unauthenticated`, ...), as
    /// sent without its line end: the node will not list its keys.
    Refused(String),
}

/// Reads a metadump listing incrementally: one [`Listed`] per line as soon as the line has
/// arrived, a line without its `\n` in [`MAX_LINE`] bytes an error (nothing more is buffered).
/// Bytes already searched for the line end are not searched again when more arrive.
#[derive(Debug, Default)]
pub struct ListingCodec {
    /// How much of the buffer's first line has been searched for its `\n` already.
    searched: usize,
}

impl Decoder for ListingCodec {
    type Item = Listed;
    type Error = Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Listed>, Error> {
        let window = src.len().min(MAX_LINE);
        let Some(i) = memchr::memchr(b'\n', &src[self.searched.min(window)..window]) else {
            if src.len() >= MAX_LINE {
                return Err(Error::Protocol(format!(
                    "metadump line longer than {MAX_LINE} bytes"
                )));
            }
            self.searched = window;
            return Ok(None);
        };
        let end = self.searched.min(window) + i + 1;
        self.searched = 0;
        let line = src.split_to(end);
        Ok(Some(match MetadumpLine::parse(&line) {
            DumpLine::Item(item) => Listed::Item(item),
            DumpLine::End => Listed::End,
            DumpLine::Other(l) if is_busy(l) => Listed::Busy,
            DumpLine::Other(l) => Listed::Refused(String::from_utf8_lossy(l).into_owned()),
        }))
    }
}

/// Appends a metadump line for an item the caller holds (no copy of its key into a
/// [`MetadumpLine`]); the exact bytes [`MetadumpLine::write`] writes.
pub fn write_line(buf: &mut impl BufMut, key: &[u8], fields: &ItemFields, flags: Option<u32>) {
    buf.put_slice(b"key=");
    uri_encode(key, buf);
    fields.put(buf);
    if let Some(flags) = flags {
        buf.put_slice(b" flags=");
        super::number::put_u64(buf, u64::from(flags));
    }
    buf.put_u8(b'\n');
}

/// Appends `key` as memcached's `uriencode` does: ASCII letters, digits and `-._~` as they are,
/// every other byte as `%XX` (upper-case hex). Percent-decoding gives the key back exactly,
/// binary keys included.
pub fn uri_encode(key: &[u8], out: &mut impl BufMut) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.put_u8(b);
        } else {
            out.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uri_encoded_like_memcached() {
        let mut s = Vec::new();
        uri_encode(b"a b/c~d%\x01\xff-._Z9", &mut s);
        assert_eq!(s, b"a%20b%2Fc~d%25%01%FF-._Z9");
    }

    /// The line memcached 1.6.18 prints for `set k:1 5 100 2`, read and written back.
    #[test]
    fn memcached_line_round_trips() {
        let text = b"key=k%3A1 exp=1796159426 la=1796159326 cas=6 fetch=no cls=1 size=68\n";
        let DumpLine::Item(line) = MetadumpLine::parse(text) else {
            panic!("not an item line");
        };
        assert_eq!(line.key, b"k:1");
        assert_eq!(line.fields.exp, 1796159426);
        assert_eq!(line.fields.la, 1796159326);
        assert_eq!(line.fields.cas, 6);
        assert!(!line.fields.fetch);
        assert_eq!(
            (line.fields.cls, line.fields.size, line.flags),
            (1, 68, None)
        );
        let mut out = Vec::new();
        line.write(&mut out);
        assert_eq!(out, text);
    }

    #[test]
    fn never_expiring_newer_fields_end_and_errors() {
        let DumpLine::Item(line) = MetadumpLine::parse(
            b"key=x%0A%0Dflush_all exp=-1 la=5 cas=7 fetch=yes cls=2 size=9 flags=3 new=1\r\n",
        ) else {
            panic!("not an item line");
        };
        assert_eq!(line.key, b"x\n\rflush_all");
        assert_eq!(
            (line.fields.exp, line.fields.fetch, line.flags),
            (-1, true, Some(3))
        );
        assert_eq!(MetadumpLine::parse(b"END\r\n"), DumpLine::End);
        assert_eq!(
            MetadumpLine::parse(b"BUSY currently processing crawler request\r\n"),
            DumpLine::Other(b"BUSY currently processing crawler request")
        );
    }

    #[test]
    fn request_is_memcacheds() {
        let mut buf = BytesMut::new();
        request_all().encode(&mut buf);
        assert_eq!(&buf[..], b"lru_crawler metadump all\r\n");
    }

    /// Everything `codec` reads from `chunks`, fed one after another as a socket would.
    fn read_all(chunks: &[&[u8]]) -> Result<Vec<Listed>, Error> {
        let mut codec = ListingCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for c in chunks {
            buf.extend_from_slice(c);
            while let Some(l) = codec.decode(&mut buf)? {
                out.push(l);
            }
        }
        Ok(out)
    }

    #[test]
    fn listing_is_read_line_by_line_across_reads() {
        let got = read_all(&[
            b"key=a exp=-1 la=1 cas=2 fetch=no cls=1 size=60\nkey=b%20",
            b"c exp=-1 la=1 cas=3 fe",
            b"tch=no cls=1 size=61\n",
            b"END\r\n",
        ])
        .unwrap();
        let keys: Vec<(Vec<u8>, u64)> = got
            .iter()
            .filter_map(|l| match l {
                Listed::Item(i) => Some((i.key.clone(), i.fields.cas)),
                _ => None,
            })
            .collect();
        assert_eq!(keys, [(b"a".to_vec(), 2), (b"b c".to_vec(), 3)]);
        assert_eq!(got.last(), Some(&Listed::End));
    }

    #[test]
    fn busy_refusals_and_bounds() {
        assert_eq!(
            read_all(&[b"BUSY currently processing crawler request\r\n"]).unwrap(),
            [Listed::Busy]
        );
        assert_eq!(
            read_all(&[b"CLIENT_ERROR unauthenticated\r\n"]).unwrap(),
            [Listed::Refused("CLIENT_ERROR unauthenticated".into())]
        );
        // A line of exactly the bound is read; one byte more without its end is an error,
        // however the bytes arrive.
        let mut long = b"key=".to_vec();
        long.resize(MAX_LINE - 1, b'a');
        long.push(b'\n');
        assert_eq!(read_all(&[&long]).unwrap().len(), 1);
        let over = vec![b'a'; MAX_LINE];
        assert!(read_all(&[&over[..10], &over[10..]]).is_err());
        // A TLS alert read as text (a plain connection to a TLS node): no line end, then EOF,
        // which the caller sees as the stream ending before `END`.
        assert_eq!(read_all(&[b"\x15\x03\x03\x00\x02\x02\x46"]).unwrap(), []);
    }
}
