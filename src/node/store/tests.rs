//! Unit tests of the store's memcached semantics, with a manual clock.

use std::sync::Arc;

use super::*;
use crate::node::clock::ManualClock;

const T0: u64 = 1_700_000_000;

fn store() -> (Store, Arc<ManualClock>) {
    store_with(64 << 20, 1 << 20)
}

fn store_with(memory: u64, item: usize) -> (Store, Arc<ManualClock>) {
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

fn value(s: &Store, key: &[u8]) -> Option<Vec<u8>> {
    match s.get(key) {
        Lookup::Hit(i) => Some(i.value().to_vec()),
        _ => None,
    }
}

#[test]
fn exptime_forms() {
    let (s, clock) = store();
    assert_eq!(
        s.store(StoreMode::Set, b"rel", 0, 100, b"a"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Set, b"edge", 0, 2_592_000, b"b"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Set, b"abs", 0, (T0 + 50) as i64, b"c"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Set, b"neg", 0, -1, b"d"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Set, b"past", 0, (T0 - 1) as i64, b"e"),
        StoreOutcome::Stored
    );
    assert!(value(&s, b"neg").is_none());
    assert!(value(&s, b"past").is_none());
    clock.advance(50);
    assert!(value(&s, b"abs").is_none(), "absolute deadline reached");
    assert!(value(&s, b"rel").is_some());
    clock.advance(50);
    assert!(matches!(s.get(b"rel"), Lookup::Expired));
    clock.advance(2_592_000);
    assert!(value(&s, b"edge").is_none(), "30 days is still relative");
}

#[test]
fn set_over_an_expired_negative_removes_the_old_value() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"old");
    s.store(StoreMode::Set, b"k", 0, -1, b"new");
    assert!(value(&s, b"k").is_none());
}

#[test]
fn cas_is_unique_per_modification_and_checked() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"1");
    let Lookup::Hit(a) = s.get(b"k") else {
        panic!()
    };
    s.store(StoreMode::Set, b"k", 0, 0, b"2");
    let Lookup::Hit(b) = s.get(b"k") else {
        panic!()
    };
    assert_ne!(a.cas(), b.cas());
    assert_eq!(
        s.store(StoreMode::Cas(a.cas()), b"k", 0, 0, b"x"),
        StoreOutcome::Exists
    );
    assert_eq!(
        s.store(StoreMode::Cas(b.cas()), b"k", 0, 0, b"x"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Cas(1), b"nokey", 0, 0, b"x"),
        StoreOutcome::NotFound
    );
    // touch keeps the CAS, incr changes it.
    let Lookup::Hit(c) = s.get(b"k") else {
        panic!()
    };
    assert!(s.touch(b"k", 100));
    let Lookup::Hit(d) = s.get(b"k") else {
        panic!()
    };
    assert_eq!(c.cas(), d.cas());
}

#[test]
fn explicit_cas_from_meta_e() {
    let (s, _c) = store();
    let opts = MetaSetOpts {
        mode: StoreMode::Set,
        flags: 3,
        ttl: 0,
        compare_cas: None,
        new_cas: Some(1_234_567),
        invalidate: false,
        vivify_on_append: None,
    };
    assert_eq!(
        s.meta_set(b"k", b"v", &opts),
        (StoreOutcome::Stored, 1_234_567)
    );
    let Lookup::Hit(i) = s.get(b"k") else {
        panic!()
    };
    assert_eq!(i.cas(), 1_234_567);
    assert_eq!(i.flags(), 3);
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
        s.store(StoreMode::Add, b"k", 7, 100, b"mid"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Add, b"k", 0, 0, b"x"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        s.store(StoreMode::Append, b"k", 0, 0, b">"),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Prepend, b"k", 0, 0, b"<"),
        StoreOutcome::Stored
    );
    let Lookup::Hit(i) = s.get(b"k") else {
        panic!()
    };
    assert_eq!(i.value(), b"<mid>");
    assert_eq!(i.flags(), 7, "append/prepend keep flags");
    assert_eq!(i.exptime(), T0 + 100, "and the TTL");
    clock.advance(101);
    assert_eq!(
        s.store(StoreMode::Add, b"k", 0, 0, b"again"),
        StoreOutcome::Stored,
        "expired counts as absent"
    );
}

#[test]
fn too_large_items_are_refused_including_by_append() {
    let (s, _c) = store_with(64 << 20, 1024);
    let big = vec![b'x'; 1000];
    assert_eq!(
        s.store(StoreMode::Set, b"k", 0, 0, &big),
        StoreOutcome::TooLarge
    );
    assert_eq!(
        s.store(StoreMode::Set, b"k", 0, 0, &big[..900]),
        StoreOutcome::Stored
    );
    assert_eq!(
        s.store(StoreMode::Append, b"k", 0, 0, &big[..100]),
        StoreOutcome::TooLarge
    );
    assert_eq!(value(&s, b"k").unwrap().len(), 900);
}

