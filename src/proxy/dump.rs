//! `stats cachedump` and `lru_crawler metadump` through the proxy: asked of every node, the
//! nodes' lines one after the other under one `END` (docs/operations.md, "Proxy stats"). They
//! list keys, so the admin gate (`[commands] lru_crawler`, admins only by default) stands in
//! front of both, as memcached's `-X` does.
//!
//! Each node's listing is read whole (up to `ReplyLimits::LISTING` bytes per node) on a
//! connection of its own (`Router::dump_each_node`). A key held by several replicas is listed
//! once per replica, as `curr_items` counts it once per replica.

use bytes::Bytes;
use ringcache_client::protocol::{Request, Response};

use super::Proxy;

/// The nodes' dumps of `req`, merged. A node that cannot answer is left out (and logged);
/// when no node listed anything, the first node's refusal (`BADCLASS …`, `BUSY …`), or
/// `SERVER_ERROR backend unavailable` when none answered, so a bad request gets the line a
/// node would give.
pub async fn fan_out(proxy: &Proxy, req: &Request) -> Response {
    let mut lines = Vec::new();
    let mut first_other = None;
    for (node, r) in proxy.router().dump_each_node(req).await {
        match r {
            Ok(Response::Dump(l)) => lines.extend(l),
            // A node with nothing to list answers a bare `END`.
            Ok(Response::Values(v)) if v.is_empty() => {}
            Ok(other) => {
                first_other.get_or_insert(other);
            }
            Err(e) => {
                tracing::warn!("{node}: dump failed, its keys are left out: {e}");
                // The proxy's line for a node it could not reach (`route.rs`).
                first_other.get_or_insert_with(|| {
                    Response::ServerError(Bytes::from_static(b"backend unavailable"))
                });
            }
        }
    }
    match first_other {
        Some(r) if lines.is_empty() => r,
        _ => Response::Dump(lines),
    }
}
