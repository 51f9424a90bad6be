//! The node's storage engine: `moka` with a byte budget, plus memcached's item semantics.
//!
//! - Memory: the weigher charges key + value + [`ITEM_OVERHEAD`], and moka evicts (TinyLFU) to
//!   stay under the budget; evictions are counted by cause.
//! - Time: expiry is decided on read against an injectable [`Clock`] (memcached checks on read
//!   too); moka also gets each item's remaining TTL so expired memory is reclaimed eventually.
//! - Atomicity: reads are lock-free; every write takes one of [`STRIPES`] key-hashed locks
//!   around read-modify-write, so racing `cas`/`incr`/`append`/`set` on one key serialize the
//!   way memcached's item locks make them.
//! - Memory hygiene: keys and values are copied into their own allocations, so an item never
//!   pins the network buffer it arrived in.
//!
//! Split by job: [`item`] is one item, [`meta`] the meta-command semantics, [`dump`] metadump
//! and `me`.

mod dump;
mod item;
mod meta;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moka::notification::RemovalCause;
use moka::sync::Cache;
use moka::Expiry;
use ringcache_client::protocol::parse::item_size;
use ringcache_client::protocol::REALTIME_MAXDELTA;

use super::clock::Clock;
pub use dump::DebugInfo;
pub use item::Item;
pub use meta::{
    MetaArithHit, MetaArithOpts, MetaDeleteOpts, MetaDeleteOutcome, MetaGetHit, MetaGetOpts,
    MetaSetOpts,
};

/// Bytes charged per item on top of key and value, so that the process RSS tracks the budget.
/// Measured (release build, mimalloc, 1.5 M sets of 100-byte values into a full cache): RSS grows
/// about 505 B per item with no eviction and ~545 B under eviction churn, of which key + value
/// are 114 B; the rest is the item header and data allocation (~200 B) and moka's per-entry
/// bookkeeping (hash-table bucket, access-order node, entry info: ~280 B). With 430 B the RSS of
/// a full 256 MiB node is within ~10 % of the budget; small budgets add the process's fixed
/// ~20 MiB on top.
pub const ITEM_OVERHEAD: u64 = 430;

/// Write locks (a power of two).
const STRIPES: usize = 4096;

/// Sizing the store.
#[derive(Debug, Clone, Copy)]
pub struct StoreConfig {
    /// Memory budget in bytes.
    pub memory_limit: u64,
    /// Largest item, in memcached's accounting (header + key + value).
    pub max_item_size: usize,
}

/// What a read found.
#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(Arc<Item>),
    Miss,
    /// There, but past its exptime.
    Expired,
    /// There, but invalidated by `flush_all`.
    Flushed,
}

/// How a classic storage verb stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    /// `cas` with the compare value.
    Cas(u64),
}

/// The outcome of a storage verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
    /// The resulting item would be over the item size limit.
    TooLarge,
}

/// The outcome of `incr`/`decr` (and the failures of `ma`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    Value(u64),
    NotFound,
    NonNumeric,
    /// `ma` with a compare CAS that did not match.
    Exists,
}

/// Item-level statistics under memcached's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub limit_maxbytes: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
}

#[derive(Debug, Default)]
struct Counters {
    total_items: AtomicU64,
    evictions: AtomicU64,
    evicted_unfetched: AtomicU64,
    reclaimed: AtomicU64,
    expired_unfetched: AtomicU64,
}

/// The cache.
pub struct Store {
    /// Keyed by the 64-bit xxh3 hash of the key; the item holds the key itself, and a lookup
    /// whose item has another key (a hash collision, ~1e-8 at a million keys) is a miss. This
    /// saves a key allocation and its moka bookkeeping per item.
    cache: Cache<u64, Arc<Item>>,
    clock: Arc<dyn Clock>,
    locks: Box<[Mutex<()>]>,
    counters: Arc<Counters>,
    cas: AtomicU64,
    seq: AtomicU64,
    /// Items with `seq` at or below this were flushed (immediate `flush_all`).
    flushed_seq: AtomicU64,
    /// Pending delayed flush: at this Unix time, items stored before it become invalid.
    flush_at: AtomicU64,
    /// The memory limit `cache_memlimit` set; weights are scaled against the capacity moka was
    /// built with (moka cannot change capacity), see [`Store::set_memory_limit`].
    limit: Arc<AtomicU64>,
    capacity: u64,
    max_item_size: usize,
}

/// Gives moka each item's remaining life so it reclaims expired memory by itself.
struct ItemExpiry(Arc<dyn Clock>);

