//! The multi-get engine: every key asked of its first usable owner, one request per node,
//! and the keys a node failed (or, fenced, missed) asked again of the owner after it.
//!
//! One caller drives it: the engine's read request, [`Get`](super::Get) (`read.rs`). Its
//! first round is written when the get starts ([`Router::start_many`]), and the caller keeps
//! the reply slots, with no future, box or task per request; only a key that must go on to
//! another owner takes a future ([`Router::get_many_rest`]), and a get that cannot be written
//! at once (a transition) runs every round as one ([`Router::get_spread`]). All share
//! [`Spread`], so a key's walk over its owners is the same whichever way it started.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::future::join_all;

use super::{Lookup, Router};
use crate::connection::Awaiting;
use crate::error::Error;
use crate::health::NodeState;
use crate::protocol::{GetCmd, Request, Response};
use crate::topology::{NodeEntry, Topology};

/// Where each key of a multi-get stands: its slot (still pending at an owner position, or
/// answered), and whether a fenced owner already answered it with a miss.
#[derive(Debug)]
pub(super) struct Spread {
    slots: Vec<Lookup>,
    /// A fenced node's miss sends the key on to the next replica; if none is left, the
    /// answer is that miss, not a failure.
    missed: Vec<bool>,
}

/// The keys (their indices) one node is asked in a round, and that node's index in the
/// topology.
type Piece = (usize, Vec<usize>);

impl Spread {
    fn new(keys: usize) -> Spread {
        Spread {
            slots: vec![Lookup::Pending(0); keys],
            missed: vec![false; keys],
        }
    }

    /// One round's requests: every pending key grouped under its next usable owner. A key
    /// remembers its position in its replica set, so a failed node's keys go on to the owner
    /// *after* it even though the failure has just taken that node out of the live set
    /// (counting "the n-th live owner" afresh each round would skip the surviving replica and
    /// report a miss). A key with no usable owner left is answered here.
    fn plan(&mut self, topo: &Topology, keys: &[Bytes]) -> Vec<Piece> {
        let mut per_node: Vec<Piece> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let Lookup::Pending(from) = self.slots[i] else {
                continue;
            };
            let owners = topo.read_owners(key);
            let next = owners
                .as_slice()
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, &n)| super::send::may_read(topo, key, &topo.nodes[n]));
            match next {
                Some((pos, &n)) => {
                    // Where to go on if this owner fails or misses while fenced.
                    self.slots[i] = Lookup::Pending(pos + 1);
                    match per_node.iter_mut().find(|(m, _)| *m == n) {
                        Some((_, idx)) => idx.push(i),
                        None => per_node.push((n, vec![i])),
                    }
                }
                // No (more) usable owner: a failure, unless the ring is empty or a fenced
                // owner already answered with a miss.
                None if topo.nodes.is_empty() || self.missed[i] => self.slots[i] = Lookup::Miss,
                None => self.slots[i] = Lookup::Failed,
            }
        }
        per_node
    }

    /// Puts the keys of a piece that was never sent back at the owner they were planned for.
    fn unsend(&mut self, idx: &[usize]) {
        for &i in idx {
            if let Lookup::Pending(next) = self.slots[i] {
                self.slots[i] = Lookup::Pending(next.saturating_sub(1));
            }
        }
    }

    /// A node's answer for the keys `idx`. On an error every key stays pending at the owner
    /// after this one.
    fn take(
        &mut self,
        node: &NodeEntry,
        idx: &[usize],
        keys: &[Bytes],
        r: Result<Response, Error>,
    ) {
        let Ok(Response::Values(vals)) = r else {
            return;
        };
        let fenced = node.health.state() == NodeState::Fenced;
        // Hits come back in the order the keys were asked (memcached answers a multi-get in
        // key order), so one cursor matches them without searching.
        let mut vals = vals.into_iter().peekable();
        let mut served = 0;
        for &i in idx {
            match vals.next_if(|v| v.key == keys[i]) {
                Some(v) => self.slots[i] = Lookup::Hit(v),
                None if fenced => {
                    self.missed[i] = true;
                    continue;
                }
                None => self.slots[i] = Lookup::Miss,
            }
            served += 1;
        }
        node.served_reads(served);
    }

    /// One key's spread whose first owners were asked already: pending at owner position
    /// `from`, `missed` saying a fenced owner before it answered with a miss.
    fn resume(from: usize, missed: bool) -> Spread {
        Spread {
            slots: vec![Lookup::Pending(from)],
            missed: vec![missed],
        }
    }

    /// The keys (their indices) a fenced owner missed and a later owner hit: the ones a read
    /// copies back.
    fn hit_after_fenced_miss(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.missed[i] && matches!(self.slots[i], Lookup::Hit(_)))
            .collect()
    }

    fn is_settled(&self) -> bool {
        !self.slots.iter().any(|s| matches!(s, Lookup::Pending(_)))
    }

    /// The slots once no round is left: a key still pending is a failure, or a miss if a
    /// fenced owner missed it.
    fn finish(mut self) -> Vec<Lookup> {
        for (s, &m) in self.slots.iter_mut().zip(&self.missed) {
            if let Lookup::Pending(_) = s {
                *s = if m { Lookup::Miss } else { Lookup::Failed };
            }
        }
        self.slots
    }
}

