//! The router: the cluster engine. It owns the topology and every node's health, and routes
//! raw memcached requests over the ring with replication, failover and transitions
//! (docs/cluster.md). The proxy drives it with the requests its clients send; [`Client`](crate::Client)
//! is the typed API an application embeds, a thin layer over it (`client.rs`). Both place every
//! key identically because both are this engine.
//!
//! The engine's parts are this module's children, each with one job, working on the engine's
//! state (so they are submodules rather than siblings that import each other, see
//! docs/architecture.md, "Crates and modules"): [`lifecycle`] a node's health life cycle (down,
//! probed, repaired or fenced and re-warmed, up), `handoff` the hinted-handoff replay and
//! the replication of conditional writes, [`migrate`] the migrator, `spread` the multi-get
//! engine, and `transition` reads, writes and deletes while past rings are kept.

mod dump;
mod handoff;
pub mod lifecycle;
pub mod migrate;
mod spread;
mod transition;

pub use spread::{ManyGet, ManyRest};

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::join_all;

use crate::connection::{Awaiting, ConnectOptions, OnConnect};
use crate::error::{Error, Refused};
use crate::health::{Health, HintLimits, NodeState};
use crate::protocol::{
    valid_key, GetCmd, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response, StoreCmd,
};
use crate::ring::{HashKind, NodeSpec};
use crate::topology::{CasSupport, NodeEntry, PastRing, Topology};
use migrate::{Progress, RebalanceOptions};

/// Past rings kept through overlapping transitions at most (see [`Router::set_ring`]).
const MAX_PAST_RINGS: usize = 8;

/// How many replicas must acknowledge a write before it counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ack {
    /// The first live replica (the primary, unless it is down).
    Primary,
    /// A majority of the live replicas.
    Quorum,
    /// Every live replica (the default: a read from any replica then sees the write).
    #[default]
    All,
}

/// Settings of a [`Router`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub replicas: usize,
    pub vnodes: u32,
    pub hash: HashKind,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub connections_per_node: usize,
    pub queue_depth: usize,
    /// Consecutive failures that mark a node down.
    pub failure_limit: u32,
    pub ack: Ack,
    /// What a membership change does with the data (docs/cluster.md).
    pub rebalance: RebalanceOptions,
    /// The nodes' item size limit (memcached's `-I`): a reply announcing a larger value is a
    /// broken stream and resets its connection.
    pub max_item_size: usize,
    /// Bounds of each node's hint log (the keys it missed while down; see `health.rs`).
    pub hints: HintLimits,
    /// How connections to the nodes are opened: TLS, credentials (`transport.rs`).
    pub transport: crate::transport::Connector,
    /// The zone this router runs in (the proxy's `zone`, `RINGCACHE_ZONE`): reads ask an
    /// owner in it first (docs/placement.md, "Zones"). Placement does not depend on it.
    pub zone: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            // One default for every program (docs/cluster.md, "Replicas").
            replicas: crate::ring::DEFAULT_REPLICAS,
            vnodes: crate::ring::DEFAULT_VNODES,
            hash: HashKind::Xxh3,
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            connections_per_node: 2,
            queue_depth: 1024,
            failure_limit: 3,
            ack: Ack::All,
            rebalance: RebalanceOptions::default(),
            max_item_size: 1024 * 1024,
            hints: HintLimits::default(),
            transport: crate::transport::Connector::plain(),
            zone: None,
        }
    }
}

/// Builds a [`Router`].
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    nodes: Vec<NodeSpec>,
    opts: ClientOptions,
}

impl ClientBuilder {
    /// The nodes, as `host:port` addresses (names default to the address, weights to 1).
    pub fn nodes<I, S>(mut self, addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.nodes = addrs.into_iter().map(NodeSpec::new).collect();
        self
    }

    /// The nodes, with names and weights.
    pub fn node_specs(mut self, specs: Vec<NodeSpec>) -> Self {
        self.nodes = specs;
        self
    }

    /// Copies of each key (1 = no replication).
    pub fn replicas(mut self, n: usize) -> Self {
        self.opts.replicas = n.max(1);
        self
    }

    /// Ring points per unit of node weight.
    pub fn vnodes(mut self, n: u32) -> Self {
        self.opts.vnodes = n.max(1);
        self
    }

    /// Placement: xxh3 (default) or ketama (libmemcached/twemproxy compatible).
    pub fn hash(mut self, h: HashKind) -> Self {
        self.opts.hash = h;
        self
    }

