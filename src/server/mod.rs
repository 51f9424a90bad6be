//! What the node and the proxy share as servers: their common settings ([`settings`]), the
//! steps that start one ([`start`]), the accept loop ([`listener`]), the server counters
//! ([`stats`]), the version they announce ([`version`]), and the security both apply
//! to their listeners — TLS ([`tls`]), memcached's text-protocol authentication ([`auth`]) and
//! the gate on administrative commands ([`gate`]); reading
//! through a per-thread buffer so idle connections own none ([`scratch`]). See docs/architecture.md for the layering:
//! `node` and `proxy` both build on this module and never on each other.

pub mod auth;
pub mod gate;
pub mod listener;
pub mod process_stats;
pub mod scratch;
pub mod security;
pub mod settings;
pub mod start;
pub mod stats;
pub mod stream;
pub mod tls;
pub mod version;

pub use security::{Security, SecurityArgs, SecuritySettings, Session};
pub use settings::{ServerArgs, ServerSettings};
pub use start::{start, Bound, ListenAddr, Parts, Running, Server};

pub use version::VERSION;
