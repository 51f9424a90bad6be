//! Unit tests of the meta-command semantics. The sequences and expected flags come from running
//! them against memcached 1.6.18 (and, for `E`, `ms … MA N` and `md … x`, from memcached's
//! current source, which 1.6.18 predates).

use super::tests::{item, store, value, T0};
use super::*;

fn get(s: &Store, key: &[u8], opts: MetaGetOpts) -> Option<MetaGetHit> {
    s.meta_get(key, &opts)
}

fn get_in(s: &Store, key: &[u8], opts: MetaGetOpts, order: &[u8]) -> MetaGetHit {
    let extra = MetaExtra {
        order,
        ..Default::default()
    };
    s.meta_get_with(key, &opts, &extra).unwrap()
}

fn set_opts(mode: StoreMode) -> MetaSetOpts {
    MetaSetOpts {
        mode,
        flags: 0,
        ttl: 0,
        compare_cas: None,
        new_cas: None,
        invalidate: false,
        vivify_on_append: None,
    }
}

fn arith_opts() -> MetaArithOpts {
    MetaArithOpts {
        incr: true,
        delta: 1,
        vivify: None,
        initial: 0,
        compare_cas: None,
        new_cas: None,
        ttl: None,
    }
}

fn ms(s: &Store, key: &[u8], v: &[u8], o: MetaSetOpts) -> (StoreOutcome, u64) {
    s.meta_set(key, v, &o)
}

/// memcached: `set k 7 100 2`, `mg k s v t c f l h k` → `VA 2 s2 t100 c.. f7 l0 h0`; a second
/// later `mg k h l` → `h1 l1`.
#[test]
fn mg_reports_the_state_before_this_access() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 7, 100, b"hi");
    let h = get(&s, b"k", MetaGetOpts::default()).unwrap();
    assert_eq!(h.item.value(), b"hi");
    assert_eq!(
        (h.ttl, h.last_access_ago, h.fetched_before),
        (Some(100), 0, false)
    );
    assert!(!h.won && !h.stale && !h.token_sent_before && !h.created);
    clock.advance(1);
    let h = get(&s, b"k", MetaGetOpts::default()).unwrap();
    assert_eq!(
        (h.fetched_before, h.last_access_ago, h.ttl),
        (true, 1, Some(99))
    );
    let h = get(&s, b"k", MetaGetOpts::default()).unwrap();
    assert_eq!(
        h.last_access_ago, 0,
        "the second fetch moved the access time"
    );
    assert!(get(&s, b"none", MetaGetOpts::default()).is_none());
}

/// memcached: `mg u u h` → h0, then `mg u h` → h0 again.
#[test]
fn mg_u_records_nothing() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"u", 0, 0, b"x");
    let u = MetaGetOpts {
        no_bump: true,
        ..Default::default()
    };
    assert!(!get(&s, b"u", u).unwrap().fetched_before);
    assert!(
        !get(&s, b"u", MetaGetOpts::default())
            .unwrap()
            .fetched_before
    );
    assert!(get(&s, b"u", u).unwrap().fetched_before);
}

