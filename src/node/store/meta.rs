//! Meta-command semantics (`mg`, `ms`, `md`, `ma`) as memcached 1.6 implements them, including
//! stale-while-revalidate: an invalidated item stays readable but marked stale (`X`), and one
//! reader at a time is handed the recache token (`W`); the others see `Z` until the item is
//! rewritten.
//!
//! memcached applies the TTL-related flags of `mg` and `ma` in the order the client wrote them
//! (`mg k t T30` reports the old TTL, `mg k T30 t` the new one; `R` compares against whatever TTL
//! an earlier `T` set). The executor passes that order in [`MetaExtra::order`]; without it the
//! canonical order `N T R t` applies.

use super::item::{ItemRef, Meta, MAX_KEY_LEN};
use super::{expiry, hash, ArithOutcome, Lookup, Shared, Store, StoreMode, StoreOutcome, Write};

/// What `mg` asks for beyond a plain read.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaGetOpts {
    /// `N<ttl>`: on a miss, create an empty item with this TTL and win the token.
    pub vivify: Option<i64>,
    /// `R<ttl>`: win the token if the item's remaining TTL is below this.
    pub recache: Option<i64>,
    /// `T<ttl>`: set a new TTL (the CAS is kept).
    pub ttl: Option<i64>,
    /// `u`: don't record this access (no fetched mark, no last-access update).
    pub no_bump: bool,
}

/// Inputs a few meta flags need beyond the option structs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaExtra<'a> {
    /// The request's flag letters in the order the client wrote them (any letters; only
    /// `T`, `N`, `R` and `t` matter). Empty: the canonical order `N T R t`.
    pub order: &'a [u8],
    /// `E<cas>` on `mg`: the CAS of an item `N` creates.
    pub new_cas: Option<u64>,
    /// `F<flags>` on `md … x`: the client flags of the emptied item left behind.
    pub client_flags: u32,
    /// `b` on `ms`: the key was sent base64-encoded; the stored item remembers it
    /// ([`Item::binary_key`]).
    pub binary_key: bool,
}

/// A hit (or vivified miss) of `mg`, with what the return flags need. `h` and `l` describe the
/// item as it was before this access.
#[derive(Debug, Clone)]
pub struct MetaGetHit {
    pub item: ItemRef,
    /// Seconds left as the `t` flag reports them, at its place among the TTL flags (`None` =
    /// never expires; never negative).
    pub ttl: Option<i64>,
    /// Seconds since the previous access (`l`).
    pub last_access_ago: u64,
    /// Whether it had been fetched before this request (`h`).
    pub fetched_before: bool,
    /// This reader got the recache token (`W`).
    pub won: bool,
    /// The item is stale (`X`).
    pub stale: bool,
    /// The token had already been handed out (`Z`).
    pub token_sent_before: bool,
    /// The item was created by `N` on this request (memcached still counts it as a hit).
    pub created: bool,
}

/// What `ms` asks for.
#[derive(Debug, Clone, Copy)]
pub struct MetaSetOpts {
    /// `M<mode>`: `S` set, `E` add, `A` append, `P` prepend, `R` replace.
    pub mode: StoreMode,
    /// `F<flags>` (ignored by append/prepend, which keep the item's flags).
    pub flags: u32,
    /// `T<ttl>` (0 = never; ignored by append/prepend, which keep the item's TTL).
    pub ttl: i64,
    /// `C<cas>`: compare first. Turns set and replace into cas; append/prepend check it too
    /// (0 = no check); add ignores it.
    pub compare_cas: Option<u64>,
    /// `E<cas>`: the new item's CAS.
    pub new_cas: Option<u64>,
    /// `I`: with a compare CAS older than the item's, store anyway but as stale, keeping the
    /// item's TTL and token state.
    pub invalidate: bool,
    /// `N<ttl>`: in append/prepend mode, a miss stores the data as a new item with this TTL.
    pub vivify_on_append: Option<i64>,
}

/// What `md` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaDeleteOpts {
    /// `C<cas>`: delete only if the CAS matches (compared literally, so `C0` matches nothing).
    pub compare_cas: Option<u64>,
    /// `E<cas>`: the CAS the invalidated item (or the emptied one) gets.
    pub new_cas: Option<u64>,
    /// `I`: mark stale (and free the token) instead of removing; the CAS changes.
    pub invalidate: bool,
    /// `T<ttl>`: with `I`, the stale item's new TTL; with `x`, the emptied item's TTL.
    pub ttl: Option<i64>,
    /// `x`: replace the value by an empty one (flags from `F`, TTL from `T`, the CAS kept
    /// unless `E`), keeping the key.
    pub remove_value: bool,
}

