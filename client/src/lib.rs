//! `ringcache-client`: the pieces every ringcache program shares.
//!
//! - [`protocol`]: memcached text and meta protocol requests and responses, parsed and encoded in
//!   both directions, plus a `tokio-util` codec for each side of a connection.
//! - [`ring`]: the virtual-node hash ring that places keys on nodes (xxh3 and ketama).
//! - [`discovery`]: the node list from DNS (A/AAAA or SRV records), re-resolved periodically.
//! - [`router`]: the cluster engine (routing, replication, failover, health, membership
//!   transitions and the migrator); [`client`]: [`Client`], the typed API over it; [`lock`]:
//!   leases on it.
//!
//! The node, the proxy and the benchmark all use this crate so that there is one parser and one
//! placement in the whole project.

pub mod client;
pub mod cluster_config;
pub mod connection;
pub mod discovery;
pub mod error;
pub mod handshake_log;
pub mod health;
pub mod lock;
pub mod metric_names;
pub mod protocol;
pub mod ring;
pub mod router;
pub mod tls_files;
pub mod topology;
pub mod transport;

pub use client::{CasResult, Client, GetMany, Item};
pub use error::{Error, Refused};
pub use lock::{Lease, LockOptions};
pub use router::migrate::{Phase, RebalanceOptions, RebalanceStatus};
pub use router::{
    Ack, ClientBuilder, ClientOptions, Router, RouterBuilder, RouterOptions,
    DEFAULT_CONDITIONAL_FAILOVER_AFTER,
};
