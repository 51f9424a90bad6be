//! Server commands: stats, flush_all, version, verbosity, cache_memlimit, slabs automove,
//! shutdown, lru_crawler.

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use ringcache_client::protocol::admin::{Detail, LruCrawlerCmd, StatsGroup};
use ringcache_client::protocol::reply::{self, stat};
use ringcache_client::protocol::{Fault, Request};

use super::{unless_noreply, Flow};
use crate::bump;
use crate::node::{Node, VERSION};
use crate::server::gate::Access;
use crate::server::process_stats::{rusage, NO_SUCH_MECHANISM};
use crate::server::security::Refresh;

/// Executes the server commands not handled in `classic`/`meta`.
pub fn execute(node: &Node, req: Request, out: &mut BytesMut) -> Flow {
    match req {
        Request::Version => reply::version(out, VERSION.as_bytes()),
        Request::Verbosity { level, noreply } => {
            node.verbosity.store(level.min(2), Ordering::Relaxed);
            unless_noreply(out, noreply, reply::ok);
        }
        Request::FlushAll { delay, noreply } => {
            bump!(node.stats, cmd_flush);
            node.store.flush_all(delay);
            unless_noreply(out, noreply, reply::ok);
        }
        Request::CacheMemlimit { megabytes, noreply } => {
            let write: fn(&mut BytesMut) = if megabytes < 8 {
                |out| reply::message(out, Fault::MEMLIMIT_TOO_SMALL)
            } else if megabytes > 1_000_000_000 {
                |out| reply::message(out, Fault::MEMLIMIT_ADJUST_FAILED)
            } else {
                node.store
                    .set_memory_limit(u64::from(megabytes) * 1024 * 1024);
                reply::ok
            };
            unless_noreply(out, noreply, write);
        }
        Request::SlabsAutomove { level, noreply } => {
            node.slab_automove.store(level, Ordering::Relaxed);
            unless_noreply(out, noreply, reply::ok);
        }
        Request::Shutdown { arg } => {
            if !node.config.enable_shutdown {
                reply::message(out, Fault::SHUTDOWN_DISABLED);
            } else if arg.is_none() || arg.as_deref() == Some(b"graceful") {
                tracing::info!("shutdown command received");
                node.shutdown.cancel();
                return Flow::Close;
            } else {
                reply::message(out, Fault::BAD_SHUTDOWN_MODE);
            }
        }
        Request::Stats { group } => stats(node, group.as_deref(), out),
        Request::RefreshCerts { noreply } => match node.security.refresh_certs() {
            Refresh::Done => unless_noreply(out, noreply, reply::ok),
            Refresh::NoTls => reply::message(out, Fault::TLS_NOT_ENABLED),
            Refresh::Failed(why) => reply::refresh_certs_failed(out, &why),
        },
        Request::Metadump { arg } => {
            // One slab class here (moka has none), so "all" and "1" are the valid selections.
            if &arg[..] == b"all" || &arg[..] == b"1" || &arg[..] == b"hash" {
                return Flow::Metadump;
            }
            reply::message(out, Fault::BAD_CLASS);
        }
        Request::LruCrawler { args } => lru_crawler(node, &args, out),
        _ => reply::error(out),
    }
    Flow::Continue
}

/// The `lru_crawler` sub-commands other than metadump: `crawl` starts the store's sweep of dead
/// items; the tuning knobs are accepted (the sweep paces itself).
fn lru_crawler(node: &Node, args: &[Bytes], out: &mut BytesMut) {
    match LruCrawlerCmd::parse(args) {
        Ok(LruCrawlerCmd::Crawl) => {
            node.store.crawl();
            reply::ok(out)
        }
        Ok(LruCrawlerCmd::Tune | LruCrawlerCmd::Enable | LruCrawlerCmd::Disable) => reply::ok(out),
        Err(message) => reply::message(out, message),
    }
}

