//! The hash index: key hash → (segment, offset), in 8-byte slots and no allocation per item.
//!
//! Segcache's idea in a simpler shape: 1024 shards, each an open-addressing table of `u64`
//! slots (linear probing, backward-shift deletion, so no tombstones) behind its own
//! read-write lock, doubled when it passes 13/16 full. A slot packs a 27-bit tag from the
//! key's hash, the 20-bit segment id and the item's offset in 8-byte units (17 bits); 0 is an
//! empty slot. The tag's low bits are also the slot's home position, so a table can grow
//! without reading keys back. A tag match is only a candidate: the caller compares the key.
//!
//! Every change to a key's entry is made with the key's write lock held (the store's
//! stripes), so a writer knows the entry it replaces.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::segment::MAX_SEGMENTS;

/// Shards (a power of two), picked by the hash's low bits.
const SHARDS: usize = 1024;
/// A shard's first table.
const MIN_SLOTS: usize = 8;

const OFF_BITS: u32 = 17;
const SEG_BITS: u32 = 20;
const TAG_BITS: u32 = 64 - OFF_BITS - SEG_BITS;
const _: () = assert!(1 << SEG_BITS == MAX_SEGMENTS);

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub seg: u32,
    /// Byte offset in the segment (a multiple of 8, below 1 MiB).
    pub off: u32,
}

/// The tag of a hash: its high bits, never 0.
#[inline]
fn tag(h: u64) -> u64 {
    (h >> (64 - TAG_BITS)) | (1 << (TAG_BITS - 1))
}

#[inline]
fn encode(h: u64, loc: Loc) -> u64 {
    debug_assert!(loc.off % 8 == 0 && (loc.off as u64 >> 3) < (1 << OFF_BITS));
    debug_assert!(loc.seg < MAX_SEGMENTS);
    (tag(h) << (SEG_BITS + OFF_BITS)) | (u64::from(loc.seg) << OFF_BITS) | u64::from(loc.off >> 3)
}

#[inline]
fn decode(slot: u64) -> Loc {
    Loc {
        seg: ((slot >> OFF_BITS) & ((1 << SEG_BITS) - 1)) as u32,
        off: ((slot & ((1 << OFF_BITS) - 1)) << 3) as u32,
    }
}

#[inline]
fn slot_tag(slot: u64) -> u64 {
    slot >> (SEG_BITS + OFF_BITS)
}

/// One shard's table.
#[derive(Debug)]
struct Table {
    slots: Box<[u64]>,
    len: usize,
}

impl Table {
    fn new(n: usize) -> Table {
        Table {
            slots: vec![0; n].into_boxed_slice(),
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline]
    fn home(&self, tag: u64) -> usize {
        tag as usize & self.mask()
    }

    /// The position of exactly `slot`.
    fn position(&self, slot: u64) -> Option<usize> {
        let mut i = self.home(slot_tag(slot));
        loop {
            match self.slots[i] {
                0 => return None,
                s if s == slot => return Some(i),
                _ => i = (i + 1) & self.mask(),
            }
        }
    }

    fn insert(&mut self, slot: u64) {
        if (self.len + 1) * 16 > self.slots.len() * 13 {
            self.grow();
        }
        let mut i = self.home(slot_tag(slot));
        while self.slots[i] != 0 {
            i = (i + 1) & self.mask();
        }
        self.slots[i] = slot;
        self.len += 1;
    }

    fn grow(&mut self) {
        let mut bigger = Table::new(self.slots.len() * 2);
        for &s in self.slots.iter().filter(|&&s| s != 0) {
            let mut i = bigger.home(slot_tag(s));
            while bigger.slots[i] != 0 {
                i = (i + 1) & bigger.mask();
            }
            bigger.slots[i] = s;
        }
        bigger.len = self.len;
        *self = bigger;
    }

    /// Removes the slot at `i`, shifting later members of its cluster back.
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.mask();
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            let k = self.home(slot_tag(s));
            // Move `s` into the hole unless its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < k && k <= j
            } else {
                i < k || k <= j
            };
            if !stays {
                self.slots[i] = s;
                i = j;
            }
        }
        self.slots[i] = 0;
        self.len -= 1;
    }
}

/// The index.
pub(super) struct Index {
    shards: Box<[RwLock<Table>]>,
}

