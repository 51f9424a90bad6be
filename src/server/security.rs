//! A listener's security as one value both servers hold: TLS, authentication and the admin
//! gate, built from the config file's keys and applied to each connection in the same order
//! by the node and the proxy — TLS handshake, then memcached's auth exchange, then the gate on
//! every request.

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use clap::Args;
use ringcache_client::protocol::Request;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Users};
use super::gate::{CommandsConfig, Gate, Refusal};
use super::stream::ServerStream;
use super::tls::{Tls, TlsFiles, VerifyMode};
use crate::error::Error;

/// A listener's security keys, the same 7 top-level keys in the node's, the proxy's and
/// `ringcache local`'s config files (`config/*.toml` document them): each program's settings
/// type takes this struct with `#[serde(flatten)]`, so they are declared, documented and
/// defaulted here only. No `deny_unknown_fields` here: serde does not support it on a flattened
/// struct, the program's own struct refuses whatever key no field took, and `settings` reads
/// this one alone from a whole file to name the key of a bad value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SecuritySettings {
    /// PEM certificate chain: set, the listener serves TLS only (memcached: `-Z -o
    /// ssl_chain_cert`).
    pub ssl_chain_cert: Option<PathBuf>,
    /// PEM private key (default: read from `ssl_chain_cert`) (memcached: `-o ssl_key`).
    pub ssl_key: Option<PathBuf>,
    /// PEM CA(s) client certificates must chain to (memcached: `-o ssl_ca_cert`).
    pub ssl_ca_cert: Option<PathBuf>,
    /// 0 none, 1 request, 2 require, 3 once (= 1) (memcached: `-o ssl_verify_mode`).
    pub ssl_verify_mode: u8,
    /// `user:password` lines; set, every connection must authenticate (memcached: `-Y`).
    pub auth_file: Option<PathBuf>,
    /// Users of `auth_file` allowed the commands `[commands]` keeps for admins.
    pub admin_users: Vec<String>,
    /// Who may run `flush_all`, `cache_memlimit`, `shutdown`, `lru_crawler`, `verbosity`,
    /// `slabs`, `watch`: "allow", "admin" or "deny"; each left out keeps the server's default
    /// (docs/operations.md).
    pub commands: CommandsConfig,
}

impl SecuritySettings {
    /// Refuses values no listener could use, before any file is read (`Security::new` checks
    /// the files and the combinations).
    pub fn validate(&self) -> Result<(), Error> {
        VerifyMode::from_number(self.ssl_verify_mode)?;
        Ok(())
    }
}

/// TLS and authentication flags of a listener, named after memcached's settings; each
/// overrides the same key of `--config` (docs/operations.md). Flattened into each program's
/// flags, so they serialize as top-level keys of its settings.
#[derive(Debug, Args, Default, Clone, Serialize)]
pub struct SecurityArgs {
    /// PEM certificate chain; the listener then serves TLS only (memcached ssl_chain_cert).
    #[arg(long, value_name = "PEM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_chain_cert: Option<PathBuf>,
    /// PEM private key; without it, the key is read from --ssl-chain-cert (memcached ssl_key).
    #[arg(long, value_name = "PEM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key: Option<PathBuf>,
    /// PEM CA(s) client certificates must chain to (memcached ssl_ca_cert).
    #[arg(long, value_name = "PEM")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_ca_cert: Option<PathBuf>,
    /// Client certificates: 0 none, 1 request, 2 require, 3 once (= 1) (memcached
    /// ssl_verify_mode).
    #[arg(long, value_name = "0-3", default_value_t = SecuritySettings::default().ssl_verify_mode)]
    pub ssl_verify_mode: u8,
    /// File of user:password lines; every connection must authenticate first (memcached -Y).
    #[arg(long, short = 'Y', value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_file: Option<PathBuf>,
    /// A user of --auth-file allowed the admin-only commands (repeat for each); replaces the
    /// config's admin_users.
    #[arg(long = "admin-user", value_name = "USER")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub admin_users: Vec<String>,
}