/// `stats [group]`.
fn stats(node: &Node, group: Option<&[u8]>, out: &mut BytesMut) {
    match StatsGroup::parse(group) {
        StatsGroup::General => general_stats(node, out),
        StatsGroup::Settings => settings_stats(node, out),
        StatsGroup::Items => {
            let s = node.store.stats();
            // memcached's names, in its order; one class holds every item.
            // The segmented LRUs memcached's fields name do not exist: every item counts as
            // cold, nothing moves between them.
            if s.curr_items > 0 {
                let c = &node.stats.counters;
                let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                stat(out, "items:1:number", s.curr_items);
                stat(out, "items:1:number_hot", 0);
                stat(out, "items:1:number_warm", 0);
                stat(out, "items:1:number_cold", s.curr_items);
                stat(out, "items:1:age_hot", 0);
                stat(out, "items:1:age_warm", 0);
                stat(out, "items:1:age", 0);
                stat(out, "items:1:mem_requested", s.bytes);
                stat(out, "items:1:evicted", s.evictions);
                stat(out, "items:1:evicted_nonzero", s.evicted_nonzero);
                stat(out, "items:1:evicted_time", s.evicted_time);
                stat(out, "items:1:outofmemory", 0);
                stat(out, "items:1:tailrepairs", 0);
                stat(out, "items:1:reclaimed", s.reclaimed);
                stat(out, "items:1:expired_unfetched", s.expired_unfetched);
                stat(out, "items:1:evicted_unfetched", s.evicted_unfetched);
                stat(out, "items:1:evicted_active", 0);
                stat(out, "items:1:crawler_reclaimed", s.crawler_reclaimed);
                stat(out, "items:1:crawler_items_checked", 0);
                stat(out, "items:1:lrutail_reflocked", 0);
                stat(out, "items:1:moves_to_cold", 0);
                stat(out, "items:1:moves_to_warm", 0);
                stat(out, "items:1:moves_within_lru", 0);
                stat(out, "items:1:direct_reclaims", 0);
                stat(out, "items:1:hits_to_hot", 0);
                stat(out, "items:1:hits_to_warm", 0);
                stat(out, "items:1:hits_to_cold", n(&c.get_hits));
                stat(out, "items:1:hits_to_temp", 0);
                stat(out, "items:1:store_too_large", n(&c.store_too_large));
                stat(out, "items:1:store_no_memory", 0);
            }
        }
        StatsGroup::Slabs => {
            let s = node.store.stats();
            // One class of one page holding every item, with the node's command counts.
            if s.curr_items > 0 {
                let c = &node.stats.counters;
                let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                stat(out, "1:chunk_size", node.config.max_item_size);
                stat(out, "1:chunks_per_page", s.curr_items);
                stat(out, "1:total_pages", 1);
                stat(out, "1:total_chunks", s.curr_items);
                stat(out, "1:used_chunks", s.curr_items);
                stat(out, "1:free_chunks", 0);
                stat(out, "1:free_chunks_end", 0);
                stat(out, "1:mem_requested", s.bytes);
                stat(out, "1:get_hits", n(&c.get_hits));
                stat(out, "1:cmd_set", n(&c.cmd_set));
                stat(out, "1:delete_hits", n(&c.delete_hits));
                stat(out, "1:incr_hits", n(&c.incr_hits));
                stat(out, "1:decr_hits", n(&c.decr_hits));
                stat(out, "1:cas_hits", n(&c.cas_hits));
                stat(out, "1:cas_badval", n(&c.cas_badval));
                stat(out, "1:touch_hits", n(&c.touch_hits));
            }
            stat(out, "active_slabs", u64::from(s.curr_items > 0));
            stat(out, "total_malloced", s.bytes);
        }
        StatsGroup::Conns => {
            stat(
                out,
                "curr_connections",
                node.stats.conns.curr_connections.load(Ordering::Relaxed),
            );
        }
        StatsGroup::Sizes => {}
        StatsGroup::Reset => {
            node.prefixes.clear();
            node.stats.reset();
            node.store.reset_stats();
            return reply::reset(out);
        }
        StatsGroup::Cachedump { class, limit } => return node.store.cachedump(class, limit, out),
        StatsGroup::Detail(switch @ (Detail::On | Detail::Off)) => {
            node.prefixes.enable(switch == Detail::On);
            return reply::ok(out);
        }
        StatsGroup::Detail(Detail::Dump) => return node.prefixes.dump(out),
        StatsGroup::Refused(message) => return reply::message(out, message),
    }
    reply::end(out);
}

