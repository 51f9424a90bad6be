//! Ring properties: lookups, spread, minimal movement on membership change, replica sets,
//! weights, diff arithmetic and ketama details. Shares are exact (arc arithmetic through
//! [`shares`] / [`diff`]); key samples double-check them through the lookup path.

use proptest::prelude::*;

use super::*;

fn specs(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| NodeSpec::new(format!("10.0.0.{}:11211", i + 1)))
        .collect()
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key:{i}").into_bytes()).collect()
}

fn xxh3_ring(nodes: &[NodeSpec]) -> Ring {
    Ring::new(nodes, HashKind::Xxh3, DEFAULT_VNODES).unwrap()
}

/// The documented bounds on max share / mean share and min share / mean share at 160 vnodes
/// for 3..=10 equal nodes (docs/placement.md); measured over the naming schemes below: worst
/// max/mean 1.187, worst min/mean 0.748.
const SPREAD_BOUND: f64 = 1.25;
const SPREAD_FLOOR: f64 = 0.70;

/// Naming schemes a real cluster might use.
fn naming_schemes(n: usize) -> Vec<Vec<NodeSpec>> {
    vec![
        specs(n),
        (0..n)
            .map(|i| NodeSpec::new(format!("127.0.0.1:{}", 11311 + i)))
            .collect(),
        (0..n)
            .map(|i| {
                NodeSpec::new(format!("127.0.0.1:{}", 11311 + i)).named(format!("node{}", i + 1))
            })
            .collect(),
        (0..n)
            .map(|i| NodeSpec::new(format!("cache-{i}.cache.svc.cluster.local:11211")))
            .collect(),
    ]
}

#[test]
fn xxh3_known_values() {
    // Independent checks that the hash is the documented one: XXH3_64bits with seed 0 as the
    // reference C library (libxxhash 0.8.1) computes it.
    assert_eq!(xxh3::key_hash(b""), 0x2D06_8005_38D3_94C2);
    assert_eq!(xxh3::key_hash(b"key:0"), 0xB464_EE7B_6334_4E80);
    assert_eq!(xxh3::key_hash(b"10.0.0.1:11211-0"), 0x4AA9_2A3E_16BB_30D5);
}

#[test]
fn xxh3_points_are_the_documented_strings() {
    let n = [
        NodeSpec::new("10.0.0.1:11211"),
        NodeSpec::new("10.0.0.2:11211").named("b").weighted(2),
    ];
    let r = Ring::new(&n, HashKind::Xxh3, 3).unwrap();
    let mut want: Vec<(u64, usize)> = (0..3)
        .map(|i| {
            (
                xxhash_rust::xxh3::xxh3_64(format!("10.0.0.1:11211-{i}").as_bytes()),
                0,
            )
        })
        .chain((0..6).map(|i| (xxhash_rust::xxh3::xxh3_64(format!("b-{i}").as_bytes()), 1)))
        .collect();
    want.sort_unstable();
    assert_eq!(r.points().collect::<Vec<_>>(), want);
}

#[test]
fn empty_and_single_node_rings() {
    for kind in [HashKind::Xxh3, HashKind::Ketama] {
        let r = Ring::new(&[], kind, 160).unwrap();
        assert!(r.is_empty());
        assert_eq!(r.primary(b"k"), None);
        assert!(r.replicas(b"k", 2).is_empty());
        let r = Ring::new(&specs(1), kind, 160).unwrap();
        for k in keys(200) {
            assert_eq!(r.primary(&k), Some(0));
            assert_eq!(r.replicas(&k, 3), vec![0]);
        }
        assert_eq!(shares(&r, 1), vec![1.0]);
    }
}

