//! The virtual-node hash ring: which nodes own a key (docs/placement.md, docs/architecture.md §4).
//!
//! Two placements, both fixed forever because moving a placement means a cold cache:
//! - **xxh3** (default, [`xxh3`]): each node contributes `vnodes × weight` points, point *i* of
//!   a node at `xxh3_64("<name>-<i>")`; a key sits at `xxh3_64(key)`.
//! - **ketama** ([`ketama`]): libmemcached's and twemproxy's (`distribution: ketama`,
//!   `hash: md5`) continuum, reproduced point for point, so a cluster can move from them
//!   without going cold.
//!
//! A key's primary is the node of the first point at or after its position, wrapping to the
//! first point; its replica set is the first `replicas` *distinct* nodes met walking clockwise
//! from there. When two points share a position, the one of the node listed first in the
//! configuration comes first (for ketama this matches twemproxy built on glibc, whose `qsort`
//! keeps insertion order). Locating a key is one hash and a binary search, with no allocation.
//!
//! When the members have zones ([`NodeSpec::zone`]), the walk takes a node only if its zone is
//! not used yet, so a key's first `min(replicas, zones)` copies sit in distinct zones; the rest
//! (more replicas than zones) are filled by a second walk over distinct nodes. Without zones the
//! walk is exactly the zone-less one above: the same code, untouched.

mod diff;
pub mod ketama;
mod node;
pub mod xxh3;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;

use crate::error::Error;
pub use diff::{diff, shares, zone_outage, MovedArc, NodeMove, RingDiff};
pub use node::{check_zone, split_host_port, NodeSpec};

/// Which placement a ring uses (`[ring] hash` in the config file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashKind {
    /// ringcache's own placement: xxh3 over `vnodes × weight` points per node.
    #[default]
    Xxh3,
    /// libmemcached / twemproxy ketama (md5, 160 points per server scaled by weight).
    Ketama,
}

impl HashKind {
    /// The config-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            HashKind::Xxh3 => "xxh3",
            HashKind::Ketama => "ketama",
        }
    }
}

impl fmt::Display for HashKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HashKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<HashKind, Error> {
        match s {
            "xxh3" => Ok(HashKind::Xxh3),
            "ketama" => Ok(HashKind::Ketama),
            other => Err(Error::Config(format!(
                "hash {other:?}: expected \"xxh3\" or \"ketama\""
            ))),
        }
    }
}

/// Default ring points per node per unit of weight (xxh3 only; ketama always uses 160).
pub const DEFAULT_VNODES: u32 = 160;

/// Default copies of each key (docs/cluster.md): one node can fail without losing reads. The
/// one default for every program and for `RouterOptions`.
pub const DEFAULT_REPLICAS: usize = 2;

/// Most points a ring may have (about 48 MiB of ring): far above any real cluster, low enough
/// that a typo in `vnodes` or `weight` is an error rather than an out-of-memory kill.
pub const MAX_POINTS: u64 = 1 << 22;

/// An immutable ring. Cloning is cheap (the points are shared).
#[derive(Clone)]
pub struct Ring {
    inner: Arc<Inner>,
}

struct Inner {
    kind: HashKind,
    vnodes: u32,
    nodes: Vec<NodeSpec>,
    /// Point positions, ascending; ties ordered by node index. Kept apart from `owners` so the
    /// binary search touches only 8 bytes per probe.
    positions: Vec<u64>,
    /// `owners[i]` is the node index of the point at `positions[i]`.
    owners: Vec<u32>,
    /// The members' zones, when they have them (all or none do: `node::validate`).
    zones: Option<Zones>,
}

/// Each member's zone as a small number, so the walk compares integers, not strings.
struct Zones {
    /// `of[node index]`: the node's zone id, in order of first appearance in the config.
    of: Vec<u32>,
    /// Distinct zones.
    count: usize,
}

impl Zones {
    fn of(nodes: &[NodeSpec]) -> Option<Zones> {
        let mut names: Vec<&str> = Vec::new();
        let mut of = Vec::with_capacity(nodes.len());
        for n in nodes {
            let z = n.zone.as_deref()?;
            let id = names.iter().position(|&m| m == z).unwrap_or_else(|| {
                names.push(z);
                names.len() - 1
            });
            of.push(u32::try_from(id).unwrap_or(u32::MAX));
        }
        (!nodes.is_empty()).then_some(Zones {
            of,
            count: names.len(),
        })
    }
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("kind", &self.inner.kind)
            .field("vnodes", &self.inner.vnodes)
            .field("nodes", &self.inner.nodes)
            .field("points", &self.inner.positions.len())
            .field("zones", &self.zone_count())
            .finish()
    }
}

impl Ring {
    /// Builds the ring for `nodes` (in configuration order; node indexes refer to it).
    ///
    /// Refuses `vnodes == 0`, a zero weight, an address that is not `host:port`, a name with
    /// spaces or commas, two members with the same address or name, and rings over
    /// [`MAX_POINTS`]. `vnodes` is ignored by ketama, whose point count is fixed.
    pub fn new(nodes: &[NodeSpec], kind: HashKind, vnodes: u32) -> Result<Ring, Error> {
        if vnodes == 0 {
            return Err(Error::Config("vnodes must be at least 1".into()));
        }
        node::validate(nodes, kind)?;
        let points = match kind {
            HashKind::Xxh3 => {
                let count = xxh3::point_count(nodes, vnodes);
                if count > MAX_POINTS {
                    return Err(Error::Config(format!(
                        "the ring would have {count} points (vnodes × weights), over {MAX_POINTS}"
                    )));
                }
                xxh3::points(nodes, vnodes)
            }
            HashKind::Ketama => ketama::points(nodes)?,
        };
        Ok(Ring::assemble(kind, vnodes, nodes, points))
    }

