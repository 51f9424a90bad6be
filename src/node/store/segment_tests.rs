//! Unit tests of what segments change: whole-segment expiry, eviction under churn (the budget
//! holds, an evicted item is never returned), merge of read items on eviction, compaction of
//! mostly dead segments, and concurrent writers and readers checked against a model.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use super::engine::{charge, Cause, BUCKETS};
use super::tests::{item, store, store_with, value};
use super::*;

fn set(s: &Store, key: &[u8], exptime: i64, v: &[u8]) {
    assert_eq!(
        s.store(StoreMode::Set, key, 0, exptime, v),
        StoreOutcome::Stored
    );
}

/// A value that says which key and version it belongs to, and is checkable whole: a torn or
/// misplaced read cannot pass [`check_value`].
fn make_value(key: &[u8], version: u64, len: usize) -> Vec<u8> {
    let head = format!("{}#{version}#{len}#", String::from_utf8_lossy(key));
    let mut v = head.into_bytes();
    let fill = (version % 26) as u8 + b'a';
    while v.len() < len.max(1) {
        v.push(fill);
    }
    v
}

fn check_value(key: &[u8], v: &[u8]) {
    let text = String::from_utf8_lossy(v);
    let mut parts = text.splitn(4, '#');
    let (k, ver, len, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
    assert_eq!(
        k.map(str::as_bytes),
        Some(key),
        "value of another key: {text}"
    );
    let ver: u64 = ver.and_then(|s| s.parse().ok()).expect("version");
    let len: usize = len.and_then(|s| s.parse().ok()).expect("length");
    let fill = (ver % 26) as u8 + b'a';
    let rest = rest.unwrap_or("");
    assert_eq!(v.len(), len.max(v.len() - rest.len()), "cut short: {text}");
    assert!(rest.bytes().all(|b| b == fill), "torn value: {text}");
}

/// Polls `stats` (which runs moka's maintenance) until `done`, for up to 8 s of real time:
/// moka's expiry runs on its own clock.
fn wait_for(s: &Store, done: impl Fn(&StoreStats) -> bool) -> StoreStats {
    let mut st = s.stats();
    for _ in 0..80 {
        if done(&st) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        st = s.stats();
    }
    st
}

#[test]
fn a_segment_whose_items_expired_is_reclaimed_whole_and_touched_items_survive() {
    let (s, clock) = store();
    for i in 0..200 {
        set(&s, format!("short{i}").as_bytes(), 1, b"v");
    }
    set(&s, b"forever", 0, b"v");
    assert!(s.touch(b"short7", 0), "touched to never expire");
    let before = s.inner.segments.count();
    assert_eq!(before, 2, "one segment per TTL bucket");
    clock.advance(1);
    let st = wait_for(&s, |st| st.reclaimed >= 199);
    assert_eq!(st.reclaimed, 199, "{st:?}");
    assert_eq!(st.expired_unfetched, 199);
    assert_eq!(st.curr_items, 2, "{st:?}");
    assert_eq!(value(&s, b"short7").as_deref(), Some(&b"v"[..]));
    assert_eq!(value(&s, b"forever").as_deref(), Some(&b"v"[..]));
    assert!(value(&s, b"short8").is_none());
}

#[test]
fn churn_keeps_the_budget_and_never_returns_an_evicted_item() {
    let limit = 1 << 20;
    let (s, _c) = store_with(limit, 1 << 20);
    let mut version = HashMap::new();
    for i in 0..30_000u64 {
        let key = format!("key{}", i % 12_000);
        let len = 20 + (i as usize * 37) % 400;
        set(&s, key.as_bytes(), 0, &make_value(key.as_bytes(), i, len));
        version.insert(key, i);
        if i % 1000 == 0 {
            let st = s.stats();
            assert!(st.bytes <= limit, "{st:?}");
            assert!(s.inner.cache.weighted_size() <= limit);
        }
    }
    let st = s.stats();
    assert!(st.evictions > 10_000, "{st:?}");
    let mut hits = 0;
    for (key, &ver) in &version {
        if let Lookup::Hit(i) = s.get(key.as_bytes()) {
            check_value(key.as_bytes(), i.value());
            assert!(
                i.value().starts_with(format!("{key}#{ver}#").as_bytes()),
                "only the latest version of {key} is ever readable"
            );
            hits += 1;
        }
    }
    assert_eq!(hits, st.curr_items, "what is counted is what is readable");
    assert_eq!(
        s.metadump_items().count() as u64,
        st.curr_items,
        "metadump lists each resident item once"
    );
    // Registered segments: what moka holds, plus at most one open segment per bucket.
    let seg = s.inner.segment_size as u64;
    assert!(u64::from(s.inner.segments.count()) * seg <= limit + BUCKETS as u64 * seg);
}

#[test]
fn items_read_since_they_were_written_survive_the_eviction_of_their_segment() {
    let (s, _c) = store_with(1 << 20, 1 << 20);
    let hot: Vec<String> = (0..20).map(|i| format!("hot{i}")).collect();
    for k in &hot {
        set(&s, k.as_bytes(), 0, &[b'h'; 100]);
    }
    let v = [b'c'; 200];
    for i in 0..40_000 {
        set(&s, format!("cold{i}").as_bytes(), 0, &v);
        if i % 500 == 0 {
            for k in &hot {
                assert!(
                    s.get(k.as_bytes()).is_hit(),
                    "{k} lost after {i} cold writes"
                );
            }
        }
    }
    let st = s.stats();
    assert!(st.evictions > 30_000, "{st:?}");
    assert!(value(&s, b"cold0").is_none(), "unread items are evicted");
    for k in &hot {
        assert_eq!(value(&s, k.as_bytes()).unwrap(), [b'h'; 100]);
        assert!(item(&s, k.as_bytes()).fetched());
    }
}

#[test]
fn a_mostly_dead_segment_is_compacted_and_its_live_items_kept() {
    let (s, _c) = store();
    let v = [b'x'; 1000];
    // About three 1 MiB segments of items.
    for i in 0..3000 {
        set(&s, format!("k{i}").as_bytes(), 0, &v);
    }
    let segments = s.inner.segments.count();
    assert_eq!(segments, 3);
    let first = s.inner.segments.get(0).unwrap();
    // Overwrite 90 % of the first segment's items: their new versions go to the open one.
    for i in (0..1000).filter(|i| i % 10 != 0) {
        set(&s, format!("k{i}").as_bytes(), 0, b"new");
    }
    s.settle();
    assert!(
        !s.inner
            .segments
            .all()
            .iter()
            .any(|seg| Arc::ptr_eq(seg, &first)),
        "the first segment was compacted away"
    );
    assert!(first.reclaiming.load(Ordering::Relaxed));
    assert_eq!(
        s.inner.segments.count(),
        segments,
        "its live items moved on"
    );
    for i in 0..3000 {
        let want: &[u8] = if i < 1000 && i % 10 != 0 { b"new" } else { &v };
        assert_eq!(value(&s, format!("k{i}").as_bytes()).unwrap(), want, "k{i}");
    }
    let st = s.stats();
    assert_eq!((st.curr_items, st.evictions), (3000, 0), "{st:?}");
    let charged: u64 = s.metadump_items().map(|i| charge(&i)).sum();
    assert_eq!(st.bytes, charged);
}

#[test]
fn flushed_segments_are_not_written_to_or_carried_forward() {
    let (s, _c) = store_with(1 << 20, 1 << 20);
    for i in 0..100 {
        set(&s, format!("old{i}").as_bytes(), 0, b"v");
        s.get(format!("old{i}").as_bytes());
    }
    s.flush_all(0);
    // Churn until every pre-flush segment has been evicted: read items would be carried
    // forward, flushed ones must not be.
    for i in 0..20_000 {
        set(&s, format!("new{i}").as_bytes(), 0, &[b'n'; 200]);
    }
    s.settle();
    for i in 0..100 {
        assert!(value(&s, format!("old{i}").as_bytes()).is_none());
    }
    assert!(value(&s, b"new19999").is_some());
}

/// Many threads, few keys: `set`, `append`, `cas` increments, `incr` and `delete` racing,
/// with a large budget, then the final state checked exactly against what the threads did.
#[test]
fn concurrent_writers_on_few_keys_match_a_model() {
    const THREADS: u64 = 8;
    const OPS: u64 = 1000;
    let (s, _c) = store();
    s.store(StoreMode::Set, b"log", 0, 0, b"");
    s.store(StoreMode::Set, b"cas", 0, 0, b"0");
    s.store(StoreMode::Set, b"incr", 0, 0, b"0");
    let cas_wins = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (s, cas_wins) = (&s, &cas_wins);
            scope.spawn(move || {
                for n in 0..OPS {
                    let token = format!("{t}.{n};");
                    assert_eq!(
                        s.store(StoreMode::Append, b"log", 0, 0, token.as_bytes()),
                        StoreOutcome::Stored
                    );
                    assert!(matches!(
                        s.incr_decr(b"incr", true, 1),
                        ArithOutcome::Value(_)
                    ));
                    // One cas attempt per round; wins are counted.
                    let i = item(s, b"cas");
                    let cur: u64 = std::str::from_utf8(i.value()).unwrap().parse().unwrap();
                    let next = (cur + 1).to_string();
                    if s.store(StoreMode::Cas(i.cas()), b"cas", 0, 0, next.as_bytes())
                        == StoreOutcome::Stored
                    {
                        cas_wins.fetch_add(1, Ordering::Relaxed);
                    }
                    // A private key set, deleted and set again: always consistent.
                    let mine = format!("own{t}");
                    let v = make_value(mine.as_bytes(), n, 10 + (n as usize % 300));
                    s.store(StoreMode::Set, mine.as_bytes(), 0, 0, &v);
                    if n % 3 == 0 {
                        assert!(s.delete(mine.as_bytes()));
                        assert!(value(s, mine.as_bytes()).is_none());
                    } else {
                        assert_eq!(value(s, mine.as_bytes()).unwrap(), v);
                    }
                    // Reads of shared keys are always whole.
                    let log = value(s, b"log").unwrap();
                    assert!(log.is_empty() || log.ends_with(b";"));
                }
            });
        }
    });
    let log = String::from_utf8(value(&s, b"log").unwrap()).unwrap();
    let tokens: Vec<&str> = log.split_terminator(';').collect();
    assert_eq!(tokens.len() as u64, THREADS * OPS, "no append lost");
    for t in 0..THREADS {
        let mine: Vec<u64> = tokens
            .iter()
            .filter_map(|tok| tok.split_once('.'))
            .filter(|(th, _)| *th == t.to_string())
            .map(|(_, n)| n.parse().unwrap())
            .collect();
        assert_eq!(mine, (0..OPS).collect::<Vec<_>>(), "thread {t}'s order");
    }
    assert_eq!(
        value(&s, b"incr").unwrap(),
        (THREADS * OPS).to_string().as_bytes()
    );
    assert_eq!(
        value(&s, b"cas").unwrap(),
        cas_wins.load(Ordering::Relaxed).to_string().as_bytes(),
        "every cas win and only those"
    );
    let st = s.stats();
    let charged: u64 = s.metadump_items().map(|i| charge(&i)).sum();
    assert_eq!(st.bytes, charged, "{st:?}");
    assert_eq!(st.curr_items, s.metadump_items().count() as u64);
}