/// The request a node is asked in a round: the get's own keys at `idx`.
fn piece_request(cmd: GetCmd, exptime: Option<i64>, keys: &[Bytes], idx: &[usize]) -> Request {
    Request::Get {
        cmd,
        exptime,
        keys: idx.iter().map(|&i| keys[i].clone()).collect(),
    }
}

/// A multi-get whose first round was written ([`Router::start_many`]) and not yet answered:
/// what a caller keeps in its own queue.
pub(super) struct ManyGet {
    topo: Arc<Topology>,
    spread: Spread,
    /// Each sent piece: its node, its keys, and its reply slot until the reply is taken.
    sent: Vec<(usize, Vec<usize>, Option<Awaiting>)>,
    started: Instant,
}

/// Where a multi-get's walk goes on after its first round ([`Router::get_many_rest`]).
pub(super) struct ManyRest {
    topo: Arc<Topology>,
    spread: Spread,
}

impl Router {
    /// Up to `rounds` rounds of a multi-get from where `spread` stands, each round's pieces
    /// sent to their nodes concurrently. A key moves on by at least one owner position per
    /// round (or is put back once by [`Spread::unsend`]), so a key's replica count bounds
    /// the rounds it needs.
    async fn spread_rounds(
        &self,
        topo: &Topology,
        (cmd, exptime): (GetCmd, Option<i64>),
        keys: &[Bytes],
        spread: &mut Spread,
        rounds: usize,
    ) {
        for _round in 0..rounds {
            let mut per_node = spread.plan(topo, keys);
            if per_node.is_empty() {
                break;
            }
            let ask = |(n, idx): Piece| {
                let node = &topo.nodes[n];
                let req = piece_request(cmd, exptime, keys, &idx);
                async move {
                    let r = self.send(node, req).await;
                    (node, idx, r)
                }
            };
            // One node (every single-key get): no join_all and its per-future bookkeeping.
            let results = if per_node.len() == 1 {
                let one = per_node.pop().map(ask);
                match one {
                    Some(f) => vec![f.await],
                    None => Vec::new(),
                }
            } else {
                join_all(per_node.into_iter().map(ask)).await
            };
            for (node, idx, r) in results {
                spread.take(node, &idx, keys, r);
            }
        }
    }

    /// The end of a walk: the hits a fenced owner missed are copied back to the key's fenced
    /// owners first (add semantics: a write that reached them meanwhile wins), so a reply
    /// leaves only once the copy is in place; then every key's slot. Every classic get the
    /// engine walks past its first owner ends here, the proxy's and `Client::get_many`'s, one
    /// key or many; [`Router::read`] (`Client::get`, `mg`, `me`) copies back through the same
    /// [`Router::backfill`] (docs/cluster.md, "Health, hinted handoff and fencing").
    async fn end_walk(&self, topo: &Topology, keys: &[Bytes], spread: Spread) -> Vec<Lookup> {
        let copy = spread.hit_after_fenced_miss();
        if !copy.is_empty() {
            Box::pin(join_all(copy.into_iter().map(|i| {
                let key = &keys[i];
                let fenced: Vec<Arc<NodeEntry>> = topo
                    .owners(key)
                    .as_slice()
                    .iter()
                    .map(|&n| &topo.nodes[n])
                    .filter(|n| n.health.state() == NodeState::Fenced)
                    .cloned()
                    .collect();
                async move { self.backfill(key, &fenced).await }
            })))
            .await;
        }
        spread.finish()
    }

    /// The walk of one key whose owners before position `from` were asked already
    /// ([`Router::get_single_rest`]), as a spread of one.
    pub(super) async fn spread_from(
        &self,
        topo: Arc<Topology>,
        get: (GetCmd, Option<i64>),
        keys: &[Bytes],
        from: usize,
        missed: bool,
    ) -> Vec<Lookup> {
        let mut spread = Spread::resume(from, missed);
        let rounds = topo.replicas.max(1);
        self.spread_rounds(&topo, get, keys, &mut spread, rounds)
            .await;
        self.end_walk(&topo, keys, spread).await
    }

