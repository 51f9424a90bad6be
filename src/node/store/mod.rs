//! The node's storage engine: `moka` with a byte budget, plus memcached 1.6's item semantics.
//!
//! - **Memory.** Each item is one allocation (see [`item`]); moka charges it that allocation
//!   plus [`ITEM_OVERHEAD`] (see [`item_charge`]) and evicts least-recently-used items to stay
//!   within the budget, like memcached's LRU: a fresh write is always admitted (moka's TinyLFU
//!   admission would silently drop new keys under pressure, which no memcached client expects).
//! - **Time.** Expiry is decided on every access against an injectable [`Clock`], as memcached
//!   checks `exptime` on access; moka also gets each item's remaining life so that memory of
//!   expired items is reclaimed even if nobody asks for them again.
//! - **Atomicity.** Reads take no lock. Every write takes one of [`STRIPES`] key-hashed mutexes
//!   around its read-modify-write, as memcached's item locks do, so racing `cas`, `incr`,
//!   `append` and `set` on one key serialize.
//! - **Hygiene.** Keys and values are copied into the item, so an item never pins the network
//!   buffer it arrived in; reads hand the value out as `Bytes` sharing the item, without a copy.
//!
//! Split by job: [`item`] one item; [`counters`] sharded statistics; [`arith`] incr/decr and
//! memcached's number parsing; [`meta`] the meta commands; [`dump`] metadump, `me` and slab
//! classes; [`sweep`] the background crawler that reclaims flushed items and re-weighs items
//! after `cache_memlimit`.

mod arith;
mod counters;
mod dump;
mod item;
mod meta;
mod sweep;

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
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
use item::Meta;
use sweep::Sweep;

pub use arith::parse_counter;
pub use dump::{metadump_line, slab_class, url_encode, DebugInfo, Metadump};
pub use item::{Item, ItemRef, MAX_DATA_LEN, MAX_KEY_LEN};
pub use meta::{
    MetaArithHit, MetaArithOpts, MetaDeleteOpts, MetaDeleteOutcome, MetaExtra, MetaGetHit,
    MetaGetOpts, MetaSetOpts,
};

/// Bytes charged per item on top of its own allocation: what moka spends on one entry.
///
/// An item is charged [`item_charge`]: its allocation (the 40-byte header, the key, the value)
/// rounded up to the allocator's size class, plus this constant. moka's part, per entry, in
/// allocations (moka 0.12.16, counted with a counting allocator): the key's `Arc<u64>` 24 B,
/// the hash-table bucket 16, the value entry 32 (our one-word [`ItemRef`] inline), the entry
/// info 64, the deque-node holder 48, the LRU deque node 24 = 208 B; plus the hash table's
/// pointer array (doubled at 70 % load: 11–23 B) and allocator slack, and for items with a TTL
/// a timer-wheel node (~48 B). Measured as RSS growth of the release binary (mimalloc 2.x)
/// divided by resident items, with `bench/tools/mem_per_item.py`:
///
/// ```text
/// python3 bench/tools/mem_per_item.py node --limit-mib 256 --value V --items N [--ttl 86400]
/// python3 bench/tools/mem_per_item.py node --items 1000000            # 4 GiB, no eviction
/// python3 bench/tools/mem_per_item.py memcached --items 1000000       # the same for memcached
/// ```
///
/// (N = 3 × 256 MiB / (V + 300): a full cache under eviction churn; 11-byte keys.)
///
/// | value  | item block  | RSS / resident item (TTL) | charge | RSS / charge (TTL) |
/// |--------|-------------|---------------------------|--------|--------------------|
/// | 10 B   | 61 → 64     | 323 (372)                 | 344    | 0.94 (1.08)        |
/// | 100 B  | 151 → 160   | 408 (456)                 | 440    | 0.93 (1.04)        |
/// | 600 B  | 651 → 768   | 1027 (1077)               | 1048   | 0.98 (1.03)        |
/// | 1000 B | 1051 → 1280 | 1549 (1596)               | 1560   | 0.99 (1.02)        |
///
/// and 403 B per item for 1 M 100-byte items without eviction (memcached 1.6.18: 202 B, the
/// same test). With 280 the RSS growth of a full node stays within 10 % of its limit across
/// these sizes, with and without TTLs (the process's fixed ~18 MiB comes on top, which matters
/// only for small limits). The size-class rounding matters: allocators round a 1051-byte block
/// up to 1280, and a flat per-item constant would let a 1 KB-value cache overshoot by ~20 %.
/// The whole gap to memcached is moka's bookkeeping (~240 B per entry, above): our own item
/// is a 160-byte block here, memcached's is a 192-byte slab chunk plus ~8 B of hash table.
pub const ITEM_OVERHEAD: u64 = 280;

