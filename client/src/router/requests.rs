//! The engine's request builders (the copies, touches and deletes it sends of its own accord,
//! in classic or meta form as the key and the node allow) and the checks of what a reply means.

use bytes::Bytes;

use crate::error::{Error, Refused};
use crate::protocol::{
    valid_key, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response, StoreCmd,
};
use crate::topology::{CasSupport, NodeEntry};

pub(crate) fn unexpected(resp: &Response) -> Error {
    match resp {
        Response::Error => Error::Server(Refused::Unknown),
        Response::ClientError(m) => {
            Error::Server(Refused::Client(String::from_utf8_lossy(m).into_owned()))
        }
        Response::ServerError(m) => {
            Error::Server(Refused::Server(String::from_utf8_lossy(m).into_owned()))
        }
        other => Error::UnexpectedReply(format!("{other:?}")),
    }
}

pub(crate) fn is_miss(resp: &Response) -> bool {
    match resp {
        Response::Values(v) => v.is_empty(),
        Response::Meta(m) => m.status == MetaStatus::En,
        _ => false,
    }
}

pub(super) fn is_meta(resp: &Response, status: MetaStatus) -> bool {
    matches!(resp, Response::Meta(m) if m.status == status)
}

/// Whether a conditional write's reply means the item changed (so replicas need a copy).
pub(super) fn changed(resp: &Response) -> bool {
    match resp {
        Response::Stored | Response::Touched | Response::Number(_) => true,
        Response::Meta(m) => matches!(m.status, MetaStatus::Hd | MetaStatus::Va),
        _ => false,
    }
}

/// The key a single-key request names (hints record it; a multi-get is never a write).
pub(super) fn request_key(req: &Request) -> Option<Bytes> {
    req.keys().and_then(|k| k.first()).cloned()
}

/// `delete <key>`, or `md <base64> b` for a key that is not a valid text key (a binary key a
/// client sent base64): a decoded key is never written raw, where it could end the line.
pub(crate) fn delete_request(key: &Bytes) -> Request {
    if valid_key(key) {
        return Request::Delete {
            key: key.clone(),
            noreply: false,
        };
    }
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Delete,
        key.clone(),
        MetaFlags::default(),
        None,
    )))
}

/// `touch <key> <exptime>`, or `mg <base64> b T<exptime>` (meta's touch) for a binary key.
pub(super) fn touch_request(key: &Bytes, exptime: i64) -> Request {
    if valid_key(key) {
        return Request::Touch {
            key: key.clone(),
            exptime,
            noreply: false,
        };
    }
    let f = MetaFlags {
        ttl: Some(exptime),
        ..MetaFlags::default()
    };
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Get,
        key.clone(),
        f,
        None,
    )))
}

/// The write that puts one replica's copy in place: `ms` with the explicit CAS where the node
/// takes it, else a classic `set` (the node then picks its own CAS). With `add`, only stored
/// if the replica does not hold the key (`ms ... ME` / `add`). A binary key always goes as
/// `ms` with `b`. `exptime` is what the copy is written with (see
/// [`crate::protocol::expiry::copy_exptime`] for one taken from a remaining TTL).
pub(crate) fn replica_store(
    node: &NodeEntry,
    key: &Bytes,
    value: &Bytes,
    flags: u32,
    exptime: i64,
    cas: u64,
    add: bool,
) -> Request {
    let explicit_cas = node.cas_support() != CasSupport::No && cas != 0;
    if !explicit_cas && valid_key(key) {
        return Request::Store {
            cmd: if add { StoreCmd::Add } else { StoreCmd::Set },
            key: key.clone(),
            flags,
            exptime,
            cas: 0,
            value: value.clone(),
            noreply: false,
        };
    }
    let f = MetaFlags {
        client_flags: Some(flags),
        ttl: Some(exptime),
        new_cas: explicit_cas.then_some(cas),
        mode: add.then_some(b'E'),
        ..MetaFlags::default()
    };
    Request::Meta(Box::new(MetaRequest::new(
        MetaCmd::Set,
        key.clone(),
        f,
        Some(value.clone()),
    )))
}
