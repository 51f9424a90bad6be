//! Requests during a membership transition (docs/cluster.md): how a key that has changed owners is
//! found, moved and deleted while the old ring is still kept beside the new one.
//!
//! - A read that misses on the new owners asks the key's past owners; a hit there is copied to
//!   the new owners with add semantics (never overwriting a newer write) and then read back
//!   from the new owners, so the caller gets the new owners' answer in its own format.
//! - A conditional write (add, replace, cas, append, prepend, incr, decr, touch, meta modes)
//!   first pulls the key to its new owners the same way, so it applies to the current value.
//! - A delete goes to the new and the past owners, so nothing deleted comes back.
//!
//! Every copy is checked afterwards: if the source no longer holds the same item (a delete or
//! write raced the copy), the copy is deleted again, compare-and-delete on its CAS so that a
//! newer write is never removed. That is what keeps a deleted value from being resurrected by
//! a read-through or by the migrator.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;

use super::{is_miss, version, Lookup, Router};
use crate::protocol::expiry::{copy_exptime, remaining_ttl};
use crate::protocol::number::parse_u32;
use crate::protocol::{GetCmd, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response};
use crate::topology::{NodeEntry, Topology};
use crate::Error;

/// One item as a source node holds it: what a copy must reproduce.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub value: Bytes,
    pub flags: u32,
    /// The exptime a copy is written with to expire when this item does: 0 = never, a
    /// relative TTL up to 30 days, an absolute Unix time beyond, -1 if expiring this second
    /// ([`copy_exptime`]).
    pub ttl: i64,
    pub cas: u64,
}

/// What [`Router::move_key`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// The source does not hold the key (or lost it during the copy).
    Absent,
    /// Every target already had the key: a newer write (or an earlier copy) won.
    Present,
    /// Copied to this many targets, `bytes` of value each.
    Copied { targets: usize, bytes: usize },
}

impl Router {
    /// Reads `key`'s item with everything a copy needs (`mg v f t c`): `None` on a miss.
    pub(crate) async fn snapshot(
        &self,
        from: &Arc<NodeEntry>,
        key: &Bytes,
    ) -> Result<Option<Snapshot>, Error> {
        let flags = MetaFlags {
            value: true,
            ret_flags: true,
            ret_ttl: true,
            ret_cas: true,
            ..MetaFlags::default()
        };
        let m = self.mg(from, key, flags).await?;
        Ok((m.status == MetaStatus::Va).then(|| {
            self.observed(Snapshot {
                flags: m.flag(b'f').and_then(parse_u32).unwrap_or(0),
                // The remaining TTL as an exptime that keeps the original expiry.
                ttl: copy_exptime(remaining_ttl(m.flag(b't'))),
                cas: m.flag_u64(b'c').unwrap_or(0),
                value: m.value.unwrap_or_default(),
            })
        }))
    }

    /// Copies `key` from `from` to each of `to` that lacks it (add semantics, same value,
    /// flags, remaining TTL and — where the node takes `E` — CAS), then checks that `from`
    /// still holds the very item copied; if not, a delete or write raced the copy and the
    /// copies are deleted again (compare-and-delete on their CAS, so a newer write stays).
    pub(crate) async fn move_key(
        &self,
        from: &Arc<NodeEntry>,
        to: &[Arc<NodeEntry>],
        key: &Bytes,
    ) -> Result<Moved, Error> {
        let Some(item) = self.snapshot(from, key).await? else {
            return Ok(Moved::Absent);
        };
        // Each target's copy compares versions where both nodes take `E`: an add where it
        // lacks the key, a replace of an older item, nothing over a newer one (`version.rs`).
        let results = join_all(to.iter().map(|node| async {
            if !version::comparable(from, node) {
                // An add (`ME`), meta even for memcached < 1.6.27: `c` returns the copy's CAS,
                // which the race check needs to delete exactly this copy.
                let add = version::versioned_copy(node, key, item.as_item(), version::Copy::Add);
                return self.send(node, add).await;
            }
            let how = version::decide(item.cas, self.cas_on(node, key).await?);
            if how == version::Copy::Keep {
                return Ok(Response::NotStored);
            }
            self.send(
                node,
                version::versioned_copy(node, key, item.as_item(), how),
            )
            .await
        }))
        .await;
        // The copies made, with the CAS each target gave its copy (`ms ... c`).
        let mut stored: Vec<(&Arc<NodeEntry>, Option<u64>)> = Vec::new();
        let mut err = None;
        for (node, r) in to.iter().zip(results) {
            match r {
                Ok(Response::Meta(m)) if m.status == MetaStatus::Hd => {
                    stored.push((node, m.flag_u64(b'c')));
                }
                Ok(_) => {}
                Err(e) => err = Some(e),
            }
        }
        if stored.is_empty() {
            return match err {
                Some(e) => Err(e),
                None => Ok(Moved::Present),
            };
        }
        if self.cas_on(from, key).await? != Some(item.cas) {
            join_all(stored.iter().map(|(node, cas)| {
                // Only our copy: a write that replaced it since has another CAS and stays.
                let flags = MetaFlags {
                    compare_cas: *cas,
                    ..MetaFlags::default()
                };
                let md = MetaRequest::new(MetaCmd::Delete, key.clone(), flags, None);
                self.send(node, Request::Meta(Box::new(md)))
            }))
            .await;
            return Ok(Moved::Absent);
        }
        Ok(Moved::Copied {
            targets: stored.len(),
            bytes: item.value.len(),
        })
    }

