//! Bounds in bytes and in time on what clients can make a server hold: a `get` that names a large
//! value hundreds of thousands of times, a client that never reads its replies, idle sockets that
//! fill `max_connections`, and slow clients of the metrics endpoint. Real `ringcache` processes on
//! loopback; memory is read from `/proc/<pid>/status`.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::{memcached_or_skip, spawn_node, spawn_proxy, Conn, Server, REPLY_TIMEOUT};

const MIB: u64 = 1024 * 1024;

/// Resident memory of a process, from `VmRSS` in `/proc/<pid>/status`.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

/// `get k k k ... k\r\n` naming `k` `times` times.
fn amplified_get(key: &str, times: usize) -> Vec<u8> {
    let mut line = b"get".to_vec();
    for _ in 0..times {
        line.push(b' ');
        line.extend_from_slice(key.as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    line
}

/// `VALUE <key> 0 <len>\r\n<value>\r\n`: one hit of a classic get.
fn value_block(key: &str, value: &[u8]) -> Vec<u8> {
    let mut unit = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
    unit.extend_from_slice(value);
    unit.extend_from_slice(b"\r\n");
    unit
}

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    s
}

/// Reads `want` bytes of a reply made of repeated `unit`s, checking every byte (`pos`: where in
/// `unit` the stream is), and calls `sample` about every 8 MiB. Panics on a close, a timeout or
/// a wrong byte.
fn read_repeated(
    s: &mut TcpStream,
    unit: &[u8],
    pos: &mut usize,
    want: u64,
    mut sample: impl FnMut(),
) {
    let mut buf = vec![0u8; 256 * 1024];
    let (mut got, mut next_sample) = (0u64, 0u64);
    while got < want {
        let n = s.read(&mut buf).expect("read reply");
        assert!(n > 0, "closed after {got} bytes");
        let mut at = 0;
        while at < n {
            let take = (n - at).min(unit.len() - *pos);
            if buf[at..at + take] != unit[*pos..*pos + take] {
                let off = got + at as u64;
                panic!(
                    "wrong bytes at offset {off} of the reply (unit offset {}): {}",
                    *pos,
                    support::show(&buf[at.saturating_sub(40)..(at + 80).min(n)])
                );
            }
            *pos = (*pos + take) % unit.len();
            at += take;
        }
        got += n as u64;
        if got >= next_sample {
            sample();
            next_sample = got + 8 * MIB;
        }
    }
}

/// One short request on a fresh connection must be answered while another connection is busy.
fn served_meanwhile(server: &Server, value: &[u8]) {
    let mut other = server.conn();
    other.send(b"get k\r\n");
    let mut want = value_block("k", value);
    want.extend_from_slice(b"END\r\n");
    other.expect(&want);
    other.send(b"mn\r\n");
    other.expect(b"MN\r\n");
}

/// Stores `k` = 100 000 × `v` on `server` and returns the value.
fn store_big_value(server: &Server) -> Vec<u8> {
    let value = vec![b'v'; 100_000];
    let mut c = server.conn();
    c.send(&[&b"set k 0 0 100000\r\n"[..], &value, b"\r\n"].concat());
    c.expect(b"STORED\r\n");
    value
}

/// Reads the reply to an amplified get of `k` (= `value`) on `s`: `first` bytes, then a pause of
/// a second in which the server must wait (not buffer the rest) and serve another connection,
/// then 32 MiB more; every byte checked. Returns the peak RSS of `server` meanwhile.
fn peak_while_streaming(server: &Server, s: &mut TcpStream, value: &[u8], first: u64) -> u64 {
    let mut peak = 0u64;
    let mut sample = || peak = peak.max(rss(server.pid()));
    let unit = value_block("k", value);
    let mut pos = 0;
    read_repeated(s, &unit, &mut pos, first, &mut sample);
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(100));
        sample();
    }
    served_meanwhile(server, value);
    read_repeated(s, &unit, &mut pos, 32 * MIB, &mut sample);
    sample();
    peak
}

