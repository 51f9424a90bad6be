//! How a connection to a node is opened: plain TCP, or TLS (rustls) with the trust and client
//! certificate configured, then memcached's text-protocol authentication when credentials are
//! set. `connection.rs` asks a [`Connector`] for a [`Stream`] and never sees the difference;
//! so does the router's key listing (`router/migrate.rs`: the migrator, re-warm and cleanup).
//! This is the one place a socket to a node is opened (`.ci/check_connects.sh`), so TLS and
//! authentication apply to every byte a router sends a node.
//!
//! Settings (the proxy's `[backend]` table, docs/operations.md) name what memcached names: a CA
//! to trust, an optional client certificate and key (for nodes that require one), a name to
//! check every node's certificate against (`ssl_server_name`). Without it each node's
//! certificate is checked against the node's stable name, which the caller gives
//! ([`Connector::connect_named`]; `NodeSpec::tls_name`), not against the IP address it was
//! found at. A refused handshake is logged at warn level with the node and the reason, once a
//! minute per node at most (`handshake_log.rs`).
//! Certificate files are re-read when they change (see `tls_files`).

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_rustls::TlsConnector;
use tokio_util::codec::FramedRead;

use crate::error::Error;
use crate::handshake_log::{HandshakeLog, Verdict};
use crate::protocol::auth::{self, AuthReply, AuthReplyCodec};
use crate::tls_files::{self, Reloading};

/// A byte stream, plain or TLS: a connection to a node here, and an accepted client connection
/// in the servers (`src/server/stream.rs`), so the two sides share one type. tokio-rustls's
/// `TlsStream` already covers both TLS roles and their reads and writes.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket under either kind.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Closes with a reset (`SO_LINGER` 0) instead of a FIN: the kernel discards whatever is
    /// still unsent or unacknowledged instead of retransmitting it after the socket is gone.
    /// A request that timed out on a cut link would otherwise reach the server whenever the
    /// link returns, minutes later if TCP's backoff says so, and a write could then land
    /// after the key's repair (docs/cluster.md, "Writes that time out").
    pub fn abort(self) {
        if let Err(e) = self.tcp().set_zero_linger() {
            tracing::debug!("SO_LINGER 0 refused: {e}");
        }
    }

    fn io(self: Pin<&mut Self>) -> Pin<&mut (dyn AsyncReadWrite + Send)> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s),
            Stream::Tls(s) => Pin::new(s.as_mut()),
        }
    }
}

/// What [`Stream`]'s two kinds have in common, as one trait object.
trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.io().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}

/// How to reach the nodes: TLS and credentials. The default is plain TCP without auth.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSettings {
    /// Speak TLS to the nodes.
    pub tls: bool,
    /// PEM file of the CA(s) the nodes' certificates must chain to (required with `tls`).
    pub ssl_ca_cert: Option<PathBuf>,
    /// PEM client certificate chain, for nodes that verify clients (`ssl_verify_mode` 1–3).
    pub ssl_chain_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (default: read from `ssl_chain_cert`).
    pub ssl_key: Option<PathBuf>,
    /// One name every node's certificate must carry (default: each node's stable name,
    /// `NodeSpec::tls_name`).
    pub ssl_server_name: Option<String>,
    /// User for memcached's text-protocol authentication (nodes started with an auth file).
    pub auth_user: Option<String>,
    /// Its password; prefer `auth_password_file` so the secret stays out of the config.
    pub auth_password: Option<String>,
    /// A file whose first line is the password.
    pub auth_password_file: Option<PathBuf>,
}

struct Inner {
    tls: Option<Reloading<TlsConnector>>,
    server_name: Option<ServerName<'static>>,
    /// The whole authentication request, sent first on every new connection.
    auth: Option<Vec<u8>>,
    /// Which nodes' handshakes are failing, so each is logged at warn once a minute.
    handshakes: HandshakeLog,
}

