//! Unit tests of the store's classic-command semantics, limits, memory and concurrency, with a
//! manual clock. Expected behaviour was checked against memcached 1.6.18 where noted.

use std::sync::Arc;

use bytes::Bytes;

use super::engine::charge;
use super::*;
use crate::node::clock::ManualClock;

pub(super) const T0: u64 = 1_700_000_000;

pub(super) fn store() -> (Store, Arc<ManualClock>) {
    store_with(64 << 20, 1 << 20)
}

pub(super) fn store_with(memory: u64, item: usize) -> (Store, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(T0));
    let s = Store::new(
        StoreConfig {
            memory_limit: memory,
            max_item_size: item,
        },
        clock.clone(),
    );
    (s, clock)
}

pub(super) fn value(s: &Store, key: &[u8]) -> Option<Vec<u8>> {
    s.peek(key).hit().map(|i| i.value().to_vec())
}

pub(super) fn item(s: &Store, key: &[u8]) -> ItemRef {
    match s.peek(key) {
        Lookup::Hit(i) => i,
        other => panic!("{} not there: {other:?}", String::from_utf8_lossy(key)),
    }
}

fn set(s: &Store, key: &[u8], flags: u32, exptime: i64, v: &[u8]) {
    assert_eq!(
        s.store(StoreMode::Set, key, flags, exptime, v),
        StoreOutcome::Stored
    );
}

#[test]
fn exptime_forms() {
    let (s, clock) = store();
    set(&s, b"rel", 0, 100, b"a");
    set(&s, b"edge", 0, 2_592_000, b"b");
    set(&s, b"over", 0, 2_592_001, b"b");
    set(&s, b"abs", 0, (T0 + 50) as i64, b"c");
    set(&s, b"neg", 0, -1, b"d");
    set(&s, b"past", 0, (T0 - 1) as i64, b"e");
    set(&s, b"never", 0, 0, b"f");
    set(&s, b"far", 0, 4_000_000_000, b"g");
    assert_eq!(
        item(&s, b"far").exptime(),
        4_000_000_000,
        "absolute, far ahead"
    );
    assert_eq!(item(&s, b"rel").exptime(), T0 + 100);
    assert_eq!(
        item(&s, b"edge").exptime(),
        T0 + 2_592_000,
        "30 days is relative"
    );
    assert!(
        matches!(s.get(b"over"), Lookup::Expired),
        "30 days + 1 is 1970"
    );
    assert!(
        matches!(s.get(b"neg"), Lookup::Expired),
        "negative: stored expired"
    );
    assert!(matches!(s.get(b"past"), Lookup::Expired));
    assert!(
        matches!(s.get(b"neg"), Lookup::Miss),
        "and removed once found"
    );
    clock.advance(49);
    assert!(value(&s, b"abs").is_some());
    clock.advance(1);
    assert!(value(&s, b"abs").is_none(), "absolute deadline reached");
    clock.advance(49);
    assert!(value(&s, b"rel").is_some(), "one second left");
    clock.advance(1);
    assert!(
        matches!(s.get(b"rel"), Lookup::Expired),
        "expires at exptime"
    );
    clock.advance(2_592_000);
    assert!(value(&s, b"edge").is_none());
    assert!(value(&s, b"never").is_some());
    let st = s.stats();
    assert_eq!(st.get_expired, 6, "{st:?}");
    assert_eq!(st.total_items, 8, "expired-on-arrival items are linked too");
}

#[test]
fn set_with_negative_exptime_replaces_the_old_value() {
    let (s, _c) = store();
    set(&s, b"k", 0, 0, b"old");
    let before = item(&s, b"k").cas();
    set(&s, b"k", 0, -1, b"new");
    assert!(value(&s, b"k").is_none());
    set(&s, b"j", 0, 0, b"x");
    assert_eq!(
        item(&s, b"j").cas(),
        before + 2,
        "the expired set took a CAS too"
    );
}

