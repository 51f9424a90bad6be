//! Hinted handoff: repairing a node from exactly the writes it missed, and keeping replicas of
//! a conditional write in step, instead of flushing nodes that merely paused.
//!
//! A node that misses a write (down, or a failed copy) gets a *hint*: the key only
//! (`health.rs`), and serves no read of that key until it is replayed. Replaying a hint
//! copies the key's current state from an owner in sync for it: that owner's item replaces
//! the node's copy only if the copy is unchanged (`ms ... C<its cas>`, an add when it has
//! none), so the key is never missing meanwhile and a newer write that reached the node
//! wins; a key that owner lacks is deleted on the node likewise; then the source is checked
//! again, as below.
//!
//! A conditional write's result is copied to the other replicas from a snapshot of the node
//! that ran it; two routers' copies of one key can reach a replica in either order, so after
//! writing, the copier checks that the source still holds the very item it copied, and copies
//! again if not. Whatever changed the source later copies after that check, so the last copy
//! to land is the newest. A copy that fails, or a source that keeps changing, leaves a hint on
//! the replica: it is repaired, never silently left behind.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;

use super::{replica_store, version, Router};
use crate::protocol::{MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response, StoreCmd};
use crate::topology::NodeEntry;
use crate::Error;

/// Rounds of copy-and-check before a conditional write's replicas are left to a replay.
const REPLICATE_ROUNDS: usize = 4;

impl Router {
    /// The CAS of `key` on `node` (`mg <key> c`), `None` if absent.
    pub(crate) async fn cas_on(
        &self,
        node: &Arc<NodeEntry>,
        key: &Bytes,
    ) -> Result<Option<u64>, Error> {
        let flags = MetaFlags {
            ret_cas: true,
            ..MetaFlags::default()
        };
        let m = self.mg(node, key, flags).await?;
        match m.status {
            MetaStatus::Hd | MetaStatus::Va => {
                let cas = m.flag_u64(b'c').unwrap_or(0);
                self.observe_cas(cas);
                Ok(Some(cas))
            }
            MetaStatus::En | MetaStatus::Nf => Ok(None),
            _ => Err(Error::UnexpectedReply(format!(
                "{}: to mg: {m:?}",
                node.name
            ))),
        }
    }

    /// Copies `key` as `from` holds it after a conditional write to `to`, and checks that
    /// `from` still holds that very item; copies again if it changed meanwhile (another
    /// router's copy of an older state may have landed after the newer one). Replicas that
    /// miss a copy, or whose copy cannot be confirmed, get a hint.
    ///
    /// Returns whether a copy of the item as it was after the write (or a later state)
    /// reached every one of `to`: if not, the write's result may live on `from` alone, and a
    /// crash of `from` right after would lose it (`ringcache-bench netns-counters` lost the
    /// increments in flight when a primary was killed), so the caller does not acknowledge it.
    pub(crate) async fn replicate(
        &self,
        from: &Arc<NodeEntry>,
        to: &[Arc<NodeEntry>],
        key: &Bytes,
    ) -> bool {
        let mut copied = false;
        for _ in 0..REPLICATE_ROUNDS {
            let item = match self.snapshot(from, key).await {
                Ok(item) => item,
                Err(_) => break,
            };
            let results = join_all(to.iter().map(|node| {
                let req = match &item {
                    Some(m) => replica_store(node, key, &m.value, m.flags, m.ttl, m.cas, false),
                    None => Request::Delete {
                        key: key.clone(),
                        noreply: false,
                    },
                };
                // A failed copy marks the replica down and hints the key.
                self.send_write(node, req)
            }))
            .await;
            copied |= results.iter().all(|r| r.is_ok());
            match (self.cas_on(from, key).await, &item) {
                (Ok(Some(now)), Some(m)) if now == m.cas => return copied,
                (Ok(None), None) => return copied,
                (Ok(_), _) => continue,
                (Err(_), _) => break,
            }
        }
        // The source failed, or kept changing under other writers: the replicas get a hint
        // (they stop answering reads of this key) and a replay copies the state the key
        // settles on from an owner in sync. They stay `Up` for every other key.
        for node in to {
            if node.health.is_usable() {
                self.hinted(node, node.health.hint_lagging(key));
            }
        }
        copied
    }

