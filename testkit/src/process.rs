//! A real server process owned by a test or a harness: started with a bounded wait for
//! readiness, signalled only by its own pid, and always resumed, killed and reaped on drop (so a
//! failed assertion never leaves a process behind, nor a stopped one).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Error;

/// How long a server may take to become ready.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop (SIGINT) may take before the process is killed.
const TERM_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a process's stderr is kept in memory.
const TAIL: usize = 16 * 1024;

/// When a started process counts as ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// It prints `<prefix><addr>` on stdout (ringcache's `listening on` line), and `addr`
    /// accepts connections; ringcache is started on port 0, so no port can be taken before it.
    Banner(String),
    /// `addr` accepts connections (servers told their port: memcached, nutcracker).
    Accepting(SocketAddr),
}

/// Where a process's output goes.
#[derive(Debug, Clone, Default)]
pub enum Output {
    /// stderr's last 16 KiB kept for failure messages ([`Proc::output_tail`]); stdout drained.
    #[default]
    Tail,
    /// stdout and stderr appended to this file.
    Log(PathBuf),
    /// stderr shared with the test (for debugging); stdout drained.
    Inherit,
    /// Both discarded.
    Null,
}

/// How to start a process: its name for messages and everything but the command line.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub name: String,
    pub ready: Ready,
    pub output: Output,
    /// Stop it with SIGINT (and wait) before killing it: ringcache shuts down cleanly on it,
    /// at once (SIGTERM would make a node drain first, for up to its `drain_timeout`).
    pub graceful: bool,
    /// `PR_SET_PDEATHSIG = SIGKILL`: it dies with the thread that started it even when no
    /// destructor runs (a harness killed outright). Only for long-lived starting threads: a test
    /// that starts processes from a pool thread must leave it off.
    pub die_with_parent: bool,
    pub start_timeout: Duration,
    /// Environment variables set for it (`RUST_LOG`, ...).
    pub env: Vec<(String, String)>,
}

impl Spawn {
    pub fn new(name: impl Into<String>, ready: Ready) -> Spawn {
        Spawn {
            name: name.into(),
            ready,
            output: Output::Tail,
            graceful: false,
            die_with_parent: false,
            start_timeout: START_TIMEOUT,
            env: Vec::new(),
        }
    }

    pub fn output(mut self, output: Output) -> Spawn {
        self.output = output;
        self
    }

    pub fn graceful(mut self, on: bool) -> Spawn {
        self.graceful = on;
        self
    }

    pub fn die_with_parent(mut self, on: bool) -> Spawn {
        self.die_with_parent = on;
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Spawn {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts `cmd` and waits, at most `start_timeout`, until it is ready.
    pub fn start(&self, mut cmd: Command) -> Result<Proc, Error> {
        let (stdout, stderr) = match &self.output {
            Output::Log(path) => {
                let f = fs::File::options().create(true).append(true).open(path)?;
                (Stdio::from(f.try_clone()?), Stdio::from(f))
            }
            Output::Tail => (Stdio::piped(), Stdio::piped()),
            Output::Inherit => (Stdio::piped(), Stdio::inherit()),
            Output::Null => (Stdio::null(), Stdio::null()),
        };
        let banner = matches!(self.ready, Ready::Banner(_));
        // The banner is read from stdout, so it must be a pipe whatever the output mode.
        let stdout = if banner { Stdio::piped() } else { stdout };
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.die_with_parent {
            // SAFETY: prctl is async-signal-safe and only changes this child's death signal.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| Error::Start {
            name: self.name.clone(),
            why: format!("cannot run {:?}: {e}", cmd.get_program()),
            output: String::new(),
        })?;
        let mut proc = Proc {
            name: self.name.clone(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            graceful: false,
            stopped: false,
            tail: Arc::default(),
            log: None,
        };
        if let Output::Log(path) = &self.output {
            proc.log = Some(path.clone());
        }
        if let Some(pipe) = proc.child.stderr.take() {
            keep_tail(pipe, Arc::clone(&proc.tail));
        }
        let deadline = Instant::now() + self.start_timeout;
        let ready = match &self.ready {
            Ready::Accepting(addr) => Ok(*addr),
            Ready::Banner(prefix) => {
                let stdout = proc.child.stdout.take().expect("stdout piped");
                let log = proc.log.clone();
                read_banner(stdout, prefix, log, deadline)
            }
        };
        let ready = ready.and_then(|addr| {
            proc.addr = addr;
            proc.wait_accepting(deadline)
        });
        if let Some(stdout) = proc.child.stdout.take() {
            drain(stdout, None);
        }
        match ready {
            Ok(()) => {
                proc.graceful = self.graceful;
                Ok(proc)
            }
            Err(why) => {
                proc.kill9();
                Err(Error::Start {
                    name: self.name.clone(),
                    why,
                    output: proc.output_tail(),
                })
            }
        }
    }
}

/// Keeps the last [`TAIL`] bytes of `pipe` in `sink`, reading until it closes.
fn keep_tail(mut pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
            s.extend_from_slice(&buf[..n]);
            let excess = s.len().saturating_sub(TAIL);
            s.drain(..excess);
        }
    });
}

