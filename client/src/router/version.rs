//! Versions: every item a router writes carries a CAS that is a hybrid logical clock, so that
//! copies made by any router converge on the newest item instead of the last copy to land.
//!
//! - **The clock.** [`Router::next_cas`] hands out `max(now in ns, last seen + 1)`: strictly
//!   increasing per router, and past every CAS the router has read from a node (a copy's
//!   source, a target's CAS), so a router whose clock is behind another's still stamps a
//!   later write of a key it has seen above that key's version. Across routers the order is
//!   the clocks' order: two writes of one key through different routers closer together than
//!   the routers' clock skew may be ordered the wrong way (docs/cluster.md, "Versions").
//! - **Conditional writes are stamped too** ([`stamp`]): `incr`, `decr`, `add`, `replace`,
//!   `append`, `prepend` and `cas` go to the node as their meta form with `E<clock>` (meta
//!   requests get `E` added), and the node's meta reply is turned back into the classic one.
//!   Without this, a conditional write's result carried the node's own counter (1, 2, …), which
//!   any router-stamped `set` outranks, so an increment could lose a version comparison to the
//!   older `set` it had incremented. Nodes without `E` (memcached < 1.6.27) are sent the
//!   request as it was: their CAS values are their own, and copies to them stay adds.
//! - **A copy never replaces a newer item** ([`versioned_copy`]): it reads the target's CAS
//!   first (`mg <key> c`) and writes `ms … ME E<cas>` where the target lacks the key,
//!   `ms … C<target cas> E<cas>` where the target's item is older, and nothing where it is as
//!   new or newer. The compare makes the write atomic against a write that lands between the
//!   read and the write: that one wins.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::Router;
use crate::protocol::number::parse_u64;
use crate::protocol::{
    ArithCmd, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response, StoreCmd,
};
use crate::topology::{CasSupport, NodeEntry};

/// How far ahead of this router's clock a version read from a node may pull it: beyond any
/// clock skew NTP leaves between hosts, well short of a client's arbitrary `E<cas>`.
pub(crate) const MAX_AHEAD: Duration = Duration::from_secs(10);

/// Nanoseconds since the epoch (1 if the clock reads before it).
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

impl Router {
    /// Moves this router's clock past `cas`, a version read from a node: the next write it
    /// stamps is newer than every item it has seen. Node counters (small numbers) never move
    /// a clock that started from the time of day.
    ///
    /// A version further ahead of this router's clock than [`MAX_AHEAD`] is not followed: a
    /// client may set any CAS (`ms … E<cas>`), and one near `u64::MAX` must not drag every
    /// later version there. Such an item then outranks this router's writes until it is
    /// written again through the router that set it or deleted.
    pub(crate) fn observe_cas(&self, cas: u64) {
        if cas <= now_nanos().saturating_add(MAX_AHEAD.as_nanos() as u64) {
            self.inner.cas_seq.fetch_max(cas, Ordering::Relaxed);
        }
    }
}

/// What the node's reply to a stamped request must be turned back into, so the caller gets
/// the reply of the request it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// The request went as it was: its reply is the caller's.
    AsIs,
    /// A classic `incr`/`decr` sent as `ma … v`: `VA` → the number, `NF` → `NOT_FOUND`.
    Arith,
    /// A classic storage verb sent as `ms`: `HD` → `STORED`, `NS` → `NOT_STORED`,
    /// `EX` → `EXISTS`, `NF` → `NOT_FOUND`.
    Store,
}

/// `req`, a conditional write about to run on `node`, carrying the version `cas` where the
/// node takes `E` (see the module comment); and how to turn the node's reply back.
pub(crate) fn stamp(node: &NodeEntry, req: Request, cas: u64) -> (Request, Reply) {
    if node.cas_support() == CasSupport::No {
        return (req, Reply::AsIs);
    }
    match req {
        Request::Meta(mut m) if matches!(m.cmd, MetaCmd::Set | MetaCmd::Arith) => {
            // On the typed flags only: the encoder appends `E` after the client's own flags,
            // whose order the node's reply keeps.
            if m.flags.new_cas.is_none() {
                m.flags.new_cas = Some(cas);
            }
            (Request::Meta(m), Reply::AsIs)
        }
        Request::Arith {
            cmd, key, delta, ..
        } => {
            let f = MetaFlags {
                value: true,
                delta: Some(delta),
                mode: Some(match cmd {
                    ArithCmd::Incr => b'I',
                    ArithCmd::Decr => b'D',
                }),
                new_cas: Some(cas),
                ..MetaFlags::default()
            };
            let m = MetaRequest::new(MetaCmd::Arith, key, f, None);
            (Request::Meta(Box::new(m)), Reply::Arith)
        }
        Request::Store {
            cmd,
            key,
            flags,
            exptime,
            cas: compare,
            value,
            ..
        } if cmd != StoreCmd::Set => {
            // append/prepend keep the item's flags and TTL, as the classic verbs do.
            let joins = matches!(cmd, StoreCmd::Append | StoreCmd::Prepend);
            let f = MetaFlags {
                client_flags: (!joins).then_some(flags),
                ttl: (!joins).then_some(exptime),
                compare_cas: (cmd == StoreCmd::Cas).then_some(compare),
                mode: match cmd {
                    StoreCmd::Add => Some(b'E'),
                    StoreCmd::Replace => Some(b'R'),
                    StoreCmd::Append => Some(b'A'),
                    StoreCmd::Prepend => Some(b'P'),
                    StoreCmd::Cas | StoreCmd::Set => None,
                },
                new_cas: Some(cas),
                ..MetaFlags::default()
            };
            let m = MetaRequest::new(MetaCmd::Set, key, f, Some(value));
            (Request::Meta(Box::new(m)), Reply::Store)
        }
        other => (other, Reply::AsIs),
    }
}

