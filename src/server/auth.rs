//! memcached's text-protocol authentication (`-Y <file>`), on the node and the proxy alike.
//!
//! The auth file holds `user:password` lines. Until a connection authenticates, it may only
//! send `set <any key> <flags> <exptime> <len>\r\n<user> <password>\r\n`; every other command
//! line is answered `CLIENT_ERROR unauthenticated` and the connection stays open, as in
//! memcached 1.6 (`try_read_command_asciiauth`). The replies are in `protocol::refusal` and
//! docs/protocol.md. After `STORED` the connection is an ordinary one; what it may do as
//! admin is the gate's business (`gate.rs`). The exchange's bytes are read by
//! `ringcache_client::protocol::auth` ([`Exchange`]); this file holds the auth file and the
//! connection's side: checking the users, reading from the socket, writing the answers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use ringcache_client::protocol::auth::{Exchange, Step};
use ringcache_client::protocol::refusal;
use ringcache_client::tls_files::Reloading;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// The users of an auth file.
#[derive(Debug, Default)]
pub struct AuthFile {
    users: Vec<(Vec<u8>, Vec<u8>)>,
}

impl AuthFile {
    /// Parses `user:password` lines (empty lines skipped; the password is everything after the
    /// first `:`).
    pub fn parse(text: &str) -> Result<AuthFile, String> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let Some((u, p)) = line.split_once(':') else {
                return Err(format!("line {}: expected user:password", i + 1));
            };
            if u.is_empty() || p.is_empty() {
                return Err(format!("line {}: empty user or password", i + 1));
            }
            users.push((u.as_bytes().to_vec(), p.as_bytes().to_vec()));
        }
        if users.is_empty() {
            return Err("no user in the auth file".into());
        }
        Ok(AuthFile { users })
    }

    /// Reads an auth file.
    pub fn load(path: &Path) -> Result<AuthFile, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        AuthFile::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Whether `user` is listed with `password`. Every entry is compared in full, so the time
    /// taken says nothing about which byte differed.
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        let mut ok = false;
        for (u, p) in &self.users {
            ok |= same(u, user) & same(p, password);
        }
        ok
    }
}

/// Constant-time equality for equal lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An auth file re-read when it changes (new passwords apply to new connections).
pub type Users = Reloading<AuthFile>;

/// Loads `path` as a watched auth file.
pub fn users(path: &Path) -> Result<Users, Error> {
    let p: PathBuf = path.to_path_buf();
    Reloading::new(vec![p.clone()], move || {
        AuthFile::load(&p).map_err(|e| ringcache_client::Error::Config(e.to_string()))
    })
    .map_err(|e| Error::Config(e.to_string()))
}

/// Runs the exchange on a new connection until it authenticates (returning the user, with any
/// pipelined bytes after the credentials left in `rbuf`), or until the client leaves, breaks the
/// rules, stays idle past `idle`, or the server shuts down (`None`: close it).
pub async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
    users: &Users,
    idle: Option<Duration>,
    shutdown: &CancellationToken,
) -> Option<String> {
    let file = users.get();
    let mut ex = Exchange::default();
    loop {
        match ex.step(rbuf, |user, password| file.check(user, password)) {
            Step::More => {}
            Step::Close => return None,
            Step::Reply(line) => {
                if write_line(stream, line).await.is_err() {
                    return None;
                }
                continue;
            }
            Step::Done(user) => {
                if write_line(stream, refusal::AUTH_OK).await.is_err() {
                    return None;
                }
                return Some(user);
            }
        }
        rbuf.reserve(1024);
        let read = stream.read_buf(rbuf);
        let n = tokio::select! {
            r = read => r.ok()?,
            _ = shutdown.cancelled() => return None,
            _ = async {
                match idle {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => return None,
        };
        if n == 0 {
            return None;
        }
    }
}

async fn write_line<S: AsyncWrite + Unpin>(stream: &mut S, line: &str) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(line.len() + 2);
    ringcache_client::protocol::reply::message(&mut out, line);
    stream.write_all(&out).await?;
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> AuthFile {
        AuthFile::parse("alice:secret\nbob:pw:with:colons\n\n").unwrap()
    }

    fn run(input: &[u8]) -> Vec<Step> {
        let f = file();
        let mut ex = Exchange::default();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            let s = ex.step(&mut buf, |u, p| f.check(u, p));
            let stop = matches!(s, Step::More | Step::Close | Step::Done(_));
            out.push(s);
            if stop {
                return out;
            }
        }
    }

    #[test]
    fn auth_file_lines() {
        let f = file();
        assert!(f.check(b"alice", b"secret"));
        assert!(f.check(b"bob", b"pw:with:colons"));
        assert!(!f.check(b"alice", b"secreT"));
        assert!(!f.check(b"alic", b"secret"));
        assert!(AuthFile::parse("nocolon\n").is_err());
        assert!(AuthFile::parse("\n").is_err());
    }

    /// The replies memcached 1.6.18 gives, request by request.
    #[test]
    fn exchange_matches_memcached() {
        use Step::*;
        assert_eq!(run(b"get a\r\n"), [Reply(refusal::UNAUTHENTICATED), More]);
        assert_eq!(run(b"set x 0\r\n"), [Reply(refusal::UNAUTHENTICATED), More]);
        assert_eq!(
            run(b"add x 0 0 12\r\nalice secret\r\n"),
            [
                Reply(refusal::UNAUTHENTICATED),
                Reply(refusal::UNAUTHENTICATED),
                More
            ]
        );
        assert_eq!(
            run(b"set x 0 0 12\r\nalice wrong1\r\n"),
            [Reply(refusal::AUTH_FAILURE), More]
        );
        assert_eq!(
            run(b"set x 0 0 11\r\nalicesecret\r\n"),
            [Reply(refusal::AUTH_BAD_FORMAT), More]
        );
        assert_eq!(
            run(b"set x 0 0 2\r\nabcd\r\n"),
            [
                Reply(refusal::AUTH_BAD_TERMINATION),
                Reply(refusal::UNAUTHENTICATED),
                More
            ]
        );
        assert_eq!(run(b"set x 0 0 12\r\nalice sec"), [More]);
        assert_eq!(
            run(b"set x 0 0 14 noreply\r\nalice secret  \r\n"),
            [Done("alice".into())]
        );
        // The length as memcached's `safe_strtoul` reads it: a sign is allowed, a negative
        // number or trailing garbage is not.
        assert_eq!(
            run(b"set x 0 0 +12\r\nalice secret\r\n"),
            [Done("alice".into())]
        );
        assert_eq!(
            run(b"set x 0 0 12x\r\n"),
            [Reply(refusal::UNAUTHENTICATED), More]
        );
        assert_eq!(
            run(b"set x 0 0 -1\r\n"),
            [Reply(refusal::UNAUTHENTICATED), More]
        );
        assert_eq!(run(b"set x 0 0 99999\r\n"), [Close]);
        assert_eq!(run(&[b'a'; 3000]), [Close]);
    }
}
