//! The cluster as the router sees it at one moment: the ring and, per node, its connections and
//! health. Replaced whole (never mutated) when membership changes, so a request holds one
//! consistent view from start to end while `set_nodes` swaps in the next.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use metrics::{counter, gauge, histogram, Counter, Gauge, Histogram};

use crate::connection::{ConnectOptions, Connection};
use crate::health::{Health, HintLimits};
use crate::metric_names as names;
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
    /// Where the node stands from its router's zone; `None` while the router has no zone
    /// ([`NodeEntry::located`]).
    locality: Option<Locality>,
}

/// A node seen from a router that knows its own zone (docs/placement.md, "Zones").
struct Locality {
    /// The node runs in the router's zone: its reads are asked first ([`Topology::read_owners`]).
    in_zone: bool,
    /// `ringcache_client_zone_reads_total` with `zone="in"` or `zone="cross"`, as fits the node.
    served: Counter,
}

/// How often a router marks its nodes' metric series as in use ([`NodeMetrics::keep_alive`]);
/// a recorder that drops idle series must wait many times this long.
pub const NODE_METRICS_KEEP_ALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// Per-node metric handles, registered once when the node joins.
///
/// The servers' recorder drops a per-node series that has not been touched for a while
/// (`src/metrics.rs`), which is how a node that left every ring leaves `/metrics`: a
/// Prometheus recorder has no call to remove one series. So while the node is a member of
/// some ring its router calls [`NodeMetrics::keep_alive`] every [`NODE_METRICS_KEEP_ALIVE`],
/// and the latency histogram, which cannot be touched without a sample, is registered again
/// when it may have been dropped ([`NodeLatency`]).
pub struct NodeMetrics {
    pub requests: Counter,
    pub errors: Counter,
    pub latency: NodeLatency,
    pub up: Gauge,
    /// Keys the node missed and that wait for replay (hinted handoff).
    pub hints: Gauge,
    /// Times its hint log overflowed (each costs a flush and re-warm).
    pub hints_overflowed: Counter,
    /// Hinted keys replayed to it.
    pub hints_replayed: Counter,
    /// Times another process was found where the node was (flushed, fenced, re-warmed).
    pub restarts: Counter,
}

impl NodeMetrics {
    /// Registers the node's series under `node = name`.
    fn register(name: &str) -> NodeMetrics {
        NodeMetrics {
            requests: counter!(names::CLIENT_REQUESTS_TOTAL, "node" => name.to_string()),
            errors: counter!(names::CLIENT_ERRORS_TOTAL, "node" => name.to_string()),
            latency: NodeLatency::new(name),
            up: gauge!(names::CLIENT_NODE_UP, "node" => name.to_string()),
            hints: gauge!(names::CLIENT_HINTS, "node" => name.to_string()),
            hints_overflowed: counter!(names::CLIENT_HINTS_OVERFLOWED_TOTAL, "node" => name.to_string()),
            hints_replayed: counter!(names::CLIENT_HINTS_REPLAYED_TOTAL, "node" => name.to_string()),
            restarts: counter!(names::CLIENT_NODE_RESTARTS_TOTAL, "node" => name.to_string()),
        }
    }

    /// Marks every series of the node as still in use without changing a value, so a recorder
    /// that drops idle series keeps them; a node no longer kept alive (it left every ring and
    /// its transition ended) has its series dropped after the recorder's idle timeout.
    pub fn keep_alive(&self) {
        self.requests.increment(0);
        self.errors.increment(0);
        self.hints_overflowed.increment(0);
        self.hints_replayed.increment(0);
        self.restarts.increment(0);
        self.up.increment(0.0);
        self.hints.increment(0.0);
        self.latency.recheck.store(true, Ordering::Relaxed);
    }
}

/// The node's request-latency histogram. A histogram cannot be marked alive without recording
/// a sample, so one that got no sample for the recorder's idle timeout is dropped even while
/// its node is a member, and the handle taken before would then record into nothing for good
/// (metrics-rs/metrics#372). So the first sample after each keep-alive takes the handle again:
/// the registry returns the same series while it exists and a new one once it was dropped.
/// That is one registry lookup per node and keep-alive, not one per request.
pub struct NodeLatency {
    node: String,
    handle: ArcSwap<Histogram>,
    recheck: AtomicBool,
}

