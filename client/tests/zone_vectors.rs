//! Published test vectors for the zone walk (docs/placement.md, "Zones"):
//! `tests/data/zone_vectors.tsv` holds, for a fixed membership with zones (written in the
//! file's header), the owners of 100 keys under both placements with 2 copies (fewer than the
//! zones: every copy in its own zone) and with 4 (more than the zones: the fill walk). Another
//! client checks its zone walk against it; this test keeps ringcache to it.
//!
//! Regenerate (only for a deliberate, announced placement change):
//! `cargo test -p ringcache-client --test zone_vectors -- --ignored regenerate_zone_vectors`.

mod vectors;

use std::fmt::Write as _;
use std::path::PathBuf;

use ringcache_client::ring::{HashKind, NodeSpec, Ring};
use vectors::{checked_in, data_path, owners, write_header_nodes};

const VNODES: u32 = 160;
const REPLICAS: [usize; 2] = [2, 4];

fn vectors_path() -> PathBuf {
    data_path("zone_vectors.tsv")
}

/// Three zones of unequal size (3, 2 and 1 nodes), not listed zone by zone, with a name and a
/// weight of 2, so the walk's skipping, its filling lap and the zone-id order are exercised.
fn vector_nodes() -> Vec<NodeSpec> {
    vec![
        NodeSpec::new("10.0.1.1:11211").in_zone("zone-a"),
        NodeSpec::new("10.0.2.1:11211").in_zone("zone-b"),
        NodeSpec::new("10.0.1.2:11211").in_zone("zone-a"),
        NodeSpec::new("10.0.3.1:11212")
            .named("charlie")
            .in_zone("zone-c"),
        NodeSpec::new("10.0.2.2:11211")
            .weighted(2)
            .in_zone("zone-b"),
        NodeSpec::new("10.0.1.3:11211").in_zone("zone-a"),
    ]
}

fn vector_keys() -> Vec<String> {
    let mut keys: Vec<String> = (0..90).map(|i| format!("key:{i}")).collect();
    keys.extend(["a", "Z", "ключ", "emoji😀", "a/b/c"].map(String::from));
    keys.push("x".repeat(250));
    keys.extend(
        (1..=4u64).map(|i| format!("session:{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15))),
    );
    keys
}

fn render() -> String {
    let nodes = vector_nodes();
    let mut out = String::from(
        "# ringcache zone walk test vectors (docs/placement.md, \"Zones\"). Do not edit by hand.\n\
         # Nodes, in configuration order: node<TAB>addr<TAB>name (- = none)<TAB>weight<TAB>zone\n",
    );
    write_header_nodes(&mut out, &nodes, true);
    let _ = writeln!(
        out,
        "# vnodes = {VNODES} (xxh3 only)\n\
         # Columns: hash<TAB>replicas<TAB>key<TAB>owners, primary first, by ring name"
    );
    for kind in [HashKind::Xxh3, HashKind::Ketama] {
        let ring = Ring::new(&nodes, kind, VNODES).expect("the vector nodes are valid");
        for replicas in REPLICAS {
            for key in vector_keys() {
                let _ = writeln!(
                    out,
                    "{kind}\t{replicas}\t{key}\t{}",
                    owners(&ring, &key, replicas)
                );
            }
        }
    }
    out
}

#[test]
fn zone_vectors_match_the_checked_in_file() {
    let (text, nodes, xxh3, ketama) = checked_in("zone_vectors.tsv", vector_nodes(), true, VNODES);
    let zone = |name: &str| {
        nodes
            .iter()
            .find(|n| n.ring_name() == name)
            .and_then(|n| n.zone.clone())
            .expect("an owner is a vector node")
    };
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 4, "bad vector line {line:?}");
        let ring = match f[0] {
            "xxh3" => &xxh3,
            "ketama" => &ketama,
            other => panic!("unknown hash {other:?}"),
        };
        let replicas: usize = f[1].parse().expect("replicas");
        assert_eq!(
            owners(ring, f[2], replicas),
            f[3],
            "{} {replicas} {:?}",
            f[0],
            f[2]
        );
        // The file itself shows the rule: the first min(replicas, 3) owners in distinct zones.
        let mut zones: Vec<String> = f[3].split(',').take(replicas.min(3)).map(zone).collect();
        zones.sort();
        zones.dedup();
        assert_eq!(zones.len(), replicas.min(3), "{line}");
        checked += 1;
    }
    assert_eq!(checked, 400, "100 keys per placement and replica count");
    assert_eq!(
        text,
        render(),
        "the file is exactly what regenerate_zone_vectors writes"
    );
}

#[test]
#[ignore]
fn regenerate_zone_vectors() {
    std::fs::write(vectors_path(), render()).expect("write zone_vectors.tsv");
}