/// For 4 s, while a client stalls, checks every 200 ms that another connection is served;
/// returns the peak RSS of `server` meanwhile.
fn peak_while_stalled(server: &Server, value: &[u8]) -> u64 {
    let mut peak = 0u64;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(4) {
        served_meanwhile(server, value);
        peak = peak.max(rss(server.pid()));
        std::thread::sleep(Duration::from_millis(200));
    }
    peak
}

/// `who`'s RSS may have grown from `before` to `peak` by `allowed_mib` at most (`case` ends the
/// message).
fn assert_growth_within(who: &str, before: u64, peak: u64, allowed_mib: u64, case: &str) {
    assert!(
        peak <= before + allowed_mib * MIB,
        "{who} RSS grew from {} to {} MiB{case}",
        before / MIB,
        peak / MIB
    );
}

/// Reads `s` until the server hangs up (within [`REPLY_TIMEOUT`]), which must come long before
/// the 200 MB reply a stalled client asked for.
fn assert_cut_off(s: &mut TcpStream) {
    let total = bytes_until_closed(s);
    assert!(total < 100_000_000, "read {total} bytes: not cut off");
}

/// Reads `s` until the server hangs up (within [`REPLY_TIMEOUT`]); returns the bytes read.
fn bytes_until_closed(s: &mut TcpStream) -> usize {
    let mut total = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "still open after {total} bytes");
        match s.read(&mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return total,
            Err(e) => panic!("read: {e} after {total} bytes"),
        }
    }
}

/// The amplification: a 100 KB value named 500 000 times in one 1 MiB line asks for a
/// 50 GB reply. The node answers it as memcached does (every `VALUE`, in order) but writes it in
/// pieces as the client reads, so its memory stays bounded by its limit plus the request, and it
/// serves another connection meanwhile, also while this client pauses.
#[test]
fn amplified_multiget_streams_within_the_memory_limit() {
    const LIMIT_MIB: u64 = 32;
    // What the request itself costs: the 1 MiB line, its parsed list of 500 000 keys (16 MiB of
    // key slices) and a piece of the reply. The reply (50 GB) is not among it.
    const REQUEST_MIB: u64 = 24;
    let node = spawn_node(&["--memory-limit", "32", "--threads", "2"]);
    let value = store_big_value(&node);
    let before = rss(node.pid());
    assert!(before <= LIMIT_MIB * MIB, "{} MiB at rest", before / MIB);

    let line = amplified_get("k", 500_000);
    assert!(line.len() <= 1024 * 1024, "the line fits in 1 MiB");
    let mut s = raw(node.addr);
    s.write_all(&line).expect("send the get line");
    // 2 684 of the 500 000 values, then the client pauses, then more; every byte checked.
    let peak = peak_while_streaming(&node, &mut s, &value, 256 * MIB);
    eprintln!(
        "node RSS {} MiB at rest, {} MiB at most while streaming 288 MiB of the reply",
        before / MIB,
        peak / MIB
    );
    assert!(
        peak <= before.max(LIMIT_MIB * MIB) + REQUEST_MIB * MIB,
        "node RSS reached {} MiB (limit {LIMIT_MIB} MiB, {} MiB at rest)",
        peak / MIB,
        before / MIB
    );
}

