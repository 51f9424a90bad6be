//! Reads: a key's owners walked in order (the next one after an error or a fenced owner's
//! miss), and the hit copied back to the fenced owners that missed it.

use std::future::poll_fn;
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
        if !topo.past.is_empty() {
            // Another router's newer write may sit on the key's past owners alone.
            Box::pin(self.catch_up(&topo, key)).await;
        }
        // A repairing node may still hold values it missed the overwrite of: not read. The
        // owners in the router's zone first (docs/placement.md, "Zones").
        let owners: Vec<Arc<NodeEntry>> = topo
            .read_owners(key)
            .as_slice()
            .iter()
            .map(|&i| topo.nodes[i].clone())
            .filter(|n| n.health.is_usable() && may_read(&topo, key, n))
            .collect();
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
                    node.served_reads(1);
                    return Ok(resp);
                }
                Ok(other) => return Err(unexpected(&other)),
                Err(e) => last_err = Some(e),
            }
        }
        // Every reachable copy missed (a fenced owner's miss), or no owner could be asked at
        // all: during a transition the key may not have moved yet, so its past owners are asked.
        let asked_none = fenced_misses.is_empty() && last_err.is_none();
        if !fenced_misses.is_empty() || asked_none {
            if !topo.past.is_empty() {
                if let Some(resp) = Box::pin(self.read_through(&topo, key, &make)).await {
                    return Ok(resp);
                }
            }
            if !fenced_misses.is_empty() {
                return Ok(Response::Values(Vec::new()));
            }
        }
        // No copy answered (every owner down, or erring): a miss would say the key is absent,
        // which nobody knows (docs/cluster.md, "Reads").
        Err(last_err.unwrap_or(Error::NoReplica))
    }

    /// The multi-get engine shared with the proxy: per key a hit, a miss or a failure.
    ///
    /// Each round asks every pending key of its next usable owner, one request per node, all
    /// nodes concurrently (`spread.rs`). One key is a spread of one: its first owner is asked
    /// as [`Router::get_single`] asks it.
    pub async fn get_values(
        &self,
        cmd: GetCmd,
        exptime: Option<i64>,
        keys: &[Bytes],
    ) -> Vec<Lookup> {
        if let [key] = keys {
            let get = Request::Get {
                cmd,
                exptime,
                keys: vec![key.clone()],
            };
            let slot = match self.get_single(&get).await {
                Single::Hit(mut values) => values.pop().map_or(Lookup::Miss, Lookup::Hit),
                Single::Miss => Lookup::Miss,
                Single::Failed => Lookup::Failed,
            };
            return vec![slot];
        }
        // Boxed: the per-node fan-out's state is several times a single get's, and every
        // future awaiting this one (a proxy request's) would otherwise be that big too.
        Box::pin(self.get_spread(self.topology(), cmd, exptime, keys)).await
    }

    /// [`Router::get_values`] for a get of one key that the caller already holds as a request
    /// (the proxy: as its client sent it). That request is what the first owner is sent, and a
    /// hit there comes back in the node's reply's own list, so a caller answering with a list
    /// (the proxy's `VALUE … END`) builds none: the key list, the slot list and the value list
    /// a multi-get allocates are not paid per request.
    ///
    /// It is the proxy's pipelined path run in place: [`Router::start_single`], then
    /// [`Router::poll_single`], then, after an error or a fenced owner's miss,
    /// [`Router::get_single_rest`]; where the first owner cannot be written at once (a
    /// transition, a full queue, no usable owner) the whole get is a spread of one.
    ///
    /// `get` must be a [`Request::Get`] of exactly one key; any other request is not sent and
    /// gets [`Single::Failed`].
    pub async fn get_single(&self, get: &Request) -> Single {
        let Request::Get { cmd, exptime, keys } = get else {
            debug_assert!(false, "get_single of a request that is not a get");
            return Single::Failed;
        };
        if keys.len() != 1 {
            debug_assert!(false, "get_single of {} keys", keys.len());
            return Single::Failed;
        }
        if let Some(mut sent) = self.start_single(get) {
            return match poll_fn(|cx| self.poll_single(&mut sent, get, cx)).await {
                Ok(found) => found,
                // Rare (a failed or fenced owner): boxed, so the common future stays small.
                Err(rest) => Box::pin(self.get_single_rest(rest, get)).await,
            };
        }
        let slots = Box::pin(self.get_spread(self.topology(), *cmd, *exptime, keys)).await;
        single_of(slots)
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
        // Positions in the read order, which the rest of the walk (`spread_from`) resumes in.
        let owners = topo.read_owners(key);
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
    /// ([`Router::poll_single`]): a spread of one, from the owner after that one.
    pub async fn get_single_rest(&self, rest: SingleRest, get: &Request) -> Single {
        let Request::Get { cmd, exptime, keys } = get else {
            return Single::Failed;
        };
        if keys.len() != 1 {
            return Single::Failed;
        }
        let slots = self
            .spread_from(rest.topo, (*cmd, *exptime), keys, rest.from, rest.missed)
            .await;
        single_of(slots)
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
    let found = match vals.first() {
        Some(v) if v.key == *key => Single::Hit(vals),
        _ if node.health.state() == NodeState::Fenced => return Err(true),
        _ => Single::Miss,
    };
    node.served_reads(1);
    Ok(found)
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

/// A spread of one's answer as a one-key get's.
fn single_of(slots: Vec<Lookup>) -> Single {
    match slots.into_iter().next() {
        Some(Lookup::Hit(v)) => Single::Hit(vec![v]),
        Some(Lookup::Miss) => Single::Miss,
        _ => Single::Failed,
    }
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

/// One key's lookup in a multi-get (a spread of one for a single key): still pending at an
/// owner position, or what it found. (Not a connection's reply slot, which the old name,
/// `Slot`, also meant.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Still to be asked, of its first usable owner at or after this position in its
    /// replica set.
    Pending(usize),
    Hit(crate::protocol::Value),
    Miss,
    /// No replica could be read.
    Failed,
}

/// Whether `node`, an owner of `key`, may answer a read of it: [`Health::may_serve`], or, when
/// no owner of the key may, a suspect one that otherwise could
/// ([`Health::may_serve_if_suspect`]). Costs nothing more while the node may serve.
///
/// [`Health::may_serve`]: crate::health::Health::may_serve
/// [`Health::may_serve_if_suspect`]: crate::health::Health::may_serve_if_suspect
pub(super) fn may_read(topo: &Topology, key: &[u8], node: &NodeEntry) -> bool {
    node.health.may_serve(key)
        || (node.health.may_serve_if_suspect(key)
            && !topo.owner_nodes(key).any(|n| n.health.may_serve(key)))
}
