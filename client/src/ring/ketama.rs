//! libmemcached / twemproxy ketama placement (`hash = "ketama"`), point for point, so a cluster
//! fronted by nutcracker (`distribution: ketama`, `hash: md5`) or by libmemcached clients with
//! weighted ketama can move to ringcache without going cold.
//!
//! Reproduced from twemproxy's `ketama_update`/`ketama_dispatch` (src/hashkit/nc_ketama.c),
//! `hash_md5` (nc_md5.c) and `conf_add_server` (nc_conf.c):
//! - per server, `floorf((float)(pct × 160 / 4 × servers + 0.0000000001)) × 4` points, where
//!   `pct = (float)weight / (float)total_weight` and the arithmetic is done in `float` (the
//!   `+ 1e-10` in `double`), exactly as C evaluates it — a reimplementation in `f64` gives a
//!   different count for some weightings;
//! - the points come from `points / 4` md5 digests of `"<name>-<i>"` (`i` from 0), each digest
//!   giving four little-endian u32 points, from bytes 0–3, 4–7, 8–11 and 12–15;
//! - `name` is [`NodeSpec::ketama_name`]: the configured name, else `host` when the port is
//!   11211, else `host:port`;
//! - a key sits at the first four bytes of `md5(key)`, little-endian, and twemproxy sends an
//!   empty key to position 0 (memcached never accepts one, so this only matters for exactness).

use std::fmt::Write as _;

use md5::{Digest, Md5};

use super::NodeSpec;
use crate::error::Error;

/// twemproxy's `KETAMA_POINTS_PER_SERVER`.
const POINTS_PER_SERVER: f32 = 160.0;

/// twemproxy formats each point string into a `char[KETAMA_MAX_HOSTLEN]` (86) buffer; a longer
/// string is truncated there (and then hashed past the buffer), so it cannot be reproduced.
const MAX_POINT_STRING: usize = 85;

/// The md5 position of a key.
#[inline]
pub fn key_hash(key: &[u8]) -> u32 {
    if key.is_empty() {
        return 0;
    }
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// How many points each node gets (always a multiple of 4), in node order.
pub fn points_per_node(nodes: &[NodeSpec]) -> Vec<u32> {
    // twemproxy sums weights in a uint32_t; `Ring::new` refuses totals that would overflow it.
    let total: u32 = nodes.iter().fold(0u32, |acc, n| acc.wrapping_add(n.weight));
    let servers = nodes.len() as f32;
    nodes
        .iter()
        .map(|n| {
            // Each step as C evaluates it: float * float / float * float, then + double, then
            // the (float) cast and floorf.
            let pct = n.weight as f32 / total as f32;
            let x = pct * POINTS_PER_SERVER / 4.0 * servers;
            let floored = ((f64::from(x) + 0.0000000001) as f32).floor();
            (floored as u32) * 4
        })
        .collect()
}

/// Every point of every node, `(position, node index)`, unsorted.
pub(super) fn points(nodes: &[NodeSpec]) -> Result<Vec<(u64, u32)>, Error> {
    let total_weight: u64 = nodes.iter().map(|n| u64::from(n.weight)).sum();
    if total_weight > u64::from(u32::MAX) {
        return Err(Error::Config(format!(
            "ketama: the weights add up to {total_weight}, more than twemproxy's 32-bit total"
        )));
    }
    let per_node = points_per_node(nodes);
    let mut out = Vec::with_capacity(per_node.iter().map(|&p| p as usize).sum());
    let mut buf = String::new();
    for ((index, node), count) in (0u32..).zip(nodes).zip(per_node) {
        let name = node.ketama_name();
        for i in 0..count / 4 {
            buf.clear();
            // Writing into a String cannot fail.
            let _ = write!(buf, "{name}-{i}");
            if buf.len() > MAX_POINT_STRING {
                return Err(Error::Config(format!(
                    "ketama: point string {buf:?} of node {:?} is longer than the {MAX_POINT_STRING} \
                     bytes twemproxy can hash; give the node a shorter name",
                    node.ring_name()
                )));
            }
            let d = Md5::digest(buf.as_bytes());
            for w in d.chunks_exact(4) {
                let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                out.push((u64::from(v), index));
            }
        }
    }
    Ok(out)
}
