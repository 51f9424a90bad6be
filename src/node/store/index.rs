//! The hash index: key hash → (segment, offset), in 8-byte slots and no allocation per item.
//!
//! Segcache's idea in a simpler shape: 1024 shards, each an open-addressing table of `u64`
//! slots (linear probing, backward-shift deletion, so no tombstones) behind its own
//! read-write lock, grown by a quarter or less when it passes 13/16 full. A slot packs a
//! 26-bit tag from the key's hash, the 20-bit segment id and the item's offset in 4-byte units
//! (18 bits; items are 4-aligned); 0 is an empty slot. A tag match is only a candidate: the
//! caller compares the key.
//!
//! A table can have any number of slots, not only a power of two: the home of a tag is the
//! tag's random bits scaled to the table's length (`bits × len >> 25`, Lemire's "fastrange"),
//! so growing rehashes from the stored tags alone, without reading keys back. Tables grow
//! through the lengths 2^k × {1, 1.25, 1.5, 1.75} (steps of a seventh to a quarter) instead of
//! doubling: they stay between 65 % and 81 % full, 10–12.3 bytes per item where doubling gave
//! 10–20 (16 at a million items, with every shard just past a doubling), and their byte sizes
//! are the allocator's own size classes (mimalloc, like jemalloc, has four per power of two
//! and rounds a request up to one: 1 391 slots took 12 KiB, 1 280 take 10). The price is a
//! slightly longer average probe, still mostly within one cache line.
//!
//! Every change to a key's entry is made with the key's write lock held (the store's
//! stripes), so a writer knows the entry it replaces.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::segment::MAX_SEGMENTS;

/// Shards (a power of two), picked by the hash's low bits.
const SHARDS: usize = 1024;
/// A shard's first table.
const MIN_SLOTS: usize = 8;

const OFF_BITS: u32 = 18;
const SEG_BITS: u32 = 20;
const TAG_BITS: u32 = 64 - OFF_BITS - SEG_BITS;
const _: () = assert!(1 << SEG_BITS == MAX_SEGMENTS);

/// Where an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Loc {
    pub seg: u32,
    /// Byte offset in the segment (a multiple of 4, below 1 MiB).
    pub off: u32,
}

/// The tag's bits below its always-set top bit: uniformly distributed, they pick the home.
const HOME_BITS: u32 = TAG_BITS - 1;

/// The tag of a hash: its high bits, never 0.
#[inline]
fn tag(h: u64) -> u64 {
    (h >> (64 - TAG_BITS)) | (1 << (TAG_BITS - 1))
}

#[inline]
fn encode(h: u64, loc: Loc) -> u64 {
    debug_assert!(loc.off % 4 == 0 && (loc.off as u64 >> 2) < (1 << OFF_BITS));
    debug_assert!(loc.seg < MAX_SEGMENTS);
    (tag(h) << (SEG_BITS + OFF_BITS)) | (u64::from(loc.seg) << OFF_BITS) | u64::from(loc.off >> 2)
}

#[inline]
fn decode(slot: u64) -> Loc {
    Loc {
        seg: ((slot >> OFF_BITS) & ((1 << SEG_BITS) - 1)) as u32,
        off: ((slot & ((1 << OFF_BITS) - 1)) << 2) as u32,
    }
}

#[inline]
fn slot_tag(slot: u64) -> u64 {
    slot >> (SEG_BITS + OFF_BITS)
}