    /// Every round of a get that could not be written at once ([`Router::get`]'s walk from
    /// the start: a transition, a full queue, no usable owner).
    pub(super) async fn get_spread(
        &self,
        topo: Arc<Topology>,
        cmd: GetCmd,
        exptime: Option<i64>,
        keys: &[Bytes],
    ) -> Vec<Lookup> {
        if !topo.past.is_empty() {
            // Another router's newer write may sit on a moved key's past owners alone.
            Box::pin(self.catch_up_many(&topo, keys)).await;
        }
        let mut spread = Spread::new(keys.len());
        let rounds = topo.replicas.max(1);
        self.spread_rounds(&topo, (cmd, exptime), keys, &mut spread, rounds)
            .await;
        let mut slots = self.end_walk(&topo, keys, spread).await;
        if !topo.past.is_empty() {
            Box::pin(self.read_through_many(&topo, cmd, exptime, keys, &mut slots)).await;
        }
        slots
    }

    /// A multi-key [`Get`](super::Get)'s first round, written to the nodes now;
    /// [`Router::poll_many`] takes the answers. `get` is a [`Request::Get`]. `None`, with
    /// nothing sent, during a transition (its read-through is the future's), for a request
    /// that cannot be sent, or when no piece could be queued.
    pub(super) fn start_many(&self, get: &Request) -> Option<ManyGet> {
        let Request::Get { cmd, exptime, keys } = get else {
            return None;
        };
        let topo = self.topology();
        if !topo.past.is_empty() || keys.is_empty() || get.check_wire().is_err() {
            return None;
        }
        let mut spread = Spread::new(keys.len());
        let pieces = spread.plan(&topo, keys);
        let (started, deadline) = self.started_now();
        let mut sent = Vec::with_capacity(pieces.len());
        let mut failed = false;
        for (n, idx) in pieces {
            let node = &topo.nodes[n];
            let req = piece_request(*cmd, *exptime, keys, &idx);
            match node.conn().send_now(&req, deadline) {
                Ok(Some(awaiting)) => {
                    node.metrics.requests.increment(1);
                    sent.push((n, idx, Some(awaiting)));
                }
                // The queue is full, or the request needs a timer of its own: the future
                // asks this owner again.
                Ok(None) => spread.unsend(&idx),
                // The node's connection is closed: its answer, counted as `Router::send`
                // counts it, and the keys go on to the next owner.
                Err(e) => {
                    failed = true;
                    node.metrics.requests.increment(1);
                    let r = self.answered(node, started, false, Err(e));
                    spread.take(node, &idx, keys, r);
                }
            }
        }
        // Nothing sent and nothing learnt: the future does exactly this, from the start.
        if sent.is_empty() && !failed && !spread.is_settled() {
            return None;
        }
        Some(ManyGet {
            topo,
            spread,
            sent,
            started,
        })
    }

    /// The answers to the pieces [`Router::start_many`] sent, `get` being that request: every
    /// key's slot, or (when keys must go on to another owner) the rest of the walk, to run
    /// with [`Router::get_many_rest`].
    pub(super) fn poll_many(
        &self,
        many: &mut ManyGet,
        get: &Request,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Vec<Lookup>, ManyRest>> {
        let Request::Get { keys, .. } = get else {
            return Poll::Ready(Ok(Vec::new()));
        };
        let mut waiting = false;
        for (n, idx, slot) in &mut many.sent {
            let Some(awaiting) = slot else {
                continue;
            };
            let Poll::Ready(r) = awaiting.poll_reply(cx) else {
                waiting = true;
                continue;
            };
            *slot = None;
            let node = &many.topo.nodes[*n];
            let r = self.answered(node, many.started, false, r);
            many.spread.take(node, idx, keys, r);
        }
        if waiting {
            return Poll::Pending;
        }
        let spread = std::mem::replace(&mut many.spread, Spread::new(0));
        if spread.is_settled() {
            return Poll::Ready(Ok(spread.finish()));
        }
        Poll::Ready(Err(ManyRest {
            topo: many.topo.clone(),
            spread,
        }))
    }

    /// The rest of a multi-get's walk after its first round ([`Router::poll_many`]).
    pub(super) async fn get_many_rest(&self, rest: ManyRest, get: &Request) -> Vec<Lookup> {
        let ManyRest { topo, mut spread } = rest;
        if let Request::Get { cmd, exptime, keys } = get {
            // The first round is done; a key put back by `Spread::unsend` still needs all of
            // its owners, so the rounds are counted afresh.
            let rounds = topo.replicas.max(1);
            self.spread_rounds(&topo, (*cmd, *exptime), keys, &mut spread, rounds)
                .await;
            return self.end_walk(&topo, keys, spread).await;
        }
        spread.finish()
    }
}
