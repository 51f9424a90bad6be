//! Carrying out one parsed request against the store and writing memcached's reply.
//!
//! One file per family of verbs, as pelikan splits its protocol handlers: [`classic`] for the
//! storage and retrieval verbs, [`meta`] for `mg`/`ms`/`md`/`ma`/`me`, [`admin`] for stats,
//! flush, version and the other server commands.

mod admin;
mod classic;
mod meta;

use bytes::{BufMut, BytesMut};
use ringcache_client::protocol::{Fault, Request};

use super::stats::Verb;
use super::Node;
use crate::bump;

pub use admin::stream_metadump;

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on with the next request.
    Continue,
    /// Write what is pending and close (`quit`, `shutdown`).
    Close,
    /// Write what is pending, then stream `lru_crawler metadump` output.
    Metadump,
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
    match req {
        Request::Get { cmd, exptime, keys } => classic::get(node, cmd, exptime, &keys, out),
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
        Request::MetaNoop => out.put_slice(b"MN\r\n"),
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
        line(out, fault.message.as_bytes());
    }
}

/// Appends `text` and `\r\n`.
#[inline]
fn line(out: &mut BytesMut, text: &[u8]) {
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

/// Appends a reply line unless the client asked for `noreply`.
#[inline]
fn reply(out: &mut BytesMut, noreply: bool, text: &[u8]) {
    if !noreply {
        line(out, text);
    }
}