    /// Limit on opening a node connection (TCP, TLS handshake, authentication).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.opts.connect_timeout = t;
        self
    }

    /// Limit on one request's reply; a connection whose reply is overdue is reset.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.opts.request_timeout = t;
        self
    }

    /// Pipelined connections per node.
    pub fn connections_per_node(mut self, n: usize) -> Self {
        self.opts.connections_per_node = n.max(1);
        self
    }

    /// Consecutive failures that mark a node down.
    pub fn failure_limit(mut self, n: u32) -> Self {
        self.opts.failure_limit = n.max(1);
        self
    }

    /// What membership changes do with the data (read-through, the migrator, re-warm).
    pub fn rebalance(mut self, r: RebalanceOptions) -> Self {
        self.opts.rebalance = r;
        self
    }

    /// The nodes' item size limit (default 1 MiB, memcached's): bounds what a reply may hold.
    pub fn max_item_size(mut self, bytes: usize) -> Self {
        self.opts.max_item_size = bytes;
        self
    }

    /// How many replicas must acknowledge a write (default: all).
    pub fn ack(mut self, ack: Ack) -> Self {
        self.opts.ack = ack;
        self
    }

    /// Bounds of each node's hint log; past them a returning node is flushed and re-warmed.
    pub fn hint_limits(mut self, limits: HintLimits) -> Self {
        self.opts.hints = limits;
        self
    }

    /// The zone this router runs in: reads go first to a key's owner in it.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.opts.zone = Some(zone.into());
        self
    }

    /// All options at once.
    pub fn options(mut self, opts: ClientOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Connects to the nodes (waiting up to the connect timeout for them) and learns what each
    /// supports. Nodes that are not up yet are marked down and probed in the background.
    pub async fn build_router(self) -> Result<Router, Error> {
        let inner = Arc::new(Inner {
            live: Live::new(&self.opts),
            opts: self.opts,
            topology: ArcSwap::from_pointee(Topology::empty()),
            cas_seq: AtomicU64::new(0),
            progress: Progress::new(),
        });
        let client = Router { inner };
        client.set_nodes(self.nodes).await?;
        client.spawn_metrics_keepalive();
        Ok(client)
    }
}

impl Router {
    /// Marks the metric series of the nodes of the current and past rings as in use every
    /// [`NODE_METRICS_KEEP_ALIVE`](crate::topology::NODE_METRICS_KEEP_ALIVE), for as long as
    /// the router exists: a recorder that drops idle series (the servers', `src/metrics.rs`)
    /// then drops exactly those of nodes that left every ring once their transition ended.
    fn spawn_metrics_keepalive(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(crate::topology::NODE_METRICS_KEEP_ALIVE);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.topology.load().keep_node_metrics_alive();
            }
        });
    }
}

pub(crate) struct Inner {
    /// The options as built; the ones in `live` may have changed since (see
    /// [`Router::reconfigure`]).
    pub(crate) opts: ClientOptions,
    pub(crate) live: Live,
    pub(crate) topology: ArcSwap<Topology>,
    /// Last router-chosen CAS value (see [`Router::next_cas`]).
    cas_seq: AtomicU64,
    /// The migrator's counters.
    pub(crate) progress: Progress,
}

/// The options a running client applies at once when they change (a proxy config reload):
/// read on every use, so no request needs a lock.
pub(crate) struct Live {
    request_timeout_us: AtomicU64,
    connect_timeout_us: AtomicU64,
    failure_limit: AtomicU32,
    ack: AtomicU8,
    hint_keys: AtomicU64,
    hint_bytes: AtomicU64,
}

impl Live {
    fn new(o: &ClientOptions) -> Live {
        let live = Live {
            request_timeout_us: AtomicU64::new(0),
            connect_timeout_us: AtomicU64::new(0),
            failure_limit: AtomicU32::new(0),
            ack: AtomicU8::new(0),
            hint_keys: AtomicU64::new(0),
            hint_bytes: AtomicU64::new(0),
        };
        live.store(o);
        live
    }

    fn store(&self, o: &ClientOptions) {
        let us = |d: Duration| d.as_micros().min(u64::MAX as u128) as u64;
        self.request_timeout_us
            .store(us(o.request_timeout), Ordering::Relaxed);
        self.connect_timeout_us
            .store(us(o.connect_timeout), Ordering::Relaxed);
        self.failure_limit
            .store(o.failure_limit.max(1), Ordering::Relaxed);
        let ack = match o.ack {
            Ack::Primary => 0,
            Ack::Quorum => 1,
            Ack::All => 2,
        };
        self.ack.store(ack, Ordering::Relaxed);
        self.hint_keys
            .store(o.hints.max_keys as u64, Ordering::Relaxed);
        self.hint_bytes
            .store(o.hints.max_bytes as u64, Ordering::Relaxed);
    }

    pub(crate) fn request_timeout(&self) -> Duration {
        Duration::from_micros(self.request_timeout_us.load(Ordering::Relaxed))
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_micros(self.connect_timeout_us.load(Ordering::Relaxed))
    }

    fn failure_limit(&self) -> u32 {
        self.failure_limit.load(Ordering::Relaxed)
    }

    fn ack(&self) -> Ack {
        match self.ack.load(Ordering::Relaxed) {
            0 => Ack::Primary,
            1 => Ack::Quorum,
            _ => Ack::All,
        }
    }

    fn hints(&self) -> HintLimits {
        HintLimits {
            max_keys: self.hint_keys.load(Ordering::Relaxed) as usize,
            max_bytes: self.hint_bytes.load(Ordering::Relaxed) as usize,
        }
    }
}

/// A cluster client: `Clone + Send + Sync`, cheap to clone, no lock on the request path.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.inner.topology.load();
        f.debug_struct("Router")
            .field(
                "nodes",
                &t.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field("replicas", &t.replicas)
            .finish()
    }
}

