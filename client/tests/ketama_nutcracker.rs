//! ketama placement checked against the real twemproxy: three stock memcached processes behind
//! a nutcracker (`distribution: ketama`, `hash: md5`); keys are set through nutcracker, each
//! memcached is then asked directly which keys it holds, and every key must sit on the node our
//! ketama [`Ring`] names as primary. Runs the unnamed, named and weighted server-line forms.
//!
//! Needs `memcached` and `nutcracker` (Debian: /usr/bin/memcached, /usr/sbin/nutcracker); where
//! either is missing it prints why and passes without checking.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ringcache_client::ring::{ketama, HashKind, NodeSpec, Ring};
use testkit::check::assert_none;
use testkit::{bins, free_addr, free_port, servers, Output, Proc, Ready, Spawn};

const KEYS: usize = 2000;
const BATCH: usize = 100;
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A scratch directory removed at the end.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Connects to `addr`, retrying until `deadline` (servers need a moment to start).
fn connect(addr: &str, within: Duration) -> TcpStream {
    let deadline = Instant::now() + within;
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT)).expect("read timeout");
                s.set_write_timeout(Some(IO_TIMEOUT))
                    .expect("write timeout");
                return s;
            }
            Err(e) if Instant::now() >= deadline => panic!("{addr} never accepted: {e}"),
            Err(_) => sleep(Duration::from_millis(25)),
        }
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = r.read_line(&mut line).expect("read a reply line");
    assert!(n > 0, "connection closed");
    line
}

/// A stock memcached on a free loopback port (testkit's spawner: killed and reaped on drop).
fn start_memcached(bin: &Path) -> Proc {
    servers::memcached(bin, &["-m", "64"], &servers::memcached_spawn("memcached"))
        .unwrap_or_else(|e| panic!("memcached starts: {e}"))
}

fn keys(scenario: &str) -> Vec<String> {
    let mut k: Vec<String> = (0..KEYS - 3)
        .map(|i| format!("ketama:{scenario}:{i}"))
        .collect();
    k.extend(["a".to_string(), "ключ".to_string(), "x".repeat(250)]);
    k
}

/// Sets every key through `addr`, pipelined in batches.
fn set_all(addr: &str, keys: &[String]) {
    let mut s = connect(addr, Duration::from_secs(10));
    let mut r = BufReader::new(s.try_clone().expect("clone socket"));
    for chunk in keys.chunks(BATCH) {
        let mut req = Vec::new();
        for k in chunk {
            let v = format!("v:{k}");
            req.extend_from_slice(format!("set {k} 0 0 {}\r\n{v}\r\n", v.len()).as_bytes());
        }
        s.write_all(&req).expect("send sets");
        for k in chunk {
            let line = read_line(&mut r);
            assert_eq!(line, "STORED\r\n", "set {k} through nutcracker");
        }
    }
}

