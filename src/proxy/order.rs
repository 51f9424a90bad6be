//! Keeps one client connection's requests in memcached's order where it matters.
//!
//! memcached runs a connection's requests one after another, so `set k` then `get k` always sees
//! the set. The proxy overlaps requests to hide backend round trips, so it must not let a request
//! overtake an earlier one that touches the same key: each request waits for the earlier
//! in-flight requests on any of its keys. Requests without keys that change or read the whole
//! cache (`flush_all`, `stats`) are barriers: they wait for everything before them, and
//! everything after waits for them. Replies are put back in order separately.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::future::{join_all, FutureExt, Shared};
use ringcache_client::protocol::Request;
use tokio::sync::oneshot;

/// Resolves when a request has finished executing.
pub type Done = Shared<oneshot::Receiver<()>>;

/// A request's place in line: what to wait for, and the signal to give when done.
pub struct Ticket {
    waits: Vec<Done>,
    done: oneshot::Sender<()>,
}

impl Ticket {
    /// Waits until every earlier conflicting request has finished.
    pub async fn ready(&mut self) {
        if !self.waits.is_empty() {
            join_all(self.waits.drain(..)).await;
        }
    }

    /// Marks this request finished (also happens if the ticket is dropped).
    pub fn finish(self) {
        let _ = self.done.send(());
    }
}

/// Per-connection ordering state.
pub struct KeyOrder {
    last: HashMap<Bytes, Done>,
    barrier: Option<Done>,
    /// Every in-flight request (and some finished ones), for the next barrier.
    all: Vec<Done>,
    /// Length of `all` at which finished entries are next dropped.
    prune_at: usize,
}

/// Smallest pruning threshold for [`KeyOrder::all`].
const PRUNE_MIN: usize = 64;

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder {
            last: HashMap::new(),
            barrier: None,
            all: Vec::new(),
            prune_at: PRUNE_MIN,
        }
    }
}

impl KeyOrder {
    /// Forgets finished requests (call when nothing is in flight).
    pub fn clear(&mut self) {
        self.last.clear();
        self.barrier = None;
        self.all.clear();
        self.prune_at = PRUNE_MIN;
    }

    /// Takes a place in line for `req`.
    pub fn admit(&mut self, req: &Request) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let done = rx.shared();
        let mut waits: Vec<Done> = self.barrier.iter().cloned().collect();
        match req.keys() {
            Some(keys) => {
                for k in keys {
                    if let Some(prev) = self.last.insert(k.clone(), done.clone()) {
                        // A key named twice (`get a a`) finds this request's own signal:
                        // waiting on it would never end.
                        if !Shared::ptr_eq(&prev, &done) && prev.peek().is_none() {
                            waits.push(prev);
                        }
                    }
                }
            }
            None if is_barrier(req) => {
                waits.extend(self.all.drain(..).filter(|d| d.peek().is_none()));
                self.last.clear();
                self.barrier = Some(done.clone());
            }
            None => {}
        }
        // Drop finished entries now and then (amortized), not on every request: a deep pipeline
        // would otherwise rescan the whole list each time.
        if self.all.len() >= self.prune_at {
            self.all.retain(|d| d.peek().is_none());
            self.prune_at = (self.all.len() * 2).max(PRUNE_MIN);
        }
        self.all.push(done);
        Ticket { waits, done: tx }
    }
}

/// Requests that see or change every key.
fn is_barrier(req: &Request) -> bool {
    matches!(
        req,
        Request::FlushAll { .. } | Request::Stats { .. } | Request::Metadump { .. }
    )
}