/// Readers racing writers, evictions, merges and compactions in a tiny cache: every value a
/// reader gets is whole and belongs to its key.
#[test]
fn readers_never_see_a_torn_or_foreign_value_under_eviction_churn() {
    const KEYS: u64 = 64;
    let limit = 256 << 10;
    let (s, _c) = store_with(limit, 64 << 10);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let (s, stop) = (&s, &stop);
            scope.spawn(move || {
                for n in 0..20_000u64 {
                    let key = format!("key{}", (n * 7 + t) % KEYS);
                    let len = 1 + ((n * 131 + t * 17) % 3000) as usize;
                    let v = make_value(key.as_bytes(), n * 8 + t, len);
                    match n % 5 {
                        0 => {
                            s.delete(key.as_bytes());
                        }
                        1 => {
                            if let Lookup::Hit(i) = s.get(key.as_bytes()) {
                                s.store(StoreMode::Cas(i.cas()), key.as_bytes(), 0, 0, &v);
                            }
                        }
                        _ => set(s, key.as_bytes(), if n % 2 == 0 { 0 } else { 100 }, &v),
                    }
                }
                stop.store(true, Ordering::Relaxed);
            });
        }
        for _ in 0..2 {
            let (s, stop) = (&s, &stop);
            scope.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < 10_000_000 {
                    let key = format!("key{}", n % KEYS);
                    if let Lookup::Hit(i) = s.get(key.as_bytes()) {
                        check_value(key.as_bytes(), &i.value_bytes());
                    }
                    n += 1;
                }
            });
        }
    });
    let st = s.stats();
    assert!(st.bytes <= limit, "{st:?}");
    assert!(s.inner.cache.weighted_size() <= limit);
    assert_eq!(st.curr_items, s.metadump_items().count() as u64, "{st:?}");
    for k in 0..KEYS {
        let key = format!("key{k}");
        if let Some(v) = value(&s, key.as_bytes()) {
            check_value(key.as_bytes(), &v);
        }
    }
}