#[test]
fn cas_is_unique_per_modification_and_checked() {
    let (s, _c) = store();
    let mut seen = std::collections::HashSet::new();
    let mut note = |s: &Store| assert!(seen.insert(item(s, b"k").cas()), "CAS reused");
    set(&s, b"k", 0, 0, b"1");
    note(&s);
    set(&s, b"k", 0, 0, b"2");
    note(&s);
    s.store(StoreMode::Append, b"k", 0, 0, b"3");
    note(&s);
    s.incr_decr(b"k", true, 1);
    note(&s);
    let c = item(&s, b"k").cas();
    assert_eq!(
        s.store(StoreMode::Cas(c + 1), b"k", 0, 0, b"x"),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(StoreMode::Cas(c), b"k", 0, 0, b"x"),
        StoreOutcome::Stored
    );
    note(&s);
    assert_eq!(
        s.store(StoreMode::Cas(0), b"k", 0, 0, b"x"),
        StoreOutcome::Exists,
        "memcached: cas 0 never matches"
    );
    assert_eq!(
        s.store(StoreMode::Cas(1), b"nokey", 0, 0, b"x"),
        StoreOutcome::NotFound
    );
    // touch and gat keep the CAS (memcached changes only the exptime).
    let c = item(&s, b"k").cas();
    assert!(s.touch(b"k", 100));
    assert!(s.get_and_touch(b"k", 200).is_hit());
    assert_eq!(item(&s, b"k").cas(), c);
}

#[test]
fn explicit_cas_is_used_as_given() {
    let (s, _c) = store();
    let (out, cas) = s.store_cas(StoreMode::Set, b"k", 3, 0, b"v", Some(1_234_567));
    assert_eq!((out, cas), (StoreOutcome::Stored, 1_234_567));
    assert_eq!(item(&s, b"k").cas(), 1_234_567);
    assert_eq!(item(&s, b"k").flags(), 3);
    assert_eq!(
        s.store(StoreMode::Cas(1_234_567), b"k", 0, 0, b"w"),
        StoreOutcome::Stored
    );
    // A failed store returns no CAS.
    assert_eq!(
        s.store_cas(StoreMode::Add, b"k", 0, 0, b"v", Some(9)),
        (StoreOutcome::NotStored, 0)
    );
}