pub(crate) fn unexpected(resp: &Response) -> Error {
    match resp {
        Response::Error => Error::Server(Refused::Unknown),
        Response::ClientError(m) => {
            Error::Server(Refused::Client(String::from_utf8_lossy(m).into_owned()))
        }
        Response::ServerError(m) => {
            Error::Server(Refused::Server(String::from_utf8_lossy(m).into_owned()))
        }
        other => Error::Protocol(format!("unexpected reply {other:?}")),
    }
}

impl Router {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The current topology (ring + nodes).
    pub fn topology(&self) -> Arc<Topology> {
        self.inner.topology.load_full()
    }

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

    /// Applies the options that can change while the client runs: request and connect
    /// timeouts, `failure_limit`, `ack` and the hint log bounds (for every node at once).
    /// The connect timeout reaches connections opened from now on (nodes added later, probes,
    /// key listings); the established connections' reconnect loop keeps the old one. The
    /// other options (`connections_per_node`, `queue_depth`, `rebalance`) need a new client;
    /// the ring's (`replicas`, `vnodes`, `hash`) change through [`Router::set_ring`].
    pub fn reconfigure(&self, opts: &ClientOptions) {
        self.inner.live.store(opts);
        let topo = self.topology();
        for n in topo.all_nodes() {
            n.health.configure(opts.failure_limit, opts.hints);
        }
    }

    /// The write acknowledgement policy in force now.
    pub fn ack_policy(&self) -> Ack {
        self.inner.live.ack()
    }

    /// The options in force now (`reconfigure` included).
    pub fn options(&self) -> ClientOptions {
        let live = &self.inner.live;
        ClientOptions {
            request_timeout: live.request_timeout(),
            connect_timeout: live.connect_timeout(),
            failure_limit: live.failure_limit(),
            ack: live.ack(),
            hints: live.hints(),
            ..self.inner.opts.clone()
        }
    }

