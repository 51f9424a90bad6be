//! Fuzzes a whole proxy connection: the fuzzed bytes are one client's stream to an in-process
//! `ringcache` proxy (replicas 2) in front of three in-process `ringcache` nodes, all on one
//! current-thread runtime built afresh for each input (so no state leaks between inputs and
//! every finding reproduces from its input alone).
//!
//! Before the client speaks, four canary keys are stored on every node directly. Then the
//! client sends the input and closes its write side, and the harness checks that:
//! - nothing panics (libFuzzer's hook aborts on a panic in any task);
//! - the proxy answers and closes within a deadline (no hang);
//! - every `VALUE` line answers a key the client asked for in a `get`-family request, every meta
//!   reply that names its key (`k`) names one the client sent, and a canary read holds the
//!   canary's value (no reply for a key other than the one asked);
//! - a new connection still gets `MN` for `mn`, and a fresh key set and read back through the
//!   proxy reads back (no harm to other connections, backend connections still in step);
//! - every canary the client never named, on every node, still holds its value, unless the
//!   client sent `flush_all` (no write reaches a key it was not meant for).
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use ringcache::config::NodeConfig;
use ringcache::node::clock::SystemClock;
use ringcache::proxy::ProxyConfig;
use ringcache::server::ServerSettings;
use ringcache_client::protocol::meta::decode_key;
use ringcache_client::protocol::parse::Limits;
use ringcache_client::protocol::{Request, Response, ServerCodec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

const CANARIES: usize = 4;
/// How long the proxy may take to answer the whole input and close: far above the 250 ms
/// backend request timeout, so only a real stall trips it.
const SESSION_DEADLINE: Duration = Duration::from_secs(20);
const CHECK_DEADLINE: Duration = Duration::from_secs(5);
/// Reply bytes kept for checking; the rest is read and dropped.
const MAX_KEPT: usize = 8 * 1024 * 1024;

fn canary_key(i: usize) -> String {
    format!("fz_canary_{i}")
}

fn canary_value(i: usize) -> String {
    format!("canary-value-{i}-7f3a")
}

/// What the client's bytes ask for, read with the proxy's own codec.
#[derive(Default)]
struct Asked {
    /// Keys of `get`/`gets`/`gat`/`gats`.
    get_keys: HashSet<Bytes>,
    /// Keys (decoded) of meta requests.
    meta_keys: HashSet<Bytes>,
    /// Keys any request may change (everything but a plain `get`/`gets`), and refused sets' keys.
    written: HashSet<Bytes>,
    flush: bool,
}

fn asked(data: &[u8], max_item_size: usize) -> Asked {
    let mut a = Asked::default();
    let mut codec = ServerCodec::new(Limits { max_item_size });
    let mut buf = BytesMut::from(data);
    // Every item consumes bytes, so this ends; bounded anyway.
    for _ in 0..=data.len() {
        match codec.decode(&mut buf) {
            Ok(Some(Ok(req))) => match req {
                Request::Get { keys, exptime, .. } => {
                    for k in keys {
                        if exptime.is_some() {
                            a.written.insert(k.clone());
                        }
                        a.get_keys.insert(k);
                    }
                }
                Request::Store { key, .. }
                | Request::Delete { key, .. }
                | Request::Arith { key, .. }
                | Request::Touch { key, .. } => {
                    a.written.insert(key);
                }
                Request::Meta(m) => {
                    a.written.insert(m.key.clone());
                    a.meta_keys.insert(m.key);
                }
                Request::MetaDebug { key, .. } => {
                    a.meta_keys.insert(key);
                }
                Request::FlushAll { .. } => a.flush = true,
                _ => {}
            },
            Ok(Some(Err(fault))) => {
                if let Some(k) = fault.unlink {
                    a.written.insert(k);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    a
}

/// Sends `req` on a new connection to `addr` and returns the first reply.
async fn ask(addr: std::net::SocketAddr, req: &[u8]) -> Result<Response, String> {
    let work = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(req).await.map_err(|e| e.to_string())?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if let Some(r) = Response::parse(&mut buf).map_err(|e| e.to_string())? {
                return Ok(r);
            }
            if s.read_buf(&mut buf).await.map_err(|e| e.to_string())? == 0 {
                return Err(format!("closed after {:?}", String::from_utf8_lossy(&buf)));
            }
        }
    };
    tokio::time::timeout(CHECK_DEADLINE, work)
        .await
        .map_err(|_| format!("no reply to {:?} from {addr}", String::from_utf8_lossy(req)))?
}

/// The client's session: writes `data`, half-closes, reads until the proxy closes.
async fn session(addr: std::net::SocketAddr, data: &[u8]) -> Vec<u8> {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    let (mut rd, mut wr) = stream.into_split();
    let write = async move {
        // The proxy may close first (a desynchronising line); that is not a failure.
        let _ = wr.write_all(data).await;
        let _ = wr.shutdown().await;
    };
    let read = async move {
        let mut kept = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return kept,
                Ok(n) => {
                    let room = MAX_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..n.min(room)]);
                }
            }
        }
    };
    let both = async { tokio::join!(write, read).1 };
    match tokio::time::timeout(SESSION_DEADLINE, both).await {
        Ok(replies) => replies,
        Err(_) => panic!(
            "hang: the proxy did not answer and close within {SESSION_DEADLINE:?} for input {:?}",
            String::from_utf8_lossy(data)
        ),
    }
}

