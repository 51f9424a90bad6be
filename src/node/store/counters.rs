//! The store's item-level counters, sharded so that concurrent writers (and moka's eviction
//! listener) rarely touch the same cache line.
//!
//! A counter is bumped in the shard picked by the key's hash and read by summing all shards, so
//! `stats` costs 16 cache lines while a write costs one uncontended atomic add. The read path of a
//! hit touches none of these: only misses that find an expired or flushed item count something.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Number of shards (a power of two).
const SHARDS: usize = 16;

/// Which counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(super) enum C {
    /// Items stored since start (memcached `total_items`).
    TotalItems,
    /// Items resident: +1 per insert, -1 per removal of any cause (`curr_items`).
    CurrItems,
    /// Bytes charged against the limit by resident items (`bytes`).
    Bytes,
    /// A lookup found the item expired (`get_expired`).
    GetExpired,
    /// A lookup found the item flushed (`get_flushed`).
    GetFlushed,
    /// Live items removed to make room (`evictions`).
    Evictions,
    /// Evicted without ever being fetched (`evicted_unfetched`).
    EvictedUnfetched,
    /// Evicted while carrying an expiry time (`evicted_nonzero`).
    EvictedNonzero,
    /// Dead items whose memory was reclaimed by the cache (`reclaimed`).
    Reclaimed,
    /// Reclaimed after expiring without ever being fetched (`expired_unfetched`).
    ExpiredUnfetched,
    /// Dead items removed by the background sweep (`crawler_reclaimed`).
    CrawlerReclaimed,
}

const COUNTERS: usize = C::CrawlerReclaimed as usize + 1;

/// One shard: its own cache lines, so shards never false-share.
#[repr(align(128))]
#[derive(Default)]
struct Shard([AtomicU64; COUNTERS]);

/// All counters.
pub(super) struct Counters {
    shards: Box<[Shard]>,
    /// Seconds since the last access of the most recently evicted item (`evicted_time`).
    evicted_time: AtomicU64,
}

impl Counters {
    pub(super) fn new() -> Counters {
        Counters {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            evicted_time: AtomicU64::new(0),
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard {
        // The high bits: the low ones pick the write lock.
        &self.shards[(hash >> 60) as usize & (SHARDS - 1)]
    }

    /// Adds `n` to a counter in `hash`'s shard.
    #[inline]
    pub(super) fn add(&self, hash: u64, c: C, n: u64) {
        self.shard(hash).0[c as usize].fetch_add(n, Relaxed);
    }

    /// Subtracts `n` (counters that go down wrap in their shard and are summed as signed).
    #[inline]
    pub(super) fn sub(&self, hash: u64, c: C, n: u64) {
        self.shard(hash).0[c as usize].fetch_sub(n, Relaxed);
    }

    #[inline]
    pub(super) fn incr(&self, hash: u64, c: C) {
        self.add(hash, c, 1);
    }

    /// The total of a counter; a gauge that dipped below zero transiently reads as 0.
    pub(super) fn get(&self, c: C) -> u64 {
        let sum = self.shards.iter().fold(0u64, |acc, s| {
            acc.wrapping_add(s.0[c as usize].load(Relaxed))
        });
        (sum as i64).max(0) as u64
    }

    /// `stats reset`: every counter but the gauges (`curr_items`, `bytes`) back to 0, as
    /// memcached's `item_stats_reset` and `stats_reset` do (`total_items`, evictions, …).
    pub(super) fn reset(&self) {
        for s in self.shards.iter() {
            for (i, c) in s.0.iter().enumerate() {
                if i != C::CurrItems as usize && i != C::Bytes as usize {
                    c.store(0, Relaxed);
                }
            }
        }
        self.evicted_time.store(0, Relaxed);
    }

    pub(super) fn set_evicted_time(&self, secs: u64) {
        self.evicted_time.store(secs, Relaxed);
    }

    pub(super) fn evicted_time(&self) -> u64 {
        self.evicted_time.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_shards_and_gauges_go_down() {
        let c = Counters::new();
        for h in [0u64, 1 << 60, 5 << 60, u64::MAX] {
            c.incr(h, C::TotalItems);
            c.add(h, C::Bytes, 10);
        }
        c.sub(3 << 60, C::Bytes, 15);
        assert_eq!(c.get(C::TotalItems), 4);
        assert_eq!(c.get(C::Bytes), 25);
        c.sub(0, C::CurrItems, 1);
        assert_eq!(c.get(C::CurrItems), 0, "a transient negative reads as zero");
        assert_eq!(std::mem::align_of::<Shard>(), 128);
    }
}
