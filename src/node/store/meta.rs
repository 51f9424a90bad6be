//! Meta-command semantics (memcached's `mg`/`ms`/`md`/`ma`), including stale-while-revalidate:
//! an invalidated item stays readable but marked stale (`X`), and exactly one reader at a time
//! is handed the recache token (`W`); others see `Z` until the item is rewritten.

use std::sync::Arc;

use super::item::Item;
use super::{ArithOutcome, Store, StoreMode, StoreOutcome};

/// What `mg` asks for beyond a plain read.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaGetOpts {
    /// `N<ttl>`: on a miss, create an empty item with this TTL and win the token.
    pub vivify: Option<i64>,
    /// `R<ttl>`: win the token if the remaining TTL is below this.
    pub recache: Option<i64>,
    /// `T<ttl>`: set a new TTL.
    pub ttl: Option<i64>,
    /// `u`: don't record the access.
    pub no_bump: bool,
}

/// A hit of `mg`, with what the return flags need as it was *before* this access.
#[derive(Debug, Clone)]
pub struct MetaGetHit {
    pub item: Arc<Item>,
    /// Seconds left; `None` = never expires.
    pub ttl: Option<i64>,
    /// Seconds since the previous access.
    pub last_access_ago: u64,
    /// Whether it had been fetched before this request.
    pub fetched_before: bool,
    /// This reader got the recache token (`W`).
    pub won: bool,
    /// The item is stale (`X`).
    pub stale: bool,
    /// Another reader already holds the token (`Z`).
    pub token_sent_before: bool,
}

/// What `ms` asks for.
#[derive(Debug, Clone, Copy)]
pub struct MetaSetOpts {
    pub mode: StoreMode,
    pub flags: u32,
    pub ttl: i64,
    /// `C<cas>`: compare first.
    pub compare_cas: Option<u64>,
    /// `E<cas>`: the new item's CAS.
    pub new_cas: Option<u64>,
    /// `I`: with a compare CAS older than the item's, store anyway but mark it stale.
    pub invalidate: bool,
    /// `N<ttl>`: in append/prepend mode, create the item on a miss.
    pub vivify_on_append: Option<i64>,
}

/// What `md` asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaDeleteOpts {
    pub compare_cas: Option<u64>,
    pub new_cas: Option<u64>,
    /// `I`: mark stale instead of removing.
    pub invalidate: bool,
    /// `T<ttl>` (with `I`): new TTL for the stale item.
    pub ttl: Option<i64>,
    /// `x`: drop the value, keep the item.
    pub remove_value: bool,
}

/// The outcome of `md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaDeleteOutcome {
    Deleted,
    NotFound,
    Exists,
}

/// What `ma` asks for.
#[derive(Debug, Clone, Copy)]
pub struct MetaArithOpts {
    pub incr: bool,
    pub delta: u64,
    /// `N<ttl>`: on a miss, create the counter at `initial` with this TTL.
    pub vivify: Option<i64>,
    pub initial: u64,
    pub compare_cas: Option<u64>,
    pub new_cas: Option<u64>,
    pub ttl: Option<i64>,
}

/// The result of a successful `ma`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaArithHit {
    pub value: u64,
    pub cas: u64,
    pub ttl: Option<i64>,
}

impl Store {
    /// `mg`.
    pub fn meta_get(&self, key: &[u8], opts: &MetaGetOpts) -> Option<MetaGetHit> {
        let now = self.now();
        let needs_lock = opts.vivify.is_some() || opts.ttl.is_some() || opts.recache.is_some();
        // Plain reads stay lock-free; anything that may win a token or rewrite takes the lock.
        let _g = needs_lock.then(|| self.lock(key));
        let mut created = false;
        let mut item = match self.live_item(key, now) {
            Some(i) => i,
            None => {
                let ttl = opts.vivify?;
                let exp = self.abs_exptime(ttl, now).unwrap_or(now);
                let seq = self.next_seq();
                created = true;
                self.insert(key, Item::new(key, b"", 0, exp, self.next_cas(), seq, now))
            }
        };
        let fetched_before = item.fetched();
        let last_access_ago = now.saturating_sub(item.last_access());
        if let Some(ttl) = opts.ttl {
            let exp = self.abs_exptime(ttl, now).unwrap_or(now);
            item = self.insert_replacing(key, item.with_exptime(exp));
        }
        let token_sent_before = item.token_sent();
        let stale = item.stale();
        let mut won = created;
        if let Some(r) = opts.recache {
            let recache_at = self.abs_exptime(r, now).unwrap_or(now);
            if !token_sent_before && !created && item.exptime() != 0 && item.exptime() < recache_at
            {
                won = true;
            }
        }
        if stale && !token_sent_before {
            won = true;
        }
        if won {
            item.set_token_sent();
        }
        if !opts.no_bump {
            item.touch_access(now);
        }
        Some(MetaGetHit {
            ttl: item.ttl(now),
            item,
            last_access_ago,
            fetched_before,
            won,
            stale,
            token_sent_before,
        })
    }

