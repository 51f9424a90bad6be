//! The meta verbs: `mg`, `ms`, `md`, `ma` and `me`.
//!
//! Replies echo the return flags in the order the client gave them (memcached walks the request
//! tokens when it writes the reply), followed by the stale-while-revalidate flags `Z`, `X`, `W`.
//! `q` hides the nominal reply: `EN` for mg, `HD` for ms/md/ma.

use crate::bump;
use crate::node::store::{
    ArithOutcome, MetaArithOpts, MetaDeleteOpts, MetaDeleteOutcome, MetaExtra, MetaGetOpts,
    MetaSetOpts, StoreMode, StoreOutcome,
};
use crate::node::Node;
use bytes::{Bytes, BytesMut};
use ringcache_client::protocol::number::put_u64;
use ringcache_client::protocol::reply;
use ringcache_client::protocol::{Fault, MetaCmd, MetaRequest, MetaStatus};

/// Executes one `mg`/`ms`/`md`/`ma`.
pub fn execute(node: &Node, req: &MetaRequest, out: &mut BytesMut) {
    bump!(node.stats, cmd_meta);
    match req.cmd {
        MetaCmd::Get => get(node, req, out),
        MetaCmd::Set => set(node, req, out),
        MetaCmd::Delete => delete(node, req, out),
        MetaCmd::Arith => arith(node, req, out),
    }
}

/// Appends ` O<opaque>` and ` k<key>` (with ` b` for binary keys) in request order: the only
/// return flags a reply without an item carries.
fn opaque_and_key(req: &MetaRequest, out: &mut BytesMut) {
    for (flag, tok) in req.tokens() {
        match flag {
            b'O' => reply::meta_flag_token(out, b'O', tok),
            b'k' => reply::meta_flag_key(out, &req.key, req.flags.base64),
            _ => {}
        }
    }
}

/// The request's flag letters in order (memcached applies `T`, `N`, `R`, `t` in that order).
fn flag_order(req: &MetaRequest) -> ([u8; 24], usize) {
    let mut order = [0u8; 24];
    let mut n = 0;
    for (flag, _) in req.tokens().take(order.len()) {
        order[n] = flag;
        n += 1;
    }
    (order, n)
}

/// The store's view of the request's extra meta inputs.
fn extra<'a>(req: &MetaRequest, order: &'a [u8]) -> MetaExtra<'a> {
    MetaExtra {
        order,
        new_cas: req.flags.new_cas,
        client_flags: req.flags.client_flags.unwrap_or(0),
        binary_key: req.flags.base64,
    }
}

fn get(node: &Node, req: &MetaRequest, out: &mut BytesMut) {
    let (order, n) = flag_order(req);
    let f = &req.flags;
    let opts = MetaGetOpts {
        vivify: f.vivify,
        recache: f.recache,
        ttl: f.ttl,
        no_bump: f.no_bump,
    };
    let Some(hit) = node
        .store
        .meta_get_with(&req.key, &opts, &extra(req, &order[..n]))
    else {
        if f.ttl.is_some() {
            bump!(node.stats, touch_misses);
            bump!(node.stats, cmd_touch);
        } else {
            bump!(node.stats, get_misses);
            bump!(node.stats, cmd_get);
        }
        if !f.quiet {
            reply::meta_status(out, MetaStatus::En);
            opaque_and_key(req, out);
            reply::crlf(out);
        }
        return;
    };
    if f.ttl.is_some() {
        bump!(node.stats, touch_hits);
        bump!(node.stats, cmd_touch);
    } else {
        bump!(node.stats, get_hits);
        bump!(node.stats, cmd_get);
    }
    let value = hit.item.value();
    if f.value {
        reply::meta_va(out, value.len() as u64);
    } else {
        reply::meta_status(out, MetaStatus::Hd);
    }
    for (flag, tok) in req.tokens() {
        match flag {
            b's' => reply::meta_flag_num(out, b's', value.len() as u64),
            b't' => reply::meta_flag_ttl(out, hit.ttl),
            b'c' => reply::meta_flag_num(out, b'c', hit.item.cas()),
            b'f' => reply::meta_flag_num(out, b'f', u64::from(hit.item.flags())),
            b'l' => reply::meta_flag_num(out, b'l', hit.last_access_ago),
            b'h' => reply::meta_flag_num(out, b'h', u64::from(hit.fetched_before)),
            b'O' => reply::meta_flag_token(out, b'O', tok),
            b'k' => reply::meta_flag_key(out, &req.key, hit.item.binary_key()),
            _ => {}
        }
    }
    for (on, flag) in [
        (hit.token_sent_before, b'Z'),
        (hit.stale, b'X'),
        (hit.won, b'W'),
    ] {
        if on {
            reply::meta_flag(out, flag);
        }
    }
    reply::crlf(out);
    if f.value {
        reply::data_block(out, value);
    }
}

