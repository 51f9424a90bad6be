//! libmemcached / twemproxy ketama placement, point for point (twemproxy's `nc_ketama.c`).
//!
//! Per server: `floor(weight/total × 160/4 × servers + 1e-10) × 4` points, from
//! `points/4` md5 digests of `"<name>-<i>"`, each digest giving four little-endian u32 points.
//! The name is the configured one, else `host` when the port is 11211 (libmemcached's
//! convention, which twemproxy keeps), else `host:port`. A key's position is the first four
//! bytes of `md5(key)`, little-endian.

use md5::{Digest, Md5};

use super::NodeSpec;

const POINTS_PER_SERVER: f32 = 160.0;

/// The md5 position of a key.
pub fn key_hash(key: &[u8]) -> u32 {
    let d = Md5::digest(key);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// The name ketama hashes for a node.
pub fn point_name(n: &NodeSpec) -> String {
    if let Some(name) = &n.name {
        return name.clone();
    }
    match n.addr.rsplit_once(':') {
        Some((host, "11211")) => host.to_string(),
        _ => n.addr.clone(),
    }
}

/// The continuum for `nodes`, unsorted.
pub fn points(nodes: &[NodeSpec]) -> Vec<(u64, u32)> {
    let total: u32 = nodes.iter().map(|n| n.weight).sum();
    let count = nodes.len() as f32;
    let mut out = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let pct = n.weight as f32 / total as f32;
        // As twemproxy computes it: float arithmetic, then a double epsilon, then floorf.
        let per = ((f64::from(pct * POINTS_PER_SERVER / 4.0 * count) + 0.0000000001) as f32).floor()
            as u32
            * 4;
        let name = point_name(n);
        for p in 0..per / 4 {
            let d = Md5::digest(format!("{name}-{p}").as_bytes());
            for x in 0..4 {
                let v = u32::from_le_bytes([d[x * 4], d[x * 4 + 1], d[x * 4 + 2], d[x * 4 + 3]]);
                out.push((u64::from(v), i as u32));
            }
        }
    }
    out
}
