//! Helpers shared by the bench's integration tests.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use ringcache_client::protocol::Response;

/// A server's general `stats`, numeric fields only, parsed with the shared protocol parser.
pub fn stats(addr: &str) -> HashMap<String, u64> {
    let mut s = TcpStream::connect(addr).expect("connect for stats");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"stats\r\n").expect("send stats");
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 8192];
    for _ in 0..1000 {
        if let Some(resp) = Response::parse(&mut buf).expect("stats reply parses") {
            let Response::Stats(lines) = resp else {
                panic!("expected STAT lines, got {resp:?}");
            };
            return lines
                .into_iter()
                .filter_map(|(k, v)| {
                    let v = std::str::from_utf8(&v).ok()?.parse().ok()?;
                    Some((String::from_utf8_lossy(&k).into_owned(), v))
                })
                .collect();
        }
        let n = s.read(&mut chunk).expect("read stats");
        assert!(n > 0, "server closed during stats");
        buf.extend_from_slice(&chunk[..n]);
    }
    panic!("stats reply never ended");
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
