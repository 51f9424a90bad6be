//! The node's storage engine: items appended to large segments, a compact hash index of our
//! own, and `moka` deciding which segment to evict; plus memcached 1.6's item semantics.
//!
//! - **Memory.** Items are appended to segments ([`segment`]; 1 MiB, smaller for small
//!   limits) with a 16-byte header ([`item`]), and found through an index of 8-byte slots
//!   ([`index`]): no allocation and no cache bookkeeping per item, which is where a
//!   memory-efficient cache saves (Segcache, NSDI '21). moka holds the *segments*, each
//!   weighed by its bytes plus its items' share of the index, and evicts the oldest one when
//!   over the budget; its eviction listener queues the segment, and the writer that caused
//!   it reclaims it: items read since they were appended are carried into a fresh segment
//!   (Segcache's merge, so hot keys survive), the rest leave the index. An overwritten or
//!   deleted item's bytes stay dead in their segment until it is evicted, or compacted once
//!   it is three-quarters dead (its live items copied forward, the segment freed). A fresh
//!   write is always admitted, as memcached's LRU does.
//! - **Time.** Expiry is decided on every access against an injectable [`Clock`], as memcached
//!   checks `exptime` on access. Segments are grouped by TTL bucket, and moka is told each
//!   segment's latest expiry, so a segment whose items have all expired is reclaimed whole
//!   even if nobody asks for them again.
//! - **Atomicity.** Reads take only the index shard's read lock. Every write takes one of
//!   [`STRIPES`] key-hashed mutexes around its read-modify-write, as memcached's item locks
//!   do, so racing `cas`, `incr`, `append` and `set` on one key serialize; the new item is
//!   written completely before the index points to it, and the bytes of an item never change
//!   afterwards (what memcached changes in place are header atomics).
//! - **Hygiene.** Keys and values are copied into the segment, so an item never pins the
//!   network buffer it arrived in; reads hand the value out as `Bytes` sharing the segment,
//!   without a copy (the segment lives while such a `Bytes` does).
//!
//! Split by job: [`item`] one item; [`segment`] segments and their ids; [`index`] the hash
//! index; [`counters`] sharded statistics; [`arith`] incr/decr and memcached's number
//! parsing; [`meta`] the meta commands; [`dump`] metadump, `me` and slab classes; [`sweep`]
//! the background crawler that reclaims flushed and expired items and re-weighs segments
//! after `cache_memlimit`.

mod arith;
mod counters;
mod dump;
mod index;
mod item;
mod meta;
mod segment;
mod slab;
mod sweep;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use moka::Expiry;
use ringcache_client::protocol::parse::item_size;
use ringcache_client::protocol::REALTIME_MAXDELTA;

use super::clock::Clock;
use counters::{Counters, C};
use index::{Index, Loc};
use item::{footprint, Meta};
use segment::{Segment, MAX_SEGMENT_SIZE};
use sweep::Sweep;

pub use arith::parse_counter;
pub use dump::{cachedump_line, metadump_line, DebugInfo, Metadump};
pub use item::{Item, ItemRef, MAX_DATA_LEN, MAX_KEY_LEN};
pub use meta::{
    MetaArithHit, MetaArithOpts, MetaDeleteOpts, MetaDeleteOutcome, MetaExtra, MetaGetHit,
    MetaGetOpts, MetaSetOpts,
};
pub use slab::slab_class;

/// Bytes charged per item on top of its bytes in a segment: its share of the hash index.
///
/// A slot is 8 bytes; the index's shards grow by a seventh to a quarter at 13/16 full, so they
/// run between 65 % and 81 % full, 10–12.3 bytes of table per item (doubling, before, gave
/// 10–20); 20 keeps the charge on the safe side (lowering it changes what a memory limit
/// holds, a separate decision). Measured as RSS growth of the release binary divided by
/// resident items with `bench/tools/mem_per_item.py` (see `bench/ANALYSIS.md`).
pub const ITEM_OVERHEAD: u64 = 20;

