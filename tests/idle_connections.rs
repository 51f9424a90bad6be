//! Many idle connections (issue 24): a connection that waits owns no buffer, so what it held
//! before it went idle — a finished request, a request cut off halfway — must still be there
//! when it wakes, and thousands of them must not stop one busy client. Also the open-file
//! limit each server raises to what `max_connections` needs, checked on a real process started
//! under a low limit. Memory per idle connection is measured by the bench, not here.

mod support;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rlimit::Resource;
use support::{spawn_node, spawn_proxy, Conn, Server, BIN};

/// linux/capability.h: the capability to raise a hard limit.
const CAP_SYS_RESOURCE: libc::c_ulong = 24;

/// Idle connections held at once, beside the working one.
const IDLE: usize = 2_000;

/// Lets this test process hold [`IDLE`] sockets and more (a soft limit of 1 024 is common).
fn raise_own_limit() {
    let (soft, hard) = Resource::NOFILE.get().expect("getrlimit");
    let want = (IDLE as u64 + 1_000).min(hard);
    if soft < want {
        Resource::NOFILE.set(want, hard).expect("setrlimit");
    }
}

/// `VALUE key 0 len\r\nvalue\r\nEND\r\n`.
fn hit(key: &str, value: &[u8]) -> Vec<u8> {
    let mut r = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\nEND\r\n");
    r
}

fn set(key: &str, value: &[u8]) -> Vec<u8> {
    let mut r = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\n");
    r
}

/// [`IDLE`] connections: every tenth stops halfway through a `set`, the others asked for the
/// version once. Then one connection works (a value larger than a read, a pipelined batch)
/// while they idle, and then every idle one finishes what it started and reads a key.
fn idle_connections_keep_working(server: &Server) {
    let mut idle: Vec<Conn> = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let mut c = server.conn();
        if i % 10 == 0 {
            c.send(format!("set idle{i} 0 0 10\r\n01234").as_bytes());
        } else {
            let v = c.line(b"version\r\n");
            assert!(v.starts_with("VERSION "), "connection {i}: {v:?}");
        }
        idle.push(c);
    }

    let mut work = server.conn();
    // Larger than the per-thread scratch buffer a read goes through: the value arrives in
    // several reads and is kept, whole, between them.
    let big: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    work.send(&set("big", &big));
    work.expect(b"STORED\r\n");
    work.send(b"get big\r\n");
    work.expect(&hit("big", &big));
    // A pipelined batch, sent in one write, answered in order.
    let mut batch = Vec::new();
    let mut want = Vec::new();
    for i in 0..100 {
        let v = format!("value-{i}");
        batch.extend_from_slice(&set(&format!("k{i}"), v.as_bytes()));
        batch.extend_from_slice(format!("get k{i}\r\n").as_bytes());
        want.extend_from_slice(b"STORED\r\n");
        want.extend_from_slice(&hit(&format!("k{i}"), v.as_bytes()));
    }
    work.send(&batch);
    work.expect(&want);
    let open: u64 = work
        .stat("curr_connections")
        .parse()
        .expect("curr_connections");
    assert!(open > IDLE as u64, "curr_connections {open}");

    for (i, c) in idle.iter_mut().enumerate() {
        if i % 10 == 0 {
            // The rest of the set its connection began before it went idle.
            c.send(b"56789\r\n");
            c.expect(b"STORED\r\n");
            c.send(format!("get idle{i}\r\n").as_bytes());
            c.expect(&hit(&format!("idle{i}"), b"0123456789"));
        } else {
            c.send(format!("get k{}\r\n", i % 100).as_bytes());
            c.expect(&hit(
                &format!("k{}", i % 100),
                format!("value-{}", i % 100).as_bytes(),
            ));
        }
    }
    work.send(b"get big\r\n");
    work.expect(&hit("big", &big));
}

#[test]
fn node_two_thousand_idle_connections_and_one_working() {
    raise_own_limit();
    let node = spawn_node(&["--max-connections", "4000"]);
    idle_connections_keep_working(&node);
}

#[test]
fn proxy_two_thousand_idle_connections_and_one_working() {
    raise_own_limit();
    let node = spawn_node(&[]);
    let proxy = spawn_proxy(&[node.addr], &["--max-connections", "4000"]);
    idle_connections_keep_working(&proxy);
}

/// The soft and hard `Max open files` of a process, from `/proc/PID/limits`.
fn open_files_limit(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files line");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

/// `ringcache node -c <connections>` started with the open-file limit `soft`/`hard`; with
/// `capped`, without the capability to raise a hard limit (which root has).
fn node_under_limit(connections: &str, soft: u64, hard: u64, capped: bool) -> testkit::Proc {
    let mut cmd = Command::new(Path::new(BIN));
    cmd.args(["node", "--listen", "127.0.0.1:0", "-c", connections]);
    // SAFETY: setrlimit and prctl are async-signal-safe and change only the child.
    unsafe {
        cmd.pre_exec(move || {
            Resource::NOFILE.set(soft, hard)?;
            if capped {
                // Out of the bounding set, CAP_SYS_RESOURCE is not regained at exec, even
                // by root. Failing (not root, so never had it) changes nothing.
                libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
            }
            Ok(())
        });
    }
    testkit::servers::ringcache_spawn("node")
        .env("RUST_LOG", "info")
        .start(cmd)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn node_raises_its_open_file_limit_to_what_max_connections_needs() {
    let (_, hard) = Resource::NOFILE.get().expect("getrlimit");
    if hard < 10_000 + ringcache::fd_limit::HEADROOM {
        eprintln!("skipped: this process's hard open-file limit is only {hard}");
        return;
    }
    let node = node_under_limit("10000", 256, hard, false);
    // 10 000 connections plus the headroom (src/fd_limit.rs), under the hard limit.
    assert_eq!(
        open_files_limit(node.pid()),
        (10_000 + ringcache::fd_limit::HEADROOM, hard)
    );
}

/// Whether this process holds CAP_SYS_RESOURCE (bit 24 of `CapEff` in /proc/self/status).
fn may_raise_hard_limits() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

#[test]
fn node_with_cap_sys_resource_raises_the_hard_limit_for_fifty_thousand() {
    if !may_raise_hard_limits() {
        eprintln!("skipped: this process lacks CAP_SYS_RESOURCE (containers often drop it)");
        return;
    }
    let node = node_under_limit("50000", 256, 1024, false);
    let want = 50_000 + ringcache::fd_limit::HEADROOM;
    assert_eq!(open_files_limit(node.pid()), (want, want));
}

#[test]
fn node_says_so_when_the_hard_limit_is_too_low() {
    let node = node_under_limit("5000", 256, 1024, true);
    // Raised as far as it may go, and the warning names both numbers.
    assert_eq!(open_files_limit(node.pid()), (1024, 1024));
    let want = format!(
        "max_connections needs {} open files but the limit is 1024 (hard limit 1024)",
        5000 + ringcache::fd_limit::HEADROOM
    );
    // Written before the listening line the start waited for; stderr is collected by a
    // thread of its own, so it may land a moment later.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.output_tail().contains(&want) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let tail = node.output_tail();
    assert!(tail.contains(&want), "no warning {want:?} in:\n{tail}");
    // It still serves.
    let mut c = Conn::open(node.addr, "node");
    let v = c.line(b"version\r\n");
    assert!(v.starts_with("VERSION "), "{v:?}");
}
