//! The store's engine: where items go and how they leave. Appending to the open segment of a
//! TTL bucket, pointing the index at the result, moka's choice of a segment to evict and the
//! reclaim that follows (Segcache's merge: items read since they were appended are carried
//! forward), compaction of mostly dead segments, the `flush_all` state, the write locks. The
//! memcached verbs that use it are the façade, [`super::Store`] (mod.rs), and its siblings
//! `meta`, `arith`, `dump` and `sweep`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;

use super::counters::{Counters, C};
use super::index::{Index, Loc};
use super::item::{self, footprint, Item, ItemRef, Meta};
use super::segment::{self, Segment, MAX_SEGMENT_SIZE};
use super::sweep::Sweep;
use super::ITEM_OVERHEAD;
use crate::node::clock::Clock;

/// The charge of an item against the budget.
#[inline]
pub(super) fn charge(item: &Item) -> u64 {
    item.footprint() as u64 + ITEM_OVERHEAD
}

/// Write locks (a power of two).
pub(super) const STRIPES: usize = 4096;

/// TTL buckets: items are appended to the open segment of their bucket, so that a segment's
/// items expire at about the same time.
pub(super) const BUCKETS: usize = 8;

/// The TTL bucket of an item expiring at `exptime`: never, already, within a minute, ten
/// minutes, an hour, a day, thirty days, later.
fn bucket(exptime: u64, now: u64) -> usize {
    if exptime == 0 {
        return 0;
    }
    match exptime.saturating_sub(now) {
        0 => 1,
        1..=60 => 2,
        61..=600 => 3,
        601..=3600 => 4,
        3601..=86_400 => 5,
        86_401..=2_592_000 => 6,
        _ => 7,
    }
}

/// The size of the store's segments for a memory limit: 1 MiB, or less for small limits so
/// that a cache always has about 64 of them (eviction frees a sixty-fourth of the cache).
fn segment_size(limit: u64) -> usize {
    let target = (limit / 64).clamp(4096, MAX_SEGMENT_SIZE as u64);
    1usize << (63 - target.leading_zeros())
}

/// How many freed segment buffers the store keeps for reuse (`segment::Pool`): a
/// sixty-fourth of the cache's segments, at least 2 — about 1.5 % of the limit, 2 MiB at 64 MiB.
/// That is memory held beyond the limit, so it stays small; a burst of frees larger than it
/// goes back to the allocator.
fn pooled_segments(limit: u64) -> usize {
    let segments = limit / segment_size(limit) as u64;
    (segments / 64).max(2) as usize
}

/// The cache key of `key`.
#[inline]
pub(super) fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// What a found item is at a given time: live, or dead and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Live,
    Expired,
    Flushed,
}

/// `flush_all` state, checked on every access.
pub(super) struct Flush {
    /// Immediate flushes so far: items in segments created before the latest one are flushed
    /// (a write after a flush always goes to a segment of the new generation).
    pub(super) gen: AtomicU64,
    /// memcached's `oldest_live` of the latest flush: once the clock reaches it, items last
    /// touched at or before it are flushed. 0 = none.
    pub(super) live: AtomicU64,
    /// The largest `live` of earlier flushes that had taken effect before a later flush
    /// replaced them. (memcached overwrites it, which can bring flushed items back to life
    /// while a new delayed flush is pending; keeping it cannot.)
    pub(super) fired: AtomicU64,
    /// The `live` the sweep was last started for, so a delayed flush starts it once.
    pub(super) swept: AtomicU64,
    /// Serializes `flush_all` calls.
    pub(super) lock: Mutex<()>,
}

impl Flush {
    #[inline]
    pub(super) fn flushed(&self, item: &Item, now: u64) -> bool {
        if item.segment().gen < self.gen.load(Ordering::Acquire) {
            return true;
        }
        let t = item.last_access();
        let fired = self.fired.load(Ordering::Relaxed);
        if fired != 0 && t <= fired {
            return true;
        }
        let live = self.live.load(Ordering::Relaxed);
        live != 0 && now >= live && t <= live
    }
}

/// The memory limit and how it maps onto moka's fixed capacity.
pub(super) struct Weights {
    /// moka's `max_capacity`: the limit the store was built with.
    pub(super) capacity: u64,
    /// The current limit (`cache_memlimit`).
    pub(super) limit: AtomicU64,
    /// Bumped on every limit change; each segment records the generation it was weighed under.
    pub(super) epoch: AtomicU8,
}