/// A multi-get answered in pieces says exactly what memcached says: hits in key order, misses
/// skipped, one `END`, across piece boundaries (large values) and across long runs of misses.
#[test]
fn multiget_in_pieces_answers_like_memcached() {
    let Some(mc) = memcached_or_skip() else {
        return;
    };
    let node = spawn_node(&[]);
    let big = vec![b'b'; 200_000];
    let mut req = Vec::new();
    req.extend_from_slice(&[&b"set big 0 0 200000\r\n"[..], &big, b"\r\n"].concat());
    req.extend_from_slice(b"set s1 5 0 2\r\nhi\r\nset s2 7 0 3\r\nyou\r\n");
    let mut line = b"get".to_vec();
    for i in 0..12 {
        line.extend_from_slice(b" big s1 nope");
        if i % 4 == 0 {
            line.extend_from_slice(b" s2");
        }
    }
    // More misses in a row than one piece looks up, then a hit.
    for i in 0..9000 {
        line.extend_from_slice(format!(" miss{i}").as_bytes());
    }
    line.extend_from_slice(b" s2 big\r\n");
    let replies: Vec<Vec<u8>> = [&mc, &node]
        .iter()
        .map(|server| {
            let mut c = server.conn();
            c.send(&req);
            c.expect(b"STORED\r\nSTORED\r\nSTORED\r\n");
            let mut s = raw(server.addr);
            s.write_all(&line).unwrap();
            s.write_all(b"mn\r\n").unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            let deadline = Instant::now() + REPLY_TIMEOUT;
            while !got.ends_with(b"END\r\nMN\r\n") && Instant::now() < deadline {
                let n = s.read(&mut buf).expect("read reply");
                assert!(n > 0, "[{}] closed", server.name);
                got.extend_from_slice(&buf[..n]);
            }
            got
        })
        .collect();
    assert!(replies[0].len() > 2_000_000, "memcached answered the hits");
    assert!(
        replies[0] == replies[1],
        "node's reply ({} bytes) differs from memcached's ({} bytes)",
        replies[1].len(),
        replies[0].len()
    );
}

/// A client that sends a large multi-get and never reads stalls only itself: the node keeps
/// serving others, holds no more than a piece of the reply, and with `idle_timeout` closes the
/// stalled connection once the socket took nothing for that long.
#[test]
fn client_that_never_reads_stalls_only_itself_on_the_node() {
    let node = spawn_node(&["--memory-limit", "32", "--idle-timeout", "2"]);
    let value = store_big_value(&node);
    let before = rss(node.pid());
    let mut stalled = raw(node.addr);
    // A 200 MB reply, never read.
    stalled.write_all(&amplified_get("k", 2000)).unwrap();
    let peak = peak_while_stalled(&node, &value);
    assert_growth_within("node", before, peak, 16, " for a client that does not read");
    // Past the idle limit the node has hung up: what the socket buffers held, then the end,
    // long before the 200 MB reply.
    assert_cut_off(&mut stalled);
}

/// `idle_timeout`: a connection that sends nothing is closed without a word (as memcached's
/// `-o idle_timeout` does); one that keeps sending requests is not.
fn idle_timeout_closes_only_idle_connections(server: &Server) {
    let mut idle = server.conn();
    let mut busy = server.conn();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        busy.send(b"mn\r\n");
        busy.expect(b"MN\r\n");
        std::thread::sleep(Duration::from_millis(250));
    }
    idle.expect_closed();
    busy.send(b"mn\r\n");
    busy.expect(b"MN\r\n");
}

#[test]
fn idle_timeout_closes_an_idle_node_connection() {
    let node = spawn_node(&["--idle-timeout", "1"]);
    idle_timeout_closes_only_idle_connections(&node);
}

#[test]
fn idle_timeout_closes_an_idle_proxy_connection() {
    let node = spawn_node(&[]);
    let proxy = spawn_proxy(&[node.addr], &["--idle-timeout", "1"]);
    idle_timeout_closes_only_idle_connections(&proxy);
}

/// Without `idle_timeout` (the default) an idle connection stays open.
#[test]
fn without_idle_timeout_idle_connections_stay() {
    let node = spawn_node(&[]);
    let mut idle = node.conn();
    std::thread::sleep(Duration::from_millis(2500));
    idle.send(b"mn\r\n");
    idle.expect(b"MN\r\n");
}