impl NodeLatency {
    fn new(node: &str) -> NodeLatency {
        NodeLatency {
            node: node.to_string(),
            handle: ArcSwap::from_pointee(Self::handle(node)),
            recheck: AtomicBool::new(false),
        }
    }

    fn handle(node: &str) -> Histogram {
        histogram!(names::CLIENT_REQUEST_DURATION_SECONDS, "node" => node.to_string())
    }

    /// Records one request's latency in seconds.
    #[inline]
    pub fn record(&self, seconds: f64) {
        if self.recheck.load(Ordering::Relaxed) && self.recheck.swap(false, Ordering::Relaxed) {
            self.handle.store(Arc::new(Self::handle(&self.node)));
        }
        self.handle.load().record(seconds);
    }
}

impl NodeEntry {
    /// Starts `per_node` connections to the node (they connect in the background).
    pub fn new(
        spec: NodeSpec,
        per_node: usize,
        opts: ConnectOptions,
        failure_limit: u32,
        hints: HintLimits,
    ) -> NodeEntry {
        let health = Health::with_limits(failure_limit, hints);
        NodeEntry::with_health(spec, per_node, opts, health)
    }

    /// [`NodeEntry::new`] with its health given: set before the first connection starts, so a
    /// node that must be probed before it serves (a stranger at a known name's new address)
    /// is down before any of its connections can open.
    pub fn with_health(
        spec: NodeSpec,
        per_node: usize,
        opts: ConnectOptions,
        health: Health,
    ) -> NodeEntry {
        let name = spec.name.clone().unwrap_or_else(|| spec.addr.clone());
        let conns = (0..per_node.max(1))
            .map(|_| Connection::new(&spec.addr, opts.clone()))
            .collect();
        let metrics = NodeMetrics::register(&name);
        metrics.up.set(if health.is_usable() { 1.0 } else { 0.0 });
        NodeEntry {
            spec,
            name,
            conns,
            next: AtomicUsize::new(0),
            health,
            explicit_cas: AtomicU8::new(CasSupport::Unknown as u8),
            metrics,
            locality: None,
        }
    }

    /// The same entry seen from a router in zone `router_zone` (none: no locality, and no
    /// zone read counts). A node without a zone is never in the router's zone.
    pub fn located(mut self, router_zone: Option<&str>) -> NodeEntry {
        self.locality = router_zone.map(|z| {
            let in_zone = self.spec.zone.as_deref() == Some(z);
            let label = if in_zone { "in" } else { "cross" };
            Locality {
                in_zone,
                served: counter!(names::CLIENT_ZONE_READS_TOTAL, "zone" => label),
            }
        });
        self
    }

    /// Whether the node runs in its router's zone (false when the router has none).
    #[inline]
    pub fn in_zone(&self) -> bool {
        self.locality.as_ref().is_some_and(|l| l.in_zone)
    }

    /// Counts `keys` reads this node answered (a hit or a miss), in-zone or cross-zone.
    #[inline]
    pub fn served_reads(&self, keys: u64) {
        if let Some(l) = &self.locality {
            l.served.increment(keys);
        }
    }

    /// The connection for the next request: one whose output buffer already holds requests
    /// not yet written, else the next round robin (lock-free). A burst of requests (a
    /// pipelining client's read, a multi-get's keys) then leaves in one write per node rather
    /// than one per connection, and the node reads it in one batch: fewer segments and
    /// wake-ups per request on both sides, which is most of a proxied request's CPU time
    /// (bench/ANALYSIS.md). Under steady load every buffer empties at each turn of its
    /// socket's task, so the load still spreads.
    #[inline]
    pub fn conn(&self) -> &Connection {
        if let Some(c) = self.conns.iter().find(|c| c.is_filling()) {
            return c;
        }
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
    /// Rings the cluster is moving away from, newest first; empty outside a membership
    /// transition (docs/cluster.md). Reads that miss on the new owners fall back to these, deletes
    /// go to them too, and the migrator empties them.
    pub past: Vec<Arc<PastRing>>,
}

/// A ring a transition moves away from, with the node entries (connections, health) it needs
/// so that a node that has left the membership can still be read and drained.
pub struct PastRing {
    pub ring: Ring,
    /// Same order as `ring.nodes()`.
    pub nodes: Vec<Arc<NodeEntry>>,
    pub replicas: usize,
}

impl PastRing {
    /// The view `topo` stood for, as a past ring.
    pub fn of(topo: &Topology) -> PastRing {
        PastRing {
            ring: topo.ring.clone(),
            nodes: topo.nodes.clone(),
            replicas: topo.replicas,
        }
    }

