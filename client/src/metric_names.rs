//! Every metric the routing layer records (the proxy's, or an embedded client's), with its kind,
//! unit and help text: one list. `topology.rs` and `migrate.rs` record under these names; the
//! servers' `src/metrics.rs` describes them from [`ALL`] when it installs the recorder, so a
//! name exists in exactly one place and no family reaches `/metrics` without its `# HELP`.
//!
//! [`PER_NODE`] lists the families that carry a `node` label: the servers keep them in a
//! registry of their own whose series are dropped once their node has left every ring (see
//! `NodeMetrics::keep_alive` in `topology.rs` and docs/operations.md, "Removed nodes").

/// How a metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// The unit of a metric's values, where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Bytes,
}

/// One metric: name, kind, unit and help text.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
}

pub const CLIENT_REQUESTS_TOTAL: &str = "ringcache_client_requests_total";
pub const CLIENT_ERRORS_TOTAL: &str = "ringcache_client_errors_total";
pub const CLIENT_REQUEST_DURATION_SECONDS: &str = "ringcache_client_request_duration_seconds";
pub const CLIENT_NODE_UP: &str = "ringcache_client_node_up";
pub const CLIENT_HINTS: &str = "ringcache_client_hints";
pub const CLIENT_HINTS_OVERFLOWED_TOTAL: &str = "ringcache_client_hints_overflowed_total";
pub const CLIENT_HINTS_REPLAYED_TOTAL: &str = "ringcache_client_hints_replayed_total";
pub const CLIENT_NODE_RESTARTS_TOTAL: &str = "ringcache_client_node_restarts_total";
pub const CLIENT_ZONE_READS_TOTAL: &str = "ringcache_client_zone_reads_total";
pub const CLIENT_TLS_HANDSHAKE_FAILURES_TOTAL: &str =
    "ringcache_client_tls_handshake_failures_total";
pub const REBALANCE_PHASE: &str = "ringcache_rebalance_phase";
pub const REBALANCE_LAST_DURATION_SECONDS: &str = "ringcache_rebalance_last_duration_seconds";
pub const REBALANCE_TRANSITIONS_STARTED_TOTAL: &str =
    "ringcache_rebalance_transitions_started_total";
pub const REBALANCE_TRANSITIONS_COMPLETED_TOTAL: &str =
    "ringcache_rebalance_transitions_completed_total";
pub const REBALANCE_KEYS_SCANNED_TOTAL: &str = "ringcache_rebalance_keys_scanned_total";
pub const REBALANCE_KEYS_MOVING_TOTAL: &str = "ringcache_rebalance_keys_moving_total";
pub const REBALANCE_KEYS_COPIED_TOTAL: &str = "ringcache_rebalance_keys_copied_total";
pub const REBALANCE_KEYS_SKIPPED_TOTAL: &str = "ringcache_rebalance_keys_skipped_total";
pub const REBALANCE_KEYS_REMOVED_TOTAL: &str = "ringcache_rebalance_keys_removed_total";
pub const REBALANCE_BYTES_COPIED_TOTAL: &str = "ringcache_rebalance_bytes_copied_total";
pub const REBALANCE_READ_THROUGH_HITS_TOTAL: &str = "ringcache_rebalance_read_through_hits_total";
pub const REBALANCE_ERRORS_TOTAL: &str = "ringcache_rebalance_errors_total";
pub const DISCOVERY_FAILURES_TOTAL: &str = "ringcache_discovery_failures_total";
pub const DISCOVERY_NODES: &str = "ringcache_discovery_nodes";
pub const DISCOVERY_CHANGES_TOTAL: &str = "ringcache_discovery_changes_total";
pub const DISCOVERY_DRAINING: &str = "ringcache_discovery_draining";

/// The families recorded per node (label `node`), and only those: a node's series of each
/// are dropped from the servers' `/metrics` once the node has left every ring.
pub const PER_NODE: &[&str] = &[
    CLIENT_REQUESTS_TOTAL,
    CLIENT_ERRORS_TOTAL,
    CLIENT_REQUEST_DURATION_SECONDS,
    CLIENT_NODE_UP,
    CLIENT_HINTS,
    CLIENT_HINTS_OVERFLOWED_TOTAL,
    CLIENT_HINTS_REPLAYED_TOTAL,
    CLIENT_NODE_RESTARTS_TOTAL,
];