#[test]
fn add_replace_append_prepend() {
    let (s, clock) = store();
    assert_eq!(
        s.store(StoreMode::Replace, b"k", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Append, b"k", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Add, b"k", 7, 100, b"mid"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Add, b"k", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Append, b"k", 1, 5, b">"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k", 2, 6, b"<"),
        StoreOutcome::Stored
    );
    let i = item(&s, b"k");
    assert_eq!(i.value(), b"<mid>");
    assert_eq!(i.flags(), 7, "append/prepend keep flags");
    assert_eq!(i.exptime(), T0 + 100, "and the TTL");
    assert_eq!(
        s.store(StoreMode::Replace, b"k", 9, 0, b"r"),
        StoreOutcome::Stored
    );
    assert_eq!(item(&s, b"k").flags(), 9);
    assert_eq!(item(&s, b"k").exptime(), 0);
    set(&s, b"t", 0, 50, b"v");
    clock.advance(50);
    assert_eq!(
        s.store(StoreMode::Add, b"t", 0, 0, b"again"),
        StoreOutcome::Stored,
        "expired counts as absent"
    );
    assert_eq!(
        s.store(StoreMode::Replace, b"gone", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
}

#[test]
fn a_refused_add_touches_an_old_item() {
    let (s, clock) = store();
    set(&s, b"k", 0, 0, b"v");
    clock.advance(30);
    s.store(StoreMode::Add, b"k", 0, 0, b"x");
    assert_eq!(item(&s, b"k").last_access(), T0, "less than a minute old");
    clock.advance(40);
    s.store(StoreMode::Add, b"k", 0, 0, b"x");
    assert_eq!(item(&s, b"k").last_access(), T0 + 70);
}

/// memcached 1.6.18 with `-I 1m`: a set 1 byte over fails and removes the old value; add,
/// replace and append over the limit fail and keep it; an append whose result would be too
/// large is NOT_STORED.
#[test]
fn item_size_limit_like_memcached() {
    const M: usize = 1 << 20;
    let (s, _c) = store_with(64 << 20, M);
    let big = vec![b'x'; M];
    // 57 bytes of header + key + value + 2 (+ 4 with flags) is the accounted size.
    set(&s, b"a", 0, 0, &big[..M - 60]);
    assert_eq!(
        s.store(StoreMode::Set, b"a", 0, 0, &big[..M - 59]),
        StoreOutcome::TooLarge
    );
    assert!(
        value(&s, b"a").is_none(),
        "a failed set removes the old value"
    );
    assert_eq!(
        s.store(StoreMode::Set, b"a", 1, 0, &big[..M - 63]),
        StoreOutcome::TooLarge,
        "non-zero flags take 4 bytes"
    );
    set(&s, b"a", 1, 0, &big[..M - 64]);
    set(&s, b"c", 0, 0, b"c");
    for mode in [StoreMode::Add, StoreMode::Replace, StoreMode::Append] {
        assert_eq!(s.store(mode, b"c", 0, 0, &big), StoreOutcome::TooLarge);
        assert_eq!(
            value(&s, b"c").unwrap(),
            b"c",
            "{mode:?} keeps the old value"
        );
    }
    set(&s, b"j", 0, 0, &big[..M - 1000]);
    assert_eq!(
        s.store(StoreMode::Append, b"j", 0, 0, &big[..2000]),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"j", 0, 0, &big[..500]),
        StoreOutcome::Stored
    );
    assert_eq!(value(&s, b"j").unwrap().len(), M - 500);
    let long_key = vec![b'k'; MAX_KEY_LEN + 1];
    assert_eq!(
        s.store(StoreMode::Set, &long_key, 0, 0, b"v"),
        StoreOutcome::TooLarge
    );
    assert!(s.get(&long_key).hit().is_none());
}

/// An item keeps its data length in 32 bits: beyond that the store refuses the value even when
/// the configured item limit (up to half the memory limit) would allow it.
#[test]
fn data_beyond_32_bit_lengths_is_too_large() {
    let (s, _c) = store_with(64 << 20, usize::MAX);
    assert!(!s.too_large(b"k", 1 << 20, 0));
    assert!(!s.too_large(b"k", MAX_DATA_LEN - 1, 0));
    assert!(s.too_large(b"k", MAX_DATA_LEN, 0));
    assert!(s.too_large(b"", MAX_DATA_LEN + 1, 0));
}

/// memcached 1.6.18: `set n 3 0 3 100`, `decr n 1` → 99, value `99 `; `incr n 1000` → 1099
/// (value grows); `decr n 5000` → 0, value `0   `.
#[test]
fn incr_decr_like_memcached() {
    let (s, _c) = store();
    assert_eq!(s.incr_decr(b"n", true, 1), ArithOutcome::NotFound);
    set(&s, b"n", 3, 100, b"100");
    assert_eq!(s.incr_decr(b"n", false, 1), ArithOutcome::Value(99));
    assert_eq!(value(&s, b"n").unwrap(), b"99 ");
    assert_eq!(s.incr_decr(b"n", true, 1000), ArithOutcome::Value(1099));
    assert_eq!(value(&s, b"n").unwrap(), b"1099");
    assert_eq!(s.incr_decr(b"n", false, 5000), ArithOutcome::Value(0));
    assert_eq!(value(&s, b"n").unwrap(), b"0   ");
    let i = item(&s, b"n");
    assert_eq!(
        (i.flags(), i.exptime()),
        (3, T0 + 100),
        "flags and TTL kept"
    );
    set(&s, b"w", 0, 0, b"18446744073709551615");
    assert_eq!(s.incr_decr(b"w", true, 2), ArithOutcome::Value(1), "wraps");
    assert_eq!(value(&s, b"w").unwrap(), b"1                   ");
    set(&s, b"w", 0, 0, b"18446744073709551616");
    assert_eq!(s.incr_decr(b"w", true, 1), ArithOutcome::NonNumeric);
    set(&s, b"w", 0, 0, b"12 abc");
    assert_eq!(s.incr_decr(b"w", true, 1), ArithOutcome::Value(13));
    assert_eq!(value(&s, b"w").unwrap(), b"13    ");
    set(&s, b"t", 0, 0, b"12a");
    assert_eq!(s.incr_decr(b"t", true, 1), ArithOutcome::NonNumeric);
    set(&s, b"e", 0, 0, b"");
    assert_eq!(s.incr_decr(b"e", true, 1), ArithOutcome::NonNumeric);
    set(&s, b"m", 0, 0, b"-1");
    assert_eq!(s.incr_decr(b"m", false, 1), ArithOutcome::NonNumeric);
}

#[test]
fn incr_of_an_expired_counter_is_not_found() {
    let (s, clock) = store();
    set(&s, b"x", 0, 10, b"1");
    clock.advance(10);
    assert_eq!(s.incr_decr(b"x", true, 1), ArithOutcome::NotFound);
    assert_eq!(s.stats().get_expired, 1);
}

#[test]
fn incr_in_place_keeps_the_fetched_state_growth_resets_it() {
    let (s, _c) = store();
    set(&s, b"n", 0, 0, b"10");
    s.get(b"n");
    s.incr_decr(b"n", true, 5);
    assert!(item(&s, b"n").fetched(), "rewritten in place");
    let total = s.stats().total_items;
    s.incr_decr(b"n", true, 100);
    assert!(!item(&s, b"n").fetched(), "a longer number is a new item");
    assert_eq!(s.stats().total_items, total + 1);
}

#[test]
fn touch_and_gat() {
    let (s, clock) = store();
    assert!(!s.touch(b"k", 10));
    set(&s, b"k", 0, 10, b"v");
    assert!(s.touch(b"k", 100));
    assert!(item(&s, b"k").fetched(), "touch is a fetch in memcached");
    clock.advance(50);
    assert!(value(&s, b"k").is_some(), "the new TTL counts");
    let Lookup::Hit(i) = s.get_and_touch(b"k", 0) else {
        panic!()
    };
    assert_eq!(i.value(), b"v");
    assert_eq!(i.exptime(), 0, "gat 0 makes it permanent");
    // A past exptime: this touch succeeds, the item is gone afterwards (memcached: TOUCHED,
    // then a miss).
    assert!(s.touch(b"k", -1));
    assert!(matches!(s.get(b"k"), Lookup::Expired));
    set(&s, b"g", 0, 0, b"v");
    assert!(s.get_and_touch(b"g", -1).is_hit());
    assert!(s.get(b"g").hit().is_none());
    assert!(matches!(s.get_and_touch(b"none", 5), Lookup::Miss));
}

/// memcached's segmented LRU: the first fetch only marks an item fetched, later ones move
/// its last-access time (checked with `me` on memcached 1.6.18).
#[test]
fn last_access_follows_memcached() {
    let (s, clock) = store();
    set(&s, b"k", 0, 0, b"v");
    clock.advance(2);
    s.get(b"k");
    assert_eq!(item(&s, b"k").last_access(), T0);
    assert!(item(&s, b"k").fetched());
    clock.advance(1);
    s.get(b"k");
    assert_eq!(item(&s, b"k").last_access(), T0 + 3);
    clock.advance(1);
    s.peek(b"k");
    assert_eq!(item(&s, b"k").last_access(), T0 + 3, "peek records nothing");
}

#[test]
fn delete_live_expired_and_missing() {
    let (s, clock) = store();
    set(&s, b"k", 0, 0, b"v");
    set(&s, b"e", 0, 5, b"v");
    assert!(s.delete(b"k"));
    assert!(!s.delete(b"k"));
    clock.advance(5);
    assert!(!s.delete(b"e"), "an expired item is not found");
    assert_eq!(s.stats().get_expired, 1);
    assert!(!s.delete(b"never"));
}

#[test]
fn flush_immediate_keeps_later_writes_of_the_same_second() {
    let (s, _clock) = store();
    set(&s, b"a", 0, 0, b"1");
    set(&s, b"b", 0, 0, b"1");
    s.flush_all(0);
    set(&s, b"c", 0, 0, b"2");
    // The background sweep may already have removed it: flushed either way.
    assert!(matches!(s.get(b"a"), Lookup::Flushed | Lookup::Miss));
    assert!(value(&s, b"b").is_none());
    assert!(
        value(&s, b"c").is_some(),
        "stored after the flush, same second"
    );
    s.settle();
    let st = s.stats();
    assert_eq!(st.curr_items, 1, "flushed items are reclaimed: {st:?}");
    assert_eq!(st.crawler_reclaimed + st.get_flushed, 2, "{st:?}");
    s.flush_all(-5);
    assert!(value(&s, b"c").is_none(), "negative delay is immediate");
}

/// memcached 1.6.18: `flush_all 3` empties the cache after 2 seconds (oldest_live is the
/// deadline minus one), items stored during that second go too, later items survive.
#[test]
fn flush_delayed_like_memcached() {
    let (s, clock) = store();
    set(&s, b"a", 0, 0, b"1");
    s.flush_all(3);
    assert!(value(&s, b"a").is_some());
    clock.advance(1);
    assert!(value(&s, b"a").is_some());
    clock.advance(1);
    assert!(matches!(s.get(b"a"), Lookup::Flushed));
    set(&s, b"b", 0, 0, b"2");
    assert!(
        value(&s, b"b").is_none(),
        "stored in the flush second: flushed"
    );
    clock.advance(1);
    set(&s, b"c", 0, 0, b"3");
    assert!(value(&s, b"c").is_some());
    clock.advance(1);
    assert!(value(&s, b"c").is_some());
}

/// memcached 1.6.18: after `flush_all 1`, a set in the same second is invisible, a set in
/// the next second is kept.
#[test]
fn flush_all_1_drops_the_rest_of_the_second() {
    let (s, clock) = store();
    set(&s, b"d", 0, 0, b"1");
    s.flush_all(1);
    assert!(value(&s, b"d").is_none());
    set(&s, b"e", 0, 0, b"1");
    assert!(value(&s, b"e").is_none());
    clock.advance(1);
    set(&s, b"f", 0, 0, b"1");
    assert!(value(&s, b"f").is_some());
}

#[test]
fn a_later_flush_replaces_a_pending_one() {
    let (s, clock) = store();
    set(&s, b"a", 0, 0, b"1");
    s.flush_all(10);
    s.flush_all(100);
    clock.advance(20);
    assert!(value(&s, b"a").is_some(), "the 10 s flush was replaced");
    clock.advance(80);
    assert!(value(&s, b"a").is_none());

    // An immediate flush cancels a pending delayed one.
    set(&s, b"b", 0, 0, b"1");
    s.flush_all(10);
    s.flush_all(0);
    set(&s, b"c", 0, 0, b"1");
    clock.advance(20);
    assert!(value(&s, b"b").is_none());
    assert!(value(&s, b"c").is_some(), "no delayed flush left");

    // A flush that took effect stays in effect when a new delay is set.
    set(&s, b"d", 0, 0, b"1");
    s.flush_all(5);
    clock.advance(5);
    s.flush_all(1000);
    assert!(value(&s, b"d").is_none(), "no resurrection");
    // Absolute deadlines work too.
    set(&s, b"e", 0, 0, b"1");
    s.flush_all((s.now() + 3_000_000) as i64);
    assert!(value(&s, b"e").is_some());
    clock.advance(3_000_000);
    assert!(value(&s, b"e").is_none());
}

#[test]
fn eviction_keeps_the_budget_and_always_admits_writes() {
    let (s, _c) = store_with(2 << 20, 1 << 20);
    let v = vec![b'v'; 1000];
    for i in 0..10_000 {
        let key = format!("k{i}");
        set(&s, key.as_bytes(), 0, if i % 2 == 0 { 0 } else { 1000 }, &v);
        assert!(
            value(&s, key.as_bytes()).is_some(),
            "a fresh write is readable at once (LRU, no admission filter)"
        );
    }
    let st = s.stats();
    assert!(st.bytes <= 2 << 20, "{st:?}");
    assert!(s.inner.cache.weighted_size() <= 2 << 20);
    assert!(st.evictions > 8_000, "{st:?}");
    assert_eq!(st.evicted_unfetched, st.evictions);
    assert!(st.evicted_nonzero > 0 && st.evicted_nonzero < st.evictions);
    assert_eq!(st.total_items, 10_000);
    assert_eq!(st.curr_items, 10_000 - st.evictions);
    let charged: u64 = s.metadump_items().map(|i| charge(&i)).sum();
    assert_eq!(
        st.bytes, charged,
        "bytes is the charge of the resident items"
    );
    // The most recent writes are the ones kept.
    assert!(value(&s, b"k9999").is_some());
    assert!(value(&s, b"k0").is_none());
}

#[test]
fn charges_are_segment_bytes_plus_the_index_share() {
    // 16-byte header + key + value, padded to 4; 4 more bytes only with client flags, 4 only
    // with an expiry.
    assert_eq!(item_charge(12, 100), 128 + ITEM_OVERHEAD);
    assert_eq!(item_charge(12, 1000), 1028 + ITEM_OVERHEAD);
    assert_eq!(item_charge(1, 5), 24 + ITEM_OVERHEAD);
    let (s, _c) = store();
    set(&s, b"with-flags", 1, 0, b"v");
    let i = item(&s, b"with-flags");
    assert_eq!(charge(&i), 32 + ITEM_OVERHEAD);
    set(&s, b"with-both", 1, 100, b"v");
    assert_eq!(charge(&item(&s, b"with-both")), 36 + ITEM_OVERHEAD);
}

#[test]
fn gauges_follow_writes_and_removals() {
    let (s, _c) = store();
    set(&s, b"k", 0, 0, b"12345");
    let one = item_charge(1, 5);
    let st = s.stats();
    assert_eq!((st.curr_items, st.bytes, st.total_items), (1, one, 1));
    set(&s, b"k", 0, 0, b"1");
    s.touch(b"k", 100);
    let st = s.stats();
    // The touch gave the item an expiry, and so its 4-byte field (it was rewritten with it).
    assert_eq!(
        (st.curr_items, st.bytes, st.total_items),
        (1, item_charge(1, 1) + 4, 2)
    );
    s.delete(b"k");
    let st = s.stats();
    assert_eq!((st.curr_items, st.bytes), (0, 0));
    assert_eq!(st.limit_maxbytes, 64 << 20);
}

#[test]
fn memory_limit_changes_apply_to_items_already_stored() {
    let (s, _c) = store_with(4 << 20, 1 << 20);
    let v = vec![b'v'; 1000];
    // 3 100 items of ~1 046 charged bytes: over 3 MiB, under the 4 MiB limit.
    for i in 0..3100 {
        set(&s, format!("k{i}").as_bytes(), 0, 0, &v);
    }
    let full = s.stats();
    assert!(full.bytes > 3 << 20, "{full:?}");
    s.set_memory_limit(1 << 20);
    s.settle();
    let st = s.stats();
    assert_eq!(st.limit_maxbytes, 1 << 20);
    assert!(st.bytes <= 1 << 20, "re-weighed and evicted down: {st:?}");
    assert!(st.curr_items > 500, "{st:?}");
    s.set_memory_limit(8 << 20);
    s.settle();
    for i in 0..6000 {
        set(&s, format!("n{i}").as_bytes(), 0, 0, &v);
    }
    let st = s.stats();
    assert!(
        st.bytes > 6 << 20 && st.bytes <= 8 << 20,
        "room up to the raised limit: {st:?}"
    );
}

#[test]
fn keys_and_values_do_not_pin_the_callers_buffer() {
    let (s, _c) = store();
    let big = Bytes::from(vec![b'x'; 1 << 20]);
    let key = big.slice(0..10);
    let val = big.slice(10..20);
    s.store(StoreMode::Set, &key, 0, 0, &val);
    s.store(StoreMode::Append, &key, 0, 0, &big.slice(20..30));
    drop((key, val));
    // The only owner of the megabyte is `big`: had the store kept a slice, this would fail.
    assert!(big.is_unique());
    // And reads share the item's memory instead of copying it.
    let i = item(&s, &[b'x'; 10]);
    let v = i.value_bytes();
    assert_eq!(v.len(), 20);
    assert_eq!(v.as_ptr(), i.value().as_ptr());
}

#[test]
fn metadump_lists_live_items_in_memcached_format() {
    let (s, clock) = store();
    set(&s, b"a/b%c", 5, 100, b"xyz");
    set(&s, b"plain", 0, 0, b"x");
    set(&s, b"dead", 0, 1, b"x");
    set(&s, b"edge", 0, 2, b"x");
    s.get(b"plain");
    let cas = |k: &[u8]| item(&s, k).cas();
    let cases = [cas(b"a/b%c"), cas(b"edge"), cas(b"plain")];
    clock.advance(2);
    let mut lines = Vec::new();
    s.metadump(|l| {
        lines.push(String::from_utf8(l.to_vec()).unwrap());
        true
    });
    lines.sort();
    // Same lines memcached 1.6.18 printed for these items (its clock aside).
    assert_eq!(
        lines,
        vec![
            format!(
                "key=a%2Fb%25c exp={} la={T0} cas={} fetch=no cls=1 size=71\n",
                T0 + 100,
                cases[0]
            ),
            // exptime == now: crawler.c lists it (`exptime < current_time` is dead there).
            format!(
                "key=edge exp={} la={T0} cas={} fetch=no cls=1 size=64\n",
                T0 + 2,
                cases[1]
            ),
            format!(
                "key=plain exp=-1 la={T0} cas={} fetch=yes cls=1 size=65\n",
                cases[2]
            ),
        ]
    );
    let mut n = 0;
    s.metadump(|_| {
        n += 1;
        false
    });
    assert_eq!(n, 1, "stops when told");
    s.flush_all(0);
    assert_eq!(
        s.metadump_items().count(),
        0,
        "flushed items are not listed"
    );
}

#[test]
fn meta_debug_reports_like_memcached() {
    let (s, clock) = store();
    set(&s, b"k", 7, 100, b"hi");
    let d = s.meta_debug(b"k").unwrap();
    // memcached 1.6.18: `ME k exp=-100 la=0 cas=.. fetch=no cls=1 size=66`.
    assert_eq!(
        (d.exp, d.la, d.fetched, d.cls, d.size),
        (-100, 0, false, 1, 66)
    );
    clock.advance(3);
    let d = s.meta_debug(b"k").unwrap();
    assert_eq!((d.exp, d.la), (-97, 3));
    assert!(!item(&s, b"k").fetched(), "me records no access");
    set(&s, b"p", 0, 0, b"v");
    assert_eq!(s.meta_debug(b"p").unwrap().exp, -1);
    assert!(s.meta_debug(b"zz").is_none());
}

#[test]
fn concurrent_incr_is_exact() {
    let (s, _c) = store();
    let s = Arc::new(s);
    set(&s, b"n", 0, 0, b"0");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    assert!(matches!(s.incr_decr(b"n", true, 1), ArithOutcome::Value(_)));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(value(&s, b"n").unwrap(), b"80000");
}

#[test]
fn concurrent_cas_loops_and_appends_lose_no_update() {
    let (s, _c) = store();
    let s = Arc::new(s);
    set(&s, b"c", 0, 0, b"0");
    set(&s, b"a", 0, 0, b"");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    s.store(StoreMode::Append, b"a", 0, 0, b"x");
                    // A cas loop: read, add one, write back only if unchanged.
                    loop {
                        let i = s.get(b"c").hit().unwrap();
                        let n = parse_counter(i.value()).unwrap();
                        let next = (n + 1).to_string();
                        match s.store(StoreMode::Cas(i.cas()), b"c", 0, 0, next.as_bytes()) {
                            StoreOutcome::Stored => break,
                            StoreOutcome::Exists => continue,
                            other => panic!("{other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(value(&s, b"c").unwrap(), b"8000");
    assert_eq!(value(&s, b"a").unwrap().len(), 8000);
}

/// Sets racing with cas: a successful cas must be based on the version it replaced, so no two
/// successful cas operations may have read the same CAS unique, and the final value is a set's
/// value plus the cas increments made on top of it.
#[test]
fn set_racing_with_cas_stays_serializable() {
    let (s, _c) = store();
    let s = Arc::new(s);
    set(&s, b"k", 0, 0, b"0");
    let casers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut won = Vec::new();
                for _ in 0..5000 {
                    let i = s.get(b"k").hit().unwrap();
                    let n = parse_counter(i.value()).unwrap();
                    let next = (n + 1).to_string();
                    if s.store(StoreMode::Cas(i.cas()), b"k", 0, 0, next.as_bytes())
                        == StoreOutcome::Stored
                    {
                        won.push(i.cas());
                    }
                }
                won
            })
        })
        .collect();
    let setter = {
        let s = s.clone();
        std::thread::spawn(move || {
            for _ in 0..2000 {
                s.store(StoreMode::Set, b"k", 0, 0, b"1000000");
            }
        })
    };
    let mut based_on = std::collections::HashSet::new();
    for t in casers {
        for cas in t.join().unwrap() {
            assert!(
                based_on.insert(cas),
                "two cas writes replaced the same version"
            );
        }
    }
    setter.join().unwrap();
    let n = parse_counter(&value(&s, b"k").unwrap()).unwrap();
    assert!(
        n <= based_on.len() as u64 || (1_000_000..=1_000_000 + based_on.len() as u64).contains(&n),
        "{n}"
    );
}

#[test]
fn expired_items_are_reclaimed_by_moka_and_counted() {
    // moka runs on real time: an item stored already expired is dropped by moka a second later.
    let (s, _c) = store();
    set(&s, b"dead", 0, -1, b"v");
    // moka's timer wheel has ~1 s buckets: wait for it rather than for a fixed time.
    let mut st = s.stats();
    for _ in 0..50 {
        if st.reclaimed > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        st = s.stats();
    }
    assert_eq!(st.reclaimed, 1, "{st:?}");
    assert_eq!(st.expired_unfetched, 1);
    assert_eq!(st.curr_items, 0);
}

#[test]
fn crawl_reclaims_expired_items() {
    let (s, clock) = store();
    set(&s, b"a", 0, 10, b"v");
    set(&s, b"b", 0, 0, b"v");
    clock.advance(10);
    s.crawl();
    s.settle();
    let st = s.stats();
    assert_eq!(
        (st.crawler_reclaimed, st.expired_unfetched),
        (1, 1),
        "{st:?}"
    );
    assert_eq!(st.curr_items, 1);
}

#[test]
fn an_item_stored_without_an_expiry_is_rewritten_once_to_take_one() {
    let (s, clock) = store();
    let (_, cas) = s.store_cas(StoreMode::Set, b"k", 9, 0, b"value", Some(77));
    assert_eq!(cas, 77);
    s.get(b"k");
    clock.advance(5);
    s.get(b"k");
    let before = item(&s, b"k");
    assert_eq!(
        (before.exptime(), before.footprint()),
        (0, 28),
        "16 + 4 flags + 6, padded"
    );
    let total = s.stats().total_items;

    // touch: no room for an expiry, so the item moves, with everything else it had.
    assert!(s.touch(b"k", 100));
    let moved = item(&s, b"k");
    assert!(!ItemRef::ptr_eq(&before, &moved), "rewritten elsewhere");
    assert_eq!(
        (moved.value(), moved.flags(), moved.cas(), moved.exptime()),
        (&b"value"[..], 9, 77, T0 + 105)
    );
    assert_eq!((moved.fetched(), moved.last_access()), (true, T0 + 5));
    assert_eq!(moved.footprint(), 32, "now with the expiry field");
    assert_eq!(
        before.value(),
        b"value",
        "a reader's old handle still reads"
    );
    let st = s.stats();
    assert_eq!(
        (st.curr_items, st.total_items),
        (1, total),
        "not a new item"
    );
    assert_eq!(st.bytes, charge(&moved));

    // From now on in place: gat, meta T, and back to never.
    let gat = s.get_and_touch(b"k", 200).hit().unwrap();
    assert!(ItemRef::ptr_eq(&gat, &moved) && gat.exptime() == T0 + 205);
    let t = MetaGetOpts {
        ttl: Some(50),
        ..Default::default()
    };
    let hit = s.meta_get(b"k", &t).unwrap();
    assert!(ItemRef::ptr_eq(&hit.item, &moved));
    assert_eq!((hit.ttl, moved.exptime()), (Some(50), T0 + 55));
    assert!(s.get_and_touch(b"k", 0).is_hit());
    assert_eq!(item(&s, b"k").exptime(), 0);
    assert!(ItemRef::ptr_eq(&item(&s, b"k"), &moved));

    // meta T and gat on items without an expiry move them too, and return the moved item.
    set(&s, b"m", 0, 0, b"v");
    let hit = s.meta_get(b"m", &t).unwrap();
    assert_eq!((hit.ttl, hit.item.exptime()), (Some(50), T0 + 55));
    assert!(ItemRef::ptr_eq(&hit.item, &item(&s, b"m")));
    set(&s, b"g", 0, 0, b"v");
    let gat = s.get_and_touch(b"g", -1).hit().unwrap();
    assert_eq!(
        gat.exptime(),
        item::EXPIRED,
        "the read sees it; the next does not"
    );
    assert!(!s.get(b"g").is_hit());
    assert_eq!(s.stats().curr_items, 2);
}
