//! memcached's text-protocol authentication and the admin-command gate, on real servers: the
//! same exchanges are sent to memcached 1.6.18 started with `-Y` (where installed), to a node
//! and to a proxy, and each reply is checked byte for byte. Then the gate: admin commands
//! refused to non-admins with memcached's replies for disabled commands, allowed to admins, the
//! proxy's network-safe defaults, and the proxy authenticating to nodes that require it.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{spawn_memcached_with, spawn_node, spawn_proxy, Conn, Server};

const UNAUTH: &[u8] = b"CLIENT_ERROR unauthenticated\r\n";

/// A file in a per-test directory (removed at the end).
struct Files(PathBuf);

impl Files {
    fn new(tag: &str) -> Files {
        let d = std::env::temp_dir().join(format!("ringcache-auth-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Files(d)
    }
    fn put(&self, name: &str, text: &str) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const USERS: &str = "alice:secret\nops:r00t\nproxy:backend-pw\n";

/// Bytes sent and the reply expected.
type Row = (&'static [u8], &'static [u8]);

/// memcached's replies for the commands it can disable, which the gate gives too.
const FLUSH_ALL_REFUSED: Row = (b"flush_all\r\n", b"CLIENT_ERROR flush_all not allowed\r\n");
const METADUMP_REFUSED: Row = (
    b"lru_crawler metadump all\r\n",
    b"ERROR metadump not allowed\r\n",
);
const CACHEDUMP_REFUSED: Row = (
    b"stats cachedump 1 1\r\n",
    b"CLIENT_ERROR stats cachedump not allowed\r\n",
);
const CACHE_MEMLIMIT_REFUSED: Row = (
    b"cache_memlimit 100\r\n",
    b"CLIENT_ERROR cache_memlimit not allowed\r\n",
);
const SHUTDOWN_REFUSED: Row = (b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n");

/// Sends each row's bytes on `c` in turn and expects its reply.
fn exchange(c: &mut Conn, rows: &[Row]) {
    for &(send, want) in rows {
        c.send(send);
        c.expect(want);
    }
}

/// The exchanges: on a fresh connection each, request by request, with the exact replies
/// memcached 1.6.18 gives.
fn exchanges() -> Vec<(&'static str, Vec<Row>)> {
    vec![
        (
            "no auth: every command refused, connection kept",
            vec![
                (b"get a\r\n", UNAUTH),
                (b"version\r\n", UNAUTH),
                (b"mg a v\r\n", UNAUTH),
                (b"flush_all\r\n", UNAUTH),
            ],
        ),
        (
            "wrong password",
            vec![
                (
                    b"set auth 0 0 12\r\nalice wrong1\r\n",
                    b"CLIENT_ERROR authentication failure\r\n",
                ),
                (b"get a\r\n", UNAUTH),
            ],
        ),
        (
            "unknown user",
            vec![(
                b"set auth 0 0 14\r\nmallory secret\r\n",
                b"CLIENT_ERROR authentication failure\r\n",
            )],
        ),
        (
            "no space between user and password",
            vec![(
                b"set auth 0 0 11\r\nalicesecret\r\n",
                b"CLIENT_ERROR bad authentication token format\r\n",
            )],
        ),
        (
            "only set authenticates",
            vec![
                (b"add auth 0 0 12\r\n", UNAUTH),
                (b"alice secret\r\n", UNAUTH),
            ],
        ),
        (
            "auth then commands",
            vec![
                (b"set auth 0 0 12\r\nalice secret\r\n", b"STORED\r\n"),
                (b"set a 0 0 1\r\nb\r\n", b"STORED\r\n"),
                (b"get a\r\n", b"VALUE a 0 1\r\nb\r\nEND\r\n"),
                (b"delete a\r\n", b"DELETED\r\n"),
                (b"mn\r\n", b"MN\r\n"),
            ],
        ),
        (
            "noreply does not silence the auth reply; a second auth is a plain set",
            vec![
                (
                    b"set auth 0 0 12 noreply\r\nalice secret\r\n",
                    b"STORED\r\n",
                ),
                (b"set auth 0 0 5\r\nvalue\r\n", b"STORED\r\n"),
                (b"get auth\r\n", b"VALUE auth 0 5\r\nvalue\r\nEND\r\n"),
            ],
        ),
    ]
}

fn run_exchanges(addr: SocketAddr, label: &'static str) {
    for (name, rows) in exchanges() {
        let mut c = Conn::open(addr, label);
        for (send, want) in rows {
            c.send(send);
            if let Err(e) = c.check(want) {
                panic!("{name}: {e}");
            }
        }
    }
}

#[test]
fn exchanges_match_memcached_on_node_and_proxy() {
    let f = Files::new("exchanges");
    let users = f.put("users", USERS);
    match spawn_memcached_with(&["-Y", &users]) {
        Some(m) => run_exchanges(m.addr, "memcached"),
        None => eprintln!("skip memcached: not installed"),
    }
    let node = spawn_node(&["-Y", &users]);
    run_exchanges(node.addr, "ringcache");
    // The proxy authenticates its clients itself; its node here has no auth file.
    let backend = spawn_node(&[]);
    let proxy = spawn_proxy(&[backend.addr], &["--auth-file", &users]);
    run_exchanges(proxy.addr, "ringcache");
}

#[test]
fn a_password_changed_in_the_auth_file_applies_to_new_connections() {
    let f = Files::new("reload");
    let users = f.put("users", "alice:secret\n");
    let node = spawn_node(&["-Y", &users]);
    let mut c = node.conn();
    c.send(b"set auth 0 0 12\r\nalice secret\r\n");
    c.expect(b"STORED\r\n");
    // Another length, so the change is seen whatever the clock's resolution.
    f.put("users", "alice:changed-it\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut n = node.conn();
        n.send(b"set auth 0 0 16\r\nalice changed-it\r\n");
        if n.check(b"STORED\r\n").is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "new password never accepted");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut old = node.conn();
    old.send(b"set auth 0 0 12\r\nalice secret\r\n");
    old.expect(b"CLIENT_ERROR authentication failure\r\n");
    // The connection that authenticated before goes on.
    c.send(b"mn\r\n");
    c.expect(b"MN\r\n");
}

/// Logs in as `user` (password from [`USERS`]).
fn login(server: &Server, user: &str) -> Conn {
    let password = USERS
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .unwrap();
    let body = format!("{user} {password}");
    let mut c = server.conn();
    c.send(format!("set auth 0 0 {}\r\n{body}\r\n", body.len()).as_bytes());
    c.expect(b"STORED\r\n");
    c
}

#[test]
fn node_gate_refuses_admin_commands_to_non_admins() {
    let f = Files::new("nodegate");
    let users = f.put("users", USERS);
    let config = f.put(
        "node.toml",
        "[commands]\nflush_all = \"admin\"\nlru_crawler = \"admin\"\ncache_memlimit = \"admin\"\n\
         verbosity = \"deny\"\nslabs = \"admin\"\n",
    );
    let node = spawn_node(&["--config", &config, "-Y", &users, "--admin-user", "ops"]);
    let mut alice = login(&node, "alice");
    exchange(
        &mut alice,
        &[
            (b"set k 0 0 1\r\nv\r\n", b"STORED\r\n"),
            FLUSH_ALL_REFUSED,
            (b"flush_all noreply\r\n", b""),
            METADUMP_REFUSED,
            (
                b"lru_crawler crawl all\r\n",
                b"CLIENT_ERROR lru_crawler not allowed\r\n",
            ),
            CACHE_MEMLIMIT_REFUSED,
            (
                b"verbosity 1\r\n",
                b"CLIENT_ERROR verbosity not allowed\r\n",
            ),
            (
                b"slabs automove 1\r\n",
                b"CLIENT_ERROR slabs not allowed\r\n",
            ),
            CACHEDUMP_REFUSED,
            SHUTDOWN_REFUSED,
            // Nothing was flushed.
            (b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n"),
            (b"mn\r\n", b"MN\r\n"),
        ],
    );
    let mut ops = login(&node, "ops");
    ops.send(b"lru_crawler metadump all\r\n");
    ops.expect(b"key=k exp=-1 la={n} cas={n} fetch=yes cls=1 size={n}\nEND\r\n");
    exchange(
        &mut ops,
        &[
            (b"cache_memlimit 100\r\n", b"OK\r\n"),
            (b"slabs automove 1\r\n", b"OK\r\n"),
            // "deny" is for admins too.
            (
                b"verbosity 1\r\n",
                b"CLIENT_ERROR verbosity not allowed\r\n",
            ),
            (b"flush_all\r\n", b"OK\r\n"),
            (b"get k\r\n", b"END\r\n"),
        ],
    );
}

/// The refusal lines are memcached's own for the commands it can disable.
#[test]
fn refusals_are_memcacheds_disabled_command_replies() {
    let Some(m) = spawn_memcached_with(&["-F", "-X", "-W"]) else {
        eprintln!("skip: memcached not installed");
        return;
    };
    exchange(
        &mut m.conn(),
        &[
            FLUSH_ALL_REFUSED,
            METADUMP_REFUSED,
            CACHEDUMP_REFUSED,
            SHUTDOWN_REFUSED,
            (b"watch\r\n", b"CLIENT_ERROR watch commands not allowed\r\n"),
        ],
    );
}

#[test]
fn proxy_defaults_keep_flush_all_and_dumps_from_clients() {
    let node = spawn_node(&[]);
    let proxy = spawn_proxy(&[node.addr], &[]);
    exchange(
        &mut proxy.conn(),
        &[
            (b"set k 0 0 1\r\nv\r\n", b"STORED\r\n"),
            FLUSH_ALL_REFUSED,
            (b"flush_all 0 noreply\r\n", b""),
            METADUMP_REFUSED,
            CACHE_MEMLIMIT_REFUSED,
            SHUTDOWN_REFUSED,
            (b"verbosity 1\r\n", b"OK\r\n"),
            (b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n"),
            (b"mn\r\n", b"MN\r\n"),
        ],
    );
}

#[test]
fn proxy_admins_may_flush_all() {
    let f = Files::new("proxyadmin");
    let users = f.put("users", USERS);
    let node = spawn_node(&[]);
    let proxy = spawn_proxy(&[node.addr], &["-Y", &users, "--admin-user", "ops"]);
    let mut alice = login(&proxy, "alice");
    alice.send(b"set k 0 0 1\r\nv\r\nflush_all\r\nget k\r\n");
    alice.expect(b"STORED\r\nCLIENT_ERROR flush_all not allowed\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
    let mut ops = login(&proxy, "ops");
    ops.send(b"flush_all\r\nget k\r\n");
    ops.expect(b"OK\r\nEND\r\n");
}

/// A proxy config file `name` over `node`, logging in to it as `proxy` with `password` (a
/// `[backend]` line).
fn backend_config(f: &Files, name: &str, password: &str, node: &Server) -> String {
    f.put(
        name,
        &format!(
            "[backend]\nauth_user = \"proxy\"\n{password}\n\n[[nodes]]\naddr = \"{}\"\n",
            node.addr
        ),
    )
}

#[test]
fn proxy_authenticates_to_nodes() {
    let f = Files::new("backend");
    let users = f.put("users", USERS);
    let pw = f.put("proxy-password", "backend-pw\n");
    let node = spawn_node(&["-Y", &users]);
    let config = backend_config(
        &f,
        "proxy.toml",
        &format!("auth_password_file = {pw:?}"),
        &node,
    );
    let proxy = spawn_proxy(&[node.addr], &["--config", &config]);
    let mut c = proxy.conn();
    c.send(b"set k 0 0 2\r\nhi\r\nget k\r\n");
    c.expect(b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n");
    // The node itself still refuses anyone who has not logged in.
    let mut direct = node.conn();
    direct.send(b"get k\r\n");
    direct.expect(UNAUTH);

    // A proxy with a wrong password gets nothing from the node, and says so.
    let bad = backend_config(&f, "bad.toml", "auth_password = \"nope\"", &node);
    let proxy = spawn_proxy(&[node.addr], &["--config", &bad]);
    let mut c = proxy.conn();
    c.send(b"get k\r\n");
    c.expect(b"SERVER_ERROR {*}\r\n");
}