/// memcached: `mg k t T30` → t100 (then 30); `mg k T50 t` → t50; `mg k R40 T30 t` → t30 without
/// W; `mg k2 T30 R40 t` → t30 W. The CAS is unchanged by T.
#[test]
fn mg_applies_ttl_flags_in_request_order() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"k", 0, 100, b"x");
    let cas = item(&s, b"k").cas();
    let t = |ttl| MetaGetOpts {
        ttl: Some(ttl),
        ..Default::default()
    };
    assert_eq!(get_in(&s, b"k", t(30), b"tT").ttl, Some(100));
    assert_eq!(item(&s, b"k").exptime(), T0 + 30);
    assert_eq!(get_in(&s, b"k", t(50), b"Tt").ttl, Some(50));
    assert_eq!(item(&s, b"k").cas(), cas);
    let rt = MetaGetOpts {
        ttl: Some(30),
        recache: Some(40),
        ..Default::default()
    };
    let h = get_in(&s, b"k", rt, b"RTt");
    assert_eq!((h.ttl, h.won), (Some(30), false));
    s.store(StoreMode::Set, b"k2", 0, 100, b"x");
    let h = get_in(&s, b"k2", rt, b"TRt");
    assert_eq!((h.ttl, h.won), (Some(30), true));
    // The default order is N T R t.
    s.store(StoreMode::Set, b"k3", 0, 100, b"x");
    let h = get(&s, b"k3", rt).unwrap();
    assert_eq!((h.ttl, h.won), (Some(30), true));
    // T0 makes it permanent; a past T expires it after this read.
    assert_eq!(get(&s, b"k3", t(0)).unwrap().ttl, None);
    let h = get(&s, b"k3", t(-1)).unwrap();
    assert_eq!(h.ttl, Some(0));
    assert!(value(&s, b"k3").is_none());
    clock.advance(1);
    assert!(get(&s, b"k", MetaGetOpts::default()).is_some());
}

/// memcached: `mg miss N30 s t v c` → `VA 0 s0 t30 c.. W`; again → `t29 … Z`; `mg k8 T40 N30 t`
/// → t30 W; `mg k7 N30 T40 t` → t40 W; `mg miss2 N0 t` → t-1 W.
#[test]
fn mg_vivifies_a_miss() {
    let (s, clock) = store();
    let n = |ttl| MetaGetOpts {
        vivify: Some(ttl),
        ..Default::default()
    };
    let h = get(&s, b"miss", n(30)).unwrap();
    assert!(h.created && h.won && !h.token_sent_before);
    assert_eq!(
        (h.item.value(), h.item.flags(), h.ttl),
        (&b""[..], 0, Some(30))
    );
    clock.advance(1);
    let h = get(&s, b"miss", n(30)).unwrap();
    assert!(
        !h.created && !h.won && h.token_sent_before,
        "Z for the others"
    );
    assert_eq!(h.ttl, Some(29));
    let nt = MetaGetOpts {
        vivify: Some(30),
        ttl: Some(40),
        ..Default::default()
    };
    assert_eq!(get_in(&s, b"k7", nt, b"NTt").ttl, Some(40));
    assert_eq!(get_in(&s, b"k8", nt, b"TNt").ttl, Some(30));
    assert_eq!(get(&s, b"k9", n(0)).unwrap().ttl, None);
    assert_eq!(get_in(&s, b"k10", n(30), b"tN").ttl, None, "t before N");
    // E gives the created item its CAS.
    let extra = MetaExtra {
        new_cas: Some(777),
        ..Default::default()
    };
    let h = s.meta_get_with(b"e", &n(10), &extra).unwrap();
    assert_eq!(h.item.cas(), 777);
    let st = s.stats();
    assert_eq!(st.total_items, 6);
}

/// memcached: `mg k9 N30 R40 t` → W, then Z, Z: R never wins on the vivified item or after the
/// token went out; R wins when less than R seconds remain.
#[test]
fn mg_recache_wins_once() {
    let (s, clock) = store();
    let r = MetaGetOpts {
        recache: Some(30),
        ..Default::default()
    };
    s.store(StoreMode::Set, b"r", 0, 100, b"v");
    assert!(!get(&s, b"r", r).unwrap().won);
    clock.advance(71);
    let h = get(&s, b"r", r).unwrap();
    assert!(h.won && !h.token_sent_before);
    let h = get(&s, b"r", r).unwrap();
    assert!(!h.won && h.token_sent_before);
    s.store(StoreMode::Set, b"p", 0, 0, b"v");
    assert!(
        !get(&s, b"p", r).unwrap().won,
        "never expires: never recaches"
    );
    // A rewrite resets the token.
    s.store(StoreMode::Set, b"r", 0, 10, b"v2");
    assert!(get(&s, b"r", r).unwrap().won);
}