#[test]
fn lookup_is_first_point_at_or_after_the_hash_wrapping() {
    let r = xxh3_ring(&specs(3));
    let points: Vec<(u64, usize)> = r.points().collect();
    for w in points.windows(2) {
        let (p, _) = w[0];
        let (q, owner) = w[1];
        if p < q {
            assert_eq!(r.primary_of_hash(p + 1), Some(owner));
            assert_eq!(r.primary_of_hash(q), Some(owner));
        }
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    assert_eq!(r.primary_of_hash(0), Some(first.1));
    assert_eq!(r.primary_of_hash(first.0), Some(first.1));
    assert_eq!(r.primary_of_hash(last.0), Some(last.1));
    if last.0 < u64::MAX {
        assert_eq!(r.primary_of_hash(last.0 + 1), Some(first.1), "wraps");
        assert_eq!(r.primary_of_hash(u64::MAX), Some(first.1), "wraps");
    }
}

#[test]
fn ties_break_by_configuration_order() {
    // Real 64-bit collisions cannot be produced on demand, so place points by hand: at the
    // shared position 50 the node listed first (index 0) wins, whatever the generation order.
    let nodes = specs(3);
    let r = Ring::assemble(
        HashKind::Xxh3,
        1,
        &nodes,
        vec![(50, 2), (90, 1), (50, 0), (10, 2), (50, 1)],
    );
    assert_eq!(
        r.points().collect::<Vec<_>>(),
        vec![(10, 2), (50, 0), (50, 1), (50, 2), (90, 1)]
    );
    assert_eq!(r.primary_of_hash(11), Some(0));
    assert_eq!(r.primary_of_hash(50), Some(0));
    let (mut out, mut len) = ([0usize; 3], 0);
    r.owners_of_hash(40, 3, &mut out, &mut len);
    assert_eq!(&out[..len], &[0, 1, 2]);
    r.owners_of_hash(60, 3, &mut out, &mut len);
    assert_eq!(&out[..len], &[1, 2, 0], "walks on and wraps");
}

#[test]
fn replica_sets_are_distinct_start_with_the_primary_and_are_clamped() {
    for kind in [HashKind::Xxh3, HashKind::Ketama] {
        let r = Ring::new(&specs(5), kind, 160).unwrap();
        for k in keys(2000) {
            for want in 1..=7 {
                let reps = r.replicas(&k, want);
                assert_eq!(reps.len(), want.min(5));
                assert_eq!(Some(reps[0]), r.primary(&k));
                for (i, a) in reps.iter().enumerate() {
                    assert!(!reps[i + 1..].contains(a), "{reps:?}");
                }
            }
        }
    }
    // A short output buffer caps the set without panicking.
    let r = xxh3_ring(&specs(5));
    let (mut buf, mut len) = ([0usize; 2], 0);
    r.replicas_into(b"k", 4, &mut buf, &mut len);
    assert_eq!(len, 2);
}

#[test]
fn refuses_bad_membership() {
    let bad: Vec<Vec<NodeSpec>> = vec![
        vec![
            NodeSpec::new("10.0.0.1:11211"),
            NodeSpec::new("10.0.0.1:11211"),
        ],
        vec![
            NodeSpec::new("10.0.0.1:1").named("a"),
            NodeSpec::new("10.0.0.2:1").named("a"),
        ],
        vec![
            NodeSpec::new("10.0.0.1:1").named("10.0.0.2:1"),
            NodeSpec::new("10.0.0.2:1"),
        ],
        vec![NodeSpec::new("10.0.0.1:11211").weighted(0)],
        vec![NodeSpec::new("nohost")],
        vec![NodeSpec::new(":11211")],
        vec![NodeSpec::new("host:0")],
        vec![NodeSpec::new("host:65536")],
        vec![NodeSpec::new("::1:11211")],
        vec![NodeSpec::new("a b:1")],
        vec![NodeSpec::new("h:1").named("")],
        vec![NodeSpec::new("h:1").named("x y")],
        vec![NodeSpec::new("h:1").named("x,y")],
        vec![NodeSpec::new("h:1").weighted(u32::MAX)],
    ];
    for nodes in &bad {
        assert!(
            Ring::new(nodes, HashKind::Xxh3, 160).is_err(),
            "accepted {nodes:?}"
        );
    }
    assert!(Ring::new(&specs(1), HashKind::Xxh3, 0).is_err());
    // Ketama hashes "host" for port 11211, so a node named like another's host clashes there.
    let clash = [
        NodeSpec::new("10.0.0.1:11211"),
        NodeSpec::new("10.0.0.2:1").named("10.0.0.1"),
    ];
    assert!(Ring::new(&clash, HashKind::Xxh3, 160).is_ok());
    assert!(Ring::new(&clash, HashKind::Ketama, 160).is_err());
    // twemproxy cannot hash point strings over 85 bytes.
    let long = [NodeSpec::new("h:1").named("x".repeat(83))];
    assert!(Ring::new(&long, HashKind::Xxh3, 160).is_ok());
    assert!(Ring::new(&long, HashKind::Ketama, 160).is_err());
    assert!(Ring::new(&[NodeSpec::new("[::1]:11211")], HashKind::Xxh3, 160).is_ok());
}

/// Prints the measured spread (max/mean and min/mean primary share) for the docs:
/// `cargo test -p ringcache-client --lib ring::tests::print_spread -- --ignored --nocapture`.
#[test]
#[ignore]
fn print_spread() {
    for vnodes in [40u32, 100, 160, 320, 1000] {
        let (mut worst_max, mut worst_min) = (0f64, f64::MAX);
        for n in 3..=10 {
            for nodes in naming_schemes(n) {
                let r = Ring::new(&nodes, HashKind::Xxh3, vnodes).unwrap();
                let s = shares(&r, 1);
                let mean = 1.0 / n as f64;
                let max = s.iter().cloned().fold(0.0, f64::max) / mean;
                let min = s.iter().cloned().fold(f64::MAX, f64::min) / mean;
                if vnodes == 160 {
                    println!(
                        "vnodes 160, {n:2} nodes, {}: max/mean {max:.3} min/mean {min:.3}",
                        nodes[0].ring_name()
                    );
                }
                worst_max = worst_max.max(max);
                worst_min = worst_min.min(min);
            }
        }
        println!("vnodes {vnodes}: worst max/mean {worst_max:.3}, worst min/mean {worst_min:.3}");
    }
    // Random address sets: the distribution of max/mean a cluster of n nodes can expect.
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in [3usize, 5, 10] {
        let mut ratios: Vec<f64> = (0..400)
            .map(|_| {
                let nodes: Vec<NodeSpec> = (0..n)
                    .map(|i| {
                        let x = next();
                        NodeSpec::new(format!(
                            "10.{}.{}.{}:{}",
                            x % 256,
                            (x >> 8) % 256,
                            i,
                            11211 + (x >> 16) % 100
                        ))
                    })
                    .collect();
                let s = shares(&xxh3_ring(&nodes), 1);
                s.iter().cloned().fold(0.0, f64::max) * n as f64
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "random {n:2}-node clusters at 160 vnodes: max/mean median {:.3}, p99 {:.3}, worst {:.3}",
            ratios[200], ratios[396], ratios[399]
        );
    }
    // The table in docs/placement.md: nodes 10.0.0.1:11211… at 160 points, max/min of the
    // exact share over the mean, as primary and as any of 3 replicas.
    println!("| nodes | xxh3 primary max / min | xxh3 3 replicas max / min | ketama primary max / min | ketama 3 replicas max / min |");
    for n in 3..=10 {
        let mut row = format!("| {n} ");
        for kind in [HashKind::Xxh3, HashKind::Ketama] {
            let r = Ring::new(&specs(n), kind, 160).unwrap();
            for replicas in [1usize, 3] {
                let s = shares(&r, replicas);
                let mean = replicas.min(n) as f64 / n as f64;
                let max = s.iter().cloned().fold(0.0, f64::max) / mean;
                let min = s.iter().cloned().fold(f64::MAX, f64::min) / mean;
                row.push_str(&format!("| {max:.4} / {min:.4} "));
            }
        }
        println!("{row}|");
    }
}

#[test]
fn spread_at_160_vnodes_is_within_the_documented_bound() {
    for n in 3..=10 {
        for nodes in naming_schemes(n) {
            let r = xxh3_ring(&nodes);
            let s = shares(&r, 1);
            let total: f64 = s.iter().sum();
            assert!((total - 1.0).abs() < 1e-9, "shares add up to {total}");
            let mean = 1.0 / n as f64;
            for (node, share) in nodes.iter().zip(&s) {
                assert!(
                    (SPREAD_FLOOR..=SPREAD_BOUND).contains(&(share / mean)),
                    "{n} nodes: {} owns {share:.4}, mean {mean:.4}",
                    node.ring_name()
                );
            }
        }
    }
}

#[test]
fn sampled_keys_agree_with_exact_shares() {
    let r = xxh3_ring(&specs(4));
    let exact = shares(&r, 1);
    let mut hits = [0usize; 4];
    let n = 40_000;
    for k in keys(n) {
        hits[r.primary(&k).unwrap()] += 1;
    }
    for (h, e) in hits.iter().zip(&exact) {
        // 40 000 samples: a standard deviation of about 0.0022 on a share near 0.25.
        assert!(
            (*h as f64 / n as f64 - e).abs() < 0.012,
            "sampled {h}, exact {e}"
        );
    }
}

#[test]
fn adding_a_node_moves_about_one_share_only_onto_it() {
    for n in [1usize, 3, 4, 8] {
        let old = xxh3_ring(&specs(n));
        let new = xxh3_ring(&specs(n + 1));
        let d = diff(&old, 1, &new, 1);
        assert!(d.same_hash);
        let expect = 1.0 / (n + 1) as f64;
        assert!(
            (d.moved - expect).abs() < expect * 0.3,
            "{n}+1: moved {}",
            d.moved
        );
        let newcomer = &d.nodes[n];
        assert_eq!(newcomer.addr, new.nodes()[n].addr);
        // Exactly what the newcomer now owns moved, and nothing else.
        assert!((newcomer.gained - d.moved).abs() < 1e-12);
        assert!((newcomer.after - d.moved).abs() < 1e-12);
        for m in &d.nodes[..n] {
            assert_eq!(m.gained, 0.0, "{} gained keys", m.name);
        }
        for a in &d.arcs {
            assert_eq!(a.new, vec![n]);
        }
        // The same through sampled keys.
        let mut moved = 0;
        for k in keys(5000) {
            let (a, b) = (old.primary(&k).unwrap(), new.primary(&k).unwrap());
            assert!(a == b || b == n, "a key moved between old nodes");
            if a != b {
                moved += 1;
                let h = new.key_hash(&k);
                assert!(
                    d.arcs.iter().any(|arc| arc.contains(h)),
                    "moved key outside the arcs"
                );
            }
        }
        assert!((moved as f64 / 5000.0 - d.moved).abs() < 0.03);
    }
}

#[test]
fn removing_a_node_moves_only_its_keys() {
    let old = xxh3_ring(&specs(5));
    let mut s = specs(5);
    let gone = s.remove(2);
    let new = xxh3_ring(&s);
    let d = diff(&old, 1, &new, 1);
    let share_of_gone = shares(&old, 1)[2];
    assert!((d.moved - share_of_gone).abs() < 1e-12);
    for m in &d.nodes {
        if m.addr == gone.addr {
            assert!((m.lost - share_of_gone).abs() < 1e-12);
        } else {
            assert_eq!(m.lost, 0.0);
        }
    }
    for k in keys(5000) {
        let before = &old.nodes()[old.primary(&k).unwrap()];
        let after = &new.nodes()[new.primary(&k).unwrap()];
        if before.addr != gone.addr {
            assert_eq!(before.addr, after.addr);
        }
    }
}

#[test]
fn weights_scale_share() {
    for (weights, kind) in [
        (vec![2, 1, 1], HashKind::Xxh3),
        (vec![3, 1, 1, 1, 2], HashKind::Xxh3),
        (vec![2, 1, 1], HashKind::Ketama),
    ] {
        let nodes: Vec<NodeSpec> = specs(weights.len())
            .into_iter()
            .zip(&weights)
            .map(|(n, &w)| n.weighted(w))
            .collect();
        let r = Ring::new(&nodes, kind, 160).unwrap();
        let total: u32 = weights.iter().sum();
        for (share, &w) in shares(&r, 1).iter().zip(&weights) {
            let expect = f64::from(w) / f64::from(total);
            assert!(
                (share / expect - 1.0).abs() < 0.25,
                "{kind} {weights:?}: weight {w} owns {share}"
            );
        }
    }
}

#[test]
fn diff_of_identical_rings_is_empty_and_replica_change_counts() {
    let r = xxh3_ring(&specs(4));
    let d = diff(&r, 2, &r, 2);
    assert_eq!((d.moved, d.primary_moved, d.copies_moved), (0.0, 0.0, 0.0));
    assert!(d.arcs.is_empty());
    for (m, s) in d.nodes.iter().zip(shares(&r, 2)) {
        assert_eq!((m.before, m.after), (s, s));
    }
    // Going from 1 to 2 copies changes every owner set but no primary, and each node gains
    // exactly its new share minus its old one.
    let d = diff(&r, 1, &r, 2);
    assert!((d.moved - 1.0).abs() < 1e-12);
    assert_eq!(d.primary_moved, 0.0);
    assert!((d.copies_moved - 1.0).abs() < 1e-12);
    for m in &d.nodes {
        assert!((m.gained - (m.after - m.before)).abs() < 1e-12);
    }
    // Everything moved with one owner pair merges into one full-circle arc.
    let a = xxh3_ring(&specs(1));
    let b = xxh3_ring(&[NodeSpec::new("10.9.9.9:1")]);
    let d = diff(&a, 1, &b, 1);
    assert_eq!(d.arcs.len(), 1);
    assert_eq!(d.arcs[0].start, d.arcs[0].end);
    assert_eq!(d.arcs[0].width(d.space), d.space);
}

#[test]
fn diff_matches_nodes_by_address() {
    let old = vec![
        NodeSpec::new("10.0.0.1:1").named("a"),
        NodeSpec::new("10.0.0.2:1").named("b"),
    ];
    // Same names, b moved to a new address: placement unchanged, but b's keys must be copied.
    let new = vec![
        NodeSpec::new("10.0.0.1:1").named("a"),
        NodeSpec::new("10.0.0.3:1").named("b"),
    ];
    let d = diff(&xxh3_ring(&old), 1, &xxh3_ring(&new), 1);
    let b_share = shares(&xxh3_ring(&old), 1)[1];
    assert!((d.moved - b_share).abs() < 1e-12);
    assert_eq!(d.nodes.len(), 3);
    assert!((d.nodes[1].lost - b_share).abs() < 1e-12);
    assert!((d.nodes[2].gained - b_share).abs() < 1e-12);
}

#[test]
fn diff_between_hash_kinds_gives_expectations() {
    let a = xxh3_ring(&specs(4));
    let b = Ring::new(&specs(4), HashKind::Ketama, 160).unwrap();
    let d = diff(&a, 1, &b, 1);
    assert!(!d.same_hash);
    assert!(d.arcs.is_empty());
    // Four nodes each near a quarter: about 3/4 of primaries move.
    assert!((d.primary_moved - 0.75).abs() < 0.02, "{}", d.primary_moved);
    let sampled = keys(20_000)
        .iter()
        .filter(|k| a.primary(k) != b.primary(k))
        .count() as f64
        / 20_000.0;
    assert!(
        (sampled - d.moved).abs() < 0.02,
        "sampled {sampled}, expected {}",
        d.moved
    );
    let empty = Ring::new(&[], HashKind::Ketama, 1).unwrap();
    let none = Ring::new(&[], HashKind::Xxh3, 1).unwrap();
    assert_eq!(diff(&none, 1, &empty, 1).moved, 0.0);
    assert_eq!(diff(&none, 1, &empty, 1).primary_moved, 0.0);
    assert_eq!(diff(&a, 1, &empty, 1).moved, 1.0);
}

#[test]
fn ketama_names_and_point_counts() {
    assert_eq!(NodeSpec::new("10.0.0.1:11211").ketama_name(), "10.0.0.1");
    assert_eq!(
        NodeSpec::new("10.0.0.1:11212").ketama_name(),
        "10.0.0.1:11212"
    );
    assert_eq!(
        NodeSpec::new("10.0.0.1:11211").named("alpha").ketama_name(),
        "alpha"
    );
    let r = Ring::new(&specs(3), HashKind::Ketama, 1).unwrap();
    assert_eq!(r.point_count(), 3 * 160);
    assert!(r.points().all(|(p, _)| p <= u64::from(u32::MAX)));
    // twemproxy's float formula: 1 of 3 weights over 3 servers gives floorf(40.0) × 4 = 160,
    // weights 1:2 give 26×4 and 53×4.
    let w = [NodeSpec::new("a:1"), NodeSpec::new("b:1").weighted(2)];
    assert_eq!(ketama::points_per_node(&w), vec![104, 212]);
    assert_eq!(ketama::points_per_node(&specs(7)), vec![160; 7]);
    // Where float and exact arithmetic part: 4 of 25 over 5 servers is 31.999998 in float, so
    // 31 digests (exact arithmetic would give 32).
    let w: Vec<NodeSpec> = specs(5)
        .into_iter()
        .zip([4, 6, 12, 2, 1])
        .map(|(n, w)| n.weighted(w))
        .collect();
    assert_eq!(ketama::points_per_node(&w), vec![124, 188, 380, 60, 28]);
}

#[test]
fn ketama_points_and_key_hash_are_md5_little_endian() {
    // md5("10.0.0.1-0") = 3c789421 5ba8d636 92f5edf1 cfb8a940 (Python's hashlib): four
    // points 0x2194783c, 0x36d6a85b, 0xf1edf592, 0x40a9b8cf.
    let r = Ring::new(&specs(1), HashKind::Ketama, 1).unwrap();
    let pts: Vec<u64> = r.points().map(|(p, _)| p).collect();
    for want in [0x2194_783c_u64, 0x36d6_a85b, 0xf1ed_f592, 0x40a9_b8cf] {
        assert!(pts.binary_search(&want).is_ok(), "missing point {want:#x}");
    }
    // md5("foo") = acbd18db 4cc2f85c edef654f ccc4a4d8.
    assert_eq!(ketama::key_hash(b"foo"), 0xdb18_bdac);
    assert_eq!(
        ketama::key_hash(b""),
        0,
        "twemproxy sends an empty key to 0"
    );
}

#[test]
fn hash_kind_spellings() {
    for k in [HashKind::Xxh3, HashKind::Ketama] {
        assert_eq!(k.as_str().parse::<HashKind>().unwrap(), k);
        assert_eq!(k.to_string(), k.as_str());
    }
    assert!("md5".parse::<HashKind>().is_err());
}

/// Up to 12 distinct node specs, some named and weighted, from arbitrary small numbers.
fn arb_nodes(max: usize) -> impl Strategy<Value = Vec<NodeSpec>> {
    proptest::collection::btree_set(1u16..2000, 1..max).prop_flat_map(|ports| {
        let n = ports.len();
        (
            Just(ports),
            proptest::collection::vec(1u32..4, n),
            proptest::collection::vec(any::<bool>(), n),
        )
            .prop_map(|(ports, weights, named)| {
                ports
                    .into_iter()
                    .zip(weights)
                    .zip(named)
                    .map(|((p, w), named)| {
                        let n =
                            NodeSpec::new(format!("10.1.{}.{}:{}", p / 250, p % 250, 11000 + p))
                                .weighted(w);
                        if named {
                            n.named(format!("n{p}"))
                        } else {
                            n
                        }
                    })
                    .collect()
            })
    })
}

fn arb_kind() -> impl Strategy<Value = HashKind> {
    prop_oneof![Just(HashKind::Xxh3), Just(HashKind::Ketama)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_adding_a_node_only_moves_keys_onto_it(
        nodes in arb_nodes(10),
        kind in arb_kind(),
        replicas in 1usize..4,
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 64),
    ) {
        let (newcomer, old_nodes) = nodes.split_last().unwrap();
        prop_assume!(kind == HashKind::Xxh3 || !old_nodes.is_empty());
        let old = Ring::new(old_nodes, kind, 64).unwrap();
        let new = Ring::new(&nodes, kind, 64).unwrap();
        let d = diff(&old, replicas, &new, replicas);
        let last = nodes.len() - 1;
        if kind == HashKind::Xxh3 {
            // Points are only added, so only the newcomer gains and arcs move only to it.
            for m in &d.nodes[..last] {
                prop_assert_eq!(m.gained, 0.0);
            }
            prop_assert!((d.nodes[last].gained - d.moved).abs() < 1e-9);
            for k in &keys {
                let (a, b) = (old.replicas(k, replicas), new.replicas(k, replicas));
                // The new walk is the old one with the newcomer inserted somewhere.
                let without: Vec<usize> = b.iter().copied().filter(|&x| x != last).collect();
                prop_assert!(a.starts_with(&without), "{:?} -> {:?}", a, b);
                if a != b {
                    prop_assert!(b.contains(&last));
                    let h = new.key_hash(k);
                    prop_assert!(d.arcs.iter().any(|arc| arc.contains(h)));
                }
            }
            prop_assert_eq!(&new.nodes()[last], newcomer);
        }
        // In every mode: the exact shares add up and the diff agrees with lookups.
        let total: f64 = shares(&new, 1).iter().sum();
        prop_assert!((total - 1.0).abs() < 1e-9);
        for k in &keys {
            let (a, b) = (old.replicas(k, replicas), new.replicas(k, replicas));
            let a: Vec<&str> = a.iter().map(|&i| old.nodes()[i].addr.as_str()).collect();
            let b: Vec<&str> = b.iter().map(|&i| new.nodes()[i].addr.as_str()).collect();
            let same = a.len() == b.len() && a.iter().all(|x| b.contains(x));
            let h = new.key_hash(k);
            prop_assert_eq!(same, !d.arcs.iter().any(|arc| arc.contains(h)));
        }
    }

    #[test]
    fn prop_removing_a_node_moves_only_its_keys(
        nodes in arb_nodes(10),
        pick in any::<prop::sample::Index>(),
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 64),
    ) {
        let gone = pick.index(nodes.len());
        let mut rest = nodes.clone();
        let removed = rest.remove(gone);
        let old = xxh3_ring(&nodes);
        let new = xxh3_ring(&rest);
        let d = diff(&old, 1, &new, 1);
        prop_assert!((d.moved - shares(&old, 1)[gone]).abs() < 1e-9);
        for k in &keys {
            let before = &old.nodes()[old.primary(k).unwrap()];
            if before.addr != removed.addr {
                prop_assert_eq!(&before.addr, &new.nodes()[new.primary(k).unwrap()].addr);
            }
        }
    }

    #[test]
    fn prop_placement_ignores_configuration_order(
        nodes in arb_nodes(8),
        kind in arb_kind(),
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 64),
    ) {
        let a = Ring::new(&nodes, kind, 160).unwrap();
        let mut rev = nodes.clone();
        rev.reverse();
        let b = Ring::new(&rev, kind, 160).unwrap();
        for k in &keys {
            let x: Vec<&str> = a.replicas(k, 3).iter().map(|&i| a.nodes()[i].ring_name()).collect();
            let y: Vec<&str> = b.replicas(k, 3).iter().map(|&i| b.nodes()[i].ring_name()).collect();
            prop_assert_eq!(x, y);
        }
    }

    #[test]
    fn prop_replica_sets_are_distinct(
        nodes in arb_nodes(12),
        kind in arb_kind(),
        replicas in 1usize..8,
        key in proptest::collection::vec(any::<u8>(), 1..250),
    ) {
        let r = Ring::new(&nodes, kind, 160).unwrap();
        let reps = r.replicas(&key, replicas);
        prop_assert_eq!(reps.len(), replicas.min(nodes.len()));
        prop_assert_eq!(Some(reps[0]), r.primary(&key));
        for (i, a) in reps.iter().enumerate() {
            prop_assert!(!reps[i + 1..].contains(a));
        }
    }
}

/// A node's certificate is checked against its stable name, never an address it was found at.
#[test]
fn tls_name_is_the_stable_name() {
    let tls = |s: NodeSpec| s.tls_name().to_string();
    assert_eq!(tls(NodeSpec::new("10.1.2.3:11211")), "10.1.2.3");
    assert_eq!(tls(NodeSpec::new("[::1]:11211")), "::1");
    assert_eq!(tls(NodeSpec::new("cache-0.svc:11211")), "cache-0.svc");
    // SRV discovery names a node TARGET:PORT and reaches it at a pod IP.
    let srv = NodeSpec::new("10.1.2.3:11211").named("node-1.nodes.test:11211");
    assert_eq!(tls(srv), "node-1.nodes.test");
    // A configured name without a port is taken whole.
    assert_eq!(
        tls(NodeSpec::new("10.1.2.3:11211").named("cache-a")),
        "cache-a"
    );
    // dns+HOST:PORT names a node by its address; its certificate carries HOST.
    let a = NodeSpec::new("10.1.2.3:11211").with_tls_host("nodes.test");
    assert_eq!(tls(a.clone()), "nodes.test");
    assert_eq!(a.ring_name(), "10.1.2.3:11211", "placement is unchanged");
}