#[test]
fn incr_decr_rules() {
    let (s, _c) = store();
    assert_eq!(s.incr_decr(b"n", true, 1), ArithOutcome::NotFound);
    s.store(StoreMode::Set, b"n", 5, 0, b"18446744073709551615");
    assert_eq!(
        s.incr_decr(b"n", true, 2),
        ArithOutcome::Value(1),
        "wraps at 2^64"
    );
    s.store(StoreMode::Set, b"n", 5, 0, b"100");
    assert_eq!(s.incr_decr(b"n", false, 1), ArithOutcome::Value(99));
    assert_eq!(
        value(&s, b"n").unwrap(),
        b"99 ",
        "memcached pads a shorter number in place"
    );
    assert_eq!(
        s.incr_decr(b"n", false, 1000),
        ArithOutcome::Value(0),
        "decr floors at 0"
    );
    assert_eq!(s.incr_decr(b"n", true, 5), ArithOutcome::Value(5));
    let Lookup::Hit(i) = s.get(b"n") else {
        panic!()
    };
    assert_eq!(i.flags(), 5, "flags kept");
    s.store(StoreMode::Set, b"t", 0, 0, b"12a");
    assert_eq!(s.incr_decr(b"t", true, 1), ArithOutcome::NonNumeric);
    s.store(StoreMode::Set, b"e", 0, 0, b"");
    assert_eq!(s.incr_decr(b"e", true, 1), ArithOutcome::NonNumeric);
}

#[test]
fn flush_immediate_and_delayed() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"a", 0, 0, b"1");
    s.flush_all(0);
    assert!(matches!(s.get(b"a"), Lookup::Flushed | Lookup::Miss));
    s.store(StoreMode::Set, b"b", 0, 0, b"2");
    assert!(value(&s, b"b").is_some(), "stored after the flush");
    s.flush_all(10);
    assert!(value(&s, b"b").is_some());
    clock.advance(9);
    assert!(value(&s, b"b").is_some());
    clock.advance(1);
    assert!(value(&s, b"b").is_none(), "existed at the deadline");
    s.store(StoreMode::Set, b"c", 0, 0, b"3");
    assert!(value(&s, b"c").is_some(), "stored after the deadline");
}

#[test]
fn meta_get_vivify_recache_and_stale_tokens() {
    let (s, clock) = store();
    let viv = MetaGetOpts {
        vivify: Some(30),
        ..Default::default()
    };
    let first = s.meta_get(b"k", &viv).expect("vivified");
    assert!(first.won && !first.token_sent_before);
    let second = s.meta_get(b"k", &viv).expect("still there");
    assert!(!second.won && second.token_sent_before, "Z for the others");

    // Recache: win when less than R seconds remain, once.
    s.store(StoreMode::Set, b"r", 0, 100, b"v");
    let rec = MetaGetOpts {
        recache: Some(30),
        ..Default::default()
    };
    assert!(!s.meta_get(b"r", &rec).unwrap().won);
    clock.advance(80);
    let w = s.meta_get(b"r", &rec).unwrap();
    assert!(w.won);
    assert!(s.meta_get(b"r", &rec).unwrap().token_sent_before);

    // Invalidate: stale, and the next reader wins.
    s.store(StoreMode::Set, b"x", 0, 0, b"v");
    let inv = MetaDeleteOpts {
        invalidate: true,
        ..Default::default()
    };
    assert_eq!(s.meta_delete(b"x", &inv), MetaDeleteOutcome::Deleted);
    let a = s.meta_get(b"x", &MetaGetOpts::default()).unwrap();
    assert!(a.stale && a.won);
    let b = s.meta_get(b"x", &MetaGetOpts::default()).unwrap();
    assert!(b.stale && !b.won && b.token_sent_before);
}