/// memcached 1.6.18: `md st I T30` → HD; `mg st c t v` → `c<new> t29 X W`; again → `Z X`;
/// `ms st 1 C1 I` (older CAS) → HD; `mg st c v t` → `c<newer> t29 Z X` with the new value.
#[test]
fn stale_while_revalidate_sequence() {
    let (s, clock) = store();
    s.store(StoreMode::Set, b"st", 0, 0, b"a");
    let c0 = item(&s, b"st").cas();
    let inv = MetaDeleteOpts {
        invalidate: true,
        ttl: Some(30),
        ..Default::default()
    };
    assert_eq!(s.meta_delete(b"st", &inv), MetaDeleteOutcome::Deleted);
    let c1 = item(&s, b"st").cas();
    assert!(c1 > c0, "invalidation takes a new CAS");
    clock.advance(1);
    let a = get(&s, b"st", MetaGetOpts::default()).unwrap();
    assert_eq!(a.item.value(), b"a", "a stale item is still served");
    assert!(a.stale && a.won && !a.token_sent_before);
    assert_eq!(a.ttl, Some(29));
    let b = get(&s, b"st", MetaGetOpts::default()).unwrap();
    assert!(b.stale && !b.won && b.token_sent_before);
    // The winner's recache arrives with the CAS it saw before the invalidation: stored, but
    // still stale, keeping the TTL and the token state.
    let mut o = set_opts(StoreMode::Set);
    o.compare_cas = Some(c0);
    o.invalidate = true;
    o.ttl = 500;
    assert_eq!(ms(&s, b"st", b"b", o).0, StoreOutcome::Stored);
    let c = get(&s, b"st", MetaGetOpts::default()).unwrap();
    assert_eq!(c.item.value(), b"b");
    assert!(c.stale && c.token_sent_before && !c.won);
    assert_eq!(c.ttl, Some(29), "the TTL of the item it replaced");
    assert!(c.item.cas() > c1);
    // A write with the current CAS makes it fresh again.
    o.compare_cas = Some(c.item.cas());
    assert_eq!(ms(&s, b"st", b"c", o).0, StoreOutcome::Stored);
    let d = get(&s, b"st", MetaGetOpts::default()).unwrap();
    assert!(!d.stale && !d.token_sent_before && !d.won);
    assert_eq!(d.ttl, Some(500));
}

/// memcached 1.6.18: `ms st2 1 C1 I T5 F9` over a fresh item → `mg` shows `t99 f9 X W`.
#[test]
fn ms_invalidate_over_a_fresh_item_wins_the_next_reader() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"other", 0, 0, b"a");
    s.store(StoreMode::Set, b"st2", 0, 100, b"a");
    let mut o = set_opts(StoreMode::Set);
    o.compare_cas = Some(1);
    o.invalidate = true;
    o.ttl = 5;
    o.flags = 9;
    assert_eq!(ms(&s, b"st2", b"b", o).0, StoreOutcome::Stored);
    let h = get(&s, b"st2", MetaGetOpts::default()).unwrap();
    assert_eq!((h.ttl, h.item.flags()), (Some(100), 9));
    assert!(h.stale && h.won);
    // A newer CAS than the item's is not "older": EX.
    o.compare_cas = Some(h.item.cas() + 10);
    assert_eq!(ms(&s, b"st2", b"c", o).0, StoreOutcome::Exists);
    // I without C is a plain set.
    let mut plain = set_opts(StoreMode::Set);
    plain.invalidate = true;
    assert_eq!(ms(&s, b"st2", b"d", plain).0, StoreOutcome::Stored);
    assert!(!item(&s, b"st2").stale());
}

