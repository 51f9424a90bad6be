//! What the proxy does with each request: route it over the cluster with the engine (`Router`) and
//! turn the outcome into the reply memcached would give.
//!
//! Client `noreply` and meta `q` are honoured here, never forwarded: every backend request asks
//! for its reply (so FIFO matching on backend connections cannot slip) and the proxy drops the
//! reply the client did not want.

use bytes::Bytes;
use ringcache_client::error::Refused;
use ringcache_client::lock;
use ringcache_client::protocol::{
    reply, Fault, GetCmd, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response, StoreCmd,
    Value,
};
use ringcache_client::router::{Found, Lookup, Single};
use ringcache_client::{Ack, Error as ClientError};

use super::Proxy;
use crate::bump;
use crate::server::security::Refresh;
use crate::server::stats::ServerStats;
use crate::server::VERSION;

/// The reply to send for an error from the cluster.
fn server_error(e: &ClientError) -> Response {
    Response::ServerError(Bytes::from(match e {
        ClientError::Timeout(_) => "backend timeout".to_string(),
        ClientError::ConnectionClosed(_) | ClientError::Io(_) | ClientError::NoReplica => {
            "backend unavailable".to_string()
        }
        ClientError::Server(r) => {
            return match r {
                Refused::Unknown => Response::Error,
                Refused::Client(m) => Response::ClientError(Bytes::from(m.clone())),
                Refused::Server(m) => Response::ServerError(Bytes::from(m.clone())),
            }
        }
        other => other.to_string(),
    }))
}

/// Counts one key of a `get` (`touch`: of a `gat`/`gats`) in the proxy's `stats`: `cmd_get` or
/// `cmd_touch`, then `get_hits` or `touch_hits` on a hit, `get_misses` on a miss. One place for
/// the one-key path and the multi-get path, so the two cannot count differently.
fn count_lookup(stats: &ServerStats, touch: bool, hit: bool) {
    if touch {
        bump!(stats, cmd_touch);
    } else {
        bump!(stats, cmd_get);
    }
    match (hit, touch) {
        (true, true) => bump!(stats, touch_hits),
        (true, false) => bump!(stats, get_hits),
        (false, _) => bump!(stats, get_misses),
    };
}

/// The hits of a multi-get: an unreadable key is a miss, counted in `multiget_failures`, so
/// the readable ones still arrive and the reply stays one `VALUE … END` stream. `get` is the
/// [`Request::Get`] to answer.
async fn get_many(proxy: &Proxy, get: &Request) -> Vec<Value> {
    let Request::Get { cmd, exptime, .. } = get else {
        return Vec::new();
    };
    let router = proxy.router();
    let slots = match router.get(get, false).run(router, get).await {
        Found::Many(slots) => slots,
        Found::One(_) => Vec::new(),
    };
    many_values(proxy, *cmd, *exptime, slots)
}

/// The hits of a multi-get (or a piece of one), from what the router found for each key:
/// [`get_many`]'s reply, and the one of a multi-get or a piece in the line (`inflight.rs`),
/// so the two cannot count or strip differently.
pub(super) fn many_values(
    proxy: &Proxy,
    cmd: GetCmd,
    exptime: Option<i64>,
    slots: Vec<Lookup>,
) -> Vec<Value> {
    let stats = &proxy.stats;
    let mut values: Vec<Value> = Vec::with_capacity(slots.len());
    for slot in slots {
        count_lookup(stats, exptime.is_some(), matches!(slot, Lookup::Hit(_)));
        match slot {
            Lookup::Hit(mut v) => {
                if !cmd.returns_cas() {
                    v.cas = None;
                }
                values.push(v);
            }
            Lookup::Failed => proxy.multiget_failures.inc(),
            _ => {}
        }
    }
    values
}

