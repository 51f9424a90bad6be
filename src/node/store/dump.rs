//! Looking at items without reading them: `lru_crawler metadump` lines, `me` (meta debug), and
//! memcached's slab classes for their `cls=` field.
//!
//! The metadump format is memcached's crawler output, one line per live item (crawler.c):
//! `key=<uri-encoded key> exp=<unix time or -1> la=<unix time> cas=<n> fetch=<yes|no> cls=<n>
//! size=<n>\n`. The rebalancer parses exactly this from ringcache and memcached nodes alike.

use bytes::BufMut;

use super::item::{Item, ItemRef, MAX_KEY_LEN};
use super::{hash, Store};

/// memcached's default slab page / largest chunk (`slab_chunk_max`, 512 KiB).
const SLAB_CHUNK_MAX: u32 = 512 * 1024;

/// memcached's default slab class sizes (`-n 48 -f 1.25`): starting at 96 bytes, each class
/// 1.25 times the previous rounded up to 8 bytes, until the next would pass `slab_chunk_max`
/// / 1.25; then one class of `slab_chunk_max`. Index 0 is unused, as in memcached.
const SLAB_SIZES: ([u32; 64], usize) = {
    let mut sizes = [0u32; 64];
    let mut size: u32 = 96;
    let mut i = 1;
    // `size >= slab_chunk_max / 1.25`, in integers.
    while i < 63 && (size as u64) * 5 < (SLAB_CHUNK_MAX as u64) * 4 {
        if size % 8 != 0 {
            size += 8 - size % 8;
        }
        sizes[i] = size;
        // `size *= 1.25` on an unsigned int truncates, which is exactly this.
        size = size * 5 / 4;
        i += 1;
    }
    sizes[i] = SLAB_CHUNK_MAX;
    (sizes, i)
};

/// The slab class memcached (default settings) would store an item of `size` bytes in: the
/// smallest class whose chunks fit it; items larger than the largest chunk are chunked and
/// report the largest class.
pub fn slab_class(size: usize) -> u32 {
    let (sizes, largest) = &SLAB_SIZES;
    let found = sizes[1..=*largest].partition_point(|&chunk| (chunk as usize) < size);
    (found + 1).min(*largest) as u32
}

/// Appends `key` as memcached's `uriencode` does: ASCII letters, digits and `-._~` as they are,
/// every other byte as `%XX` (upper-case hex).
pub fn url_encode(key: &[u8], out: &mut impl BufMut) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.put_u8(b);
        } else {
            out.put_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

fn put_u64(out: &mut impl BufMut, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&buf[i..]);
}

/// Appends one metadump line (with its `\n`) for `item`.
pub fn metadump_line(item: &Item, out: &mut impl BufMut) {
    out.put_slice(b"key=");
    url_encode(item.key(), out);
    out.put_slice(b" exp=");
    match item.exptime() {
        0 => out.put_slice(b"-1"),
        e => put_u64(out, e),
    }
    out.put_slice(b" la=");
    put_u64(out, item.last_access());
    out.put_slice(b" cas=");
    put_u64(out, item.cas());
    out.put_slice(if item.fetched() {
        b" fetch=yes cls="
    } else {
        b" fetch=no cls="
    });
    put_u64(out, u64::from(item.slab_class()));
    out.put_slice(b" size=");
    put_u64(out, item.size() as u64);
    out.put_u8(b'\n');
}

/// What `me` reports for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugInfo {
    /// memcached prints `current_time - exptime`, so a live item shows minus its remaining
    /// seconds; -1 when it never expires.
    pub exp: i64,
    /// Seconds since the last access.
    pub la: u64,
    pub cas: u64,
    pub fetched: bool,
    /// Slab class (see [`slab_class`]).
    pub cls: u32,
    /// memcached's item size (header + key + value).
    pub size: u64,
    /// The key was stored base64-encoded: `me` prints it encoded.
    pub binary_key: bool,
}

/// The live items of a store, walked without collecting them (moka's iterator is weakly
/// consistent: items stored or removed during the walk may or may not appear).
pub struct Metadump<'a> {
    iter: moka::sync::Iter<'a, u64, ItemRef>,
    store: &'a Store,
    now: u64,
}

impl Iterator for Metadump<'_> {
    type Item = ItemRef;

    fn next(&mut self) -> Option<ItemRef> {
        let common = &self.store.inner.common;
        for (_, item) in self.iter.by_ref() {
            // crawler.c skips `exptime < current_time` (strictly) and flushed items.
            let e = item.exptime();
            if (e != 0 && e < self.now) || common.flush.flushed(&item, self.now) {
                continue;
            }
            return Some(item);
        }
        None
    }
}

impl Store {
    /// Every live item, for `lru_crawler metadump`: format each with [`metadump_line`].
    pub fn metadump_items(&self) -> Metadump<'_> {
        Metadump {
            iter: self.inner.cache.iter(),
            store: self,
            now: self.now(),
        }
    }

    /// Calls `emit` with the metadump line of every live item, until it returns false.
    pub fn metadump(&self, mut emit: impl FnMut(&[u8]) -> bool) {
        let mut line = Vec::with_capacity(1024);
        for item in self.metadump_items() {
            line.clear();
            metadump_line(&item, &mut line);
            if !emit(&line) {
                return;
            }
        }
    }

    /// `me <key>`: the item's metadata, without recording an access (`None` = `EN`).
    pub fn meta_debug(&self, key: &[u8]) -> Option<DebugInfo> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let now = self.now();
        let item = self.find(hash(key), key, now, false).hit()?;
        Some(DebugInfo {
            exp: item.ttl(now).map_or(-1, |ttl| -ttl),
            la: now.saturating_sub(item.last_access()),
            cas: item.cas(),
            fetched: item.fetched(),
            cls: item.slab_class(),
            size: item.size() as u64,
            binary_key: item.binary_key(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_uri_encoded_like_memcached() {
        let mut s = Vec::new();
        url_encode(b"a b/c~d%\x01\xff-._Z9", &mut s);
        assert_eq!(s, b"a%20b%2Fc~d%25%01%FF-._Z9");
    }

    /// The table memcached 1.6.18 prints with `-vv` at default settings.
    #[test]
    fn slab_classes_match_memcached_defaults() {
        let (sizes, largest) = SLAB_SIZES;
        assert_eq!(largest, 39);
        assert_eq!(&sizes[1..6], &[96, 120, 152, 192, 240]);
        assert_eq!(sizes[12], 1184);
        assert_eq!(sizes[38], 394_840);
        assert_eq!(sizes[39], 524_288);
        assert_eq!(slab_class(61), 1);
        assert_eq!(slab_class(96), 1);
        assert_eq!(slab_class(97), 2);
        assert_eq!(slab_class(400_060), 39);
        assert_eq!(
            slab_class(600_060),
            39,
            "chunked items report the largest class"
        );
    }
}
