//! The node list from DNS (docs/cluster.md, "Discovery"): `[discovery] sources` names DNS
//! records instead of listing `[[nodes]]`, and the list is resolved again every
//! `interval_secs`, so scaling a Kubernetes StatefulSet out or in changes the membership
//! without editing a file.
//!
//! - `dns+HOST:PORT`: every A/AAAA address of `HOST` is a node at `PORT`, **named by its
//!   address**: a node that comes back with another IP is another node to the ring. Its TLS
//!   certificate is checked against `HOST` (a SRV node's against its target), never the IP.
//! - `dnssrv+NAME`: every SRV record of `NAME` is a node, **named `TARGET:PORT`** (the pod's
//!   own DNS name for a StatefulSet behind a headless Service) and reached at the address
//!   `TARGET` resolves to. A pod that restarts with a new IP keeps its name, so it keeps its
//!   ring points: only the address its connections go to changes. This is the form to use on
//!   Kubernetes.
//!
//! Why the rules below:
//! - A resolved list is applied the way a config reload applies `[[nodes]]`
//!   ([`Router::set_nodes`]: a transition moves the data), after a first step that moves the
//!   nodes whose *address* alone changed onto their new address in place, with no transition
//!   (the name, and so every key's owners, is unchanged). The process at the new address is
//!   a stranger (a pod that restarted has lost its memory), so it is treated like a node that
//!   restarted: flushed, fenced and re-warmed from its replicas before it serves reads.
//! - A DNS failure (timeout, NXDOMAIN, an empty answer, a SRV target that does not resolve)
//!   keeps the last good list: a DNS hiccup must never empty the ring. Each one is logged and
//!   counted in `ringcache_discovery_failures_total{reason}`.
//! - A node missing from an answer is kept for `remove_after_secs` more before it leaves the
//!   ring: a pod being recreated (a rolling update, an eviction) drops out of DNS for a few
//!   seconds, and a removal and re-addition would be two transitions where a short absence is
//!   one node down that its replicas cover.
//! - A resolved node that answers `stats` with `draining 1` (a node told to leave: SIGTERM,
//!   `src/node/drain.rs` in the server) is left out at once, as if its record had gone, with
//!   no `remove_after_secs` grace: its pod is being deleted (a scale-down keeps the record
//!   until the pod is gone), and the transition this starts reads its keys from it while it
//!   still serves and copies them to their new owners. It stays left out while it does not
//!   answer (its drain ended and it exited, but its record lingers until the pod object is
//!   deleted: re-adding it then would route keys to a dead node), until it answers without
//!   `draining 1` (its pod restarted under the same name) or its record goes. A node never
//!   seen draining that does not answer is not taken for draining: being down is the health
//!   probe's business.
//! - The list is sorted by name: DNS servers rotate their answers, and node order decides ties
//!   between ring points, so an unsorted list would look like a new ring every time.
//! - The resolver keeps no cache: each round asks the name server (which caches itself).
//! - A source may end in `@ZONE` (`dnssrv+_memcache._tcp.ringcache-a@eu-west-1a`): every node
//!   it names is in that zone (docs/placement.md, "Zones"). Either every source has a zone or
//!   none has, as with `[[nodes]]`. On Kubernetes that is one StatefulSet and headless
//!   Service per zone (docs/operations.md): DNS then carries the zones, so every router
//!   places keys alike from the first resolution, with no node to ask first.
//! - A source without a zone takes each node's zone from the node itself: a ringcache node
//!   started with `--zone` (`RINGCACHE_ZONE`) reports `zone` in `stats`, which discovery
//!   reads in the same ask as `draining`. A node's zone is remembered from its first answer
//!   (so a node that stops answering keeps its place); while some members have a zone, a
//!   newly found node whose zone is not known yet waits outside the ring until it answers,
//!   since a ring mixes no zoned and zone-less nodes. A node that reports another zone (a
//!   pod rescheduled to another zone) is a membership change like any other: a transition.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::ProtoErrorKind;
use hickory_resolver::{ResolveError, TokioResolver};
use metrics::{counter, gauge};
use serde::Deserialize;
use tokio::task::JoinHandle;

use crate::connection::Connection;
use crate::health::draining_in_stats;
use crate::metric_names as names;
use crate::protocol::{Request, Response};
use crate::ring::NodeSpec;
use crate::router::Router;
use crate::Error;

