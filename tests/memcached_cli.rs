//! memcached's command line on `ringcache node` (docs/operations.md, "memcached's command
//! line"): a node started with the flags of Debian's `/etc/memcached.conf` runs as memcached
//! would (pid file, the `memcache` user), and libmemcached's `memccapable` passes against it.
//! Every flag's mapping and refusal is checked in `src/memcached_flags.rs`'s tests.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// A directory removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `ringcache node ARGS` (no `--listen`: the test gives memcached's `-l`/`-p`), retried on
/// another free port when the one picked was taken before the node bound it.
fn node_on_free_port(args: impl Fn(u16) -> Vec<String>) -> (Proc, u16) {
    let how = testkit::servers::ringcache_spawn("node");
    let mut last = None;
    for _ in 0..5 {
        let port = free_port();
        let a = args(port);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        match testkit::servers::ringcache(Path::new(BIN), "node", &a, &how) {
            Ok(p) => return (p, port),
            Err(e) => last = Some(e),
        }
    }
    panic!("node did not start: {last:?}");
}

/// `(uid, gid)` of `user`, from the passwd database.
fn ids(user: &str) -> Option<(u32, u32)> {
    let name = std::ffi::CString::new(user).ok()?;
    // SAFETY: getpwnam returns null or a valid entry, read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: non-null: a valid passwd entry.
    (!pw.is_null()).then(|| unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

/// The `Uid:` and `Gid:` lines' effective ids of process `pid`.
fn proc_ids(pid: u32) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    (field("Uid:"), field("Gid:"))
}

/// Debian's memcached.conf: `-m 64 -p 11211 -u memcache -l 127.0.0.1 -P
/// /var/run/memcached/memcached.pid` (on a free port and a test directory). The node writes
/// the pid file, becomes `memcache` when started as root, serves memccapable's ASCII suite,
/// reports the settings under memcached's names and removes the pid file when it stops.
#[test]
fn debian_memcached_conf_runs_memccapable() {
    let Some(capable) = testkit::bins::system_bin("memccapable") else {
        eprintln!("SKIP: memccapable (libmemcached-tools) is not installed");
        return;
    };
    let dir = Dir(std::env::temp_dir().join(format!("ringcache-mc-conf-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let memcache = ids("memcache");
    if let (true, Some((uid, gid))) = (root, memcache) {
        // As Debian's /run/memcached: the user may remove its pid file.
        std::os::unix::fs::chown(&dir.0, Some(uid), Some(gid)).unwrap();
    }
    let pidfile = dir.0.join("memcached.pid");
    let pf = pidfile.display().to_string();
    let (mut node, port) = node_on_free_port(|port| {
        [
            "-m",
            "64",
            "-p",
            &port.to_string(),
            "-u",
            "memcache",
            "-l",
            "127.0.0.1",
            "-P",
            &pf,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    });
    let pid = node.pid();
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap(),
        format!("{pid}\n")
    );
    match (root, memcache) {
        (true, Some(want)) => assert_eq!(proc_ids(pid), want, "runs as memcache"),
        _ => eprintln!("SKIP the user check: not root, or no memcache user"),
    }

    let out = Command::new(&capable)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-a", "-t", "5"])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("All tests passed"), "memccapable:\n{text}");

    let mut c = Conn::open(node.addr, "ringcache");
    assert_eq!(node.addr.port(), port);
    c.send(b"stats settings\r\n");
    let settings = String::from_utf8(c.until(b"END\r\n")).unwrap();
    for want in [
        "STAT maxbytes 67108864\r\n".to_string(),
        format!("STAT tcpport {port}\r\n"),
        "STAT inter 127.0.0.1\r\n".to_string(),
        "STAT maxconns 1024\r\n".to_string(),
    ] {
        assert!(settings.contains(&want), "{want:?} in {settings}");
    }
    drop(c);
    node.terminate();
    let deadline = Instant::now() + Duration::from_secs(5);
    while pidfile.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pidfile.exists(), "the pid file is removed at exit");
}

/// A refused memcached flag stops the node before it listens, with the error on stderr and a
/// failing exit status, as a systemd unit or a container would show it.
#[test]
fn a_refused_flag_stops_the_node_with_its_error() {
    let out = Command::new(BIN)
        .args(["node", "-l", "127.0.0.1", "-p", "0", "-d"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "ringcache: config error: memcached's -d/--daemon is not supported: ringcache stays in \
         the foreground; let systemd, Docker or a supervisor run it in the background\n"
    );
    assert!(out.stdout.is_empty());
}
