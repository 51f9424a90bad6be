//! Certificates for tests that run TLS nodes: a CA, a server certificate for `127.0.0.1`,
//! `localhost` and `*.nodes.test` (the names tests give their nodes: a router checks a node's
//! certificate against the host of its name, docs/operations.md "TLS"), and a client
//! certificate, issued by `testkit::pki::Authority` in a directory removed on drop, and the
//! `ringcache node` arguments that serve with them. (tests/tls.rs has its own, with wrong
//! and expired certificates besides.)

use std::path::PathBuf;
use std::time::Instant;

use testkit::pki::{Authority, Usage};

/// A directory holding `ca.pem`, `server.pem`/`server.key` and `client.pem`/`client.key`.
pub struct Pki(PathBuf);

impl Pki {
    /// Makes a fresh CA and the two leaf certificates it signs.
    pub fn new(tag: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "ringcache-pki-{tag}-{}-{:?}",
            std::process::id(),
            Instant::now()
        ));
        let ca = Authority::new(&dir, "test CA").expect("CA");
        let sans = ["localhost", "127.0.0.1", "*.nodes.test"].map(String::from);
        for (name, usage) in [("server", Usage::Server), ("client", Usage::Client)] {
            ca.issue(name, name, &sans, usage)
                .expect("leaf certificate");
        }
        Pki(dir)
    }

    /// Writes a file in the directory; its path.
    pub fn put(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write pki file");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `ringcache node` arguments for a TLS listener with these certificates; `verify` is
    /// memcached's `ssl_verify_mode` (2: a client certificate from the CA is required).
    pub fn node_args(&self, verify: u8) -> Vec<String> {
        let p = |n: &str| self.path(n).to_string_lossy().into_owned();
        vec![
            "--ssl-chain-cert".into(),
            p("server.pem"),
            "--ssl-key".into(),
            p("server.key"),
            "--ssl-ca-cert".into(),
            p("ca.pem"),
            "--ssl-verify-mode".into(),
            verify.to_string(),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
