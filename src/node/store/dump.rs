//! Looking at items without reading them: `lru_crawler metadump` lines, `me` (meta debug), and
//! memcached's slab classes for their `cls=` field.
//!
//! The metadump format is memcached's crawler output, one line per live item (crawler.c):
//! `key=<uri-encoded key> exp=<unix time or -1> la=<unix time> cas=<n> fetch=<yes|no> cls=<n>
//! size=<n>\n`. The rebalancer parses exactly this from ringcache and memcached nodes alike.

use bytes::BufMut;

use std::sync::Arc;

use super::index::Loc;
use super::item::{Item, ItemRef, MAX_KEY_LEN};
use super::segment::Segment;
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

/// memcached's cap on one `stats cachedump` reply (`item_cachedump`'s 2 MiB buffer).
const CACHEDUMP_MAX: usize = 2 << 20;

/// Appends one `stats cachedump` line: `ITEM <key> [<value bytes> b; <exptime> s]\r\n`, the
/// exptime as an absolute Unix time and 0 for items that never expire (as memcached prints
/// `exptime + process_started`).
pub fn cachedump_line(item: &Item, out: &mut impl BufMut) {
    out.put_slice(b"ITEM ");
    out.put_slice(item.key());
    out.put_slice(b" [");
    put_u64(out, item.value().len() as u64);
    out.put_slice(b" b; ");
    put_u64(out, item.exptime());
    out.put_slice(b" s]\r\n");
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

/// The live items of a store, walked segment by segment without collecting them (items stored
/// or removed during the walk may or may not appear; an item moved by a merge meanwhile may
/// appear twice or not at all, as memcached's crawler may show an item bumped during its walk).
pub struct Metadump<'a> {
    segments: std::vec::IntoIter<Arc<Segment>>,
    current: Option<(Arc<Segment>, usize, usize)>,
    store: &'a Store,
    now: u64,
}

impl Iterator for Metadump<'_> {
    type Item = ItemRef;

    fn next(&mut self) -> Option<ItemRef> {
        let shared = &self.store.inner;
        loop {
            let Some((seg, off, end)) = &mut self.current else {
                let seg = self.segments.next()?;
                let end = seg.published();
                self.current = Some((seg, 0, end));
                continue;
            };
            if *off >= *end {
                self.current = None;
                continue;
            }
            // SAFETY: items are contiguous from 0 to `published`, each `footprint` long.
            let item = unsafe { ItemRef::at(seg.clone(), *off as u32) };
            *off += item.footprint();
            // crawler.c skips `exptime < current_time` (strictly) and flushed items.
            let e = item.exptime();
            if (e != 0 && e < self.now) || shared.common.flush.flushed(&item, self.now) {
                continue;
            }
            let loc = Loc {
                seg: seg.id,
                off: item.offset(),
            };
            if shared.index.contains(hash(item.key()), loc) {
                return Some(item);
            }
        }
    }
}

impl Store {
    /// Every live item, for `lru_crawler metadump`: format each with [`metadump_line`].
    pub fn metadump_items(&self) -> Metadump<'_> {
        Metadump {
            segments: self.inner.segments.all().into_iter(),
            current: None,
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

    /// `stats cachedump <class> <limit>`: up to `limit` live items (0 = all) of the class as
    /// [`cachedump_line`]s, then `END`, within memcached's 2 MiB. The node keeps one class,
    /// 1 (what `stats items` shows); every other class below 64 is empty.
    pub fn cachedump(&self, class: u32, limit: u32, out: &mut impl BufMut) {
        let shared = &self.inner;
        let now = self.now();
        let mut segments = shared.segments.all();
        // memcached lists its LRU from the head: the newest items first.
        segments.sort_unstable_by_key(|seg| std::cmp::Reverse(seg.serial));
        let mut line = Vec::with_capacity(300);
        let mut written = 0usize;
        let mut listed = 0usize;
        let mut items = Vec::new();
        'all: for seg in segments.into_iter().filter(|_| class == 1) {
            items.clear();
            let end = seg.published();
            let mut off = 0;
            while off < end {
                // SAFETY: items are contiguous from 0 to `published`, each `footprint` long.
                let item = unsafe { ItemRef::at(seg.clone(), off as u32) };
                off += item.footprint();
                items.push(item);
            }
            for item in items.iter().rev() {
                if limit != 0 && listed >= limit as usize {
                    break 'all;
                }
                let e = item.exptime();
                let loc = Loc {
                    seg: seg.id,
                    off: item.offset(),
                };
                if (e != 0 && e < now)
                    || shared.common.flush.flushed(item, now)
                    || !shared.index.contains(hash(item.key()), loc)
                {
                    continue;
                }
                line.clear();
                cachedump_line(item, &mut line);
                if written + line.len() + 5 > CACHEDUMP_MAX {
                    break 'all;
                }
                written += line.len();
                listed += 1;
                out.put_slice(&line);
            }
        }
        out.put_slice(b"END\r\n");
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

    /// memcached 1.6.18: `set a 5 100 3`, `set bb 0 0 2`, `stats cachedump 1 10` →
    /// `ITEM bb [2 b; 0 s]`, `ITEM a [3 b; <now + 100> s]`, `END`; limit 0 lists all, other
    /// classes are empty.
    #[test]
    fn cachedump_like_memcached() {
        let (s, _c) = crate::node::store::tests::store();
        let now = s.now();
        s.store(crate::node::store::StoreMode::Set, b"a", 5, 100, b"abc");
        s.store(crate::node::store::StoreMode::Set, b"bb", 0, 0, b"xy");
        let dump = |class, limit| {
            let mut out = Vec::new();
            s.cachedump(class, limit, &mut out);
            let text = String::from_utf8(out).unwrap();
            text.split_inclusive("\r\n")
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let all = vec![
            "ITEM bb [2 b; 0 s]\r\n".to_string(),
            format!("ITEM a [3 b; {} s]\r\n", now + 100),
            "END\r\n".to_string(),
        ];
        assert_eq!(dump(1, 10), all);
        assert_eq!(dump(1, 0), all);
        assert_eq!(dump(1, 1).len(), 2);
        assert_eq!(dump(2, 10), vec!["END\r\n".to_string()]);
    }

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