impl Index {
    pub(super) fn new() -> Index {
        Index {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(Table::new(MIN_SLOTS)))
                .collect(),
        }
    }

    #[inline]
    fn read(&self, h: u64) -> RwLockReadGuard<'_, Table> {
        // Tables are changed whole under the lock; a panic cannot leave one half-changed
        // (`grow` builds the new table before replacing the old one).
        self.shards[h as usize & (SHARDS - 1)]
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    #[inline]
    fn write(&self, h: u64) -> RwLockWriteGuard<'_, Table> {
        self.shards[h as usize & (SHARDS - 1)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Calls `check` on each candidate location of `h` (tag match), under the shard's read
    /// lock, until it returns something. While `check` runs, the entry cannot be removed, so
    /// the segment it names is still the one it was made for.
    #[inline]
    pub(super) fn find<R>(&self, h: u64, mut check: impl FnMut(Loc) -> Option<R>) -> Option<R> {
        let t = self.read(h);
        let want = tag(h);
        let mut i = t.home(want);
        loop {
            let s = t.slots[i];
            if s == 0 {
                return None;
            }
            if slot_tag(s) == want {
                if let Some(r) = check(decode(s)) {
                    return Some(r);
                }
            }
            i = (i + 1) & t.mask();
        }
    }

    /// Points `h`'s entry at `new`: replaces the entry for `old` if given and present,
    /// else adds one.
    pub(super) fn put(&self, h: u64, old: Option<Loc>, new: Loc) {
        let mut t = self.write(h);
        let slot = encode(h, new);
        if let Some(i) = old.and_then(|o| t.position(encode(h, o))) {
            t.slots[i] = slot;
        } else {
            t.insert(slot);
        }
    }

    /// Removes the entry for `loc`; false if it was not there.
    pub(super) fn remove(&self, h: u64, loc: Loc) -> bool {
        let mut t = self.write(h);
        match t.position(encode(h, loc)) {
            Some(i) => {
                t.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Whether the entry for `loc` is there.
    pub(super) fn contains(&self, h: u64, loc: Loc) -> bool {
        self.read(h).position(encode(h, loc)).is_some()
    }

    /// Entries, and bytes of slot tables (for tests and the memory notes).
    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let t = s.read().unwrap_or_else(|p| p.into_inner());
            (n + t.len, b + t.slots.len() * 8)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn loc(i: u64) -> Loc {
        Loc {
            seg: (i % MAX_SEGMENTS as u64) as u32,
            off: ((i * 8) % (1 << 20)) as u32,
        }
    }

    /// Hashes that all land in shard 0, to exercise probing, growth and backward shifts.
    fn h(i: u64) -> u64 {
        let mixed = xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes());
        mixed & !((SHARDS as u64) - 1)
    }

    #[test]
    fn encodes_and_decodes() {
        let l = Loc {
            seg: MAX_SEGMENTS - 1,
            off: (1 << 20) - 8,
        };
        let s = encode(u64::MAX, l);
        assert_eq!(decode(s), l);
        assert_ne!(encode(0, Loc { seg: 0, off: 0 }), 0, "never the empty slot");
    }

    #[test]
    fn matches_a_model_through_growth_and_removals() {
        let idx = Index::new();
        let mut model: HashMap<u64, Loc> = HashMap::new();
        let lookup = |idx: &Index, k: u64, want: Option<Loc>| {
            let found = idx.find(h(k), |l| (Some(l) == want).then_some(l));
            assert_eq!(found, want, "key {k}");
        };
        for round in 0..3u64 {
            for k in 0..3000u64 {
                let new = loc(k * 7 + round);
                let old = model.insert(k, new);
                idx.put(h(k), old, new);
            }
            for k in (0..3000u64).filter(|k| k % 3 == round) {
                let l = model.remove(&k).unwrap();
                assert!(idx.remove(h(k), l));
                assert!(!idx.remove(h(k), l), "removed once");
            }
            for k in 0..3000u64 {
                lookup(&idx, k, model.get(&k).copied());
            }
        }
        assert_eq!(idx.sizes().0, model.len());
        for (&k, &l) in &model {
            assert!(idx.contains(h(k), l));
            let moved = Loc { seg: 1, off: 8 };
            idx.put(h(k), Some(l), moved);
            assert!(!idx.contains(h(k), l), "replaced");
            assert!(idx.remove(h(k), moved));
        }
        assert_eq!(idx.sizes().0, 0);
    }
}