/// Default seconds between two resolutions.
pub const DEFAULT_INTERVAL_SECS: u64 = 10;
/// Default limit on one DNS query.
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
/// Default seconds a node missing from the answers stays a member.
pub const DEFAULT_REMOVE_AFTER_SECS: u64 = 30;

/// `[discovery]`: where the node list comes from when it is not listed in `[[nodes]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySettings {
    /// `dns+HOST:PORT` (A/AAAA) and `dnssrv+NAME` (SRV) names; the members are the union.
    pub sources: Vec<String>,
    /// Seconds between two resolutions (default 10).
    #[serde(default = "default_interval")]
    pub interval_secs: u64,
    /// `IP:PORT` of the name server to ask (UDP, TCP on truncation); default: the system's
    /// (`/etc/resolv.conf`, with its search domains and `ndots`).
    #[serde(default)]
    pub nameserver: Option<String>,
    /// Limit on one DNS query, in milliseconds (default 2000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Seconds a node missing from the answers stays a member before it is removed (default
    /// 30; 0 removes it at once).
    #[serde(default = "default_remove_after")]
    pub remove_after_secs: u64,
}

fn default_interval() -> u64 {
    DEFAULT_INTERVAL_SECS
}
fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_remove_after() -> u64 {
    DEFAULT_REMOVE_AFTER_SECS
}

impl DiscoverySettings {
    /// Settings for `sources` with every other key at its default.
    pub fn new<S: Into<String>>(sources: impl IntoIterator<Item = S>) -> DiscoverySettings {
        DiscoverySettings {
            sources: sources.into_iter().map(Into::into).collect(),
            interval_secs: DEFAULT_INTERVAL_SECS,
            nameserver: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            remove_after_secs: DEFAULT_REMOVE_AFTER_SECS,
        }
    }

    /// The parsed sources, or why the settings cannot be used.
    pub fn validate(&self) -> Result<Vec<Source>, Error> {
        Ok(self.zoned_sources()?.into_iter().map(|(s, _)| s).collect())
    }

    /// The parsed sources with the zone each gives its nodes (`SOURCE@ZONE`), or why the
    /// settings cannot be used.
    pub fn zoned_sources(&self) -> Result<Vec<(Source, Option<String>)>, Error> {
        if self.sources.is_empty() {
            return Err(Error::Config("[discovery] sources is empty".into()));
        }
        if self.interval_secs == 0 || self.timeout_ms == 0 {
            return Err(Error::Config(
                "[discovery] interval_secs and timeout_ms must be at least 1".into(),
            ));
        }
        if let Some(ns) = &self.nameserver {
            ns.parse::<SocketAddr>().map_err(|_| {
                Error::Config(format!("[discovery] nameserver {ns:?}: expected IP:PORT"))
            })?;
        }
        let parsed = self
            .sources
            .iter()
            .map(|s| {
                let Some((source, zone)) = s.rsplit_once('@') else {
                    return Ok((s.parse()?, None));
                };
                crate::ring::check_zone(zone)
                    .map_err(|e| Error::Config(format!("[discovery] source {s:?}: {e}")))?;
                Ok((source.parse()?, Some(zone.to_string())))
            })
            .collect::<Result<Vec<(Source, Option<String>)>, Error>>()?;
        if parsed.iter().any(|(_, z)| z.is_some()) && parsed.iter().any(|(_, z)| z.is_none()) {
            return Err(Error::Config(
                "[discovery] sources: give every source a zone (SOURCE@ZONE) or none".into(),
            ));
        }
        Ok(parsed)
    }

    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }
}

/// One DNS name the node list is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `dns+HOST:PORT`: the A/AAAA records of `host`, each a node at `port`.
    Addresses { host: String, port: u16 },
    /// `dnssrv+NAME`: the SRV records of `name`.
    Srv { name: String },
}

impl FromStr for Source {
    type Err = Error;

    fn from_str(s: &str) -> Result<Source, Error> {
        let bad = |why: &str| Error::Config(format!("[discovery] source {s:?}: {why}"));
        if let Some(rest) = s.strip_prefix("dnssrv+") {
            if !valid_dns_name(rest) {
                return Err(bad("expected dnssrv+NAME"));
            }
            return Ok(Source::Srv { name: rest.into() });
        }
        if let Some(rest) = s.strip_prefix("dns+") {
            let (host, port) = rest
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h, p.parse::<u16>().ok().filter(|&p| p > 0)?)))
                .ok_or_else(|| bad("expected dns+HOST:PORT"))?;
            if !valid_dns_name(host) {
                return Err(bad("expected dns+HOST:PORT"));
            }
            return Ok(Source::Addresses {
                host: host.into(),
                port,
            });
        }
        Err(bad("expected dns+HOST:PORT (A/AAAA) or dnssrv+NAME (SRV)"))
    }
}

