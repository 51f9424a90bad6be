//! The cluster as the router sees it at one moment: the ring and, per node, its connections and
//! health. Replaced whole (never mutated) when membership changes, so a request holds one
//! consistent view from start to end while `set_nodes` swaps in the next.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::connection::{ConnectOptions, Connection};
use crate::health::Health;
use crate::ring::{HashKind, NodeSpec, Ring};
use crate::Error;

/// Whether a node takes meta `ms ... E<cas>` (memcached ≥ 1.6.27 and ringcache do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasSupport {
    Unknown = 0,
    Yes = 1,
    No = 2,
}

/// One node: where it is, its pipelined connections, its health and metrics handles.
pub struct NodeEntry {
    pub spec: NodeSpec,
    /// The name used in metrics and `ring locate` (configured name, else addr).
    pub name: String,
    conns: Vec<Connection>,
    next: AtomicUsize,
    pub health: Health,
    explicit_cas: AtomicU8,
    pub metrics: NodeMetrics,
}

/// Per-node metric handles, registered once when the node joins.
pub struct NodeMetrics {
    pub requests: Counter,
    pub errors: Counter,
    pub latency: Histogram,
    pub up: Gauge,
}

impl NodeEntry {
    /// Starts `per_node` connections to the node (they connect in the background).
    pub fn new(
        spec: NodeSpec,
        per_node: usize,
        opts: ConnectOptions,
        failure_limit: u32,
    ) -> NodeEntry {
        let name = spec.name.clone().unwrap_or_else(|| spec.addr.clone());
        let conns = (0..per_node.max(1))
            .map(|_| Connection::new(&spec.addr, opts))
            .collect();
        let metrics = NodeMetrics {
            requests: counter!("ringcache_client_requests_total", "node" => name.clone()),
            errors: counter!("ringcache_client_errors_total", "node" => name.clone()),
            latency: histogram!("ringcache_client_request_duration_seconds", "node" => name.clone()),
            up: gauge!("ringcache_client_node_up", "node" => name.clone()),
        };
        metrics.up.set(1.0);
        NodeEntry {
            spec,
            name,
            conns,
            next: AtomicUsize::new(0),
            health: Health::new(failure_limit),
            explicit_cas: AtomicU8::new(CasSupport::Unknown as u8),
            metrics,
        }
    }

    /// The next connection, round robin (lock-free).
    #[inline]
    pub fn conn(&self) -> &Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        &self.conns[i]
    }

    /// All of the node's connections.
    pub fn conns(&self) -> &[Connection] {
        &self.conns
    }

    /// Whether the node takes an explicit CAS on `ms`.
    pub fn cas_support(&self) -> CasSupport {
        match self.explicit_cas.load(Ordering::Relaxed) {
            1 => CasSupport::Yes,
            2 => CasSupport::No,
            _ => CasSupport::Unknown,
        }
    }

    /// Records what the node's `VERSION` line says about explicit CAS.
    pub fn learn_version(&self, version: &str) -> CasSupport {
        let s = if version_supports_explicit_cas(version) {
            CasSupport::Yes
        } else {
            CasSupport::No
        };
        self.explicit_cas.store(s as u8, Ordering::Relaxed);
        s
    }
}

/// memcached added `ms ... E<cas>` in 1.6.27; ringcache nodes always have it.
pub fn version_supports_explicit_cas(version: &str) -> bool {
    if version.contains("ringcache") {
        return true;
    }
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().unwrap_or(0));
    let (a, b, c) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    (a, b, c) >= (1, 6, 27)
}

/// One immutable view of the cluster.
pub struct Topology {
    pub ring: Ring,
    /// Same order as `ring.nodes()`.
    pub nodes: Vec<Arc<NodeEntry>>,
    pub replicas: usize,
    pub hash: HashKind,
    pub vnodes: u32,
}

impl Topology {
    /// No nodes: every key misses its owners (used before the first membership arrives).
    pub fn empty() -> Topology {
        Topology {
            ring: Ring::new(&[], HashKind::Xxh3, 1).expect("an empty ring is valid"),
            nodes: Vec::new(),
            replicas: 1,
            hash: HashKind::Xxh3,
            vnodes: 1,
        }
    }

    /// Builds a topology for `specs`, reusing the entries (connections, health) of nodes that
    /// are also in `previous` so a membership change does not reconnect unchanged nodes.
    pub fn build(
        specs: &[NodeSpec],
        hash: HashKind,
        vnodes: u32,
        replicas: usize,
        previous: Option<&Topology>,
        make: impl Fn(&NodeSpec) -> NodeEntry,
    ) -> Result<Topology, Error> {
        let ring = Ring::new(specs, hash, vnodes)?;
        let nodes = specs
            .iter()
            .map(|s| {
                previous
                    .and_then(|p| p.nodes.iter().find(|n| n.spec == *s).cloned())
                    .unwrap_or_else(|| Arc::new(make(s)))
            })
            .collect();
        Ok(Topology {
            ring,
            nodes,
            replicas: replicas.max(1),
            hash,
            vnodes,
        })
    }

    /// The replica set of `key`, primary first, as node indexes (no allocation for ≤ 4).
    #[inline]
    pub fn owners(&self, key: &[u8]) -> Owners {
        let mut out = Owners::default();
        self.ring
            .replicas_into(key, self.replicas, &mut out.buf, &mut out.len);
        out
    }
}

/// Up to [`MAX_REPLICAS`] node indexes, stored inline.
pub const MAX_REPLICAS: usize = 8;

/// A key's owners, primary first.
#[derive(Debug, Default, Clone, Copy)]
pub struct Owners {
    buf: [usize; MAX_REPLICAS],
    len: usize,
}

impl Owners {
    /// The owners as a slice.
    pub fn as_slice(&self) -> &[usize] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_cas_versions() {
        assert!(!version_supports_explicit_cas("1.6.18"));
        assert!(!version_supports_explicit_cas("1.6.26"));
        assert!(version_supports_explicit_cas("1.6.27"));
        assert!(version_supports_explicit_cas("1.6.40"));
        assert!(version_supports_explicit_cas("1.7.0"));
        assert!(version_supports_explicit_cas("1.6.38-ringcache-0.1.0"));
        assert!(!version_supports_explicit_cas("garbage"));
    }
}