/// Opens connections as [`TransportSettings`] say. Cheap to clone.
#[derive(Clone, Default)]
pub struct Connector {
    inner: Option<Arc<Inner>>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (tls, auth) = match &self.inner {
            None => (false, false),
            Some(i) => (i.tls.is_some(), i.auth.is_some()),
        };
        f.debug_struct("Connector")
            .field("tls", &tls)
            .field("auth", &auth)
            .finish()
    }
}

impl Connector {
    /// Plain TCP, no authentication.
    pub fn plain() -> Connector {
        Connector::default()
    }

    /// A connector for `settings`; reads (and checks) the certificate files now.
    pub fn new(settings: &TransportSettings) -> Result<Connector, Error> {
        if *settings == TransportSettings::default() {
            return Ok(Connector::plain());
        }
        let tls = if settings.tls {
            let Some(ca) = settings.ssl_ca_cert.clone() else {
                return Err(Error::Config(
                    "TLS to the nodes needs ssl_ca_cert (the CA their certificates chain to)"
                        .into(),
                ));
            };
            let cert = settings.ssl_chain_cert.clone();
            let key = settings.ssl_key.clone().or_else(|| cert.clone());
            if key.is_some() && cert.is_none() {
                return Err(Error::Config(
                    "ssl_key without ssl_chain_cert: give the client certificate too".into(),
                ));
            }
            let mut paths = vec![ca.clone()];
            paths.extend(cert.iter().cloned());
            paths.extend(key.iter().cloned());
            paths.dedup();
            Some(Reloading::new(paths, move || {
                let roots = tls_files::read_roots(&ca)?;
                let builder = rustls::ClientConfig::builder_with_provider(tls_files::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Error::Config(e.to_string()))?
                    .with_root_certificates(roots);
                let config = match (&cert, &key) {
                    (Some(c), Some(k)) => builder
                        .with_client_auth_cert(tls_files::read_certs(c)?, tls_files::read_key(k)?)
                        .map_err(|e| Error::Config(format!("client certificate: {e}")))?,
                    _ => builder.with_no_client_auth(),
                };
                Ok(TlsConnector::from(Arc::new(config)))
            })?)
        } else {
            if settings.ssl_ca_cert.is_some() || settings.ssl_chain_cert.is_some() {
                return Err(Error::Config(
                    "ssl_ca_cert / ssl_chain_cert given but tls = false".into(),
                ));
            }
            None
        };
        let server_name = match &settings.ssl_server_name {
            Some(n) => Some(
                ServerName::try_from(n.clone())
                    .map_err(|e| Error::Config(format!("ssl_server_name {n:?}: {e}")))?,
            ),
            None => None,
        };
        let password = match (&settings.auth_password, &settings.auth_password_file) {
            (Some(p), None) => Some(p.clone()),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| Error::Config(format!("{}: {e}", f.display())))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(Error::Config(
                    "give auth_password or auth_password_file, not both".into(),
                ))
            }
        };
        let auth = match (&settings.auth_user, password) {
            (Some(u), Some(p)) => Some(auth::request(u, &p)?),
            (None, None) => None,
            _ => return Err(Error::Config("auth_user and a password go together".into())),
        };
        Ok(Connector {
            inner: Some(Arc::new(Inner {
                tls,
                server_name,
                auth,
                handshakes: HandshakeLog::default(),
            })),
        })
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.tls.is_some())
    }

    /// Connects to `addr` (`host:port`), does the TLS handshake and authenticates, as set up,
    /// checking the certificate against the host of `addr` (or `ssl_server_name`). The caller
    /// bounds the whole of it with its connect timeout.
    pub async fn connect(&self, addr: &str) -> io::Result<Stream> {
        self.connect_named(addr, None).await
    }

    /// [`Connector::connect`] to a node whose certificate carries `name`: its stable name
    /// (`NodeSpec::tls_name`: the SRV target, the `dns+` host, the host of its configured
    /// name or address), which a node found at a pod IP has and the IP has not.
    /// `ssl_server_name` still overrides it; `None` is the host of `addr`.
    pub async fn connect_named(&self, addr: &str, name: Option<&str>) -> io::Result<Stream> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let Some(inner) = &self.inner else {
            return Ok(Stream::Plain(tcp));
        };
        let mut stream = match &inner.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = match (&inner.server_name, name) {
                    (Some(n), _) => n.clone(),
                    (None, Some(n)) => server_name(addr, n)?,
                    (None, None) => host_name(addr)?,
                };
                // Said at warn level: a refused certificate is a configuration error (a wrong
                // name, an expired or foreign certificate) that keeps the node down for good,
                // and at debug level only "not reachable" would show. Once a minute per node
                // at most: it is retried on every reconnect (`handshake_log.rs`).
                let shown = name.to_str().into_owned();
                match tls.get().connect(name, tcp).await {
                    Ok(s) => {
                        if let Verdict::Recovered { failures } = inner.handshakes.succeeded(addr) {
                            tracing::info!(
                                node = %addr,
                                server_name = %shown,
                                "TLS handshake succeeded again after {failures} failures"
                            );
                        }
                        Stream::Tls(Box::new(s.into()))
                    }
                    Err(e) => {
                        match inner.handshakes.failed(addr, Instant::now()) {
                            Verdict::Warn { quiet: 0 } => tracing::warn!(
                                node = %addr,
                                server_name = %shown,
                                "TLS handshake failed: {e}"
                            ),
                            Verdict::Warn { quiet } => tracing::warn!(
                                node = %addr,
                                server_name = %shown,
                                "TLS handshake failed: {e} ({quiet} more failures not logged \
                                 since the last warning)"
                            ),
                            _ => tracing::debug!(
                                node = %addr,
                                server_name = %shown,
                                "TLS handshake failed: {e}"
                            ),
                        }
                        return Err(e);
                    }
                }
            }
        };
        if let Some(req) = &inner.auth {
            authenticate(&mut stream, req).await?;
        }
        Ok(stream)
    }
}

