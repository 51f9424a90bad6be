//! Reads: a key's owners walked in order (the next one after an error or a fenced owner's
//! miss), and the hit copied back to the fenced owners that missed it.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use super::requests::{is_miss, unexpected};
use super::send::may_read;
use super::spread::{ManyGet, ManyRest};
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

    /// The multi-get engine shared with the proxy: per key a hit, a miss or a failure, as a
    /// [`Get`] of these keys (one key: a spread of one, asked as [`Router::get_single`] asks
    /// it).
    pub async fn get_values(
        &self,
        cmd: GetCmd,
        exptime: Option<i64>,
        keys: &[Bytes],
    ) -> Vec<Lookup> {
        let get = Request::Get {
            cmd,
            exptime,
            keys: keys.to_vec(),
        };
        match self.get(&get, keys.len() == 1).run(self, &get).await {
            Found::One(Single::Hit(mut values)) => {
                vec![values.pop().map_or(Lookup::Miss, Lookup::Hit)]
            }
            Found::One(Single::Miss) => vec![Lookup::Miss],
            Found::One(Single::Failed) => vec![Lookup::Failed],
            Found::Many(slots) => slots,
        }
    }

    /// A get of one key that the caller already holds as a request (the proxy: as its client
    /// sent it), run as a [`Get`] to its answer. That request is what the first owner is sent,
    /// and a hit there comes back in the node's reply's own list, so a caller answering with a
    /// list (the proxy's `VALUE … END`) builds none.
    ///
    /// `get` must be a [`Request::Get`] of exactly one key; any other request is not sent and
    /// gets [`Single::Failed`].
    pub async fn get_single(&self, get: &Request) -> Single {
        let Request::Get { keys, .. } = get else {
            debug_assert!(false, "get_single of a request that is not a get");
            return Single::Failed;
        };
        if keys.len() != 1 {
            debug_assert!(false, "get_single of {} keys", keys.len());
            return Single::Failed;
        }
        match self.get(get, true).run(self, get).await {
            Found::One(found) => found,
            Found::Many(slots) => single_of(slots),
        }
    }

    /// Starts `get` (a [`Request::Get`]): written now to the first usable owner of each key
    /// where that can be done, otherwise its whole walk, which starts when first polled. With
    /// `one`, it is answered as a one-key get ([`Found::One`]), else as a multi-get's slots.
    pub fn get(&self, get: &Request, one: bool) -> Get {
        match self.get_now(get, one) {
            Some(written) => written,
            None => Get {
                next: Next::Walk(self.walk(get, one, None)),
            },
        }
    }

    /// [`Router::get`] when its first owners can be written at once, `None` (nothing sent)
    /// when not: a transition's read-through, no usable owner, a full or down connection, a
    /// request that cannot be sent. A caller keeping the get in a queue that is only polled at
    /// its head (the proxy's line) runs such a get where it makes progress of its own.
    pub fn get_now(&self, get: &Request, one: bool) -> Option<Get> {
        let next = if one {
            Next::One(self.start_single(get)?)
        } else {
            Next::Many(Box::new(self.start_many(get)?))
        };
        Some(Get { next })
    }

    /// The walk of a get past what [`Router::get_now`] wrote, or (`from: None`) of all of it:
    /// a future of its own, boxed, so the common [`Get`] stays a few words. It owns a handle
    /// on the engine and the request; the path that takes it is rare.
    fn walk(&self, get: &Request, one: bool, from: Option<Resume>) -> Walk {
        let router = self.clone();
        let get = get.clone();
        Box::pin(async move {
            let Request::Get { cmd, exptime, keys } = &get else {
                return Found::Many(Vec::new());
            };
            let slots = match from {
                None => {
                    router
                        .get_spread(router.topology(), *cmd, *exptime, keys)
                        .await
                }
                Some(Resume::One(rest)) => router.get_single_rest(rest, &get).await,
                Some(Resume::Many(rest)) => router.get_many_rest(rest, &get).await,
            };
            if one {
                Found::One(single_of(slots))
            } else {
                Found::Many(slots)
            }
        })
    }

    /// A one-key [`Get`]'s first step: the get written to the key's first usable owner now,
    /// whose answer [`Router::poll_single`] takes. `None` when that is not the whole story (a
    /// transition's read-through, no usable owner, a full or down connection, a key that
    /// cannot be sent); nothing was sent.
    fn start_single(&self, get: &Request) -> Option<SingleGet> {
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
    fn poll_single(
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
    async fn get_single_rest(&self, rest: SingleRest, get: &Request) -> Vec<Lookup> {
        let Request::Get { cmd, exptime, keys } = get else {
            return vec![Lookup::Failed];
        };
        self.spread_from(rest.topo, (*cmd, *exptime), keys, rest.from, rest.missed)
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
    let found = match vals.first() {
        Some(v) if v.key == *key => Single::Hit(vals),
        _ if node.health.state() == NodeState::Fenced => return Err(true),
        _ => Single::Miss,
    };
    node.served_reads(1);
    Ok(found)
}

/// A get in flight: the engine's one read request, for the proxy's line (pipelined, its
/// replies in order), `Client::get_many` and every proxied get, one key (a spread of one) or
/// many. A hand-written state machine (redis-rs `cluster_async`'s `Next`): [`Router::get`]
/// writes its first owners, [`Get::poll`] takes their answers and, where a key must go on
/// (an error, a fenced owner's miss, a transition), runs the rest of its walk, which ends in
/// one place (`Router::end_walk`: the copies back to fenced owners). Which owners a key is
/// asked is chosen in one place too (`Spread::plan`, with `send.rs`'s `may_read`).
///
/// It does not hold its request: the caller keeps it (the proxy, in its line; it is what the
/// first owner was sent) and hands it to every poll, so a get costs no copy of it unless it
/// must walk on.
pub struct Get {
    next: Next,
}

/// Where a [`Get`] stands.
enum Next {
    /// A one-key get written to its key's first usable owner.
    One(SingleGet),
    /// A multi-get's first round: one piece per owner, written. Boxed: its state is several
    /// times a one-key get's, and a `Get` is as big as its biggest state.
    Many(Box<ManyGet>),
    /// The rest of the walk (or all of it): rare, a future of its own.
    Walk(Walk),
    /// Answered; polled again it answers a failure.
    Done,
}

type Walk = Pin<Box<dyn Future<Output = Found> + Send>>;

/// Where a walk resumes after the first owners asked.
enum Resume {
    One(SingleRest),
    Many(ManyRest),
}

/// What a [`Get`] found: a one-key get's answer, or every key's slot.
#[derive(Debug)]
pub enum Found {
    One(Single),
    Many(Vec<Lookup>),
}

impl Get {
    /// The answer, once every owner the get needed has answered; `get` is the request
    /// [`Router::get`] started it with, and `router` that router.
    pub fn poll(&mut self, router: &Router, get: &Request, cx: &mut Context<'_>) -> Poll<Found> {
        loop {
            let resume = match &mut self.next {
                Next::One(sent) => match ready!(router.poll_single(sent, get, cx)) {
                    Ok(found) => Found::One(found),
                    Err(rest) => {
                        self.next = Next::Walk(router.walk(get, true, Some(Resume::One(rest))));
                        continue;
                    }
                },
                Next::Many(sent) => match ready!(router.poll_many(sent, get, cx)) {
                    Ok(slots) => Found::Many(slots),
                    Err(rest) => {
                        self.next = Next::Walk(router.walk(get, false, Some(Resume::Many(rest))));
                        continue;
                    }
                },
                Next::Walk(f) => ready!(f.as_mut().poll(cx)),
                Next::Done => Found::One(Single::Failed),
            };
            self.next = Next::Done;
            return Poll::Ready(resume);
        }
    }

    /// [`Get::poll`] as a future, for a caller that awaits the get in place.
    pub async fn run(mut self, router: &Router, get: &Request) -> Found {
        poll_fn(|cx| self.poll(router, get, cx)).await
    }
}

/// A one-key get written to its first usable owner and not yet answered
/// ([`Router::start_single`]).
struct SingleGet {
    topo: Arc<Topology>,
    /// The owner asked: its position among the key's owners, and its index in `topo`.
    pos: usize,
    node: usize,
    started: Instant,
    awaiting: Awaiting,
}

/// Where a one-key get's walk over its owners goes on ([`Router::get_single_rest`]).
struct SingleRest {
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