    /// A CAS value unique to this router and increasing: nanoseconds since the epoch, bumped past
    /// the last one handed out. Node-generated CAS values count up from 1, so they never meet
    /// these (~1.7e18).
    pub fn next_cas(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut last = self.inner.cas_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(last + 1);
            match self.inner.cas_seq.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(x) => last = x,
            }
        }
    }

    /// Sends one request to one node, with the request timeout, keeping its health current.
    ///
    /// The request is checked, encoded into the node connection's buffer and dropped when this
    /// is called; the future returned waits for the reply and holds no copy of the request
    /// (see [`Connection::request_checked`](crate::connection::Connection)).
    pub(crate) fn send<'a>(
        &'a self,
        node: &'a Arc<NodeEntry>,
        req: Request,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'a {
        self.send_ref(node, &req)
    }

    /// When a request written now starts, for its latency, and its deadline for
    /// [`Connection::send_now`](crate::connection::Connection): one clock read for both.
    pub(crate) fn started_now(&self) -> (Instant, tokio::time::Instant) {
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started) + self.inner.live.request_timeout();
        (started, deadline)
    }

    /// [`Router::send`] for a request the caller keeps: it is encoded when this is called, so
    /// the future returned does not borrow it, and a request already held (a proxied get, as
    /// its client sent it) goes out without a copy being built.
    pub(crate) fn send_ref<'a>(
        &'a self,
        node: &'a Arc<NodeEntry>,
        req: &Request,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'a {
        // A request that cannot be written safely is refused before a byte goes out; that
        // says nothing about the node's health.
        let checked = req.check_wire();
        let started = Instant::now();
        // Only these verbs have free-form replies (`RESET`, `OK`, lru_crawler's lines, the
        // shutdown refusal); any other request answered with a line memcached never sends
        // means the backend is not speaking memcached, and it is failed like a broken socket.
        let free_form = matches!(
            req,
            Request::Stats { .. } | Request::Shutdown { .. } | Request::LruCrawler { .. }
        );
        let sent = checked.map(|()| {
            node.metrics.requests.increment(1);
            node.conn()
                .request_checked(req, self.inner.live.request_timeout())
        });
        async move {
            let sent = match sent {
                Ok(sent) => sent,
                Err(e) => return Err(e),
            };
            self.answered(node, started, free_form, sent.await)
        }
    }

    /// What [`Router::send_ref`] does with a node's answer: a free-form line to a request that
    /// has none is a broken backend; the answer's latency, and the node's health.
    fn answered(
        &self,
        node: &Arc<NodeEntry>,
        started: Instant,
        free_form: bool,
        r: Result<Response, Error>,
    ) -> Result<Response, Error> {
        let r = match r {
            Ok(Response::Other(line)) if !free_form => Err(Error::Protocol(format!(
                "{}: unexpected reply {:?}",
                node.name,
                String::from_utf8_lossy(&line)
            ))),
            r => r,
        };
        node.metrics.latency.record(started.elapsed().as_secs_f64());
        match &r {
            Ok(_) => node.health.success(),
            Err(e) => {
                node.metrics.errors.increment(1);
                self.failed(node, e);
            }
        }
        r
    }

    /// Sends a write that keeps replicas identical. A replica that fails it may now hold an
    /// older value than its peers: it is marked down at once (not after K failures) and the
    /// key is hinted, so the probe replays it before the node serves reads again.
    pub(crate) async fn send_write(
        &self,
        node: &Arc<NodeEntry>,
        req: Request,
    ) -> Result<Response, Error> {
        let key = request_key(&req);
        let flush = matches!(req, Request::FlushAll { .. });
        let r = self.send(node, req).await;
        // A request refused before any byte was written (`Request::check_wire`) reached no
        // replica, so none missed it: every owner refuses it alike and none is marked down.
        if matches!(r, Err(Error::InvalidKey(_))) {
            return r;
        }
        if r.is_err() {
            // Down before the hint is taken, so the hint waits for the probe instead of
            // starting a replay on a node still counted as serving.
            let newly = node.health.mark_down();
            match key {
                Some(k) => self.missed(node, &k),
                // A missed flush cannot be replayed key by key: the node gets a full flush.
                None if flush => node.health.force_flush(),
                None => {}
            }
            self.marked_down(node, newly, "a replica missed a write; down until repaired");
        }
        r
    }

    /// The live owners of `key`, primary first.
    pub(crate) fn live_owners(topo: &Topology, key: &[u8]) -> Vec<Arc<NodeEntry>> {
        topo.owners(key)
            .as_slice()
            .iter()
            .map(|&i| topo.nodes[i].clone())
            .filter(|n| n.health.is_usable())
            .collect()
    }

    /// The live owners of `key` a write goes to, primary first; the owners that are down get
    /// a hint (they miss this write).
    pub(crate) fn write_owners(&self, topo: &Topology, key: &[u8]) -> Vec<Arc<NodeEntry>> {
        let mut out = Vec::with_capacity(topo.replicas);
        for &i in topo.owners(key).as_slice() {
            let n = &topo.nodes[i];
            if n.health.is_usable() {
                out.push(n.clone());
            } else {
                self.missed(n, &Bytes::copy_from_slice(key));
            }
        }
        out
    }

    /// The live owners of `key` for a write; an error when none is left.
    fn required_owners(&self, key: &[u8]) -> Result<Vec<Arc<NodeEntry>>, Error> {
        self.required_in(&self.topology(), key)
    }

    /// [`Router::required_owners`] in a topology the caller already holds.
    fn required_in(&self, topo: &Topology, key: &[u8]) -> Result<Vec<Arc<NodeEntry>>, Error> {
        let owners = self.write_owners(topo, key);
        if owners.is_empty() {
            return Err(Error::NoReplica);
        }
        Ok(owners)
    }
    // ----- reads -------------------------------------------------------------------------

    /// Generic read with failover: `make` builds the request for the key.
    pub(crate) async fn read(
        &self,
        key: &Bytes,
        make: impl Fn(&Bytes) -> Request,
    ) -> Result<Response, Error> {
        let topo = self.topology();
        // A repairing node may still hold values it missed the overwrite of: not read.
        let owners: Vec<Arc<NodeEntry>> = topo
            .read_owners(key)
            .as_slice()
            .iter()
            .map(|&i| topo.nodes[i].clone())
            .filter(|n| n.health.is_usable() && n.health.may_serve(key))
            .collect();
        let mut last_err = None;
        let mut fenced_misses: Vec<Arc<NodeEntry>> = Vec::new();
        for node in owners {
            match self.send(&node, make(key)).await {
                Ok(resp @ Response::Values(_)) | Ok(resp @ Response::Meta(_)) => {
                    let miss = is_miss(&resp);
                    if miss && node.health.state() == NodeState::Fenced {
                        fenced_misses.push(node);
                        continue;
                    }
                    if !miss && !fenced_misses.is_empty() {
                        Box::pin(self.backfill(key, &fenced_misses)).await;
                    }
                    node.served_reads(1);
                    return Ok(resp);
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(e) => last_err = Some(e),
            }
        }
        if !fenced_misses.is_empty() || last_err.is_none() {
            // Every reachable copy missed: during a transition the key may not have moved yet.
            if !topo.past.is_empty() {
                if let Some(resp) = Box::pin(self.read_through(&topo, key, &make)).await {
                    return Ok(resp);
                }
            }
            return Ok(Response::Values(Vec::new()));
        }
        Err(last_err.unwrap_or(Error::NoReplica))
    }

    /// The multi-get engine shared with the proxy: per key a hit, a miss or a failure.
    ///
    /// Each round asks every pending key of its next usable owner, one request per node, all
    /// nodes concurrently (`spread.rs`).
    pub async fn get_values(&self, cmd: GetCmd, exptime: Option<i64>, keys: &[Bytes]) -> Vec<Slot> {
        let topo = self.topology();
        if let [key] = keys {
            if topo.past.is_empty() {
                let get = Request::Get {
                    cmd,
                    exptime,
                    keys: vec![key.clone()],
                };
                let slot = match self.get_one(&topo, &get, key).await {
                    Single::Hit(mut values) => values.pop().map_or(Slot::Miss, Slot::Hit),
                    Single::Miss => Slot::Miss,
                    Single::Failed => Slot::Failed,
                };
                return vec![slot];
            }
        }
        // Boxed: the per-node fan-out's state is several times a single get's, and every
        // future awaiting this one (a proxy request's) would otherwise be that big too.
        Box::pin(self.get_spread(topo, cmd, exptime, keys)).await
    }

    /// [`Router::get_values`] for a get of one key that the caller already holds as a request
    /// (the proxy: as its client sent it). That request is what the owners are sent, and a hit
    /// comes back in the node's reply's own list, so a caller answering with a list (the proxy's
    /// `VALUE … END`) builds none: the key list, the slot list and the value list a
    /// [`Router::get_values`] of one key allocates are not paid per request.
    ///
    /// `get` must be a [`Request::Get`] of exactly one key; any other request is not sent and
    /// gets [`Single::Failed`].
    pub async fn get_single(&self, get: &Request) -> Single {
        let Request::Get { cmd, exptime, keys } = get else {
            debug_assert!(false, "get_single of a request that is not a get");
            return Single::Failed;
        };
        let [key] = keys.as_slice() else {
            debug_assert!(false, "get_single of {} keys", keys.len());
            return Single::Failed;
        };
        let topo = self.topology();
        if topo.past.is_empty() {
            return self.get_one(&topo, get, key).await;
        }
        // During a transition: the general path, which reads through to the old owners.
        let slots = Box::pin(self.get_spread(topo, *cmd, *exptime, keys)).await;
        match slots.into_iter().next() {
            Some(Slot::Hit(v)) => Single::Hit(vec![v]),
            Some(Slot::Miss) => Single::Miss,
            _ => Single::Failed,
        }
    }

    /// [`Router::get_values`] for one key outside a transition, the proxy's commonest request:
    /// the same walk over the key's owners (the next usable owner after a failure, or after a
    /// fenced owner's miss), without the per-node grouping a multi-get needs.
    ///
    /// `get` is the request sent, a get of `key` alone.
    async fn get_one(&self, topo: &Topology, get: &Request, key: &Bytes) -> Single {
        self.get_one_from(topo, get, key, 0, false).await
    }

    /// [`Router::get_one`]'s walk from the owner at position `from`; `missed` says a fenced
    /// owner before it already answered with a miss.
    async fn get_one_from(
        &self,
        topo: &Topology,
        get: &Request,
        key: &Bytes,
        from: usize,
        mut missed: bool,
    ) -> Single {
        for &n in topo.read_owners(key).as_slice().iter().skip(from) {
            let node = &topo.nodes[n];
            if !node.health.may_serve(key) {
                continue;
            }
            let r = self.send_ref(node, get).await;
            // On an error, or a fenced owner's miss, the key goes on to the next owner.
            match single_answer(node, key, r) {
                Ok(found) => return found,
                Err(fenced_miss) => missed |= fenced_miss,
            }
        }
        if topo.nodes.is_empty() || missed {
            Single::Miss
        } else {
            Single::Failed
        }
    }

    /// [`Router::get_single`] for a caller that keeps the get's state in a queue of its own
    /// rather than in a future (the proxy's pipelined one-key gets, `src/proxy/inflight.rs`):
    /// the get is written to the key's first usable owner now, and [`Router::poll_single`]
    /// waits for that owner's answer. `None` when that is not the whole story (a transition's
    /// read-through, no usable owner, a full or down connection, a key that cannot be sent):
    /// the caller then runs [`Router::get_single`], which covers every case; nothing was sent.
    pub fn start_single(&self, get: &Request) -> Option<SingleGet> {
        let Request::Get { keys, .. } = get else {
            return None;
        };
        let [key] = keys.as_slice() else {
            return None;
        };
        let topo = self.topology();
        if !topo.past.is_empty() || get.check_wire().is_err() {
            return None;
        }
        let owners = topo.read_owners(key);
        let (pos, n) = owners
            .as_slice()
            .iter()
            .enumerate()
            .find(|(_, &n)| topo.nodes[n].health.may_serve(key))?;
        let node = &topo.nodes[*n];
        let (started, deadline) = self.started_now();
        let awaiting = node.conn().send_now(get, deadline).ok()??;
        node.metrics.requests.increment(1);
        let node = *n;
        Some(SingleGet {
            topo,
            pos,
            node,
            started,
            awaiting,
        })
    }

    /// The answer to a get [`Router::start_single`] sent, `get` being that request: what the
    /// owner found, or (on an error, or a fenced owner's miss) the rest of the walk over the
    /// key's owners, to run with [`Router::get_single_rest`].
    pub fn poll_single(
        &self,
        sent: &mut SingleGet,
        get: &Request,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Single, SingleRest>> {
        let r = ready!(sent.awaiting.poll_reply(cx));
        let node = &sent.topo.nodes[sent.node];
        let r = self.answered(node, sent.started, false, r);
        let key = match get {
            Request::Get { keys, .. } => keys.first(),
            _ => None,
        };
        let found = match key {
            Some(key) => single_answer(node, key, r),
            None => Err(false),
        };
        Poll::Ready(found.map_err(|missed| SingleRest {
            topo: sent.topo.clone(),
            from: sent.pos + 1,
            missed,
        }))
    }

    /// The rest of a one-key get's walk over its owners after the first one asked
    /// ([`Router::poll_single`]).
    pub async fn get_single_rest(&self, rest: SingleRest, get: &Request) -> Single {
        let Request::Get { keys, .. } = get else {
            return Single::Failed;
        };
        let [key] = keys.as_slice() else {
            return Single::Failed;
        };
        self.get_one_from(&rest.topo, get, key, rest.from, rest.missed)
            .await
    }

    // ----- writes ------------------------------------------------------------------------

    /// Unconditional write to every live replica, acknowledged per the [`Ack`] policy; the
    /// reply is the primary's in classic form.
    pub async fn set_all(
        &self,
        key: Bytes,
        value: Bytes,
        flags: u32,
        exptime: i64,
    ) -> Result<Response, Error> {
        let owners = self.required_owners(&key)?;
        let cas = self.next_cas();
        let results = join_all(owners.iter().map(|node| {
            let req = replica_store(node, &key, &value, flags, exptime, cas, false);
            self.send_write(node, req)
        }))
        .await;
        self.acknowledge(results, |r| {
            matches!(r, Response::Stored) || is_meta(r, MetaStatus::Hd)
        })
        .map(|_| Response::Stored)
    }

    /// Applies the ack policy: enough successes → the first success, else the first failure.
    fn acknowledge(
        &self,
        results: Vec<Result<Response, Error>>,
        ok: impl Fn(&Response) -> bool,
    ) -> Result<Response, Error> {
        let total = results.len();
        let need = match self.inner.live.ack() {
            Ack::Primary => 1,
            Ack::Quorum => total / 2 + 1,
            Ack::All => total,
        };
        let good = results
            .iter()
            .filter(|r| matches!(r, Ok(x) if ok(x)))
            .count();
        let mut first_bad = None;
        let mut first_good = None;
        for r in results {
            match r {
                Ok(x) if ok(&x) => {
                    first_good.get_or_insert(x);
                }
                Ok(x) => {
                    first_bad.get_or_insert(Ok(x));
                }
                Err(e) => {
                    first_bad.get_or_insert(Err(e));
                }
            }
        }
        if good >= need {
            if let Some(g) = first_good {
                return Ok(g);
            }
        }
        first_bad.unwrap_or_else(|| Err(Error::NoReplica))
    }

    /// Runs a conditional write on the first owner that holds the key's current state — the
    /// primary unless it is fenced (flushed, warming) or repairing (missed writes), then the
    /// next owner that is up — and, when it changed the item, copies the result to the other
    /// live owners. With no such owner it is refused (`SERVER_ERROR`) rather than run on a
    /// node whose miss or old value would decide it wrongly. Returns the executing owner's
    /// reply.
    ///
    /// The slow paths (transition pull, replica copy) are boxed where they are awaited: every
    /// request future is as large as its largest await state, and the proxy moves each one
    /// into the heap, so inline slow paths would cost every fast request a multi-KiB copy.
    pub async fn conditional(&self, req: Request) -> Result<Response, Error> {
        let key = request_key(&req).ok_or_else(|| Error::Protocol("request without key".into()))?;
        let topo = self.topology();
        if !topo.past.is_empty() {
            // Mid-transition the item may still sit on its old owner: bring it over first so
            // the write applies to it.
            Box::pin(self.pull(&topo, &key)).await;
        }
        let mut owners = self.required_in(&topo, &key)?;
        let Some(at) = owners.iter().position(|n| n.health.in_sync(&key)) else {
            return Err(Error::Server(Refused::Server(
                "no replica of this key is in sync; retry later".into(),
            )));
        };
        let exec = owners.remove(at);
        let resp = self.send(&exec, req).await?;
        if changed(&resp) && !owners.is_empty() {
            Box::pin(self.replicate(&exec, &owners, &key)).await;
        }
        Ok(resp)
    }

    /// Copies `key` as it is on `from` to `to` (same value, flags, remaining TTL and CAS);
    /// deletes it there if `from` no longer has it. With `only_if_absent` (read repair) the copy
    /// is an add and a missing source copies nothing: a write that reached `to` meanwhile wins.
    async fn copy_from(
        &self,
        from: &Arc<NodeEntry>,
        to: &[Arc<NodeEntry>],
        key: &Bytes,
        only_if_absent: bool,
    ) {
        let item = match self.snapshot(from, key).await {
            Ok(None) if only_if_absent => return,
            Ok(item) => item,
            Err(_) => return,
        };
        join_all(to.iter().map(|node| {
            let req = match &item {
                Some(m) => {
                    replica_store(node, key, &m.value, m.flags, m.ttl, m.cas, only_if_absent)
                }
                None => delete_request(key),
            };
            self.send_write(node, req)
        }))
        .await;
    }

    /// Copies hits back to fenced nodes that missed them (add semantics: never overwrite).
    async fn backfill(&self, key: &Bytes, fenced: &[Arc<NodeEntry>]) {
        let topo = self.topology();
        let owners = Self::live_owners(&topo, key);
        if let Some(src) = owners
            .iter()
            .find(|n| n.health.in_sync(key) && !fenced.iter().any(|f| Arc::ptr_eq(f, n)))
        {
            self.copy_from(src, fenced, key, true).await;
        }
    }

    /// Sets the TTL on the replicas after a `gat`/`touch` on the primary.
    pub(crate) async fn copy_ttl(&self, key: &Bytes, exptime: i64) {
        let topo = self.topology();
        let owners = Self::live_owners(&topo, key);
        join_all(
            owners
                .iter()
                .skip(1)
                .map(|n| self.send_write(n, touch_request(key, exptime))),
        )
        .await;
    }

    /// Deletes on every live replica (and, mid-transition, on the key's past owners);
    /// `DELETED` if any had it, else `NOT_FOUND`.
    pub async fn delete_all(&self, key: Bytes) -> Result<Response, Error> {
        let req = Request::Delete {
            key: key.clone(),
            noreply: false,
        };
        let results = self.delete_everywhere(&key, req).await?;
        let mut err = None;
        let mut found = false;
        let mut answered = false;
        for r in results {
            match r {
                Ok(Response::Deleted) => {
                    found = true;
                    answered = true;
                }
                Ok(Response::NotFound) => answered = true,
                Ok(other) => err = Some(unexpected(&other)),
                Err(e) => err = Some(e),
            }
        }
        match (answered, err) {
            (false, Some(e)) => Err(e),
            _ => Ok(if found {
                Response::Deleted
            } else {
                Response::NotFound
            }),
        }
    }

    /// `flush_all <delay>` on every live node.
    pub async fn flush_all_delay(&self, delay: i64) -> Result<(), Error> {
        let topo = self.topology();
        // Nodes draining out of the membership too: what they hold must not come back.
        let nodes = topo.all_nodes();
        // A node that is down misses the flush: it is flushed when it answers again.
        for n in nodes.iter().filter(|n| !n.health.is_usable()) {
            n.health.force_flush();
        }
        let results = join_all(nodes.iter().filter(|n| n.health.is_usable()).map(|n| {
            self.send_write(
                n,
                Request::FlushAll {
                    delay,
                    noreply: false,
                },
            )
        }))
        .await;
        for r in results {
            match r? {
                Response::Ok => {}
                other => return Err(unexpected(&other)),
            }
        }
        Ok(())
    }

    /// `me <key>` answered by the key's first live owner (falling over like a read).
    pub async fn debug(&self, key: Bytes, base64: bool) -> Result<Response, Error> {
        self.read(&key, |k| Request::MetaDebug {
            key: k.clone(),
            base64,
        })
        .await
    }

    /// `version` of every node, by node name.
    pub async fn version(&self) -> Vec<(String, Result<String, Error>)> {
        let topo = self.topology();
        join_all(topo.nodes.iter().map(|n| async move {
            let r = match self.send(n, Request::Version).await {
                Ok(Response::Version(v)) => Ok(String::from_utf8_lossy(&v).into_owned()),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            };
            (n.name.clone(), r)
        }))
        .await
    }

    /// `req` sent to every node of the ring, by node name: the admin requests a proxy fans
    /// out (`stats reset`, `stats cachedump`, `lru_crawler metadump`), answered each as the
    /// node answered.
    pub async fn each_node(&self, req: Request) -> Vec<(String, Result<Response, Error>)> {
        let topo = self.topology();
        join_all(topo.nodes.iter().map(|n| {
            let req = req.clone();
            async move { (n.name.clone(), self.send(n, req).await) }
        }))
        .await
    }

    /// `stats` of every node, by node name.
    pub async fn stats(&self) -> Vec<(String, Result<Vec<(String, String)>, Error>)> {
        let topo = self.topology();
        join_all(topo.nodes.iter().map(|n| async move {
            let r = match self.send(n, Request::Stats { group: None }).await {
                Ok(Response::Stats(s)) => Ok(s
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(&k).into_owned(),
                            String::from_utf8_lossy(&v).into_owned(),
                        )
                    })
                    .collect()),
                Ok(Response::Values(v)) if v.is_empty() => Ok(Vec::new()),
                Ok(other) => Err(unexpected(&other)),
                Err(e) => Err(e),
            };
            (n.name.clone(), r)
        }))
        .await
    }

    /// Routes a raw meta request the way its verb needs: `mg` as a read, `ms` without compare
    /// as a replicated write (with a router-chosen `E` CAS), other `ms`/`ma` as conditional
    /// writes, `md` on every replica. Quiet mode must be stripped by the caller: every request
    /// here gets a reply.
    pub async fn meta(&self, mut req: Box<MetaRequest>) -> Result<Response, Error> {
        match req.cmd {
            MetaCmd::Get => {
                let r = req.clone();
                self.read(&req.key, move |_| Request::Meta(r.clone())).await
            }
            MetaCmd::Set
                if req.flags.compare_cas.is_none()
                    && matches!(req.flags.mode, None | Some(b'S')) =>
            {
                let owners = self.required_owners(&req.key)?;
                // Set on the typed flags only: the encoder appends `E` after the client's own
                // flags, whose order the node's reply must keep.
                if req.flags.new_cas.is_none() {
                    req.flags.new_cas = Some(self.next_cas());
                }
                let results = join_all(owners.iter().map(|n| {
                    let mut r = req.clone();
                    if n.cas_support() == CasSupport::No {
                        r.flags.new_cas = None;
                    }
                    self.send_write(n, Request::Meta(r))
                }))
                .await;
                self.acknowledge(results, |r| is_meta(r, MetaStatus::Hd))
            }
            MetaCmd::Delete => {
                let key = req.key.clone();
                let results = self.delete_everywhere(&key, Request::Meta(req)).await?;
                // The primary's answer unless it failed, or a past owner's `HD` if the item
                // had not moved yet (it existed, and is now deleted).
                let mut first_ok = None;
                let mut first_err = None;
                for r in results {
                    match r {
                        Ok(resp) if is_meta(&resp, MetaStatus::Hd) => return Ok(resp),
                        Ok(resp) => {
                            first_ok.get_or_insert(resp);
                        }
                        Err(e) => {
                            first_err.get_or_insert(e);
                        }
                    }
                }
                first_ok.ok_or_else(|| first_err.unwrap_or(Error::NoReplica))
            }
            MetaCmd::Set | MetaCmd::Arith => self.conditional(Request::Meta(req)).await,
        }
    }
}

