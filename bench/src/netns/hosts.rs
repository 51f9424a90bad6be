//! Hosts on a private network of namespaces, and the processes in them: what the
//! namespace harnesses (`netns-faults`, `secure-cluster`) stand on.
//!
//! Each host is a network namespace joined by a veth pair to a bridge in a namespace of its
//! own; addresses come from 198.18.0.0/15 (the benchmarking range) and exist only inside those
//! namespaces, with no default route. The harness's own threads enter a host's namespace
//! (`setns`), so nothing is reachable from, or added to, the host machine's network. Every
//! namespace is deleted when [`Net`] is dropped (on failure and panic too), and a [`NsProc`]
//! is SIGKILLed and reaped when dropped, so processes die before their namespaces go.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{BenchError, Result};
use crate::harness::{self, fail, Wire};

/// Why a harness could not run at all (as opposed to finding a failure).
pub struct CannotRun(pub String);

/// What a namespace harness needs of the machine: root and iproute2.
pub fn can_run() -> std::result::Result<(), CannotRun> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(CannotRun("not root".into()));
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Err(CannotRun("no `ip` command (iproute2)".into()));
    }
    Ok(())
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(fail(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The namespaces and links of one run; deleting a namespace deletes the veth ends inside it.
pub struct Net {
    bridge_ns: String,
    /// Host namespaces, in the order they were asked for.
    pub hosts: Vec<String>,
    /// The host-side veth of each host (where further addresses go).
    host_ifs: Vec<String>,
    /// The bridge-side veth of each host (cut to take a host off the network).
    ports: Vec<String>,
}

const SUBNET: &str = "198.18.0";

impl Net {
    /// Builds a bridge namespace and `hosts` host namespaces, host `i` at 198.18.0.(i+1)/24.
    pub fn build(tag: &str, hosts: usize) -> Result<Net> {
        let mut net = Net {
            bridge_ns: format!("{tag}br"),
            hosts: Vec::new(),
            host_ifs: Vec::new(),
            ports: Vec::new(),
        };
        // Registered before creation, so a half-built layout is still torn down.
        ip(&["netns", "add", &net.bridge_ns])?;
        let br = net.bridge_ns.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for i in 0..hosts {
            let ns = format!("{tag}h{i}");
            ip(&["netns", "add", &ns])?;
            net.hosts.push(ns.clone());
            let (host_if, port) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
            // Created directly inside the namespaces: nothing appears in the host's.
            ip(&[
                "-n", &ns, "link", "add", &host_if, "type", "veth", "peer", "name", &port, "netns",
                &br,
            ])?;
            net.host_ifs.push(host_if.clone());
            net.ports.push(port.clone());
            let addr = format!("{}/24", Net::addr(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &host_if])?;
            ip(&["-n", &ns, "link", "set", &host_if, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0"])?;
            ip(&["-n", &br, "link", "set", &port, "up"])?;
        }
        Ok(net)
    }

    /// Host `i`'s first address.
    pub fn addr(i: usize) -> String {
        Net::subnet_addr(i + 1)
    }

    /// 198.18.0.`n`: further addresses a host may take (n < 255).
    pub fn subnet_addr(n: usize) -> String {
        format!("{SUBNET}.{n}")
    }

    /// Gives host `i` one more address (a pod that comes back at a new IP).
    pub fn add_addr(&self, i: usize, addr: &str) -> Result<()> {
        self.change_addr(i, "add", addr)
    }

    /// Takes `addr` from host `i` (the old IP of a pod that moved).
    pub fn del_addr(&self, i: usize, addr: &str) -> Result<()> {
        self.change_addr(i, "del", addr)
    }

    /// `ip -n HOST addr add|del ADDR/24 dev IF`: one command for both directions.
    fn change_addr(&self, i: usize, op: &str, addr: &str) -> Result<()> {
        let cidr = format!("{addr}/24");
        ip(&[
            "-n",
            &self.hosts[i],
            "addr",
            op,
            &cidr,
            "dev",
            &self.host_ifs[i],
        ])
    }

    /// Takes host `i`'s link down or up (at the bridge, as a pulled cable).
    pub fn link(&self, i: usize, up: bool) -> Result<()> {
        ip(&[
            "-n",
            &self.bridge_ns,
            "link",
            "set",
            &self.ports[i],
            if up { "up" } else { "down" },
        ])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.bridge_ns)) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("netns: cleanup: {e}");
            }
        }
    }
}

/// Moves the calling thread into network namespace `ns`. Threads it starts afterwards, and
/// sockets it opens, are in `ns` too.
pub fn enter(ns: &str) -> Result<()> {
    let f = File::open(Path::new("/run/netns").join(ns))?;
    // SAFETY: setns(2) on a valid namespace fd; it only changes this thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// Runs `f` on a thread inside namespace `ns`.
pub fn enter_and<T: Send>(ns: &str, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(ns)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(fail("a namespace thread panicked")))
    })
}

/// A process started in a namespace; SIGKILLed and reaped on drop.
pub struct NsProc {
    pub name: String,
    ns: String,
    pub args: Vec<String>,
    bin: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NsProc {
    pub fn start(name: &str, ns: &str, bin: &Path, args: &[String], dir: &Path) -> Result<NsProc> {
        let mut p = NsProc {
            name: name.into(),
            ns: ns.into(),
            args: args.to_vec(),
            bin: bin.to_path_buf(),
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        p.spawn()?;
        Ok(p)
    }

    /// Starts the process (again), with `args` as they are now; output appended to its log.
    pub fn spawn(&mut self) -> Result<()> {
        let out = File::options().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .arg(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        // SAFETY: prctl only sets this child's death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot start {} in {}: {e}", self.name, self.ns)))?;
        self.child = Some(child);
        Ok(())
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| i32::try_from(c.id()).ok())
    }

    pub fn signal(&self, sig: libc::c_int) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on our own, not yet reaped, child.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits (bounded) for the process to exit by itself; true when it did (and is reaped).
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            match self.child.as_mut().map(Child::try_wait) {
                None | Some(Ok(Some(_))) | Some(Err(_)) => {
                    self.child = None;
                    return true;
                }
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        false
    }

    /// The tail of the process's log, for a failure message.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for NsProc {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        self.kill9();
    }
}

/// Waits (bounded) until `addr` accepts, from the calling thread's namespace.
pub fn wait_up(addr: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if Wire::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// What a harness's `run` gives back when it has no report: `Ok` when the machine cannot run
/// it (no root, no iproute2), `Err` when it failed.
pub type NoReport = std::result::Result<CannotRun, BenchError>;

/// The start every namespace harness shares: checks the machine ([`can_run`]), finds the
/// `ringcache` binary (`--ringcache` or the workspace's target/), and runs `inner` with it.
pub fn run_harness<T>(
    explicit_bin: Option<&Path>,
    inner: impl FnOnce(&Path) -> Result<T>,
) -> std::result::Result<T, NoReport> {
    can_run().map_err(Ok)?;
    let bin = harness::ringcache_bin(explicit_bin).map_err(Err)?;
    inner(&bin).map_err(Err)
}

/// Prints why a harness has no report and returns its exit code: 2 when it cannot run on this
/// machine, 1 when it failed.
pub fn no_report_exit(name: &str, why: NoReport) -> i32 {
    match why {
        Ok(CannotRun(why)) => {
            eprintln!("{name}: SKIPPED, cannot run: {why} (needs root and iproute2)");
            2
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            1
        }
    }
}
