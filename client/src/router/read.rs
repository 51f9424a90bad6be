//! Reads: a key's owners walked in order (the next one after an error or a fenced owner's
//! miss), and the hit copied back to the fenced owners that missed it.

use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use super::requests::{is_miss, unexpected};
use super::Router;
use crate::connection::Awaiting;
use crate::error::Error;
use crate::health::NodeState;
use crate::protocol::{GetCmd, Request, Response};
use crate::topology::{NodeEntry, Topology};

impl Router {
    /// Generic read with failover: `make` builds the request for the key.
    pub(crate) async fn read(
        &self,
        key: &Bytes,
        make: impl Fn(&Bytes) -> Request,
    ) -> Result<Response, Error> {
        let topo = self.topology();
        // A repairing node may still hold values it missed the overwrite of: not read.
        let mut owners = Self::live_owners(&topo, key);
        owners.retain(|n| n.health.may_serve(key));
        let mut last_err = None;
        let mut fenced_misses: Vec<Arc<NodeEntry>> = Vec::new();
        for node in owners {
            match self.send(&node, make(key)).await {
                Ok(resp @ Response::Values(_)) | Ok(resp @ Response::Meta(_)) => {
                    let miss = is_miss(&resp);
                    if miss && node.health.state() == NodeState::Fenced {
                        fenced_misses.push(node);
                        continue;
                    }
                    if !miss && !fenced_misses.is_empty() {
                        Box::pin(self.backfill(key, &fenced_misses)).await;
                    }
                    return Ok(resp);
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(e) => last_err = Some(e),
            }
        }
        if !fenced_misses.is_empty() || last_err.is_none() {
            // Every reachable copy missed: during a transition the key may not have moved yet.
            if !topo.past.is_empty() {
                if let Some(resp) = Box::pin(self.read_through(&topo, key, &make)).await {
                    return Ok(resp);
                }
            }
            return Ok(Response::Values(Vec::new()));
        }
        Err(last_err.unwrap_or(Error::NoReplica))
    }

    /// The multi-get engine shared with the proxy: per key a hit, a miss or a failure.
    ///
    /// Each round asks every pending key of its next usable owner, one request per node, all
    /// nodes concurrently (`spread.rs`).
    pub async fn get_values(&self, cmd: GetCmd, exptime: Option<i64>, keys: &[Bytes]) -> Vec<Slot> {
        let topo = self.topology();
        if let [key] = keys {
            if topo.past.is_empty() {
                let get = Request::Get {
                    cmd,
                    exptime,
                    keys: vec![key.clone()],
                };
                let slot = match self.get_one(&topo, &get, key).await {
                    Single::Hit(mut values) => values.pop().map_or(Slot::Miss, Slot::Hit),
                    Single::Miss => Slot::Miss,
                    Single::Failed => Slot::Failed,
                };
                return vec![slot];
            }
        }
        // Boxed: the per-node fan-out's state is several times a single get's, and every
        // future awaiting this one (a proxy request's) would otherwise be that big too.
        Box::pin(self.get_spread(topo, cmd, exptime, keys)).await
    }

    /// [`Router::get_values`] for a get of one key that the caller already holds as a request
    /// (the proxy: as its client sent it). That request is what the owners are sent, and a hit
    /// comes back in the node's reply's own list, so a caller answering with a list (the proxy's
    /// `VALUE … END`) builds none: the key list, the slot list and the value list a
    /// [`Router::get_values`] of one key allocates are not paid per request.
    ///
    /// `get` must be a [`Request::Get`] of exactly one key; any other request is not sent and
    /// gets [`Single::Failed`].
    pub async fn get_single(&self, get: &Request) -> Single {
        let Request::Get { cmd, exptime, keys } = get else {
            debug_assert!(false, "get_single of a request that is not a get");
            return Single::Failed;
        };
        let [key] = keys.as_slice() else {
            debug_assert!(false, "get_single of {} keys", keys.len());
            return Single::Failed;
        };
        let topo = self.topology();
        if topo.past.is_empty() {
            return self.get_one(&topo, get, key).await;
        }
        // During a transition: the general path, which reads through to the old owners.
        let slots = Box::pin(self.get_spread(topo, *cmd, *exptime, keys)).await;
        match slots.into_iter().next() {
            Some(Slot::Hit(v)) => Single::Hit(vec![v]),
            Some(Slot::Miss) => Single::Miss,
            _ => Single::Failed,
        }
    }

    /// [`Router::get_values`] for one key outside a transition, the proxy's commonest request:
    /// the same walk over the key's owners (the next usable owner after a failure, or after a
    /// fenced owner's miss), without the per-node grouping a multi-get needs.
    ///
    /// `get` is the request sent, a get of `key` alone.
    async fn get_one(&self, topo: &Topology, get: &Request, key: &Bytes) -> Single {
        self.get_one_from(topo, get, key, 0, false).await
    }

    /// [`Router::get_one`]'s walk from the owner at position `from`; `missed` says a fenced
    /// owner before it already answered with a miss.
    async fn get_one_from(
        &self,
        topo: &Topology,
        get: &Request,
        key: &Bytes,
        from: usize,
        mut missed: bool,
    ) -> Single {
        for &n in topo.owners(key).as_slice().iter().skip(from) {
            let node = &topo.nodes[n];
            if !node.health.may_serve(key) {
                continue;
            }
            let r = self.send_ref(node, get).await;
            // On an error, or a fenced owner's miss, the key goes on to the next owner.
            match single_answer(node, key, r) {
                Ok(found) => return found,
                Err(fenced_miss) => missed |= fenced_miss,
            }
        }
        if topo.nodes.is_empty() || missed {
            Single::Miss
        } else {
            Single::Failed
        }
    }

    /// [`Router::get_single`] for a caller that keeps the get's state in a queue of its own
    /// rather than in a future (the proxy's pipelined one-key gets, `src/proxy/inflight.rs`):
    /// the get is written to the key's first usable owner now, and [`Router::poll_single`]
    /// waits for that owner's answer. `None` when that is not the whole story (a transition's
    /// read-through, no usable owner, a full or down connection, a key that cannot be sent):
    /// the caller then runs [`Router::get_single`], which covers every case; nothing was sent.
    pub fn start_single(&self, get: &Request) -> Option<SingleGet> {
        let Request::Get { keys, .. } = get else {
            return None;
        };
        let [key] = keys.as_slice() else {
            return None;
        };
        let topo = self.topology();
        if !topo.past.is_empty() || get.check_wire().is_err() {
            return None;
        }
        let owners = topo.owners(key);
        let (pos, n) = owners
            .as_slice()
            .iter()
            .enumerate()
            .find(|(_, &n)| topo.nodes[n].health.may_serve(key))?;
        let node = &topo.nodes[*n];
        let (started, deadline) = self.started_now();
        let awaiting = node.conn().send_now(get, deadline).ok()??;
        node.metrics.requests.increment(1);
        let node = *n;
        Some(SingleGet {
            topo,
            pos,
            node,
            started,
            awaiting,
        })
    }

    /// The answer to a get [`Router::start_single`] sent, `get` being that request: what the
    /// owner found, or (on an error, or a fenced owner's miss) the rest of the walk over the
    /// key's owners, to run with [`Router::get_single_rest`].
    pub fn poll_single(
        &self,
        sent: &mut SingleGet,
        get: &Request,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Single, SingleRest>> {
        let r = ready!(sent.awaiting.poll_reply(cx));
        let node = &sent.topo.nodes[sent.node];
        let r = self.answered(node, sent.started, false, r);
        let key = match get {
            Request::Get { keys, .. } => keys.first(),
            _ => None,
        };
        let found = match key {
            Some(key) => single_answer(node, key, r),
            None => Err(false),
        };
        Poll::Ready(found.map_err(|missed| SingleRest {
            topo: sent.topo.clone(),
            from: sent.pos + 1,
            missed,
        }))
    }

    /// The rest of a one-key get's walk over its owners after the first one asked
    /// ([`Router::poll_single`]).
    pub async fn get_single_rest(&self, rest: SingleRest, get: &Request) -> Single {
        let Request::Get { keys, .. } = get else {
            return Single::Failed;
        };
        let [key] = keys.as_slice() else {
            return Single::Failed;
        };
        self.get_one_from(&rest.topo, get, key, rest.from, rest.missed)
            .await
    }

    /// Copies hits back to fenced nodes that missed them (add semantics: never overwrite).
    pub(super) async fn backfill(&self, key: &Bytes, fenced: &[Arc<NodeEntry>]) {
        let topo = self.topology();
        let owners = Self::live_owners(&topo, key);
        if let Some(src) = owners
            .iter()
            .find(|n| n.health.in_sync(key) && !fenced.iter().any(|f| Arc::ptr_eq(f, n)))
        {
            self.copy_from(src, fenced, key, true).await;
        }
    }
}

/// What one owner's answer to a get of `key` alone says: a hit (the value, alone in the
/// reply's list) or a miss; or, when the walk goes on to the next owner, whether this was a
/// fenced owner's miss (`Err(true)`: it may not have the key yet) or an error (`Err(false)`).
fn single_answer(
    node: &NodeEntry,
    key: &Bytes,
    r: Result<Response, Error>,
) -> Result<Single, bool> {
    let Ok(Response::Values(mut vals)) = r else {
        return Err(false);
    };
    vals.truncate(1);
    match vals.first() {
        Some(v) if v.key == *key => Ok(Single::Hit(vals)),
        _ if node.health.state() == NodeState::Fenced => Err(true),
        _ => Ok(Single::Miss),
    }
}

/// A one-key get written to its first usable owner and not yet answered
/// ([`Router::start_single`]): a few words a caller keeps in its own queue.
pub struct SingleGet {
    topo: Arc<Topology>,
    /// The owner asked: its position among the key's owners, and its index in `topo`.
    pos: usize,
    node: usize,
    started: Instant,
    awaiting: Awaiting,
}

/// Where a one-key get's walk over its owners goes on ([`Router::get_single_rest`]).
pub struct SingleRest {
    topo: Arc<Topology>,
    from: usize,
    missed: bool,
}

/// What a get of one key found ([`Router::get_single`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Single {
    /// The value, alone in the list the node's reply brought it in (so a caller that answers
    /// with a list reuses it).
    Hit(Vec<crate::protocol::Value>),
    Miss,
    /// No replica could be read.
    Failed,
}

/// One key's fate in a multi-get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Still to be asked, of its first usable owner at or after this position in its
    /// replica set.
    Pending(usize),
    Hit(crate::protocol::Value),
    Miss,
    /// No replica could be read.
    Failed,
}