/// The table length after `n`: the next multiple of a quarter of the power of two at or below
/// `n` (8, 10, 12, 14, 16, 20, …), so lengths are 2^k × {1, 1.25, 1.5, 1.75}, the allocator's
/// size classes (see the module doc).
fn next_len(n: usize) -> usize {
    let quarter = ((1usize << n.max(1).ilog2()) / 4).max(1);
    (n / quarter + 1) * quarter
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

    /// Where a tag's probe starts: its random bits scaled to the table's length (monotone in
    /// the tag, below `len` for any length).
    #[inline]
    fn home(&self, tag: u64) -> usize {
        (((tag & ((1 << HOME_BITS) - 1)) * self.slots.len() as u64) >> HOME_BITS) as usize
    }

    /// The slot after `i`, wrapping at the end.
    #[inline]
    fn next(&self, i: usize) -> usize {
        let j = i + 1;
        if j == self.slots.len() {
            0
        } else {
            j
        }
    }

    /// The position of exactly `slot`.
    fn position(&self, slot: u64) -> Option<usize> {
        let mut i = self.home(slot_tag(slot));
        loop {
            match self.slots[i] {
                0 => return None,
                s if s == slot => return Some(i),
                _ => i = self.next(i),
            }
        }
    }

    fn insert(&mut self, slot: u64) {
        if (self.len + 1) * 16 > self.slots.len() * 13 {
            self.grow();
        }
        self.place(slot);
        self.len += 1;
    }

    /// Puts `slot` in the first free slot from its home (there is one: the table is never full).
    fn place(&mut self, slot: u64) {
        let mut i = self.home(slot_tag(slot));
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = slot;
    }

    /// Rebuilds the table at the next length, from the stored tags.
    fn grow(&mut self) {
        let mut bigger = Table::new(next_len(self.slots.len()));
        for &s in self.slots.iter().filter(|&&s| s != 0) {
            bigger.place(s);
        }
        bigger.len = self.len;
        *self = bigger;
    }

    /// Removes the slot at `i`, shifting later members of its cluster back.
    fn remove_at(&mut self, mut i: usize) {
        let mut j = i;
        loop {
            j = self.next(j);
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

    /// Checks that every entry is reachable from its home without crossing an empty slot,
    /// and the count (tests).
    #[cfg(test)]
    fn check(&self) {
        let mut n = 0;
        for (at, &s) in self.slots.iter().enumerate() {
            if s == 0 {
                continue;
            }
            n += 1;
            let mut i = self.home(slot_tag(s));
            while i != at {
                assert_ne!(self.slots[i], 0, "gap between home {i} and entry at {at}");
                i = self.next(i);
            }
        }
        assert_eq!(n, self.len);
        assert!(self.len * 16 <= self.slots.len() * 13, "over 13/16 full");
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
            i = t.next(i);
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

    /// A hash in shard 0 whose tag's random bits are `bits`.
    fn with_home_bits(bits: u64) -> u64 {
        (bits & ((1 << HOME_BITS) - 1)) << (64 - TAG_BITS)
    }

    #[test]
    fn grows_by_quarters_and_finds_everything_after_each_growth() {
        let idx = Index::new();
        let mut sizes = vec![];
        for k in 0..20_000u64 {
            idx.put(h(k), None, loc(k));
            let (n, bytes) = idx.sizes();
            let cap = (bytes - (SHARDS - 1) * MIN_SLOTS * 8) / 8;
            if sizes.last() != Some(&cap) {
                sizes.push(cap);
                let t = idx.read(h(0));
                t.check();
                assert!(
                    cap == MIN_SLOTS || t.len * 16 * 5 >= cap * 13 * 4 - 16 * 5,
                    "{} entries in {cap} slots: just grown, so about 13/16 ÷ 1.25 full",
                    t.len
                );
                drop(t);
                for j in 0..=k {
                    let want = loc(j);
                    assert_eq!(idx.find(h(j), |l| (l == want).then_some(l)), Some(want));
                }
            }
            assert_eq!(n, k as usize + 1);
        }
        assert!(sizes.len() > 25, "{sizes:?}");
        assert!(sizes
            .windows(2)
            .all(|w| w[1] > w[0] && w[1] <= w[0] + w[0] / 4 + 1));
        assert!(sizes.iter().any(|s| !s.is_power_of_two()));
        for &s in &sizes {
            let p = 1 << s.ilog2();
            assert!(s % (p / 4) == 0, "{s} is 2^k × {{1, 1.25, 1.5, 1.75}}");
        }
        let t = idx.read(h(0));
        assert!(
            t.slots.len() * 8 <= t.len * 8 * 16 * 5 / (13 * 4) + 8,
            "≤ 12.3 B per entry"
        );
    }

    #[test]
    fn lengths_step_through_quarters_of_powers_of_two() {
        let mut n = MIN_SLOTS;
        let mut seen = vec![n];
        while n < 4096 {
            n = next_len(n);
            seen.push(n);
        }
        assert_eq!(&seen[..10], &[8, 10, 12, 14, 16, 20, 24, 28, 32, 40]);
        assert!(seen.contains(&1280) && seen.contains(&2048) && seen.contains(&4096));
        assert_eq!(next_len(1), 2);
        assert_eq!(next_len(11), 12, "from any length, up to the next quarter");
    }

    #[test]
    fn removal_shifts_back_across_the_wrap() {
        // Four entries homed on the last slot and two on the first: the cluster wraps.
        let last = with_home_bits(u64::MAX);
        let first = with_home_bits(0);
        let entries: Vec<(u64, Loc)> = (0..6u32)
            .map(|i| {
                let h = if i % 3 == 2 { first } else { last };
                (h, Loc { seg: i, off: 8 * i })
            })
            .collect();
        // Every order of removal, on tables of several lengths.
        for cap in [8, 10, 11, 13] {
            for first_out in 0..entries.len() {
                for second_out in 0..entries.len() {
                    let mut t = Table::new(cap);
                    for &(h, l) in &entries {
                        t.insert(encode(h, l));
                    }
                    assert_eq!(t.slots.len(), cap, "no growth here");
                    assert_eq!(t.home(tag(last)), cap - 1);
                    assert_ne!(t.slots[0], 0, "wrapped");
                    let mut gone = vec![];
                    for out in [first_out, second_out] {
                        let (h, l) = entries[out];
                        match t.position(encode(h, l)) {
                            Some(i) => {
                                t.remove_at(i);
                                gone.push(out);
                            }
                            None => assert!(gone.contains(&out)),
                        }
                        t.check();
                    }
                    for (n, &(h, l)) in entries.iter().enumerate() {
                        assert_eq!(t.position(encode(h, l)).is_some(), !gone.contains(&n));
                    }
                }
            }
        }
    }

    proptest::proptest! {
        /// Puts, replacements and removals on one shard, with tags from a small set so homes
        /// collide and clusters wrap, against a HashMap; the table's invariant holds throughout.
        #[test]
        fn random_operations_match_a_model(
            ops in proptest::collection::vec((0u8..3, 0u64..64, 0u32..4), 1..600)
        ) {
            let idx = Index::new();
            let mut model: HashMap<u64, Loc> = HashMap::new();
            // Key k's hash: one of 16 tags, spread over the tag range (including both ends).
            let hash = |k: u64| with_home_bits((k % 16) * ((1 << HOME_BITS) - 1) / 15);
            for (op, k, v) in ops {
                let l = Loc { seg: k as u32, off: 8 * v };
                match op {
                    0 | 1 => {
                        let old = model.insert(k, l);
                        idx.put(hash(k), old, l);
                    }
                    _ => {
                        let had = model.remove(&k);
                        let removed = had.is_some_and(|o| idx.remove(hash(k), o));
                        proptest::prop_assert_eq!(removed, had.is_some());
                    }
                }
                idx.read(0).check();
            }
            for k in 0..64 {
                let want = model.get(&k).copied();
                let found = idx.find(hash(k), |c| (Some(c) == want).then_some(c));
                proptest::prop_assert_eq!(found, want);
            }
            proptest::prop_assert_eq!(idx.sizes().0, model.len());
        }
    }
}