/// What `refresh_certs` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The files were read again and are in use.
    Done,
    /// The listener has no TLS.
    NoTls,
    /// The files could not be used (why); the old ones stay.
    Failed(String),
}

/// Who a connection is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// The authenticated user, when the listener has an auth file.
    pub user: Option<String>,
    /// Whether the user is in `admin_users`.
    pub admin: bool,
}

/// A listener's TLS, users and gate.
#[derive(Debug)]
pub struct Security {
    tls: Option<Tls>,
    users: Option<Users>,
    admins: Vec<String>,
    gate: Gate,
}

impl Security {
    /// Reads and checks the files; `defaults` is the server's gate (`Gate::NODE`/`PROXY`).
    pub fn new(s: &SecuritySettings, defaults: Gate) -> Result<Security, Error> {
        let users = s.auth_file.as_deref().map(auth::users).transpose()?;
        if users.is_none() && !s.admin_users.is_empty() {
            return Err(Error::Config(
                "admin_users needs auth_file: users are known only by authenticating".into(),
            ));
        }
        Ok(Security {
            tls: Tls::new(TlsFiles {
                chain: s.ssl_chain_cert.as_deref(),
                key: s.ssl_key.as_deref(),
                ca: s.ssl_ca_cert.as_deref(),
                verify_mode: s.ssl_verify_mode,
            })?,
            users,
            admins: s.admin_users.clone(),
            gate: Gate::with(defaults, &s.commands),
        })
    }

    /// No TLS, no auth, `defaults` as the gate.
    pub fn open(defaults: Gate) -> Security {
        Security {
            tls: None,
            users: None,
            admins: Vec::new(),
            gate: defaults,
        }
    }

    /// Whether the listener does TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Turns an accepted socket into a served connection: TLS handshake, then authentication
    /// (any bytes pipelined after the credentials are left in `rbuf`). `None`: close it.
    pub async fn accept(
        &self,
        tcp: TcpStream,
        rbuf: &mut BytesMut,
        idle: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Option<(ServerStream, Session)> {
        self.accept_on(tcp, true, rbuf, idle, shutdown).await
    }

    /// [`Security::accept`] on a listener where TLS applies (`tls`) or not: memcached's
    /// `-l notls:ADDR` serves plain text beside TLS listeners, authentication and the gate
    /// still applying.
    pub async fn accept_on(
        &self,
        tcp: TcpStream,
        tls: bool,
        rbuf: &mut BytesMut,
        idle: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Option<(ServerStream, Session)> {
        let mut stream = match self.tls.as_ref().filter(|_| tls) {
            None => ServerStream::Plain(tcp),
            Some(tls) => match tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!("TLS handshake failed: {e}");
                    return None;
                }
            },
        };
        let Some(users) = &self.users else {
            return Some((stream, Session::default()));
        };
        let user = auth::authenticate(&mut stream, rbuf, users, idle, shutdown).await?;
        let admin = self.admins.contains(&user);
        Some((
            stream,
            Session {
                user: Some(user),
                admin,
            },
        ))
    }

    /// `Some` when the gate refuses `req` to this connection.
    #[inline]
    pub fn refuse(&self, req: &Request, session: &Session) -> Option<Refusal> {
        self.gate.check(req, session.admin)
    }

    /// memcached's `refresh_certs`: the certificate, key and CA files read again now, for new
    /// connections; on an error the old ones stay in use.
    pub fn refresh_certs(&self) -> Refresh {
        match &self.tls {
            None => Refresh::NoTls,
            Some(t) => match t.refresh() {
                Ok(()) => Refresh::Done,
                Err(e) => Refresh::Failed(e.to_string()),
            },
        }
    }

    /// Re-reads certificates and the auth file if they changed (SIGHUP; they are also looked
    /// at on new connections, at most once a second).
    pub fn reload(&self) {
        if let Some(t) = &self.tls {
            t.reload();
        }
        if let Some(u) = &self.users {
            u.check(true);
        }
    }
}
