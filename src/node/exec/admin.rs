//! Server commands: stats, flush_all, version, verbosity, cache_memlimit, shutdown, lru_crawler.

use std::sync::atomic::Ordering;

use bytes::{BufMut, Bytes, BytesMut};
use ringcache_client::protocol::number::safe_strtoul;
use ringcache_client::protocol::response::encode_stat;
use ringcache_client::protocol::Request;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{line, reply, Flow};
use crate::bump;
use crate::node::{Node, VERSION};

/// Executes the server commands not handled in `classic`/`meta`.
pub fn execute(node: &Node, req: Request, out: &mut BytesMut) -> Flow {
    match req {
        Request::Version => {
            out.put_slice(b"VERSION ");
            line(out, VERSION.as_bytes());
        }
        Request::Verbosity { level, noreply } => {
            node.verbosity.store(level.min(2), Ordering::Relaxed);
            reply(out, noreply, b"OK");
        }
        Request::FlushAll { delay, noreply } => {
            bump!(node.stats, cmd_flush);
            node.store.flush_all(delay);
            reply(out, noreply, b"OK");
        }
        Request::CacheMemlimit { megabytes, noreply } => {
            let text: &[u8] = if megabytes < 8 {
                b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
            } else if megabytes > 1_000_000_000 {
                b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
            } else {
                node.store
                    .set_memory_limit(u64::from(megabytes) * 1024 * 1024);
                b"OK"
            };
            reply(out, noreply, text);
        }
        Request::Shutdown { arg } => {
            if !node.config.enable_shutdown {
                line(out, b"ERROR: shutdown not enabled");
            } else if arg.is_none() || arg.as_deref() == Some(b"graceful") {
                tracing::info!("shutdown command received");
                node.shutdown.cancel();
                return Flow::Close;
            } else {
                line(out, b"CLIENT_ERROR invalid shutdown mode");
            }
        }
        Request::Stats { group } => stats(node, group.as_deref(), out),
        Request::Metadump { arg } => {
            // One slab class here (moka has none), so "all" and "1" are the valid selections.
            if &arg[..] == b"all" || &arg[..] == b"1" || &arg[..] == b"hash" {
                return Flow::Metadump;
            }
            line(out, b"BADCLASS invalid class id");
        }
        Request::LruCrawler { args } => lru_crawler(node, &args, out),
        _ => line(out, b"ERROR"),
    }
    Flow::Continue
}

/// The `lru_crawler` sub-commands other than metadump: `crawl` starts the store's sweep of dead
/// items; the tuning knobs are accepted (the sweep paces itself).
fn lru_crawler(node: &Node, args: &[Bytes], out: &mut BytesMut) {
    let first = args.first().map(|a| &a[..]);
    match (first, args.len()) {
        (Some(b"crawl"), 2) => {
            node.store.crawl();
            line(out, b"OK")
        }
        (Some(b"tocrawl" | b"sleep"), 2) => {
            if args[1].iter().all(u8::is_ascii_digit) && !args[1].is_empty() {
                line(out, b"OK")
            } else {
                line(out, b"CLIENT_ERROR bad command line format")
            }
        }
        (Some(b"enable" | b"disable"), 1) => line(out, b"OK"),
        _ => line(out, b"ERROR"),
    }
}

fn stat(out: &mut BytesMut, name: &str, value: impl std::fmt::Display) {
    encode_stat(out, name.as_bytes(), value.to_string().as_bytes());
}

/// `stats [group]`.
fn stats(node: &Node, group: Option<&[u8]>, out: &mut BytesMut) {
    match group {
        None => general_stats(node, out),
        Some(b"settings") => settings_stats(node, out),
        Some(b"items") => {
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
        Some(b"slabs") => {
            let s = node.store.stats();
            if s.curr_items > 0 {
                stat(out, "1:chunk_size", node.config.max_item_size);
                stat(out, "1:used_chunks", s.curr_items);
                stat(out, "1:mem_requested", s.bytes);
            }
            stat(out, "active_slabs", u64::from(s.curr_items > 0));
            stat(out, "total_malloced", s.bytes);
        }
        Some(b"conns") => {
            stat(
                out,
                "curr_connections",
                node.stats.conns.curr_connections.load(Ordering::Relaxed),
            );
        }
        Some(b"sizes") => {}
        Some(b"reset") => {
            line(out, b"RESET");
            return;
        }
        Some(g) if g.split(|&b| b == b' ').next() == Some(b"cachedump") => {
            cachedump(node, g, out);
            return;
        }
        Some(g) if g.starts_with(b"detail") => {
            line(out, b"CLIENT_ERROR usage: stats detail on|off|dump");
            return;
        }
        Some(_) => {
            line(out, b"ERROR");
            return;
        }
    }
    line(out, b"END");
}

/// `stats cachedump <class> <limit>`, with memcached's replies to bad arguments.
fn cachedump(node: &Node, group: &[u8], out: &mut BytesMut) {
    let args: Vec<&[u8]> = group
        .split(|&b| b == b' ')
        .filter(|t| !t.is_empty())
        .collect();
    if args.len() < 3 {
        return line(out, b"CLIENT_ERROR bad command line");
    }
    let (Some(class), Some(limit)) = (safe_strtoul(args[1]), safe_strtoul(args[2])) else {
        return line(out, b"CLIENT_ERROR bad command line format");
    };
    if class >= 64 {
        return line(out, b"CLIENT_ERROR Illegal slab id");
    }
    node.store.cachedump(class, limit, out);
}

/// CPU time of this process as memcached prints it (`seconds.microseconds`).
fn rusage() -> (String, String) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    if !ok {
        return ("0.000000".into(), "0.000000".into());
    }
    let f = |t: libc::timeval| format!("{}.{:06}", t.tv_sec, t.tv_usec);
    (f(ru.ru_utime), f(ru.ru_stime))
}

fn general_stats(node: &Node, out: &mut BytesMut) {
    let st = &node.stats;
    let store = node.store.stats();
    let (user, system) = rusage();
    stat(out, "pid", std::process::id());
    stat(out, "uptime", node.uptime());
    stat(out, "time", node.clock.now());
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
    stat(out, "lru_crawler", "yes");
    stat(
        out,
        "shutdown_command",
        if c.enable_shutdown { "yes" } else { "no" },
    );
    stat(out, "idle_timeout", c.idle_timeout);
    stat(out, "flush_enabled", "yes");
    stat(out, "meta_response_old", "no");
}

/// Streams `lru_crawler metadump` lines for every live item, then `END`, without holding more
/// than a few chunks in memory: a blocking thread walks the store and hands over 64 KiB chunks
/// through a small bounded channel, so a slow reader slows the walk instead of growing a buffer.
pub async fn stream_metadump(
    node: &std::sync::Arc<Node>,
    stream: &mut (impl AsyncWrite + Unpin),
) -> std::io::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<BytesMut>(4);
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
        if !chunk.is_empty() {
            let _ = tx.blocking_send(chunk);
        }
    });
    let mut result = Ok(());
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = stream.write_all(&chunk).await {
            result = Err(e);
            break;
        }
    }
    drop(rx);
    let _ = walk.await;
    result?;
    stream.write_all(b"END\r\n").await
}
