//! Membership: the nodes of the ring, each node's entry (its connections and health), and
//! replacing them (config reload, discovery, `set_nodes`), which starts a transition, or moving
//! a member to a new address under its name (discovery), which keeps the ring.

use std::sync::{Arc, Weak};
use std::time::Instant;

use futures_util::future::join_all;

use super::Router;
use crate::connection::{ConnectOptions, OnConnect};
use crate::error::Error;
use crate::health::{Health, NodeState};
use crate::protocol::{Request, Response};
use crate::ring::{HashKind, NodeSpec, Ring};
use crate::topology::{CasSupport, NodeEntry, PastRing, Topology};

/// Past rings kept through overlapping transitions at most (see [`Router::set_ring`]).
const MAX_PAST_RINGS: usize = 8;

impl Router {
    /// Replaces the membership. Unchanged nodes keep their connections and health; requests in
    /// flight finish on the topology they started with. With rebalancing on (the default) the
    /// old ring is kept through a transition while the migrator moves the data (docs/cluster.md).
    pub async fn set_nodes(&self, specs: Vec<NodeSpec>) -> Result<(), Error> {
        let t = self.topology();
        let (hash, vnodes, replicas) = if t.nodes.is_empty() {
            let o = &self.inner.opts;
            (o.hash, o.vnodes, o.replicas)
        } else {
            (t.hash, t.vnodes, t.replicas)
        };
        self.set_ring(specs, hash, vnodes, replicas).await
    }

    /// How this client connects to a node: the live connect timeout, the queue and item
    /// limits, and its transport (TLS, credentials). Every node connection is made with these,
    /// whether the node came from the config, a reload or discovery.
    pub(crate) fn connect_options(&self) -> ConnectOptions {
        let o = &self.inner.opts;
        ConnectOptions {
            connect_timeout: self.inner.live.connect_timeout(),
            queue_depth: o.queue_depth,
            max_item_size: o.max_item_size,
            transport: o.transport.clone(),
            ..ConnectOptions::default()
        }
    }

    /// [`Router::connect_options`] for the node `spec`: its certificate is checked against
    /// the node's stable name ([`NodeSpec::tls_name`]).
    pub(crate) fn connect_options_for(&self, spec: &NodeSpec) -> ConnectOptions {
        ConnectOptions {
            tls_name: Some(spec.tls_name().to_string()),
            ..self.connect_options()
        }
    }

    /// A new node entry with this client's connection and health settings. Each of its
    /// connections checks who answers before it carries a request ([`Router::connected`]).
    pub(crate) fn node_entry(&self, spec: &NodeSpec) -> Arc<NodeEntry> {
        self.new_entry(spec, false)
    }

    /// [`Router::node_entry`] for a process the router must not trust before its probe has
    /// seen it (a known name at a new address): down from the start, so no connection of it
    /// opens first and takes it for the process seen before.
    pub(crate) fn stranger_entry(&self, spec: &NodeSpec) -> Arc<NodeEntry> {
        self.new_entry(spec, true)
    }

    fn new_entry(&self, spec: &NodeSpec, down: bool) -> Arc<NodeEntry> {
        let router = Arc::downgrade(&self.inner);
        Arc::new_cyclic(|me: &Weak<NodeEntry>| {
            let me = me.clone();
            // Weak both ways: the connections live inside the entry, the entry inside the
            // router's topology.
            let check = OnConnect::new(move |reply| {
                if let (Some(inner), Some(node)) = (router.upgrade(), me.upgrade()) {
                    Router { inner }.connected(&node, reply);
                }
            });
            let health =
                Health::with_limits(self.inner.live.failure_limit(), self.inner.live.hints());
            if down {
                health.mark_down();
            }
            let opts = ConnectOptions {
                on_connect: Some(check),
                ..self.connect_options_for(spec)
            };
            NodeEntry::with_health(
                spec.clone(),
                self.inner.opts.connections_per_node,
                opts,
                health,
            )
            .located(self.inner.opts.zone.as_deref())
        })
    }