impl Weights {
    /// A segment's weight: its bytes plus its items' index share, scaled by capacity / limit
    /// and rounded up, so the sum of weights stays within moka's capacity exactly when the
    /// bytes stay within the limit.
    fn weigh(&self, seg: &Segment) -> u32 {
        let epoch = self.epoch.load(Ordering::Acquire);
        let limit = self.limit.load(Ordering::Relaxed).max(1);
        seg.epoch.store(epoch, Ordering::Relaxed);
        let bytes = seg.cap() as u64 + u64::from(seg.items.load(Ordering::Relaxed)) * ITEM_OVERHEAD;
        let w = (u128::from(bytes) * u128::from(self.capacity)).div_ceil(u128::from(limit));
        w.clamp(1, u128::from(u32::MAX)) as u32
    }
}

/// Why a segment is reclaimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// moka evicted it to stay within the budget: items read since they were appended are
    /// carried forward (up to half a segment), the others are evicted.
    Evict,
    /// moka expired it (every item it was told about has expired): live ones (touched
    /// since) are carried forward.
    Expire,
    /// Mostly dead: its live items are copied forward and the segment freed.
    Compact,
}

/// What moka's callbacks share with the store.
pub(super) struct Common {
    pub(super) clock: Arc<dyn Clock>,
    pub(super) counters: Counters,
    pub(super) flush: Flush,
    pub(super) weights: Weights,
    /// Segments to reclaim, queued by moka's listener (which must not do the work itself:
    /// it runs inside moka's maintenance) and by compaction.
    pub(super) pending: Mutex<Vec<(Arc<Segment>, Cause)>>,
    /// Something was queued or inserted into moka: maintenance is due.
    pub(super) due: AtomicBool,
}

impl Common {
    #[inline]
    pub(super) fn status(&self, item: &Item, now: u64) -> Status {
        // memcached checks flushed before expired.
        if self.flush.flushed(item, now) {
            Status::Flushed
        } else if item.expired(now) {
            Status::Expired
        } else {
            Status::Live
        }
    }

    fn queue(&self, seg: Arc<Segment>, cause: Cause) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((seg, cause));
        self.due.store(true, Ordering::Release);
    }
}

/// Gives moka each segment's latest expiry so that it reclaims expired segments by itself.
pub(super) struct SegmentExpiry(Arc<Common>);

impl SegmentExpiry {
    fn remaining(&self, seg: &Segment) -> Option<Duration> {
        // One second more than the items have: the access-time check decides expiry, moka
        // only frees the memory afterwards.
        match seg.told.load(Ordering::Relaxed) {
            0 => None,
            e => Some(Duration::from_secs(
                u64::from(e)
                    .saturating_sub(self.0.clock.now())
                    .saturating_add(1),
            )),
        }
    }
}

impl Expiry<u32, Arc<Segment>> for SegmentExpiry {
    fn expire_after_create(&self, _: &u32, v: &Arc<Segment>, _: Instant) -> Option<Duration> {
        self.remaining(v)
    }

    fn expire_after_update(
        &self,
        _: &u32,
        v: &Arc<Segment>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(v)
    }
}

/// Everything the store and its background sweep share.
pub(super) struct Shared {
    /// The eviction policy: segments by id, weighed by their bytes.
    pub(super) cache: Cache<u32, Arc<Segment>>,
    pub(super) common: Arc<Common>,
    pub(super) index: Index,
    pub(super) segments: segment::Table,
    /// The open segment of each TTL bucket.
    pub(super) open: Box<[Mutex<Option<Arc<Segment>>>]>,
    /// Bytes of an ordinary segment.
    pub(super) segment_size: usize,
    pub(super) locks: Box<[Mutex<()>]>,
    /// CAS uniques come from this one counter (one shared atomic per write).
    pub(super) counter: AtomicU64,
    /// The clock second maintenance last ran in (moka's expiry needs a regular nudge).
    pub(super) maintained: AtomicU64,
    pub(super) sweep: Sweep,
}