fn general_stats(node: &Node, out: &mut BytesMut) {
    let st = &node.stats;
    let store = node.store.stats();
    let (user, system) = rusage();
    stat(out, "pid", std::process::id());
    stat(out, "uptime", node.uptime());
    stat(out, "time", node.clock.now());
    // A ringcache extension, after memcached's fields (docs/protocol.md, "stats").
    stat(out, "instance_id", node.instance);
    stat(out, "version", VERSION);
    stat(out, "libevent", "tokio");
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", user);
    stat(out, "rusage_system", system);
    stat(out, "max_connections", node.config.server.max_connections);
    let conns = &st.conns;
    stat(
        out,
        "curr_connections",
        conns.curr_connections.load(Ordering::Relaxed),
    );
    stat(
        out,
        "total_connections",
        conns.total_connections.load(Ordering::Relaxed),
    );
    stat(
        out,
        "rejected_connections",
        conns.rejected_connections.load(Ordering::Relaxed),
    );
    for (name, v) in st.counters.snapshot() {
        stat(out, name, v);
    }
    stat(out, "bytes_read", st.bytes_read.load(Ordering::Relaxed));
    stat(
        out,
        "bytes_written",
        st.bytes_written.load(Ordering::Relaxed),
    );
    stat(out, "limit_maxbytes", store.limit_maxbytes);
    stat(out, "accepting_conns", 1);
    // ringcache extension (docs/protocol.md): 1 while the node drains before it exits, so the
    // routers take it out of their rings and move its keys (src/node/drain.rs).
    let draining = node.drain.active();
    if draining {
        node.drain.reported();
    }
    stat(out, "draining", u8::from(draining));
    // ringcache extension (docs/protocol.md): the node's age in milliseconds from a monotonic
    // clock, which unlike `uptime` never reads high; routers count a node toward a lock's
    // majority only when it is older than any lease (client/src/lock.rs).
    stat(out, "uptime_ms", node.uptime_ms());
    // ringcache extension (docs/protocol.md): the node's zone, when it was given one; routers
    // that discover the node place keys by it (docs/placement.md, "Zones").
    if let Some(zone) = node.config.zone() {
        stat(out, "zone", zone);
    }
    stat(out, "threads", node.config.threads);
    stat(out, "bytes", store.bytes);
    stat(out, "curr_items", store.curr_items);
    stat(out, "total_items", store.total_items);
    stat(out, "expired_unfetched", store.expired_unfetched);
    stat(out, "evicted_unfetched", store.evicted_unfetched);
    stat(out, "evictions", store.evictions);
    stat(out, "reclaimed", store.reclaimed);
    stat(out, "crawler_reclaimed", store.crawler_reclaimed);
    // The bytes items take: what memcached's slab allocator has malloced for them.
    stat(out, "total_malloced", store.bytes);
    for name in NO_SUCH_MECHANISM {
        stat(out, name, 0);
    }
}