/// What an item with this key and value (and no client flags, no expiry) is charged against
/// the memory limit (and counted in `bytes`): its bytes in a segment plus [`ITEM_OVERHEAD`].
pub fn item_charge(key_len: usize, value_len: usize) -> u64 {
    footprint(key_len, value_len, 0, 0) as u64 + ITEM_OVERHEAD
}

/// The charge of an item against the budget.
#[inline]
fn charge(item: &Item) -> u64 {
    item.footprint() as u64 + ITEM_OVERHEAD
}

/// Write locks (a power of two).
const STRIPES: usize = 4096;

/// TTL buckets: items are appended to the open segment of their bucket, so that a segment's
/// items expire at about the same time.
const BUCKETS: usize = 8;

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

/// Sizing the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Memory budget in bytes.
    pub memory_limit: u64,
    /// Largest item, in memcached's accounting (header + key + value, see [`Item::size`]).
    pub max_item_size: usize,
}

/// What a read found.
#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(ItemRef),
    /// No item under the key.
    Miss,
    /// There, but past its exptime (counted as `get_expired`, then removed).
    Expired,
    /// There, but invalidated by `flush_all` (counted as `get_flushed`, then removed).
    Flushed,
}

impl Lookup {
    /// The item, if it was a hit.
    pub fn hit(self) -> Option<ItemRef> {
        match self {
            Lookup::Hit(item) => Some(item),
            _ => None,
        }
    }

    pub fn is_hit(&self) -> bool {
        matches!(self, Lookup::Hit(_))
    }
}

/// How a storage verb stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// `cas` with the compare value (0 never matches, as in memcached).
    Cas(u64),
}

/// The outcome of a storage verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    /// The value is over the item size limit (`SERVER_ERROR object too large for cache`).
    /// An append/prepend whose *result* would be too large is `NotStored`, as in memcached.
    TooLarge,
}

/// The outcome of `incr`/`decr` (and the failures of `ma`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    Value(u64),
    NotFound,
    /// `CLIENT_ERROR cannot increment or decrement non-numeric value`.
    NonNumeric,
    /// `ma` with a compare CAS that did not match.
    Exists,
}

/// Item-level statistics under memcached's `stats` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    /// Bytes charged against `limit_maxbytes` by resident items (key + value + overhead).
    pub bytes: u64,
    pub limit_maxbytes: u64,
    pub evictions: u64,
    pub evicted_unfetched: u64,
    /// Evicted items that had an expiry time set.
    pub evicted_nonzero: u64,
    /// Seconds since the last access of the most recently evicted item.
    pub evicted_time: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    /// Dead items removed by the background sweep (`lru_crawler`'s `crawler_reclaimed`).
    pub crawler_reclaimed: u64,
    /// Lookups (of any command) that found the item expired.
    pub get_expired: u64,
    /// Lookups (of any command) that found the item flushed.
    pub get_flushed: u64,
}

/// memcached's exptime rules, to an absolute Unix time: 0 never expires; negative is already
/// expired; up to 30 days is relative to `now`; larger is an absolute Unix time (which may be
/// in the past, and then the item is stored already expired).
pub fn expiry(exptime: i64, now: u64) -> u64 {
    match exptime {
        0 => 0,
        e if e < 0 => item::EXPIRED,
        e if e <= REALTIME_MAXDELTA => now.saturating_add(e as u64),
        e => e as u64,
    }
}

/// The cache key of `key`.
#[inline]
fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// What a found item is at a given time: live, or dead and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Live,
    Expired,
    Flushed,
}