/// The node's reply to a [`stamp`]ed request as the reply to the request the caller sent.
pub(crate) fn unstamp(reply: Reply, resp: Response) -> Response {
    let Response::Meta(m) = resp else {
        return resp;
    };
    match (reply, m.status) {
        (Reply::Arith, MetaStatus::Va) => {
            // memcached rewrites a shorter number in place, padded with spaces.
            let v = m.value.as_deref().unwrap_or_default();
            let digits = v.trim_ascii_end();
            match parse_u64(digits) {
                Some(n) => Response::Number(n),
                None => Response::Meta(m),
            }
        }
        (Reply::Arith | Reply::Store, MetaStatus::Nf) => Response::NotFound,
        (Reply::Store, MetaStatus::Hd) => Response::Stored,
        (Reply::Store, MetaStatus::Ns) => Response::NotStored,
        (Reply::Store, MetaStatus::Ex) => Response::Exists,
        _ => Response::Meta(m),
    }
}

/// What a versioned copy of an item with version `source` does on a target holding
/// `target` (its CAS, `None` when it lacks the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Copy {
    /// The target lacks the key: an add.
    Add,
    /// The target's item is older: replace it if it is still that one (`C<its cas>`).
    Replace(u64),
    /// The target's item is as new or newer: nothing to write.
    Keep,
}

/// Decides a copy by comparing versions (see [`Copy`]).
pub(crate) fn decide(source: u64, target: Option<u64>) -> Copy {
    match target {
        None => Copy::Add,
        Some(t) if t < source => Copy::Replace(t),
        Some(_) => Copy::Keep,
    }
}

/// One item as a copy reproduces it: value, client flags, the exptime to write, version.
pub(crate) struct Item<'a> {
    pub value: &'a Bytes,
    pub flags: u32,
    pub ttl: i64,
    pub cas: u64,
}

/// The `ms` that puts `item` on `node` as decided (`Add`: `ME`; `Replace(t)`: `C<t>`), with
/// the source's CAS (`E`) and `c`, so the caller learns the CAS the copy got.
pub(crate) fn versioned_copy(node: &NodeEntry, key: &Bytes, item: Item<'_>, how: Copy) -> Request {
    let explicit = node.cas_support() != CasSupport::No && item.cas != 0;
    let f = MetaFlags {
        client_flags: Some(item.flags),
        ttl: Some(item.ttl),
        new_cas: explicit.then_some(item.cas),
        mode: matches!(how, Copy::Add).then_some(b'E'),
        compare_cas: match how {
            Copy::Replace(t) => Some(t),
            _ => None,
        },
        ret_cas: true,
        ..MetaFlags::default()
    };
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Set,
        key.clone(),
        f,
        Some(item.value.clone()),
    )))
}

/// Whether versions on `from` and `to` are comparable: both take `E`, so their CAS values
/// are routers' clocks. Otherwise a copy stays an add.
pub(crate) fn comparable(from: &NodeEntry, to: &NodeEntry) -> bool {
    from.cas_support() != CasSupport::No && to.cas_support() != CasSupport::No
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_never_replaces_a_newer_or_equal_version() {
        assert_eq!(decide(10, None), Copy::Add);
        assert_eq!(decide(10, Some(9)), Copy::Replace(9));
        assert_eq!(decide(10, Some(10)), Copy::Keep);
        assert_eq!(decide(10, Some(11)), Copy::Keep);
    }

    #[test]
    fn stamped_replies_read_as_the_classic_ones() {
        let va = |v: &'static [u8]| {
            Response::Meta(crate::protocol::MetaResponse {
                status: MetaStatus::Va,
                flags: Bytes::new(),
                value: Some(Bytes::from_static(v)),
            })
        };
        let st = |s| {
            Response::Meta(crate::protocol::MetaResponse {
                status: s,
                flags: Bytes::new(),
                value: None,
            })
        };
        assert_eq!(unstamp(Reply::Arith, va(b"42")), Response::Number(42));
        assert_eq!(unstamp(Reply::Arith, va(b"7  ")), Response::Number(7));
        assert_eq!(
            unstamp(Reply::Arith, st(MetaStatus::Nf)),
            Response::NotFound
        );
        assert_eq!(unstamp(Reply::Store, st(MetaStatus::Hd)), Response::Stored);
        assert_eq!(
            unstamp(Reply::Store, st(MetaStatus::Ns)),
            Response::NotStored
        );
        assert_eq!(unstamp(Reply::Store, st(MetaStatus::Ex)), Response::Exists);
        assert_eq!(
            unstamp(Reply::Store, st(MetaStatus::Nf)),
            Response::NotFound
        );
        let e = Response::ClientError(Bytes::from_static(b"cannot increment"));
        assert_eq!(unstamp(Reply::Arith, e.clone()), e);
    }
}