fn valid_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Why a resolution was not used; the `reason` label of the failure counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    NxDomain,
    /// The name exists but has no records of the type asked (or no usable ones).
    Empty,
    /// Any other resolver error (refused, malformed, unreachable server).
    Error,
    /// The resolved list could not be applied (e.g. two sources gave one name two addresses).
    Refused,
}

impl Failure {
    /// Every reason, for registering the failure counter's series.
    pub const ALL: [Failure; 5] = [
        Failure::Timeout,
        Failure::NxDomain,
        Failure::Empty,
        Failure::Error,
        Failure::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Timeout => "timeout",
            Failure::NxDomain => "nxdomain",
            Failure::Empty => "empty",
            Failure::Error => "error",
            Failure::Refused => "refused",
        }
    }

    fn of(e: &ResolveError) -> Failure {
        if e.is_nx_domain() {
            Failure::NxDomain
        } else if e.is_no_records_found() {
            Failure::Empty
        } else if e
            .proto()
            .is_some_and(|p| matches!(p.kind(), ProtoErrorKind::Timeout))
        {
            Failure::Timeout
        } else {
            Failure::Error
        }
    }
}

/// Resolves [`Source`]s into node lists.
pub struct NodeResolver {
    resolver: TokioResolver,
    /// Each source with the zone of the nodes it names.
    sources: Vec<(Source, Option<String>)>,
    timeout: Duration,
}

impl NodeResolver {
    /// A resolver for `settings` (its sources checked).
    pub fn new(settings: &DiscoverySettings) -> Result<NodeResolver, Error> {
        let sources = settings.zoned_sources()?;
        let provider = TokioConnectionProvider::default();
        let mut builder = match &settings.nameserver {
            Some(ns) => {
                let ns: SocketAddr = ns
                    .parse()
                    .map_err(|_| Error::Config(format!("nameserver {ns:?}")))?;
                let group = NameServerConfigGroup::from_ips_clear(&[ns.ip()], ns.port(), true);
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, Vec::new(), group),
                    provider,
                )
            }
            None => TokioResolver::builder(provider).map_err(|e| {
                Error::Config(format!("[discovery] system resolver configuration: {e}"))
            })?,
        };
        let timeout = Duration::from_millis(settings.timeout_ms);
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 2;
        opts.cache_size = 0;
        Ok(NodeResolver {
            resolver: builder.build(),
            sources,
            timeout,
        })
    }

    /// Every node the sources name, sorted by name and each once; a failure of any source
    /// (or an empty union) fails the whole round, so a partial answer never shrinks the ring.
    pub async fn resolve(&self) -> Result<Vec<NodeSpec>, (Failure, String)> {
        // Each query has its own timeout and retries; this bounds the whole round (SRV, then
        // its targets) whatever the resolver does.
        let limit = self.timeout * 6;
        let round = async {
            let mut out: Vec<NodeSpec> = Vec::new();
            for (source, zone) in &self.sources {
                let found = match source {
                    Source::Addresses { host, port } => self.addresses(host, *port).await?,
                    Source::Srv { name } => self.srv(name).await?,
                };
                for mut n in found {
                    n.zone.clone_from(zone);
                    // One node named by two sources counts once (the first source's TLS
                    // name is kept).
                    if !out
                        .iter()
                        .any(|o| o.ring_name() == n.ring_name() && o.addr == n.addr)
                    {
                        out.push(n);
                    }
                }
            }
            Ok(out)
        };
        let mut out = tokio::time::timeout(limit, round)
            .await
            .map_err(|_| (Failure::Timeout, format!("no answer within {limit:?}")))??;
        if out.is_empty() {
            return Err((Failure::Empty, "no node in any answer".into()));
        }
        out.sort_by(|a, b| a.ring_name().cmp(b.ring_name()));
        Ok(out)
    }

    async fn addresses(&self, host: &str, port: u16) -> Result<Vec<NodeSpec>, (Failure, String)> {
        let ips = self
            .resolver
            .lookup_ip(host)
            .await
            .map_err(|e| (Failure::of(&e), format!("{host}: {e}")))?;
        Ok(ips
            .iter()
            .map(|ip| NodeSpec::new(SocketAddr::new(ip, port).to_string()).with_tls_host(host))
            .collect())
    }

    async fn srv(&self, name: &str) -> Result<Vec<NodeSpec>, (Failure, String)> {
        let records = self
            .resolver
            .srv_lookup(name)
            .await
            .map_err(|e| (Failure::of(&e), format!("{name} SRV: {e}")))?;
        let targets: Vec<(String, u16)> = records
            .iter()
            .filter(|r| r.port() != 0)
            .map(|r| (r.target().to_utf8(), r.port()))
            .collect();
        let resolved = join_all(targets.iter().map(|(target, _)| async move {
            match target.trim_end_matches('.').parse::<IpAddr>() {
                Ok(ip) => Ok(ip),
                Err(_) => match self.resolver.lookup_ip(target.as_str()).await {
                    Ok(ips) => ips.iter().next().ok_or_else(|| {
                        (Failure::Empty, format!("SRV target {target}: no address"))
                    }),
                    Err(e) => Err((Failure::of(&e), format!("SRV target {target}: {e}"))),
                },
            }
        }))
        .await;
        let mut out = Vec::new();
        for ((target, port), ip) in targets.iter().zip(resolved) {
            let name = format!("{}:{port}", target.trim_end_matches('.'));
            out.push(NodeSpec::new(SocketAddr::new(ip?, *port).to_string()).named(name));
        }
        Ok(out)
    }
}

