//! The zone walk (docs/placement.md, "Zones"): copies in distinct zones when there are enough
//! zones, distinct nodes covering every zone when there are fewer, and exactly the zone-less
//! placement when the zones cannot change anything (one zone, or one zone per node).

use proptest::prelude::*;

use super::*;

/// Six nodes in three zones, two per zone, listed zone by zone as an operator would.
fn six_in_three(kind: HashKind) -> Ring {
    let nodes: Vec<NodeSpec> = (0..6)
        .map(|i| {
            NodeSpec::new(format!("10.0.{}.{}:11211", i / 2, i + 1))
                .in_zone(["eu-west-1a", "eu-west-1b", "eu-west-1c"][i / 2])
        })
        .collect();
    Ring::new(&nodes, kind, DEFAULT_VNODES).unwrap()
}

fn zones_of(ring: &Ring, owners: &[usize]) -> Vec<String> {
    let mut z: Vec<String> = owners
        .iter()
        .map(|&o| ring.nodes()[o].zone.clone().unwrap_or_default())
        .collect();
    z.sort();
    z.dedup();
    z
}

/// The exhaustive check: 1 M keys, 6 nodes in 3 zones; every key's copies span 2
/// zones with replicas 2 and 3 with replicas 3, in both placements. (The exact version over
/// every arc of the ring is `no_zone_holds_every_copy_of_any_key`.)
#[test]
fn a_million_keys_span_as_many_zones_as_copies() {
    for kind in [HashKind::Xxh3, HashKind::Ketama] {
        let ring = six_in_three(kind);
        let mut out = [0usize; 3];
        let mut len = 0;
        for i in 0..1_000_000u32 {
            let key = format!("key:{i}");
            for replicas in [2, 3] {
                ring.replicas_into(key.as_bytes(), replicas, &mut out, &mut len);
                assert_eq!(len, replicas);
                let zone = |o: usize| ring.inner.zones.as_ref().unwrap().of[out[o]];
                let distinct = (0..len).all(|a| (0..a).all(|b| zone(a) != zone(b)));
                assert!(
                    distinct,
                    "{kind} {key} with {replicas} copies: {:?}",
                    &out[..len]
                );
            }
        }
    }
}

/// Exactly, over every arc of the hash space: no zone holds every copy of any key.
#[test]
fn no_zone_holds_every_copy_of_any_key() {
    for kind in [HashKind::Xxh3, HashKind::Ketama] {
        let ring = six_in_three(kind);
        for replicas in [2, 3, 4] {
            let outage = zone_outage(&ring, replicas);
            assert_eq!(outage.len(), 3);
            for (zone, share) in outage {
                assert_eq!(share, 0.0, "{kind} {replicas}: {zone}");
            }
        }
        // With one copy, each zone's outage is its share of primaries, and they add up to 1.
        let total: f64 = zone_outage(&ring, 1).iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-12);
    }
    // The zone-less walk on the same nodes does put both copies in one zone for some keys:
    // the cost the zone walk removes.
    let bare: Vec<NodeSpec> = six_in_three(HashKind::Xxh3)
        .nodes()
        .iter()
        .map(|n| NodeSpec::new(n.addr.clone()))
        .collect();
    let ring = Ring::new(&bare, HashKind::Xxh3, DEFAULT_VNODES).unwrap();
    assert!(
        zone_outage(&ring, 2).is_empty(),
        "no zones, no outage table"
    );
    let zoned = six_in_three(HashKind::Xxh3);
    let same_zone = (0..10_000)
        .filter(|i| {
            let o = ring.replicas(format!("key:{i}").as_bytes(), 2);
            zones_of(&zoned, &o).len() == 1
        })
        .count();
    assert!(
        same_zone > 500,
        "zone-less: {same_zone} of 10000 keys in one zone"
    );
}

#[test]
fn fewer_zones_than_copies_fill_with_distinct_nodes() {
    // Two zones, four nodes, three copies: both zones, then the next distinct node.
    let nodes: Vec<NodeSpec> = (0..4)
        .map(|i| NodeSpec::new(format!("10.0.0.{}:11211", i + 1)).in_zone(["a", "b"][i % 2]))
        .collect();
    let ring = Ring::new(&nodes, HashKind::Xxh3, DEFAULT_VNODES).unwrap();
    for i in 0..5000 {
        let key = format!("key:{i}");
        let o = ring.replicas(key.as_bytes(), 3);
        assert_eq!(o.len(), 3);
        assert_eq!(
            zones_of(&ring, &o[..2]).len(),
            2,
            "{key}: first two in both zones"
        );
        assert!(!o[..2].contains(&o[2]));
        assert_eq!(Some(o[0]), ring.primary(key.as_bytes()));
    }
}