/// memcached 1.6.18 for C with each mode: `ms k 1 C0` → EX; `MA C0` appends; `MA C99` → EX;
/// `MA C5` on a miss → NS; `ME C5` on a miss stores; `MR C1`/`MS C1` on a miss → NF.
#[test]
fn ms_modes_and_compare_cas() {
    let (s, _c) = store();
    let (r, cas) = ms(&s, b"k", b"a", set_opts(StoreMode::Add));
    assert_eq!(r, StoreOutcome::Stored);
    assert_eq!(item(&s, b"k").cas(), cas);
    assert_eq!(
        ms(&s, b"k", b"x", set_opts(StoreMode::Add)).0,
        StoreOutcome::NotStored
    );
    let with = |mode, c| {
        let mut o = set_opts(mode);
        o.compare_cas = Some(c);
        o
    };
    assert_eq!(
        ms(&s, b"k", b"c", with(StoreMode::Set, 0)).0,
        StoreOutcome::Exists
    );
    assert_eq!(
        ms(&s, b"k", b"d", with(StoreMode::Append, 0)).0,
        StoreOutcome::Stored
    );
    assert_eq!(value(&s, b"k").unwrap(), b"ad");
    assert_eq!(
        ms(&s, b"k", b"d", with(StoreMode::Append, 99)).0,
        StoreOutcome::Exists
    );
    let cur = item(&s, b"k").cas();
    assert_eq!(
        ms(&s, b"k", b"<", with(StoreMode::Prepend, cur)).0,
        StoreOutcome::Stored
    );
    assert_eq!(value(&s, b"k").unwrap(), b"<ad");
    assert_eq!(
        ms(&s, b"nok", b"d", with(StoreMode::Append, 5)).0,
        StoreOutcome::NotStored
    );
    assert_eq!(
        ms(&s, b"nok", b"d", with(StoreMode::Add, 5)).0,
        StoreOutcome::Stored
    );
    assert_eq!(
        ms(&s, b"nok2", b"z", with(StoreMode::Replace, 1)).0,
        StoreOutcome::NotFound
    );
    assert_eq!(
        ms(&s, b"nok2", b"z", with(StoreMode::Set, 1)).0,
        StoreOutcome::NotFound
    );
    assert_eq!(
        ms(&s, b"nok2", b"z", set_opts(StoreMode::Replace)).0,
        StoreOutcome::NotStored
    );
    let cur = item(&s, b"k").cas();
    let (r, new) = ms(&s, b"k", b"r", with(StoreMode::Replace, cur));
    assert_eq!(r, StoreOutcome::Stored);
    assert!(new > cur);
    let mut o = set_opts(StoreMode::Set);
    o.flags = 42;
    o.ttl = 60;
    o.new_cas = Some(5_000_000);
    assert_eq!(ms(&s, b"k", b"s", o), (StoreOutcome::Stored, 5_000_000));
    let i = item(&s, b"k");
    assert_eq!((i.flags(), i.exptime(), i.cas()), (42, T0 + 60, 5_000_000));
    // Append keeps the item's flags and TTL whatever F and T say.
    let mut a = set_opts(StoreMode::Append);
    a.flags = 1;
    a.ttl = 5;
    ms(&s, b"k", b"+", a);
    let i = item(&s, b"k");
    assert_eq!(
        (i.value(), i.flags(), i.exptime()),
        (&b"s+"[..], 42, T0 + 60)
    );
}

/// memcached's current source: `ms k S MA N30` on a miss stores the data as a new item with the
/// N TTL and the F flags (1.6.18 answers NS: it predates append autovivify).
#[test]
fn ms_append_autovivifies() {
    let (s, _c) = store();
    let mut o = set_opts(StoreMode::Append);
    o.vivify_on_append = Some(30);
    o.ttl = 10;
    o.flags = 7;
    assert_eq!(ms(&s, b"fresh", b"abc", o).0, StoreOutcome::Stored);
    let i = item(&s, b"fresh");
    assert_eq!(
        (i.value(), i.flags(), i.exptime()),
        (&b"abc"[..], 7, T0 + 30)
    );
    assert_eq!(ms(&s, b"fresh", b"def", o).0, StoreOutcome::Stored);
    let i = item(&s, b"fresh");
    assert_eq!(
        (i.value(), i.exptime()),
        (&b"abcdef"[..], T0 + 30),
        "a hit appends"
    );
    let mut p = set_opts(StoreMode::Prepend);
    p.vivify_on_append = Some(0);
    assert_eq!(ms(&s, b"p", b"x", p).0, StoreOutcome::Stored);
    assert_eq!(item(&s, b"p").exptime(), 0);
}