impl Shared {
    /// The engine of a store of `capacity` bytes (its memory limit at the start).
    pub(super) fn new(capacity: u64, clock: Arc<dyn Clock>) -> Shared {
        let common = Arc::new(Common {
            clock,
            counters: Counters::new(),
            flush: Flush {
                gen: AtomicU64::new(0),
                live: AtomicU64::new(0),
                fired: AtomicU64::new(0),
                swept: AtomicU64::new(0),
                lock: Mutex::new(()),
            },
            weights: Weights {
                capacity,
                limit: AtomicU64::new(capacity),
                epoch: AtomicU8::new(0),
            },
            pending: Mutex::new(Vec::new()),
            due: AtomicBool::new(false),
        });
        let weigher = common.clone();
        let listener = common.clone();
        let cache = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(move |_: &u32, seg: &Arc<Segment>| weigher.weights.weigh(seg))
            .expire_after(SegmentExpiry(common.clone()))
            .eviction_listener(move |_: Arc<u32>, seg: Arc<Segment>, cause| match cause {
                RemovalCause::Size => listener.queue(seg, Cause::Evict),
                RemovalCause::Expired => listener.queue(seg, Cause::Expire),
                // Re-insertions (re-weighing, a later expiry) and our own invalidations.
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            })
            .build();
        Shared {
            cache,
            common,
            index: Index::new(),
            segments: segment::Table::new(segment_size(capacity), pooled_segments(capacity)),
            open: (0..BUCKETS).map(|_| Mutex::new(None)).collect(),
            segment_size: segment_size(capacity),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            counter: AtomicU64::new(0),
            maintained: AtomicU64::new(0),
            sweep: Sweep::default(),
        }
    }