#[test]
fn mixed_and_bad_zones_are_refused() {
    let mixed = [
        NodeSpec::new("10.0.0.1:1").in_zone("a"),
        NodeSpec::new("10.0.0.2:1"),
    ];
    let e = Ring::new(&mixed, HashKind::Xxh3, 160).unwrap_err();
    assert!(e.to_string().contains("10.0.0.2:1"), "{e}");
    for bad in ["", "eu west", "a,b"] {
        let n = [NodeSpec::new("10.0.0.1:1").in_zone(bad)];
        assert!(Ring::new(&n, HashKind::Xxh3, 160).is_err(), "{bad:?}");
    }
}

/// Up to 10 distinct nodes, some named and weighted.
fn arb_nodes() -> impl Strategy<Value = Vec<NodeSpec>> {
    proptest::collection::btree_set(1u16..2000, 1..10).prop_flat_map(|ports| {
        let n = ports.len();
        (
            Just(ports),
            proptest::collection::vec(1u32..3, n),
            proptest::collection::vec(0u8..4, n),
        )
            .prop_map(|(ports, weights, zones)| {
                ports
                    .into_iter()
                    .zip(weights)
                    .zip(zones)
                    .map(|((p, w), z)| {
                        NodeSpec::new(format!("10.1.0.{}:{}", p % 250, 11000 + p))
                            .weighted(w)
                            .in_zone(format!("z{z}"))
                    })
                    .collect()
            })
    })
}

fn arb_kind() -> impl Strategy<Value = HashKind> {
    prop_oneof![Just(HashKind::Xxh3), Just(HashKind::Ketama)]
}

fn without_zones(nodes: &[NodeSpec]) -> Vec<NodeSpec> {
    nodes
        .iter()
        .map(|n| NodeSpec {
            zone: None,
            ..n.clone()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The walk's contract: the primary is the zone-less primary, copies are distinct nodes,
    /// the first `min(copies, zones)` in distinct zones.
    #[test]
    fn prop_zone_walk(
        nodes in arb_nodes(),
        kind in arb_kind(),
        replicas in 1usize..6,
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 32),
    ) {
        let zoned = Ring::new(&nodes, kind, 64).unwrap();
        let bare = Ring::new(&without_zones(&nodes), kind, 64).unwrap();
        for k in &keys {
            let o = zoned.replicas(k, replicas);
            prop_assert_eq!(o.len(), bare.replicas(k, replicas).len());
            prop_assert_eq!(o.first().copied(), bare.primary(k));
            for (i, a) in o.iter().enumerate() {
                prop_assert!(!o[i + 1..].contains(a));
            }
            let spread = o.len().min(zoned.zone_count());
            prop_assert_eq!(zones_of(&zoned, &o[..spread]).len(), spread);
        }
    }

    /// Zones that cannot separate anything (all nodes in one zone, or each in its own) place
    /// exactly as no zones do.
    #[test]
    fn prop_trivial_zones_change_nothing(
        nodes in arb_nodes(),
        kind in arb_kind(),
        replicas in 1usize..6,
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 32),
    ) {
        let bare = without_zones(&nodes);
        let one: Vec<NodeSpec> = bare.iter().map(|n| n.clone().in_zone("one")).collect();
        let own: Vec<NodeSpec> = bare.iter().map(|n| n.clone().in_zone(n.addr.clone())).collect();
        let rings = [&bare, &one, &own].map(|n| Ring::new(n, kind, 64).unwrap());
        for k in &keys {
            let want = rings[0].replicas(k, replicas);
            prop_assert_eq!(&rings[1].replicas(k, replicas), &want);
            prop_assert_eq!(&rings[2].replicas(k, replicas), &want);
        }
    }

    /// A zone change moves keys like any membership change, and `diff` sees exactly them.
    #[test]
    fn prop_diff_sees_a_zone_change(
        nodes in arb_nodes(),
        pick in any::<prop::sample::Index>(),
        keys in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 64),
    ) {
        let mut moved = nodes.clone();
        let i = pick.index(nodes.len());
        moved[i].zone = Some("elsewhere".into());
        let (old, new) = (xxh3(&nodes), xxh3(&moved));
        let d = diff(&old, 2, &new, 2);
        for k in &keys {
            let (mut a, mut b) = (old.replicas(k, 2), new.replicas(k, 2));
            a.sort_unstable();
            b.sort_unstable();
            let h = new.key_hash(k);
            prop_assert_eq!(a != b, d.arcs.iter().any(|arc| arc.contains(h)));
        }
    }
}

fn xxh3(nodes: &[NodeSpec]) -> Ring {
    Ring::new(nodes, HashKind::Xxh3, 64).unwrap()
}