/// memcached: a too-large `ms` in any mode answers SERVER_ERROR and removes the key's item.
#[test]
fn ms_too_large_removes_the_old_item_in_every_mode() {
    let (s, _c) = super::tests::store_with(64 << 20, 1024);
    let big = vec![b'z'; 1024];
    for mode in [
        StoreMode::Set,
        StoreMode::Add,
        StoreMode::Append,
        StoreMode::Replace,
    ] {
        s.store(StoreMode::Set, b"c", 0, 0, b"c");
        assert_eq!(
            ms(&s, b"c", &big, set_opts(mode)),
            (StoreOutcome::TooLarge, 0)
        );
        assert!(value(&s, b"c").is_none(), "{mode:?}");
    }
}

/// memcached: `md k C1` → EX; `md n C0` → EX (C is compared literally); `md nothere` → NF.
#[test]
fn md_compare_and_delete() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"k", 0, 0, b"v");
    let cas = item(&s, b"k").cas();
    let c = |c| MetaDeleteOpts {
        compare_cas: Some(c),
        ..Default::default()
    };
    assert_eq!(s.meta_delete(b"k", &c(cas + 1)), MetaDeleteOutcome::Exists);
    assert_eq!(s.meta_delete(b"k", &c(0)), MetaDeleteOutcome::Exists);
    assert_eq!(s.meta_delete(b"k", &c(cas)), MetaDeleteOutcome::Deleted);
    assert!(value(&s, b"k").is_none());
    assert_eq!(
        s.meta_delete(b"nothere", &MetaDeleteOpts::default()),
        MetaDeleteOutcome::NotFound
    );
}

#[test]
fn md_invalidate_keeps_the_value_and_takes_e() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"k", 3, 100, b"v");
    let o = MetaDeleteOpts {
        invalidate: true,
        new_cas: Some(99),
        ..Default::default()
    };
    assert_eq!(s.meta_delete(b"k", &o), MetaDeleteOutcome::Deleted);
    let i = item(&s, b"k");
    assert_eq!(
        (i.value(), i.flags(), i.exptime(), i.cas()),
        (&b"v"[..], 3, T0 + 100, 99)
    );
    assert!(i.stale() && !i.token_sent());
}

/// memcached's current source: `md … x` replaces the item by an empty one with the F flags and
/// the T TTL (none: permanent), keeping its CAS unless E is given.
#[test]
fn md_x_leaves_an_empty_item() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"x", 9, 100, b"abc");
    let cas = item(&s, b"x").cas();
    let x = MetaDeleteOpts {
        remove_value: true,
        ..Default::default()
    };
    assert_eq!(s.meta_delete(b"x", &x), MetaDeleteOutcome::Deleted);
    let i = item(&s, b"x");
    assert_eq!(
        (i.value(), i.flags(), i.exptime(), i.cas()),
        (&b""[..], 0, 0, cas)
    );
    let extra = MetaExtra {
        client_flags: 5,
        ..Default::default()
    };
    let xt = MetaDeleteOpts {
        remove_value: true,
        ttl: Some(50),
        new_cas: Some(1234),
        ..Default::default()
    };
    s.meta_delete_with(b"x", &xt, &extra);
    let i = item(&s, b"x");
    assert_eq!((i.flags(), i.exptime(), i.cas()), (5, T0 + 50, 1234));
    let xi = MetaDeleteOpts {
        remove_value: true,
        invalidate: true,
        ..Default::default()
    };
    s.store(StoreMode::Set, b"y", 0, 0, b"abc");
    s.meta_delete(b"y", &xi);
    let i = item(&s, b"y");
    assert!(i.value().is_empty() && i.stale());
}