    /// `ms`: returns the outcome and the stored item's CAS.
    pub fn meta_set(&self, key: &[u8], value: &[u8], opts: &MetaSetOpts) -> (StoreOutcome, u64) {
        let mode = match (opts.mode, opts.compare_cas) {
            // A compare CAS turns set and replace into cas.
            (StoreMode::Set | StoreMode::Replace, Some(c)) => StoreMode::Cas(c),
            (m, _) => m,
        };
        let now = self.now();
        match mode {
            StoreMode::Cas(want) if opts.invalidate => {
                if self.too_large(key, value.len(), opts.flags) {
                    return (StoreOutcome::TooLarge, 0);
                }
                let _g = self.lock(key);
                let Some(old) = self.live_item(key, now) else {
                    return (StoreOutcome::NotFound, 0);
                };
                // An older CAS than the item's: store, but as stale (memcached's set_stale).
                let stale = want < old.cas();
                if old.cas() != want && !stale {
                    return (StoreOutcome::Exists, 0);
                }
                let exp = self.abs_exptime(opts.ttl, now).unwrap_or(now);
                let cas = opts.new_cas.unwrap_or_else(|| self.next_cas());
                let item = Item::new(key, value, opts.flags, exp, cas, self.next_seq(), now);
                if stale {
                    item.set_stale();
                }
                self.insert(key, item);
                (StoreOutcome::Stored, cas)
            }
            StoreMode::Append | StoreMode::Prepend => {
                if let Some(want) = opts.compare_cas {
                    let _g = self.lock(key);
                    match self.live_item(key, now) {
                        Some(o) if o.cas() != want => return (StoreOutcome::Exists, 0),
                        None => return (StoreOutcome::NotFound, 0),
                        _ => {}
                    }
                }
                if let Some(ttl) = opts.vivify_on_append {
                    // Autovivify: a miss stores the data as a new item.
                    let (out, cas) =
                        self.store_with_cas(mode, key, opts.flags, 0, value, opts.new_cas);
                    if out == StoreOutcome::NotStored {
                        return self.store_with_cas(
                            StoreMode::Add,
                            key,
                            opts.flags,
                            ttl,
                            value,
                            opts.new_cas,
                        );
                    }
                    return (out, cas);
                }
                self.store_with_cas(mode, key, opts.flags, 0, value, opts.new_cas)
            }
            m => self.store_with_cas(m, key, opts.flags, opts.ttl, value, opts.new_cas),
        }
    }

    /// `md`.
    pub fn meta_delete(&self, key: &[u8], opts: &MetaDeleteOpts) -> MetaDeleteOutcome {
        let now = self.now();
        let _g = self.lock(key);
        let Some(old) = self.live_item(key, now) else {
            return MetaDeleteOutcome::NotFound;
        };
        if let Some(want) = opts.compare_cas {
            if old.cas() != want {
                return MetaDeleteOutcome::Exists;
            }
        }
        if opts.invalidate || opts.remove_value {
            let exp = match opts.ttl.filter(|_| opts.invalidate) {
                Some(t) => self.abs_exptime(t, now).unwrap_or(now),
                None => old.exptime(),
            };
            let value: &[u8] = if opts.remove_value { b"" } else { old.value() };
            let cas = opts.new_cas.unwrap_or_else(|| self.next_cas());
            let item = old.derive(value, exp, cas, old.seq, now);
            if opts.invalidate {
                item.set_stale();
            }
            self.insert_replacing(key, item);
            return MetaDeleteOutcome::Deleted;
        }
        self.remove(key);
        MetaDeleteOutcome::Deleted
    }

    /// `ma`.
    pub fn meta_arith(
        &self,
        key: &[u8],
        opts: &MetaArithOpts,
    ) -> Result<MetaArithHit, ArithOutcome> {
        let now = self.now();
        let _g = self.lock(key);
        let Some(old) = self.live_item(key, now) else {
            let Some(ttl) = opts.vivify else {
                return Err(ArithOutcome::NotFound);
            };
            // Autovivify: the counter starts at the initial value (the delta is not applied).
            let exp = self.abs_exptime(ttl, now).unwrap_or(now);
            let cas = opts.new_cas.unwrap_or_else(|| self.next_cas());
            let value = opts.initial.to_string();
            let item = self.insert(
                key,
                Item::new(key, value.as_bytes(), 0, exp, cas, self.next_seq(), now),
            );
            return Ok(MetaArithHit {
                value: opts.initial,
                cas,
                ttl: item.ttl(now),
            });
        };
        if let Some(want) = opts.compare_cas {
            if old.cas() != want {
                return Err(ArithOutcome::Exists);
            }
        }
        let (value, mut item) = self.arith_locked(key, opts.incr, opts.delta, opts.new_cas, now)?;
        if let Some(t) = opts.ttl {
            let exp = self.abs_exptime(t, now).unwrap_or(now);
            item = self.insert_replacing(key, item.with_exptime(exp));
        }
        Ok(MetaArithHit {
            value,
            cas: item.cas(),
            ttl: item.ttl(now),
        })
    }
}