/// The outcome of `md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDeleteOutcome {
    /// Removed, invalidated or emptied (`HD`). memcached counts `delete_hits` except for `I`.
    Deleted,
    NotFound,
    Exists,
}

/// What `ma` asks for.
#[derive(Debug, Clone, Copy)]
pub struct MetaArithOpts {
    /// `MI`/`M+` (the default) or `MD`/`M-`.
    pub incr: bool,
    /// `D<delta>` (default 1).
    pub delta: u64,
    /// `N<ttl>`: on a miss, create the counter at `initial` with this TTL.
    pub vivify: Option<i64>,
    /// `J<initial>` (default 0); a created counter starts here, the delta is not applied.
    pub initial: u64,
    /// `C<cas>` (0 = no check).
    pub compare_cas: Option<u64>,
    /// `E<cas>`: the CAS of the updated or created item.
    pub new_cas: Option<u64>,
    /// `T<ttl>`: set a new TTL after the update.
    pub ttl: Option<i64>,
}

/// The result of a successful `ma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaArithHit {
    pub value: u64,
    pub cas: u64,
    /// As the `t` flag reports it, at its place among the TTL flags.
    pub ttl: Option<i64>,
    /// The counter was created by `N` on this request.
    pub created: bool,
}

/// The TTL-related flags in the order they apply: the first occurrence of each of `T N R t` in
/// `order`, then any of them `order` lacks, in the canonical order `N T R t`.
fn ttl_steps(order: &[u8]) -> ([u8; 4], usize) {
    let mut steps = [0u8; 4];
    let mut n = 0;
    for &c in order.iter().chain(b"NTRt") {
        if b"NTRt".contains(&c) && !steps[..n].contains(&c) {
            steps[n] = c;
            n += 1;
            if n == steps.len() {
                break;
            }
        }
    }
    (steps, n)
}

/// The TTL flags of an `mg` or `ma` (`ma` has no `R`).
struct TtlFlags {
    /// `T<ttl>`: set a new TTL.
    ttl: Option<i64>,
    /// `N<ttl>`: the TTL of an item this request created.
    vivify: Option<i64>,
    /// `R<ttl>`: win the token if the remaining TTL is below this.
    recache: Option<i64>,
}

impl TtlFlags {
    /// Applies `T`, `N`, `R` and reads `t` in the order [`ttl_steps`] gives for `order`, to
    /// the key's current item (hash `h`, whose lock the caller holds when `T` or `N` is
    /// given). Returns whether the reader should win the recache token (`N` created the item,
    /// or `R` found it about to expire), and the TTL `t` saw if it came; `None` if giving the
    /// item a TTL removed it instead (see [`Shared::retime`]). A new TTL may move the item:
    /// `item` is then the moved one.
    fn apply(
        &self,
        shared: &Shared,
        h: u64,
        item: &mut ItemRef,
        order: &[u8],
        created: bool,
        now: u64,
    ) -> Option<(bool, Option<Option<i64>>)> {
        let mut wants_token = false;
        let mut ttl_seen = None;
        let (steps, n) = ttl_steps(order);
        for &step in &steps[..n] {
            match step {
                b'T' => {
                    if let Some(t) = self.ttl {
                        *item = shared.retime(h, item, expiry(t, now), now)?;
                    }
                }
                b'N' => {
                    if let (true, Some(t)) = (created, self.vivify) {
                        *item = shared.retime(h, item, expiry(t, now), now)?;
                        wants_token = true;
                    }
                }
                b'R' => {
                    if let Some(r) = self.recache {
                        let e = item.exptime();
                        if !created && e != 0 && e < expiry(r, now) {
                            wants_token = true;
                        }
                    }
                }
                _ => ttl_seen = Some(item.ttl(now)),
            }
        }
        Some((wants_token, ttl_seen))
    }
}

/// A TTL as the meta `t` flag reports it: never negative (memcached prints a wrapped number for
/// an item a `T` in this very request set into the past; 0 says the same honestly).
fn reported(ttl: Option<i64>) -> Option<i64> {
    ttl.map(|t| t.max(0))
}

impl Store {
    /// `mg` in the canonical flag order.
    pub fn meta_get(&self, key: &[u8], opts: &MetaGetOpts) -> Option<MetaGetHit> {
        self.meta_get_with(key, opts, &MetaExtra::default())
    }

