//! The servers a scenario starts, each behind a guard that kills it when dropped (also on an
//! error or a panic), plus the small helpers around them: free loopback ports, waiting for a
//! port to listen, finding binaries, `/proc/PID/status` and `stats`.
//!
//! Children are also given `PR_SET_PDEATHSIG = SIGKILL`, so they die with the bench even when it
//! is killed outright and no destructor runs. Only processes started here are ever signalled,
//! by their own pid.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use ringcache_client::protocol::Response;

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

/// A server process this scenario started; killed and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    pub addr: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process now (idempotent; drop does the same).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of its log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Spawns `cmd` with its output in `dir/NAME.log`, dying with the bench, and waits (bounded)
/// until `addr` accepts connections.
pub fn spawn(name: &str, mut cmd: Command, addr: &str, dir: &Path) -> Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let out = fs::File::create(&log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: prctl is async-signal-safe and only changes this child's own death signal.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        BenchError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot start {name} ({:?}): {e}", cmd.get_program()),
        ))
    })?;
    let mut p = Proc {
        name: name.to_string(),
        addr: addr.to_string(),
        child,
        log,
    };
    if !wait_listening(addr, Duration::from_secs(15)) {
        let exited = p.child.try_wait().ok().flatten();
        let tail = p.log_tail();
        p.stop();
        return Err(BenchError::Io(std::io::Error::other(format!(
            "{name} did not listen on {addr} (exit: {exited:?}); log:\n{tail}"
        ))));
    }
    Ok(p)
}

/// A port nobody listens on right now on 127.0.0.1 (the kernel's pick).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> Result<String> {
    Ok(format!("127.0.0.1:{}", free_port()?))
}

/// Waits until `addr` accepts a connection, at most `limit`.
pub fn wait_listening(addr: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `path` if it is a file, else `name` on `PATH`.
pub fn find_binary(path: &str, name: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|dirs| {
        std::env::split_paths(&dirs)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Whether we run as root (memcached then needs `-u`).
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Starts memcached on a free port with `mem_mb` MiB of item memory and its default 4 threads.
pub fn memcached(bin: &Path, name: &str, mem_mb: u64, dir: &Path) -> Result<Proc> {
    let port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        .args(["-t", "4", "-c", "4096", "-m", &mem_mb.to_string()]);
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    spawn(name, cmd, &format!("127.0.0.1:{port}"), dir)
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
    let stats_port = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(&conf)
        .arg("-o")
        .arg(dir.join(format!("{name}.nc.log")))
        .arg("-p")
        .arg(dir.join(format!("{name}.pid")))
        .args(["-s", &stats_port.to_string(), "-a", "127.0.0.1", "-v", "4"]);
    spawn(name, cmd, listen, dir)
}

/// Starts `ringcache node` on a free port.
pub fn ringcache_node(bin: &Path, name: &str, mem_mb: u64, dir: &Path) -> Result<Proc> {
    let addr = free_addr()?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "node",
        "--listen",
        &addr,
        "--memory-limit",
        &mem_mb.to_string(),
    ]);
    spawn(name, cmd, &addr, dir)
}

/// The proxy's TOML config: `listen`, xxh3 ring with `replicas`, one `[[nodes]]` per address.
pub fn proxy_toml(listen: &str, nodes: &[String], replicas: usize) -> String {
    let mut t = format!(
        "listen = \"{listen}\"\n\n[ring]\nhash = \"xxh3\"\nvnodes = 160\nreplicas = {replicas}\n"
    );
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

/// Starts `ringcache proxy --config FILE` (written to `dir/NAME.toml`) in front of `nodes`.
/// Returns the proxy and the config file's path (rewrite it to change membership).
pub fn ringcache_proxy(
    bin: &Path,
    name: &str,
    nodes: &[String],
    replicas: usize,
    dir: &Path,
) -> Result<(Proc, PathBuf)> {
    let addr = free_addr()?;
    let conf = dir.join(format!("{name}.toml"));
    write_atomically(&conf, &proxy_toml(&addr, nodes, replicas))?;
    let mut cmd = Command::new(bin);
    cmd.arg("proxy").arg("--config").arg(&conf);
    Ok((spawn(name, cmd, &addr, dir)?, conf))
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
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"stats\r\n")?;
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 16384];
    for _ in 0..10_000 {
        match Response::parse(&mut buf) {
            Ok(Some(Response::Stats(lines))) => {
                return Ok(lines
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let v = std::str::from_utf8(&v).ok()?.parse().ok()?;
                        Some((String::from_utf8_lossy(&k).into_owned(), v))
                    })
                    .collect());
            }
            Ok(Some(other)) => {
                return Err(BenchError::Io(std::io::Error::other(format!(
                    "stats from {addr}: unexpected reply {other:?}"
                ))))
            }
            Ok(None) => {}
            Err(e) => {
                return Err(BenchError::Io(std::io::Error::other(format!(
                    "stats from {addr}: {e}"
                ))))
            }
        }
        let n = s.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Err(BenchError::Io(std::io::Error::other(format!(
        "stats from {addr}: reply never ended"
    ))))
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
        let t = proxy_toml("127.0.0.1:5", &["127.0.0.1:6".into()], 1);
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
