//! TLS on a listener (node or proxy), with rustls: certificate chain and key, and optionally
//! client certificates checked against a CA (mutual TLS). Settings carry memcached's names
//! (`ssl_chain_cert`, `ssl_key`, `ssl_ca_cert`, `ssl_verify_mode`). A TLS listener serves only
//! TLS. The files are re-read when they change, so renewed certificates are used by new
//! connections without a restart (docs/operations.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ringcache_client::tls_files::{self, Reloading};
use tokio::net::TcpStream;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use super::stream::ServerStream;
use crate::error::Error;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// memcached's `ssl_verify_mode`: whether client certificates are asked for and required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    /// 0: no client certificate is asked for.
    #[default]
    None,
    /// 1: asked for; one that is presented must chain to `ssl_ca_cert`.
    Request,
    /// 2: required, and must chain to `ssl_ca_cert`.
    Require,
    /// 3: memcached's "once" (ask on the first handshake, not on renegotiation). TLS 1.3 and
    /// rustls have no renegotiation, so it is the same as 1.
    Once,
}

impl VerifyMode {
    /// From memcached's number.
    pub fn from_number(n: u8) -> Result<VerifyMode, Error> {
        Ok(match n {
            0 => VerifyMode::None,
            1 => VerifyMode::Request,
            2 => VerifyMode::Require,
            3 => VerifyMode::Once,
            _ => {
                return Err(Error::Config(format!(
                    "ssl_verify_mode = {n}: expected 0 (none), 1 (request), 2 (require) or 3 (once)"
                )))
            }
        })
    }
}

/// Accepts TLS connections with the certificates currently on disk.
#[derive(Debug)]
pub struct Tls {
    acceptor: Reloading<TlsAcceptor>,
}

/// What a listener's TLS is made from: memcached's `ssl_*` settings (`SecuritySettings` holds
/// them; this type keeps `tls` free of the settings module, which uses `tls`).
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub chain: Option<&'a Path>,
    pub key: Option<&'a Path>,
    pub ca: Option<&'a Path>,
    pub verify_mode: u8,
}

impl Tls {
    /// Reads and checks the files; `None` when TLS is off.
    pub fn new(s: TlsFiles<'_>) -> Result<Option<Tls>, Error> {
        let mode = VerifyMode::from_number(s.verify_mode)?;
        let Some(chain) = s.chain.map(Path::to_path_buf) else {
            if s.key.is_some() || s.ca.is_some() || mode != VerifyMode::None {
                return Err(Error::Config(
                    "ssl_key, ssl_ca_cert and ssl_verify_mode need ssl_chain_cert".into(),
                ));
            }
            return Ok(None);
        };
        let key = s.key.map_or_else(|| chain.clone(), Path::to_path_buf);
        let ca = s.ca.map(Path::to_path_buf);
        if mode != VerifyMode::None && ca.is_none() {
            return Err(Error::Config(
                "ssl_verify_mode 1-3 checks client certificates against ssl_ca_cert: give it"
                    .into(),
            ));
        }
        let mut paths = vec![chain.clone(), key.clone()];
        paths.extend(ca.iter().cloned());
        paths.dedup();
        let acceptor = Reloading::new(paths, move || {
            build(&chain, &key, ca.as_ref(), mode)
                .map_err(|e| ringcache_client::Error::Config(e.to_string()))
        })
        .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Some(Tls { acceptor }))
    }

    /// The TLS handshake on an accepted connection, bounded by [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<ServerStream> {
        let acceptor = self.acceptor.get();
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => Ok(ServerStream::Tls(Box::new(s.into()))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Re-reads the files now, changed or not (`refresh_certs`).
    pub fn refresh(&self) -> Result<(), Error> {
        self.acceptor
            .rebuild()
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Re-reads the files now if they changed (SIGHUP).
    pub fn reload(&self) {
        self.acceptor.check(true);
    }
}

fn build(
    chain: &std::path::Path,
    key: &std::path::Path,
    ca: Option<&PathBuf>,
    mode: VerifyMode,
) -> Result<TlsAcceptor, Error> {
    let certs = tls_files::read_certs(chain)?;
    let key = tls_files::read_key(key)?;
    let builder = ServerConfig::builder_with_provider(tls_files::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(e.to_string()))?;
    let builder = match (mode, ca) {
        (VerifyMode::None, _) | (_, None) => builder.with_no_client_auth(),
        (mode, Some(ca)) => {
            let roots = Arc::new(tls_files::read_roots(ca)?);
            let verifier =
                WebPkiClientVerifier::builder_with_provider(roots, tls_files::provider());
            let verifier = if mode == VerifyMode::Require {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| Error::Config(format!("{}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Config(format!("{}: {e}", chain.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