/// A [`Metric`] in one line, for the lists of them (this one and the servers' own).
pub const fn m(name: &'static str, kind: Kind, unit: Unit, help: &'static str) -> Metric {
    Metric {
        name,
        kind,
        unit,
        help,
    }
}

/// Every routing-layer metric.
pub const ALL: &[Metric] = &[
    m(
        CLIENT_REQUESTS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Requests sent to each node",
    ),
    m(
        CLIENT_ERRORS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Requests to each node that failed or timed out",
    ),
    m(
        CLIENT_REQUEST_DURATION_SECONDS,
        Kind::Histogram,
        Unit::Seconds,
        "Time of one request to each node",
    ),
    m(
        CLIENT_NODE_UP,
        Kind::Gauge,
        Unit::Count,
        "1 while the router uses the node, 0 while it has marked it down",
    ),
    m(
        CLIENT_HINTS,
        Kind::Gauge,
        Unit::Count,
        "Keys the node missed while down or out of sync, waiting to be replayed to it",
    ),
    m(
        CLIENT_HINTS_OVERFLOWED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Times a node's hint log overflowed (it is then flushed and re-warmed on return)",
    ),
    m(
        CLIENT_HINTS_REPLAYED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Hinted keys replayed to a node that came back",
    ),
    m(
        CLIENT_NODE_RESTARTS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Times another process was found where a node had been (it restarted): flushed, fenced and re-warmed",
    ),
    m(
        CLIENT_ZONE_READS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Keys read (hit or miss) by zone=\"in\" a node of the router's zone or zone=\"cross\" another; only while the router has a zone",
    ),
    m(
        CLIENT_TLS_HANDSHAKE_FAILURES_TOTAL,
        Kind::Counter,
        Unit::Count,
        "TLS handshakes to nodes that failed (logged at warn once a minute per node)",
    ),
    m(
        REBALANCE_PHASE,
        Kind::Gauge,
        Unit::Count,
        "Migrator phase: 0 idle, 1 listing, 2 copying, 3 cleaning",
    ),
    m(
        REBALANCE_LAST_DURATION_SECONDS,
        Kind::Gauge,
        Unit::Seconds,
        "Duration of the last completed transition",
    ),
    m(
        REBALANCE_TRANSITIONS_STARTED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Membership transitions started",
    ),
    m(
        REBALANCE_TRANSITIONS_COMPLETED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Membership transitions completed (superseded ones never complete)",
    ),
    m(
        REBALANCE_KEYS_SCANNED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Keys listed on past owners during transitions",
    ),
    m(
        REBALANCE_KEYS_MOVING_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Listed keys whose owners changed",
    ),
    m(
        REBALANCE_KEYS_COPIED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Keys copied to new owners or to a re-warmed node",
    ),
    m(
        REBALANCE_KEYS_SKIPPED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Keys not copied: already present, or changed or deleted meanwhile",
    ),
    m(
        REBALANCE_KEYS_REMOVED_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Keys removed from former owners after a transition",
    ),
    m(
        REBALANCE_BYTES_COPIED_TOTAL,
        Kind::Counter,
        Unit::Bytes,
        "Bytes of values copied by the migrator",
    ),
    m(
        REBALANCE_READ_THROUGH_HITS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Reads answered from a past owner during a transition",
    ),
    m(
        REBALANCE_ERRORS_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Listings and copies of the migrator that failed",
    ),
    m(
        DISCOVERY_FAILURES_TOTAL,
        Kind::Counter,
        Unit::Count,
        "DNS discovery rounds not used, by reason (timeout, nxdomain, empty, error, refused); \
         the last good node list stays",
    ),
    m(
        DISCOVERY_NODES,
        Kind::Gauge,
        Unit::Count,
        "Nodes in the last good DNS discovery answer",
    ),
    m(
        DISCOVERY_CHANGES_TOTAL,
        Kind::Counter,
        Unit::Count,
        "Membership changes applied from DNS discovery",
    ),
    m(
        DISCOVERY_DRAINING,
        Kind::Gauge,
        Unit::Count,
        "Nodes in the last DNS discovery answer that report draining (stats draining 1) and \
         were left out of the ring",
    ),
];
