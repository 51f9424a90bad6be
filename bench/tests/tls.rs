//! The TCP driver's TLS mode (`--tls-ca`) against a real TLS-only `ringcache node`: the bench's
//! counts must match the node's own `stats`, read over TLS, and the same load without
//! `--tls-ca` must get no reply at all (the node serves TLS only), so the answered run really
//! spoke TLS. Certificates are made for the test (`testkit::pki`).
//!
//! Needs the `ringcache` binary (`$RINGCACHE_BIN`, else target/{debug,release}/ringcache); the
//! test is skipped with a message without one.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{bench_args, words, Server};
use ringcache_bench::run_blocking;
use ringcache_client::transport::{Connector, TransportSettings};
use testkit::bins::ringcache_bin;
use testkit::servers::{ringcache_node, ringcache_spawn};
use testkit::Output;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a `stats` reply may be, and the longest it may take.
const STATS_MAX: usize = 64 * 1024;
const STATS_TIMEOUT: Duration = Duration::from_secs(5);

/// A directory removed when dropped.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `stats` over TLS, trusting `ca`: name → value (numeric fields only).
fn tls_stats(addr: &str, ca: &Path) -> HashMap<String, u64> {
    let connector = Connector::new(&TransportSettings {
        tls: true,
        ssl_ca_cert: Some(ca.to_path_buf()),
        ..TransportSettings::default()
    })
    .expect("connector");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = rt.block_on(async {
        tokio::time::timeout(STATS_TIMEOUT, async {
            let mut s = connector.connect(addr).await.expect("TLS connect");
            s.write_all(b"stats\r\n").await.expect("send stats");
            s.flush().await.expect("flush");
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.ends_with(b"END\r\n") {
                assert!(buf.len() < STATS_MAX, "stats reply too long");
                let n = s.read(&mut chunk).await.expect("read stats");
                assert!(n > 0, "closed before END");
                buf.extend_from_slice(&chunk[..n]);
            }
            String::from_utf8(buf).expect("utf-8 stats")
        })
        .await
        .expect("stats within the timeout")
    });
    text.lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("STAT ")?.split(' ');
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn tls_driver_talks_tls_to_a_tls_node() {
    let Some(bin) = ringcache_bin() else {
        println!("skip: no ringcache binary (set RINGCACHE_BIN or build the workspace first)");
        return;
    };
    let dir = Dir(std::env::temp_dir().join(format!("rcbench-tls-test-{}", std::process::id())));
    let pki = testkit::pki::write_server_pki(&dir.0).expect("certificates");
    let (cert, key) = (pki.cert.to_string_lossy(), pki.key.to_string_lossy());
    let how = ringcache_spawn("node").output(Output::Inherit);
    let node = Server::new(
        ringcache_node(
            &bin,
            "127.0.0.1:0",
            &["--ssl-chain-cert", &cert, "--ssl-key", &key],
            &how,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    let ca = pki.ca.to_string_lossy().into_owned();

    let a = bench_args(
        &node.addr,
        &[
            "--tls-ca",
            &ca,
            "--threads",
            "2",
            "--pids",
            &node.pid().to_string(),
        ],
        &words(
            "--connections 3 --pipeline 4 --requests 600 --duration 5 --warmup 0.1 --ratio 1:4 \
             --multiget 2 --keys 500 --prefill",
        ),
    );
    let report = run_blocking(&a).expect("TLS run");
    let run = &report.runs[0];
    assert_eq!(run.errors, 0, "errors: {:?}", run.first_error);
    assert_eq!(run.counts.ops, 600, "exactly --requests ops, all answered");
    assert_eq!(report.prefill[0].counts.sets, 500, "every key once");
    assert_eq!(run.hit_ratio, Some(1.0), "everything was prefilled");
    assert!(run.cpu.is_some(), "the node's CPU time was read");

    let st = tls_stats(&node.addr, &pki.ca);
    assert_eq!(
        st["cmd_set"],
        report.prefill[0].counts.sets + run.warmup.sets + run.counts.sets,
        "cmd_set vs the bench's sets"
    );
    assert_eq!(
        st["cmd_get"],
        run.warmup.get_keys + run.counts.get_keys,
        "cmd_get vs the bench's get keys"
    );

    // The node serves TLS only: plain text gets no reply, so the run above was TLS.
    let plain = bench_args(
        &node.addr,
        &["--threads", "2"],
        &words("--connections 1 --requests 5 --duration 0.5 --timeout 1"),
    );
    let report = run_blocking(&plain).expect("plain run ends");
    let run = &report.runs[0];
    assert_eq!(run.counts.ops, 0, "no plain-text reply from a TLS node");
    assert!(
        run.first_error.is_some(),
        "the connection was refused or broke"
    );
}
