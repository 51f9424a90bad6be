//! The servers a scenario starts, each a `testkit::Proc` that kills it when dropped (also on an
//! error or a panic), with its output in the scenario's directory, plus the small helpers
//! around them: config files, `/proc/PID/status` and `stats`.
//!
//! Children are also given `PR_SET_PDEATHSIG = SIGKILL`, so they die with the bench even when it
//! is killed outright and no destructor runs. Only processes started here are ever signalled,
//! by their own pid.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

pub use testkit::bins::find_binary;
use testkit::servers::{memcached_spawn, ringcache_spawn};
pub use testkit::Proc;
use testkit::{free_addr, Output, Ready, Spawn};

use crate::error::{BenchError, Result};

/// A temporary directory (`/tmp/rcbench-PID-NANOS`) removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("rcbench-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// How the bench starts `how`: output to `dir/NAME.log`, dying with the bench, killed outright.
fn logged(how: Spawn, name: &str, dir: &Path) -> Spawn {
    Spawn {
        name: name.to_string(),
        ..how
    }
    .output(Output::Log(dir.join(format!("{name}.log"))))
    .die_with_parent(true)
    .graceful(false)
}

/// Starts memcached on a free port with `mem_mb` MiB of item memory and its default 4 threads.
pub fn memcached(bin: &Path, name: &str, mem_mb: u64, dir: &Path) -> Result<Proc> {
    memcached_with(bin, name, mem_mb, &[], dir)
}

/// [`memcached`] with `extra` arguments (`-Z -o ssl_chain_cert=…`).
pub fn memcached_with(
    bin: &Path,
    name: &str,
    mem_mb: u64,
    extra: &[&str],
    dir: &Path,
) -> Result<Proc> {
    let mem = mem_mb.to_string();
    let mut args = vec!["-t", "4", "-c", "4096", "-m", &mem];
    args.extend_from_slice(extra);
    let how = logged(memcached_spawn(name), name, dir);
    Ok(testkit::servers::memcached(bin, &args, &how)?)
}

/// nutcracker's YAML: one pool, memcached protocol, ketama over md5, `server_connections`
/// connections per server (the same as the ringcache proxy's `connections_per_node`).
pub fn nutcracker_yaml(listen: &str, servers: &[String], server_connections: usize) -> String {
    let mut y = format!(
        "rcbench:\n  listen: {listen}\n  hash: md5\n  distribution: ketama\n  \
         timeout: 1000\n  preconnect: true\n  auto_eject_hosts: false\n  \
         server_connections: {server_connections}\n  servers:\n"
    );
    for s in servers {
        y.push_str(&format!("    - {s}:1\n"));
    }
    y
}

/// Starts nutcracker on `listen` in front of `servers` (config written to `dir/NAME.yml`).
pub fn nutcracker(
    bin: &Path,
    name: &str,
    listen: &str,
    servers: &[String],
    dir: &Path,
) -> Result<Proc> {
    let conf = dir.join(format!("{name}.yml"));
    fs::write(&conf, nutcracker_yaml(listen, servers, 2))?;
    let stats_port = testkit::free_port();
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&conf)
        .arg("-o")
        .arg(dir.join(format!("{name}.nc.log")))
        .arg("-p")
        .arg(dir.join(format!("{name}.pid")))
        .args(["-s", &stats_port.to_string(), "-a", "127.0.0.1", "-v", "4"]);
    let addr = listen
        .parse()
        .map_err(|e| BenchError::InvalidArg(format!("nutcracker listen {listen}: {e}")))?;
    Ok(logged(Spawn::new(name, Ready::Accepting(addr)), name, dir).start(cmd)?)
}

/// Starts `ringcache node` on a port of its choosing (it tells which).
pub fn ringcache_node(bin: &Path, name: &str, mem_mb: u64, dir: &Path) -> Result<Proc> {
    ringcache_node_with(bin, name, mem_mb, &[], dir)
}

/// [`ringcache_node`] with `extra` arguments (`--ssl-chain-cert …`).
pub fn ringcache_node_with(
    bin: &Path,
    name: &str,
    mem_mb: u64,
    extra: &[&str],
    dir: &Path,
) -> Result<Proc> {
    let how = logged(ringcache_spawn("node"), name, dir);
    let mem = mem_mb.to_string();
    let mut args = vec!["--listen", "127.0.0.1:0", "--memory-limit", &mem];
    args.extend_from_slice(extra);
    Ok(testkit::servers::ringcache(bin, "node", &args, &how)?)
}