impl ItemExpiry {
    fn remaining(&self, item: &Item) -> Option<Duration> {
        // One extra second: the read check decides expiry; moka only frees memory after it.
        (item.exptime() != 0)
            .then(|| Duration::from_secs(item.exptime().saturating_sub(self.0.now()) + 1))
    }
}

impl Expiry<u64, Arc<Item>> for ItemExpiry {
    fn expire_after_create(&self, _: &u64, v: &Arc<Item>, _: Instant) -> Option<Duration> {
        self.remaining(v)
    }

    fn expire_after_update(
        &self,
        _: &u64,
        v: &Arc<Item>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(v)
    }
}

impl Store {
    /// An empty store.
    pub fn new(cfg: StoreConfig, clock: Arc<dyn Clock>) -> Store {
        let counters = Arc::new(Counters::default());
        let limit = Arc::new(AtomicU64::new(cfg.memory_limit));
        let capacity = cfg.memory_limit;
        let c = counters.clone();
        let l = limit.clone();
        let cache = Cache::builder()
            .max_capacity(capacity)
            .weigher(move |_: &u64, v: &Arc<Item>| -> u32 {
                let size = (v.key().len() + v.value().len()) as u64 + ITEM_OVERHEAD;
                // Scaled so a lowered `cache_memlimit` takes effect within moka's fixed capacity.
                let scaled = size * capacity / l.load(Ordering::Relaxed).max(1);
                scaled.min(u64::from(u32::MAX)) as u32
            })
            .expire_after(ItemExpiry(clock.clone()))
            .eviction_listener(move |_k, v: Arc<Item>, cause| match cause {
                RemovalCause::Size => {
                    c.evictions.fetch_add(1, Ordering::Relaxed);
                    if !v.fetched() {
                        c.evicted_unfetched.fetch_add(1, Ordering::Relaxed);
                    }
                }
                RemovalCause::Expired => {
                    c.reclaimed.fetch_add(1, Ordering::Relaxed);
                    if !v.fetched() {
                        c.expired_unfetched.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {}
            })
            .build();
        Store {
            cache,
            clock,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            counters,
            cas: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            flushed_seq: AtomicU64::new(0),
            flush_at: AtomicU64::new(0),
            limit,
            capacity,
            max_item_size: cfg.max_item_size,
        }
    }

    /// The current Unix time by the store's clock.
    #[inline]
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// A fresh CAS unique.
    #[inline]
    fn next_cas(&self) -> u64 {
        self.cas.fetch_add(1, Ordering::Relaxed) + 1
    }

    #[inline]
    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The write lock for `key`.
    fn lock(&self, key: &[u8]) -> MutexGuard<'_, ()> {
        let h = hash(key) as usize & (STRIPES - 1);
        // A panic while holding a stripe cannot leave an item half-written (items are replaced
        // whole), so a poisoned lock is still safe to use.
        self.locks[h].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// memcached's exptime rules: 0 never; negative already expired; up to 30 days relative;
    /// larger an absolute Unix time. Returns the absolute time (0 = never), or `None` when the
    /// item would already be expired.
    pub fn abs_exptime(&self, exptime: i64, now: u64) -> Option<u64> {
        match exptime {
            0 => Some(0),
            e if e < 0 => None,
            e if e <= REALTIME_MAXDELTA => Some(now + e as u64),
            e if (e as u64) <= now => None,
            e => Some(e as u64),
        }
    }

    /// Whether `item` is visible at `now` (not expired, not flushed).
    fn check(&self, item: &Item, now: u64) -> Result<(), Lookup> {
        if item.expired(now) {
            return Err(Lookup::Expired);
        }
        if item.seq <= self.flushed_seq.load(Ordering::Relaxed) {
            return Err(Lookup::Flushed);
        }
        let at = self.flush_at.load(Ordering::Relaxed);
        if at != 0 && now >= at && u64::from(item.stored_at) < at {
            return Err(Lookup::Flushed);
        }
        Ok(())
    }

    /// The live item under `key`, if any (no access recorded).
    fn live(&self, key: &[u8], now: u64) -> Lookup {
        match self.cache.get(&hash(key)).filter(|i| i.key() == key) {
            Some(item) => match self.check(&item, now) {
                Ok(()) => Lookup::Hit(item),
                Err(why) => why,
            },
            None => Lookup::Miss,
        }
    }

    fn live_item(&self, key: &[u8], now: u64) -> Option<Arc<Item>> {
        match self.live(key, now) {
            Lookup::Hit(i) => Some(i),
            _ => None,
        }
    }

    fn insert(&self, key: &[u8], item: Item) -> Arc<Item> {
        let item = Arc::new(item);
        self.cache.insert(hash(key), item.clone());
        self.counters.total_items.fetch_add(1, Ordering::Relaxed);
        item
    }

    fn too_large(&self, key: &[u8], value_len: usize, flags: u32) -> bool {
        item_size(key.len(), value_len, flags) > self.max_item_size
    }

    /// `get`: the live item, recording the access.
    pub fn get(&self, key: &[u8]) -> Lookup {
        let now = self.now();
        let found = self.live(key, now);
        if let Lookup::Hit(item) = &found {
            item.touch_access(now);
        }
        found
    }

    /// `gat`: the live item with a new TTL (CAS unchanged, as memcached).
    pub fn get_and_touch(&self, key: &[u8], exptime: i64) -> Lookup {
        let now = self.now();
        let _g = self.lock(key);
        let found = self.live(key, now);
        let Lookup::Hit(item) = found else {
            return found;
        };
        let Some(exp) = self.abs_exptime(exptime, now) else {
            // Touched into the past: gone, as memcached's expired item would be.
            self.remove(key);
            return Lookup::Hit(item);
        };
        let new = Arc::new(item.with_exptime(exp));
        new.touch_access(now);
        self.cache.insert(hash(key), new.clone());
        Lookup::Hit(new)
    }

    /// `touch`: true if the key was there.
    pub fn touch(&self, key: &[u8], exptime: i64) -> bool {
        matches!(self.get_and_touch(key, exptime), Lookup::Hit(_))
    }

    /// The classic storage verbs.
    pub fn store(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
    ) -> StoreOutcome {
        self.store_with_cas(mode, key, flags, exptime, value, None)
            .0
    }

    /// Storage with an optional explicit new CAS (meta `E`); returns the outcome and the CAS
    /// of the stored item (0 when nothing was stored).
    pub(super) fn store_with_cas(
        &self,
        mode: StoreMode,
        key: &[u8],
        flags: u32,
        exptime: i64,
        value: &[u8],
        new_cas: Option<u64>,
    ) -> (StoreOutcome, u64) {
        if self.too_large(key, value.len(), flags) {
            return (StoreOutcome::TooLarge, 0);
        }
        let now = self.now();
        let _g = self.lock(key);
        let old = self.live_item(key, now);
        let cas = || new_cas.unwrap_or_else(|| self.next_cas());
        let mut joined = Vec::new();
        let (value, flags, exp) = match mode {
            StoreMode::Set => (value, flags, self.abs_exptime(exptime, now)),
            StoreMode::Add => {
                if old.is_some() {
                    return (StoreOutcome::NotStored, 0);
                }
                (value, flags, self.abs_exptime(exptime, now))
            }
            StoreMode::Replace => {
                if old.is_none() {
                    return (StoreOutcome::NotStored, 0);
                }
                (value, flags, self.abs_exptime(exptime, now))
            }
            StoreMode::Cas(want) => match &old {
                None => return (StoreOutcome::NotFound, 0),
                Some(o) if o.cas() != want => return (StoreOutcome::Exists, 0),
                Some(_) => (value, flags, self.abs_exptime(exptime, now)),
            },
            StoreMode::Append | StoreMode::Prepend => {
                let Some(o) = &old else {
                    return (StoreOutcome::NotStored, 0);
                };
                if self.too_large(key, o.value().len() + value.len(), o.flags()) {
                    return (StoreOutcome::TooLarge, 0);
                }
                joined.reserve_exact(o.value().len() + value.len());
                if mode == StoreMode::Append {
                    joined.extend_from_slice(o.value());
                    joined.extend_from_slice(value);
                } else {
                    joined.extend_from_slice(value);
                    joined.extend_from_slice(o.value());
                }
                let exp = Some(o.exptime());
                (&joined[..], o.flags(), exp)
            }
        };
        match exp {
            Some(exp) => {
                let c = cas();
                let seq = self.next_seq();
                self.insert(key, Item::new(key, value, flags, exp, c, seq, now));
                (StoreOutcome::Stored, c)
            }
            None => {
                // Stored already expired: memcached answers STORED and the key reads as a miss.
                self.remove(key);
                (StoreOutcome::Stored, 0)
            }
        }
    }

    /// `delete`: true if a live item was removed.
    pub fn delete(&self, key: &[u8]) -> bool {
        let now = self.now();
        let _g = self.lock(key);
        let had = self.live_item(key, now).is_some();
        self.remove(key);
        had
    }

    /// `incr`/`decr`: 64-bit unsigned, incr wraps, decr stops at 0; flags and TTL kept.
    pub fn incr_decr(&self, key: &[u8], incr: bool, delta: u64) -> ArithOutcome {
        let now = self.now();
        let _g = self.lock(key);
        match self.arith_locked(key, incr, delta, None, now) {
            Ok((v, _)) => ArithOutcome::Value(v),
            Err(e) => e,
        }
    }

    /// incr/decr with the stripe lock held; returns the new value and the new item.
    fn arith_locked(
        &self,
        key: &[u8],
        incr: bool,
        delta: u64,
        new_cas: Option<u64>,
        now: u64,
    ) -> Result<(u64, Arc<Item>), ArithOutcome> {
        let Some(old) = self.live_item(key, now) else {
            return Err(ArithOutcome::NotFound);
        };
        let cur = parse_counter(old.value()).ok_or(ArithOutcome::NonNumeric)?;
        let new = if incr {
            cur.wrapping_add(delta)
        } else {
            cur.saturating_sub(delta)
        };
        let mut digits = new.to_string().into_bytes();
        // memcached rewrites a shorter number in place, padding with spaces to the old length.
        if digits.len() < old.value().len() {
            digits.resize(old.value().len(), b' ');
        }
        let cas = new_cas.unwrap_or_else(|| self.next_cas());
        let seq = self.next_seq();
        let item = old.derive(&digits, old.exptime(), cas, seq, now);
        item.touch_access(now);
        let item = self.insert_replacing(key, item);
        Ok((new, item))
    }

    fn insert_replacing(&self, key: &[u8], item: Item) -> Arc<Item> {
        let item = Arc::new(item);
        self.cache.insert(hash(key), item.clone());
        item
    }

    /// Drops `key`'s item (only if it really is `key`'s, not a hash neighbour's).
    fn remove(&self, key: &[u8]) {
        let h = hash(key);
        if self.cache.get(&h).is_some_and(|i| i.key() == key) {
            self.cache.invalidate(&h);
        }
    }

    /// `flush_all [delay]`: with no (or a non-positive) delay, everything stored so far is
    /// invalid at once; with a delay, items stored before the deadline become invalid when it
    /// arrives. A later flush replaces a pending delayed one, as in memcached.
    pub fn flush_all(&self, delay: i64) {
        let now = self.now();
        if delay > 0 {
            let at = self.abs_exptime(delay, now).unwrap_or(now);
            self.flush_at.store(at, Ordering::Relaxed);
        } else {
            self.flush_at.store(0, Ordering::Relaxed);
            self.flushed_seq
                .store(self.seq.load(Ordering::Relaxed), Ordering::Relaxed);
            // Reclaim the memory too; entries inserted after this call are kept by moka.
            self.cache.invalidate_all();
        }
    }

    /// `cache_memlimit`: moka's capacity is fixed at start, so the weigher scales every item's
    /// weight by start-limit / new-limit. Items stored after the change are charged at the new
    /// rate at once; older items as they are rewritten or evicted, so the new limit is reached
    /// gradually rather than by a purge.
    pub fn set_memory_limit(&self, bytes: u64) {
        self.limit.store(bytes.max(1), Ordering::Relaxed);
    }

    /// Item-level stats. Runs moka's pending maintenance first so counts are current.
    pub fn stats(&self) -> StoreStats {
        self.cache.run_pending_tasks();
        let c = &self.counters;
        let limit = self.limit.load(Ordering::Relaxed);
        StoreStats {
            curr_items: self.cache.entry_count(),
            total_items: c.total_items.load(Ordering::Relaxed),
            // Weighted size is in units of the start capacity; report it in real bytes.
            bytes: self.cache.weighted_size() * limit / self.capacity.max(1),
            limit_maxbytes: limit,
            evictions: c.evictions.load(Ordering::Relaxed),
            reclaimed: c.reclaimed.load(Ordering::Relaxed),
            expired_unfetched: c.expired_unfetched.load(Ordering::Relaxed),
            evicted_unfetched: c.evicted_unfetched.load(Ordering::Relaxed),
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
}

/// The cache key of `key`.
#[inline]
fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// memcached's `safe_strtoull` on a stored value: optional leading spaces, digits, optional
/// trailing spaces (left by an in-place decrement); anything else is not a number.
fn parse_counter(v: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(v).ok()?;
    let t = s.trim_start_matches(' ').trim_end_matches(' ');
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests;
