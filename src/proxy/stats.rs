//! The proxy's `stats` reply: its own counters under memcached's names, so memcached_exporter and
//! dashboards built for memcached read a proxy too.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use ringcache_client::protocol::{reply, Request, Response};

use super::Proxy;
use crate::server::VERSION;

/// Item figures summed over the nodes (each replica counts: this is memory and items held).
const SUMMED: &[&str] = &[
    "curr_items",
    "total_items",
    "bytes",
    "limit_maxbytes",
    "evictions",
    "reclaimed",
    "expired_unfetched",
    "evicted_unfetched",
];

/// `stats [group]` as answered by the proxy: its own counters, plus the nodes' item figures
/// summed for plain `stats`.
pub async fn reply(proxy: &Proxy, group: Option<&[u8]>) -> Response {
    if group == Some(&b"reset"[..]) {
        // memcached's stats_reset for the proxy's own counters, and the nodes' for the item
        // figures it sums (total_items, evictions, …), so everything a client reads here
        // restarts together (docs/operations.md, "Proxy stats").
        proxy.stats.reset();
        let reset = Request::Stats {
            group: Some(Bytes::from_static(b"reset")),
        };
        for (node, r) in proxy.router().each_node(reset).await {
            if let Err(e) = r {
                tracing::warn!("stats reset: node {node}: {e}");
            }
        }
        return Response::Other(Bytes::from_static(reply::RESET.as_bytes()));
    }
    if group.is_some_and(|g| g.split(|&b| b == b' ').next() == Some(&b"cachedump"[..])) {
        let req = Request::Stats {
            group: group.map(Bytes::copy_from_slice),
        };
        return super::dump::fan_out(proxy, &req).await;
    }
    let mut resp = local(proxy, group);
    if group.is_none() {
        if let Response::Stats(out) = &mut resp {
            let mut sums = vec![0u64; SUMMED.len()];
            for (_, r) in proxy.router().stats().await {
                let Ok(stats) = r else { continue };
                for (k, v) in stats {
                    if let Some(i) = SUMMED.iter().position(|s| *s == k) {
                        sums[i] += v.parse::<u64>().unwrap_or(0);
                    }
                }
            }
            for (k, v) in SUMMED.iter().zip(sums) {
                out.push((Bytes::from_static(k.as_bytes()), Bytes::from(v.to_string())));
            }
        }
    }
    resp
}

fn local(proxy: &Proxy, group: Option<&[u8]>) -> Response {
    match group {
        None => {}
        Some(b"settings") => return settings(proxy),
        Some(b"items" | b"slabs" | b"sizes" | b"conns") => return Response::Values(Vec::new()),
        Some(_) => return Response::Error,
    }
    let st = &proxy.stats;
    let mut out: Vec<(Bytes, Bytes)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((Bytes::from(k.to_string()), Bytes::from(v)));
    put("pid", std::process::id().to_string());
    put("uptime", proxy.started.elapsed().as_secs().to_string());
    put(
        "time",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string(),
    );
    put("version", VERSION.to_string());
    put("pointer_size", usize::BITS.to_string());
    put(
        "max_connections",
        proxy.config().max_connections.to_string(),
    );
    let c = &st.conns;
    put(
        "curr_connections",
        c.curr_connections.load(Ordering::Relaxed).to_string(),
    );
    put(
        "total_connections",
        c.total_connections.load(Ordering::Relaxed).to_string(),
    );
    put(
        "rejected_connections",
        c.rejected_connections.load(Ordering::Relaxed).to_string(),
    );
    for (name, v) in st.counters.snapshot() {
        put(name, v.to_string());
    }
    put(
        "bytes_read",
        st.bytes_read.load(Ordering::Relaxed).to_string(),
    );
    put(
        "bytes_written",
        st.bytes_written.load(Ordering::Relaxed).to_string(),
    );
    let topo = proxy.router().topology();
    put("backends", topo.nodes.len().to_string());
    put(
        "backends_down",
        topo.nodes
            .iter()
            .filter(|n| !n.health.is_usable())
            .count()
            .to_string(),
    );
    put(
        "multiget_partial_misses",
        proxy.multiget_failures.get().to_string(),
    );
    put("config_reloads", proxy.reloads.get().to_string());
    Response::Stats(out)
}

fn settings(proxy: &Proxy) -> Response {
    let cfg = proxy.config();
    let items = [
        ("maxconns", cfg.max_connections.to_string()),
        ("item_size_max", cfg.max_item_size.to_string()),
        ("replicas", cfg.ring.replicas.to_string()),
        ("vnodes", cfg.ring.vnodes.to_string()),
        ("request_timeout_ms", cfg.request_timeout_ms.to_string()),
        ("failure_limit", cfg.failure_limit.to_string()),
    ];
    Response::Stats(
        items
            .into_iter()
            .map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from(v)))
            .collect(),
    )
}
