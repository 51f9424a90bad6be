//! The run's certificates, made in-process with rcgen: one CA, one server certificate per node
//! whose only SAN is the node's DNS name (`node-<i>.nodes.test`, as a StatefulSet pod's
//! certificate names its pod), and one client certificate the proxies and the harness's direct
//! reads present (the nodes require one: `ssl_verify_mode = 2`). PEM files in the run's
//! directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::error::Result;
use crate::harness::fail;

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Pem {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Every file of the run's PKI.
pub struct Pki {
    pub ca: PathBuf,
    /// Node `i`'s server certificate.
    pub nodes: Vec<Pem>,
    /// The client certificate (proxies and the harness).
    pub client: Pem,
}

fn tls_err(e: rcgen::Error) -> crate::BenchError {
    fail(format!("certificate: {e}"))
}

impl Pki {
    /// A CA and certificates for `names` (one server certificate each, also naming `extra`)
    /// and a client, written under `dir`.
    pub fn make(dir: &Path, names: &[String], extra: &[String]) -> Result<Pki> {
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "ringcache secure-cluster CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = p.self_signed(&ca_key).map_err(tls_err)?;
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem())?;
        let leaf = |file: &str, san: Option<&str>| -> Result<Pem> {
            let key = KeyPair::generate().map_err(tls_err)?;
            let mut sans: Vec<String> = san.iter().map(|s| s.to_string()).collect();
            if san.is_some() {
                sans.extend(extra.iter().cloned());
            }
            let mut p = CertificateParams::new(sans).map_err(tls_err)?;
            p.distinguished_name
                .push(DnType::CommonName, san.unwrap_or("ringcache proxy"));
            p.extended_key_usages = vec![if san.is_some() {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let cert = p.signed_by(&key, &ca_cert, &ca_key).map_err(tls_err)?;
            let pem = Pem {
                cert: dir.join(format!("{file}.pem")),
                key: dir.join(format!("{file}.key")),
            };
            std::fs::write(&pem.cert, cert.pem())?;
            std::fs::write(&pem.key, key.serialize_pem())?;
            Ok(pem)
        };
        let nodes = names
            .iter()
            .map(|n| leaf(n, Some(n)))
            .collect::<Result<Vec<_>>>()?;
        let client = leaf("client", None)?;
        Ok(Pki { ca, nodes, client })
    }
}
