//! How the run looks at the cluster without going through a proxy: a node read directly over
//! TLS with authentication (the client's own [`Connector`], as a proxy would reach it), and
//! the proxies' `/metrics` pages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use ringcache_client::protocol::Response;
use ringcache_client::transport::{Connector, Stream, TransportSettings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::pki::Pki;
use crate::error::Result;
use crate::harness::fail;
use crate::netns::load::seq_of;

/// Limit on opening a connection (TLS handshake and authentication included) and on one
/// exchange.
const IO_LIMIT: Duration = Duration::from_secs(5);
/// Keys per multi-get.
const BATCH: usize = 100;
/// Most reply bytes held for one exchange.
const REPLY_MAX: usize = 16 << 20;

/// The user the nodes know the harness and the proxies as, and its password.
pub const AUTH_USER: &str = "ringcache";
pub const AUTH_PASSWORD: &str = "secure-cluster-password";

/// Connections to one node over TLS, its certificate checked against `name`, authenticated.
pub struct Direct {
    connector: Connector,
    pub addr: String,
}

impl Direct {
    pub fn new(pki: &Pki, name: &str, addr: &str) -> Result<Direct> {
        let connector = Connector::new(&TransportSettings {
            tls: true,
            ssl_ca_cert: Some(pki.ca.clone()),
            ssl_chain_cert: Some(pki.client.cert.clone()),
            ssl_key: Some(pki.client.key.clone()),
            ssl_server_name: Some(name.to_string()),
            auth_user: Some(AUTH_USER.into()),
            auth_password: Some(AUTH_PASSWORD.into()),
            auth_password_file: None,
        })
        .map_err(|e| fail(format!("connector for {name}: {e}")))?;
        Ok(Direct {
            connector,
            addr: addr.to_string(),
        })
    }

    async fn open(&self) -> std::result::Result<Stream, String> {
        tokio::time::timeout(IO_LIMIT, self.connector.connect(&self.addr))
            .await
            .map_err(|_| format!("{}: connect timeout", self.addr))?
            .map_err(|e| format!("{}: {e}", self.addr))
    }

    /// Sends `req` and reads its one reply, within [`IO_LIMIT`].
    async fn exchange(
        s: &mut Stream,
        buf: &mut BytesMut,
        req: &[u8],
    ) -> std::result::Result<Response, String> {
        let work = async {
            s.write_all(req).await.map_err(|e| e.to_string())?;
            s.flush().await.map_err(|e| e.to_string())?;
            loop {
                if let Some(r) = Response::parse(buf).map_err(|e| e.to_string())? {
                    return Ok(r);
                }
                if buf.len() > REPLY_MAX {
                    return Err("reply too large".to_string());
                }
                buf.reserve(64 * 1024);
                if s.read_buf(buf).await.map_err(|e| e.to_string())? == 0 {
                    return Err("connection closed".to_string());
                }
            }
        };
        tokio::time::timeout(IO_LIMIT, work)
            .await
            .map_err(|_| "reply timeout".to_string())?
    }

    /// The sequence number each of `keys` holds on the node (absent: a miss or another value).
    pub async fn seqs(&self, keys: &[String]) -> std::result::Result<HashMap<String, u64>, String> {
        let mut s = self.open().await?;
        let mut buf = BytesMut::new();
        let mut out = HashMap::new();
        for chunk in keys.chunks(BATCH) {
            let req = format!("get {}\r\n", chunk.join(" "));
            match Self::exchange(&mut s, &mut buf, req.as_bytes()).await {
                Ok(Response::Values(vs)) => {
                    for v in vs {
                        if let (Ok(k), Some(seq)) = (std::str::from_utf8(&v.key), seq_of(&v.data)) {
                            out.insert(k.to_string(), seq);
                        }
                    }
                }
                Ok(other) => return Err(format!("{}: get answered {other:?}", self.addr)),
                Err(e) => return Err(format!("{}: {e}", self.addr)),
            }
        }
        Ok(out)
    }

    /// `curr_items` of the node's `stats`.
    pub async fn items(&self) -> std::result::Result<u64, String> {
        let mut s = self.open().await?;
        let mut buf = BytesMut::new();
        match Self::exchange(&mut s, &mut buf, b"stats\r\n").await {
            Ok(Response::Stats(st)) => st
                .iter()
                .find(|(k, _)| &k[..] == b"curr_items")
                .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
                .ok_or_else(|| format!("{}: no curr_items in stats", self.addr)),
            Ok(other) => Err(format!("{}: stats answered {other:?}", self.addr)),
            Err(e) => Err(format!("{}: {e}", self.addr)),
        }
    }
}

/// One `/metrics` page.
pub struct Page(pub String);

impl Page {
    pub async fn fetch(addr: SocketAddr) -> std::result::Result<Page, String> {
        testkit::aio::metrics_text(addr)
            .await
            .map(Page)
            .map_err(|e| format!("metrics {addr}: {e}"))
    }

    /// The samples of `name` (any labels) whose label text contains `label` (`""`: all).
    fn samples<'a>(&'a self, name: &'a str, label: &'a str) -> impl Iterator<Item = f64> + 'a {
        self.0.lines().filter_map(move |l| {
            let rest = l.strip_prefix(name)?;
            if !(rest.starts_with(' ') || rest.starts_with('{')) || !rest.contains(label) {
                return None;
            }
            rest.rsplit(' ').next()?.parse().ok()
        })
    }

    /// The sum of `name`'s samples (0 when it has none yet: a counter not yet incremented).
    pub fn sum(&self, name: &str) -> f64 {
        self.samples(name, "").sum()
    }

    /// The sample of `name` with label text containing `label`, if any.
    pub fn labelled(&self, name: &str, label: &str) -> Option<f64> {
        self.samples(name, label).next()
    }

    /// Whether any series carries `label` (e.g. `node="…"`).
    pub fn mentions(&self, label: &str) -> bool {
        self.0
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(label))
    }
}