    /// `mg`: `None` is a miss (`EN`). A miss with `N` creates an empty item (flags 0) and
    /// returns it as won.
    pub fn meta_get_with(
        &self,
        key: &[u8],
        opts: &MetaGetOpts,
        extra: &MetaExtra<'_>,
    ) -> Option<MetaGetHit> {
        if key.len() > MAX_KEY_LEN {
            return None;
        }
        let now = self.now();
        let h = hash(key);
        // Plain reads take no lock; anything that may create or rewrite does (memcached's
        // "locked" meta flags).
        let locked = opts.vivify.is_some() || opts.ttl.is_some() || opts.recache.is_some();
        let _g = locked.then(|| self.inner.lock(h));
        let (item, created) = match self.find(h, key, now, locked) {
            Lookup::Hit(item) => (item, false),
            _ => {
                opts.vivify?;
                let seq = self.inner.next_seq();
                let meta = Meta {
                    flags: 0,
                    exptime: 0,
                    cas: extra.new_cas.unwrap_or(seq),
                    time: now,
                    state: 0,
                };
                // Stored at once; the TTL flags below change it in place, under the lock.
                let item = self.inner.store_item(h, key, &[], &meta, None, true, now)?;
                (item, true)
            }
        };
        let fetched_before = item.fetched();
        let last_access_ago = now.saturating_sub(item.last_access());
        let ttl_flags = TtlFlags {
            ttl: opts.ttl,
            vivify: opts.vivify,
            recache: opts.recache,
        };
        let mut item = item;
        let (mut wants_token, ttl_seen) =
            ttl_flags.apply(&self.inner, h, &mut item, extra.order, created, now)?;
        let stale = item.stale();
        // A stale item hands out the token to the first reader after the invalidation.
        wants_token |= stale;
        let token_sent_before = if wants_token {
            item.take_token()
        } else {
            item.token_sent()
        };
        if !opts.no_bump {
            item.bump(now);
        }
        let hit = MetaGetHit {
            ttl: reported(ttl_seen.unwrap_or_else(|| item.ttl(now))),
            item,
            last_access_ago,
            fetched_before,
            won: wants_token && !token_sent_before,
            stale,
            token_sent_before,
            created,
        };
        drop(_g);
        if created {
            self.inner.maintain();
        }
        Some(hit)
    }

    /// `ms` with the default extras.
    pub fn meta_set(&self, key: &[u8], value: &[u8], opts: &MetaSetOpts) -> (StoreOutcome, u64) {
        self.meta_set_with(key, value, opts, &MetaExtra::default())
    }

    /// `ms`: the outcome and the stored item's CAS (0 when nothing was stored).
    ///
    /// A value over the item limit is `TooLarge` and, in every mode, also removes the key's
    /// current item (memcached's ms does, so a failed write never leaves old data readable).
    pub fn meta_set_with(
        &self,
        key: &[u8],
        value: &[u8],
        opts: &MetaSetOpts,
        extra: &MetaExtra<'_>,
    ) -> (StoreOutcome, u64) {
        let h = hash(key);
        if self.too_large(key, value.len(), opts.flags) {
            self.remove_locked_lookup(h, key);
            return (StoreOutcome::TooLarge, 0);
        }
        let mode = match (opts.mode, opts.compare_cas) {
            // A compare CAS turns set and replace into cas; add ignores it.
            (StoreMode::Set | StoreMode::Replace, Some(c)) => StoreMode::Cas(c),
            (m, _) => m,
        };
        let append = matches!(mode, StoreMode::Append | StoreMode::Prepend);
        let now = self.now();
        let w = Write {
            mode,
            compare: opts.compare_cas.filter(|_| append),
            flags: opts.flags,
            exptime: expiry(opts.ttl, now),
            value,
            new_cas: opts.new_cas,
            stale_ok: opts.invalidate,
            vivify: opts
                .vivify_on_append
                .filter(|_| append)
                .map(|t| expiry(t, now)),
            binary_key: extra.binary_key,
        };
        self.locked(h, || self.write_locked(h, key, &w, now))
    }

    /// `md` with the default extras.
    pub fn meta_delete(&self, key: &[u8], opts: &MetaDeleteOpts) -> MetaDeleteOutcome {
        self.meta_delete_with(key, opts, &MetaExtra::default())
    }

    /// `md`.
    pub fn meta_delete_with(
        &self,
        key: &[u8],
        opts: &MetaDeleteOpts,
        extra: &MetaExtra<'_>,
    ) -> MetaDeleteOutcome {
        if key.len() > MAX_KEY_LEN {
            return MetaDeleteOutcome::NotFound;
        }
        let h = hash(key);
        self.locked(h, || self.meta_delete_locked(h, key, opts, extra))
    }

