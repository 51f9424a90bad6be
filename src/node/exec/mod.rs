//! Carrying out one parsed request against the store and writing memcached's reply.
//!
//! One file per family of verbs, as pelikan splits its protocol handlers: [`classic`] for the
//! storage and retrieval verbs, [`meta`] for `mg`/`ms`/`md`/`ma`/`me`, [`admin`] for stats,
//! flush, version and the other server commands.

mod admin;
mod classic;
mod meta;

use bytes::{Bytes, BytesMut};
use ringcache_client::protocol::{reply, Fault, GetCmd, Request};

use super::stats::Verb;
use super::Node;
use crate::bump;

pub use admin::MetadumpChunks;

/// Reply bytes a multi-get gathers before it hands control back to the connection to write
/// them: a `get` naming a large value thousands of times (one 1 MiB line holds 500 000 keys)
/// is answered in pieces of this size, so a reply is never built whole in memory.
pub const REPLY_CHUNK: usize = 256 * 1024;

/// What the connection does after a request.
#[derive(Debug)]
pub enum Flow {
    /// Go on with the next request.
    Continue,
    /// Write what is pending and close (`quit`, `shutdown`).
    Close,
    /// Write what is pending, then the chunks of [`MetadumpChunks`].
    Metadump,
    /// A multi-get stopped after [`REPLY_CHUNK`] bytes: write what is pending, then
    /// [`resume`] it.
    More(GetCursor),
}

/// Where a multi-get answered in pieces goes on from. The keys are slices of the request's
/// line, so holding them costs no copy.
#[derive(Debug)]
pub struct GetCursor {
    cmd: GetCmd,
    exptime: Option<i64>,
    keys: Vec<Bytes>,
    next: usize,
}

/// Answers the next piece of a multi-get; `Flow::More` again until its `END` is written.
pub fn resume(node: &Node, mut cur: GetCursor, out: &mut BytesMut) -> Flow {
    match classic::get(node, cur.cmd, cur.exptime, &cur.keys, cur.next, out) {
        Some(next) => {
            cur.next = next;
            Flow::More(cur)
        }
        None => Flow::Continue,
    }
}

/// Executes one decoded item (a request, or a refused request) and appends the reply to `out`.
pub fn execute(node: &Node, item: Result<Request, Fault>, out: &mut BytesMut) -> Flow {
    let verb = Verb::of(&item);
    node.stats.command(verb);
    let req = match item {
        Ok(req) => req,
        Err(fault) => {
            refuse(node, fault, out);
            return Flow::Continue;
        }
    };
    // A draining node stays until it goes unasked; the routers' `stats` and `version`
    // (their discovery and probes) do not count as being needed.
    if node.drain.active() && !matches!(req, Request::Stats { .. } | Request::Version) {
        node.drain.touch();
    }
    match req {
        Request::Get { cmd, exptime, keys } => {
            if let Some(next) = classic::get(node, cmd, exptime, &keys, 0, out) {
                return Flow::More(GetCursor {
                    cmd,
                    exptime,
                    keys,
                    next,
                });
            }
        }
        Request::Store {
            cmd,
            key,
            flags,
            exptime,
            cas,
            value,
            noreply,
        } => classic::store(node, cmd, &key, flags, exptime, cas, value, noreply, out),
        Request::Delete { key, noreply } => classic::delete(node, &key, noreply, out),
        Request::Arith {
            cmd,
            key,
            delta,
            noreply,
        } => classic::arith(node, cmd, &key, delta, noreply, out),
        Request::Touch {
            key,
            exptime,
            noreply,
        } => classic::touch(node, &key, exptime, noreply, out),
        Request::Meta(m) => meta::execute(node, &m, out),
        Request::MetaNoop => reply::meta_noop(out),
        // How the key was spelled does not matter: `me` prints it as the item was stored.
        Request::MetaDebug { key, .. } => meta::debug(node, &key, out),
        Request::Quit => return Flow::Close,
        other => return admin::execute(node, other, out),
    }
    Flow::Continue
}

/// Answers a refused request exactly as memcached would, and counts it.
fn refuse(node: &Node, fault: Fault, out: &mut BytesMut) {
    node.stats.protocol_error(fault.kind());
    if fault.message == Fault::TOO_LARGE {
        bump!(node.stats, store_too_large);
    }
    if let Some(key) = &fault.unlink {
        // A failed set must not leave the previous value readable.
        node.store.delete(key);
    }
    if !fault.noreply {
        reply::message(out, fault.message);
    }
}

/// Writes a reply with `write` unless the client asked for `noreply`.
#[inline]
fn unless_noreply(out: &mut BytesMut, noreply: bool, write: impl FnOnce(&mut BytesMut)) {
    if !noreply {
        write(out);
    }
}
