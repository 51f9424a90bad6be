//! One stored item: the value (its own allocation), client flags, absolute expiry, CAS, and the
//! few bits of mutable state memcached tracks per item (last access, fetched, stale, win token).
//!
//! Items are immutable apart from those atomics; a change to value, TTL or CAS replaces the
//! item in the cache, so readers never see a half-made item and need no lock.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use bytes::Bytes;

/// Fetched since it was stored (memcached `ITEM_FETCHED`, the `h` and `fetch=` flags).
const FETCHED: u8 = 1;
/// Marked stale by a meta invalidation (`ITEM_STALE`, the `X` flag).
const STALE: u8 = 2;
/// A client has been given the recache token (`ITEM_TOKEN_SENT`, the `W`/`Z` flags).
const TOKEN_SENT: u8 = 4;

/// One cache item.
#[derive(Debug)]
pub struct Item {
    value: Bytes,
    flags: u32,
    /// Absolute Unix time it expires at; 0 = never.
    exptime: u64,
    cas: u64,
    /// Store sequence number: an immediate `flush_all` invalidates every item at or below the
    /// sequence it saw (exact, unlike comparing seconds).
    pub(super) seq: u64,
    /// Unix time the item was stored; a delayed `flush_all` invalidates items stored before
    /// its deadline.
    pub(super) stored_at: u64,
    last_access: AtomicU64,
    state: AtomicU8,
}

impl Item {
    pub(super) fn new(
        value: Bytes,
        flags: u32,
        exptime: u64,
        cas: u64,
        seq: u64,
        now: u64,
    ) -> Item {
        Item {
            value,
            flags,
            exptime,
            cas,
            seq,
            stored_at: now,
            last_access: AtomicU64::new(now),
            state: AtomicU8::new(0),
        }
    }

    /// A copy with other value/TTL/CAS, carrying over the access state.
    pub(super) fn derive(&self, value: Bytes, exptime: u64, cas: u64, seq: u64, now: u64) -> Item {
        let it = Item::new(value, self.flags, exptime, cas, seq, now);
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
            value: self.value.clone(),
            flags: self.flags,
            exptime,
            cas: self.cas,
            seq: self.seq,
            stored_at: self.stored_at,
            last_access: AtomicU64::new(self.last_access.load(Ordering::Relaxed)),
            state: AtomicU8::new(self.state.load(Ordering::Relaxed)),
        }
    }

    /// The value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as shared bytes (no copy).
    pub fn value_bytes(&self) -> Bytes {
        self.value.clone()
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
        self.exptime
    }

    /// Seconds of life left at `now`; `None` = never expires.
    pub fn ttl(&self, now: u64) -> Option<i64> {
        (self.exptime != 0).then(|| self.exptime as i64 - now as i64)
    }

    /// Unix time of the last access.
    pub fn last_access(&self) -> u64 {
        self.last_access.load(Ordering::Relaxed)
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
        self.exptime != 0 && self.exptime <= now
    }
}