    /// The write lock for hash `h`.
    #[inline]
    pub(super) fn lock(&self, h: u64) -> MutexGuard<'_, ()> {
        // Items are appended whole before the index points at them, so a panic while holding
        // a stripe cannot leave one half-written: a poisoned lock is still fine to use.
        self.locks[h as usize & (STRIPES - 1)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The write lock for `h` if it is free.
    #[inline]
    pub(super) fn try_lock(&self, h: u64) -> Option<MutexGuard<'_, ()>> {
        match self.locks[h as usize & (STRIPES - 1)].try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The next CAS unique.
    #[inline]
    pub(super) fn next_seq(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    #[inline]
    pub(super) fn loc(item: &Item) -> Loc {
        Loc {
            seg: item.segment().id,
            off: item.offset(),
        }
    }

    /// The item under `key` (hash `h`), dead or alive.
    #[inline]
    pub(super) fn lookup(&self, h: u64, key: &[u8]) -> Option<ItemRef> {
        self.index.find(h, |loc| {
            let seg = self.segments.get(loc.seg)?;
            // SAFETY: an index entry names the start of a complete item in the segment it
            // was made for; it cannot be removed (nor the segment unregistered, which comes
            // after its entries are gone) while the index's read lock is held.
            let item = unsafe { ItemRef::at(seg, loc.off) };
            (item.key() == key).then_some(item)
        })
    }

    /// Stores a new item (the caller holds `h`'s lock) in place of `old` (the key's current
    /// item, if any). `new` counts it in `total_items`: memcached counts every item it links,
    /// but not in-place changes. `None` only if no segment could be had.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store_item(
        &self,
        h: u64,
        key: &[u8],
        parts: &[&[u8]],
        meta: &Meta,
        old: Option<&ItemRef>,
        new: bool,
        now: u64,
    ) -> Option<ItemRef> {
        let item = self.place(h, key, parts, meta, now, old.map(Shared::loc), None)?;
        let c = &self.common.counters;
        c.incr(h, C::CurrItems);
        c.add(h, C::Bytes, charge(&item));
        if new {
            c.incr(h, C::TotalItems);
        }
        if let Some(old) = old {
            self.released(h, old);
        }
        Some(item)
    }

    /// Gives `item` (the key's current item; the caller holds `h`'s lock) a new expiry: in
    /// place when it has a field for one, else by rewriting it with one (same CAS, flags,
    /// state and last access, in a segment of its new TTL bucket; the old copy's bytes go
    /// dead), which an item stored without an expiry needs once (see `item`'s module doc).
    /// Not a new item: `total_items` does not count it. `None`: no segment could be had for
    /// the copy, and the item is removed rather than left to outlive the expiry it was given.
    pub(super) fn retime(&self, h: u64, item: &ItemRef, exptime: u64, now: u64) -> Option<ItemRef> {
        if item.set_exptime(exptime) {
            return Some(item.clone());
        }
        let meta = Meta {
            exptime,
            ..item.meta()
        };
        let copy = self.store_item(
            h,
            item.key(),
            &[item.value()],
            &meta,
            Some(item),
            false,
            now,
        );
        if copy.is_none() {
            self.unlink_if_same(h, item);
        }
        copy
    }

    /// Appends an item to the open segment of its TTL bucket (or a segment of its own when
    /// it is large) and points the index at it, replacing the entry for `old`. `gen`: only
    /// into a segment of this flush generation (a copy must not outlive a flush).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn place(
        &self,
        h: u64,
        key: &[u8],
        parts: &[&[u8]],
        meta: &Meta,
        now: u64,
        old: Option<Loc>,
        gen: Option<u64>,
    ) -> Option<ItemRef> {
        let value_len = parts.iter().map(|p| p.len()).sum();
        let need = footprint(key.len(), value_len, meta.flags, meta.exptime);
        let current = self.common.flush.gen.load(Ordering::Acquire);
        if gen.is_some_and(|g| g != current) {
            return None;
        }
        let b = bucket(meta.exptime, now);
        if need > self.segment_size / 4 {
            let seg = self.segments.create(need, current, b as u8)?;
            seg.open.store(false, Ordering::Relaxed);
            let item = {
                let mut w = seg.lock();
                self.write_at(&seg, &mut w, h, key, parts, meta, old, need)
            };
            self.admit(&seg);
            return Some(item);
        }
        let mut slot = self.open[b].lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(seg) = slot.as_ref() {
                if seg.gen == current {
                    let mut w = seg.lock();
                    if !w.retired && w.used + need <= seg.cap() {
                        return Some(self.write_at(seg, &mut w, h, key, parts, meta, old, need));
                    }
                }
            }
            if let Some(full) = slot.take() {
                self.seal(&full);
            }
            let seg = self.segments.create(self.segment_size, current, b as u8)?;
            self.admit(&seg);
            *slot = Some(seg);
        }
    }

    /// Writes the item at the segment's end and publishes it (the caller holds the segment's
    /// writer lock, which retirement takes too: nothing is indexed into a retired segment).
    #[allow(clippy::too_many_arguments)]
    fn write_at(
        &self,
        seg: &Arc<Segment>,
        w: &mut segment::WriteState,
        h: u64,
        key: &[u8],
        parts: &[&[u8]],
        meta: &Meta,
        old: Option<Loc>,
        need: usize,
    ) -> ItemRef {
        let off = w.used;
        // SAFETY: `off..off + need` is inside the buffer (checked by the caller, or the
        // segment was made for this item), 4-aligned (every footprint is a multiple of 4 and
        // the buffer is 8-aligned), and not reachable by anyone: it is past `published` and
        // no index entry names it yet.
        unsafe { item::write(seg.base().add(off), key, parts, meta) };
        w.used += need;
        seg.publish(w.used);
        seg.items.fetch_add(1, Ordering::Relaxed);
        seg.live.fetch_add(need as u64, Ordering::Relaxed);
        if meta.exptime != 0 && seg.bucket != 0 {
            let e = item::secs(meta.exptime);
            if e > seg.told.load(Ordering::Relaxed) {
                seg.told.store(e, Ordering::Relaxed);
                if seg.open.load(Ordering::Relaxed) {
                    // Tell moka the later expiry (a segment of its own is admitted after).
                    self.cache.insert(seg.id, seg.clone());
                }
            }
        }
        let loc = Loc {
            seg: seg.id,
            off: off as u32,
        };
        self.index.put(h, old, loc);
        // SAFETY: just written and published at `off`.
        unsafe { ItemRef::at(seg.clone(), loc.off) }
    }

    /// Gives a new segment to moka.
    fn admit(&self, seg: &Arc<Segment>) {
        self.cache.insert(seg.id, seg.clone());
        self.common.due.store(true, Ordering::Release);
    }

    /// A bucket's open segment is full: moka re-weighs it with its final item count, and it
    /// may be compacted from now on.
    fn seal(&self, seg: &Arc<Segment>) {
        {
            let w = seg.lock();
            seg.open.store(false, Ordering::Relaxed);
            if !w.retired {
                self.cache.insert(seg.id, seg.clone());
            }
        }
        self.maybe_compact(seg);
    }

    /// Queues a sealed segment for compaction once three quarters of it are dead.
    fn maybe_compact(&self, seg: &Arc<Segment>) {
        if !seg.open.load(Ordering::Relaxed)
            && seg.live.load(Ordering::Relaxed) * 4 < seg.cap() as u64
            && !seg.queued.swap(true, Ordering::Relaxed)
        {
            self.common.queue(seg.clone(), Cause::Compact);
        }
    }

    /// Accounts for `item` leaving the index.
    fn released(&self, h: u64, item: &Item) {
        let c = &self.common.counters;
        c.sub(h, C::CurrItems, 1);
        c.sub(h, C::Bytes, charge(item));
        let seg = item.segment();
        seg.live
            .fetch_sub(item.footprint() as u64, Ordering::Relaxed);
        self.maybe_compact(seg);
    }

    /// Removes `item` if it is still the key's current item (the caller holds `h`'s lock).
    ///
    /// Ids are reused, so the item's `Loc` may now name a new item of the same key in the
    /// segment that took its id (a reader or sweep can hold an item across its segment's
    /// reclaim): only an item of the segment registered under its id is unlinked.
    pub(super) fn unlink_if_same(&self, h: u64, item: &ItemRef) -> bool {
        if self.segments.holds(item.segment()) && self.index.remove(h, Shared::loc(item)) {
            self.released(h, item);
            true
        } else {
            false
        }
    }

    /// Runs moka's pending work and reclaims queued segments, if any is due (or a second has
    /// passed, for moka's expiry). Called after writes, with no lock held.
    #[inline]
    pub(super) fn maintain(&self) {
        let now = self.common.clock.now();
        let last = self.maintained.load(Ordering::Relaxed);
        let tick = last != now
            && self
                .maintained
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if tick || self.common.due.load(Ordering::Acquire) {
            self.maintain_now();
        }
    }

    /// Maintenance now: moka's evictions and expirations, then the reclaims they queued
    /// (which may fill new segments and so evict again; bounded in rounds).
    pub(super) fn maintain_now(&self) {
        for _ in 0..64 {
            self.common.due.store(false, Ordering::Release);
            self.cache.run_pending_tasks();
            loop {
                let next = self
                    .common
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pop();
                match next {
                    Some((seg, cause)) => self.reclaim(&seg, cause),
                    None => break,
                }
            }
            if !self.common.due.load(Ordering::Acquire) {
                return;
            }
        }
    }

    /// Empties a segment that moka evicted or expired, or that is mostly dead: each item the
    /// index still points to is carried into a fresh segment or leaves the index; then the
    /// segment is unregistered (its memory goes when the last reader lets go of it).
    pub(super) fn reclaim(&self, seg: &Arc<Segment>, cause: Cause) {
        if seg.reclaiming.swap(true, Ordering::AcqRel) {
            return;
        }
        {
            let mut slot = self.open[usize::from(seg.bucket)]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, seg)) {
                *slot = None;
            }
        }
        {
            let mut w = seg.lock();
            w.retired = true;
            seg.open.store(false, Ordering::Relaxed);
        }
        let common = &self.common;
        let c = &common.counters;
        let now = common.clock.now();
        let end = seg.published();
        let budget = seg.cap() / 2;
        let mut carried = 0;
        let mut off = 0;
        while off < end {
            // SAFETY: items are contiguous from 0 to `published`, each `footprint` long.
            let item = unsafe { ItemRef::at(seg.clone(), off as u32) };
            let size = item.footprint();
            off += size;
            let h = hash(item.key());
            let loc = Shared::loc(&item);
            let _g = self.lock(h);
            if !self.index.contains(h, loc) {
                continue;
            }
            let status = common.status(&item, now);
            let carry = status == Status::Live
                && match cause {
                    Cause::Compact | Cause::Expire => true,
                    Cause::Evict => item.accessed() && carried + size <= budget,
                };
            if carry
                && self
                    .place(
                        h,
                        item.key(),
                        &[item.value()],
                        &item.meta(),
                        now,
                        Some(loc),
                        Some(seg.gen),
                    )
                    .is_some()
            {
                carried += size;
                continue;
            }
            self.index.remove(h, loc);
            c.sub(h, C::CurrItems, 1);
            c.sub(h, C::Bytes, charge(&item));
            match (status, cause) {
                (Status::Live, _) => {
                    // memcached's LRU tail eviction of a live item.
                    c.incr(h, C::Evictions);
                    if !item.fetched() {
                        c.incr(h, C::EvictedUnfetched);
                    }
                    if item.exptime() != 0 {
                        c.incr(h, C::EvictedNonzero);
                    }
                    c.set_evicted_time(now.saturating_sub(item.last_access()));
                }
                (dead, Cause::Compact) => {
                    // Compaction is our crawler: it counts what memcached's crawler counts.
                    c.incr(h, C::CrawlerReclaimed);
                    if dead == Status::Expired && !item.fetched() {
                        c.incr(h, C::ExpiredUnfetched);
                    }
                }
                (_, Cause::Evict | Cause::Expire) => {
                    // memcached's LRU tail reclaims a dead item rather than evicting it.
                    c.incr(h, C::Reclaimed);
                    if !item.fetched() {
                        c.incr(h, C::ExpiredUnfetched);
                    }
                }
            }
        }
        // A re-weighing may have put it back into moka meanwhile; its id is still its own.
        self.cache.invalidate(&seg.id);
        self.segments.remove(seg);
    }
}
