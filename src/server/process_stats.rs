//! What `stats` reports the same way on a node and on the proxy without a counter behind it:
//! the process's CPU time, and memcached's counters of mechanisms neither server has. Both are
//! there so memcached_exporter exports every series it knows for memcached
//! (docs/operations.md, "memcached_exporter").

use ringcache_client::protocol::reply::Seconds;

/// memcached's counters of mechanisms ringcache does not have (an event loop that yields, a
/// listener disabled at the connection limit, segmented LRUs and their maintainer, slab page
/// allocation, an LRU crawler started by runs): never anything to count, so 0.
pub const NO_SUCH_MECHANISM: [&str; 9] = [
    "conn_yields",
    "listen_disabled_num",
    "store_no_memory",
    "lru_crawler_starts",
    "crawler_items_checked",
    "direct_reclaims",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
];

/// CPU time of this process (user, system), as memcached prints it (`seconds.microseconds`).
pub fn rusage() -> (Seconds, Seconds) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } == 0;
    let f = |t: libc::timeval| Seconds {
        secs: if ok { t.tv_sec.max(0) as u64 } else { 0 },
        micros: if ok { t.tv_usec.max(0) as u32 } else { 0 },
    };
    (f(ru.ru_utime), f(ru.ru_stime))
}
