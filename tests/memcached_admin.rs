//! memcached's admin behaviour on a node and through the proxy: `stats reset` zeroes what
//! memcached 1.6 zeroes, `refresh_certs`, a `notls:` listener beside a TLS one, and `stats
//! settings` under memcached's names. Where memcached is installed, the same requests go to it
//! too, so the expectations are memcached's own.

mod support;

use std::collections::HashMap;

use support::*;

/// `stats [group]` as a map.
fn stats(c: &mut Conn, group: &str) -> HashMap<String, String> {
    let req = if group.is_empty() {
        "stats\r\n".to_string()
    } else {
        format!("stats {group}\r\n")
    };
    c.send(req.as_bytes());
    let text = String::from_utf8(c.until(b"END\r\n")).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Sets, gets, a miss, a delete miss and a touch, then `stats reset` on a second connection:
/// the counters and totals are 0, the gauges (items held, bytes, open connections) are not.
fn check_reset(server: &Server) {
    let mut first = server.conn();
    first.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    first.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    first.roundtrip(b"get b\r\n", b"END\r\n");
    first.roundtrip(b"delete zz\r\n", b"NOT_FOUND\r\n");
    first.roundtrip(b"touch a 100\r\n", b"TOUCHED\r\n");
    drop(first);
    let mut c = server.conn();
    let before = stats(&mut c, "");
    assert_eq!(before["cmd_set"], "1", "{}", server.name);
    c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
    let after = stats(&mut c, "");
    for zeroed in [
        "cmd_get",
        "cmd_set",
        "cmd_touch",
        "get_hits",
        "get_misses",
        "delete_misses",
        "touch_hits",
        "total_items",
        "total_connections",
        "rejected_connections",
        "evictions",
        "reclaimed",
    ] {
        assert_eq!(after[zeroed], "0", "{} {zeroed}", server.name);
    }
    for kept in ["curr_items", "bytes", "limit_maxbytes"] {
        assert_eq!(after[kept], before[kept], "{} {kept}", server.name);
    }
    // A gauge too (the first connection may or may not be counted closed yet).
    assert_ne!(after["curr_connections"], "0", "{}", server.name);
    assert_eq!(after["curr_items"], "1");
    // Only what came after the reset: far less than the requests before it.
    let read: u64 = after["bytes_read"].parse().unwrap();
    assert!(read < 20, "{} bytes_read {read}", server.name);
}

#[test]
fn stats_reset_zeroes_what_memcached_zeroes() {
    check_reset(&spawn_node(&[]));
    match spawn_memcached() {
        Some(m) => check_reset(&m),
        None => eprintln!("SKIP the memcached side: memcached is not installed"),
    }
}

/// Two nodes and a proxy keeping a copy of every key on both (`--replicas 2`).
fn mirrored_pair() -> ([Server; 2], Server) {
    let nodes = [spawn_node(&[]), spawn_node(&[])];
    let proxy = spawn_proxy(&[nodes[0].addr, nodes[1].addr], &["--replicas", "2"]);
    (nodes, proxy)
}

/// Through the proxy: its own counters and the nodes' summed item totals restart.
#[test]
fn stats_reset_through_the_proxy_resets_its_counters_and_the_nodes() {
    let (nodes, proxy) = mirrored_pair();
    let mut c = proxy.conn();
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    let before = stats(&mut c, "");
    assert_eq!(
        (before["cmd_set"].as_str(), before["total_items"].as_str()),
        ("1", "2")
    );
    c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
    let after = stats(&mut c, "");
    for zeroed in ["cmd_set", "cmd_get", "get_hits", "total_items"] {
        assert_eq!(after[zeroed], "0", "{zeroed}");
    }
    assert_eq!(
        after["curr_items"], "2",
        "both replicas still hold the item"
    );
    let mut n = nodes[0].conn();
    assert_eq!(stats(&mut n, "")["total_items"], "0");
}

/// `refresh_certs` without TLS: memcached's line, even with `noreply`.
#[test]
fn refresh_certs_without_tls_says_so_as_memcached() {
    let node = spawn_node(&[]);
    let mut servers = vec![node];
    servers.extend(spawn_memcached());
    for s in &servers {
        let mut c = s.conn();
        c.roundtrip(
            b"refresh_certs\r\nrefresh_certs noreply\r\nversion\r\n",
            b"Error TLS not enabled\r\nError TLS not enabled\r\n",
        );
        let v = c.until(b"\r\n");
        assert!(v.starts_with(b"VERSION "), "{}", s.name);
    }
}

/// A TLS node with a `notls:` listener beside it (memcached's `-l notls:ADDR`): the plain
/// listener serves plain text, `refresh_certs` re-reads the files there (OK), refuses broken
/// ones keeping the old, and `stats settings` shows the TLS settings; the TLS listener does not
/// speak plain text.
#[test]
fn refresh_certs_on_a_notls_listener_beside_tls() {
    let pki = pki::Pki::new("refresh");
    let plain_port = free_port();
    let listen = format!("127.0.0.1:0,notls:127.0.0.1:{plain_port}");
    let args = pki.node_args(0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let node = spawn_ringcache("node", &listen, &args);
    let plain = std::net::SocketAddr::from(([127, 0, 0, 1], plain_port));
    let mut c = Conn::open(plain, "ringcache notls");
    c.roundtrip(b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
    c.roundtrip(b"refresh_certs\r\n", b"OK\r\n");
    c.send(b"refresh_certs noreply\r\n");
    c.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nv\r\nEND\r\n");
    let s = stats(&mut c, "settings");
    assert_eq!(s["ssl_enabled"], "yes");
    assert_eq!(
        s["ssl_chain_cert"],
        pki.path("server.pem").display().to_string()
    );
    assert_eq!(s["inter"], "127.0.0.1,127.0.0.1");

    let good = std::fs::read_to_string(pki.path("server.pem")).unwrap();
    pki.put("server.pem", "not a certificate\n");
    c.send(b"refresh_certs\r\n");
    let line = String::from_utf8(c.until(b"\r\n")).unwrap();
    assert!(
        line.starts_with("Error loading the certificates: "),
        "{line:?}"
    );
    pki.put("server.pem", &good);
    c.roundtrip(b"refresh_certs\r\n", b"OK\r\n");

    // The TLS listener takes no plain text: no memcached reply comes back.
    let mut t = node.conn();
    t.send(b"version\r\n");
    let got = t.read_to_close();
    assert!(!got.windows(8).any(|w| w == b"VERSION "), "{got:?}");
}

/// Every name memcached 1.6's `stats settings` has (but extstore's) is in a node's, and the
/// ones both give the same meaning have the same value at memcached's defaults.
#[test]
fn stats_settings_has_memcacheds_names() {
    let Some(m) = memcached_or_skip() else {
        return;
    };
    let node = spawn_node(&[]);
    let want = stats(&mut m.conn(), "settings");
    let got = stats(&mut node.conn(), "settings");
    let missing: Vec<&String> = want
        .keys()
        .filter(|k| !k.starts_with("ext_") && !got.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    for same in [
        "maxbytes",
        "maxconns",
        "udpport",
        "verbosity",
        "evictions",
        "shutdown_command",
        "num_threads",
        "stat_key_prefix",
        "detail_enabled",
        "cas_enabled",
        "auth_enabled_sasl",
        "auth_enabled_ascii",
        "item_size_max",
        "flush_enabled",
        "dump_enabled",
        "idle_timeout",
        "ssl_enabled",
        "ssl_verify_mode",
        "ssl_min_version",
        "inter",
    ] {
        assert_eq!(got[same], want[same], "{same}");
    }
}

/// `stats cachedump` and `lru_crawler metadump` through the proxy: refused by its default gate
/// (admins only; no auth file, so no one), and with `[commands] lru_crawler = "allow"` every
/// node's lines under one `END`, a key once per replica.
#[test]
fn key_dumps_fan_out_through_the_proxy_behind_the_gate() {
    let nodes = [spawn_node(&[]), spawn_node(&[])];
    let addrs = [nodes[0].addr, nodes[1].addr];
    let gated = spawn_proxy(&addrs, &["--replicas", "2"]);
    let mut c = gated.conn();
    c.roundtrip(b"set k1 0 0 2\r\nv1\r\n", b"STORED\r\n");
    c.roundtrip(
        b"stats cachedump 1 0\r\n",
        b"CLIENT_ERROR stats cachedump not allowed\r\n",
    );
    c.roundtrip(
        b"lru_crawler metadump all\r\n",
        b"ERROR metadump not allowed\r\n",
    );

    let dir = std::env::temp_dir().join(format!("ringcache-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("proxy.toml");
    std::fs::write(&cfg, "[commands]\nlru_crawler = \"allow\"\n").unwrap();
    let cfg_arg = cfg.display().to_string();
    let open = spawn_proxy(&addrs, &["--replicas", "2", "--config", &cfg_arg]);
    let mut c = open.conn();
    c.roundtrip(b"set k2 0 0 3\r\nabc\r\n", b"STORED\r\n");
    c.send(b"stats cachedump 1 0\r\n");
    let dump = String::from_utf8(c.until(b"END\r\n")).unwrap();
    let mut lines: Vec<&str> = dump.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "END",
            "ITEM k1 [2 b; 0 s]",
            "ITEM k1 [2 b; 0 s]",
            "ITEM k2 [3 b; 0 s]",
            "ITEM k2 [3 b; 0 s]"
        ],
        "{dump}"
    );
    c.send(b"lru_crawler metadump all\r\n");
    let dump = String::from_utf8(c.until(b"END\r\n")).unwrap();
    let keys: Vec<&str> = dump
        .lines()
        .filter_map(|l| l.strip_prefix("key="))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(keys.len(), 4, "{dump}");
    assert_eq!(keys.iter().filter(|k| **k == "k2").count(), 2, "{dump}");
    // A node's refusal comes back when no node lists anything.
    c.roundtrip(
        b"lru_crawler metadump 7\r\n",
        b"BADCLASS invalid class id\r\n",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What memcached_exporter reads comes out of a proxy too: its CPU time and
/// `accepting_conns`, and `stats items`/`stats slabs` merged over the nodes (a key on two
/// replicas counts twice; a size is the largest, not a sum).
#[test]
fn the_proxy_gives_the_per_class_stats_the_exporter_reads() {
    let (_nodes, proxy) = mirrored_pair();
    let mut c = proxy.conn();
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    let general = stats(&mut c, "");
    assert_eq!(general["accepting_conns"], "1");
    assert_eq!(general["conn_yields"], "0");
    assert!(general["rusage_user"].contains('.'), "{general:?}");
    let items = stats(&mut c, "items");
    assert_eq!(items["items:1:number"], "2", "{items:?}");
    assert_eq!(items["items:1:number_cold"], "2");
    let slabs = stats(&mut c, "slabs");
    assert_eq!(slabs["1:used_chunks"], "2", "{slabs:?}");
    assert_eq!(slabs["1:chunk_size"], "1048576", "the largest, not a sum");
    assert_eq!(slabs["1:cmd_set"], "2", "each node's set, summed");
    let settings = stats(&mut c, "settings");
    assert_eq!(settings["lru_crawler"], "yes");
}
