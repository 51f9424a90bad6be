//! TLS on real servers: a node and a proxy with TLS on both sides (clients → proxy → nodes,
//! mutual TLS at the node) serve the Rust client, a raw rustls client and pymemcache; clients
//! with a wrong CA, an expired certificate or none (mutual TLS on) are refused; certificates
//! replaced on disk are used by new connections without a restart. Certificates are made here
//! with rcgen. See docs/operations.md.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair};
use ringcache_client::transport::{Connector, TransportSettings};
use ringcache_client::{Client, ClientOptions};
use tokio_rustls::rustls::{self, pki_types::ServerName};

use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{RData, RecordType};
use ringcache_client::cluster_config::DiscoverySettings;
use ringcache_client::discovery::Discovery;
use ringcache_client::health::NodeState;
use support::dns::{Dns, SRV_NAME};
use support::{spawn_node, spawn_node_at, spawn_proxy, Conn, Proc, Server, BIN, REPLY_TIMEOUT};

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let (cert, key) = testkit::pki::self_signed_ca(name).expect("a CA certificate");
    Ca { cert, key }
}

/// A leaf certificate signed by `ca` for `localhost` and `127.0.0.1`: (cert PEM, key PEM).
fn leaf(ca: &Ca, client: bool, expired: bool) -> (String, String) {
    leaf_for(ca, &["localhost", "127.0.0.1"], client, expired)
}

