//! ringcache's own placement (`hash = "xxh3"`, the default): the ring points of each node and
//! the position of a key.
//!
//! Point *i* (0-based, `0 ≤ i < vnodes × weight`) of a node is `xxh3_64("<name>-<i>")`, with
//! `name` the node's configured name or else its `host:port` address and `i` in decimal; a key
//! sits at `xxh3_64(key)`. xxh3 with seed 0 is specified byte for byte and endian-independent,
//! so the placement is the same on every platform and in every release.

use std::fmt::Write as _;

use xxhash_rust::xxh3::xxh3_64;

use super::NodeSpec;

/// The position of a key on an xxh3 ring.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

/// Number of points `nodes` get with `vnodes` per unit of weight.
pub(super) fn point_count(nodes: &[NodeSpec], vnodes: u32) -> u64 {
    nodes
        .iter()
        .map(|n| u64::from(vnodes) * u64::from(n.weight))
        .sum()
}

/// Every point of every node, `(position, node index)`, unsorted.
pub(super) fn points(nodes: &[NodeSpec], vnodes: u32) -> Vec<(u64, u32)> {
    let total = usize::try_from(point_count(nodes, vnodes)).unwrap_or(0);
    let mut out = Vec::with_capacity(total);
    // One buffer reused for every point string: building a ring with many nodes stays cheap.
    let mut buf = String::new();
    for (index, node) in (0u32..).zip(nodes) {
        let name = node.ring_name();
        for i in 0..u64::from(vnodes) * u64::from(node.weight) {
            buf.clear();
            // Writing into a String cannot fail.
            let _ = write!(buf, "{name}-{i}");
            out.push((xxh3_64(buf.as_bytes()), index));
        }
    }
    out
}
