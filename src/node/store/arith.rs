//! `incr`/`decr` (and the arithmetic core of `ma`): memcached's `do_add_delta`.
//!
//! The stored value is read the way memcached's `safe_strtoull` reads it, quirks included
//! (leading white space, a sign, anything after a space is ignored), so every value that
//! memcached counts with, ringcache counts with too, and every value it refuses is refused.

use super::item::{ItemRef, Meta, KEY_BINARY, MAX_KEY_LEN};
use super::{hash, versioned, ArithOutcome, Store};

/// memcached's `safe_strtoull` applied to a stored value (which memcached keeps followed by
/// `\r\n`, so the end of the value counts as white space):
///
/// - leading white space is skipped, then an optional `+` or `-`, then at least one digit;
/// - the digits must be followed by the end, white space or NUL (`"12 abc"` is 12, `"12a"` is
///   refused);
/// - more than 64 bits is refused (`ERANGE`);
/// - a `-` makes strtoull negate; the result is refused if it then reads as a negative signed
///   number (`"-1"` is refused, `"-0"` is 0, and `"-18446744073709551615"` is 1, as in C).
pub fn parse_counter(v: &[u8]) -> Option<u64> {
    // The C string ends at a NUL; the protocol module already has memcached's strtoull rules.
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    ringcache_client::protocol::number::safe_strtoull(&v[..end])
}

impl Store {
    /// `incr`/`decr`: unsigned 64-bit; incr wraps at 2^64, decr stops at 0. Flags and TTL are
    /// kept. A result no longer than the old value is written over it and padded with spaces
    /// (memcached's in-place update: `decr` of `100` by 1 leaves `99 `); a longer one replaces
    /// the item. The CAS changes either way.
    pub fn incr_decr(&self, key: &[u8], incr: bool, delta: u64) -> ArithOutcome {
        if key.len() > MAX_KEY_LEN {
            return ArithOutcome::NotFound;
        }
        let now = self.now();
        let h = hash(key);
        self.locked(h, || {
            match self.arith_locked(h, key, incr, delta, None, None, now) {
                Ok((value, _)) => ArithOutcome::Value(value),
                Err(e) => e,
            }
        })
    }

    /// `do_add_delta` with the key's lock held: the new value and the new item.
    ///
    /// Checks in memcached's order: missing; empty value (non-numeric); compare CAS (`ma C`,
    /// where 0 means none); then the number itself.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn arith_locked(
        &self,
        h: u64,
        key: &[u8],
        incr: bool,
        delta: u64,
        compare: Option<u64>,
        new_cas: Option<u64>,
        now: u64,
    ) -> Result<(u64, ItemRef), ArithOutcome> {
        let old = self
            .find(h, key, now, true)
            .hit()
            .ok_or(ArithOutcome::NotFound)?;
        if old.value().is_empty() {
            return Err(ArithOutcome::NonNumeric);
        }
        if let Some(want) = compare {
            if want != 0 && want != old.cas() {
                return Err(ArithOutcome::Exists);
            }
        }
        let cur = parse_counter(old.value()).ok_or(ArithOutcome::NonNumeric)?;
        let value = if incr {
            cur.wrapping_add(delta)
        } else {
            cur.saturating_sub(delta)
        };
        let mut buf = itoa::Buffer::new();
        let text = buf.format(value).as_bytes();
        let seq = self.inner.next_seq();
        let cas = new_cas.map_or(seq, |e| versioned(e, old.cas()));
        let in_place = text.len() <= old.value().len();
        let item = if in_place {
            // memcached rewrites the item in place; here the rewrite is a copy (readers of the
            // old one keep a whole value) that keeps its fetched/stale state and access time
            // (moved only if a minute old), and is not counted as a new item.
            let pad = vec![b' '; old.value().len() - text.len()];
            let meta = Meta {
                flags: old.flags(),
                exptime: old.exptime(),
                cas,
                time: old.last_access(),
                state: old.carried_state(),
            };
            let item = self
                .inner
                .store_item(h, key, &[text, &pad], &meta, Some(&old), false, now)
                .ok_or(ArithOutcome::NotFound)?;
            item.refresh_time(now);
            item
        } else {
            let meta = Meta {
                flags: old.flags(),
                exptime: old.exptime(),
                cas,
                time: now,
                // A new item: fresh state, but the key is still the key it was.
                state: old.carried_state() & KEY_BINARY,
            };
            self.inner
                .store_item(h, key, &[text], &meta, Some(&old), true, now)
                .ok_or(ArithOutcome::NotFound)?
        };
        Ok((value, item))
    }

    /// Stores a counter item holding `initial` (`ma … N<ttl> J<initial>` on a miss; the
    /// caller holds the key's lock, and applies TTL flags to it afterwards). `None` only if
    /// no segment could be had.
    pub(super) fn new_counter(
        &self,
        h: u64,
        key: &[u8],
        initial: u64,
        new_cas: Option<u64>,
        now: u64,
    ) -> Option<ItemRef> {
        let mut buf = itoa::Buffer::new();
        let text = buf.format(initial).as_bytes();
        let seq = self.inner.next_seq();
        let meta = Meta {
            flags: 0,
            exptime: 0,
            cas: new_cas.unwrap_or(seq),
            time: now,
            state: 0,
        };
        self.inner
            .store_item(h, key, &[text], &meta, None, true, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case checked against memcached 1.6.18 (`set` the value, then `incr` by 1).
    #[test]
    fn parses_like_memcached() {
        let ok: &[(&[u8], u64)] = &[
            (b"12", 12),
            (b" 12", 12),
            (b"12 ", 12),
            (b"12 abc", 12),
            (b"+12", 12),
            (b"-0", 0),
            (b"000000000000000000001", 1),
            (b"1\t2", 1),
            (b"\t\n12", 12),
            (b"1\x002", 1),
            (b"18446744073709551615", u64::MAX),
            (b"-18446744073709551615", 1),
        ];
        for (v, n) in ok {
            assert_eq!(
                parse_counter(v),
                Some(*n),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"-1",
            b"12a",
            b"0x5",
            b"18446744073709551616",
            b"+-5",
            b"- 5",
            b"abc",
        ];
        for v in bad {
            assert_eq!(parse_counter(v), None, "{:?}", String::from_utf8_lossy(v));
        }
    }
}
