//! The command lines of the servers tests run: `ringcache node|proxy|local` (by binary path:
//! `env!("CARGO_BIN_EXE_ringcache")` inside the ringcache package, [`crate::bins::ringcache_bin`]
//! elsewhere) and memcached.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{Output, Proc, Ready, Spawn};
use crate::{free_port, Error};

/// How ringcache `role` is started: ready on its `ringcache <role> listening on ADDR` line,
/// stopped with SIGINT first.
pub fn ringcache_spawn(role: &str) -> Spawn {
    Spawn::new(
        format!("ringcache {role}"),
        Ready::Banner(format!("ringcache {role} listening on ")),
    )
    .graceful(true)
}

/// `BIN <role> <args>`, ready on its `listening on` line (give it `--listen 127.0.0.1:0`, or a
/// config file that listens there, and it tells its address).
pub fn ringcache(bin: &Path, role: &str, args: &[&str], how: &Spawn) -> Result<Proc, Error> {
    let mut cmd = Command::new(bin);
    cmd.arg(role).args(args);
    how.start(cmd)
}

/// `BIN node --listen <listen> <args>`, retried for up to 5 s when it fails before its
/// `listening on` line: a node restarted on its old port may race the old socket's release.
pub fn ringcache_node(bin: &Path, listen: &str, args: &[&str], how: &Spawn) -> Result<Proc, Error> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut full = vec!["--listen", listen];
    full.extend_from_slice(args);
    loop {
        match ringcache(bin, "node", &full, how) {
            Ok(p) => return Ok(p),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// How memcached is started by default: output discarded, killed outright on drop (its
/// readiness, accepting on the port it was given, is filled in by [`memcached`]).
pub fn memcached_spawn(name: &str) -> Spawn {
    Spawn::new(
        name,
        Ready::Accepting(SocketAddr::from(([127, 0, 0, 1], 0))),
    )
    .output(Output::Null)
}

/// memcached on a free loopback port: TCP only, `args` added (`-m`, `-t`, ...), and `-u root`
/// when run as root (memcached refuses root otherwise). The port is free when picked but may be
/// taken before memcached binds it, so a failed start is retried on another port, 5 times.
pub fn memcached(bin: &Path, args: &[&str], how: &Spawn) -> Result<Proc, Error> {
    let mut last = None;
    for _ in 0..5 {
        match memcached_on(bin, free_port(), args, how) {
            Ok(p) => return Ok(p),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("five attempts"))
}

/// memcached on `127.0.0.1:port` (a restart on the port it had), as [`memcached`] starts it,
/// tried once.
pub fn memcached_on(bin: &Path, port: u16, args: &[&str], how: &Spawn) -> Result<Proc, Error> {
    let mut cmd = Command::new(bin);
    cmd.args(["-l", "127.0.0.1", "-p", &port.to_string(), "-U", "0"])
        .args(args);
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.args(["-u", "root"]);
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let how = Spawn {
        ready: Ready::Accepting(addr),
        ..how.clone()
    };
    how.start(cmd)
}