    /// The past owners of `key` that may hold it and are not among its current owners, newest
    /// ring first, each once.
    pub(super) fn past_sources(topo: &Topology, key: &[u8]) -> Vec<Arc<NodeEntry>> {
        let mut out: Vec<Arc<NodeEntry>> = Vec::new();
        for p in &topo.past {
            for n in p.owners(key) {
                let current = topo.owner_nodes(key).any(|c| Arc::ptr_eq(c, n));
                if !current && n.health.is_usable() && !out.iter().any(|o| Arc::ptr_eq(o, n)) {
                    out.push(n.clone());
                }
            }
        }
        out
    }

    /// Brings `key` from its past owners to its current owners if they lack it. Returns
    /// whether some current owner now holds a copy that came from the past.
    pub(crate) async fn pull(&self, topo: &Topology, key: &Bytes) -> bool {
        if topo.past.is_empty() || !topo.moved(key) {
            return false;
        }
        let owners = Self::live_owners(topo, key);
        if owners.is_empty() {
            return false;
        }
        for src in Self::past_sources(topo, key) {
            match self.move_key(&src, &owners, key).await {
                Ok(Moved::Copied { .. }) => {
                    self.inner.progress.read_through_hit();
                    return true;
                }
                Ok(Moved::Present) => return true,
                Ok(Moved::Absent) | Err(_) => {}
            }
        }
        false
    }

    /// After the current owners missed `key`: pull it from its past owners and, if that found
    /// it, ask the current owners again with the caller's own request.
    pub(crate) async fn read_through(
        &self,
        topo: &Topology,
        key: &Bytes,
        make: &impl Fn(&Bytes) -> Request,
    ) -> Option<Response> {
        // Nothing on the past owners: the miss stands. (A copy made meanwhile by the migrator
        // shows up as `Present` here, since past owners are only emptied after the transition.)
        if !self.pull(topo, key).await {
            return None;
        }
        for node in Self::live_owners(topo, key) {
            match self.send(&node, make(key)).await {
                Ok(resp @ (Response::Values(_) | Response::Meta(_))) if !is_miss(&resp) => {
                    return Some(resp)
                }
                Ok(_) => return None,
                Err(_) => {}
            }
        }
        None
    }

    /// [`Router::read_through`] for the keys of a multi-get that missed, concurrently.
    pub(crate) async fn read_through_many(
        &self,
        topo: &Topology,
        cmd: GetCmd,
        exptime: Option<i64>,
        keys: &[Bytes],
        slots: &mut [Lookup],
    ) {
        let missed: Vec<usize> = (0..keys.len())
            .filter(|&i| slots[i] == Lookup::Miss && topo.moved(&keys[i]))
            .collect();
        let found = join_all(missed.iter().map(|&i| {
            let make = move |k: &Bytes| Request::Get {
                cmd,
                exptime,
                keys: vec![k.clone()],
            };
            async move { (i, self.read_through(topo, &keys[i], &make).await) }
        }))
        .await;
        for (i, resp) in found {
            if let Some(Response::Values(mut v)) = resp {
                if !v.is_empty() {
                    slots[i] = Lookup::Hit(v.swap_remove(0));
                }
            }
        }
    }

    /// Sends `req`, a delete or invalidation of `key`, to the key's past owners first and then
    /// to its current owners; every answer, current owners' (primary first) before past ones'.
    ///
    /// The order closes a race with copies: a copy (migrator or read-through) re-checks its
    /// source after writing. If that check still saw the item, the delete on the past owner had
    /// not finished, so the delete on the current owners comes after the copy and removes it;
    /// if the check found it gone, the copy removes itself.
    pub(crate) async fn delete_everywhere(
        &self,
        key: &[u8],
        req: Request,
    ) -> Result<Vec<Result<Response, Error>>, Error> {
        let topo = self.topology();
        // Owners that are down miss the delete: they get a hint, replayed when they return.
        let current = self.write_owners(&topo, key);
        let past = if topo.past.is_empty() {
            Vec::new()
        } else {
            Self::past_sources(&topo, key)
        };
        if current.is_empty() && past.is_empty() {
            return Err(Error::NoReplica);
        }
        let past_results = join_all(past.iter().map(|n| self.send_write(n, req.clone()))).await;
        let mut results = join_all(current.iter().map(|n| self.send_write(n, req.clone()))).await;
        results.extend(past_results);
        Ok(results)
    }
}

impl Snapshot {
    /// The item as a versioned copy writes it (`version.rs`).
    pub(crate) fn as_item(&self) -> version::Item<'_> {
        version::Item {
            value: &self.value,
            flags: self.flags,
            ttl: self.ttl,
            cas: self.cas,
        }
    }
}

impl Router {
    /// Moves this router's clock past the version of a snapshot a copy is about to write.
    fn observed(&self, item: Snapshot) -> Snapshot {
        self.observe_cas(item.cas);
        item
    }
}
