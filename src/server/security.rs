//! A listener's security as one value both servers hold: TLS, authentication and the admin
//! gate, built from the config file's keys and applied to each connection in the same order
//! by the node and the proxy — TLS handshake, then memcached's auth exchange, then the gate on
//! every request.

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use ringcache_client::protocol::Request;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Users};
use super::gate::{CommandsConfig, Gate, Refusal};
use super::stream::ServerStream;
use super::tls::{Tls, TlsSettings};
use crate::error::Error;

/// What a config file says about a listener's security.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecuritySettings {
    pub tls: TlsSettings,
    /// memcached's `-Y`: `user:password` lines; every connection must authenticate.
    pub auth_file: Option<PathBuf>,
    /// Users (of the auth file) who may run the commands the gate keeps for admins.
    pub admin_users: Vec<String>,
    pub commands: CommandsConfig,
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
            tls: Tls::new(&s.tls)?,
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
        let mut stream = match &self.tls {
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