/// `flush_all` state, checked on every access.
struct Flush {
    /// Immediate flushes so far: items in segments created before the latest one are flushed
    /// (a write after a flush always goes to a segment of the new generation).
    gen: AtomicU64,
    /// memcached's `oldest_live` of the latest flush: once the clock reaches it, items last
    /// touched at or before it are flushed. 0 = none.
    live: AtomicU64,
    /// The largest `live` of earlier flushes that had taken effect before a later flush
    /// replaced them. (memcached overwrites it, which can bring flushed items back to life
    /// while a new delayed flush is pending; keeping it cannot.)
    fired: AtomicU64,
    /// The `live` the sweep was last started for, so a delayed flush starts it once.
    swept: AtomicU64,
    /// Serializes `flush_all` calls.
    lock: Mutex<()>,
}

impl Flush {
    #[inline]
    fn flushed(&self, item: &Item, now: u64) -> bool {
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
struct Weights {
    /// moka's `max_capacity`: the limit the store was built with.
    capacity: u64,
    /// The current limit (`cache_memlimit`).
    limit: AtomicU64,
    /// Bumped on every limit change; each segment records the generation it was weighed under.
    epoch: AtomicU8,
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
enum Cause {
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
struct Common {
    clock: Arc<dyn Clock>,
    counters: Counters,
    flush: Flush,
    weights: Weights,
    /// Segments to reclaim, queued by moka's listener (which must not do the work itself:
    /// it runs inside moka's maintenance) and by compaction.
    pending: Mutex<Vec<(Arc<Segment>, Cause)>>,
    /// Something was queued or inserted into moka: maintenance is due.
    due: AtomicBool,
}

impl Common {
    #[inline]
    fn status(&self, item: &Item, now: u64) -> Status {
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
struct SegmentExpiry(Arc<Common>);

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
struct Shared {
    /// The eviction policy: segments by id, weighed by their bytes.
    cache: Cache<u32, Arc<Segment>>,
    common: Arc<Common>,
    index: Index,
    segments: segment::Table,
    /// The open segment of each TTL bucket.
    open: Box<[Mutex<Option<Arc<Segment>>>]>,
    /// Bytes of an ordinary segment.
    segment_size: usize,
    locks: Box<[Mutex<()>]>,
    /// CAS uniques come from this one counter (one shared atomic per write).
    counter: AtomicU64,
    /// The clock second maintenance last ran in (moka's expiry needs a regular nudge).
    maintained: AtomicU64,
    sweep: Sweep,
}

impl Shared {
    /// The write lock for hash `h`.
    #[inline]
    fn lock(&self, h: u64) -> MutexGuard<'_, ()> {
        // Items are appended whole before the index points at them, so a panic while holding
        // a stripe cannot leave one half-written: a poisoned lock is still fine to use.
        self.locks[h as usize & (STRIPES - 1)]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The write lock for `h` if it is free.
    #[inline]
    fn try_lock(&self, h: u64) -> Option<MutexGuard<'_, ()>> {
        match self.locks[h as usize & (STRIPES - 1)].try_lock() {
            Ok(g) => Some(g),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// The next CAS unique.
    #[inline]
    fn next_seq(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    #[inline]
    fn loc(item: &Item) -> Loc {
        Loc {
            seg: item.segment().id,
            off: item.offset(),
        }
    }

    /// The item under `key` (hash `h`), dead or alive.
    #[inline]
    fn lookup(&self, h: u64, key: &[u8]) -> Option<ItemRef> {
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
    fn store_item(
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
    fn retime(&self, h: u64, item: &ItemRef, exptime: u64, now: u64) -> Option<ItemRef> {
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
    fn place(
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
    fn unlink_if_same(&self, h: u64, item: &ItemRef) -> bool {
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
    fn maintain(&self) {
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
    fn maintain_now(&self) {
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
    fn reclaim(&self, seg: &Arc<Segment>, cause: Cause) {
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

/// The cache.
pub struct Store {
    inner: Arc<Shared>,
    max_item_size: usize,
}

impl Store {
    /// An empty store.
    pub fn new(cfg: StoreConfig, clock: Arc<dyn Clock>) -> Store {
        let capacity = cfg.memory_limit.max(1);
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
        Store {
            inner: Arc::new(Shared {
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
            }),
            max_item_size: cfg.max_item_size,
        }
    }

    /// The current Unix time by the store's clock.
    #[inline]
    pub fn now(&self) -> u64 {
        self.inner.common.clock.now()
    }

    /// The largest item accepted, in memcached's accounting.
    pub fn max_item_size(&self) -> usize {
        self.max_item_size
    }

    /// Whether an item with this key, value length and flags is over the item size limit.
    pub fn too_large(&self, key: &[u8], value_len: usize, flags: u32) -> bool {
        key.len() > MAX_KEY_LEN
            || key.len().saturating_add(value_len) > MAX_DATA_LEN
            || item_size(key.len(), value_len, flags) > self.max_item_size
    }

    /// Runs `f` with `h`'s write lock held, then the maintenance the write made due.
    #[inline]
    fn locked<R>(&self, h: u64, f: impl FnOnce() -> R) -> R {
        let r = {
            let _g = self.inner.lock(h);
            f()
        };
        self.inner.maintain();
        r
    }

    /// The item under `key` as memcached's `do_item_get` sees it: a dead (expired or flushed)
    /// item is counted and removed, and reads as `Expired`/`Flushed`. `locked`: the caller
    /// holds the key's write lock.
    fn find(&self, h: u64, key: &[u8], now: u64, locked: bool) -> Lookup {
        let Some(item) = self.inner.lookup(h, key) else {
            return Lookup::Miss;
        };
        let common = &self.inner.common;
        let status = common.status(&item, now);
        let found = match status {
            Status::Live => return Lookup::Hit(item),
            Status::Expired => {
                common.counters.incr(h, C::GetExpired);
                Lookup::Expired
            }
            Status::Flushed => {
                common.counters.incr(h, C::GetFlushed);
                self.sweep_after_delayed_flush();
                Lookup::Flushed
            }
        };
        if locked {
            self.inner.unlink_if_same(h, &item);
        } else if let Some(_g) = self.inner.try_lock(h) {
            // A reader never waits for a writer: if the stripe is busy, the item is
            // reclaimed later (by a sweep, compaction or its segment's eviction).
            self.inner.unlink_if_same(h, &item);
        }
        found
    }

    /// `get`: the live item, recording the fetch.
    pub fn get(&self, key: &[u8]) -> Lookup {
        self.get_at(key, self.now())
    }

    /// [`Store::get`] at a time the caller read from [`Store::now`]: a multi-get reads the
    /// clock once for all its keys instead of once per key (a clock read cost as much as the
    /// index probe), as memcached judges a whole request against its one `current_time`.
    pub fn get_at(&self, key: &[u8], now: u64) -> Lookup {
        let found = self.find(hash(key), key, now, false);
        if let Lookup::Hit(item) = &found {
            item.bump(now);
        }
        found
    }

    /// The live item without recording a fetch (meta `u`, backfills, tools).
    pub fn peek(&self, key: &[u8]) -> Lookup {
        self.find(hash(key), key, self.now(), false)
    }

    /// `gat`/`gats`: the live item, recording the fetch and setting a new exptime (the CAS is
    /// unchanged, as in memcached). A past exptime makes the item expire right after this read.
    pub fn get_and_touch(&self, key: &[u8], exptime: i64) -> Lookup {
        self.get_and_touch_at(key, exptime, self.now())
    }

    /// [`Store::get_and_touch`] at a time read once for a whole `gat` (see [`Store::get_at`]).
    pub fn get_and_touch_at(&self, key: &[u8], exptime: i64, now: u64) -> Lookup {
        let h = hash(key);
        self.locked(h, || {
            let found = self.find(h, key, now, true);
            if let Lookup::Hit(item) = &found {
                item.bump(now);
                return match self.inner.retime(h, item, expiry(exptime, now), now) {
                    Some(item) => Lookup::Hit(item),
                    None => Lookup::Miss,
                };
            }
            found
        })
    }

    /// `touch`: true if the key was there.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        self.get_and_touch(key, exptime).is_hit()
    }

    /// The classic storage verbs (`set`, `add`, `replace`, `append`, `prepend`, `cas`).
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> StoreOutcome {
        self.store_cas(mode, key, flags, exptime, value, None).0
    }

    /// A storage verb with an optional explicit CAS for the new item (what meta `E` does);
    /// returns the outcome and the stored item's CAS (0 when nothing was stored).
    ///
    /// A value over the item limit is `TooLarge`, and for `Set` the key's previous value is
    /// removed too, as memcached does so that a failed set never leaves stale data readable.
    pub fn store_cas(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        new_cas: Option<u64>,
    ) -> (StoreOutcome, u64) {
        let h = hash(key);
        if self.too_large(key, value.len(), flags) {
            if mode == StoreMode::Set {
                self.remove_locked_lookup(h, key);
            }
            return (StoreOutcome::TooLarge, 0);
        }
        let now = self.now();
        let w = Write {
            mode,
            compare: None,
            flags,
            exptime: expiry(exptime, now),
            value,
            new_cas,
            stale_ok: false,
            vivify: None,
            binary_key: false,
        };
        self.locked(h, || self.write_locked(h, key, &w, now))
    }

    /// Removes whatever live item `key` has (taking its lock).
    fn remove_locked_lookup(&self, h: u64, key: &[u8]) {
        let now = self.now();
        self.locked(h, || {
            if let Lookup::Hit(item) = self.find(h, key, now, true) {
                self.inner.unlink_if_same(h, &item);
            }
        })
    }

    /// memcached's `do_store_item`, with the key's lock held.
    fn write_locked(&self, h: u64, key: &[u8], w: &Write<'_>, now: u64) -> (StoreOutcome, u64) {
        let old = self.find(h, key, now, true).hit();
        let Some(old) = old else {
            return match w.mode {
                StoreMode::Cas(_) => (StoreOutcome::NotFound, 0),
                StoreMode::Replace => (StoreOutcome::NotStored, 0),
                StoreMode::Append | StoreMode::Prepend => match w.vivify {
                    // Autovivify (`ms … MA N<ttl>`): the data becomes a new item.
                    Some(exptime) => {
                        self.put(h, key, &[w.value], w.flags, exptime, 0, w, None, now)
                    }
                    None => (StoreOutcome::NotStored, 0),
                },
                StoreMode::Set | StoreMode::Add => {
                    self.put(h, key, &[w.value], w.flags, w.exptime, 0, w, None, now)
                }
            };
        };
        let o = &old;
        let old = Some(o);
        match w.mode {
            StoreMode::Add => {
                // add only adds a missing item, but counts as a touch of the existing one.
                o.refresh_time(now);
                (StoreOutcome::NotStored, 0)
            }
            StoreMode::Set | StoreMode::Replace => {
                self.put(h, key, &[w.value], w.flags, w.exptime, 0, w, old, now)
            }
            StoreMode::Cas(want) => {
                if want != 0 && want == o.cas() {
                    self.put(h, key, &[w.value], w.flags, w.exptime, 0, w, old, now)
                } else if w.stale_ok && want != 0 && want < o.cas() {
                    // `ms … I` with an older CAS: store, but keep the TTL and mark it stale,
                    // keeping the token state of the item it replaces.
                    let state = Item::stale_state(o);
                    self.put(h, key, &[w.value], w.flags, o.exptime(), state, w, old, now)
                } else {
                    (StoreOutcome::Exists, 0)
                }
            }
            StoreMode::Append | StoreMode::Prepend => {
                if let Some(want) = w.compare {
                    if want != 0 && want != o.cas() {
                        return (StoreOutcome::Exists, 0);
                    }
                }
                let joined = o.value().len().saturating_add(w.value.len());
                if self.too_large(key, joined, o.flags()) {
                    // memcached fails the allocation of the joined item: NOT_STORED.
                    return (StoreOutcome::NotStored, 0);
                }
                let parts: [&[u8]; 2] = if w.mode == StoreMode::Append {
                    [o.value(), w.value]
                } else {
                    [w.value, o.value()]
                };
                self.put(h, key, &parts, o.flags(), o.exptime(), 0, w, old, now)
            }
        }
    }

    /// Stores a new item made of `parts` in place of `old`, with `w`'s explicit CAS if any.
    #[allow(clippy::too_many_arguments)]
    fn put(
        &self,
        h: u64,
        key: &[u8],
        parts: &[&[u8]],
        flags: u32,
        exptime: u64,
        state: u8,
        w: &Write<'_>,
        old: Option<&ItemRef>,
        now: u64,
    ) -> (StoreOutcome, u64) {
        let seq = self.inner.next_seq();
        let cas = w.new_cas.unwrap_or(seq);
        let meta = Meta {
            flags,
            exptime,
            cas,
            time: now,
            state: state | if w.binary_key { item::KEY_BINARY } else { 0 },
        };
        // An item stored already expired is still linked, as memcached does: it counts in
        // total_items, replaces the old value, and a later read finds it expired.
        match self.inner.store_item(h, key, parts, &meta, old, true, now) {
            Some(_) => (StoreOutcome::Stored, cas),
            None => (StoreOutcome::NotStored, 0),
        }
    }

    /// `delete`: true if a live item was removed.
    pub fn delete(&self, key: &[u8]) -> bool {
        let now = self.now();
        let h = hash(key);
        self.locked(h, || match self.find(h, key, now, true) {
            Lookup::Hit(item) => {
                self.inner.unlink_if_same(h, &item);
                true
            }
            _ => false,
        })
    }

    /// `flush_all [delay]`, with memcached's semantics to the second:
    ///
    /// - no delay (or `0`, or negative): every item stored before the call is invalid at once;
    ///   items stored afterwards, even within the same second, are kept.
    /// - a delay (relative up to 30 days, else a Unix time): memcached's `oldest_live` is the
    ///   deadline minus one second; from that second on, every item last touched at or before it
    ///   is invalid. So `flush_all 10` empties the cache after 9 seconds, items stored during
    ///   that ninth second go too, and items stored from the tenth second on survive.
    ///   `flush_all 1` therefore also drops items stored in the rest of the current second.
    /// - a later `flush_all` replaces a pending delayed one (a delayed flush is cancelled by an
    ///   immediate flush or replaced by another delay); a flush that has already taken effect
    ///   stays in effect.
    ///
    /// Memory of flushed items is reclaimed by a background sweep.
    pub fn flush_all(&self, delay: i64) {
        let now = self.now();
        let deadline = if delay <= 0 { now } else { expiry(delay, now) };
        let live = deadline.saturating_sub(1);
        let f = &self.inner.common.flush;
        let _g = f.lock.lock().unwrap_or_else(|p| p.into_inner());
        let prev = f.live.load(Ordering::Relaxed);
        if prev != 0 && prev <= now {
            f.fired.fetch_max(prev, Ordering::Relaxed);
        }
        f.live.store(live, Ordering::Relaxed);
        if live <= now {
            f.gen.fetch_add(1, Ordering::AcqRel);
            f.swept.store(live, Ordering::Relaxed);
            sweep::start(&self.inner);
        }
    }

    /// Starts the sweep once a delayed flush has taken effect (called when a lookup first
    /// finds an item it flushed).
    fn sweep_after_delayed_flush(&self) {
        let f = &self.inner.common.flush;
        let live = f.live.load(Ordering::Relaxed);
        if live != 0 && f.swept.swap(live, Ordering::Relaxed) != live {
            sweep::start(&self.inner);
        }
    }

    /// `lru_crawler crawl`: starts a background sweep that removes expired and flushed items
    /// (counted as `crawler_reclaimed`), as memcached's LRU crawler does.
    pub fn crawl(&self) {
        sweep::start(&self.inner);
    }

    /// `cache_memlimit`: a new memory limit in bytes.
    ///
    /// moka's capacity is fixed when it is built, so the limit is applied through the weights:
    /// every segment weighs its bytes × (start limit / current limit), rounded up, so "weights
    /// within moka's capacity" means "bytes within the current limit". Segments made from now
    /// on are weighed at the new rate at once; a background sweep re-weighs the segments
    /// already there, after which moka evicts down to a lowered limit or has room up to a
    /// raised one. Like memcached, memory is thus released asynchronously after a decrease.
    /// The segment size stays the one the start limit chose.
    pub fn set_memory_limit(&self, bytes: u64) {
        let w = &self.inner.common.weights;
        w.limit.store(bytes.max(1), Ordering::Relaxed);
        w.epoch.fetch_add(1, Ordering::Release);
        sweep::start(&self.inner);
    }

    /// The current memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.inner.common.weights.limit.load(Ordering::Relaxed)
    }

    /// `stats reset`: the item counters (`total_items`, evictions, reclaims, …) from 0; what
    /// is held (`curr_items`, `bytes`) stays. Pending maintenance runs first, so evictions
    /// already made are not counted after the reset.
    pub fn reset_stats(&self) {
        self.inner.maintain_now();
        self.inner.common.counters.reset();
    }

    /// Item-level stats. Runs pending maintenance first so evictions are current.
    pub fn stats(&self) -> StoreStats {
        self.inner.maintain_now();
        let c = &self.inner.common.counters;
        StoreStats {
            curr_items: c.get(C::CurrItems),
            total_items: c.get(C::TotalItems),
            bytes: c.get(C::Bytes),
            limit_maxbytes: self.memory_limit(),
            evictions: c.get(C::Evictions),
            evicted_unfetched: c.get(C::EvictedUnfetched),
            evicted_nonzero: c.get(C::EvictedNonzero),
            evicted_time: c.evicted_time(),
            reclaimed: c.get(C::Reclaimed),
            expired_unfetched: c.get(C::ExpiredUnfetched),
            crawler_reclaimed: c.get(C::CrawlerReclaimed),
            get_expired: c.get(C::GetExpired),
            get_flushed: c.get(C::GetFlushed),
        }
    }

    /// Publishes item gauges and eviction counters to the metrics registry.
    pub fn publish_metrics(&self) {
        use crate::metrics as m;
        let s = self.stats();
        metrics::gauge!(m::ITEMS).set(s.curr_items as f64);
        metrics::gauge!(m::ITEM_BYTES).set(s.bytes as f64);
        metrics::gauge!(m::MEMORY_LIMIT_BYTES).set(s.limit_maxbytes as f64);
        metrics::counter!(m::EVICTIONS_TOTAL, "cause" => "capacity").absolute(s.evictions);
        metrics::counter!(m::EVICTIONS_TOTAL, "cause" => "expired").absolute(s.reclaimed);
    }

    /// Waits until no background sweep is running (tests).
    #[cfg(test)]
    fn settle(&self) {
        while self.inner.sweep.running() {
            std::thread::sleep(Duration::from_millis(1));
        }
        for _ in 0..4 {
            self.inner.maintain_now();
        }
    }
}

/// One write, as `write_locked` needs it.
struct Write<'a> {
    mode: StoreMode,
    /// Compare CAS for append/prepend (`ms … MA C<cas>`); 0 = none, as in memcached.
    compare: Option<u64>,
    flags: u32,
    /// Absolute expiry of a new item.
    exptime: u64,
    value: &'a [u8],
    /// Explicit CAS for the new item (`E`).
    new_cas: Option<u64>,
    /// `ms … I`: a CAS older than the item's stores a stale item instead of failing.
    stale_ok: bool,
    /// Append/prepend autovivify: the absolute expiry of the item created on a miss.
    vivify: Option<u64>,
    /// The request named the key in base64 (`b`): the new item remembers it.
    binary_key: bool,
}

#[cfg(test)]
mod meta_tests;
#[cfg(test)]
mod segment_tests;
#[cfg(test)]
mod tests;
