//! Looking at items without reading them: `lru_crawler metadump` lines and `me` (meta debug).
//!
//! The metadump format is memcached's crawler output, one line per live item:
//! `key=<url-encoded key> exp=<unix time or -1> la=<unix time> cas=<n> fetch=<yes|no> cls=<n>
//! size=<n>`; the rebalancer parses exactly this from ringcache and memcached nodes alike.

use std::fmt::Write as _;

use ringcache_client::protocol::parse::item_size;

use super::item::Item;
use super::Store;

/// What `me` reports for one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebugInfo {
    /// memcached prints `current_time - exptime` (so a live item shows a negative number), or
    /// -1 when the item never expires.
    pub exp: i64,
    /// Seconds since the last access.
    pub la: u64,
    pub cas: u64,
    pub fetched: bool,
    /// memcached's item size (header + key + value).
    pub size: u64,
}

/// Appends `key` percent-encoded as memcached's crawler does (RFC 3986 unreserved kept).
pub fn url_encode(key: &[u8], out: &mut String) {
    for &b in key {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// One metadump line (with its `\n`).
pub fn metadump_line(key: &[u8], item: &Item, out: &mut String) {
    out.push_str("key=");
    url_encode(key, out);
    let exp = if item.exptime() == 0 {
        -1
    } else {
        item.exptime() as i64
    };
    let _ = writeln!(
        out,
        " exp={exp} la={} cas={} fetch={} cls=1 size={}",
        item.last_access(),
        item.cas(),
        if item.fetched() { "yes" } else { "no" },
        item_size(key.len(), item.value().len(), item.flags()),
    );
}

impl Store {
    /// Calls `emit` with metadump lines for every live item, a batch at a time, until it returns
    /// false. Walks moka's weakly consistent iterator, so memory use does not grow with the
    /// number of keys.
    pub fn metadump(&self, mut emit: impl FnMut(&[u8]) -> bool) {
        let now = self.now();
        let mut line = String::with_capacity(512);
        for (_, item) in self.cache.iter() {
            if self.check(&item, now).is_err() {
                continue;
            }
            line.clear();
            metadump_line(item.key(), &item, &mut line);
            if !emit(line.as_bytes()) {
                return;
            }
        }
    }

    /// `me <key>`.
    pub fn meta_debug(&self, key: &[u8]) -> Option<DebugInfo> {
        let now = self.now();
        let item = self.live_item(key, now)?;
        Some(DebugInfo {
            exp: if item.exptime() == 0 {
                -1
            } else {
                now as i64 - item.exptime() as i64
            },
            la: now.saturating_sub(item.last_access()),
            cas: item.cas(),
            fetched: item.fetched(),
            size: item_size(key.len(), item.value().len(), item.flags()) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_like_memcached() {
        let mut s = String::new();
        url_encode(b"a b/c~d%\x01", &mut s);
        assert_eq!(s, "a%20b%2Fc~d%25%01");
    }
}
