//! The gate on administrative commands: `flush_all`, `cache_memlimit`, `shutdown`,
//! `lru_crawler`, `verbosity`, `slabs`, `watch`. Per listener, each is allowed to everyone,
//! to authenticated admin users only, or to no one. A refused command gets memcached's reply
//! for a disabled command where memcached has a switch for it (`-F`, `-X`, `-W`, no `-A`), and
//! the same form where it has none (`protocol::refusal`, docs/protocol.md).
//!
//! Defaults (docs/operations.md): a node allows all of them, as memcached does (its listener
//! belongs on the cluster's private network, and the proxy's rebalancing reads
//! `lru_crawler metadump` from it); the proxy — the address applications reach — lets only
//! admins `flush_all` (which empties every node), `cache_memlimit` and `lru_crawler`, `slabs`
//! and `watch`, and no one `shutdown`. Without an auth file no one is an admin, so "admin"
//! means refused.

use ringcache_client::protocol::{refusal, Request};
use serde::Deserialize;

/// Who may run a gated command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Everyone who may use the listener.
    Allow,
    /// Authenticated users named in `admin_users`.
    Admin,
    /// No one.
    Deny,
}

/// The `[commands]` table of a config file: any command left out keeps the server's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommandsConfig {
    pub flush_all: Option<Access>,
    pub cache_memlimit: Option<Access>,
    pub shutdown: Option<Access>,
    pub lru_crawler: Option<Access>,
    pub verbosity: Option<Access>,
    pub slabs: Option<Access>,
    pub watch: Option<Access>,
}

/// The resolved policy of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    pub flush_all: Access,
    pub cache_memlimit: Access,
    pub shutdown: Access,
    pub lru_crawler: Access,
    pub verbosity: Access,
    pub slabs: Access,
    pub watch: Access,
}

impl Gate {
    /// A node's defaults: memcached's (everything allowed; `shutdown` still needs
    /// `enable_shutdown`).
    pub const NODE: Gate = Gate {
        flush_all: Access::Allow,
        cache_memlimit: Access::Allow,
        shutdown: Access::Allow,
        lru_crawler: Access::Allow,
        verbosity: Access::Allow,
        slabs: Access::Allow,
        watch: Access::Allow,
    };

    /// The proxy's defaults: nothing that touches every node or dumps keys unless admin.
    pub const PROXY: Gate = Gate {
        flush_all: Access::Admin,
        cache_memlimit: Access::Admin,
        shutdown: Access::Deny,
        lru_crawler: Access::Admin,
        verbosity: Access::Allow,
        slabs: Access::Admin,
        watch: Access::Admin,
    };

    /// `defaults` overridden by what the config file says.
    pub fn with(defaults: Gate, cfg: &CommandsConfig) -> Gate {
        Gate {
            flush_all: cfg.flush_all.unwrap_or(defaults.flush_all),
            cache_memlimit: cfg.cache_memlimit.unwrap_or(defaults.cache_memlimit),
            shutdown: cfg.shutdown.unwrap_or(defaults.shutdown),
            lru_crawler: cfg.lru_crawler.unwrap_or(defaults.lru_crawler),
            verbosity: cfg.verbosity.unwrap_or(defaults.verbosity),
            slabs: cfg.slabs.unwrap_or(defaults.slabs),
            watch: cfg.watch.unwrap_or(defaults.watch),
        }
    }

    /// `None` when `req` may run for a connection that is (`admin`) or is not an admin;
    /// otherwise the refusal line, and whether the client asked for no reply.
    pub fn check(&self, req: &Request, admin: bool) -> Option<Refusal> {
        let may = |a: Access| match a {
            Access::Allow => true,
            Access::Admin => admin,
            Access::Deny => false,
        };
        let (access, line, noreply) = match req {
            Request::FlushAll { noreply, .. } => {
                (self.flush_all, refusal::FLUSH_ALL_NOT_ALLOWED, *noreply)
            }
            Request::CacheMemlimit { noreply, .. } => (
                self.cache_memlimit,
                refusal::CACHE_MEMLIMIT_NOT_ALLOWED,
                *noreply,
            ),
            Request::Verbosity { noreply, .. } => {
                (self.verbosity, refusal::VERBOSITY_NOT_ALLOWED, *noreply)
            }
            Request::Shutdown { .. } => (self.shutdown, refusal::SHUTDOWN_NOT_ENABLED, false),
            Request::Metadump { .. } => (self.lru_crawler, refusal::METADUMP_NOT_ALLOWED, false),
            Request::LruCrawler { .. } => {
                (self.lru_crawler, refusal::LRU_CRAWLER_NOT_ALLOWED, false)
            }
            Request::SlabsAutomove { noreply, .. } => {
                (self.slabs, refusal::SLABS_NOT_ALLOWED, *noreply)
            }
            // `stats cachedump` lists keys as metadump does: memcached's `-X` disables both.
            Request::Stats { group: Some(g) }
                if g.split(|&b| b == b' ').next() == Some(&b"cachedump"[..]) =>
            {
                (self.lru_crawler, refusal::CACHEDUMP_NOT_ALLOWED, false)
            }
            // `watch` is not implemented (memcached's `ERROR` for an unknown command): its
            // setting exists so a config can say what it means for it.
            _ => return None,
        };
        (!may(access)).then_some(Refusal { line, noreply })
    }
}

/// A refused command's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The reply line, without `\r\n`.
    pub line: &'static str,
    /// The client asked for no reply (`noreply`): send nothing.
    pub noreply: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn proxy_defaults_keep_flush_all_for_admins() {
        let flush = Request::FlushAll {
            delay: 0,
            noreply: false,
        };
        let got = Gate::PROXY.check(&flush, false).unwrap();
        assert_eq!(got.line, "CLIENT_ERROR flush_all not allowed");
        assert_eq!(Gate::PROXY.check(&flush, true), None);
        assert_eq!(Gate::NODE.check(&flush, false), None);
        let dump = Request::Metadump {
            arg: Bytes::from_static(b"all"),
        };
        assert_eq!(
            Gate::PROXY.check(&dump, false).unwrap().line,
            "ERROR metadump not allowed"
        );
        let cfg = CommandsConfig {
            flush_all: Some(Access::Allow),
            verbosity: Some(Access::Deny),
            ..Default::default()
        };
        let g = Gate::with(Gate::PROXY, &cfg);
        assert_eq!(g.check(&flush, false), None);
        let v = Request::Verbosity {
            level: 1,
            noreply: true,
        };
        assert_eq!(
            g.check(&v, true),
            Some(Refusal {
                line: "CLIENT_ERROR verbosity not allowed",
                noreply: true
            })
        );
        assert_eq!(g.check(&Request::Version, false), None);
    }
}
