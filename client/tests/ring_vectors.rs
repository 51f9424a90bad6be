//! Published placement test vectors: `tests/data/placement_vectors.tsv` holds, for a fixed node
//! list (written in the file's header), the replica set of 200 keys under both placements. The
//! file is the contract another client checks itself against (docs/placement.md); this test
//! keeps ringcache itself to it, so any change of placement fails here first.
//!
//! Regenerate (only for a deliberate, documented placement change — it makes every existing
//! cluster cold):
//! `cargo test -p ringcache-client --test ring_vectors -- --ignored regenerate_vectors`.

mod vectors;

use std::fmt::Write as _;
use std::path::PathBuf;

use ringcache_client::ring::{HashKind, NodeSpec, Ring};
use vectors::{checked_in, data_path, write_header_nodes};

const REPLICAS: usize = 3;
const VNODES: u32 = 160;

fn vectors_path() -> PathBuf {
    data_path("placement_vectors.tsv")
}

/// The fixed membership: default and non-default ports (ketama elides 11211), configured names
/// and a weight of 2, so each rule of both placements is exercised.
fn vector_nodes() -> Vec<NodeSpec> {
    vec![
        NodeSpec::new("10.0.0.1:11211"),
        NodeSpec::new("10.0.0.2:11211"),
        NodeSpec::new("10.0.0.3:11212"),
        NodeSpec::new("10.0.0.4:11211").named("delta").weighted(2),
        NodeSpec::new("10.0.0.5:11311").named("echo"),
    ]
}

fn vector_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..120).map(|i| format!("key:{i}")).collect();
    keys.extend((1..=40).map(|i| format!("user:{}:profile", i * 7919)));
    keys.extend(
        [
            "a",
            "Z",
            "~",
            "0",
            "00000000",
            "!#$%&'()*+",
            "key-with-dashes",
            "UPPER_case.Mixed",
            "a/b/c",
            "[]{}",
            "?q=1&r=2",
            "%20",
            "ключ",
            "キー",
            "café",
            "emoji😀",
        ]
        .map(String::from),
    );
    keys.push("x".repeat(249));
    keys.push("x".repeat(250));
    keys.extend(
        (1..=22u64).map(|i| format!("session:{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
    );
    keys
}

fn owners(ring: &Ring, key: &str) -> String {
    vectors::owners(ring, key, REPLICAS)
}

fn render() -> String {
    let nodes = vector_nodes();
    let mut out = String::new();
    out.push_str(
        "# ringcache placement test vectors (docs/placement.md). Do not edit by hand.\n\
         # Nodes, in configuration order: node<TAB>addr<TAB>name (- = none)<TAB>weight\n",
    );
    write_header_nodes(&mut out, &nodes, false);
    let _ = writeln!(
        out,
        "# replicas = {REPLICAS}; vnodes = {VNODES} (xxh3 only, ketama always uses 160 per server)\n\
         # Columns: hash<TAB>key<TAB>owners, primary first, by ring name (name, else addr)"
    );
    for kind in [HashKind::Xxh3, HashKind::Ketama] {
        let ring = Ring::new(&nodes, kind, VNODES).expect("the vector nodes are valid");
        for key in vector_keys() {
            let _ = writeln!(out, "{kind}\t{key}\t{}", owners(&ring, &key));
        }
    }
    out
}

#[test]
fn vectors_match_the_checked_in_file() {
    let (text, _, xxh3, ketama) =
        checked_in("placement_vectors.tsv", vector_nodes(), false, VNODES);
    let mut checked = [0usize; 2];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 3, "bad vector line {line:?}");
        let (ring, slot) = match f[0] {
            "xxh3" => (&xxh3, 0),
            "ketama" => (&ketama, 1),
            other => panic!("unknown hash {other:?}"),
        };
        assert_eq!(owners(ring, f[1]), f[2], "{} placement of {:?}", f[0], f[1]);
        assert_eq!(f[2].split(',').count(), REPLICAS);
        checked[slot] += 1;
    }
    assert_eq!(checked, [200, 200], "200 keys per placement");
    assert_eq!(
        text,
        render(),
        "the file is exactly what regenerate_vectors writes"
    );
}

#[test]
fn vectors_spread_over_every_node() {
    // A sanity check on the vectors themselves: every node is somebody's primary.
    let text =
        std::fs::read_to_string(vectors_path()).expect("placement_vectors.tsv is checked in");
    for kind in ["xxh3", "ketama"] {
        for n in vector_nodes() {
            let primaries = text
                .lines()
                .filter(|l| l.starts_with(&format!("{kind}\t")))
                .filter(|l| {
                    l.rsplit('\t').next().and_then(|o| o.split(',').next()) == Some(n.ring_name())
                })
                .count();
            assert!(
                primaries > 10,
                "{kind}: {} is primary of {primaries} keys",
                n.ring_name()
            );
        }
    }
}

#[test]
fn hashes_match_independent_implementations() {
    // Values from the reference C library (libxxhash 0.8.1, XXH3_64bits) and Python's hashlib,
    // not from the crate under test, so the vectors are anchored outside ringcache.
    let nodes = vector_nodes();
    let xxh3 = Ring::new(&nodes, HashKind::Xxh3, VNODES).unwrap();
    assert_eq!(xxh3.key_hash(b""), 0x2D06_8005_38D3_94C2);
    assert_eq!(xxh3.key_hash(b"key:0"), 0xB464_EE7B_6334_4E80);
    // xxh3_64("10.0.0.1:11211-0") and xxh3_64("delta-319"): point 0 of the first node and the
    // last point of the weight-2 node are on the ring, owned by them.
    let points: Vec<(u64, usize)> = xxh3.points().collect();
    assert!(points.contains(&(0x4AA9_2A3E_16BB_30D5, 0)));
    assert!(points.contains(&(0x5DD2_6402_7385_1278, 3)));
    assert_eq!(points.len(), 6 * 160);

    let ketama = Ring::new(&nodes, HashKind::Ketama, VNODES).unwrap();
    // md5("foo") = acbd18db…: the key sits at 0xdb18bdac.
    assert_eq!(ketama.key_hash(b"foo"), 0xDB18_BDAC);
    // md5("10.0.0.3:11212-0") = 6b903800…: port 11212 stays in the point string.
    let points: Vec<(u64, usize)> = ketama.points().collect();
    assert!(points.contains(&(0x0038_906B, 2)));
    // Weights 1,1,1,2,1 of 6 over 5 servers: floorf(pct·40·5)·4 = 132 points, and
    // floorf(66.66667)·4 = 264 for delta.
    let per_node: Vec<usize> = (0..5)
        .map(|i| points.iter().filter(|p| p.1 == i).count())
        .collect();
    assert_eq!(per_node, vec![132, 132, 132, 264, 132]);
}

#[test]
#[ignore]
fn regenerate_vectors() {
    std::fs::write(vectors_path(), render()).expect("write placement_vectors.tsv");
}