    /// Replaces membership and ring settings together (a proxy config reload).
    pub async fn set_ring(
        &self,
        specs: Vec<NodeSpec>,
        hash: HashKind,
        vnodes: u32,
        replicas: usize,
    ) -> Result<(), Error> {
        let old = self.inner.topology.load_full();
        // A node that left in an earlier, unfinished transition and comes back keeps its entry.
        let known = old.all_nodes();
        let mut topo = Topology::build(&specs, hash, vnodes, replicas, &known, |s| {
            self.node_entry(s)
        })?;
        // Learn versions of new nodes (and mark unreachable ones down so they are probed).
        let fresh: Vec<Arc<NodeEntry>> = topo
            .nodes
            .iter()
            .filter(|n| !known.iter().any(|o| Arc::ptr_eq(o, n)))
            .cloned()
            .collect();
        // A node re-added while it was down (its entry kept by an unfinished transition) may
        // have lost its probe when it left: make sure one runs.
        for n in &topo.nodes {
            if n.health.state() == NodeState::Down {
                self.spawn_probe(n.clone());
            }
        }
        if !old.nodes.is_empty() && topo.same_ring(&old) {
            return Ok(());
        }
        let transition = self.inner.opts.rebalance.enabled && !old.nodes.is_empty();
        if transition {
            // The newest past ring first; a change during a transition keeps the older rings
            // (their keys may not have moved yet) up to a bound.
            topo.past.push(Arc::new(PastRing::of(&old)));
            topo.past
                .extend(old.past.iter().take(MAX_PAST_RINGS - 1).cloned());
            if old.past.len() >= MAX_PAST_RINGS {
                tracing::warn!(
                    "rebalance: more than {MAX_PAST_RINGS} membership changes in one transition; \
                     keys still on the oldest ring will be cold"
                );
            }
        }
        let topo = Arc::new(topo);
        self.inner.topology.store(topo.clone());
        if transition {
            self.spawn_migrator(topo);
        }
        join_all(fresh.into_iter().map(|n| {
            let client = self.clone();
            async move {
                // Every connection must be up: `send` picks one round robin, and one still
                // connecting fails at once, which would mark a healthy node down.
                let deadline = Instant::now() + client.inner.live.connect_timeout();
                let mut ready = Ok(());
                for c in n.conns() {
                    ready = c
                        .wait_connected(deadline.saturating_duration_since(Instant::now()))
                        .await;
                    if ready.is_err() {
                        break;
                    }
                }
                let version = match ready {
                    Ok(()) => client.send(&n, Request::Version).await.ok(),
                    Err(_) => None,
                };
                match version {
                    Some(Response::Version(v)) => {
                        if n.learn_version(&String::from_utf8_lossy(&v)) == CasSupport::No {
                            tracing::warn!(
                                node = %n.name,
                                version = %String::from_utf8_lossy(&v),
                                "node lacks meta `ms E<cas>` (memcached < 1.6.27): replicas of \
                                 unconditional sets get their own CAS values"
                            );
                        }
                        // First contact: remember which process this is, so a later return
                        // can tell a pause (replay the missed keys) from a restart (flush).
                        // Its connections' check has usually done so already; that first
                        // sighting is kept (a process seen since could be a restart).
                        if n.health.identity().is_none() {
                            if let Some(id) = client.identity_of(&n).await {
                                n.health.set_identity(id);
                            }
                        }
                    }
                    _ => client.take_down(&n, "not reachable when added"),
                }
            }
        }))
        .await;
        Ok(())
    }
}

impl Router {
    /// Applies a discovered membership: members whose name is known but whose address changed
    /// are moved to the new address in place (no key changes owner; the process there is
    /// flushed, fenced and re-warmed like a node that restarted), then the list is applied as
    /// [`Router::set_nodes`] does, with a transition for members added or removed.
    pub async fn apply_discovered(&self, specs: Vec<NodeSpec>) -> Result<(), Error> {
        self.readdress(&specs)?;
        self.set_nodes(specs).await
    }

