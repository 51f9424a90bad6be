//! Looking at items without reading them: `lru_crawler metadump`, `stats cachedump` and `me`
//! (meta debug). The lines themselves are written by `ringcache_client::protocol` (`metadump`,
//! `reply`), the one home of the wire format; this file walks the store for them.

use bytes::BufMut;
use ringcache_client::protocol::metadump;
use ringcache_client::protocol::reply::{self, ItemFields};

use std::sync::Arc;

use super::index::Loc;
use super::item::{Item, ItemRef, MAX_KEY_LEN};
use super::segment::Segment;
use super::{hash, Store};

/// Appends one metadump line (with its `\n`) for `item`: `exp` is the Unix time it expires
/// (-1: never), `la` the Unix time of its last access. memcached 1.6.18 prints no `flags`.
pub fn metadump_line(item: &Item, out: &mut impl BufMut) {
    let fields = ItemFields {
        exp: match item.exptime() {
            0 => -1,
            e => e as i64,
        },
        la: item.last_access(),
        cas: item.cas(),
        fetch: item.fetched(),
        cls: item.slab_class(),
        size: item.size() as u64,
    };
    metadump::write_line(out, item.key(), &fields, None);
}

/// memcached's cap on one `stats cachedump` reply (`item_cachedump`'s 2 MiB buffer).
const CACHEDUMP_MAX: usize = 2 << 20;

/// Appends one `stats cachedump` line: `ITEM <key> [<value bytes> b; <exptime> s]\r\n`, the
/// exptime as an absolute Unix time and 0 for items that never expire (as memcached prints
/// `exptime + process_started`).
pub fn cachedump_line(item: &Item, out: &mut impl BufMut) {
    reply::cachedump_item(out, item.key(), item.value().len() as u64, item.exptime());
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
    /// Slab class (see [`slab_class`](super::slab::slab_class)).
    pub cls: u32,
    /// memcached's item size (header + key + value).
    pub size: u64,
    /// The key was stored base64-encoded: `me` prints it encoded.
    pub binary_key: bool,
}

impl DebugInfo {
    /// The fields of the `ME` line.
    pub fn fields(&self) -> ItemFields {
        ItemFields {
            exp: self.exp,
            la: self.la,
            cas: self.cas,
            fetch: self.fetched,
            cls: self.cls,
            size: self.size,
        }
    }
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
        reply::end(out);
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
}