/// What a node said of itself in `stats` that discovery uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeReport {
    /// `draining 1`: it is leaving (see the module comment).
    pub draining: bool,
    /// `zone`: the zone it was started in, when it has one and the name is a valid zone.
    pub zone: Option<String>,
}

impl NodeReport {
    /// Reads a `stats` reply. Whatever a node sends, this never fails: a zone that is not
    /// valid UTF-8 or not a valid zone name counts as no zone.
    pub fn of<K: AsRef<[u8]>, V: AsRef<[u8]>>(stats: &[(K, V)]) -> NodeReport {
        let pairs = || stats.iter().map(|(k, v)| (k.as_ref(), v.as_ref()));
        NodeReport {
            draining: draining_in_stats(pairs()),
            zone: pairs()
                .find(|(k, _)| *k == b"zone")
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .filter(|z| crate::ring::check_zone(z).is_ok())
                .map(str::to_string),
        }
    }
}

/// Which members leave: a member missing from the answers is kept until it has been missing
/// for `remove_after` (see the module comment).
#[derive(Debug)]
pub struct Absences {
    remove_after: Duration,
    missing_since: HashMap<String, Instant>,
    /// Names last seen answering `draining 1` (see the module comment).
    leaving: HashSet<String>,
    /// The zone each node reported last, by name (see the module comment).
    zones: HashMap<String, String>,
}

impl Absences {
    pub fn new(remove_after: Duration) -> Absences {
        Absences {
            remove_after,
            missing_since: HashMap::new(),
            leaving: HashSet::new(),
            zones: HashMap::new(),
        }
    }

    /// `resolved` with each node's zone: its source's, else the one it reports (`reports`,
    /// one per node), else the one it reported last. While some have a zone, those whose
    /// zone is not known yet are left out until they answer (see the module comment).
    pub fn zoned(
        &mut self,
        mut resolved: Vec<NodeSpec>,
        reports: &[Option<NodeReport>],
    ) -> Vec<NodeSpec> {
        for (n, report) in resolved.iter_mut().zip(reports) {
            if n.zone.is_some() {
                continue;
            }
            let name = n.ring_name().to_string();
            if let Some(z) = report.as_ref().and_then(|r| r.zone.clone()) {
                self.zones.insert(name.clone(), z);
            } else if report.is_some() {
                // It answered without a zone: it has none (now).
                self.zones.remove(&name);
            }
            n.zone = self.zones.get(&name).cloned();
        }
        self.zones
            .retain(|name, _| resolved.iter().any(|n| n.ring_name() == name));
        if resolved.iter().any(|n| n.zone.is_some()) {
            resolved.retain(|n| {
                let known = n.zone.is_some();
                if !known {
                    tracing::info!(
                        node = %n.ring_name(),
                        "discovery: node's zone not known yet (no answer, or no zone in its \
                         stats); left out of the ring until it reports one"
                    );
                }
                known
            });
        }
        resolved
    }