/// What one owner's answer to a get of `key` alone says: a hit (the value, alone in the
/// reply's list) or a miss; or, when the walk goes on to the next owner, whether this was a
/// fenced owner's miss (`Err(true)`: it may not have the key yet) or an error (`Err(false)`).
fn single_answer(
    node: &NodeEntry,
    key: &Bytes,
    r: Result<Response, Error>,
) -> Result<Single, bool> {
    let Ok(Response::Values(mut vals)) = r else {
        return Err(false);
    };
    vals.truncate(1);
    let found = match vals.first() {
        Some(v) if v.key == *key => Single::Hit(vals),
        _ if node.health.state() == NodeState::Fenced => return Err(true),
        _ => Single::Miss,
    };
    node.served_reads(1);
    Ok(found)
}

/// A one-key get written to its first usable owner and not yet answered
/// ([`Router::start_single`]): a few words a caller keeps in its own queue.
pub struct SingleGet {
    topo: Arc<Topology>,
    /// The owner asked: its position among the key's owners, and its index in `topo`.
    pos: usize,
    node: usize,
    started: Instant,
    awaiting: Awaiting,
}

/// Where a one-key get's walk over its owners goes on ([`Router::get_single_rest`]).
pub struct SingleRest {
    topo: Arc<Topology>,
    from: usize,
    missed: bool,
}