/// Opens connections until the server refuses one; returns those it kept (each answered `mn`).
/// Panics if it accepts more than `at_most`.
///
/// A refusal is believed only when a second try 200 ms later is refused too: the connection a
/// helper such as [`await_connections`] just closed holds its slot until the server has seen
/// the close, which on a loaded machine can come after the next connect.
fn fill_connections(server: &Server, at_most: usize) -> Vec<Conn> {
    let mut kept = Vec::new();
    let answers = |server: &Server| {
        let mut c = server.conn();
        (c.try_send(b"mn\r\n").is_ok() && c.check(b"MN\r\n").is_ok()).then_some(c)
    };
    for _ in 0..=at_most {
        let c = answers(server).or_else(|| {
            std::thread::sleep(Duration::from_millis(200));
            answers(server)
        });
        match c {
            Some(c) => kept.push(c),
            None => return kept,
        }
    }
    panic!("{} accepted {at_most} connections", server.name);
}

/// `curr_connections` from `stats` (the asking connection included).
fn curr_connections(server: &Server) -> usize {
    let mut s = server.conn();
    s.send(b"stats\r\n");
    s.expect(b"{**}STAT curr_connections {n:curr}\r\n");
    let _ = s.read_quiet(Duration::from_millis(50));
    String::from_utf8_lossy(&s.vars["curr"]).parse().unwrap()
}

/// Waits until `server` has `want` connections open besides the asking one (the start-up probe
/// of the spawner may still be counted for a moment).
fn await_connections(server: &Server, want: usize) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while curr_connections(server) != want + 1 {
        assert!(Instant::now() < deadline, "never {want} connections");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// At `max_connections` a newcomer gets memcached's exact line and is closed; the ones already
/// open keep working, and a slot freed is usable again.
#[test]
fn max_connections_refuses_with_memcacheds_line() {
    let node = spawn_node(&["--max-connections", "4"]);
    await_connections(&node, 0);
    let mut open = fill_connections(&node, 4);
    assert_eq!(open.len(), 4);
    let mut refused = node.conn();
    refused.expect(b"ERROR Too many open connections\r\n");
    refused.expect_closed();
    for c in &mut open {
        c.send(b"mn\r\n");
        c.expect(b"MN\r\n");
    }
    drop(open.pop());
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let mut c = node.conn();
        if c.try_send(b"mn\r\n").is_ok() && c.check(b"MN\r\n").is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The proxy shares the node's accept loop: the same line and close at its limit.
#[test]
fn proxy_max_connections_refuses_with_memcacheds_line() {
    let node = spawn_node(&[]);
    let proxy = spawn_proxy(&[node.addr], &["--max-connections", "3"]);
    await_connections(&proxy, 0);
    let open = fill_connections(&proxy, 3);
    assert_eq!(open.len(), 3);
    let mut refused = proxy.conn();
    refused.expect(b"ERROR Too many open connections\r\n");
    refused.expect_closed();
}

/// An attacker that fills a node's connection slots with idle sockets does not cut the proxy off
/// it: the proxy's connections to the node were opened first and are kept, so requests through
/// the proxy keep reaching the node.
#[test]
fn proxy_keeps_its_backend_connections_when_a_node_is_full() {
    let node = spawn_node(&["--max-connections", "8"]);
    let proxy = spawn_proxy(&[node.addr], &[]);
    let mut pc = proxy.conn();
    pc.send(b"set before 0 0 1\r\nb\r\n");
    pc.expect(b"STORED\r\n");
    // The proxy keeps two connections to each node; wait until both are up before the attack.
    await_connections(&node, 2);
    let attackers = fill_connections(&node, 6);
    assert_eq!(
        attackers.len(),
        6,
        "the proxy's two connections hold two of 8 slots"
    );
    let mut refused = node.conn();
    refused.expect(b"ERROR Too many open connections\r\n");
    for i in 0..20 {
        pc.send(format!("set k{i} 0 0 2\r\nv{}\r\nget k{i}\r\n", i % 10).as_bytes());
        pc.expect(format!("STORED\r\nVALUE k{i} 0 2\r\nv{}\r\nEND\r\n", i % 10).as_bytes());
    }
    pc.send(b"get before\r\n");
    pc.expect(b"VALUE before 0 1\r\nb\r\nEND\r\n");
    drop(attackers);
}

/// The same amplification through the proxy: the proxy asks the node for the keys in pieces and
/// writes each piece out before asking for more than its byte cap allows, so its memory stays
/// bounded while the client reads, while it pauses, and another client is served meanwhile.
#[test]
fn amplified_multiget_through_the_proxy_stays_bounded() {
    // The proxy's default cap of reply bytes per connection, the 1 MiB line's parsed keys, and
    // the pieces being written and read.
    const GROWTH_MIB: u64 = 64 + 24;
    let node = spawn_node(&["--threads", "2"]);
    let proxy = spawn_proxy(&[node.addr], &[]);
    let value = store_big_value(&proxy);
    let before = rss(proxy.pid());
    let mut s = raw(proxy.addr);
    s.write_all(&amplified_get("k", 500_000)).expect("send");
    let peak = peak_while_streaming(&proxy, &mut s, &value, 128 * MIB);
    eprintln!(
        "proxy RSS {} MiB at rest, {} MiB at most while streaming 160 MiB of the reply",
        before / MIB,
        peak / MIB
    );
    assert_growth_within("proxy", before, peak, GROWTH_MIB, "");
}

/// A proxy client that sends a large multi-get and never reads holds at most its cap of reply
/// bytes, other clients are served meanwhile, and with `idle_timeout` it is dropped.
#[test]
fn client_that_never_reads_stalls_only_itself_on_the_proxy() {
    let node = spawn_node(&[]);
    let proxy = spawn_proxy(
        &[node.addr],
        &[
            "--idle-timeout",
            "2",
            "--max-pending-bytes-per-connection",
            "8388608",
        ],
    );
    let value = store_big_value(&proxy);
    let before = rss(proxy.pid());
    let mut stalled = raw(proxy.addr);
    // A 200 MB reply, never read, followed by pipelined single gets it may not start.
    stalled.write_all(&amplified_get("k", 2000)).unwrap();
    stalled.write_all(&b"get k\r\n".repeat(2000)).unwrap();
    let peak = peak_while_stalled(&proxy, &value);
    eprintln!(
        "proxy RSS {} MiB at rest, {} MiB at most with a client that does not read",
        before / MIB,
        peak / MIB
    );
    assert_growth_within(
        "proxy",
        before,
        peak,
        24,
        " for a client that does not read",
    );
    assert_cut_off(&mut stalled);
}

/// The metrics endpoint with small limits, on its own runtime; the test talks to it with
/// blocking sockets.
fn metrics_endpoint(
    limits: ringcache::metrics::HttpLimits,
) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let listener = ringcache::metrics::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = ringcache::metrics::install();
        let token = tokio_util::sync::CancellationToken::new();
        tokio::spawn(ringcache::metrics::serve_with(
            listener, handle, token, limits,
        ));
        addr
    });
    (addr, rt)
}

