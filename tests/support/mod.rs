//! The ringcache package's tests' entry to `testkit` (docs/testing.md, "The test kit"): the
//! same names the tests have always used, with this package's `ringcache` binary filled in
//! (`CARGO_BIN_EXE_ringcache` exists only here).
//!
//! - [`spawn_memcached`], [`spawn_memcached_with`]: Debian's memcached on a free port (`None`
//!   when it is not installed).
//! - [`spawn_node`], [`spawn_proxy`]: `ringcache node|proxy --listen 127.0.0.1:0`, the address
//!   read from its stdout.
//! - [`Conn`]: a raw TCP connection with deadlines on every read (see `testkit::Pattern`).
//! - [`pki`]: a CA, server and client certificates, and the node arguments for TLS.
//!
//! Every process is killed when its [`Server`] is dropped, and every wait is bounded.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code, unused_imports)]

pub mod dns;
pub mod held;
pub mod pki;

use std::net::SocketAddr;
use std::path::Path;

pub use testkit::bins::memcached_bin;
pub use testkit::{free_port, show, substitute, Conn, Pattern, Proc, REPLY_TIMEOUT, START_TIMEOUT};

/// This package's `ringcache` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_ringcache");

/// A server process owned by a test; killed (ringcache gently first) when dropped.
pub struct Server {
    proc: Proc,
    pub addr: SocketAddr,
    /// `memcached` or `ringcache`, for messages.
    pub name: &'static str,
}

