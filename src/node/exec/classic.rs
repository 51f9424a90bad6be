//! The classic verbs: get/gets/gat/gats, set/add/replace/append/prepend/cas, delete,
//! incr/decr, touch.

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
/// were looked up, with keys still to answer, stops and returns the index to go on from, so the connection can write what is gathered
/// first; `None` once `END` is written.
pub fn get(
    node: &Node,
    cmd: GetCmd,
    exptime: Option<i64>,
    keys: &[Bytes],
    start: usize,
    out: &mut BytesMut,
) -> Option<usize> {
    let with_cas = cmd.returns_cas();
    for (i, key) in keys.iter().enumerate().skip(start) {
        let found = match exptime {
            None => node.store.get(key),
            Some(e) => node.store.get_and_touch(key, e),
        };
        let stats = &node.stats;
        match (&found, exptime.is_some()) {
            (Lookup::Hit(_), false) => bump!(stats, get_hits),
            (Lookup::Hit(_), true) => bump!(stats, touch_hits),
            (_, true) => bump!(stats, touch_misses),
            (Lookup::Expired, false) => {
                bump!(stats, get_expired);
                bump!(stats, get_misses)
            }
            (Lookup::Flushed, false) => {
                bump!(stats, get_flushed);
                bump!(stats, get_misses)
            }
            (Lookup::Miss, false) => bump!(stats, get_misses),
        };
        if exptime.is_some() {
            bump!(stats, cmd_touch);
        } else {
            bump!(stats, cmd_get);
        }
        let hit = matches!(found, Lookup::Hit(_));
        node.prefixes.record(key, Op::Get(hit));
        if let Lookup::Hit(item) = found {
            let cas = with_cas.then(|| item.cas());
            out.reserve(key.len() + item.value().len() + 48);
            reply::value(out, key, item.flags(), cas, item.value());
        }
        if i + 1 < keys.len() && (out.len() >= REPLY_CHUNK || i + 1 - start >= KEYS_PER_STEP) {
            return Some(i + 1);
        }
    }
    reply::end(out);
    None
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
