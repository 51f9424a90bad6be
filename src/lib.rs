//! `ringcache`: the node server, the proxy, configuration, metrics and the command line.
//!
//! The wire protocol and the hash ring live in the `ringcache-client` crate so that every program
//! shares one parser and one placement; this crate holds what runs as a server.

pub mod cli;
pub mod config;
pub mod error;
pub mod fd_limit;
pub mod local;
pub mod memcached_flags;
pub mod metrics;
pub mod node;
pub mod process;
pub mod proxy;
pub mod ring_cli;
pub mod server;
pub mod settings;

pub use error::Error;