/// Bytes of an item's allocation besides key and value: its 40-byte header (reference count
/// included).
const ITEM_BLOCK_HEADER: usize = 40;

/// The allocator size class of an `n`-byte block, as mimalloc (and jemalloc) round it: 8-byte
/// steps up to 64 bytes, then four classes per power of two.
fn size_class(n: usize) -> usize {
    if n <= 64 {
        return n.div_ceil(8).max(1) * 8;
    }
    let step = 1usize << ((usize::BITS - 1 - (n - 1).leading_zeros()) - 2);
    n.div_ceil(step).saturating_mul(step)
}

/// What an item with this key and value is charged against the memory limit (and counted in
/// `bytes`): its allocation rounded to the allocator's size class, plus [`ITEM_OVERHEAD`].
pub fn item_charge(key_len: usize, value_len: usize) -> u64 {
    size_class(
        ITEM_BLOCK_HEADER
            .saturating_add(key_len)
            .saturating_add(value_len),
    ) as u64
        + ITEM_OVERHEAD
}

/// Write locks (a power of two).
const STRIPES: usize = 4096;

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

/// The charge of an item against the budget.
#[inline]
fn charge(item: &Item) -> u64 {
    item_charge(item.key().len(), item.value().len())
}

/// The cache key of `key`.
#[inline]
fn hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// moka's hasher for its keys, which are already xxh3 hashes of the memcached keys: xxh3 of
/// those 8 bytes with a per-process random seed, instead of SipHash (which cost ~4 % of the
/// node's instructions per request). The random seed keeps what SipHash's random key gave: a
/// client cannot aim keys at one region of moka's table without knowing it. (A one-multiply
/// fold was tried first; for some seeds it mixed high bits poorly into moka's bucket bits.)
#[derive(Clone)]
struct KeyHashBuilder {
    seed: u64,
}

impl KeyHashBuilder {
    fn new() -> KeyHashBuilder {
        let random = std::collections::hash_map::RandomState::new();
        KeyHashBuilder {
            seed: random.hash_one(0x5eed_u64),
        }
    }
}

impl BuildHasher for KeyHashBuilder {
    type Hasher = KeyHasher;

    #[inline]
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher {
            seed: self.seed,
            h: 0,
        }
    }
}

/// See [`KeyHashBuilder`].
struct KeyHasher {
    seed: u64,
    h: u64,
}

impl Hasher for KeyHasher {
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.h = self.h.rotate_left(29) ^ n;
    }

    /// Not used for `u64` keys; folds any other input eight bytes at a time.
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(&self.h.to_le_bytes(), self.seed)
    }
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
    /// Items whose sequence number is at or below this were flushed by an immediate flush.
    seq: AtomicU64,
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
        if item.seq() <= self.seq.load(Ordering::Acquire) {
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
    /// Bumped on every limit change; each item records the generation it was weighed under.
    epoch: AtomicU8,
}

impl Weights {
    /// The item's weight: its charge scaled by capacity / limit, rounded up, so the sum of
    /// weights stays within moka's capacity exactly when the charges stay within the limit.
    fn weigh(&self, item: &Item) -> u32 {
        let epoch = self.epoch.load(Ordering::Acquire);
        let limit = self.limit.load(Ordering::Relaxed).max(1);
        item.set_epoch(epoch);
        let w = (u128::from(charge(item)) * u128::from(self.capacity)).div_ceil(u128::from(limit));
        w.clamp(1, u128::from(u32::MAX)) as u32
    }
}

/// What moka's callbacks share with the store.
struct Common {
    clock: Arc<dyn Clock>,
    counters: Counters,
    flush: Flush,
    weights: Weights,
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

    /// moka's eviction listener: keeps the gauges and counts evictions by cause.
    fn on_removal(&self, h: u64, item: &Item, cause: RemovalCause) {
        let c = &self.counters;
        c.sub(h, C::CurrItems, 1);
        c.sub(h, C::Bytes, charge(item));
        match cause {
            RemovalCause::Size => {
                let now = self.clock.now();
                if self.status(item, now) != Status::Live {
                    // memcached's LRU tail reclaims a dead item rather than evicting it.
                    c.incr(h, C::Reclaimed);
                    if !item.fetched() {
                        c.incr(h, C::ExpiredUnfetched);
                    }
                    return;
                }
                c.incr(h, C::Evictions);
                if !item.fetched() {
                    c.incr(h, C::EvictedUnfetched);
                }
                if item.exptime() != 0 {
                    c.incr(h, C::EvictedNonzero);
                }
                c.set_evicted_time(now.saturating_sub(item.last_access()));
            }
            RemovalCause::Expired => {
                c.incr(h, C::Reclaimed);
                if !item.fetched() {
                    c.incr(h, C::ExpiredUnfetched);
                }
            }
            RemovalCause::Explicit | RemovalCause::Replaced => {}
        }
    }
}