/// A leaf certificate signed by `ca` whose SANs are `names` (DNS names or IP addresses).
fn leaf_for(ca: &Ca, names: &[&str], client: bool, expired: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, if client { "client" } else { "server" });
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A directory of PEM files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let d = std::env::temp_dir().join(format!(
            "ringcache-tls-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// Writes `name` whole and atomically (temp file + rename), as a secret update does.
    /// A leaf certificate and its key, as `<name>.pem` and `<name>.key`.
    fn put_leaf(&self, name: &str, (cert, key): (String, String)) {
        self.put(&format!("{name}.pem"), &cert);
        self.put(&format!("{name}.key"), &key);
    }

    fn put(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The usual set of files: CA, server and client certificates, a second (wrong) CA with its
/// own client certificate, and an expired client certificate from the right CA.
fn pki(tag: &str) -> Dir {
    let d = Dir::new(tag);
    let good = ca("ringcache test CA");
    let wrong = ca("some other CA");
    d.put("ca.pem", &good.cert.pem());
    d.put("wrong-ca.pem", &wrong.cert.pem());
    d.put_leaf("server", leaf(&good, false, false));
    d.put_leaf("client", leaf(&good, true, false));
    d.put_leaf("wrong-client", leaf(&wrong, true, false));
    d.put_leaf("expired-client", leaf(&good, true, true));
    d
}

fn s(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

/// A TLS node: `verify` is memcached's ssl_verify_mode.
fn tls_node(d: &Dir, verify: u8) -> Server {
    spawn_node(&[
        "--ssl-chain-cert",
        &s(d.path("server.pem")),
        "--ssl-key",
        &s(d.path("server.key")),
        "--ssl-ca-cert",
        &s(d.path("ca.pem")),
        "--ssl-verify-mode",
        &verify.to_string(),
    ])
}

/// A rustls client config trusting `ca`, presenting `cert`/`key` when given.
fn client_config(ca: &Path, cert: Option<(&Path, &Path)>) -> Arc<rustls::ClientConfig> {
    let roots = ringcache_client::tls_files::read_roots(ca).unwrap();
    let b = rustls::ClientConfig::builder_with_provider(ringcache_client::tls_files::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        Some((c, k)) => b
            .with_client_auth_cert(
                ringcache_client::tls_files::read_certs(c).unwrap(),
                ringcache_client::tls_files::read_key(k).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    })
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects and completes the handshake, or says why it failed.
fn tls_connect(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Result<Tls, String> {
    let tcp = TcpStream::connect_timeout(&addr, REPLY_TIMEOUT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(REPLY_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(REPLY_TIMEOUT)).unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(tls)
}

/// Sends `req` and reads exactly `want.len()` bytes of reply.
fn ask(tls: &mut Tls, req: &[u8], want_len: usize) -> Result<Vec<u8>, String> {
    tls.write_all(req).map_err(|e| format!("write: {e}"))?;
    tls.flush().map_err(|e| format!("flush: {e}"))?;
    let mut got = vec![0u8; want_len];
    tls.read_exact(&mut got).map_err(|e| format!("read: {e}"))?;
    Ok(got)
}

/// Sends `req` and checks the reply is exactly `want`.
fn reply(tls: &mut Tls, req: &[u8], want: &[u8]) {
    let got = ask(tls, req, want.len()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "reply to {:?}",
        String::from_utf8_lossy(req)
    );
}

/// Whether a client with `cfg` gets a `version` answered: a refused client fails in the
/// handshake or (TLS 1.3 checks the client's certificate after the client is done) on its
/// first read.
fn served(addr: SocketAddr, cfg: Arc<rustls::ClientConfig>) -> Result<(), String> {
    let mut tls = tls_connect(addr, cfg)?;
    let got = ask(&mut tls, b"version\r\n", 8)?;
    if got != b"VERSION " {
        return Err(format!(
            "unexpected reply {:?}",
            String::from_utf8_lossy(&got)
        ));
    }
    Ok(())
}

#[test]
fn node_with_mutual_tls_serves_its_clients_and_refuses_the_others() {
    let d = pki("mutual");
    let node = tls_node(&d, 2);
    let good = client_config(
        &d.path("ca.pem"),
        Some((&d.path("client.pem"), &d.path("client.key"))),
    );
    let mut tls = tls_connect(node.addr, good.clone()).expect("a client of our CA connects");
    reply(&mut tls, b"set k 5 0 3\r\nabc\r\n", b"STORED\r\n");
    reply(&mut tls, b"get k\r\n", b"VALUE k 5 3\r\nabc\r\nEND\r\n");

    // The client does not trust the node's CA.
    let wrong_ca = client_config(
        &d.path("wrong-ca.pem"),
        Some((&d.path("client.pem"), &d.path("client.key"))),
    );
    let e = served(node.addr, wrong_ca).unwrap_err();
    assert!(e.contains("handshake"), "{e}");
    // A certificate from another CA, an expired one, none at all: refused by the node.
    for (what, cert) in [
        (
            "another CA's",
            Some(("wrong-client.pem", "wrong-client.key")),
        ),
        (
            "an expired",
            Some(("expired-client.pem", "expired-client.key")),
        ),
        ("no", None),
    ] {
        let paths = cert.map(|(c, k)| (d.path(c), d.path(k)));
        let cfg = client_config(
            &d.path("ca.pem"),
            paths.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        );
        assert!(
            served(node.addr, cfg).is_err(),
            "a client with {what} certificate was served"
        );
    }
    // A TLS listener serves only TLS: plain text gets a TLS alert record (type 0x15) and a
    // close, never a memcached reply.
    let mut plain = node.conn();
    plain.send(b"version\r\n");
    let got = plain.read_quiet(Duration::from_millis(500));
    assert!(
        got.starts_with(b"\x15\x03") && got.ends_with(b"<closed>"),
        "{}",
        support::show(&got)
    );
    // The good client is still served, on its old connection and on a new one.
    reply(&mut tls, b"mn\r\n", b"MN\r\n");
    served(node.addr, good).unwrap();
}

#[test]
fn verify_mode_request_checks_only_a_presented_certificate() {
    let d = pki("request");
    let node = tls_node(&d, 1);
    let none = client_config(&d.path("ca.pem"), None);
    served(node.addr, none).expect("mode 1 serves a client without a certificate");
    let wrong = client_config(
        &d.path("ca.pem"),
        Some((&d.path("wrong-client.pem"), &d.path("wrong-client.key"))),
    );
    assert!(served(node.addr, wrong).is_err());
}

#[test]
fn certificates_replaced_on_disk_are_used_by_new_connections() {
    let d = pki("rotate");
    let node = tls_node(&d, 0);
    let old_ca = client_config(&d.path("ca.pem"), None);
    let mut before = tls_connect(node.addr, old_ca.clone()).unwrap();
    reply(&mut before, b"mn\r\n", b"MN\r\n");

    // Renewal by a new CA, written as a Secret update would: key first, then certificate.
    let next = ca("renewed CA");
    let (c, k) = leaf(&next, false, false);
    d.put("next-ca.pem", &next.cert.pem());
    d.put("server.key", &k);
    d.put("server.pem", &c);
    let new_ca = client_config(&d.path("next-ca.pem"), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match served(node.addr, new_ca.clone()) {
            Ok(()) => break,
            Err(e) if Instant::now() > deadline => {
                panic!(
                    "the renewed certificate is not used: {e}\n{}",
                    node.stderr_tail()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    // New connections get the new certificate only; the open one goes on.
    assert!(served(node.addr, old_ca).is_err());
    reply(&mut before, b"mn\r\n", b"MN\r\n");
}

#[test]
fn a_certificate_that_does_not_load_keeps_the_old_one() {
    let d = pki("broken");
    let node = tls_node(&d, 0);
    let cfg = client_config(&d.path("ca.pem"), None);
    served(node.addr, cfg.clone()).unwrap();
    d.put("server.pem", "not a certificate\n");
    std::thread::sleep(Duration::from_millis(1200));
    served(node.addr, cfg).expect("a broken renewal must not take the listener down");
}

/// Proxy config for a TLS listener with TLS and a client certificate towards the nodes.
fn proxy_config(d: &Dir, node: SocketAddr) -> PathBuf {
    let text = format!(
        "ssl_chain_cert = {:?}\nssl_key = {:?}\n\n[backend]\ntls = true\nssl_ca_cert = {:?}\n\
         ssl_chain_cert = {:?}\nssl_key = {:?}\n\n[[nodes]]\naddr = \"{node}\"\n",
        s(d.path("server.pem")),
        s(d.path("server.key")),
        s(d.path("ca.pem")),
        s(d.path("client.pem")),
        s(d.path("client.key")),
    );
    d.put("proxy.toml", &text)
}

#[test]
fn proxy_with_tls_on_both_sides_serves_tls_clients() {
    let d = pki("proxy");
    let node = tls_node(&d, 2);
    let proxy = spawn_proxy(&[node.addr], &["--config", &s(proxy_config(&d, node.addr))]);
    let cfg = client_config(&d.path("ca.pem"), None);
    let mut tls = tls_connect(proxy.addr, cfg).expect("TLS to the proxy");
    reply(&mut tls, b"set pk 0 0 2\r\nhi\r\n", b"STORED\r\n");
    reply(&mut tls, b"get pk\r\n", b"VALUE pk 0 2\r\nhi\r\nEND\r\n");
    // The value went over mutual TLS to the node: read it there directly.
    let direct = client_config(
        &d.path("ca.pem"),
        Some((&d.path("client.pem"), &d.path("client.key"))),
    );
    let mut n = tls_connect(node.addr, direct).unwrap();
    reply(&mut n, b"get pk\r\n", b"VALUE pk 0 2\r\nhi\r\nEND\r\n");
    pymemcache(&proxy.addr, &d, false);
    pymemcache(&node.addr, &d, true);
}

/// A proxy that does not speak TLS to TLS nodes gets nothing from them (and says so).
#[test]
fn plain_proxy_to_tls_node_is_refused() {
    let d = pki("plainproxy");
    let node = tls_node(&d, 0);
    let proxy = spawn_proxy(&[node.addr], &[]);
    let mut c = proxy.conn();
    c.send(b"set k 0 0 1\r\nx\r\n");
    c.expect(b"SERVER_ERROR {*}\r\n");
}

#[test]
fn rust_client_speaks_tls_to_nodes() {
    let d = pki("client");
    let node = tls_node(&d, 2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings = TransportSettings {
            tls: true,
            ssl_ca_cert: Some(d.path("ca.pem")),
            ssl_chain_cert: Some(d.path("client.pem")),
            ssl_key: Some(d.path("client.key")),
            ..TransportSettings::default()
        };
        let client = Client::builder()
            .options(ClientOptions {
                transport: Connector::new(&settings).unwrap(),
                ..ClientOptions::default()
            })
            .nodes([node.addr.to_string()])
            .build()
            .await
            .unwrap();
        client.set(b"rk", &b"rv"[..], 3, 0).await.unwrap();
        let item = client.get(b"rk").await.unwrap().expect("hit");
        assert_eq!((&item.value[..], item.flags), (&b"rv"[..], 3));

        // Without its certificate the node refuses the client: requests fail, never hang.
        let no_cert = TransportSettings {
            ssl_chain_cert: None,
            ssl_key: None,
            ..settings
        };
        let refused = Connector::new(&no_cert).unwrap();
        let r = tokio::time::timeout(REPLY_TIMEOUT, async {
            let mut s = refused.connect(&node.addr.to_string()).await?;
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            s.write_all(b"version\r\n").await?;
            let mut b = [0u8; 8];
            s.read_exact(&mut b).await.map(|_| b)
        })
        .await
        .expect("bounded");
        assert!(r.is_err(), "served without a client certificate: {r:?}");
    });
}

/// Runs tests/clients/pymemcache_tls_check.py against `addr` when python3 and pymemcache are
/// installed (.ci/run installs them and also runs the script itself).
fn pymemcache(addr: &SocketAddr, d: &Dir, mutual: bool) {
    let has = std::process::Command::new("python3")
        .args(["-c", "import pymemcache"])
        .status()
        .is_ok_and(|s| s.success());
    if !has {
        eprintln!("skip: python3 with pymemcache not installed");
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pymemcache_tls_check.py"
    );
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(script)
        .arg(addr.to_string())
        .arg(d.path("ca.pem"))
        .arg(d.path("client.pem"))
        .arg(d.path("client.key"));
    if mutual {
        cmd.arg("--mutual");
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("checks passed"),
        "pymemcache over TLS failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGHUP re-reads the files at once and does not stop the node (its default action would).
#[test]
fn sighup_rereads_certificates_and_keeps_the_node_running() {
    let d = pki("hup");
    let mut node = tls_node(&d, 0);
    let next = ca("renewed by SIGHUP");
    let (c, k) = leaf(&next, false, false);
    d.put("next-ca.pem", &next.cert.pem());
    d.put("server.key", &k);
    d.put("server.pem", &c);
    node.process().signal(libc::SIGHUP).unwrap();
    let new_ca = client_config(&d.path("next-ca.pem"), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = served(node.addr, new_ca.clone()) {
        assert!(
            Instant::now() < deadline,
            "not serving the new certificate after SIGHUP: {e}\n{}",
            node.stderr_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        node.stderr_tail().contains("SIGHUP"),
        "{}",
        node.stderr_tail()
    );
}

/// A plain node and a plain proxy survive SIGHUP too.
#[test]
fn sighup_does_not_stop_plain_servers() {
    let mut node = spawn_node(&[]);
    let mut proxy = spawn_proxy(&[node.addr], &[]);
    for s in [&mut node, &mut proxy] {
        s.process().signal(libc::SIGHUP).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut c = proxy.conn();
    c.send(b"set k 0 0 1\r\nv\r\nget k\r\n");
    c.expect(b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
    let mut n = node.conn();
    n.send(b"mn\r\n");
    n.expect(b"MN\r\n");
}

// ----- certificates that name a node's DNS name only (issue 23) ----------------------------

/// The CA of the name tests, and a certificate per node whose only SAN is the node's DNS name
/// (`<file>.pem`/`.key` for each `(file, name)`): cert-manager's per-pod layout. No IP
/// address is in any of them.
fn named_pki(tag: &str, nodes: &[(&str, &str)]) -> Dir {
    let d = Dir::new(tag);
    let good = ca("ringcache name test CA");
    d.put("ca.pem", &good.cert.pem());
    for (file, name) in nodes {
        d.put_leaf(file, leaf_for(&good, &[name], false, false));
    }
    d
}

/// A TLS node on `ip` presenting `<file>.pem` (no client certificates asked).
fn node_presenting(d: &Dir, file: &str, ip: &str) -> Server {
    spawn_node_at(
        &format!("{ip}:0"),
        &[
            "--ssl-chain-cert",
            &s(d.path(&format!("{file}.pem"))),
            "--ssl-key",
            &s(d.path(&format!("{file}.key"))),
        ],
    )
}

/// A proxy process (logging at warn) speaking TLS to one `[[nodes]]` entry, `addr` and `name`.
fn proxy_naming(d: &Dir, tag: &str, addr: SocketAddr, name: &str) -> Proc {
    let text = format!(
        "[backend]\ntls = true\nssl_ca_cert = {:?}\n\n[[nodes]]\naddr = \"{addr}\"\nname = \"{name}\"\n",
        s(d.path("ca.pem")),
    );
    let cfg = d.put(&format!("proxy-{tag}.toml"), &text);
    let how = testkit::servers::ringcache_spawn("proxy").env("RUST_LOG", "warn");
    testkit::servers::ringcache(
        Path::new(BIN),
        "proxy",
        &["--listen", "127.0.0.1:0", "--config", &s(cfg)],
        &how,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A node configured with `name = "HOST:PORT"` is checked against `HOST`, not the IP in its
/// `addr`: a certificate naming only `n0.nodes.test` is accepted (before, the check was
/// against `127.0.0.1` and failed). With a name its certificate does not carry, the handshake
/// fails, and the proxy says so at warn level with the node and rustls' reason.
#[test]
fn a_configured_node_is_checked_against_the_host_of_its_name() {
    let d = named_pki("byname", &[("n0", "n0.nodes.test")]);
    let node = node_presenting(&d, "n0", "127.0.0.1");
    let port = node.addr.port();

    let right = proxy_naming(&d, "right", node.addr, &format!("n0.nodes.test:{port}"));
    let mut c = Conn::open(right.addr, "proxy");
    c.send(b"set nk 0 0 2\r\nhi\r\nget nk\r\n");
    c.expect(b"STORED\r\nVALUE nk 0 2\r\nhi\r\nEND\r\n");
    assert!(
        !right.output_tail().contains("TLS handshake failed"),
        "{}",
        right.output_tail()
    );

    let wrong = proxy_naming(&d, "wrong", node.addr, &format!("wrong.nodes.test:{port}"));
    let mut c = Conn::open(wrong.addr, "proxy");
    c.send(b"set nk 0 0 2\r\nhi\r\n");
    c.expect(b"SERVER_ERROR {*}\r\n");
    let want = [
        "WARN".to_string(),
        "TLS handshake failed".to_string(),
        "certificate not valid for name \"wrong.nodes.test\"".to_string(),
        format!("node={}", node.addr),
        "server_name=wrong.nodes.test".to_string(),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = wrong.output_tail();
        let line = log.lines().find(|l| l.contains("TLS handshake failed"));
        if let Some(line) = line {
            eprintln!("the proxy's log: {line}");
            for w in &want {
                assert!(line.contains(w.as_str()), "{w:?} missing from {line:?}");
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no warn line for the handshake:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nodes found by DNS are checked against their DNS names: a SRV node against its target
/// (`n0.nodes.test`, `n1.nodes.test`: one certificate per node), a `dns+` node against the
/// host that was resolved (`pool.nodes.test`), never against the loopback addresses they
/// resolve to, which no certificate carries. Every node serves (one copy per key, so a node
/// that failed its handshake would fail the writes of its keys).
#[test]
fn discovered_nodes_are_checked_against_their_dns_names() {
    let d = named_pki(
        "bydns",
        &[
            ("n0", "n0.nodes.test"),
            ("n1", "n1.nodes.test"),
            ("pool", "pool.nodes.test"),
        ],
    );
    let n0 = node_presenting(&d, "n0", "127.0.0.1");
    let n1 = node_presenting(&d, "n1", "127.0.0.2");
    let pool = node_presenting(&d, "pool", "127.0.0.3");
    testkit::run(async {
        let mut dns = Dns::start().await;
        dns.set_a(0, [127, 0, 0, 1].into()).await;
        dns.set_a(1, [127, 0, 0, 2].into()).await;
        dns.set_srv(&[(0, n0.addr.port()), (1, n1.addr.port())])
            .await;
        dns.set(
            "pool.nodes.test.",
            RecordType::A,
            vec![RData::A(A([127, 0, 0, 3].into()))],
        )
        .await;
        let settings = TransportSettings {
            tls: true,
            ssl_ca_cert: Some(d.path("ca.pem")),
            ..TransportSettings::default()
        };
        let client = Client::builder()
            .options(ClientOptions {
                transport: Connector::new(&settings).unwrap(),
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(5),
                ..ClientOptions::default()
            })
            .replicas(1)
            .build()
            .await
            .expect("client");
        let sources = [
            format!("dnssrv+{SRV_NAME}"),
            format!("dns+pool.nodes.test:{}", pool.addr.port()),
        ];
        let discovery = DiscoverySettings {
            nameserver: Some(dns.addr.to_string()),
            timeout_ms: 500,
            ..DiscoverySettings::new(sources)
        };
        let _following = Discovery::start(client.router(), &discovery, None)
            .await
            .expect("discovery");
        let want = vec![
            (pool.addr.to_string(), NodeState::Up),
            (format!("n0.nodes.test:{}", n0.addr.port()), NodeState::Up),
            (format!("n1.nodes.test:{}", n1.addr.port()), NodeState::Up),
        ];
        // A node slow to answer when added (a loaded machine) is probed back: wait, bounded.
        let deadline = Instant::now() + Duration::from_secs(15);
        let topo = loop {
            let topo = client.router().topology();
            let mut members: Vec<(String, NodeState)> = topo
                .nodes
                .iter()
                .map(|n| (n.spec.ring_name().to_string(), n.health.state()))
                .collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            if members == want {
                break topo;
            }
            assert!(
                Instant::now() < deadline,
                "members {members:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut served = vec![0; topo.nodes.len()];
        for i in 0..60 {
            let k = format!("dk:{i}");
            client
                .set(k.as_bytes(), format!("v{i}").into_bytes(), 0, 0)
                .await
                .unwrap_or_else(|e| panic!("set {k}: {e}"));
            let got = client.get(k.as_bytes()).await.expect("get").expect("hit");
            assert_eq!(&got.value[..], format!("v{i}").as_bytes());
            served[topo.owners(k.as_bytes()).as_slice()[0]] += 1;
        }
        assert!(served.iter().all(|&n| n > 0), "keys per node: {served:?}");
    });
}

/// The fmt subscriber's output, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Lines at `level` that contain `what`.
    fn count(&self, level: &str, what: &str) -> usize {
        self.text()
            .lines()
            .filter(|l| l.contains(level) && l.contains(what))
            .count()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// `ringcache_client_tls_handshake_failures_total` on this process's page (0 before the first).
fn handshake_failures() -> f64 {
    let page = ringcache::metrics::install().render();
    page.lines()
        .find_map(|l| l.strip_prefix("ringcache_client_tls_handshake_failures_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A node whose certificate the client does not trust is retried on every reconnect: its
/// first failed handshake is logged at warn, the next ones (within the minute) only counted,
/// and the first success after the CA file is fixed is said once at info.
#[test]
fn a_failing_handshake_is_warned_once_then_counted_and_its_recovery_said() {
    let d = pki("handshakelog");
    let node = tls_node(&d, 0);
    let wrong = std::fs::read_to_string(d.path("wrong-ca.pem")).unwrap();
    let good = std::fs::read_to_string(d.path("ca.pem")).unwrap();
    let trust = d.put("trust.pem", &wrong);
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let connector = Connector::new(&TransportSettings {
            tls: true,
            ssl_ca_cert: Some(trust.clone()),
            ..TransportSettings::default()
        })
        .unwrap();
        let addr = node.addr.to_string();
        let before = handshake_failures();
        const TRIES: usize = 6;
        for i in 0..TRIES {
            let r = tokio::time::timeout(REPLY_TIMEOUT, connector.connect(&addr))
                .await
                .expect("bounded");
            assert!(r.is_err(), "handshake {i} with the wrong CA succeeded");
        }
        assert_eq!(
            log.count("WARN", "TLS handshake failed"),
            1,
            "one warn line for {TRIES} failures:\n{}",
            log.text()
        );
        // Other tests of this process may fail handshakes of their own meanwhile.
        let counted = handshake_failures() - before;
        assert!(counted >= TRIES as f64, "{counted} failures counted");

        d.put("trust.pem", &good);
        // The CA file is looked at again once a second (tls_files::CHECK_EVERY).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let r = tokio::time::timeout(REPLY_TIMEOUT, connector.connect(&addr))
                .await
                .expect("bounded");
            if r.is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the fixed CA file was never used"
            );
        }
        let text = log.text();
        assert_eq!(log.count("WARN", "TLS handshake failed"), 1, "{text}");
        assert_eq!(
            log.count("INFO", "TLS handshake succeeded again after"),
            1,
            "{text}"
        );
        // Succeeding again says nothing more.
        let r = tokio::time::timeout(REPLY_TIMEOUT, connector.connect(&addr))
            .await
            .expect("bounded");
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(log.count("INFO", "TLS handshake succeeded again"), 1);
    });
}