    /// Orders `points` and freezes the ring.
    fn assemble(
        kind: HashKind,
        vnodes: u32,
        nodes: &[NodeSpec],
        mut points: Vec<(u64, u32)>,
    ) -> Ring {
        // A total order on (position, node index): equal positions fall to the lower index,
        // whatever order the points were generated in.
        points.sort_unstable();
        let (positions, owners) = points.into_iter().unzip();
        Ring {
            inner: Arc::new(Inner {
                kind,
                vnodes,
                nodes: nodes.to_vec(),
                positions,
                owners,
                zones: Zones::of(nodes),
            }),
        }
    }

    /// The members, in configuration order (node indexes refer to this).
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.inner.nodes
    }

    /// Distinct zones among the members; 0 when they have none (zone-less placement).
    pub fn zone_count(&self) -> usize {
        self.inner.zones.as_ref().map_or(0, |z| z.count)
    }

    /// The placement in use.
    pub fn kind(&self) -> HashKind {
        self.inner.kind
    }

    /// The `vnodes` the ring was built with (meaningful for xxh3 only).
    pub fn vnodes(&self) -> u32 {
        self.inner.vnodes
    }

    /// Whether the ring has no points (no nodes): every lookup answers `None` / nothing.
    pub fn is_empty(&self) -> bool {
        self.inner.positions.is_empty()
    }

    /// The number of points on the ring.
    pub fn point_count(&self) -> usize {
        self.inner.positions.len()
    }

    /// The points in ring order, as `(position, node index)`.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u64, usize)> + '_ {
        self.inner
            .positions
            .iter()
            .zip(&self.inner.owners)
            .map(|(&p, &o)| (p, o as usize))
    }

    /// Size of the hash space: 2^64 for xxh3, 2^32 for ketama.
    pub fn space(&self) -> u128 {
        match self.inner.kind {
            HashKind::Xxh3 => 1u128 << 64,
            HashKind::Ketama => 1u128 << 32,
        }
    }

    /// The position of `key` on the ring (below 2^32 for ketama).
    #[inline]
    pub fn key_hash(&self, key: &[u8]) -> u64 {
        match self.inner.kind {
            HashKind::Xxh3 => xxh3::key_hash(key),
            HashKind::Ketama => u64::from(ketama::key_hash(key)),
        }
    }

    /// Index of the first point at or after `hash`, wrapping to 0 (twemproxy's
    /// `ketama_dispatch`: first `value >= hash`). Callers ensure the ring is not empty.
    #[inline]
    fn point_at(&self, hash: u64) -> usize {
        let i = self.inner.positions.partition_point(|&p| p < hash);
        if i == self.inner.positions.len() {
            0
        } else {
            i
        }
    }

    /// The primary owner of `key` (an index into [`Ring::nodes`]); `None` for an empty ring.
    #[inline]
    pub fn primary(&self, key: &[u8]) -> Option<usize> {
        self.primary_of_hash(self.key_hash(key))
    }

    /// The primary owner of the ring position `hash`; `None` for an empty ring.
    #[inline]
    pub fn primary_of_hash(&self, hash: u64) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        Some(self.inner.owners[self.point_at(hash)] as usize)
    }

    /// Writes the owners of `key`, primary first, into `out` and their number into `len`:
    /// the first `min(n, node count, out.len())` distinct nodes clockwise from the key.
    /// No allocation, so it can sit on the request path.
    #[inline]
    pub fn replicas_into(&self, key: &[u8], n: usize, out: &mut [usize], len: &mut usize) {
        self.owners_of_hash(self.key_hash(key), n, out, len);
    }

    /// Like [`Ring::replicas_into`] for a ring position.
    pub fn owners_of_hash(&self, hash: u64, n: usize, out: &mut [usize], len: &mut usize) {
        *len = 0;
        let points = self.inner.owners.len();
        if points == 0 {
            return;
        }
        let want = n.min(self.inner.nodes.len()).min(out.len());
        let start = self.point_at(hash);
        let owners = &self.inner.owners;
        let at = |k: usize| {
            let i = start + k;
            owners[if i >= points { i - points } else { i }] as usize
        };
        if let Some(zones) = &self.inner.zones {
            // First lap: one node per zone, until as many zones as copies (or every zone) are
            // used. A node's zone being unused implies the node is not chosen yet.
            let spread = want.min(zones.count);
            for k in 0..points {
                if *len >= spread {
                    break;
                }
                let node = at(k);
                let zone = zones.of[node];
                if !out[..*len].iter().any(|&m| zones.of[m] == zone) {
                    out[*len] = node;
                    *len += 1;
                }
            }
        }
        // (The only lap without zones; the filling lap with fewer zones than copies.) At most
        // one lap: a node without points (ketama can give a very light node none) is simply
        // never met.
        for k in 0..points {
            if *len == want {
                break;
            }
            let node = at(k);
            if !out[..*len].contains(&node) {
                out[*len] = node;
                *len += 1;
            }
        }
    }

    /// The owners of `key`, primary first, as a vector (convenience; allocates).
    pub fn replicas(&self, key: &[u8], n: usize) -> Vec<usize> {
        let mut buf = vec![0; n.min(self.inner.nodes.len())];
        let mut len = 0;
        self.replicas_into(key, n, &mut buf, &mut len);
        buf.truncate(len);
        buf
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod zone_tests;