/// `GET /metrics` on a fresh connection answers `200 OK`.
fn scrape(addr: SocketAddr) -> Result<(), String> {
    let mut s = raw(addr);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    if got.starts_with(b"HTTP/1.1 200 OK\r\n") {
        Ok(())
    } else {
        Err(format!("scrape got {}", support::show(&got)))
    }
}

/// Reads until the peer closes (`Ok(bytes read)`), or `Err` if it is still open at `deadline`.
fn read_until_closed(s: &mut TcpStream, deadline: Instant) -> Result<usize, String> {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("still open after {total} bytes"));
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(total),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// A slowloris client of `/metrics` (headers one byte at a time, never finished) is dropped after
/// the header deadline, and scrapes keep being answered meanwhile.
#[test]
fn metrics_drops_a_slowloris_and_keeps_answering() {
    let (addr, _rt) = metrics_endpoint(ringcache::metrics::HttpLimits {
        header_timeout: Duration::from_secs(1),
        max_lifetime: Duration::from_secs(30),
        max_connections: 8,
    });
    scrape(addr).unwrap();
    let mut slow = raw(addr);
    let start = Instant::now();
    let mut closed = false;
    for &b in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: "
        .iter()
        .cycle()
        .take(200)
    {
        if slow.write_all(&[b]).is_err() {
            closed = true;
            break;
        }
        scrape(addr).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !closed {
        read_until_closed(&mut slow, Instant::now() + REPLY_TIMEOUT).unwrap();
    }
    scrape(addr).unwrap();
}

/// Past the connection cap a newcomer is closed at once; idle connections holding the slots are
/// dropped at the header deadline, after which scrapes are answered again.
#[test]
fn metrics_connection_cap_holds() {
    let (addr, _rt) = metrics_endpoint(ringcache::metrics::HttpLimits {
        header_timeout: Duration::from_secs(2),
        max_lifetime: Duration::from_secs(30),
        max_connections: 4,
    });
    let mut idle: Vec<TcpStream> = (0..4).map(|_| raw(addr)).collect();
    // The cap is reached once the server accepted all four; a newcomer is closed unanswered.
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let mut extra = raw(addr);
        let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        let n = read_until_closed(&mut extra, Instant::now() + REPLY_TIMEOUT).unwrap();
        if n == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the cap never held");
    }
    for s in &mut idle {
        read_until_closed(s, Instant::now() + REPLY_TIMEOUT).unwrap();
    }
    scrape(addr).unwrap();
}