    /// The names of `resolved` that are leaving, given this round's `reports` (one per node
    /// of `resolved`: `Some(draining)`, or `None` when it did not answer). A node seen
    /// draining stays leaving while it does not answer, until it answers without draining;
    /// names no longer resolved are forgotten.
    pub fn leaving(&mut self, resolved: &[NodeSpec], reports: &[Option<bool>]) -> Vec<String> {
        self.leaving
            .retain(|name| resolved.iter().any(|n| n.ring_name() == name));
        let mut out = Vec::new();
        for (n, report) in resolved.iter().zip(reports) {
            let name = n.ring_name();
            match report {
                Some(true) => {
                    self.leaving.insert(name.to_string());
                }
                Some(false) => {
                    self.leaving.remove(name);
                }
                None => {}
            }
            if self.leaving.contains(name) {
                out.push(name.to_string());
            }
        }
        out
    }

    /// [`Absences::merge`] with the members named in `leaving` left out at once, as if
    /// missing for longer than `remove_after` (they announced they are leaving).
    pub fn merge_leaving(
        &mut self,
        current: &[NodeSpec],
        mut resolved: Vec<NodeSpec>,
        leaving: &[String],
        now: Instant,
    ) -> Vec<NodeSpec> {
        let gone = |n: &NodeSpec| leaving.iter().any(|l| l == n.ring_name());
        resolved.retain(|n| !gone(n));
        let mut out = self.merge(current, resolved, now);
        out.retain(|n| !gone(n));
        self.missing_since.retain(|name, _| !leaving.contains(name));
        out
    }

    /// The membership to apply at `now`: `resolved`, plus the members of `current` missing
    /// from it for less than `remove_after`, sorted by name.
    pub fn merge(
        &mut self,
        current: &[NodeSpec],
        resolved: Vec<NodeSpec>,
        now: Instant,
    ) -> Vec<NodeSpec> {
        let mut out = resolved;
        self.missing_since
            .retain(|name, _| !out.iter().any(|n| n.ring_name() == name));
        for c in current {
            if out.iter().any(|n| n.ring_name() == c.ring_name()) {
                continue;
            }
            let since = *self
                .missing_since
                .entry(c.ring_name().to_string())
                .or_insert(now);
            if now.duration_since(since) < self.remove_after {
                out.push(c.clone());
            }
        }
        let members: Vec<&str> = out.iter().map(|n| n.ring_name()).collect();
        self.missing_since
            .retain(|name, _| members.contains(&name.as_str()));
        out.sort_by(|a, b| a.ring_name().cmp(b.ring_name()));
        out
    }
}

/// Registers discovery's metrics at zero (without changing any already counted), so they
/// exist on every proxy's `/metrics`, discovery or not: the dashboard's discovery panel shows
/// zero instead of "no data", and a renamed metric is caught by deploy/check.py.
pub fn register_metrics() {
    for reason in Failure::ALL {
        counter!(names::DISCOVERY_FAILURES_TOTAL, "reason" => reason.as_str()).increment(0);
    }
    counter!(names::DISCOVERY_CHANGES_TOTAL).increment(0);
    gauge!(names::DISCOVERY_NODES).increment(0.0);
    gauge!(names::DISCOVERY_DRAINING).increment(0.0);
}

/// A running discovery loop; dropping it stops the loop.
pub struct Discovery {
    task: JoinHandle<()>,
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Called with the membership after each change discovery applied (the proxy records it as
/// the node list in force).
pub type OnChange = Box<dyn Fn(&[NodeSpec]) + Send + Sync>;

impl Discovery {
    /// Resolves once (applying the list if there is one: a first failure is logged, counted
    /// and retried every interval, the client keeping the nodes it has), then re-resolves
    /// every `interval_secs` until the returned handle or the client is dropped.
    pub async fn start(
        client: &Router,
        settings: &DiscoverySettings,
        on_change: Option<OnChange>,
    ) -> Result<Discovery, Error> {
        let resolver = NodeResolver::new(settings)?;
        let interval = settings.interval();
        // Rounds start an interval after the last one ended, so routers that re-resolve as
        // often see a change at most an interval and a round apart: a transition kept twice
        // that long outlasts every router's switch (`past_owners.rs`). The round's length is
        // the slowest this router has seen (a loaded host, slow `stats` answers).
        let floor = move |slowest: Duration| (interval + slowest) * 2;
        client.set_transition_floor(floor(Duration::ZERO));
        let mut absences = Absences::new(Duration::from_secs(settings.remove_after_secs));
        let started = Instant::now();
        round(client, &resolver, &mut absences, on_change.as_ref()).await;
        let mut slowest = started.elapsed();
        client.set_transition_floor(floor(slowest));
        let weak = client.downgrade();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(client) = weak.upgrade() else { return };
                let started = Instant::now();
                round(&client, &resolver, &mut absences, on_change.as_ref()).await;
                if started.elapsed() > slowest {
                    slowest = started.elapsed();
                    client.set_transition_floor(floor(slowest));
                }
            }
        });
        Ok(Discovery { task })
    }
}

