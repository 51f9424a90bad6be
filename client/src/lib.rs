//! `ringcache-client`: the pieces every ringcache program shares.
//!
//! - [`protocol`]: memcached text and meta protocol requests and responses, parsed and encoded in
//!   both directions, plus a `tokio-util` codec for each side of a connection.
//! - [`ring`]: the virtual-node hash ring that places keys on nodes (xxh3 and ketama).
//! - [`discovery`]: the node list from DNS (A/AAAA or SRV records), re-resolved periodically.
//! - [`client`]: the cluster client (routing, replication, failover, rebalancing) and
//!   [`lock`]: leases on it.
//!
//! The node, the proxy and the benchmark all use this crate so that there is one parser and one
//! placement in the whole project.

pub mod client;
pub mod cluster_config;
pub mod connection;
pub mod discovery;
pub mod error;
mod handoff;
pub mod health;
pub mod lock;
pub mod metric_names;
pub mod migrate;
pub mod protocol;
pub mod ring;
pub mod tls_files;
pub mod topology;
mod transition;
pub mod transport;

pub use client::{Ack, CasResult, Client, ClientBuilder, ClientOptions, GetMany, Item};
pub use error::Error;
pub use lock::{Lease, LockOptions};
pub use migrate::{Phase, RebalanceOptions, RebalanceStatus};
