//! The meta verbs: `mg`, `ms`, `md`, `ma` and `me`.
//!
//! Replies echo the return flags in the order the client gave them (memcached walks the request
//! tokens when it writes the reply), followed by the stale-while-revalidate flags `Z`, `X`, `W`.
//! `q` hides the nominal reply: `EN` for mg, `HD` for ms/md/ma.

use bytes::{BufMut, Bytes, BytesMut};
use ringcache_client::protocol::meta::put_key;
use ringcache_client::protocol::number::{put_i64, put_u64};
use ringcache_client::protocol::{MetaCmd, MetaRequest};

use super::line;
use crate::bump;
use crate::node::store::{
    ArithOutcome, MetaArithOpts, MetaDeleteOpts, MetaDeleteOutcome, MetaExtra, MetaGetOpts,
    MetaSetOpts, StoreMode, StoreOutcome,
};
use crate::node::Node;

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
            b'O' => opaque_flag(out, tok),
            b'k' => key_flag(&req.key, req.flags.base64, out),
            _ => {}
        }
    }
}

/// ` O<opaque>`, echoed as sent.
fn opaque_flag(out: &mut BytesMut, tok: &[u8]) {
    out.put_slice(b" O");
    out.put_slice(tok);
}

/// ` k<key>`; base64 with ` b` after it when the key is binary. For an item, "binary" is how it
/// was stored (memcached remembers it on the item), not how this request spelled the key.
fn key_flag(key: &[u8], binary: bool, out: &mut BytesMut) {
    out.put_slice(b" k");
    put_key(out, key, binary);
    if binary {
        out.put_slice(b" b");
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

/// Appends ` <c><n>`.
fn num_flag(out: &mut BytesMut, c: u8, n: u64) {
    out.put_u8(b' ');
    out.put_u8(c);
    put_u64(out, n);
}

fn ttl_flag(out: &mut BytesMut, ttl: Option<i64>) {
    out.put_slice(b" t");
    put_i64(out, ttl.unwrap_or(-1));
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
            out.put_slice(b"EN");
            opaque_and_key(req, out);
            out.put_slice(b"\r\n");
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
        out.put_slice(b"VA ");
        put_u64(out, value.len() as u64);
    } else {
        out.put_slice(b"HD");
    }
    for (flag, tok) in req.tokens() {
        match flag {
            b's' => num_flag(out, b's', value.len() as u64),
            b't' => ttl_flag(out, hit.ttl),
            b'c' => num_flag(out, b'c', hit.item.cas()),
            b'f' => num_flag(out, b'f', u64::from(hit.item.flags())),
            b'l' => num_flag(out, b'l', hit.last_access_ago),
            b'h' => out.put_slice(if hit.fetched_before { b" h1" } else { b" h0" }),
            b'O' => opaque_flag(out, tok),
            b'k' => key_flag(&req.key, hit.item.binary_key(), out),
            _ => {}
        }
    }
    if hit.token_sent_before {
        out.put_slice(b" Z");
    }
    if hit.stale {
        out.put_slice(b" X");
    }
    if hit.won {
        out.put_slice(b" W");
    }
    out.put_slice(b"\r\n");
    if f.value {
        out.put_slice(value);
        out.put_slice(b"\r\n");
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
    let code: &[u8] = match outcome {
        StoreOutcome::Stored => {
            if f.quiet {
                return;
            }
            b"HD"
        }
        StoreOutcome::NotStored => b"NS",
        StoreOutcome::Exists => b"EX",
        StoreOutcome::NotFound => b"NF",
        StoreOutcome::TooLarge => {
            bump!(node.stats, store_too_large);
            line(out, b"SERVER_ERROR object too large for cache");
            return;
        }
    };
    out.put_slice(code);
    for (flag, tok) in req.tokens() {
        match flag {
            b'O' => opaque_flag(out, tok),
            b'k' => key_flag(&req.key, req.flags.base64, out),
            b'c' => num_flag(out, b'c', cas),
            _ => {}
        }
    }
    out.put_slice(b"\r\n");
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
    let code: &[u8] = match node
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
            b"HD"
        }
        MetaDeleteOutcome::NotFound => {
            bump!(node.stats, delete_misses);
            b"NF"
        }
        MetaDeleteOutcome::Exists => {
            bump!(node.stats, delete_misses);
            b"EX"
        }
    };
    out.put_slice(code);
    opaque_and_key(req, out);
    out.put_slice(b"\r\n");
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
            line(
                out,
                b"CLIENT_ERROR cannot increment or decrement non-numeric value",
            );
            return;
        }
        Err(other) => {
            match (other, incr) {
                (ArithOutcome::NotFound, true) => bump!(node.stats, incr_misses),
                (ArithOutcome::NotFound, false) => bump!(node.stats, decr_misses),
                _ => 0,
            };
            out.put_slice(if matches!(other, ArithOutcome::NotFound) {
                b"NF"
            } else {
                b"EX"
            });
            opaque_and_key(req, out);
            out.put_slice(b"\r\n");
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
    let mut digits = BytesMut::new();
    put_u64(&mut digits, hit.value);
    if f.value {
        out.put_slice(b"VA ");
        put_u64(out, digits.len() as u64);
    } else {
        out.put_slice(b"HD");
    }
    for (flag, tok) in req.tokens() {
        match flag {
            b'c' => num_flag(out, b'c', hit.cas),
            b't' => ttl_flag(out, hit.ttl),
            b'O' => opaque_flag(out, tok),
            b'k' => key_flag(&req.key, req.flags.base64, out),
            _ => {}
        }
    }
    out.put_slice(b"\r\n");
    if f.value {
        out.put_slice(&digits);
        out.put_slice(b"\r\n");
    }
}

/// `me <key>`: `ME <key> exp=.. la=.. cas=.. fetch=.. cls=.. size=..` or `EN`.
pub fn debug(node: &Node, key: &[u8], out: &mut BytesMut) {
    match node.store.meta_debug(key) {
        Some(d) => {
            out.put_slice(b"ME ");
            // memcached prints the key as the item was stored (base64 if it was binary).
            put_key(out, key, d.binary_key);
            out.put_slice(b" exp=");
            put_i64(out, d.exp);
            out.put_slice(b" la=");
            put_u64(out, d.la);
            out.put_slice(b" cas=");
            put_u64(out, d.cas);
            out.put_slice(if d.fetched {
                b" fetch=yes"
            } else {
                b" fetch=no"
            });
            out.put_slice(b" cls=");
            put_u64(out, u64::from(d.cls));
            out.put_slice(b" size=");
            put_u64(out, d.size);
            out.put_slice(b"\r\n");
        }
        None => line(out, b"EN"),
    }
}
