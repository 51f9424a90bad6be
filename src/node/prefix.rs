//! Per-prefix counters for `stats detail on|off|dump`, as memcached keeps them with `-D :`.
//!
//! A key's prefix is what comes before its first `:` (memcached's default delimiter); keys
//! without one are not counted. While detail is on, `get`/`gets`/`gat`/`gats` count a get per
//! key (and a hit when found), the storage verbs a set, `delete` a del; the meta verbs, `incr`,
//! `decr` and `touch` count nothing, as in memcached. `dump` lists what was counted whether
//! detail is still on or not; `stats reset` clears it.
//!
//! memcached grows its prefix table without bound; here it holds at most [`MAX_PREFIXES`]
//! prefixes, and keys with a prefix beyond those are not counted, so a client spraying
//! distinct prefixes cannot take the node's memory (docs/protocol.md, "stats detail").

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::BufMut;
use ringcache_client::protocol::reply;

/// memcached's default prefix delimiter (`-D`).
pub const DELIMITER: u8 = b':';

/// Most prefixes counted at once.
pub const MAX_PREFIXES: usize = 1024;

/// What one prefix counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    get: u64,
    hit: u64,
    set: u64,
    del: u64,
}

/// The prefix table and its on/off switch.
#[derive(Debug, Default)]
pub struct PrefixStats {
    on: AtomicBool,
    table: Mutex<HashMap<Vec<u8>, Counts>>,
}

/// What a request did to a key, for [`PrefixStats::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A get-family lookup; `true` if it found the item.
    Get(bool),
    Set,
    Delete,
}

impl PrefixStats {
    /// `stats detail on` / `off`.
    pub fn enable(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Whether `stats detail on` is in force (`stats settings` detail_enabled).
    pub fn enabled(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Counts `op` on `key` if detail is on and the key has a prefix. Costs one relaxed load
    /// while detail is off.
    #[inline]
    pub fn record(&self, key: &[u8], op: Op) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let Some(end) = key.iter().position(|&b| b == DELIMITER) else {
            return;
        };
        let prefix = &key[..end];
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if !table.contains_key(prefix) {
            if table.len() >= MAX_PREFIXES {
                return;
            }
            table.insert(prefix.to_vec(), Counts::default());
        }
        let Some(counts) = table.get_mut(prefix) else {
            return;
        };
        match op {
            Op::Get(hit) => {
                counts.get += 1;
                counts.hit += u64::from(hit);
            }
            Op::Set => counts.set += 1,
            Op::Delete => counts.del += 1,
        }
    }

    /// `stats detail dump`: one `PREFIX` line per prefix, sorted by prefix (memcached lists
    /// them in its hash table's order, which no client relies on), then `END`.
    pub fn dump(&self, out: &mut impl BufMut) {
        let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows: Vec<_> = table.iter().collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (prefix, c) in rows {
            reply::prefix(out, prefix, c.get, c.hit, c.set, c.del);
        }
        reply::end(out);
    }

    /// `stats reset`: forget every prefix.
    pub fn clear(&self) {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(p: &PrefixStats) -> String {
        let mut out = Vec::new();
        p.dump(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The counts memcached 1.6.18 shows for the same requests (see tests/node.rs for the wire).
    #[test]
    fn counts_like_memcached_only_while_on() {
        let p = PrefixStats::default();
        p.record(b"a:1", Op::Set);
        assert_eq!(dump(&p), "END\r\n", "off by default");
        p.enable(true);
        p.record(b"a:1", Op::Set);
        p.record(b"a:1", Op::Get(true));
        p.record(b"a:b:c", Op::Get(false));
        p.record(b"nocolon", Op::Set);
        p.record(b":x", Op::Set);
        p.record(b"a:1", Op::Delete);
        p.enable(false);
        p.record(b"a:2", Op::Set);
        assert_eq!(
            dump(&p),
            "PREFIX  get 0 hit 0 set 1 del 0\r\nPREFIX a get 2 hit 1 set 1 del 1\r\nEND\r\n"
        );
        p.clear();
        assert_eq!(dump(&p), "END\r\n");
    }

    #[test]
    fn the_table_is_bounded() {
        let p = PrefixStats::default();
        p.enable(true);
        for i in 0..MAX_PREFIXES + 10 {
            p.record(format!("p{i}:k").as_bytes(), Op::Set);
        }
        p.record(b"p0:k", Op::Set);
        let text = dump(&p);
        assert_eq!(text.lines().count(), MAX_PREFIXES + 1);
        assert!(text.contains("PREFIX p0 get 0 hit 0 set 2 del 0\r\n"));
        assert!(!text.contains(&format!("PREFIX p{} ", MAX_PREFIXES + 5)));
    }
}