fn check_replies(replies: &[u8], asked: &Asked) {
    let mut buf = BytesMut::from(replies);
    let canaries: Vec<(Bytes, Bytes)> = (0..CANARIES)
        .map(|i| (Bytes::from(canary_key(i)), Bytes::from(canary_value(i))))
        .collect();
    // Replies to requests the proxy refused or could not parse may be any line; the checks
    // only need the values and the meta keys, so parsing stops at the first unparsable byte.
    while let Ok(Some(r)) = Response::parse(&mut buf) {
        match r {
            Response::Values(values) => {
                for v in values {
                    assert!(
                        asked.get_keys.contains(&v.key),
                        "reply for a key the client never asked for: VALUE {:?}",
                        String::from_utf8_lossy(&v.key)
                    );
                    if let Some((_, want)) = canaries.iter().find(|(k, _)| *k == v.key) {
                        assert!(
                            asked.written.contains(&v.key) || v.data == *want,
                            "canary {:?} read back as {:?}",
                            String::from_utf8_lossy(&v.key),
                            String::from_utf8_lossy(&v.data)
                        );
                    }
                }
            }
            Response::Meta(m) => {
                if let Some(tok) = m.flag(b'k') {
                    let binary = m.tokens().any(|(f, rest)| f == b'b' && rest.is_empty());
                    let key = if binary {
                        decode_key(tok)
                    } else {
                        Some(Bytes::copy_from_slice(tok))
                    };
                    if let Some(key) = key {
                        assert!(
                            asked.meta_keys.contains(&key),
                            "meta reply for a key the client never sent: {:?}",
                            String::from_utf8_lossy(&key)
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

/// A fresh key set and read back through the proxy must read back.
async fn probe(addr: std::net::SocketAddr, data: &[u8]) {
    let stored = ask(addr, b"set fz_probe 0 0 5\r\nprobe\r\n").await;
    let read = ask(addr, b"get fz_probe\r\n").await;
    let ok = matches!(&stored, Ok(Response::Stored))
        && matches!(&read, Ok(Response::Values(v)) if v.len() == 1 && v[0].data == "probe");
    assert!(
        ok,
        "after input {:?} a fresh set/get through the proxy answers {stored:?} / {read:?}",
        String::from_utf8_lossy(data)
    );
}

async fn run(data: &[u8]) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let cfg = NodeConfig {
            server: ServerSettings::listening("127.0.0.1:0"),
            memory_limit_mb: 16,
            threads: 1,
            ..NodeConfig::default()
        };
        nodes.push(
            ringcache::node::start(cfg, Arc::new(SystemClock))
                .await
                .expect("start a node"),
        );
    }
    let mut toml = String::from(
        "listen = \"127.0.0.1:0\"\nrequest_timeout_ms = 250\nconnect_timeout_ms = 250\n\
         [ring]\nreplicas = 2\n",
    );
    for n in &nodes {
        toml.push_str(&format!("[[nodes]]\naddr = \"{}\"\n", n.addr));
    }
    let cfg = ProxyConfig::from_toml(&toml).expect("proxy config");
    let max_item_size = cfg.max_item_size;
    let proxy = ringcache::proxy::start(cfg, None)
        .await
        .expect("start the proxy");

    for n in &nodes {
        for i in 0..CANARIES {
            let v = canary_value(i);
            let req = format!("set {} 0 0 {}\r\n{v}\r\n", canary_key(i), v.len());
            match ask(n.addr, req.as_bytes()).await {
                Ok(Response::Stored) => {}
                other => panic!("storing a canary on {}: {other:?}", n.addr),
            }
        }
    }

    let asked = asked(data, max_item_size);
    let replies = session(proxy.addr, data).await;
    check_replies(&replies, &asked);

    match ask(proxy.addr, b"mn\r\n").await {
        Ok(Response::Meta(m)) if m.status == ringcache_client::protocol::MetaStatus::Mn => {}
        other => panic!("a new connection does not get MN after the input: {other:?}"),
    }

    // Backend connections still in step: a fresh key written and read through the proxy
    // (unless the client asked for a flush, which may be delayed and hit the probe).
    if !asked.flush && !asked.written.contains(&b"fz_probe"[..]) {
        probe(proxy.addr, data).await;
    }

    if !asked.flush {
        for n in &nodes {
            for i in 0..CANARIES {
                let key = canary_key(i);
                if asked.written.contains(key.as_bytes()) {
                    continue;
                }
                let got = ask(n.addr, format!("get {key}\r\n").as_bytes()).await;
                let ok = matches!(&got, Ok(Response::Values(v))
                    if v.len() == 1 && v[0].data == canary_value(i).as_bytes());
                assert!(
                    ok,
                    "canary {key} on node {} is {got:?} after input {:?}\nreplies: {:?}",
                    n.addr,
                    String::from_utf8_lossy(data),
                    String::from_utf8_lossy(&replies)
                );
            }
        }
    }
    // Dropping the runtime ends every task and closes every socket.
    drop(proxy);
    drop(nodes);
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(data));
});