/// The proxy's TOML config: `listen`, `extra` top-level settings, the ring with `replicas`, one
/// `[[nodes]]` per address.
pub fn proxy_toml(listen: &str, extra: &str, nodes: &[String], replicas: usize) -> String {
    let mut t = format!("listen = \"{listen}\"\n{extra}\n[ring]\nreplicas = {replicas}\n");
    for n in nodes {
        t.push_str(&format!("\n[[nodes]]\naddr = \"{n}\"\n"));
    }
    t
}

/// Writes `text` to `path` by a rename, so a poller never reads half a file.
pub fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Starts `ringcache proxy --config FILE` (written to `dir/NAME.toml`) in front of `nodes`, with
/// `extra` top-level settings. Returns the proxy and the config file's path (rewrite it to change
/// membership). The listen address is fixed in the file, so a rewrite can repeat it.
pub fn ringcache_proxy(
    bin: &Path,
    name: &str,
    nodes: &[String],
    replicas: usize,
    extra: &str,
    dir: &Path,
) -> Result<(Proc, PathBuf)> {
    let listen = free_addr().to_string();
    proxy_with_config(bin, name, &proxy_toml(&listen, extra, nodes, replicas), dir)
}

/// [`ringcache_proxy`] whose nodes have zones: `nodes` are `(address, zone)` (the zone rows,
/// issue 25). `extra` may give the proxy's own `zone`.
pub fn ringcache_proxy_zoned(
    bin: &Path,
    name: &str,
    nodes: &[(String, String)],
    replicas: usize,
    extra: &str,
    dir: &Path,
) -> Result<(Proc, PathBuf)> {
    let listen = free_addr().to_string();
    let mut t = format!("listen = \"{listen}\"\n{extra}\n[ring]\nreplicas = {replicas}\n");
    for (addr, zone) in nodes {
        t.push_str(&format!(
            "\n[[nodes]]\naddr = \"{addr}\"\nzone = \"{zone}\"\n"
        ));
    }
    proxy_with_config(bin, name, &t, dir)
}

/// `ringcache proxy --config dir/NAME.toml` with `toml` written there.
fn proxy_with_config(bin: &Path, name: &str, toml: &str, dir: &Path) -> Result<(Proc, PathBuf)> {
    let conf = dir.join(format!("{name}.toml"));
    write_atomically(&conf, toml)?;
    let how = logged(ringcache_spawn("proxy"), name, dir);
    let mut cmd = Command::new(bin);
    cmd.arg("proxy").arg("--config").arg(&conf);
    Ok((how.start(cmd)?, conf))
}

/// `VmRSS` of `/proc/PID/status`, in bytes.
pub fn vm_rss(pid: u32) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| BenchError::Proc {
        pid,
        reason: e.to_string(),
    })?;
    parse_vm_rss(&text).ok_or_else(|| BenchError::Proc {
        pid,
        reason: "no VmRSS line".into(),
    })
}

/// The `VmRSS:  1234 kB` line of a `/proc/PID/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(n * 1024),
        _ => None,
    }
}

/// A server's `stats` as name → value (non-numeric values are left out).
pub fn stats(addr: &str) -> Result<HashMap<String, u64>> {
    Ok(testkit::stats(addr)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_lines() {
        let status = "Name:\tmemcached\nVmPeak:\t  999 kB\nVmRSS:\t    2048 kB\nThreads:\t10\n";
        assert_eq!(parse_vm_rss(status), Some(2048 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: lots kB\n"), None);
        assert!(vm_rss(std::process::id()).expect("own rss") > 0);
    }

    #[test]
    fn configs() {
        let y = nutcracker_yaml(
            "127.0.0.1:5",
            &["127.0.0.1:6".into(), "127.0.0.1:7".into()],
            2,
        );
        assert!(y.contains("distribution: ketama") && y.contains("hash: md5"));
        assert!(y.contains("    - 127.0.0.1:6:1\n    - 127.0.0.1:7:1\n"));
        let t = proxy_toml("127.0.0.1:5", "", &["127.0.0.1:6".into()], 1);
        assert!(t.contains("listen = \"127.0.0.1:5\"") && t.contains("replicas = 1"));
        assert!(t.contains("[[nodes]]\naddr = \"127.0.0.1:6\""));
    }

    #[test]
    fn temp_dir_is_removed() {
        let d = TempDir::new().expect("temp dir");
        let p = d.path().to_path_buf();
        assert!(p.is_dir());
        drop(d);
        assert!(!p.exists());
    }
}