impl Server {
    /// The last few KiB the process wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.proc.output_tail()
    }

    /// A new connection to this server.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr, self.name)
    }

    /// The process id, for reading its `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// kill -9 and reap: a crash, not a shutdown.
    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// The process, to stop (SIGSTOP), continue or signal it.
    pub fn process(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// Starts memcached on a free loopback port (TCP only, default settings) and waits until it
/// accepts. `None` when memcached is not installed; callers print a skip line.
pub fn spawn_memcached() -> Option<Server> {
    spawn_memcached_with(&[])
}

/// [`spawn_memcached`], printing the skip line itself when memcached is not installed (the
/// caller then returns: `let Some(m) = memcached_or_skip() else { return };`).
pub fn memcached_or_skip() -> Option<Server> {
    let server = spawn_memcached();
    if server.is_none() {
        println!("skip: memcached is not installed (looked in /usr/bin and on PATH)");
    }
    server
}

/// [`spawn_memcached`] with `args` added (`-Y <file>`, `-F`, ...).
pub fn spawn_memcached_with(args: &[&str]) -> Option<Server> {
    let bin = memcached_bin()?;
    let how = testkit::servers::memcached_spawn("memcached");
    let proc = testkit::servers::memcached(&bin, args, &how).unwrap_or_else(|e| panic!("{e}"));
    Some(Server {
        addr: proc.addr,
        proc,
        name: "memcached",
    })
}

/// Starts `ringcache node --listen 127.0.0.1:0 <extra_args>`.
pub fn spawn_node(extra_args: &[&str]) -> Server {
    spawn_node_at("127.0.0.1:0", extra_args)
}

/// [`spawn_node`] on a given address (a restart on the port a node had before).
pub fn spawn_node_at(listen: &str, extra_args: &[&str]) -> Server {
    let how = testkit::servers::ringcache_spawn("node");
    let proc = testkit::servers::ringcache_node(Path::new(BIN), listen, extra_args, &how)
        .unwrap_or_else(|e| panic!("{e}"));
    ringcache(proc)
}

/// Starts `ringcache proxy --listen 127.0.0.1:0 --node <addr>... <extra_args>` in front of
/// `nodes`.
pub fn spawn_proxy(nodes: &[SocketAddr], extra_args: &[&str]) -> Server {
    let mut args: Vec<String> = Vec::new();
    for n in nodes {
        args.push("--node".into());
        args.push(n.to_string());
    }
    args.extend(extra_args.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_ringcache("proxy", "127.0.0.1:0", &args)
}

/// `ringcache <role> --listen <listen> <extra_args>`, its address read from its
/// `ringcache <role> listening on <addr>` line.
pub fn spawn_ringcache(role: &str, listen: &str, extra_args: &[&str]) -> Server {
    let how = testkit::servers::ringcache_spawn(role);
    let mut args = vec!["--listen", listen];
    args.extend_from_slice(extra_args);
    let proc = testkit::servers::ringcache(Path::new(BIN), role, &args, &how)
        .unwrap_or_else(|e| panic!("{e}"));
    ringcache(proc)
}

/// `ringcache <role> --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 <extra_args>`, and the
/// address of its metrics endpoint, read from the `metrics on http://ADDR/metrics` line it
/// prints (its output goes to a log file, removed once read): no port is picked in advance,
/// so none can be taken by another test meanwhile.
pub fn spawn_with_metrics(role: &str, extra_args: &[&str]) -> (Server, SocketAddr) {
    spawn_with_metrics_env(role, extra_args, &[])
}

/// [`spawn_with_metrics`] with environment variables set for the process (`RINGCACHE_ZONE`).
pub fn spawn_with_metrics_env(
    role: &str,
    extra_args: &[&str],
    env: &[(&str, &str)],
) -> (Server, SocketAddr) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let log = std::env::temp_dir().join(format!(
        "ringcache-{role}-{}-{}.log",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let how = env.iter().fold(
        testkit::servers::ringcache_spawn(role).output(testkit::process::Output::Log(log.clone())),
        |how, (k, v)| how.env(k, v),
    );
    let mut args = vec!["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra_args);
    let proc = testkit::servers::ringcache(Path::new(BIN), role, &args, &how)
        .unwrap_or_else(|e| panic!("{e}"));
    // The metrics line is printed before the `listening on` line the start waited for.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let metrics = text
        .lines()
        .find_map(|l| l.split_once(" metrics on http://"))
        .and_then(|(_, rest)| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("ringcache {role}: no metrics address in {text:?}"));
    (ringcache(proc), metrics)
}

fn ringcache(proc: Proc) -> Server {
    Server {
        addr: proc.addr,
        proc,
        name: "ringcache",
    }
}

/// `n` nodes in this process on `127.0.0.1:0`, one worker thread each (for tests that need a
/// node's handle, or many nodes cheaply).
pub async fn local_nodes(n: usize) -> Vec<ringcache::node::NodeHandle> {
    let mut v = Vec::new();
    for _ in 0..n {
        let cfg = ringcache::config::NodeConfig {
            server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
            threads: 1,
            ..ringcache::config::NodeConfig::default()
        };
        let clock = std::sync::Arc::new(ringcache::node::clock::SystemClock);
        v.push(
            ringcache::node::start(cfg, clock)
                .await
                .expect("node starts"),
        );
    }
    v
}

/// The ring's view of `addrs`: named `n0`, `n1`, … in order, weight 1.
pub fn specs(addrs: &[SocketAddr]) -> Vec<ringcache_client::ring::NodeSpec> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| ringcache_client::ring::NodeSpec::new(a.to_string()).named(format!("n{i}")))
        .collect()
}

/// A proxy config for tests: loopback listeners on free ports, `request_timeout_ms`, a 500 ms
/// connect timeout, a node marked down after 2 failures, `replicas` copies; the rest default.
pub fn proxy_config(request_timeout_ms: u64, replicas: usize) -> ringcache::proxy::ProxyConfig {
    ringcache::proxy::ProxyConfig {
        server: ringcache::server::ServerSettings {
            listen: "127.0.0.1:0".into(),
            metrics_listen: Some("127.0.0.1:0".into()),
            ..ringcache::server::ServerSettings::default()
        },
        request_timeout_ms,
        connect_timeout_ms: 500,
        failure_limit: 2,
        ring: ringcache_client::cluster_config::RingSettings {
            replicas,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A client that knows only `nodes` (no old ring, no rebalancing), to read where the ring puts
/// the keys: has the data really moved. Generous timeouts: a node still connecting would count
/// as down and its keys as misses.
pub async fn fresh_client(
    nodes: Vec<ringcache_client::ring::NodeSpec>,
    replicas: usize,
) -> ringcache_client::Client {
    ringcache_client::Client::builder()
        .node_specs(nodes)
        .replicas(replicas)
        .connect_timeout(std::time::Duration::from_secs(5))
        .request_timeout(std::time::Duration::from_secs(5))
        .rebalance(ringcache_client::RebalanceOptions {
            enabled: false,
            ..Default::default()
        })
        .build()
        .await
        .expect("fresh client")
}
