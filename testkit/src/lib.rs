//! What every ringcache test and defect-hunting harness shares, kept in one place so that a fix
//! to a spawner or a deadline reaches all of them (docs/testing.md, "The test kit"):
//!
//! - [`port`]: loopback ports nobody listens on;
//! - [`bins`]: finding the `ringcache`, `memcached` and other binaries;
//! - [`process`]: real server processes — started with a readiness deadline, stopped and
//!   continued (SIGSTOP/SIGCONT), killed, always reaped on drop; [`servers`] builds the
//!   `ringcache node|proxy` and memcached command lines;
//! - [`conn`]: a blocking raw connection whose every read has a deadline, checked against
//!   expected bytes with placeholders ([`pattern`]);
//! - [`wire`]: a blocking connection whose replies are parsed with the client's own parser,
//!   and `stats` of a server;
//! - [`aio`]: the same raw text protocol over tokio, each exchange bounded;
//! - [`pki`]: a CA and a loopback server certificate as PEM files, for TLS servers;
//! - [`runtime`]: one test body at a time on its own runtime; [`rng`]: repeatable test inputs;
//! - [`check`]: an assertion over many cases that names how many failed and the first few.
//!
//! Nothing here signals a process it did not start, and every wait is bounded.

pub mod aio;
pub mod bins;
pub mod check;
pub mod conn;
pub mod dns;
pub mod error;
pub mod pattern;
pub mod pki;
pub mod port;
pub mod process;
pub mod rng;
pub mod runtime;
pub mod servers;
pub mod show;
pub mod wire;

pub use conn::{exchange, Conn, REPLY_TIMEOUT};
pub use error::Error;
pub use pattern::{substitute, Pattern};
pub use port::{free_addr, free_port};
pub use process::{Output, Proc, Ready, Spawn, START_TIMEOUT};
pub use rng::Rng;
pub use runtime::{blocking, run};
pub use show::show;
pub use wire::{stats, stats_text, Wire};
