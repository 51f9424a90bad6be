//! The TLS rows (issue 23, item 8): `memcached -Z` (OpenSSL), a TLS `ringcache node`
//! (rustls), and a `ringcache proxy` with TLS on both sides (to its clients, and `[backend] tls`
//! to 3 TLS nodes), all serving one certificate made for the run. The loads
//! ([`super::matrix::tls_loads`]) go through the TCP driver's TLS mode (`--tls-ca`), trusting
//! the run's CA.

use std::path::Path;

use testkit::pki::{self, Pki};

use super::procs::{self, Proc};
use crate::error::Result;

/// The TLS targets, started; every process is killed when this is dropped.
pub struct TlsCluster {
    pki: Pki,
    memcached: Proc,
    node: Proc,
    _nodes3: Vec<Proc>,
    proxy: Proc,
}

/// The proxy's TLS settings: its listener serves TLS with the run's certificate, and it
/// reaches its nodes over TLS, trusting the run's CA (TOML, top-level keys then `[backend]`).
pub fn proxy_tls_settings(pki: &Pki) -> String {
    format!(
        "ssl_chain_cert = {:?}\nssl_key = {:?}\n\n[backend]\ntls = true\nssl_ca_cert = {:?}\n",
        pki.cert.to_string_lossy(),
        pki.key.to_string_lossy(),
        pki.ca.to_string_lossy()
    )
}

impl TlsCluster {
    /// Makes the certificates under `dir/tls` and starts memcached `-Z`, a TLS node, and a TLS
    /// proxy in front of 3 TLS nodes.
    pub fn start(mc: &Path, rc: &Path, dir: &Path) -> Result<TlsCluster> {
        let pki = pki::write_server_pki(&dir.join("tls"))?;
        let cert = pki.cert.to_string_lossy().into_owned();
        let key = pki.key.to_string_lossy().into_owned();
        let mc_tls = format!("ssl_chain_cert={cert},ssl_key={key}");
        let memcached =
            procs::memcached_with(mc, "memcached-tls", 1024, &["-Z", "-o", &mc_tls], dir)?;
        let node_tls = ["--ssl-chain-cert", &cert, "--ssl-key", &key];
        let node = procs::ringcache_node_with(rc, "node-tls", 1024, &node_tls, dir)?;
        let nodes3 = (1..=3)
            .map(|i| {
                procs::ringcache_node_with(rc, &format!("tls-proxy-node{i}"), 1024, &node_tls, dir)
            })
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = nodes3.iter().map(|p| p.addr.to_string()).collect();
        let settings = proxy_tls_settings(&pki);
        let (proxy, _conf) = procs::ringcache_proxy(rc, "proxy-tls", &addrs, 1, &settings, dir)?;
        Ok(TlsCluster {
            pki,
            memcached,
            node,
            _nodes3: nodes3,
            proxy,
        })
    }

    /// The CA the load driver trusts.
    pub fn ca(&self) -> &Path {
        &self.pki.ca
    }

    /// `(target, pids)` in [`super::matrix::Kind::TLS`] order: CPU is charged to memcached,
    /// the node, and the proxy alone.
    pub fn targets(&self) -> Vec<(String, String)> {
        [&self.memcached, &self.node, &self.proxy]
            .iter()
            .map(|p| (p.addr.to_string(), p.pid().to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn proxy_settings_are_toml_with_a_backend_table() {
        let pki = Pki {
            ca: PathBuf::from("/t/ca.pem"),
            cert: PathBuf::from("/t/server.pem"),
            key: PathBuf::from("/t/server.key"),
        };
        let toml = procs::proxy_toml(
            "127.0.0.1:5",
            &proxy_tls_settings(&pki),
            &["127.0.0.1:6".into()],
            1,
        );
        assert!(toml.contains("ssl_chain_cert = \"/t/server.pem\"\nssl_key = \"/t/server.key\"\n"));
        assert!(toml.contains("[backend]\ntls = true\nssl_ca_cert = \"/t/ca.pem\"\n"));
        // [ring] follows [backend], so `replicas` is not taken for a backend key.
        assert!(toml.find("[backend]") < toml.find("[ring]"));
    }
}
