//! The run's certificates, issued by one `testkit::pki::Authority`: one server certificate per
//! node whose only SAN is the node's DNS name (`node-<i>.nodes.test`, as a StatefulSet pod's
//! certificate names its pod), and one client certificate the proxies and the harness's direct
//! reads present (the nodes require one: `ssl_verify_mode = 2`). PEM files in the run's
//! directory.

use std::path::{Path, PathBuf};

use testkit::pki::{Authority, Pem, Usage};

use crate::error::Result;

/// Every file of the run's PKI.
pub struct Pki {
    pub ca: PathBuf,
    /// Node `i`'s server certificate.
    pub nodes: Vec<Pem>,
    /// The client certificate (proxies and the harness).
    pub client: Pem,
}

impl Pki {
    /// A CA and certificates for `names` (one server certificate each, also naming `extra`)
    /// and a client, written under `dir`.
    pub fn make(dir: &Path, names: &[String], extra: &[String]) -> Result<Pki> {
        let ca = Authority::new(dir, "ringcache secure-cluster CA")?;
        let nodes = names
            .iter()
            .map(|n| {
                let mut sans = vec![n.clone()];
                sans.extend(extra.iter().cloned());
                ca.issue(n, n, &sans, Usage::Server)
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let client = ca.issue("client", "ringcache proxy", &[], Usage::Client)?;
        Ok(Pki {
            ca: ca.ca().to_path_buf(),
            nodes,
            client,
        })
    }
}
