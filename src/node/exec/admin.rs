//! Server commands: stats, flush_all, version, verbosity, cache_memlimit, slabs automove,
//! shutdown, lru_crawler.

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use ringcache_client::protocol::admin::{Detail, LruCrawlerCmd, StatsGroup};
use ringcache_client::protocol::reply::{self, stat, Seconds};
use ringcache_client::protocol::{Fault, Request};

use super::{unless_noreply, Flow};
use crate::bump;
use crate::node::{Node, VERSION};

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
            if s.curr_items > 0 {
                stat(out, "items:1:number", s.curr_items);
                stat(out, "items:1:age", 0);
                stat(out, "items:1:mem_requested", s.bytes);
                stat(out, "items:1:evicted", s.evictions);
                stat(out, "items:1:evicted_nonzero", s.evicted_nonzero);
                stat(out, "items:1:evicted_time", s.evicted_time);
                stat(out, "items:1:reclaimed", s.reclaimed);
                stat(out, "items:1:expired_unfetched", s.expired_unfetched);
                stat(out, "items:1:evicted_unfetched", s.evicted_unfetched);
                stat(out, "items:1:crawler_reclaimed", s.crawler_reclaimed);
            }
        }
        StatsGroup::Slabs => {
            let s = node.store.stats();
            if s.curr_items > 0 {
                stat(out, "1:chunk_size", node.config.max_item_size);
                stat(out, "1:used_chunks", s.curr_items);
                stat(out, "1:mem_requested", s.bytes);
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

/// CPU time of this process (user, system), as memcached prints it (`seconds.microseconds`).
fn rusage() -> (Seconds, Seconds) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    let f = |t: libc::timeval| Seconds {
        secs: if ok { t.tv_sec.max(0) as u64 } else { 0 },
        micros: if ok { t.tv_usec.max(0) as u32 } else { 0 },
    };
    (f(ru.ru_utime), f(ru.ru_stime))
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
    stat(out, "max_connections", node.config.max_connections);
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
    stat(out, "threads", node.config.threads);
    stat(out, "bytes", store.bytes);
    stat(out, "curr_items", store.curr_items);
    stat(out, "total_items", store.total_items);
    stat(out, "expired_unfetched", store.expired_unfetched);
    stat(out, "evicted_unfetched", store.evicted_unfetched);
    stat(out, "evictions", store.evictions);
    stat(out, "reclaimed", store.reclaimed);
}

fn settings_stats(node: &Node, out: &mut BytesMut) {
    let c = &node.config;
    let store = node.store.stats();
    let (inter, port) = c
        .listen
        .rsplit_once(':')
        .unwrap_or((c.listen.as_str(), "11211"));
    stat(out, "maxbytes", store.limit_maxbytes);
    stat(out, "maxconns", c.max_connections);
    stat(out, "tcpport", port);
    stat(out, "udpport", 0);
    stat(out, "inter", inter);
    stat(out, "verbosity", node.verbosity());
    stat(out, "evictions", "on");
    stat(out, "cas_enabled", "yes");
    stat(out, "num_threads", c.threads);
    stat(out, "item_size_max", c.max_item_size);
    stat(
        out,
        "slab_automove",
        node.slab_automove.load(Ordering::Relaxed),
    );
    stat(out, "lru_crawler", "yes");
    stat(
        out,
        "shutdown_command",
        if c.enable_shutdown { "yes" } else { "no" },
    );
    stat(out, "idle_timeout", c.idle_timeout);
    stat(out, "drain_timeout", c.drain_timeout);
    stat(out, "drain_quiet", c.drain_quiet);
    stat(out, "flush_enabled", "yes");
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
