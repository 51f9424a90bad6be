//! The classic verbs: get/gets/gat/gats, set/add/replace/append/prepend/cas, delete,
//! incr/decr, touch.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use ringcache_client::protocol::{reply, ArithCmd, Fault, GetCmd, StoreCmd};

use super::{unless_noreply, REPLY_CHUNK};
use crate::bump;
use crate::node::prefix::Op;
use crate::node::store::{ArithOutcome, Lookup, StoreMode, StoreOutcome};
use crate::node::Node;

/// Keys one call of [`get`] looks up at most, so a long multi-get of misses also lets other
/// connections on the same worker thread run between pieces.
const KEYS_PER_STEP: usize = 4096;

/// `get`/`gets` (and `gat`/`gats` with an exptime): one `VALUE` per hit, then `END`.
///
/// Starts at `keys[start]`. Once `out` holds [`REPLY_CHUNK`] bytes, or [`KEYS_PER_STEP`] keys
/// were looked up, with keys still to answer, stops and returns the index to go on from, so
/// the connection can write what is gathered first; `None` once `END` is written.
///
/// The clock is read once per call and the counters are added once per call (see [`Tally`]):
/// per key, both cost as much as the lookup itself, and the shared counters' cache line
/// bounced between the worker threads on every key.
pub fn get(
    node: &Node,
    cmd: GetCmd,
    exptime: Option<i64>,
    keys: &[Bytes],
    start: usize,
    out: &mut BytesMut,
) -> Option<usize> {
    let with_cas = cmd.returns_cas();
    let now = node.store.now();
    let mut tally = Tally::default();
    let mut next = None;
    for (i, key) in keys.iter().enumerate().skip(start) {
        let found = match exptime {
            None => node.store.get_at(key, now),
            Some(e) => node.store.get_and_touch_at(key, e, now),
        };
        tally.count(&found);
        node.prefixes.record(key, Op::Get(found.is_hit()));
        if let Lookup::Hit(item) = found {
            let cas = with_cas.then(|| item.cas());
            out.reserve(key.len() + item.value().len() + 48);
            reply::value(out, key, item.flags(), cas, item.value());
        }
        if i + 1 < keys.len() && (out.len() >= REPLY_CHUNK || i + 1 - start >= KEYS_PER_STEP) {
            next = Some(i + 1);
            break;
        }
    }
    tally.add_to(node, exptime.is_some());
    if next.is_none() {
        reply::end(out);
    }
    next
}

/// What one [`get`] call counted, added to the node's shared counters in one go.
#[derive(Default)]
struct Tally {
    lookups: u64,
    hits: u64,
    expired: u64,
    flushed: u64,
}

impl Tally {
    #[inline]
    fn count(&mut self, found: &Lookup) {
        self.lookups += 1;
        match found {
            Lookup::Hit(_) => self.hits += 1,
            Lookup::Expired => self.expired += 1,
            Lookup::Flushed => self.flushed += 1,
            Lookup::Miss => {}
        }
    }

    /// memcached's counters for the lookups: `gat` counts touches (hits and misses) and
    /// `cmd_touch`; `get` counts hits, misses (expired and flushed among them, and also apart)
    /// and `cmd_get`.
    fn add_to(&self, node: &Node, touch: bool) {
        fn add(c: &AtomicU64, n: u64) {
            if n != 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        }
        let c = &node.stats.counters;
        let misses = self.lookups - self.hits;
        if touch {
            add(&c.touch_hits, self.hits);
            add(&c.touch_misses, misses);
            add(&c.cmd_touch, self.lookups);
        } else {
            add(&c.get_hits, self.hits);
            add(&c.get_misses, misses);
            add(&c.get_expired, self.expired);
            add(&c.get_flushed, self.flushed);
            add(&c.cmd_get, self.lookups);
        }
    }
}

/// The storage verbs.
#[allow(clippy::too_many_arguments)]
pub fn store(
    node: &Node,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: i64,
    cas: u64,
    value: Bytes,
    noreply: bool,
    out: &mut BytesMut,
) {
    let mode = match cmd {
        StoreCmd::Set => StoreMode::Set,
        StoreCmd::Add => StoreMode::Add,
        StoreCmd::Replace => StoreMode::Replace,
        StoreCmd::Append => StoreMode::Append,
        StoreCmd::Prepend => StoreMode::Prepend,
        StoreCmd::Cas => StoreMode::Cas(cas),
    };
    bump!(node.stats, cmd_set);
    node.prefixes.record(key, Op::Set);
    let outcome = node.store.store(mode, key, flags, exptime, &value);
    if cmd == StoreCmd::Cas {
        match outcome {
            StoreOutcome::Stored => bump!(node.stats, cas_hits),
            StoreOutcome::Exists => bump!(node.stats, cas_badval),
            StoreOutcome::NotFound => bump!(node.stats, cas_misses),
            _ => 0,
        };
    }
    let write: fn(&mut BytesMut) = match outcome {
        StoreOutcome::Stored => reply::stored,
        StoreOutcome::NotStored => reply::not_stored,
        StoreOutcome::Exists => reply::exists,
        StoreOutcome::NotFound => reply::not_found,
        StoreOutcome::TooLarge => {
            bump!(node.stats, store_too_large);
            |out| reply::message(out, Fault::TOO_LARGE)
        }
    };
    unless_noreply(out, noreply, write);
}

/// `delete`.
pub fn delete(node: &Node, key: &[u8], noreply: bool, out: &mut BytesMut) {
    node.prefixes.record(key, Op::Delete);
    if node.store.delete(key) {
        bump!(node.stats, delete_hits);
        unless_noreply(out, noreply, reply::deleted);
    } else {
        bump!(node.stats, delete_misses);
        unless_noreply(out, noreply, reply::not_found);
    }
}

/// `incr` / `decr`: the new value, `NOT_FOUND`, or the non-numeric error.
pub fn arith(
    node: &Node,
    cmd: ArithCmd,
    key: &[u8],
    delta: u64,
    noreply: bool,
    out: &mut BytesMut,
) {
    let incr = cmd == ArithCmd::Incr;
    match node.store.incr_decr(key, incr, delta) {
        ArithOutcome::Value(v) => {
            if incr {
                bump!(node.stats, incr_hits);
            } else {
                bump!(node.stats, decr_hits);
            }
            unless_noreply(out, noreply, |out| reply::number(out, v));
        }
        // Classic incr/decr never compares a CAS.
        ArithOutcome::NotFound | ArithOutcome::Exists => {
            if incr {
                bump!(node.stats, incr_misses);
            } else {
                bump!(node.stats, decr_misses);
            }
            unless_noreply(out, noreply, reply::not_found);
        }
        ArithOutcome::NonNumeric => {
            unless_noreply(out, noreply, |out| reply::message(out, Fault::NON_NUMERIC))
        }
    }
}

/// `touch`.
pub fn touch(node: &Node, key: &[u8], exptime: i64, noreply: bool, out: &mut BytesMut) {
    bump!(node.stats, cmd_touch);
    if node.store.touch(key, exptime) {
        bump!(node.stats, touch_hits);
        unless_noreply(out, noreply, reply::touched);
    } else {
        bump!(node.stats, touch_misses);
        unless_noreply(out, noreply, reply::not_found);
    }
}