/// The keys of `keys` that the memcached at `addr` holds, asked directly, by multi-get.
fn held(addr: &str, keys: &[String]) -> Vec<String> {
    let mut s = connect(addr, Duration::from_secs(5));
    let mut r = BufReader::new(s.try_clone().expect("clone socket"));
    let mut out = Vec::new();
    for chunk in keys.chunks(BATCH) {
        s.write_all(format!("get {}\r\n", chunk.join(" ")).as_bytes())
            .expect("send get");
        loop {
            let line = read_line(&mut r);
            if line == "END\r\n" {
                break;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            assert!(
                parts.len() == 4 && parts[0] == "VALUE",
                "odd reply {line:?}"
            );
            let mut data = String::new();
            r.read_line(&mut data).expect("value line");
            assert_eq!(data, format!("v:{}\r\n", parts[1]));
            out.push(parts[1].to_string());
        }
    }
    out
}

fn flush(addr: &str) {
    let mut s = connect(addr, Duration::from_secs(5));
    s.write_all(b"flush_all\r\n").expect("send flush_all");
    assert_eq!(read_line(&mut BufReader::new(s)), "OK\r\n");
}

/// Runs one nutcracker over `servers` (with the server lines `lines`) and checks placement.
fn check_scenario(
    nutcracker: &Path,
    dir: &Path,
    scenario: &str,
    servers: &[NodeSpec],
    running: &mut Vec<Proc>,
) {
    for n in servers {
        flush(&n.addr);
    }
    let listen = free_addr();
    let mut yaml = format!(
        "ringcache_{scenario}:\n  listen: {listen}\n  hash: md5\n  distribution: ketama\n  \
         timeout: 5000\n  auto_eject_hosts: false\n  servers:\n"
    );
    for n in servers {
        match &n.name {
            Some(name) => yaml.push_str(&format!("   - {}:{} {name}\n", n.addr, n.weight)),
            None => yaml.push_str(&format!("   - {}:{}\n", n.addr, n.weight)),
        }
    }
    let conf = dir.join(format!("{scenario}.yml"));
    std::fs::write(&conf, &yaml).expect("write nutcracker config");
    let mut cmd = Command::new(nutcracker);
    cmd.arg("-c")
        .arg(&conf)
        .arg("-o")
        .arg(dir.join(format!("{scenario}.log")))
        .args(["-a", "127.0.0.1", "-s"])
        .arg(free_port().to_string());
    let how = Spawn::new("nutcracker", Ready::Accepting(listen)).output(Output::Null);
    running.push(
        how.start(cmd)
            .unwrap_or_else(|e| panic!("nutcracker starts: {e}")),
    );

    let keys = keys(scenario);
    set_all(&listen.to_string(), &keys);

    let ring = Ring::new(servers, HashKind::Ketama, 160).expect("a valid ring");
    let mut found = vec![None; keys.len()];
    for (node, spec) in servers.iter().enumerate() {
        let on_node = held(&spec.addr, &keys);
        assert!(
            !on_node.is_empty(),
            "{scenario}: {} holds no keys",
            spec.addr
        );
        for k in on_node {
            let i = keys.iter().position(|x| *x == k).expect("a key we set");
            assert_eq!(found[i], None, "{scenario}: {k} is on two nodes");
            found[i] = Some(node);
        }
    }
    let mut wrong = Vec::new();
    for (k, at) in keys.iter().zip(&found) {
        let at = at.unwrap_or_else(|| panic!("{scenario}: {k} is on no node"));
        if ring.primary(k.as_bytes()) != Some(at) {
            wrong.push(k.clone());
        }
    }
    assert_none(
        &wrong,
        keys.len(),
        &format!("keys are not where our ketama ring puts them ({scenario})"),
    );
    println!(
        "{scenario}: all {} keys where our ketama ring puts them",
        keys.len()
    );
}

#[test]
fn ketama_places_keys_where_nutcracker_does() {
    let (Some(memcached), Some(nutcracker)) = (
        bins::memcached_bin(),
        bins::find_binary("/usr/sbin/nutcracker", "nutcracker"),
    ) else {
        eprintln!("skipping ketama_places_keys_where_nutcracker_does: memcached or nutcracker is not installed");
        return;
    };
    let dir = std::env::temp_dir().join(format!("ringcache-ketama-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let _scratch = Scratch(dir.clone());
    let mut running: Vec<Proc> = (0..3).map(|_| start_memcached(&memcached)).collect();
    let addrs: Vec<String> = running.iter().map(|p| p.addr.to_string()).collect();

    let plain: Vec<NodeSpec> = addrs.iter().map(NodeSpec::new).collect();
    check_scenario(&nutcracker, &dir, "plain", &plain, &mut running);

    let named: Vec<NodeSpec> = ["alpha", "beta", "gamma"]
        .iter()
        .zip(&addrs)
        .map(|(name, a)| NodeSpec::new(a).named(*name))
        .collect();
    check_scenario(&nutcracker, &dir, "named", &named, &mut running);
    // The names really are what is hashed: without them the placement differs.
    let (with, without) = (
        Ring::new(&named, HashKind::Ketama, 160).expect("ring"),
        Ring::new(&plain, HashKind::Ketama, 160).expect("ring"),
    );
    let differ = keys("named")
        .iter()
        .filter(|k| with.primary(k.as_bytes()) != without.primary(k.as_bytes()))
        .count();
    assert!(differ > KEYS / 3, "names changed only {differ} placements");

    // Uneven weights exercise twemproxy's float point-count formula: with 3:28:29 the third
    // server gets floorf(57.999996) = 57 digests where exact arithmetic would give 58.
    let weighted: Vec<NodeSpec> = addrs
        .iter()
        .zip([3, 28, 29])
        .map(|(a, w)| NodeSpec::new(a).weighted(w))
        .collect();
    assert_eq!(ketama::points_per_node(&weighted), vec![24, 224, 228]);
    check_scenario(&nutcracker, &dir, "weighted", &weighted, &mut running);
}