/// Multi-gets the proxy splits into pieces (more keys than half its per-connection cap holds),
/// one after another and pipelined, each answered whole and in order: no piece is lost, none is
/// left waiting when every earlier one finished at once.
#[test]
fn split_multigets_through_the_proxy_are_answered_whole() {
    let node = spawn_node(&[]);
    // 1 MiB items and a 4 MiB cap: pieces of 2 keys.
    let proxy = spawn_proxy(
        &[node.addr],
        &["--max-pending-bytes-per-connection", "4194304"],
    );
    let mut c = proxy.conn();
    let mut line = b"get".to_vec();
    let mut want = Vec::new();
    for i in 0..40 {
        c.send(format!("set key{i} {i} 0 2\r\nv{}\r\n", i % 10).as_bytes());
        c.expect(b"STORED\r\n");
        line.extend_from_slice(format!(" key{i} nokey{i}").as_bytes());
        want.extend_from_slice(format!("VALUE key{i} {i} 2\r\nv{}\r\n", i % 10).as_bytes());
    }
    line.extend_from_slice(b"\r\n");
    want.extend_from_slice(b"END\r\n");
    for _ in 0..100 {
        c.send(&line);
        c.expect(&want);
    }
    for _ in 0..10 {
        c.send(&[&line[..], &line, &line, b"mn\r\n"].concat());
        c.expect(&[&want[..], &want, &want, b"MN\r\n"].concat());
    }
}

/// A pipeline deeper than `max_inflight_per_connection`: requests left in the read buffer when
/// the in-flight limit is reached are taken up when replies drain, even if the client sends
/// nothing more.
#[test]
fn pipeline_deeper_than_the_inflight_limit_is_answered() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_node, proxy) = rt.block_on(async {
        let node = ringcache::node::start(
            ringcache::config::NodeConfig {
                server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
                threads: 1,
                ..Default::default()
            },
            std::sync::Arc::new(ringcache::node::clock::SystemClock),
        )
        .await
        .unwrap();
        let cfg = ringcache::proxy::ProxyConfig {
            server: ringcache::server::ServerSettings::listening("127.0.0.1:0"),
            max_inflight_per_connection: 1,
            nodes: vec![ringcache_client::ring::NodeSpec::new(node.addr.to_string())],
            ..Default::default()
        };
        let proxy = ringcache::proxy::start(cfg, None).await.unwrap();
        (node, proxy)
    });
    let mut c = Conn::open(proxy.addr, "proxy");
    c.send(b"set k 0 0 1\r\nv\r\n");
    c.expect(b"STORED\r\n");
    for _ in 0..50 {
        c.send(&[&b"get k\r\n".repeat(20)[..], b"mn\r\n"].concat());
        c.expect(&[&b"VALUE k 0 1\r\nv\r\nEND\r\n".repeat(20)[..], b"MN\r\n"].concat());
    }
}
