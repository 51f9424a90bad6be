//! One stored item: key and value in one allocation of their own, client flags, absolute expiry,
//! CAS, and the few bits of mutable state memcached tracks per item (last access, fetched, stale,
//! win token).
//!
//! Items are immutable apart from those atomics; a change to value, TTL or CAS replaces the
//! item in the cache, so readers never see a half-made item and need no lock. Times are kept as
//! 32-bit Unix seconds (good until 2106) to keep the per-item header small.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;

/// Fetched since it was stored (memcached `ITEM_FETCHED`, the `h` and `fetch=` flags).
const FETCHED: u8 = 1;
/// Marked stale by a meta invalidation (`ITEM_STALE`, the `X` flag).
const STALE: u8 = 2;
/// A client has been given the recache token (`ITEM_TOKEN_SENT`, the `W`/`Z` flags).
const TOKEN_SENT: u8 = 4;

/// One cache item.
#[derive(Debug)]
pub struct Item {
    /// The key followed by the value.
    data: Arc<[u8]>,
    key_len: u8,
    flags: u32,
    /// Absolute Unix time it expires at; 0 = never.
    exptime: u32,
    cas: u64,
    /// Store sequence number: an immediate `flush_all` invalidates every item at or below the
    /// sequence it saw (exact, unlike comparing seconds).
    pub(super) seq: u64,
    /// Unix time the item was stored; a delayed `flush_all` invalidates items stored before
    /// its deadline.
    pub(super) stored_at: u32,
    last_access: AtomicU32,
    state: AtomicU8,
}

/// Unix seconds as stored (saturating; 0 stays "never").
#[inline]
fn secs(t: u64) -> u32 {
    t.min(u64::from(u32::MAX)) as u32
}

impl Item {
    /// A new item; `key` (at most 250 bytes) and `value` are copied into one allocation.
    pub(super) fn new(
        key: &[u8],
        value: &[u8],
        flags: u32,
        exptime: u64,
        cas: u64,
        seq: u64,
        now: u64,
    ) -> Item {
        let mut data = Vec::with_capacity(key.len() + value.len());
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        Item {
            data: Arc::from(data),
            key_len: key.len().min(255) as u8,
            flags,
            exptime: secs(exptime),
            cas,
            seq,
            stored_at: secs(now),
            last_access: AtomicU32::new(secs(now)),
            state: AtomicU8::new(0),
        }
    }

    /// A copy with another value/TTL/CAS, carrying over flags and the access state.
    pub(super) fn derive(&self, value: &[u8], exptime: u64, cas: u64, seq: u64, now: u64) -> Item {
        let it = Item::new(self.key(), value, self.flags, exptime, cas, seq, now);
        it.last_access
            .store(self.last_access.load(Ordering::Relaxed), Ordering::Relaxed);
        it.state
            .store(self.state.load(Ordering::Relaxed), Ordering::Relaxed);
        it
    }

    /// The same item with another expiry (touch, gat, meta `T`): value, CAS, store time and
    /// access state are kept.
    pub(super) fn with_exptime(&self, exptime: u64) -> Item {
        Item {
            data: self.data.clone(),
            key_len: self.key_len,
            flags: self.flags,
            exptime: secs(exptime),
            cas: self.cas,
            seq: self.seq,
            stored_at: self.stored_at,
            last_access: AtomicU32::new(self.last_access.load(Ordering::Relaxed)),
            state: AtomicU8::new(self.state.load(Ordering::Relaxed)),
        }
    }

    /// The key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.data[..usize::from(self.key_len)]
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.data[usize::from(self.key_len)..]
    }

    /// Client flags.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// The CAS unique.
    #[inline]
    pub fn cas(&self) -> u64 {
        self.cas
    }

    /// Absolute expiry (Unix seconds), 0 = never.
    pub fn exptime(&self) -> u64 {
        u64::from(self.exptime)
    }

    /// Seconds of life left at `now`; `None` = never expires.
    pub fn ttl(&self, now: u64) -> Option<i64> {
        (self.exptime != 0).then(|| i64::from(self.exptime) - now as i64)
    }

    /// Unix time of the last access.
    pub fn last_access(&self) -> u64 {
        u64::from(self.last_access.load(Ordering::Relaxed))
    }

    pub fn fetched(&self) -> bool {
        self.state.load(Ordering::Relaxed) & FETCHED != 0
    }

    pub fn stale(&self) -> bool {
        self.state.load(Ordering::Relaxed) & STALE != 0
    }

    pub fn token_sent(&self) -> bool {
        self.state.load(Ordering::Relaxed) & TOKEN_SENT != 0
    }

    /// Records a read: fetched, last access now (what memcached's LRU bump does).
    #[inline]
    pub(super) fn touch_access(&self, now: u64) {
        if self.state.load(Ordering::Relaxed) & FETCHED == 0 {
            self.state.fetch_or(FETCHED, Ordering::Relaxed);
        }
        let now = secs(now);
        if self.last_access.load(Ordering::Relaxed) != now {
            self.last_access.store(now, Ordering::Relaxed);
        }
    }

    pub(super) fn set_token_sent(&self) {
        self.state.fetch_or(TOKEN_SENT, Ordering::Relaxed);
    }

    /// Marks the item stale and lets the next reader win the recache token.
    pub(super) fn set_stale(&self) {
        self.state.fetch_or(STALE, Ordering::Relaxed);
        self.state.fetch_and(!TOKEN_SENT, Ordering::Relaxed);
    }

    /// Whether the item is expired at `now` (memcached: `exptime <= current_time`).
    #[inline]
    pub fn expired(&self, now: u64) -> bool {
        self.exptime != 0 && u64::from(self.exptime) <= now
    }
}