/// The reply to a get of one key (`exptime`: a `gat`), from what the router found. A key that
/// no replica could answer is an error, as the embedded client's `get` is (a miss would say
/// the key is absent, which nobody knows); in a multi-get ([`get_many`]) the unreadable keys
/// are misses, counted, so the rest still arrive. A hit is answered with the node's own list.
pub(super) fn single_reply(
    proxy: &Proxy,
    cmd: GetCmd,
    exptime: Option<i64>,
    found: Single,
) -> Response {
    if matches!(found, Single::Failed) {
        proxy.multiget_failures.inc();
        return Response::ServerError(Bytes::from_static(b"backend unavailable"));
    }
    count_lookup(
        &proxy.stats,
        exptime.is_some(),
        matches!(found, Single::Hit(_)),
    );
    match found {
        Single::Hit(mut values) => {
            if !cmd.returns_cas() {
                for v in &mut values {
                    v.cas = None;
                }
            }
            Response::Values(values)
        }
        _ => Response::Values(Vec::new()),
    }
}

/// Executes `req` and returns the reply, or `None` when the client asked for none.
///
/// Only `get` and `set` are awaited in place; every other branch's future is boxed. A future
/// is as big as its biggest branch, and a pipelined request's future is moved into a box of
/// its own, so a rare branch left inline would cost every `get` a copy of its state
/// (bench/ANALYSIS.md, the router's instructions per request).
pub async fn execute(proxy: &Proxy, req: Request) -> Option<Response> {
    let router = proxy.router();
    let noreply = req.noreply();
    let reply = match req {
        // A get of one key, the commonest request: the request itself is what the node is
        // sent, and the node's list of values is the reply, so none is built here.
        Request::Get {
            cmd,
            exptime,
            ref keys,
        } if keys.len() == 1 => {
            let found = router.get_single(&req).await;
            single_reply(proxy, cmd, exptime, found)
        }
        // Two keys or more (one-key gets took the branch above; the codec refuses none).
        Request::Get { .. } => Response::Values(get_many(proxy, &req).await),
        Request::Store {
            cmd: StoreCmd::Set,
            key,
            flags,
            exptime,
            value,
            ..
        } => {
            bump!(proxy.stats, cmd_set);
            router
                .set_all(key, value, flags, exptime)
                .await
                .unwrap_or_else(|e| server_error(&e))
        }
        // Under `ack = quorum` an `add` is a lock: a majority of the key's replicas must take
        // it (docs/locks.md, "Through the proxy").
        Request::Store {
            cmd: StoreCmd::Add,
            key,
            flags,
            exptime,
            value,
            ..
        } if router.ack_policy() == Ack::Quorum => {
            bump!(proxy.stats, cmd_set);
            let opts = proxy.config().lock_options();
            Box::pin(lock::add_majority(
                router, &opts, key, value, flags, exptime,
            ))
            .await
            .unwrap_or_else(|e| server_error(&e))
        }
        Request::Store {
            cmd,
            key,
            flags,
            exptime,
            cas,
            value,
            ..
        } => {
            bump!(proxy.stats, cmd_set);
            let req = Request::Store {
                cmd,
                key,
                flags,
                exptime,
                cas,
                value,
                noreply: false,
            };
            Box::pin(router.conditional(req))
                .await
                .unwrap_or_else(|e| server_error(&e))
        }
        Request::Delete { key, .. } => Box::pin(router.delete(key))
            .await
            .unwrap_or_else(|e| server_error(&e)),
        Request::Arith {
            cmd, key, delta, ..
        } => Box::pin(router.conditional(Request::Arith {
            cmd,
            key,
            delta,
            noreply: false,
        }))
        .await
        .unwrap_or_else(|e| server_error(&e)),
        Request::Touch { key, exptime, .. } => {
            bump!(proxy.stats, cmd_touch);
            Box::pin(router.conditional(Request::Touch {
                key,
                exptime,
                noreply: false,
            }))
            .await
            .unwrap_or_else(|e| server_error(&e))
        }
        Request::FlushAll { delay, .. } => {
            bump!(proxy.stats, cmd_flush);
            match Box::pin(router.flush_all_delay(delay)).await {
                Ok(()) => Response::Ok,
                Err(e) => server_error(&e),
            }
        }
        Request::Version => Response::Version(Bytes::from_static(VERSION.as_bytes())),
        // The proxy's own listener: its certificates, not the nodes'.
        // memcached sends its errors even with noreply.
        Request::RefreshCerts { noreply: nr } => {
            return match proxy.security.refresh_certs() {
                Refresh::Done => (!nr).then_some(Response::Ok),
                Refresh::NoTls => Some(Response::Other(Bytes::from_static(
                    Fault::TLS_NOT_ENABLED.as_bytes(),
                ))),
                Refresh::Failed(why) => {
                    let mut line = bytes::BytesMut::new();
                    reply::refresh_certs_failed(&mut line, &why);
                    // `Response::Other` is written with its `\r\n`.
                    line.truncate(line.len().saturating_sub(2));
                    Some(Response::Other(line.freeze()))
                }
            };
        }
        Request::Verbosity { .. } => Response::Ok,
        Request::Stats { group } => Box::pin(super::stats::reply(proxy, group.as_deref())).await,
        Request::CacheMemlimit { .. } | Request::SlabsAutomove { .. } => Response::Ok,
        Request::Shutdown { .. } => {
            Response::Other(Bytes::from_static(Fault::SHUTDOWN_DISABLED.as_bytes()))
        }
        // Past the admin gate (`[commands] lru_crawler`): every node's listing, one after
        // the other (`proxy/dump.rs`).
        req @ Request::Metadump { .. } => Box::pin(super::dump::fan_out(proxy, &req)).await,
        // The crawler's other subcommands tune a node's own background work.
        Request::LruCrawler { .. } => Response::Error,
        Request::MetaNoop => Response::Meta(ringcache_client::protocol::MetaResponse {
            status: MetaStatus::Mn,
            flags: Bytes::new(),
            value: None,
        }),
        Request::MetaDebug { key, base64 } => match Box::pin(router.debug(key, base64)).await {
            Ok(r) => r,
            Err(e) => server_error(&e),
        },
        Request::Meta(m) => return Box::pin(meta(proxy, m)).await,
        Request::Quit => return None,
    };
    (!noreply).then_some(reply)
}