/// `stats settings` under memcached 1.6's names and in its order (memcached_exporter and
/// tools read them by name), each with what the node does: the knobs of memcached's slab
/// allocator and LRU threads report memcached's defaults, which the flags that would change
/// them leave as they are (docs/operations.md, "memcached's command line"). ringcache's own
/// settings follow.
fn settings_stats(node: &Node, out: &mut BytesMut) {
    let c = &node.config;
    let store = node.store.stats();
    let addrs = c.listen_addrs();
    let split = |a: &str| -> (String, String) {
        let (h, p) = a.rsplit_once(':').unwrap_or((a, "11211"));
        (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.to_string(),
        )
    };
    let port = addrs.first().map_or_else(String::new, |a| split(&a.addr).1);
    let inter = addrs
        .iter()
        .map(|a| split(&a.addr).0)
        .collect::<Vec<_>>()
        .join(",");
    let yes = |on: bool| if on { "yes" } else { "no" };
    let allowed = |a: Option<Access>| a != Some(Access::Deny);
    let sec = &c.security;
    let path = |p: &Option<std::path::PathBuf>, none: &'static str| {
        p.as_ref()
            .map_or_else(|| none.to_string(), |p| p.display().to_string())
    };
    stat(out, "maxbytes", store.limit_maxbytes);
    stat(out, "maxconns", c.server.max_connections);
    stat(out, "tcpport", port.as_str());
    stat(out, "udpport", 0);
    stat(out, "inter", inter.as_str());
    stat(out, "verbosity", node.verbosity());
    stat(out, "oldest", 0);
    stat(out, "evictions", "on");
    stat(out, "domain_socket", "NULL");
    stat(out, "umask", 700);
    stat(out, "shutdown_command", yes(c.enable_shutdown));
    stat(out, "growth_factor", "1.25");
    stat(out, "chunk_size", 48);
    stat(out, "num_threads", c.threads);
    stat(out, "num_threads_per_udp", c.threads);
    stat(out, "stat_key_prefix", ":");
    stat(out, "detail_enabled", yes(node.prefixes.enabled()));
    stat(out, "reqs_per_event", 20);
    stat(out, "cas_enabled", "yes");
    stat(out, "tcp_backlog", 1024);
    stat(out, "binding_protocol", "ascii");
    stat(out, "auth_enabled_sasl", "no");
    stat(out, "auth_enabled_ascii", yes(sec.auth_file.is_some()));
    stat(out, "item_size_max", c.max_item_size);
    stat(out, "maxconns_fast", "yes");
    stat(out, "hashpower_init", 0);
    stat(out, "slab_reassign", "yes");
    stat(
        out,
        "slab_automove",
        node.slab_automove.load(Ordering::Relaxed),
    );
    stat(out, "slab_automove_ratio", "0.80");
    stat(out, "slab_automove_window", 30);
    stat(out, "slab_chunk_max", 524288);
    stat(out, "lru_crawler", "yes");
    stat(out, "lru_crawler_sleep", 100);
    stat(out, "lru_crawler_tocrawl", 0);
    stat(out, "tail_repair_time", 0);
    stat(out, "flush_enabled", yes(allowed(sec.commands.flush_all)));
    stat(out, "dump_enabled", yes(allowed(sec.commands.lru_crawler)));
    stat(out, "hash_algorithm", "xxh3");
    stat(out, "lru_maintainer_thread", "no");
    stat(out, "lru_segmented", "no");
    stat(out, "hot_lru_pct", 20);
    stat(out, "warm_lru_pct", 40);
    stat(out, "hot_max_factor", "0.20");
    stat(out, "warm_max_factor", "2.00");
    stat(out, "temp_lru", "no");
    stat(out, "temporary_ttl", 61);
    stat(out, "idle_timeout", c.server.idle_timeout);
    stat(out, "watcher_logbuf_size", 262144);
    stat(out, "worker_logbuf_size", 65536);
    stat(out, "read_buf_mem_limit", 0);
    stat(out, "track_sizes", "no");
    stat(out, "inline_ascii_response", "no");
    stat(out, "slab_automove_freeratio", "0.010");
    stat(out, "ssl_enabled", yes(sec.ssl_chain_cert.is_some()));
    stat(
        out,
        "ssl_chain_cert",
        path(&sec.ssl_chain_cert, "(null)").as_str(),
    );
    stat(out, "ssl_key", path(&sec.ssl_key, "(null)").as_str());
    stat(out, "ssl_verify_mode", sec.ssl_verify_mode);
    stat(out, "ssl_keyformat", 1);
    stat(out, "ssl_ciphers", "NULL");
    stat(out, "ssl_ca_cert", path(&sec.ssl_ca_cert, "NULL").as_str());
    stat(out, "ssl_wbuf_size", 16384);
    stat(out, "ssl_session_cache", "yes");
    stat(out, "ssl_kernel_tls", "no");
    stat(out, "ssl_min_version", "tlsv1.2");
    stat(out, "num_napi_ids", "(null)");
    stat(out, "memory_file", "(null)");
    // ringcache's own.
    stat(out, "drain_timeout", c.drain_timeout);
    stat(out, "drain_quiet", c.drain_quiet);
    stat(out, "meta_response_old", "no");
}

/// The reply to `lru_crawler metadump`, in chunks: a line for every live item, then `END`.
///
/// A blocking thread walks the store and hands over 64 KiB chunks through a small bounded
/// channel, so however many items there are, only a few chunks are in memory; a connection
/// that writes slowly slows the walk, and one that goes away (drops this) stops it. The
/// connection writes the chunks; nothing here touches a socket.
pub struct MetadumpChunks {
    rx: tokio::sync::mpsc::Receiver<BytesMut>,
    walk: Option<tokio::task::JoinHandle<()>>,
}

impl MetadumpChunks {
    /// Starts the walk.
    pub fn start(node: &std::sync::Arc<Node>) -> MetadumpChunks {
        let (tx, rx) = tokio::sync::mpsc::channel::<BytesMut>(4);
        let walker = node.clone();
        let walk = tokio::task::spawn_blocking(move || {
            let mut chunk = BytesMut::with_capacity(64 * 1024);
            walker.store.metadump(|line: &[u8]| {
                chunk.put_slice(line);
                if chunk.len() >= 60 * 1024 {
                    let full = std::mem::replace(&mut chunk, BytesMut::with_capacity(64 * 1024));
                    // The reader went away: stop walking.
                    return tx.blocking_send(full).is_ok();
                }
                true
            });
            reply::end(&mut chunk);
            let _ = tx.blocking_send(chunk);
        });
        MetadumpChunks {
            rx,
            walk: Some(walk),
        }
    }

    /// The next chunk; `None` once the one ending in `END` was handed out.
    pub async fn next(&mut self) -> Option<BytesMut> {
        let chunk = self.rx.recv().await;
        if chunk.is_none() {
            if let Some(walk) = self.walk.take() {
                let _ = walk.await;
            }
        }
        chunk
    }
}