/// What a get of one key found ([`Router::get_single`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Single {
    /// The value, alone in the list the node's reply brought it in (so a caller that answers
    /// with a list reuses it).
    Hit(Vec<crate::protocol::Value>),
    Miss,
    /// No replica could be read.
    Failed,
}

/// One key's fate in a multi-get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Still to be asked, of its first usable owner at or after this position in its
    /// replica set.
    Pending(usize),
    Hit(crate::protocol::Value),
    Miss,
    /// No replica could be read.
    Failed,
}

pub(crate) fn is_miss(resp: &Response) -> bool {
    match resp {
        Response::Values(v) => v.is_empty(),
        Response::Meta(m) => m.status == MetaStatus::En,
        _ => false,
    }
}

fn is_meta(resp: &Response, status: MetaStatus) -> bool {
    matches!(resp, Response::Meta(m) if m.status == status)
}

/// Whether a conditional write's reply means the item changed (so replicas need a copy).
fn changed(resp: &Response) -> bool {
    match resp {
        Response::Stored | Response::Touched | Response::Number(_) => true,
        Response::Meta(m) => matches!(m.status, MetaStatus::Hd | MetaStatus::Va),
        _ => false,
    }
}

/// The key a single-key request names (hints record it; a multi-get is never a write).
fn request_key(req: &Request) -> Option<Bytes> {
    req.keys().and_then(|k| k.first()).cloned()
}

