//! What the defect-hunting harnesses (`session-fuzz`, `soak`, `netns-faults`) share on top of
//! `testkit`: the `ringcache` binary, a real cluster of `ringcache node` processes behind a
//! `ringcache proxy`, and canary keys.
//!
//! The processes are the scenario's [`Proc`]s: killed on drop and with the bench.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringcache_client::protocol::Response;
pub use testkit::{show, Wire};

use crate::error::{BenchError, Result};
use crate::scenario::procs::{self, Proc, TempDir};
use crate::scenario::workspace_root;

/// A local error with a message.
pub fn fail(msg: impl Into<String>) -> BenchError {
    BenchError::Io(std::io::Error::other(msg.into()))
}

/// The `ringcache` binary: `explicit`, else `target/release/ringcache`, else
/// `target/debug/ringcache` of this workspace.
pub fn ringcache_bin(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(fail(format!("--ringcache {}: no such file", p.display())))
        };
    }
    testkit::bins::ringcache_in(&workspace_root().join("target"), &["release", "debug"]).ok_or_else(
        || fail("no ringcache binary: run `cargo build --release --bin ringcache` or pass --ringcache"),
    )
}

/// Real processes on loopback: `nodes` × `ringcache node`, one `ringcache proxy` in front.
pub struct Cluster {
    pub nodes: Vec<Proc>,
    pub proxy: Proc,
    /// Each node's memory limit, MiB.
    pub node_mem_mb: u64,
    // Dropped last: the logs live here.
    pub dir: TempDir,
}

impl Cluster {
    /// Starts the cluster; `proxy_extra` is added to the proxy's config (top-level keys).
    pub fn start(
        bin: &Path,
        nodes: usize,
        replicas: usize,
        node_mem_mb: u64,
        proxy_extra: &str,
    ) -> Result<Cluster> {
        let dir = TempDir::new()?;
        let nodes = (1..=nodes)
            .map(|i| procs::ringcache_node(bin, &format!("node{i}"), node_mem_mb, dir.path()))
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = nodes.iter().map(|p| p.addr.to_string()).collect();
        let (proxy, _conf) =
            procs::ringcache_proxy(bin, "proxy", &addrs, replicas, proxy_extra, dir.path())?;
        Ok(Cluster {
            nodes,
            proxy,
            node_mem_mb,
            dir,
        })
    }

    pub fn node_addrs(&self) -> Vec<String> {
        self.nodes.iter().map(|p| p.addr.to_string()).collect()
    }

    /// The proxy's address, as the harnesses' connections take it.
    pub fn proxy_addr(&self) -> String {
        self.proxy.addr.to_string()
    }
}

/// `stats` `cmd_flush` of the server at `addr`.
pub fn cmd_flush(addr: &str) -> Result<u64> {
    procs::stats(addr)?
        .get("cmd_flush")
        .copied()
        .ok_or_else(|| fail(format!("{addr}: no cmd_flush in stats")))
}

/// Keys stored before a run and read back, value for value, during it.
pub struct Canaries {
    pub items: Vec<(String, String)>,
}

impl Canaries {
    pub fn new(tag: &str, n: usize) -> Canaries {
        Canaries {
            items: (0..n)
                .map(|i| {
                    (
                        format!("canary_{tag}_{i}"),
                        format!("canary-value-{tag}-{i}"),
                    )
                })
                .collect(),
        }
    }

    /// Stores every canary through `w`.
    pub fn store(&self, w: &mut Wire) -> Result<()> {
        for (k, v) in &self.items {
            let req = format!("set {k} 0 0 {}\r\n{v}\r\n", v.len());
            match w.request(req.as_bytes(), Duration::from_secs(5)) {
                Ok(Response::Stored) => {}
                other => return Err(fail(format!("storing canary {k}: {other:?}"))),
            }
        }
        Ok(())
    }

    /// Reads every canary with one multi-get through `w`; `Err` names the first one missing or
    /// wrong. A multi-get answers a key it cannot read as a miss, so a missing canary is looked
    /// up on each of `nodes` directly: the report then tells a lost key from an unreadable one.
    pub fn check(&self, w: &mut Wire, nodes: &[String]) -> std::result::Result<(), String> {
        let mut req = String::from("get");
        for (k, _) in &self.items {
            req.push(' ');
            req.push_str(k);
        }
        req.push_str("\r\n");
        let values = match w.request(req.as_bytes(), Duration::from_secs(5))? {
            Response::Values(v) => v,
            other => return Err(format!("canary read answered {other:?}")),
        };
        for (k, v) in &self.items {
            match values.iter().find(|x| x.key == k.as_bytes()) {
                Some(x) if x.data == v.as_bytes() => {}
                Some(x) => return Err(format!("canary {k} reads {:?}", show(&x.data))),
                None => return Err(format!("canary {k} is missing{}", where_is(k, nodes))),
            }
        }
        if values.len() != self.items.len() {
            return Err(format!(
                "{} values for {} canaries",
                values.len(),
                self.items.len()
            ));
        }
        Ok(())
    }
}

/// Where a canary the proxy did not return still is: `" (on no node: lost)"` or
/// `" (unreadable through the proxy; held by …)"`, as read from each node directly.
fn where_is(key: &str, nodes: &[String]) -> String {
    if nodes.is_empty() {
        return String::new();
    }
    let mut held = Vec::new();
    for n in nodes {
        let got = Wire::connect(n)
            .map_err(|e| e.to_string())
            .and_then(|mut w| {
                w.request(format!("get {key}\r\n").as_bytes(), Duration::from_secs(5))
            });
        match got {
            Ok(Response::Values(v)) if !v.is_empty() => held.push(n.clone()),
            Ok(_) => {}
            Err(e) => held.push(format!("{n}: unreachable ({e})")),
        }
    }
    if held.is_empty() {
        " (on no node: lost)".into()
    } else {
        format!(
            " (unreadable through the proxy; held by {})",
            held.join(", ")
        )
    }
}

/// Seconds as a decimal number, for the harnesses' flags.
pub fn parse_secs(s: &str) -> std::result::Result<Duration, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() || v <= 0.0 || v > 86_400.0 {
        return Err(format!("{s:?}: seconds must be in (0, 86400]"));
    }
    Ok(Duration::from_secs_f64(v))
}