    /// Brings `node`'s copy of `key` to the key's current state (see the module comment):
    /// the first up owner's item replaces the node's copy only if that copy is unchanged
    /// (compare on its CAS; an add if it has none), so the key is never missing meanwhile and
    /// a newer write that reached the node wins; a key that owner lacks is deleted there
    /// likewise. Afterwards the source is checked again, as for a conditional write's copy.
    /// With no owner in sync to copy from, the hint is kept (`Err`) and the node's copy left
    /// alone, so it serves no read of the key until a source returns — unless every owner is
    /// reachable and hinted for the key (each missed a write another took): then the copy
    /// with the highest CAS is taken as the newest (the router's CAS of an unconditional write
    /// is its clock in nanoseconds), and the others are brought to it.
    pub(super) async fn replay_key(&self, node: &Arc<NodeEntry>, key: &Bytes) -> Result<(), Error> {
        let topo = self.topology();
        let owner = topo.owner_nodes(key).any(|n| Arc::ptr_eq(n, node));
        let mut source = topo
            .owner_nodes(key)
            .find(|n| !Arc::ptr_eq(n, node) && n.health.in_sync(key))
            .cloned();
        if owner && source.is_none() {
            let peers: Vec<Arc<NodeEntry>> = topo
                .owner_nodes(key)
                .filter(|n| !Arc::ptr_eq(n, node))
                .cloned()
                .collect();
            if peers.iter().any(|n| !n.health.is_usable()) {
                return Err(no_source(key));
            }
            let mine = self.cas_on(node, key).await?;
            let mut newest: Option<(Arc<NodeEntry>, Option<u64>)> = None;
            for p in peers {
                let theirs = self.cas_on(&p, key).await?;
                if theirs > mine && newest.as_ref().is_none_or(|(_, c)| theirs > *c) {
                    newest = Some((p, theirs));
                }
            }
            match newest {
                Some((p, _)) => source = Some(p),
                // This node's copy is the newest: it is in sync, and the others copy from it.
                None => return Ok(()),
            }
        }
        for _ in 0..REPLICATE_ROUNDS {
            let mine = self.cas_on(node, key).await?;
            let item = match (&source, owner) {
                (Some(src), true) => self.snapshot(src, key).await?,
                // Not an owner any more: its copy only goes.
                (_, false) => None,
                (None, true) => return Err(no_source(key)),
            };
            let req = match (&item, mine) {
                (Some(m), Some(c)) if m.cas == c && c != 0 => return Ok(()),
                // The node's copy is newer than the source's (a write through another router
                // reached it and not yet the source): a copy never replaces a newer item.
                (Some(m), Some(c))
                    if c > m.cas
                        && source
                            .as_ref()
                            .is_some_and(|s| version::comparable(s, node)) =>
                {
                    return Ok(())
                }
                (None, None) => return Ok(()),
                (Some(m), mine) => {
                    let req =
                        replica_store(node, key, &m.value, m.flags, m.ttl, m.cas, mine.is_none());
                    with_compare(req, mine)
                }
                (None, Some(c)) => Request::Meta(Box::new(MetaRequest::new(
                    MetaCmd::Delete,
                    key.clone(),
                    MetaFlags {
                        compare_cas: Some(c),
                        ..MetaFlags::default()
                    },
                    None,
                ))),
            };
            match self.send(node, req).await? {
                Response::Stored | Response::Deleted | Response::NotFound => {}
                Response::Meta(m) if matches!(m.status, MetaStatus::Hd | MetaStatus::Nf) => {}
                // The node's copy changed meanwhile: look again.
                Response::Exists | Response::NotStored => continue,
                Response::Meta(m) if matches!(m.status, MetaStatus::Ex | MetaStatus::Ns) => {
                    continue
                }
                other => {
                    return Err(Error::UnexpectedReply(format!(
                        "{}: to a replay: {other:?}",
                        node.name
                    )))
                }
            }
            let Some(src) = &source else { return Ok(()) };
            let now = self.cas_on(src, key).await?;
            if now == item.as_ref().map(|m| m.cas) {
                return Ok(());
            }
        }
        Err(Error::Contended(format!(
            "{}: {} keeps changing",
            node.name,
            String::from_utf8_lossy(key)
        )))
    }
}

/// The replay of `key` waits for an owner in sync to copy from.
fn no_source(key: &[u8]) -> Error {
    Error::ConnectionClosed(format!(
        "no owner in sync to replay {} from",
        String::from_utf8_lossy(key)
    ))
}

/// `req` (a replica's store from [`replica_store`]) made to replace only the copy whose CAS
/// is `mine`: `ms ... C<mine>`, or a classic `cas`. With `mine` absent it is already an add.
fn with_compare(req: Request, mine: Option<u64>) -> Request {
    let Some(c) = mine else { return req };
    match req {
        Request::Meta(r) => {
            let mut f = r.flags.clone();
            f.compare_cas = Some(c);
            Request::Meta(Box::new(MetaRequest::new(r.cmd, r.key, f, r.value)))
        }
        Request::Store {
            key,
            flags,
            exptime,
            value,
            ..
        } => Request::Store {
            cmd: StoreCmd::Cas,
            key,
            flags,
            exptime,
            cas: c,
            value,
            noreply: false,
        },
        other => other,
    }
}