fn set(node: &Node, req: &MetaRequest, out: &mut BytesMut) {
    let (order, n) = flag_order(req);
    let f = &req.flags;
    bump!(node.stats, cmd_set);
    let mode = match f.mode.unwrap_or(b'S') {
        b'E' => StoreMode::Add,
        b'A' => StoreMode::Append,
        b'P' => StoreMode::Prepend,
        b'R' => StoreMode::Replace,
        _ => StoreMode::Set,
    };
    let opts = MetaSetOpts {
        mode,
        flags: f.client_flags.unwrap_or(0),
        ttl: f.ttl.unwrap_or(0),
        compare_cas: f.compare_cas,
        new_cas: f.new_cas,
        invalidate: f.invalidate,
        vivify_on_append: f.vivify,
    };
    let empty = Bytes::new();
    let value = req.value.as_ref().unwrap_or(&empty);
    let (outcome, cas) = node
        .store
        .meta_set_with(&req.key, value, &opts, &extra(req, &order[..n]));
    let status = match outcome {
        StoreOutcome::Stored => {
            if f.quiet {
                return;
            }
            MetaStatus::Hd
        }
        StoreOutcome::NotStored => MetaStatus::Ns,
        StoreOutcome::Exists => MetaStatus::Ex,
        StoreOutcome::NotFound => MetaStatus::Nf,
        StoreOutcome::TooLarge => {
            bump!(node.stats, store_too_large);
            reply::message(out, Fault::TOO_LARGE);
            return;
        }
    };
    reply::meta_status(out, status);
    for (flag, tok) in req.tokens() {
        match flag {
            b'O' => reply::meta_flag_token(out, b'O', tok),
            b'k' => reply::meta_flag_key(out, &req.key, req.flags.base64),
            b'c' => reply::meta_flag_num(out, b'c', cas),
            _ => {}
        }
    }
    reply::crlf(out);
}

fn delete(node: &Node, req: &MetaRequest, out: &mut BytesMut) {
    let (order, n) = flag_order(req);
    let f = &req.flags;
    let opts = MetaDeleteOpts {
        compare_cas: f.compare_cas,
        new_cas: f.new_cas,
        invalidate: f.invalidate,
        ttl: f.ttl,
        remove_value: f.remove_value,
    };
    let status = match node
        .store
        .meta_delete_with(&req.key, &opts, &extra(req, &order[..n]))
    {
        MetaDeleteOutcome::Deleted => {
            // Marking stale (`I`) is not a delete in memcached's counters.
            if !f.invalidate {
                bump!(node.stats, delete_hits);
            }
            if f.quiet {
                return;
            }
            MetaStatus::Hd
        }
        MetaDeleteOutcome::NotFound => {
            bump!(node.stats, delete_misses);
            MetaStatus::Nf
        }
        MetaDeleteOutcome::Exists => {
            bump!(node.stats, delete_misses);
            MetaStatus::Ex
        }
    };
    reply::meta_status(out, status);
    opaque_and_key(req, out);
    reply::crlf(out);
}

fn arith(node: &Node, req: &MetaRequest, out: &mut BytesMut) {
    let (order, n) = flag_order(req);
    let f = &req.flags;
    let incr = !matches!(f.mode, Some(b'D' | b'-'));
    let opts = MetaArithOpts {
        incr,
        delta: f.delta.unwrap_or(1),
        vivify: f.vivify,
        initial: f.initial.unwrap_or(0),
        compare_cas: f.compare_cas,
        new_cas: f.new_cas,
        ttl: f.ttl,
    };
    let hit = match node
        .store
        .meta_arith_with(&req.key, &opts, &extra(req, &order[..n]))
    {
        Ok(hit) => hit,
        Err(ArithOutcome::NonNumeric) => {
            reply::message(out, Fault::NON_NUMERIC);
            return;
        }
        Err(other) => {
            match (other, incr) {
                (ArithOutcome::NotFound, true) => bump!(node.stats, incr_misses),
                (ArithOutcome::NotFound, false) => bump!(node.stats, decr_misses),
                _ => 0,
            };
            reply::meta_status(
                out,
                if matches!(other, ArithOutcome::NotFound) {
                    MetaStatus::Nf
                } else {
                    MetaStatus::Ex
                },
            );
            opaque_and_key(req, out);
            reply::crlf(out);
            return;
        }
    };
    if incr {
        bump!(node.stats, incr_hits);
    } else {
        bump!(node.stats, decr_hits);
    }
    if f.quiet {
        return;
    }
    let mut digits = [0u8; 20];
    let digits = {
        let mut w = &mut digits[..];
        put_u64(&mut w, hit.value);
        let left = w.len();
        &digits[..20 - left]
    };
    if f.value {
        reply::meta_va(out, digits.len() as u64);
    } else {
        reply::meta_status(out, MetaStatus::Hd);
    }
    for (flag, tok) in req.tokens() {
        match flag {
            b'c' => reply::meta_flag_num(out, b'c', hit.cas),
            b't' => reply::meta_flag_ttl(out, hit.ttl),
            b'O' => reply::meta_flag_token(out, b'O', tok),
            b'k' => reply::meta_flag_key(out, &req.key, req.flags.base64),
            _ => {}
        }
    }
    reply::crlf(out);
    if f.value {
        reply::data_block(out, digits);
    }
}

/// `me <key>`: `ME <key> exp=.. la=.. cas=.. fetch=.. cls=.. size=..` or `EN`.
pub fn debug(node: &Node, key: &[u8], out: &mut BytesMut) {
    match node.store.meta_debug(key) {
        // memcached prints the key as the item was stored (base64 if it was binary).
        Some(d) => reply::meta_debug(out, key, d.binary_key, &d.fields()),
        None => {
            reply::meta_status(out, MetaStatus::En);
            reply::crlf(out);
        }
    }
}
