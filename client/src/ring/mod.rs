//! The virtual-node hash ring: which nodes own a key (DESIGN §5, docs/placement.md).
//!
//! Two placements:
//! - **xxh3** (default): each node contributes `vnodes × weight` points, point *i* of a node at
//!   `xxh3_64("<name>-<i>")`; a key hashes to `xxh3_64(key)`.
//! - **ketama**: libmemcached's and twemproxy's (`distribution: ketama`, `hash: md5`) continuum,
//!   reproduced point for point ([`ketama`]), so a cluster can move from them without going cold.
//!
//! A key's primary is the node of the first point at or after its hash, wrapping around; its
//! replica set is the first `replicas` *distinct* nodes met walking clockwise from there.
//! Lookup is one hash and a binary search, with no allocation.

mod diff;
mod ketama;

use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::Error;
pub use diff::{diff, MovedArc, RingDiff};

/// Which placement a ring uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    #[default]
    Xxh3,
    Ketama,
}

/// One member of the cluster, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// `host:port` to connect to.
    pub addr: String,
    /// The identity hashed onto the ring; defaults to `addr`. Keeping the name while changing
    /// the address moves no keys.
    #[serde(default)]
    pub name: Option<String>,
    /// Relative share of the keyspace (points = vnodes × weight).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

impl NodeSpec {
    /// A node known by its address only.
    pub fn new(addr: impl Into<String>) -> NodeSpec {
        NodeSpec {
            addr: addr.into(),
            name: None,
            weight: 1,
        }
    }

    /// The name on the ring (configured name, else the address).
    pub fn ring_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.addr)
    }
}

/// An immutable ring.
#[derive(Debug, Clone)]
pub struct Ring {
    kind: HashKind,
    nodes: Vec<NodeSpec>,
    /// `(position, node index)`, sorted by position then node index (ties break by config order).
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// Builds the ring for `nodes`. Refuses duplicate names or addresses, a zero weight, and an
    /// address that is not `host:port`.
    pub fn new(nodes: &[NodeSpec], kind: HashKind, vnodes: u32) -> Result<Ring, Error> {
        for (i, n) in nodes.iter().enumerate() {
            if n.weight == 0 {
                return Err(Error::Config(format!(
                    "node {}: weight must be at least 1",
                    n.addr
                )));
            }
            match n.addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
                _ => {
                    return Err(Error::Config(format!(
                        "node {:?}: addr must be host:port",
                        n.addr
                    )))
                }
            }
            for m in &nodes[..i] {
                if m.addr == n.addr || m.ring_name() == n.ring_name() {
                    return Err(Error::Config(format!(
                        "node {:?} appears twice (same name or address)",
                        n.ring_name()
                    )));
                }
            }
        }
        let mut points = match kind {
            HashKind::Xxh3 => xxh3_points(nodes, vnodes.max(1)),
            HashKind::Ketama => ketama::points(nodes),
        };
        points.sort_unstable();
        Ok(Ring {
            kind,
            nodes: nodes.to_vec(),
            points,
        })
    }

    /// The members, in configuration order (node indexes refer to this).
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }

    /// The placement in use.
    pub fn kind(&self) -> HashKind {
        self.kind
    }

    /// The ring points, `(position, node index)`, sorted.
    pub fn points(&self) -> &[(u64, u32)] {
        &self.points
    }

    /// Size of the hash space: 2^64 for xxh3, 2^32 for ketama.
    pub fn space(&self) -> u128 {
        match self.kind {
            HashKind::Xxh3 => 1u128 << 64,
            HashKind::Ketama => 1u128 << 32,
        }
    }

    /// The position of `key` on the ring.
    #[inline]
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        match self.kind {
            HashKind::Xxh3 => xxh3_64(key),
            HashKind::Ketama => u64::from(ketama::key_hash(key)),
        }
    }

    /// Index into `points` of the first point at or after `hash`, wrapping.
    #[inline]
    fn point_at(&self, hash: u64) -> usize {
        let i = self.points.partition_point(|&(p, _)| p < hash);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// The primary owner of `key`; `None` for an empty ring.
    #[inline]
    pub fn primary(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.points[self.point_at(self.key_hash(key))].1 as usize)
    }

    /// Writes the owners of `key`, primary first, into `out` (at most `out.len()` and at most
    /// `n` distinct nodes) and sets `len`.
    #[inline]
    pub fn replicas_into(&self, key: &[u8], n: usize, out: &mut [usize], len: &mut usize) {
        self.owners_of_hash(self.key_hash(key), n, out, len);
    }

    /// Like [`Ring::replicas_into`] for a position on the ring.
    pub fn owners_of_hash(&self, hash: u64, n: usize, out: &mut [usize], len: &mut usize) {
        *len = 0;
        if self.points.is_empty() {
            return;
        }
        let want = n.min(self.nodes.len()).min(out.len());
        let start = self.point_at(hash);
        for k in 0..self.points.len() {
            if *len == want {
                break;
            }
            let node = self.points[(start + k) % self.points.len()].1 as usize;
            if !out[..*len].contains(&node) {
                out[*len] = node;
                *len += 1;
            }
        }
    }

    /// The owners of `key` as a vector (convenience; allocates).
    pub fn replicas(&self, key: &[u8], n: usize) -> Vec<usize> {
        let mut buf = vec![0; n.min(self.nodes.len())];
        let mut len = 0;
        self.replicas_into(key, n, &mut buf, &mut len);
        buf.truncate(len);
        buf
    }
}

fn xxh3_points(nodes: &[NodeSpec], vnodes: u32) -> Vec<(u64, u32)> {
    let mut points = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let name = n.ring_name();
        for p in 0..u64::from(vnodes) * u64::from(n.weight) {
            points.push((xxh3_64(format!("{name}-{p}").as_bytes()), i as u32));
        }
    }
    points
}

#[cfg(test)]
mod tests;
