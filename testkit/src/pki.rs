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

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate (leaf only: the CA is the trust anchor).
    pub cert: PathBuf,
    /// Its private key (PKCS#8).
    pub key: PathBuf,
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

/// A throw-away CA whose certificate is written to `dir/ca.pem`; it issues the certificates
/// of one test or run into the same directory.
pub struct Authority {
    dir: PathBuf,
    ca: PathBuf,
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A self-signed CA certificate named `common_name` and its key, kept in memory: what
/// [`Authority::new`] writes out, and what a test that signs odd certificates (expired, for
/// other names) with rcgen itself starts from.
pub fn self_signed_ca(common_name: &str) -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key)?;
    Ok((cert, key))
}

fn tls_err(what: &str, e: rcgen::Error) -> Error {
    Error::Io(std::io::Error::other(format!("{what}: {e}")))
}

impl Authority {
    /// A new CA named `common_name`, written to `dir/ca.pem` (`dir` is created).
    pub fn new(dir: &Path, common_name: &str) -> Result<Authority, Error> {
        let (cert, key) = self_signed_ca(common_name).map_err(|e| tls_err("CA", e))?;
        fs::create_dir_all(dir)?;
        let ca = dir.join("ca.pem");
        fs::write(&ca, cert.pem())?;
        Ok(Authority {
            dir: dir.to_path_buf(),
            ca,
            cert,
            key,
        })
    }

    /// The CA certificate's file: what clients (or servers checking clients) trust.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The directory the certificates are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A certificate for `usage` naming `sans` (DNS names, wildcards or IP addresses), with
    /// common name `common_name`, written as `FILE.pem` and `FILE.key`.
    pub fn issue(
        &self,
        file: &str,
        common_name: &str,
        sans: &[String],
        usage: Usage,
    ) -> Result<Pem, Error> {
        let key = KeyPair::generate().map_err(|e| tls_err("key", e))?;
        let mut p = CertificateParams::new(sans.to_vec()).map_err(|e| tls_err(file, e))?;
        p.distinguished_name.push(DnType::CommonName, common_name);
        p.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let cert = p
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| tls_err(file, e))?;
        let pem = Pem {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}.key")),
        };
        fs::write(&pem.cert, cert.pem())?;
        fs::write(&pem.key, key.serialize_pem())?;
        Ok(pem)
    }
}

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

/// Makes a CA and a server certificate for `127.0.0.1`/`localhost` and writes them to `dir` as
/// `ca.pem`, `server.pem` and `server.key`.
pub fn write_server_pki(dir: &Path) -> Result<Pki, Error> {
    let ca = Authority::new(dir, "ringcache test CA")?;
    let sans = ["127.0.0.1".to_string(), "localhost".to_string()];
    let server = ca.issue("server", "server", &sans, Usage::Server)?;
    Ok(Pki {
        ca: ca.ca().to_path_buf(),
        cert: server.cert,
        key: server.key,
    })
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
