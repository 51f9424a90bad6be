//! The proxy's `stats` reply: its own counters under memcached's names, so memcached_exporter and
//! dashboards built for memcached read a proxy too.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use ringcache_client::protocol::{reply, Request, Response};

use super::Proxy;
use crate::server::process_stats::{rusage, NO_SUCH_MECHANISM};
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
    "crawler_reclaimed",
    "total_malloced",
];

/// Fields of `stats items`/`stats slabs` that are an age, a time or a size, not a count: the
/// nodes' largest is reported, where every other field is summed.
const NOT_SUMMED: &[&str] = &[
    "age",
    "age_hot",
    "age_warm",
    "evicted_time",
    "chunk_size",
    "chunks_per_page",
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
    if let Some(g @ (b"items" | b"slabs")) = group {
        return per_class(proxy, g).await;
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

/// `stats items` or `stats slabs` of every node, merged class by class: each field summed
/// (every replica counts, as in `stats`) but for ages, times and sizes ([`NOT_SUMMED`]), where
/// the largest is given. A value that is not a number keeps the first node's.
async fn per_class(proxy: &Proxy, group: &[u8]) -> Response {
    let req = Request::Stats {
        group: Some(Bytes::copy_from_slice(group)),
    };
    let mut merged: Vec<(Bytes, Bytes)> = Vec::new();
    for (node, r) in proxy.router().each_node(req).await {
        let stats = match r {
            Ok(Response::Stats(s)) => s,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("stats: node {node}: {e}");
                continue;
            }
        };
        for (k, v) in stats {
            let Some(slot) = merged.iter_mut().find(|(m, _)| *m == k) else {
                merged.push((k, v));
                continue;
            };
            let field = k.rsplit(|&b| b == b':').next().unwrap_or(&k[..]);
            let parse = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
            if let (Some(a), Some(b)) = (parse(&slot.1), parse(&v)) {
                let keep_max = NOT_SUMMED.iter().any(|n| n.as_bytes() == field);
                let n = if keep_max {
                    a.max(b)
                } else {
                    a.saturating_add(b)
                };
                slot.1 = Bytes::from(n.to_string());
            }
        }
    }
    Response::Stats(merged)
}

fn local(proxy: &Proxy, group: Option<&[u8]>) -> Response {
    match group {
        None => {}
        Some(b"settings") => return settings(proxy),
        Some(b"sizes" | b"conns") => return Response::Values(Vec::new()),
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
        proxy.config().server.max_connections.to_string(),
    );
    let c = &st.conns;
    put("curr_connections", relaxed(&c.curr_connections));
    put("total_connections", relaxed(&c.total_connections));
    put("rejected_connections", relaxed(&c.rejected_connections));
    for (name, v) in st.counters.snapshot() {
        put(name, v.to_string());
    }
    put("bytes_read", relaxed(&st.bytes_read));
    put("bytes_written", relaxed(&st.bytes_written));
    let (user, system) = rusage();
    put(
        "rusage_user",
        format!("{}.{:06}", user.secs, user.micros.min(999_999)),
    );
    put(
        "rusage_system",
        format!("{}.{:06}", system.secs, system.micros.min(999_999)),
    );
    put("accepting_conns", "1".to_string());
    for name in NO_SUCH_MECHANISM {
        put(name, "0".to_string());
    }
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
        ("maxconns", cfg.server.max_connections.to_string()),
        ("item_size_max", cfg.max_item_size.to_string()),
        ("replicas", cfg.ring.replicas.to_string()),
        ("vnodes", cfg.ring.vnodes.to_string()),
        ("request_timeout_ms", cfg.request_timeout_ms.to_string()),
        ("failure_limit", cfg.failure_limit.to_string()),
        (
            "conditional_failover_after_ms",
            cfg.conditional_failover_after_ms
                .map_or("never".to_string(), |ms| ms.to_string()),
        ),
        // The nodes' crawler, as ringcache nodes report it: `lru_crawler metadump` reaches
        // them through the proxy.
        ("lru_crawler", "yes".to_string()),
        ("lru_crawler_sleep", "100".to_string()),
        ("lru_crawler_tocrawl", "0".to_string()),
        ("lru_maintainer_thread", "no".to_string()),
        ("hot_lru_pct", "20".to_string()),
        ("warm_lru_pct", "40".to_string()),
        ("hot_max_factor", "0.20".to_string()),
        ("warm_max_factor", "2.00".to_string()),
    ];
    Response::Stats(
        items
            .into_iter()
            .map(|(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from(v)))
            .collect(),
    )
}

/// A counter's value for a stats line (a snapshot: `Relaxed`, like memcached's own).
fn relaxed(counter: &AtomicU64) -> String {
    counter.load(Ordering::Relaxed).to_string()
}