/// Gives moka each item's remaining life so that it reclaims expired memory by itself.
struct ItemExpiry(Arc<Common>);

impl ItemExpiry {
    fn remaining(&self, item: &Item) -> Option<Duration> {
        // One second more than the item has: the access-time check decides expiry, moka only
        // frees the memory afterwards.
        match item.exptime() {
            0 => None,
            e => Some(Duration::from_secs(
                e.saturating_sub(self.0.clock.now()).saturating_add(1),
            )),
        }
    }
}

impl Expiry<u64, ItemRef> for ItemExpiry {
    fn expire_after_create(&self, _: &u64, v: &ItemRef, _: Instant) -> Option<Duration> {
        self.remaining(v)
    }

    fn expire_after_update(
        &self,
        _: &u64,
        v: &ItemRef,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(v)
    }
}

/// Everything the store and its background sweep share.
struct Shared {
    /// Keyed by the 64-bit xxh3 hash of the key; the item holds the key itself, and an item
    /// under the same hash with another key (a collision: ~3e-8 at a million keys) reads as a
    /// miss and is replaced by a write, as an eviction would. This saves a key copy and its
    /// bookkeeping in moka per item.
    cache: Cache<u64, ItemRef, KeyHashBuilder>,
    common: Arc<Common>,
    locks: Box<[Mutex<()>]>,
    /// CAS uniques and store sequence numbers come from this one counter (one shared atomic
    /// per write). An explicit CAS (`E`) still takes a sequence number from it.
    counter: AtomicU64,
    sweep: Sweep,
}

impl Shared {
    /// The write lock for hash `h`.
    #[inline]
    fn lock(&self, h: u64) -> MutexGuard<'_, ()> {
        // Items are replaced whole, so a panic while holding a stripe cannot leave one
        // half-written: a poisoned lock is still fine to use.
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

