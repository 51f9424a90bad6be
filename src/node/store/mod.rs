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
//! Split by job: this file is the façade, [`Store`] and its memcached verbs (get, touch, the
//! storage verbs, delete, flush, limits, stats); [`engine`] is what they drive (appending,
//! the index, eviction and reclaim, compaction, the flush state, the write locks). Beside
//! them: [`item`] one item; [`segment`] segments and their ids; [`index`] the hash index;
//! [`counters`] sharded statistics; [`arith`] incr/decr and memcached's number parsing;
//! [`meta`] the meta commands; [`dump`] metadump, `me` and slab classes; [`sweep`] the
//! background crawler that reclaims flushed and expired items and re-weighs segments after
//! `cache_memlimit`.

mod arith;
mod counters;
mod dump;
mod engine;
mod index;
mod item;
mod meta;
mod segment;
mod slab;
mod sweep;

use std::sync::atomic::Ordering;
use std::sync::Arc;
#[cfg(test)]
use std::time::Duration;

use ringcache_client::protocol::parse::item_size;
use ringcache_client::protocol::REALTIME_MAXDELTA;

use super::clock::Clock;
use counters::C;
use engine::{hash, Shared, Status};
use item::{footprint, Meta};

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

/// Sizing the store: the validated values a running store uses (from `NodeConfig`), so
/// `*Settings` (docs/architecture.md, "Settings").
#[derive(Debug, Clone, Copy)]
pub struct StoreSettings {
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

/// The CAS a conditional write (`incr`/`decr`, `add`, `replace`, `append`, `prepend`, `cas`,
/// and their meta forms) given an explicit one (`E<cas>`) leaves on an item whose CAS was
/// `old`: `E`, or `old + 1` when `E` is not above it.
///
/// Why (issue 28): routers stamp every conditional write with their clock, and copies between
/// a key's owners keep the higher version. Two routers' writes of one key stamped `t1 < t2`
/// can reach the primary in the other order, and then its newer item carried the older
/// version; a replica holding the state in between at `t2` then outranked it, and repairing
/// the primary from that replica after a pause lost an acknowledged increment
/// (`ringcache-bench netns-counters`). The primary runs a key's conditional writes one at a
/// time, so following the item's own version here makes each result outrank the one it
/// changed, whatever order the stamps came in. A plain `set` (and a replica's copy) keeps its
/// `E` exactly, so copies carry the source's version unchanged; so does a compare-and-swap,
/// as in memcached (its compare names the version it replaces, so it cannot cross another
/// write: a router stamps it after reading that version, above it). memcached (≥ 1.6.27) sets `E`
/// as given (docs/cluster.md, "Versions").
pub(crate) fn versioned(given: u64, old: u64) -> u64 {
    given.max(old.saturating_add(1))
}

/// The cache.
pub struct Store {
    inner: Arc<Shared>,
    max_item_size: usize,
}

impl Store {
    /// An empty store.
    pub fn new(cfg: StoreSettings, clock: Arc<dyn Clock>) -> Store {
        Store {
            inner: Arc::new(Shared::new(cfg.memory_limit.max(1), clock)),
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
        let cas = match (w.new_cas, old) {
            // A conditional write's result follows the item it changed (`versioned`); a
            // plain set (a replica's copy among them) and a compare-and-swap take exactly the
            // CAS they were given: `ms … C<cas> E<new>` sets `<new>` as memcached does
            // (tests/protocol_table.rs, "meta E sets the CAS"), and a swap already names the
            // version it replaces, so it cannot cross another write of the key.
            (Some(e), Some(o)) if !matches!(w.mode, StoreMode::Set | StoreMode::Cas(_)) => {
                versioned(e, o.cas())
            }
            (e, _) => e.unwrap_or(seq),
        };
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