/// `delete <key>`, or `md <base64> b` for a key that is not a valid text key (a binary key a
/// client sent base64): a decoded key is never written raw, where it could end the line.
pub(crate) fn delete_request(key: &Bytes) -> Request {
    if valid_key(key) {
        return Request::Delete {
            key: key.clone(),
            noreply: false,
        };
    }
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Delete,
        key.clone(),
        MetaFlags::default(),
        None,
    )))
}

/// `touch <key> <exptime>`, or `mg <base64> b T<exptime>` (meta's touch) for a binary key.
fn touch_request(key: &Bytes, exptime: i64) -> Request {
    if valid_key(key) {
        return Request::Touch {
            key: key.clone(),
            exptime,
            noreply: false,
        };
    }
    let f = MetaFlags {
        ttl: Some(exptime),
        ..MetaFlags::default()
    };
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Get,
        key.clone(),
        f,
        None,
    )))
}

/// The write that puts one replica's copy in place: `ms` with the explicit CAS where the node
/// takes it, else a classic `set` (the node then picks its own CAS). With `add`, only stored
/// if the replica does not hold the key (`ms ... ME` / `add`). A binary key always goes as
/// `ms` with `b`. `exptime` is what the copy is written with (see
/// [`crate::protocol::expiry::copy_exptime`] for one taken from a remaining TTL).
pub(crate) fn replica_store(
    node: &NodeEntry,
    key: &Bytes,
    value: &Bytes,
    flags: u32,
    exptime: i64,
    cas: u64,
    add: bool,
) -> Request {
    let explicit_cas = node.cas_support() != CasSupport::No && cas != 0;
    if !explicit_cas && valid_key(key) {
        return Request::Store {
            cmd: if add { StoreCmd::Add } else { StoreCmd::Set },
            key: key.clone(),
            flags,
            exptime,
            cas: 0,
            value: value.clone(),
            noreply: false,
        };
    }
    let f = MetaFlags {
        client_flags: Some(flags),
        ttl: Some(exptime),
        new_cas: explicit_cas.then_some(cas),
        mode: add.then_some(b'E'),
        ..MetaFlags::default()
    };
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Set,
        key.clone(),
        f,
        Some(value.clone()),
    )))
}