/// memcached: `ma cnt` → NF; `ma cnt N0 J10 v t c` → 10 t-1; `ma cnt v` → 11; `ma cnt MD D100`
/// → 0; `ma cnt T20 t v N90` → 1 t20; `ma k5 N50 T30 t` → t30; `ma k6 T30 N50 t J3` → 3 t50.
#[test]
fn ma_like_memcached() {
    let (s, _c) = store();
    let mut o = arith_opts();
    assert_eq!(s.meta_arith(b"cnt", &o), Err(ArithOutcome::NotFound));
    o.vivify = Some(0);
    o.initial = 10;
    let h = s.meta_arith(b"cnt", &o).unwrap();
    assert_eq!((h.value, h.ttl, h.created), (10, None, true));
    let h = s.meta_arith(b"cnt", &o).unwrap();
    assert_eq!((h.value, h.created), (11, false));
    let mut d = arith_opts();
    d.incr = false;
    d.delta = 100;
    assert_eq!(s.meta_arith(b"cnt", &d).unwrap().value, 0);
    let mut t = arith_opts();
    t.ttl = Some(20);
    t.vivify = Some(90);
    let h = s.meta_arith(b"cnt", &t).unwrap();
    assert_eq!((h.value, h.ttl), (1, Some(20)));
    fn order(o: &[u8]) -> MetaExtra<'_> {
        MetaExtra {
            order: o,
            ..Default::default()
        }
    }
    let mut nt = arith_opts();
    nt.vivify = Some(50);
    nt.ttl = Some(30);
    assert_eq!(
        s.meta_arith_with(b"k5", &nt, &order(b"NTt")).unwrap().ttl,
        Some(30)
    );
    nt.initial = 3;
    let h = s.meta_arith_with(b"k6", &nt, &order(b"TNtJ")).unwrap();
    assert_eq!((h.value, h.ttl), (3, Some(50)));
    // t before T reports the old TTL.
    let h = s.meta_arith_with(b"k6", &nt, &order(b"tT")).unwrap();
    assert_eq!((h.value, h.ttl), (4, Some(50)));
    assert_eq!(item(&s, b"k6").exptime(), T0 + 30);
}

/// memcached: `ma nn C999` on `ab` → EX (the CAS is checked before the number); `ma nn` →
/// CLIENT_ERROR; `ma n C0` → no check. An empty value is non-numeric before any CAS check.
#[test]
fn ma_checks_in_memcached_order() {
    let (s, _c) = store();
    s.store(StoreMode::Set, b"nn", 0, 0, b"ab");
    let mut o = arith_opts();
    o.compare_cas = Some(999);
    assert_eq!(s.meta_arith(b"nn", &o), Err(ArithOutcome::Exists));
    o.compare_cas = None;
    assert_eq!(s.meta_arith(b"nn", &o), Err(ArithOutcome::NonNumeric));
    s.store(StoreMode::Set, b"e", 0, 0, b"");
    o.compare_cas = Some(999);
    assert_eq!(s.meta_arith(b"e", &o), Err(ArithOutcome::NonNumeric));
    s.store(StoreMode::Set, b"n", 0, 0, b"5");
    o.compare_cas = Some(0);
    assert_eq!(s.meta_arith(b"n", &o).unwrap().value, 6);
    let cas = item(&s, b"n").cas();
    o.compare_cas = Some(cas);
    o.new_cas = Some(4242);
    let h = s.meta_arith(b"n", &o).unwrap();
    assert_eq!((h.value, h.cas), (7, 4242));
    assert_eq!(item(&s, b"n").cas(), 4242);
    // E also names a vivified counter's CAS.
    let mut v = arith_opts();
    v.vivify = Some(0);
    v.new_cas = Some(77);
    assert_eq!(s.meta_arith(b"fresh", &v).unwrap().cas, 77);
}