/// One resolution ([`resolve_and_apply`]), then, if the ring is still empty, a warning: every
/// round, since a router without members fails every write and misses every read while its
/// port still accepts (the proxy's `/ready` says 503 and `ringcache_proxy_ring_nodes` 0).
async fn round(
    client: &Router,
    resolver: &NodeResolver,
    absences: &mut Absences,
    on_change: Option<&OnChange>,
) {
    resolve_and_apply(client, resolver, absences, on_change).await;
    if client.topology().nodes.is_empty() {
        tracing::warn!(
            "discovery: no nodes found yet; the ring is empty, so writes fail and reads miss"
        );
    }
}

/// One resolution, applied if it changes the membership. The comparison is with the client's
/// current ring, not with the last answer, so a membership set by anyone else (a reload) is
/// brought back to what DNS says at the next round.
async fn resolve_and_apply(
    client: &Router,
    resolver: &NodeResolver,
    absences: &mut Absences,
    on_change: Option<&OnChange>,
) {
    let failed = |reason: Failure, why: &str| {
        counter!(names::DISCOVERY_FAILURES_TOTAL, "reason" => reason.as_str()).increment(1);
        tracing::warn!(
            reason = reason.as_str(),
            "discovery: {why}; keeping the last good node list"
        );
    };
    let resolved = match resolver.resolve().await {
        Ok(list) => list,
        Err((reason, why)) => return failed(reason, &why),
    };
    gauge!(names::DISCOVERY_NODES).set(resolved.len() as f64);
    let reports = node_reports(client, &resolved).await;
    let resolved = absences.zoned(resolved, &reports);
    let reports: Vec<Option<bool>> = reports
        .iter()
        .map(|r| r.as_ref().map(|r| r.draining))
        .collect();
    let leaving = absences.leaving(&resolved, &reports);
    gauge!(names::DISCOVERY_DRAINING).set(leaving.len() as f64);
    let current: Vec<NodeSpec> = client.topology().ring.nodes().to_vec();
    for name in &leaving {
        if current.iter().any(|n| n.ring_name() == name) {
            tracing::info!(node = %name, "discovery: node is draining; taking it out of the ring");
        }
    }
    let next = absences.merge_leaving(&current, resolved, &leaving, Instant::now());
    if next == current {
        return;
    }
    match client.apply_discovered(next.clone()).await {
        Ok(()) => {
            counter!(names::DISCOVERY_CHANGES_TOTAL).increment(1);
            tracing::info!(
                nodes = %next.iter().map(|n| format!("{}={}", n.ring_name(), n.addr))
                    .collect::<Vec<_>>().join(","),
                "discovery: membership changed"
            );
            if let Some(f) = on_change {
                f(&next);
            }
        }
        Err(e) => failed(Failure::Refused, &e.to_string()),
    }
}

/// Whether each node of `specs` says it is draining (`stats`: `draining 1`), in order;
/// `None` for one that did not answer ([`node_reports`]).
pub async fn drain_reports(router: &Router, specs: &[NodeSpec]) -> Vec<Option<bool>> {
    let reports = node_reports(router, specs).await;
    reports.into_iter().map(|r| r.map(|r| r.draining)).collect()
}

