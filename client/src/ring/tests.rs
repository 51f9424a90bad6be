//! Ring properties: determinism, spread, minimal movement, replica sets, ketama details.

use super::*;

fn specs(n: usize) -> Vec<NodeSpec> {
    (0..n)
        .map(|i| NodeSpec::new(format!("10.0.0.{}:11211", i + 1)))
        .collect()
}

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("key:{i}").into_bytes()).collect()
}

#[test]
fn xxh3_known_value() {
    // Independent check that the hash is the documented one (xxh3_64 of the empty input).
    assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
}

#[test]
fn empty_and_single_node_rings() {
    let r = Ring::new(&[], HashKind::Xxh3, 160).unwrap();
    assert_eq!(r.primary(b"k"), None);
    assert!(r.replicas(b"k", 2).is_empty());
    let r = Ring::new(&specs(1), HashKind::Xxh3, 160).unwrap();
    for k in keys(100) {
        assert_eq!(r.primary(&k), Some(0));
        assert_eq!(r.replicas(&k, 3), vec![0]);
    }
}

#[test]
fn replica_sets_are_distinct_and_start_with_the_primary() {
    let r = Ring::new(&specs(5), HashKind::Xxh3, 160).unwrap();
    for k in keys(2000) {
        let reps = r.replicas(&k, 3);
        assert_eq!(reps.len(), 3);
        assert_eq!(Some(reps[0]), r.primary(&k));
        assert!(reps[0] != reps[1] && reps[1] != reps[2] && reps[0] != reps[2]);
    }
}

#[test]
fn refuses_bad_membership() {
    let mut s = specs(2);
    s[1].addr = s[0].addr.clone();
    assert!(Ring::new(&s, HashKind::Xxh3, 160).is_err());
    let mut s = specs(1);
    s[0].weight = 0;
    assert!(Ring::new(&s, HashKind::Xxh3, 160).is_err());
    assert!(Ring::new(&[NodeSpec::new("nohost")], HashKind::Xxh3, 160).is_err());
}

#[test]
fn spread_at_160_vnodes_is_within_bound() {
    for n in 3..=10 {
        let r = Ring::new(&specs(n), HashKind::Xxh3, 160).unwrap();
        let d = diff(&Ring::new(&[], HashKind::Xxh3, 160).unwrap(), &r, 1);
        let mean = 1.0 / n as f64;
        for (name, gain, _) in &d.per_node {
            assert!(
                (gain / mean - 1.0).abs() < 0.25,
                "{n} nodes: {name} owns {gain:.4}, mean {mean:.4}"
            );
        }
    }
}

#[test]
fn adding_a_node_moves_about_one_share_only_onto_it() {
    for n in [3usize, 4, 8] {
        let old = Ring::new(&specs(n), HashKind::Xxh3, 160).unwrap();
        let new = Ring::new(&specs(n + 1), HashKind::Xxh3, 160).unwrap();
        let d = diff(&old, &new, 1);
        let expect = 1.0 / (n + 1) as f64;
        assert!(
            (d.moved - expect).abs() < expect * 0.3,
            "{n}+1: moved {}",
            d.moved
        );
        let newcomer = new.nodes()[n].ring_name();
        for (name, gain, _) in &d.per_node {
            if name != newcomer {
                assert_eq!(*gain, 0.0, "{name} gained keys");
            }
        }
        // The same with sampled keys.
        for k in keys(5000) {
            let (a, b) = (old.primary(&k).unwrap(), new.primary(&k).unwrap());
            assert!(a == b || b == n, "a key moved between old nodes");
        }
    }
}

#[test]
fn removing_a_node_moves_only_its_keys() {
    let old = Ring::new(&specs(5), HashKind::Xxh3, 160).unwrap();
    let mut s = specs(5);
    let gone = s.remove(2);
    let new = Ring::new(&s, HashKind::Xxh3, 160).unwrap();
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
    let mut s = specs(3);
    s[0].weight = 2;
    let r = Ring::new(&s, HashKind::Xxh3, 160).unwrap();
    let d = diff(&Ring::new(&[], HashKind::Xxh3, 160).unwrap(), &r, 1);
    let heavy = d
        .per_node
        .iter()
        .find(|(n, _, _)| n == s[0].ring_name())
        .unwrap()
        .1;
    assert!((heavy - 0.5).abs() < 0.08, "weight 2 of 4 owns {heavy}");
}

#[test]
fn ketama_names_elide_the_default_port() {
    assert_eq!(
        ketama::point_name(&NodeSpec::new("10.0.0.1:11211")),
        "10.0.0.1"
    );
    assert_eq!(
        ketama::point_name(&NodeSpec::new("10.0.0.1:11212")),
        "10.0.0.1:11212"
    );
    let named = NodeSpec {
        addr: "10.0.0.1:11211".into(),
        name: Some("alpha".into()),
        weight: 1,
    };
    assert_eq!(ketama::point_name(&named), "alpha");
    let r = Ring::new(&specs(3), HashKind::Ketama, 160).unwrap();
    assert_eq!(r.points().len(), 3 * 160);
    assert!(r.points().iter().all(|&(p, _)| p <= u64::from(u32::MAX)));
}