    /// The next CAS unique / sequence number.
    #[inline]
    fn next_seq(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Puts `item` under `h` (the caller holds `h`'s lock). `new` counts it in `total_items`:
    /// memcached counts every item it links, but not in-place changes.
    fn insert(&self, h: u64, item: ItemRef, new: bool) {
        let c = &self.common.counters;
        c.incr(h, C::CurrItems);
        c.add(h, C::Bytes, charge(&item));
        if new {
            c.incr(h, C::TotalItems);
        }
        self.cache.insert(h, item);
    }

    /// Removes `item` if it is still the one under `h` (the caller holds `h`'s lock).
    fn unlink_if_same(&self, h: u64, item: &ItemRef) -> bool {
        match self.cache.get(&h) {
            Some(cur) if ItemRef::ptr_eq(&cur, item) => {
                self.cache.invalidate(&h);
                true
            }
            _ => false,
        }
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
                seq: AtomicU64::new(0),
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
        });
        let weigher = common.clone();
        let listener = common.clone();
        let cache = Cache::builder()
            .max_capacity(capacity)
            .eviction_policy(EvictionPolicy::lru())
            .weigher(move |_: &u64, v: &ItemRef| weigher.weights.weigh(v))
            .expire_after(ItemExpiry(common.clone()))
            .eviction_listener(move |k: Arc<u64>, v: ItemRef, cause| {
                listener.on_removal(*k, &v, cause)
            })
            .build_with_hasher(KeyHashBuilder::new());
        Store {
            inner: Arc::new(Shared {
                cache,
                common,
                locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                counter: AtomicU64::new(0),
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

    /// The item under `key` as memcached's `do_item_get` sees it: a dead (expired or flushed)
    /// item is counted and removed, and reads as `Expired`/`Flushed`. `locked`: the caller
    /// holds the key's write lock.
    fn find(&self, h: u64, key: &[u8], now: u64, locked: bool) -> Lookup {
        let Some(item) = self.inner.cache.get(&h) else {
            return Lookup::Miss;
        };
        if item.key() != key {
            return Lookup::Miss;
        }
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
            // A reader never waits for a writer: if the stripe is busy, moka reclaims it later.
            self.inner.unlink_if_same(h, &item);
        }
        found
    }

    /// `get`: the live item, recording the fetch.
    pub fn get(&self, key: &[u8]) -> Lookup {
        let now = self.now();
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
        let now = self.now();
        let h = hash(key);
        let _g = self.inner.lock(h);
        let found = self.find(h, key, now, true);
        if let Lookup::Hit(item) = &found {
            item.bump(now);
            item.set_exptime(expiry(exptime, now));
            // Re-insert the same item so moka's own expiry follows the new time.
            self.inner.insert(h, item.clone(), false);
        }
        found
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
        let _g = self.inner.lock(h);
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
        self.write_locked(h, key, &w, now)
    }

    /// Removes whatever live item `key` has (taking its lock).
    fn remove_locked_lookup(&self, h: u64, key: &[u8]) {
        let now = self.now();
        let _g = self.inner.lock(h);
        if let Lookup::Hit(item) = self.find(h, key, now, true) {
            self.inner.unlink_if_same(h, &item);
        }
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
                    Some(exptime) => self.put(h, key, &[w.value], w.flags, exptime, 0, w, now),
                    None => (StoreOutcome::NotStored, 0),
                },
                StoreMode::Set | StoreMode::Add => {
                    self.put(h, key, &[w.value], w.flags, w.exptime, 0, w, now)
                }
            };
        };
        match w.mode {
            StoreMode::Add => {
                // add only adds a missing item, but counts as a touch of the existing one.
                old.refresh_time(now);
                (StoreOutcome::NotStored, 0)
            }
            StoreMode::Set | StoreMode::Replace => {
                self.put(h, key, &[w.value], w.flags, w.exptime, 0, w, now)
            }
            StoreMode::Cas(want) => {
                if want != 0 && want == old.cas() {
                    self.put(h, key, &[w.value], w.flags, w.exptime, 0, w, now)
                } else if w.stale_ok && want != 0 && want < old.cas() {
                    // `ms … I` with an older CAS: store, but keep the TTL and mark it stale,
                    // keeping the token state of the item it replaces.
                    let state = Item::stale_state(&old);
                    self.put(h, key, &[w.value], w.flags, old.exptime(), state, w, now)
                } else {
                    (StoreOutcome::Exists, 0)
                }
            }
            StoreMode::Append | StoreMode::Prepend => {
                if let Some(want) = w.compare {
                    if want != 0 && want != old.cas() {
                        return (StoreOutcome::Exists, 0);
                    }
                }
                let joined = old.value().len().saturating_add(w.value.len());
                if self.too_large(key, joined, old.flags()) {
                    // memcached fails the allocation of the joined item: NOT_STORED.
                    return (StoreOutcome::NotStored, 0);
                }
                let parts: [&[u8]; 2] = if w.mode == StoreMode::Append {
                    [old.value(), w.value]
                } else {
                    [w.value, old.value()]
                };
                self.put(h, key, &parts, old.flags(), old.exptime(), 0, w, now)
            }
        }
    }

    /// Stores a new item made of `parts`, with `w`'s explicit CAS if any.
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
        now: u64,
    ) -> (StoreOutcome, u64) {
        let seq = self.inner.next_seq();
        let cas = w.new_cas.unwrap_or(seq);
        let meta = Meta {
            flags,
            exptime,
            cas,
            seq,
            time: now,
            state: state | if w.binary_key { item::KEY_BINARY } else { 0 },
        };
        // An item stored already expired is still linked, as memcached does: it counts in
        // total_items, replaces the old value, and a later read finds it expired.
        self.inner.insert(h, ItemRef::new(key, parts, meta), true);
        (StoreOutcome::Stored, cas)
    }

    /// `delete`: true if a live item was removed.
    pub fn delete(&self, key: &[u8]) -> bool {
        let now = self.now();
        let h = hash(key);
        let _g = self.inner.lock(h);
        match self.find(h, key, now, true) {
            Lookup::Hit(item) => {
                self.inner.unlink_if_same(h, &item);
                true
            }
            _ => false,
        }
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
            f.seq.store(
                self.inner.counter.load(Ordering::Acquire),
                Ordering::Release,
            );
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
    /// every item weighs its charge × (start limit / current limit), rounded up, so "weights
    /// within moka's capacity" means "charges within the current limit". Items stored from now
    /// on are weighed at the new rate at once; a background sweep re-weighs the items already
    /// there (re-inserting each one, which also moves it to the recent end of the LRU), after
    /// which moka evicts down to a lowered limit or has room up to a raised one. Like
    /// memcached, memory is thus released asynchronously after a decrease. Raising the limit
    /// far above the start limit rounds small items up to a whole weight unit, so very large
    /// raises hold somewhat fewer items than the limit would allow.
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

    /// Item-level stats. Runs moka's pending maintenance first so evictions are current.
    pub fn stats(&self) -> StoreStats {
        self.inner.cache.run_pending_tasks();
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
            self.inner.cache.run_pending_tasks();
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
mod tests;