    /// Moves every member of the current ring whose name has another address in `specs`
    /// (same weight) to that address, keeping the ring. Swapped in only over the topology it
    /// was built from (a migrator settling meanwhile is not undone); a transition under way
    /// gets a new migrator, since the one running gives up when its topology is replaced.
    fn readdress(&self, specs: &[NodeSpec]) -> Result<(), Error> {
        for _ in 0..8 {
            let old = self.topology();
            let Some((topo, replaced)) = self.readdressed(&old, specs)? else {
                return Ok(());
            };
            // Down (from its creation, `stranger_entry`) until the probe has seen the new
            // process: it flushes it (never seen before), fences it and re-warms it from the
            // replicas, as for a node that restarted.
            let topo = Arc::new(topo);
            let prev = self.inner.topology.compare_and_swap(&old, topo.clone());
            if !Arc::ptr_eq(&prev, &old) {
                continue;
            }
            for (was, now) in replaced {
                tracing::info!(
                    node = %now.name,
                    from = %was.spec.addr,
                    to = %now.spec.addr,
                    "discovery: node moved to a new address; its ring points stay"
                );
                self.spawn_probe(now);
            }
            if !topo.past.is_empty() {
                self.spawn_migrator(topo);
            }
            return Ok(());
        }
        Err(Error::Config(
            "discovery: the membership kept changing under an address change".into(),
        ))
    }

    /// `old` with the members `specs` gives a new address moved there (new entries), and the
    /// pairs (old entry, new entry); `None` if no address changed.
    #[allow(clippy::type_complexity)]
    fn readdressed(
        &self,
        old: &Topology,
        specs: &[NodeSpec],
    ) -> Result<Option<(Topology, Vec<(Arc<NodeEntry>, Arc<NodeEntry>)>)>, Error> {
        let moved = |s: &NodeSpec| {
            specs
                .iter()
                // Same zone too: a zone change moves keys, so it is a transition (set_nodes).
                .find(|n| {
                    n.ring_name() == s.ring_name()
                        && n.addr != s.addr
                        && n.weight == s.weight
                        && n.zone == s.zone
                })
                .cloned()
        };
        if !old.ring.nodes().iter().any(|s| moved(s).is_some()) {
            return Ok(None);
        }
        let mut replaced: Vec<(Arc<NodeEntry>, Arc<NodeEntry>)> = Vec::new();
        let mut swap = |ring: &Ring, nodes: &[Arc<NodeEntry>]| -> Result<_, Error> {
            let mut specs_now = Vec::with_capacity(nodes.len());
            let mut entries = Vec::with_capacity(nodes.len());
            for (s, e) in ring.nodes().iter().zip(nodes) {
                match moved(s) {
                    Some(n) => {
                        let fresh = match replaced.iter().find(|(o, _)| Arc::ptr_eq(o, e)) {
                            Some((_, f)) => f.clone(),
                            None => {
                                let f = self.stranger_entry(&n);
                                replaced.push((e.clone(), f.clone()));
                                f
                            }
                        };
                        specs_now.push(n);
                        entries.push(fresh);
                    }
                    None => {
                        specs_now.push(s.clone());
                        entries.push(e.clone());
                    }
                }
            }
            Ok((Ring::new(&specs_now, ring.kind(), ring.vnodes())?, entries))
        };
        let (ring, nodes) = swap(&old.ring, &old.nodes)?;
        let mut past = Vec::with_capacity(old.past.len());
        for p in &old.past {
            let (ring, nodes) = swap(&p.ring, &p.nodes)?;
            past.push(Arc::new(PastRing {
                ring,
                nodes,
                replicas: p.replicas,
            }));
        }
        let topo = Topology {
            ring,
            nodes,
            replicas: old.replicas,
            hash: old.hash,
            vnodes: old.vnodes,
            past,
        };
        Ok(Some((topo, replaced)))
    }
}