/// Issue 28: a conditional write's `E` below the item's CAS (two routers' stamps reaching the
/// primary out of order) leaves the item's CAS + 1, so the newer item keeps the higher
/// version; a plain set takes its `E` exactly (a replica's copy carries its source's version).
#[test]
fn a_conditional_writes_e_never_lowers_the_items_version() {
    let (s, _c) = store();
    let mut set = set_opts(StoreMode::Set);
    set.new_cas = Some(1_000);
    assert_eq!(ms(&s, b"n", b"5", set), (StoreOutcome::Stored, 1_000));
    // `ma … E900` after the item got 1 000: 1 001, not 900.
    let mut a = arith_opts();
    a.new_cas = Some(900);
    let h = s.meta_arith(b"n", &a).unwrap();
    assert_eq!((h.value, h.cas), (6, 1_001));
    assert_eq!(item(&s, b"n").cas(), 1_001);
    // A higher `E` is taken as given.
    a.new_cas = Some(2_000);
    assert_eq!(s.meta_arith(b"n", &a).unwrap().cas, 2_000);
    // Append, replace and compare-and-swap alike.
    let mut app = set_opts(StoreMode::Append);
    app.new_cas = Some(1_500);
    assert_eq!(ms(&s, b"n", b"0", app), (StoreOutcome::Stored, 2_001));
    let mut rep = set_opts(StoreMode::Replace);
    rep.new_cas = Some(3);
    assert_eq!(ms(&s, b"n", b"9", rep), (StoreOutcome::Stored, 2_002));
    // A compare-and-swap takes its `E` exactly, lower or not, as memcached does.
    let mut cas = set_opts(StoreMode::Set);
    cas.compare_cas = Some(2_002);
    cas.new_cas = Some(2_001);
    assert_eq!(ms(&s, b"n", b"8", cas), (StoreOutcome::Stored, 2_001));
    // An add of a missing key and a plain set take `E` exactly, lower or not.
    let mut add = set_opts(StoreMode::Add);
    add.new_cas = Some(7);
    assert_eq!(ms(&s, b"fresh", b"1", add), (StoreOutcome::Stored, 7));
    set.new_cas = Some(10);
    assert_eq!(ms(&s, b"n", b"1", set), (StoreOutcome::Stored, 10));
    assert_eq!(item(&s, b"n").cas(), 10);
}

#[test]
fn long_keys_are_refused_not_panicked_on() {
    let (s, _c) = store();
    let k = vec![b'k'; MAX_KEY_LEN + 1];
    let n = MetaGetOpts {
        vivify: Some(1),
        ..Default::default()
    };
    assert!(s.meta_get(&k, &n).is_none());
    assert_eq!(
        ms(&s, &k, b"v", set_opts(StoreMode::Set)).0,
        StoreOutcome::TooLarge
    );
    assert_eq!(
        s.meta_delete(&k, &MetaDeleteOpts::default()),
        MetaDeleteOutcome::NotFound
    );
    let mut a = arith_opts();
    a.vivify = Some(0);
    assert_eq!(s.meta_arith(&k, &a), Err(ArithOutcome::NotFound));
    assert!(s.meta_debug(&k).is_none());
    assert!(!s.delete(&k) && !s.touch(&k, 1));
    assert_eq!(s.incr_decr(&k, true, 1), ArithOutcome::NotFound);
}

/// memcached: after `ms Zm9v 3 b`, `mg foo k v` answers `kZm9v b` and `me foo` prints `ME Zm9v`:
/// the item remembers that its key came base64-encoded; a plain write forgets it.
#[test]
fn items_remember_a_binary_key() {
    let (s, _c) = store();
    let b = MetaExtra {
        binary_key: true,
        ..Default::default()
    };
    s.meta_set_with(b"foo", b"12", &set_opts(StoreMode::Set), &b);
    assert!(item(&s, b"foo").binary_key());
    assert!(s.meta_debug(b"foo").unwrap().binary_key);
    s.incr_decr(b"foo", true, 1000);
    assert!(
        item(&s, b"foo").binary_key(),
        "a rewrite keeps the key's form"
    );
    ms(&s, b"foo", b"x", set_opts(StoreMode::Set));
    assert!(!item(&s, b"foo").binary_key());
    assert!(!s.meta_debug(b"foo").unwrap().binary_key);
}
