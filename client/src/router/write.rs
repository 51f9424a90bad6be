//! Writes: unconditional writes to every live owner under the acknowledgement policy, the
//! router-chosen CAS they carry, conditional writes on one owner copied to the others, and
//! deletes.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;

use super::requests::{
    changed, delete_request, is_meta, replica_store, request_key, touch_request, unexpected,
};
use super::{Ack, Router};
use crate::error::{Error, Refused};
use crate::protocol::{MetaStatus, Request, Response};
use crate::topology::NodeEntry;

impl Router {
    /// A CAS value unique to this router and increasing: nanoseconds since the epoch, bumped past
    /// the last one handed out and past every version the router has read from a node (a
    /// hybrid logical clock, `version.rs`). Node-generated CAS values count up from 1, so they
    /// never meet these (~1.7e18).
    pub fn next_cas(&self) -> u64 {
        let now = super::version::now_nanos();
        let mut last = self.inner.cas_seq.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self.inner.cas_seq.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(x) => last = x,
            }
        }
    }

    /// Unconditional write to every live replica, acknowledged per the [`Ack`] policy; the
    /// reply is the primary's in classic form.
    pub async fn set_all(
        &self,
        key: Bytes,
        value: Bytes,
        flags: u32,
        exptime: i64,
    ) -> Result<Response, Error> {
        let topo = self.topology();
        let owners = self.required_in(&topo, &key)?;
        // Mid-transition a moved key's past owners get the write too, at the same time: they
        // are what a router not yet on this ring reads (`past_owners.rs`). Not acknowledged
        // by them: they are not its owners.
        let past = Self::past_targets(&topo, &key);
        let cas = self.next_cas();
        let mut results = join_all(owners.iter().chain(&past).map(|node| {
            let req = replica_store(node, &key, &value, flags, exptime, cas, false);
            self.send_write(node, req)
        }))
        .await;
        results.truncate(owners.len());
        self.acknowledge(results, |r| {
            matches!(r, Response::Stored) || is_meta(r, MetaStatus::Hd)
        })
        .map(|_| Response::Stored)
    }

    /// Applies the ack policy: enough successes → the first success, else the first failure.
    pub(super) fn acknowledge(
        &self,
        results: Vec<Result<Response, Error>>,
        ok: impl Fn(&Response) -> bool,
    ) -> Result<Response, Error> {
        let total = results.len();
        let need = match self.inner.live.ack() {
            Ack::Primary => 1,
            Ack::Quorum => total / 2 + 1,
            Ack::All => total,
        };
        let good = results
            .iter()
            .filter(|r| matches!(r, Ok(x) if ok(x)))
            .count();
        let mut first_bad = None;
        let mut first_good = None;
        for r in results {
            match r {
                Ok(x) if ok(&x) => {
                    first_good.get_or_insert(x);
                }
                Ok(x) => {
                    first_bad.get_or_insert(Ok(x));
                }
                Err(e) => {
                    first_bad.get_or_insert(Err(e));
                }
            }
        }
        if good >= need {
            if let Some(g) = first_good {
                return Ok(g);
            }
        }
        first_bad.unwrap_or_else(|| Err(Error::NoReplica))
    }

    /// Runs a conditional write on the first owner that holds the key's current state — the
    /// primary unless it is fenced (flushed, warming) or repairing (missed writes), then the
    /// next owner that is up — and, when it changed the item, copies the result to the other
    /// live owners. With no such owner it is refused (`SERVER_ERROR`) rather than run on a
    /// node whose miss or old value would decide it wrongly. Returns the executing owner's
    /// reply.
    ///
    /// The slow paths (transition pull, replica copy) are boxed where they are awaited: every
    /// request future is as large as its largest await state, and the proxy moves each one
    /// into the heap, so inline slow paths would cost every fast request a multi-KiB copy.
    pub async fn conditional(&self, req: Request) -> Result<Response, Error> {
        let key =
            request_key(&req).ok_or_else(|| Error::InvalidKey("a request without a key".into()))?;
        let topo = self.topology();
        if !topo.past.is_empty() {
            // Mid-transition the item may still sit on its old owner: bring it over first so
            // the write applies to it.
            Box::pin(self.pull(&topo, &key)).await;
        }
        let mut owners = self.required_in(&topo, &key)?;
        // The primary whenever it is reachable, repaired for the key first (`primary.rs`).
        let primary = topo.owner_nodes(&key).next();
        let at = match (owners.first(), primary) {
            // The fast path: a primary in sync that is not taking back the conditional
            // writes that failed over while it was down (`primary.rs`).
            (Some(o), Some(p))
                if Arc::ptr_eq(o, p) && o.health.in_sync(&key) && !self.taking_back(o) =>
            {
                Some(0)
            }
            _ => Box::pin(self.executor(&owners, &key, primary)).await,
        };
        let Some(at) = at else {
            return Err(Error::Server(Refused::Server(
                "no replica of this key is in sync; retry later".into(),
            )));
        };
        let exec = owners.remove(at);
        // Stamped with this router's clock, so its result outranks the versions it replaced
        // wherever a copy meets them (`version.rs`).
        let (req, reply) = super::version::stamp(&exec, req, self.next_cas());
        let resp = super::version::unstamp(reply, self.send(&exec, req).await?);
        if changed(&resp) && !owners.is_empty() {
            let copied = Box::pin(self.replicate(&exec, &owners, &key)).await;
            // Its result on the primary alone is not acknowledged (unless `ack = primary`):
            // the client learns it may not have happened, as after a timeout.
            if !copied && self.inner.live.ack() != Ack::Primary {
                return Err(Error::Server(Refused::Server(
                    "the write ran but its result could not be copied to the replicas".into(),
                )));
            }
        }
        if changed(&resp) {
            // Mid-transition: to the past owners a router not yet on this ring reads, as a
            // versioned copy (never over a newer item another router wrote there).
            let past = Self::past_targets(&topo, &key);
            if !past.is_empty() {
                let _ = Box::pin(self.move_key(&exec, &past, &key)).await;
            }
        }
        Ok(resp)
    }

    /// Copies `key` as it is on `from` to `to` (same value, flags, remaining TTL and CAS);
    /// deletes it there if `from` no longer has it. With `only_if_absent` (read repair) the copy
    /// is an add and a missing source copies nothing: a write that reached `to` meanwhile wins.
    pub(super) async fn copy_from(
        &self,
        from: &Arc<NodeEntry>,
        to: &[Arc<NodeEntry>],
        key: &Bytes,
        only_if_absent: bool,
    ) {
        let item = match self.snapshot(from, key).await {
            Ok(None) if only_if_absent => return,
            Ok(item) => item,
            Err(_) => return,
        };
        join_all(to.iter().map(|node| {
            let req = match &item {
                Some(m) => {
                    replica_store(node, key, &m.value, m.flags, m.ttl, m.cas, only_if_absent)
                }
                None => delete_request(key),
            };
            self.send_write(node, req)
        }))
        .await;
    }

    /// Sets the TTL on the replicas after a `gat`/`touch` on the primary.
    pub(crate) async fn copy_ttl(&self, key: &Bytes, exptime: i64) {
        let topo = self.topology();
        let owners = Self::live_owners(&topo, key);
        join_all(
            owners
                .iter()
                .skip(1)
                .map(|n| self.send_write(n, touch_request(key, exptime))),
        )
        .await;
    }

    /// Deletes one key on every live replica (and, mid-transition, on its past owners);
    /// `DELETED` if any had it, else `NOT_FOUND`.
    pub async fn delete(&self, key: Bytes) -> Result<Response, Error> {
        let req = Request::Delete {
            key: key.clone(),
            noreply: false,
        };
        let results = self.delete_everywhere(&key, req).await?;
        let mut err = None;
        let mut found = false;
        let mut answered = false;
        for r in results {
            match r {
                Ok(Response::Deleted) => {
                    found = true;
                    answered = true;
                }
                Ok(Response::NotFound) => answered = true,
                Ok(other) => err = Some(unexpected(&other)),
                Err(e) => err = Some(e),
            }
        }
        match (answered, err) {
            (false, Some(e)) => Err(e),
            _ => Ok(if found {
                Response::Deleted
            } else {
                Response::NotFound
            }),
        }
    }
}
