//! A throw-away certificate authority and a server certificate for loopback, made in-process
//! with rcgen and written as PEM files: what a TLS server under test (`ringcache node
//! --ssl-chain-cert`, `memcached -Z`) serves and what its clients trust.
//!
//! The server certificate names `127.0.0.1` (an IP address SAN) and `localhost`, so a client
//! dialing `127.0.0.1:PORT` checks it against the host it dialed, as the proxy's connector and
//! the bench's TLS driver do.

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::Error;

/// The PEM files of one CA and one server certificate signed by it.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate: what clients trust.
    pub ca: PathBuf,
    /// The server's certificate chain (leaf only: the CA is the trust anchor).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
}

fn tls_err(what: &str, e: rcgen::Error) -> Error {
    Error::Io(std::io::Error::other(format!("{what}: {e}")))
}

/// Makes a CA and a server certificate for `127.0.0.1`/`localhost` and writes them to `dir` as
/// `ca.pem`, `server.pem` and `server.key`.
pub fn write_server_pki(dir: &Path) -> Result<Pki, Error> {
    let ca_key = KeyPair::generate().map_err(|e| tls_err("CA key", e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_err("CA", e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "ringcache test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| tls_err("CA", e))?;

    let key = KeyPair::generate().map_err(|e| tls_err("server key", e))?;
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(|e| tls_err("server certificate", e))?;
    leaf.distinguished_name.push(DnType::CommonName, "server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf
        .signed_by(&key, &ca_cert, &ca_key)
        .map_err(|e| tls_err("server certificate", e))?;

    fs::create_dir_all(dir)?;
    let pki = Pki {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    fs::write(&pki.ca, ca_cert.pem())?;
    fs::write(&pki.cert, cert.pem())?;
    fs::write(&pki.key, key.serialize_pem())?;
    Ok(pki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pem_files() {
        let dir = std::env::temp_dir().join(format!("testkit-pki-{}", std::process::id()));
        let pki = write_server_pki(&dir).expect("pki");
        let ca = fs::read_to_string(&pki.ca).expect("ca");
        let cert = fs::read_to_string(&pki.cert).expect("cert");
        let key = fs::read_to_string(&pki.key).expect("key");
        let _ = fs::remove_dir_all(&dir);
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(ca, cert);
    }
}