/// Sends the authentication request and reads its one-line reply, which must accept it
/// (`protocol::auth` has both).
async fn authenticate(stream: &mut Stream, req: &[u8]) -> io::Result<()> {
    stream.write_all(req).await?;
    stream.flush().await?;
    let mut reply = FramedRead::new(&mut *stream, AuthReplyCodec);
    let answer = reply.next().await;
    // The node sends nothing before this reply, so nothing else can have been read with it;
    // bytes beyond it would be a stream out of step with its requests.
    let extra = !reply.read_buffer().is_empty();
    match answer {
        Some(Ok(AuthReply::Accepted)) if !extra => Ok(()),
        Some(Ok(AuthReply::Accepted)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unrequested bytes after the authentication reply",
        )),
        Some(Ok(AuthReply::Refused(line))) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("authentication refused: {line}"),
        )),
        Some(Err(e)) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("authentication reply: {e}"),
        )),
        None => Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "no reply to authentication",
        )),
    }
}

/// The host part of `host:port` (`[v6]:port` too) as a TLS server name.
fn host_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    server_name(addr, host.trim_start_matches('[').trim_end_matches(']'))
}

/// `name` (a DNS name or an IP address) as the TLS server name of the node at `addr`.
fn server_name(addr: &str, name: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(name.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: no TLS server name in {name:?}: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host() {
        assert_eq!(
            host_name("127.0.0.1:11211").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            host_name("node-0.cache.svc:11211").unwrap(),
            ServerName::try_from("node-0.cache.svc").unwrap()
        );
        assert_eq!(
            host_name("[::1]:11211").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(Connector::new(&TransportSettings::default()).is_ok());
        let tls_no_ca = TransportSettings {
            tls: true,
            ..Default::default()
        };
        assert!(Connector::new(&tls_no_ca).is_err());
        let user_only = TransportSettings {
            auth_user: Some("a".into()),
            ..Default::default()
        };
        assert!(Connector::new(&user_only).is_err());
    }
}