/// Segment ids are reused (last freed, first taken), so an item of a reclaimed segment can
/// share its `Loc` with a new item of the same key in the segment that took the id. A reader,
/// sweep or delete still holding the old item must not unlink the new one: before the fix the
/// stale unlink removed the new item and charged the old segment's `live` a second time (an
/// arithmetic overflow in debug builds, found by a test run).
#[test]
fn a_stale_item_does_not_unlink_the_item_that_took_its_place() {
    let (s, _clock) = store();
    set(&s, b"k", 0, b"old");
    let stale = item(&s, b"k");
    let first = stale.segment().clone();
    assert!(s.delete(b"k"));
    s.inner.reclaim(&first, Cause::Compact);
    set(&s, b"k", 0, b"new");
    let fresh = item(&s, b"k");
    assert_eq!(
        Shared::loc(&fresh),
        Shared::loc(&stale),
        "the test needs the id and offset reused"
    );
    let h = hash(b"k");
    let unlinked = {
        let _g = s.inner.lock(h);
        s.inner.unlink_if_same(h, &stale)
    };
    assert!(!unlinked, "a stale item unlinked the key's new item");
    assert_eq!(value(&s, b"k").as_deref(), Some(&b"new"[..]));
    assert_eq!(s.stats().curr_items, 1);
}
