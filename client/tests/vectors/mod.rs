//! What the two published vector files (`ring_vectors.rs`, `zone_vectors.rs`) share: where the
//! files are, how a node is written in and read back from a file's `# node` header, and how a
//! key's owners are written (ring names, primary first, comma-separated).

use std::fmt::Write as _;
use std::path::PathBuf;

use ringcache_client::ring::{HashKind, NodeSpec, Ring};

/// `client/tests/data/NAME`.
pub fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// The owners of `key`, `replicas` of them, by ring name, primary first.
pub fn owners(ring: &Ring, key: &str, replicas: usize) -> String {
    ring.replicas(key.as_bytes(), replicas)
        .iter()
        .map(|&i| ring.nodes()[i].ring_name())
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes `# node<TAB>addr<TAB>name (- = none)<TAB>weight`, and `<TAB>zone (- = none)` when
/// `zones`, for each node.
pub fn write_header_nodes(out: &mut String, nodes: &[NodeSpec], zones: bool) {
    for n in nodes {
        let _ = write!(
            out,
            "# node\t{}\t{}\t{}",
            n.addr,
            n.name.as_deref().unwrap_or("-"),
            n.weight
        );
        if zones {
            let _ = write!(out, "\t{}", n.zone.as_deref().unwrap_or("-"));
        }
        out.push('\n');
    }
}

/// The node list as the file's header states it (the lines [`write_header_nodes`] writes,
/// with a zone column when `zones`).
pub fn header_nodes(text: &str, zones: bool) -> Vec<NodeSpec> {
    let fields = if zones { 4 } else { 3 };
    text.lines()
        .filter_map(|l| l.strip_prefix("# node\t"))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), fields, "bad node line {l:?}");
            let mut n = NodeSpec::new(f[0]).weighted(f[2].parse().expect("weight"));
            if zones {
                n = n.in_zone(f[3]);
            }
            if f[1] == "-" {
                n
            } else {
                n.named(f[1])
            }
        })
        .collect()
}

/// The checked-in file `name`, after checking its header names the fixed node list `fixed`,
/// with the xxh3 and ketama rings of that list (`vnodes` for xxh3).
pub fn checked_in(
    name: &str,
    fixed: Vec<NodeSpec>,
    zones: bool,
    vnodes: u32,
) -> (String, Vec<NodeSpec>, Ring, Ring) {
    let text = std::fs::read_to_string(data_path(name))
        .unwrap_or_else(|e| panic!("{name} is checked in: {e}"));
    let nodes = header_nodes(&text, zones);
    assert_eq!(nodes, fixed, "the header names the fixed node list");
    let xxh3 = Ring::new(&nodes, HashKind::Xxh3, vnodes).unwrap();
    let ketama = Ring::new(&nodes, HashKind::Ketama, vnodes).unwrap();
    (text, nodes, xxh3, ketama)
}