#[test]
fn meta_get_reports_previous_access_state_and_updates_ttl() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 0, 100, b"v");
    clock.advance(5);
    let h = s.meta_get(b"k", &MetaGetOpts::default()).unwrap();
    assert!(!h.fetched_before);
    assert_eq!(h.last_access_ago, 5);
    assert_eq!(h.ttl, Some(95));
    let h = s
        .meta_get(
            b"k",
            &MetaGetOpts {
                ttl: Some(500),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(h.fetched_before);
    assert_eq!(h.ttl, Some(500));
}

#[test]
fn meta_set_modes_and_invalidating_cas() {
    let (s, _c) = store();
    let mut o = MetaSetOpts {
        mode: StoreMode::Add,
        flags: 0,
        ttl: 0,
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify_on_append: None,
    };
    let (r, cas) = s.meta_set(b"k", b"1", &o);
    assert_eq!(r, StoreOutcome::Stored);
    assert_eq!(s.meta_set(b"k", b"2", &o).0, StoreOutcome::NotStored);
    o.mode = StoreMode::Set;
    o.compare_cas = Some(cas + 1000);
    assert_eq!(s.meta_set(b"k", b"2", &o).0, StoreOutcome::Exists);
    o.compare_cas = Some(cas);
    assert_eq!(s.meta_set(b"k", b"2", &o).0, StoreOutcome::Stored);
    // An older CAS with I stores, but stale.
    o.compare_cas = Some(1);
    o.invalidate = true;
    assert_eq!(s.meta_set(b"k", b"3", &o).0, StoreOutcome::Stored);
    let Lookup::Hit(i) = s.get(b"k") else {
        panic!()
    };
    assert!(i.stale());
    // Append with autovivify.
    o.mode = StoreMode::Append;
    o.compare_cas = None;
    o.invalidate = false;
    o.vivify_on_append = Some(0);
    assert_eq!(s.meta_set(b"fresh", b"abc", &o).0, StoreOutcome::Stored);
    assert_eq!(value(&s, b"fresh").unwrap(), b"abc");
}

#[test]
fn meta_arith_vivify_and_compare() {
    let (s, _c) = store();
    let mut o = MetaArithOpts {
        incr: true,
        delta: 5,
        vivify: None,
        initial: 10,
        compare_cas: None,
        new_cas: None,
        ttl: None,
    };
    assert_eq!(s.meta_arith(b"c", &o), Err(ArithOutcome::NotFound));
    o.vivify = Some(0);
    assert_eq!(s.meta_arith(b"c", &o).unwrap().value, 10);
    let h = s.meta_arith(b"c", &o).unwrap();
    assert_eq!(h.value, 15);
    o.compare_cas = Some(h.cas + 1);
    assert_eq!(s.meta_arith(b"c", &o), Err(ArithOutcome::Exists));
    o.compare_cas = Some(h.cas);
    o.incr = false;
    o.new_cas = Some(99);
    let h = s.meta_arith(b"c", &o).unwrap();
    assert_eq!((h.value, h.cas), (10, 99));
}

#[test]
fn metadump_and_debug() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"a key", 0, 0, b"v");
    s.store(StoreMode::Set, b"b", 1, 100, b"vv");
    let mut out = Vec::new();
    s.metadump(|l| {
        out.push(String::from_utf8(l.to_vec()).unwrap());
        true
    });
    out.sort();
    assert_eq!(out.len(), 2);
    assert!(
        out[0].starts_with("key=a%20key exp=-1 la=1700000000 cas="),
        "{}",
        out[0]
    );
    assert!(out[0].ends_with(" fetch=no cls=1 size=65\n"), "{}", out[0]);
    assert!(out[1].starts_with("key=b exp=1700000100 "), "{}", out[1]);
    clock.advance(3);
    let d = s.meta_debug(b"b").unwrap();
    assert_eq!(d.exp, -97);
    assert_eq!(d.la, 3);
    assert!(s.meta_debug(b"zz").is_none());
}

#[test]
fn eviction_keeps_the_budget_and_counts() {
    let (s, _c) = store_with(2 << 20, 1 << 20);
    let v = vec![b'v'; 1000];
    for i in 0..10_000 {
        s.store(StoreMode::Set, format!("k{i}").as_bytes(), 0, 0, &v);
    }
    let st = s.stats();
    assert!(st.bytes <= 2 << 20, "{st:?}");
    assert!(st.evictions > 0, "{st:?}");
    assert_eq!(st.total_items, 10_000);
}

#[test]
fn keys_and_values_do_not_pin_the_callers_buffer() {
    let (s, _c) = store();
    let big = bytes::Bytes::from(vec![b'x'; 1 << 20]);
    let key = big.slice(0..10);
    let val = big.slice(10..20);
    s.store(StoreMode::Set, &key, 0, 0, &val);
    drop((key, val));
    // The only owner of the megabyte is `big`: if the store had kept a slice, this would fail.
    assert!(big.is_unique());
}

#[test]
fn concurrent_incr_and_cas_lose_no_update() {
    let (s, _c) = store();
    let s = Arc::new(s);
    s.store(StoreMode::Set, b"n", 0, 0, b"0");
    s.store(StoreMode::Set, b"c", 0, 0, b"0");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    s.incr_decr(b"n", true, 1);
                    // A cas loop: read, add one, write back only if unchanged.
                    loop {
                        let Lookup::Hit(i) = s.get(b"c") else {
                            panic!()
                        };
                        let n: u64 = std::str::from_utf8(i.value())
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap();
                        let next = (n + 1).to_string();
                        if s.store(StoreMode::Cas(i.cas()), b"c", 0, 0, next.as_bytes())
                            == StoreOutcome::Stored
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(value(&s, b"n").unwrap(), b"16000");
    assert_eq!(value(&s, b"c").unwrap(), b"16000");
}
