//! Certificates and keys read from PEM files, and rebuilt when the files change on disk.
//!
//! Both ends of a TLS connection need this: the servers (node and proxy listeners) and the
//! client (proxy → node, embedded client → node). Certificates are renewed by replacing the
//! files (cert-manager, a mounted Kubernetes Secret), so whatever is built from them is a
//! [`Reloading`] value: looked at on each new connection, rebuilt when a file's modification
//! time or size changed, and kept as it was when the new files do not make a valid config (a
//! half-written pair is retried on the next connection). See docs/operations.md.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use crate::error::Error;

/// The crypto provider every TLS config of the project is built with (ring: no C toolchain
/// beyond a C compiler, no OpenSSL).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, in order (a chain: leaf first).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{}: no certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| Error::Config(format!("{}: no usable private key: {e}", path.display())))
}

/// The certificates of a PEM file as a trust store.
pub fn read_roots(path: &Path) -> Result<rustls::RootCertStore, Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// How often the files are looked at, at most: a burst of new connections costs one `stat`
/// per file per interval, and a renewed certificate is in use within this long.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What identifies a file's version: modification time and length.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

struct Watch {
    stamps: Vec<Stamp>,
    checked: Instant,
}

/// A value built from files, rebuilt when they change (see the module doc).
pub struct Reloading<T> {
    current: ArcSwap<T>,
    paths: Vec<PathBuf>,
    build: Box<dyn Fn() -> Result<T, Error> + Send + Sync>,
    watch: Mutex<Watch>,
}

impl<T> std::fmt::Debug for Reloading<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloading")
            .field("paths", &self.paths)
            .finish()
    }
}

impl<T> Reloading<T> {
    /// Builds the value once (an error here is a config error: the server does not start).
    pub fn new(
        paths: Vec<PathBuf>,
        build: impl Fn() -> Result<T, Error> + Send + Sync + 'static,
    ) -> Result<Reloading<T>, Error> {
        let stamps = paths.iter().map(|p| stamp(p)).collect();
        let value = build()?;
        Ok(Reloading {
            current: ArcSwap::from_pointee(value),
            paths,
            build: Box::new(build),
            watch: Mutex::new(Watch {
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The value for a new connection: rebuilt first if a file changed since the last look.
    pub fn get(&self) -> Arc<T> {
        self.check(false);
        self.current.load_full()
    }

    /// Rebuilds from the files now, changed or not (memcached's `refresh_certs`); on an error
    /// the old value stays in force.
    pub fn rebuild(&self) -> Result<(), Error> {
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        let v = (self.build)()?;
        self.current.store(Arc::new(v));
        if let Ok(mut w) = self.watch.lock() {
            w.stamps = now;
            w.checked = Instant::now();
        }
        Ok(())
    }

    /// Looks at the files now (`force`: even within [`CHECK_EVERY`] of the last look), and
    /// rebuilds if one changed. Returns whether a new value is in force.
    pub fn check(&self, force: bool) -> bool {
        let Ok(mut w) = self.watch.lock() else {
            return false;
        };
        if !force && w.checked.elapsed() < CHECK_EVERY {
            return false;
        }
        w.checked = Instant::now();
        let now: Vec<Stamp> = self.paths.iter().map(|p| stamp(p)).collect();
        if now == w.stamps {
            return false;
        }
        match (self.build)() {
            Ok(v) => {
                self.current.store(Arc::new(v));
                w.stamps = now;
                tracing::info!(files = ?self.paths, "TLS files changed: new connections use them");
                true
            }
            Err(e) => {
                // Keep serving with what we have; a pair caught half-written is retried.
                tracing::warn!("TLS files changed but cannot be used (keeping the old ones): {e}");
                false
            }
        }
    }
}