/// What each node of `specs` says of itself in `stats`, in order; `None` for one that did not
/// answer. A member (of the current or a past ring, at the same address) is asked on its own
/// connection; any other node on a short-lived one. Each ask is bounded by the connect and
/// request timeouts.
pub async fn node_reports(router: &Router, specs: &[NodeSpec]) -> Vec<Option<NodeReport>> {
    let known = router.topology().all_nodes();
    let o = router.options();
    let limit = o.connect_timeout + o.request_timeout;
    let checks = specs.iter().map(|spec| {
        let entry = known
            .iter()
            .find(|n| n.spec.ring_name() == spec.ring_name() && n.spec.addr == spec.addr)
            .cloned();
        let opts = router.connect_options_for(spec);
        let timeout = o.request_timeout;
        async move {
            let ask = async {
                let conn = match entry {
                    Some(n) => n.conn().clone(),
                    None => Connection::connect(&spec.addr, opts).await.ok()?,
                };
                match conn.request(Request::Stats { group: None }, timeout).await {
                    Ok(Response::Stats(s)) => Some(NodeReport::of(&s)),
                    _ => None,
                }
            };
            tokio::time::timeout(limit, ask).await.ok().flatten()
        }
    });
    join_all(checks).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(
            "dns+ringcache-nodes.ns.svc:11211"
                .parse::<Source>()
                .unwrap(),
            Source::Addresses {
                host: "ringcache-nodes.ns.svc".into(),
                port: 11211
            }
        );
        assert_eq!(
            "dnssrv+_memcache._tcp.ringcache-nodes.ns.svc"
                .parse::<Source>()
                .unwrap(),
            Source::Srv {
                name: "_memcache._tcp.ringcache-nodes.ns.svc".into()
            }
        );
        for bad in [
            "ringcache-nodes:11211",
            "dns+ringcache-nodes",
            "dns+ringcache-nodes:0",
            "dns+ringcache-nodes:70000",
            "dns+:11211",
            "dnssrv+",
            "dnssrv+a b",
            "srv+x",
        ] {
            assert!(bad.parse::<Source>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn sources_carry_zones() {
        let s = DiscoverySettings::new(["dnssrv+_m._tcp.a@zone-a", "dns+b.svc:11211@zone-b"]);
        assert_eq!(
            s.zoned_sources().unwrap(),
            vec![
                (
                    Source::Srv {
                        name: "_m._tcp.a".into()
                    },
                    Some("zone-a".into())
                ),
                (
                    Source::Addresses {
                        host: "b.svc".into(),
                        port: 11211
                    },
                    Some("zone-b".into())
                ),
            ]
        );
        for bad in [
            vec!["dnssrv+_m._tcp.a@zone-a", "dnssrv+_m._tcp.b"],
            vec!["dnssrv+_m._tcp.a@"],
            vec!["dnssrv+_m._tcp.a@two words"],
        ] {
            assert!(
                DiscoverySettings::new(bad.clone()).validate().is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn zones_come_from_the_nodes_reports() {
        let report = |draining: bool, zone: Option<&str>| {
            Some(NodeReport {
                draining,
                zone: zone.map(String::from),
            })
        };
        let nodes = || vec![named("a:1", "10.0.0.1:1"), named("b:1", "10.0.0.2:1")];
        let mut abs = Absences::new(Duration::from_secs(30));
        // Both answer: both zoned.
        let z = abs.zoned(
            nodes(),
            &[report(false, Some("za")), report(false, Some("zb"))],
        );
        let zones: Vec<Option<&str>> = z.iter().map(|n| n.zone.as_deref()).collect();
        assert_eq!(zones, [Some("za"), Some("zb")]);
        // b stops answering: it keeps the zone it reported.
        let z = abs.zoned(nodes(), &[report(false, Some("za")), None]);
        assert_eq!(z[1].zone.as_deref(), Some("zb"));
        // A newcomer that never answered waits outside while the others have zones.
        let mut three = nodes();
        three.push(named("c:1", "10.0.0.3:1"));
        let z = abs.zoned(three.clone(), &[report(false, Some("za")), None, None]);
        assert_eq!(z.len(), 2, "{z:?}");
        // Nobody with a zone: nobody is left out.
        let mut fresh = Absences::new(Duration::from_secs(30));
        assert_eq!(fresh.zoned(three, &[None, None, None]).len(), 3);
        // Reading stats: a bad zone is no zone; never a failure.
        let stats = |z: &[u8]| {
            NodeReport::of(&[
                (b"draining".to_vec(), b"1".to_vec()),
                (b"zone".to_vec(), z.to_vec()),
            ])
        };
        assert_eq!(
            stats(b"eu-1a"),
            NodeReport {
                draining: true,
                zone: Some("eu-1a".into())
            }
        );
        assert_eq!(stats(b"two words").zone, None);
        assert_eq!(stats(b"\xff\xfe").zone, None);
        assert_eq!(stats(b"").zone, None);
    }

    #[test]
    fn settings_defaults_and_refusals() {
        let s: DiscoverySettings = toml::from_str("sources = [\"dnssrv+_m._tcp.x\"]").unwrap();
        assert_eq!(s, DiscoverySettings::new(["dnssrv+_m._tcp.x"]));
        assert_eq!(s.interval(), Duration::from_secs(10));
        assert!(s.validate().is_ok());
        for bad in [
            "sources = []",
            "sources = [\"x\"]",
            "sources = [\"dns+x:1\"]\ninterval_secs = 0",
            "sources = [\"dns+x:1\"]\nnameserver = \"localhost\"",
            "sources = [\"dns+x:1\"]\nintervall_secs = 5",
        ] {
            let parsed: Result<DiscoverySettings, _> = toml::from_str(bad);
            assert!(
                parsed.map_or(true, |s| s.validate().is_err()),
                "accepted {bad:?}"
            );
        }
    }

    fn named(name: &str, addr: &str) -> NodeSpec {
        NodeSpec::new(addr).named(name)
    }

    /// The start of the absence tests: now, a 30 s grace, members a and b, and a alone.
    fn a_and_b() -> (Instant, Absences, Vec<NodeSpec>, Vec<NodeSpec>) {
        (
            Instant::now(),
            Absences::new(Duration::from_secs(30)),
            vec![named("a:1", "10.0.0.1:1"), named("b:1", "10.0.0.2:1")],
            vec![named("a:1", "10.0.0.1:1")],
        )
    }

    #[test]
    fn absent_members_stay_for_the_grace_then_leave() {
        let (t0, mut a, current, only_a) = a_and_b();
        // b disappears: kept for 30 s, then dropped.
        assert_eq!(a.merge(&current, only_a.clone(), t0), current);
        assert_eq!(
            a.merge(&current, only_a.clone(), t0 + Duration::from_secs(29)),
            current
        );
        assert_eq!(
            a.merge(&current, only_a.clone(), t0 + Duration::from_secs(30)),
            only_a
        );
        // b back in time (with a new address) restarts its clock; the new address wins.
        let mut a = Absences::new(Duration::from_secs(30));
        a.merge(&current, only_a.clone(), t0);
        let back = vec![named("b:1", "10.0.0.9:1"), named("a:1", "10.0.0.1:1")];
        let merged = a.merge(&current, back, t0 + Duration::from_secs(10));
        assert_eq!(
            merged,
            vec![named("a:1", "10.0.0.1:1"), named("b:1", "10.0.0.9:1")],
            "sorted by name"
        );
        assert_eq!(
            a.merge(&merged, only_a.clone(), t0 + Duration::from_secs(35)),
            merged,
            "a new absence starts a new grace"
        );
        // No grace: gone at once.
        let mut a = Absences::new(Duration::ZERO);
        assert_eq!(a.merge(&current, only_a.clone(), t0), only_a);
    }

    #[test]
    fn a_draining_member_leaves_at_once_and_comes_back_when_it_stops() {
        let (t0, mut a, current, only_a) = a_and_b();
        let leaving = vec!["b:1".to_string()];
        // Still resolved, but draining: out now, no grace.
        assert_eq!(
            a.merge_leaving(&current, current.clone(), &leaving, t0),
            only_a
        );
        // Draining and then missing from DNS: stays out, and no absence clock lingers.
        assert_eq!(
            a.merge_leaving(&only_a, only_a.clone(), &leaving, t0),
            only_a
        );
        assert!(a.missing_since.is_empty());
        // Restarted (not draining): a member again.
        assert_eq!(
            a.merge_leaving(&only_a, current.clone(), &[], t0 + Duration::from_secs(1)),
            current
        );
    }

    #[test]
    fn a_node_seen_draining_stays_leaving_while_silent() {
        let mut a = Absences::new(Duration::from_secs(30));
        let both = vec![named("a:1", "10.0.0.1:1"), named("b:1", "10.0.0.2:1")];
        let b = || vec!["b:1".to_string()];
        // Never seen draining and silent: a member (down is the probe's business).
        assert!(a.leaving(&both, &[Some(false), None]).is_empty());
        assert_eq!(a.leaving(&both, &[Some(false), Some(true)]), b());
        // Its drain ended, it exited, its record lingers: still leaving.
        assert_eq!(a.leaving(&both, &[Some(false), None]), b());
        // Restarted under the same name: answers without draining, a member again.
        assert!(a.leaving(&both, &[Some(false), Some(false)]).is_empty());
        // Its record gone: forgotten, so a later silent node of that name is not leaving.
        a.leaving(&both, &[Some(false), Some(true)]);
        a.leaving(&both[..1], &[Some(false)]);
        assert!(a.leaving(&both, &[Some(false), None]).is_empty());
    }
}