/// Meta commands: quiet mode is applied here, after the cluster answered.
async fn meta(proxy: &Proxy, mut m: Box<MetaRequest>) -> Option<Response> {
    bump!(proxy.stats, cmd_meta);
    let quiet = m.flags.quiet;
    // The request a node gets is rendered from the typed flags, so clearing `quiet` removes
    // it however the client spelled it (`q`, or run together with another letter as `qb`).
    m.flags.quiet = false;
    let cmd = m.cmd;
    let r = match proxy.router().meta(m).await {
        Ok(r) => r,
        Err(e) => return Some(server_error(&e)),
    };
    if quiet {
        if let Response::Meta(mr) = &r {
            let nominal = match cmd {
                MetaCmd::Get => mr.status == MetaStatus::En,
                _ => mr.status == MetaStatus::Hd,
            };
            if nominal {
                return None;
            }
        }
    }
    Some(r)
}

/// The reply to a request the decoder refused. A failed set must not leave the previous value
/// readable, so its key is unlinked over the cluster first (as memcached unlinks it locally).
/// The key is held decoded: meta `md` sends a binary one base64 with `b`, never raw where it
/// could end the line.
pub(super) async fn refused(proxy: &Proxy, fault: Fault) -> Option<Response> {
    if let Some(key) = fault.unlink.clone() {
        let md = MetaRequest::new(MetaCmd::Delete, key, MetaFlags::default(), None);
        let _ = proxy.router().meta(Box::new(md)).await;
    }
    refusal(fault)
}

/// memcached's answer to a refused request; the proxy never forwards it.
fn refusal(fault: Fault) -> Option<Response> {
    if fault.noreply {
        return None;
    }
    let msg = fault.message;
    Some(if msg == Fault::ERROR {
        Response::Error
    } else if let Some(m) = msg.strip_prefix("CLIENT_ERROR ") {
        Response::ClientError(Bytes::from_static(m.as_bytes()))
    } else if let Some(m) = msg.strip_prefix("SERVER_ERROR ") {
        Response::ServerError(Bytes::from_static(m.as_bytes()))
    } else {
        Response::Other(Bytes::from_static(msg.as_bytes()))
    })
}