    /// `md` with the key's lock held.
    fn meta_delete_locked(
        &self,
        h: u64,
        key: &[u8],
        opts: &MetaDeleteOpts,
        extra: &MetaExtra<'_>,
    ) -> MetaDeleteOutcome {
        let now = self.now();
        let Some(mut item) = self.find(h, key, now, true).hit() else {
            return MetaDeleteOutcome::NotFound;
        };
        if opts.compare_cas.is_some_and(|want| want != item.cas()) {
            return MetaDeleteOutcome::Exists;
        }
        if !opts.invalidate && !opts.remove_value {
            self.inner.unlink_if_same(h, &item);
            return MetaDeleteOutcome::Deleted;
        }
        if opts.remove_value {
            // A new, empty item: flags from F, TTL from T (none: never expires), CAS kept.
            let meta = Meta {
                flags: extra.client_flags,
                exptime: opts.ttl.map_or(0, |t| expiry(t, now)),
                cas: opts.new_cas.unwrap_or(item.cas()),
                time: now,
                state: 0,
            };
            // The sequence number a new item takes, as before (CAS uniques stay in step).
            self.inner.next_seq();
            match self
                .inner
                .store_item(h, key, &[], &meta, Some(&item), true, now)
            {
                Some(emptied) => item = emptied,
                None => {
                    self.inner.unlink_if_same(h, &item);
                    return MetaDeleteOutcome::Deleted;
                }
            }
        }
        if opts.invalidate {
            // Changed in place, as memcached does: same value, new CAS, stale, token free.
            if let Some(t) = opts.ttl {
                match self.inner.retime(h, &item, expiry(t, now), now) {
                    Some(retimed) => item = retimed,
                    // No room for the copy: the item is gone, as a plain delete leaves it.
                    None => return MetaDeleteOutcome::Deleted,
                }
            }
            item.invalidate();
            item.set_cas(opts.new_cas.unwrap_or_else(|| self.inner.next_seq()));
        }
        MetaDeleteOutcome::Deleted
    }

    /// `ma` in the canonical flag order.
    pub fn meta_arith(
        &self,
        key: &[u8],
        opts: &MetaArithOpts,
    ) -> Result<MetaArithHit, ArithOutcome> {
        self.meta_arith_with(key, opts, &MetaExtra::default())
    }

    /// `ma`: the new value, CAS and TTL, or why not.
    pub fn meta_arith_with(
        &self,
        key: &[u8],
        opts: &MetaArithOpts,
        extra: &MetaExtra<'_>,
    ) -> Result<MetaArithHit, ArithOutcome> {
        if key.len() > MAX_KEY_LEN {
            return Err(ArithOutcome::NotFound);
        }
        let h = hash(key);
        self.locked(h, || self.meta_arith_locked(h, key, opts, extra))
    }

    /// `ma` with the key's lock held.
    fn meta_arith_locked(
        &self,
        h: u64,
        key: &[u8],
        opts: &MetaArithOpts,
        extra: &MetaExtra<'_>,
    ) -> Result<MetaArithHit, ArithOutcome> {
        let now = self.now();
        let arith = self.arith_locked(
            h,
            key,
            opts.incr,
            opts.delta,
            opts.compare_cas,
            opts.new_cas,
            now,
        );
        let (value, item, created) = match (arith, opts.vivify) {
            (Ok((value, item)), _) => (value, item, false),
            (Err(ArithOutcome::NotFound), Some(_)) => {
                let item = self
                    .new_counter(h, key, opts.initial, opts.new_cas, now)
                    .ok_or(ArithOutcome::NotFound)?;
                (opts.initial, item, true)
            }
            (Err(e), _) => return Err(e),
        };
        let ttl_flags = TtlFlags {
            ttl: opts.ttl,
            vivify: opts.vivify,
            recache: None,
        };
        let mut item = item;
        let (_, ttl_seen) = ttl_flags
            .apply(&self.inner, h, &mut item, extra.order, created, now)
            .ok_or(ArithOutcome::NotFound)?;
        Ok(MetaArithHit {
            value,
            cas: item.cas(),
            ttl: reported(ttl_seen.unwrap_or_else(|| item.ttl(now))),
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_steps_follow_the_request_then_the_canonical_order() {
        let s = |o: &[u8]| {
            let (a, n) = ttl_steps(o);
            a[..n].to_vec()
        };
        assert_eq!(s(b""), b"NTRt");
        assert_eq!(s(b"vtT"), b"tTNR");
        assert_eq!(s(b"sRTcNvt"), b"RTNt");
        assert_eq!(s(b"TTtt"), b"TtNR");
    }
}