    /// The owners of `key` in this ring, primary first.
    pub fn owners(&self, key: &[u8]) -> impl Iterator<Item = &Arc<NodeEntry>> + '_ {
        let mut out = Owners::default();
        self.ring
            .replicas_into(key, self.replicas, &mut out.buf, &mut out.len);
        (0..out.len).map(move |i| &self.nodes[out.buf[i]])
    }
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
            past: Vec::new(),
        }
    }

    /// Builds a topology for `specs`, reusing the entries (connections, health) of nodes that
    /// are in `known` so a membership change does not reconnect unchanged nodes.
    pub fn build(
        specs: &[NodeSpec],
        hash: HashKind,
        vnodes: u32,
        replicas: usize,
        known: &[Arc<NodeEntry>],
        make: impl Fn(&NodeSpec) -> Arc<NodeEntry>,
    ) -> Result<Topology, Error> {
        let ring = Ring::new(specs, hash, vnodes)?;
        let nodes = specs
            .iter()
            .map(|s| {
                known
                    .iter()
                    .find(|n| n.spec == *s)
                    .cloned()
                    .unwrap_or_else(|| make(s))
            })
            .collect();
        Ok(Topology {
            ring,
            nodes,
            replicas: replicas.max(1),
            hash,
            vnodes,
            past: Vec::new(),
        })
    }

    /// Whether `other` places keys exactly as this view does (same members, weights, names
    /// and ring settings).
    pub fn same_ring(&self, other: &Topology) -> bool {
        self.ring.nodes() == other.ring.nodes()
            && self.hash == other.hash
            && self.vnodes == other.vnodes
            && self.replicas == other.replicas
    }

    /// The same view with the transition ended (no past rings).
    pub fn settled(&self) -> Topology {
        Topology {
            ring: self.ring.clone(),
            nodes: self.nodes.clone(),
            replicas: self.replicas,
            hash: self.hash,
            vnodes: self.vnodes,
            past: Vec::new(),
        }
    }

    /// The owners of `key` as node entries, primary first.
    pub fn owner_nodes(&self, key: &[u8]) -> impl Iterator<Item = &Arc<NodeEntry>> + '_ {
        let owners = self.owners(key);
        (0..owners.len).map(move |i| &self.nodes[owners.buf[i]])
    }

    /// Whether `key`'s owners differ in any past ring (it may still sit on a node that is not
    /// one of its owners now, or be missing from one that is).
    pub fn moved(&self, key: &[u8]) -> bool {
        self.past.iter().any(|p| {
            let mut old = p.owners(key);
            let mut new = self.owner_nodes(key);
            loop {
                match (old.next(), new.next()) {
                    (None, None) => return false,
                    (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {}
                    _ => return true,
                }
            }
        })
    }

    /// Every node of the current and past rings, each once (for flush_all and draining).
    pub fn all_nodes(&self) -> Vec<Arc<NodeEntry>> {
        let mut out = self.nodes.clone();
        for p in &self.past {
            for n in &p.nodes {
                if !out.iter().any(|o| Arc::ptr_eq(o, n)) {
                    out.push(n.clone());
                }
            }
        }
        out
    }

    /// Marks the metric series of every node of the current and past rings as in use
    /// ([`NodeMetrics::keep_alive`]); its router calls it every [`NODE_METRICS_KEEP_ALIVE`].
    /// A node that is
    /// in none of them (it left, and the transition that moved its keys ended) is not kept,
    /// and its series leave `/metrics`.
    pub fn keep_node_metrics_alive(&self) {
        for n in self.all_nodes() {
            n.metrics.keep_alive();
        }
    }

    /// Members of the current ring that answer: not marked down by the router's health, with
    /// at least one connection up. A proxy is ready to serve while this is not zero.
    pub fn answering(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.health.is_usable() && n.conns().iter().any(|c| c.is_connected()))
            .count()
    }

    /// The replica set of `key`, primary first, as node indexes (no allocation for ≤ 4).
    #[inline]
    pub fn owners(&self, key: &[u8]) -> Owners {
        let mut out = Owners::default();
        self.ring
            .replicas_into(key, self.replicas, &mut out.buf, &mut out.len);
        out
    }

    /// The owners of `key` in the order a read asks them: those in the router's zone first,
    /// then the others, each group in ring order (docs/placement.md, "Reads stay in their
    /// zone"). Without a router zone, or with no owner in it, this is [`Topology::owners`].
    /// Writes never use it: a conditional write runs on the first in-sync owner in ring order,
    /// the one order every router shares, so two routers in different zones still race on
    /// one node.
    #[inline]
    pub fn read_owners(&self, key: &[u8]) -> Owners {
        let mut out = self.owners(key);
        let owners = &mut out.buf[..out.len];
        // A stable move of the in-zone owners to the front; with distinct zones per copy
        // there is at most one, and it usually is the primary or the next.
        if let Some(first) = owners.iter().position(|&i| self.nodes[i].in_zone()) {
            let mut at = 0;
            for k in first..owners.len() {
                if self.nodes[owners[k]].in_zone() {
                    owners[at..=k].rotate_right(1);
                    at += 1;
                }
            }
        }
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

    /// Requests sent in one turn of the caller's task (a pipelining client's read) go to the
    /// connection that already holds unwritten requests, so they leave in one write; once its
    /// task took the buffer, round robin resumes.
    #[tokio::test]
    async fn a_burst_goes_to_the_connection_already_filling() {
        use crate::protocol::{GetCmd, Request};
        use std::time::Duration;

        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // Accepts and holds every socket, reading nothing: the requests stay unanswered.
        let held = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                socks.push(s);
            }
        });
        let spec = NodeSpec::new(addr.to_string());
        let node = NodeEntry::new(spec, 2, ConnectOptions::default(), 3, HintLimits::default());
        for c in node.conns() {
            c.wait_connected(Duration::from_secs(5)).await.unwrap();
        }
        let get = |k: &'static [u8]| Request::Get {
            cmd: GetCmd::Get,
            exptime: None,
            keys: vec![bytes::Bytes::from_static(k)],
        };
        let timeout = tokio::time::Instant::now() + Duration::from_secs(5);
        let first = node.conn();
        let _a = first.send_now(&get(b"a"), timeout).unwrap().unwrap();
        // No await since: the socket's task has not run, so `a` is still in the buffer.
        for k in [b"b", b"c", b"d"] {
            let c = node.conn();
            assert!(std::ptr::eq(c, first), "a burst stays on one connection");
            let _ = c.send_now(&get(k), timeout).unwrap().unwrap();
        }
        // The socket's task writes the buffer out; after that nothing is filling.
        for _ in 0..100 {
            if !first.is_filling() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!first.is_filling(), "the socket's task took the buffer");
        let (x, y) = (node.conn(), node.conn());
        assert!(!std::ptr::eq(x, y), "round robin over both connections");
        // A buffer its socket is slow to take (here: its task has not run since) stops
        // drawing requests once it holds 64 KiB: round robin again.
        let big = Request::Store {
            cmd: crate::protocol::StoreCmd::Set,
            key: bytes::Bytes::from_static(b"big"),
            flags: 0,
            exptime: 0,
            cas: 0,
            value: bytes::Bytes::from(vec![b'v'; 100 * 1024]),
            noreply: false,
        };
        let c = node.conn();
        let _ = c.send_now(&big, timeout).unwrap().unwrap();
        assert!(!c.is_filling(), "100 KiB unwritten is not a burst to join");
        let (x, y) = (node.conn(), node.conn());
        assert!(!std::ptr::eq(x, y), "round robin past a slow buffer");
        held.abort();
    }
}