/// Reads `pipe` to its end so the process never blocks on a full pipe, appending to `log`.
fn drain(pipe: impl Read + Send + 'static, log: Option<PathBuf>) {
    std::thread::spawn(move || {
        let mut log = log.and_then(|p| fs::File::options().append(true).open(p).ok());
        let mut pipe = pipe;
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Some(f) = log.as_mut() {
                let _ = f.write_all(&buf[..n]);
            }
        }
    });
}

/// Waits for the `<prefix><addr>` line on `stdout` (then keeps draining it into `log`).
fn read_banner(
    stdout: std::process::ChildStdout,
    prefix: &str,
    log: Option<PathBuf>,
    deadline: Instant,
) -> Result<SocketAddr, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = log.and_then(|p| fs::File::options().append(true).open(p).ok());
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            // The receiver is gone once the banner was read: keep draining.
            let _ = tx.send(line);
        }
    });
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix(prefix) {
                    // `listening on ADDR (3 nodes, ...)` for `ringcache local`: the first word.
                    let addr = addr.split_whitespace().next().unwrap_or_default();
                    return addr
                        .parse()
                        .map_err(|e| format!("bad address in {line:?}: {e}"));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(format!("no `{prefix}` line in time"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(format!("stdout closed before a `{prefix}` line"))
            }
        }
    }
}

/// A server process; resumed, killed (after SIGINT when graceful) and reaped on drop.
#[derive(Debug)]
pub struct Proc {
    /// For messages.
    pub name: String,
    /// Where it accepts connections.
    pub addr: SocketAddr,
    child: Child,
    graceful: bool,
    stopped: bool,
    tail: Arc<Mutex<Vec<u8>>>,
    log: Option<PathBuf>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` to this process (never to anything else: its own pid, not yet reaped).
    pub fn signal(&self, sig: libc::c_int) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(std::io::Error::other)?;
        // SAFETY: kill(2) on our own child's pid, which `self.child` has not reaped yet.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// SIGSTOP: the process freezes with its sockets open (a hung server).
    pub fn stop(&mut self) {
        self.signal(libc::SIGSTOP)
            .unwrap_or_else(|e| panic!("SIGSTOP {}: {e}", self.name));
        self.stopped = true;
    }

    /// SIGCONT after [`Proc::stop`]; nothing otherwise.
    pub fn cont(&mut self) {
        if self.stopped {
            self.signal(libc::SIGCONT)
                .unwrap_or_else(|e| panic!("SIGCONT {}: {e}", self.name));
            self.stopped = false;
        }
    }

    /// kill -9 and reap: a crash, not a shutdown (idempotent; drop does the same).
    pub fn kill9(&mut self) {
        self.graceful = false;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGINT (stop now, without a node's drain), then waits (bounded) for the exit; the exit
    /// status, or `None` when it had to be killed.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.cont();
        if self.signal(libc::SIGINT).is_ok() {
            let deadline = Instant::now() + TERM_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill9();
        None
    }

    /// Whether it has exited (without waiting).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The end of what it wrote: the last lines of its log file, or its stderr's last KiB.
    pub fn output_tail(&self) -> String {
        match &self.log {
            Some(path) => {
                let text = fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(10)..].join("\n")
            }
            None => String::from_utf8_lossy(&self.tail.lock().unwrap_or_else(|e| e.into_inner()))
                .into_owned(),
        }
    }

    /// Waits until `addr` accepts a connection; `Err` if the process exits first or the
    /// deadline passes.
    fn wait_accepting(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            if let Some(status) = self.exited() {
                return Err(format!("exited with {status} before accepting"));
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not accepting on {} in time", self.addr));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.graceful {
            self.terminate();
        }
        if self.stopped {
            let _ = self.signal(libc::SIGCONT);
        }
        self.kill9();
    }
}

/// Waits until `addr` accepts a connection, at most `limit` (a process this kit did not start,
/// or one started in another network namespace).
pub fn wait_accepting(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
