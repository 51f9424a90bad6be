//! Keeps one client connection's requests in memcached's order where it matters.
//!
//! memcached runs a connection's requests one after another, so `set k` then `get k` always sees
//! the set. The proxy overlaps requests to hide backend round trips, so it must not let a request
//! overtake an earlier one that touches the same key: each request waits for the earlier
//! in-flight requests on any of its keys. Requests without keys that change or read the whole
//! cache (`flush_all`, `stats`) are barriers: they wait for everything before them, and
//! everything after waits for them. Replies are put back in order separately.
//!
//! Requests are numbered as they arrive; a key remembers the last number that touched it and a
//! ring of flags says which numbers finished, so a pipelined request that conflicts with
//! nothing costs no allocation (a channel and a shared future per request cost 3.6 % of the
//! proxy's instructions at one connection, 16 in flight: bench/ANALYSIS.md).

use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use bytes::Bytes;
use ringcache_client::protocol::Request;

/// Which of a connection's requests (numbered in arrival order) have finished: every number
/// below `low`, and those of `above` marked true (finished out of order). A ring of flags, not
/// a channel per request: the pipelined path allocates nothing per request once warm.
#[derive(Default)]
struct Finished {
    low: u64,
    /// Flag `i` is request `low + i`.
    above: VecDeque<bool>,
    /// Requests waiting for another to finish; woken (all of them, to look again) by the
    /// next finish.
    waiting: Vec<Waker>,
}

impl Finished {
    fn is_done(&self, seq: u64) -> bool {
        seq < self.low
            || usize::try_from(seq - self.low)
                .ok()
                .and_then(|i| self.above.get(i).copied())
                .unwrap_or(false)
    }

    fn finish(&mut self, seq: u64) {
        let Some(i) = seq
            .checked_sub(self.low)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if self.above.len() <= i {
            self.above.resize(i + 1, false);
        }
        self.above[i] = true;
        while self.above.front() == Some(&true) {
            self.above.pop_front();
            self.low += 1;
        }
        for w in self.waiting.drain(..) {
            w.wake();
        }
    }
}

type Shared = Arc<Mutex<Finished>>;

fn lock(s: &Shared) -> MutexGuard<'_, Finished> {
    // Nothing panics while holding it; a poisoned lock still holds consistent flags.
    s.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request's place in line: the earlier requests it waits for, and its own number, marked
/// finished when the ticket is finished or dropped (a dropped request never blocks others).
pub struct Ticket {
    seq: u64,
    /// Earlier requests on the same keys (the latest per key: it waited for those before it).
    waits: Vec<u64>,
    /// A barrier waits for every earlier request.
    all_before: bool,
    state: Shared,
}

impl Ticket {
    /// Waits until every earlier conflicting request has finished.
    pub async fn ready(&mut self) {
        if self.waits.is_empty() && !self.all_before {
            return;
        }
        poll_fn(|cx| {
            let mut f = lock(&self.state);
            let ready =
                (!self.all_before || f.low >= self.seq) && self.waits.iter().all(|&s| f.is_done(s));
            if ready {
                Poll::Ready(())
            } else {
                f.waiting.push(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
        self.waits.clear();
        self.all_before = false;
    }

    /// Whether no earlier request holds this one back: [`Ticket::ready`] would not wait.
    pub fn is_clear(&self) -> bool {
        self.waits.is_empty() && !self.all_before
    }

    /// Marks this request finished (also happens if the ticket is dropped).
    pub fn finish(self) {}
}

impl Drop for Ticket {
    fn drop(&mut self) {
        lock(&self.state).finish(self.seq);
    }
}

/// Per-connection ordering state.
pub struct KeyOrder {
    next: u64,
    /// The last request that touched each key. Hashed with foldhash, not std's SipHash, which
    /// was 4.5 % of the proxy's instructions on 10-key multi-gets (bench/ANALYSIS.md). The
    /// keys are the client's, so the hash is seeded at random per map: colliding keys cannot
    /// be chosen without the seed, and the map holds only this connection's requests in
    /// flight (bounded by its byte budget and `max_inflight_per_connection`), so a client
    /// that found collisions would slow its own requests.
    last: HashMap<Bytes, u64, foldhash::fast::RandomState>,
    /// The last barrier.
    barrier: Option<u64>,
    /// Size of `last` at which finished entries are next dropped.
    prune_at: usize,
    state: Shared,
}

/// Smallest pruning threshold for [`KeyOrder::last`].
const PRUNE_MIN: usize = 64;

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder {
            next: 0,
            last: HashMap::default(),
            barrier: None,
            prune_at: PRUNE_MIN,
            state: Shared::default(),
        }
    }
}

impl KeyOrder {
    /// Forgets finished requests (call when nothing is in flight).
    pub fn clear(&mut self) {
        self.last.clear();
        self.barrier = None;
        self.prune_at = PRUNE_MIN;
    }

    /// Takes a place in line for `req`.
    pub fn admit(&mut self, req: &Request) -> Ticket {
        let seq = self.next;
        self.next += 1;
        let mut waits = Vec::new();
        let mut all_before = false;
        {
            let f = lock(&self.state);
            if let Some(b) = self.barrier.filter(|&b| !f.is_done(b)) {
                waits.push(b);
            }
            match req.keys() {
                Some(keys) => {
                    for k in keys {
                        // A key named twice (`get a a`) finds this request's own number.
                        if let Some(prev) = self.last.insert(k.clone(), seq) {
                            if prev != seq && !f.is_done(prev) {
                                waits.push(prev);
                            }
                        }
                    }
                }
                None if is_barrier(req) => {
                    all_before = true;
                    self.last.clear();
                    self.barrier = Some(seq);
                }
                None => {}
            }
            // Drop finished entries now and then (amortized), not on every request: a deep
            // pipeline of distinct keys would otherwise grow the map without end.
            if self.last.len() >= self.prune_at {
                self.last.retain(|_, s| !f.is_done(*s));
                self.prune_at = (self.last.len() * 2).max(PRUNE_MIN);
            }
        }
        Ticket {
            seq,
            waits,
            all_before,
            state: self.state.clone(),
        }
    }
}

/// Requests that see or change every key.
fn is_barrier(req: &Request) -> bool {
    matches!(
        req,
        Request::FlushAll { .. } | Request::Stats { .. } | Request::Metadump { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Waker};

    fn get(keys: &[&'static str]) -> Request {
        Request::Get {
            cmd: ringcache_client::protocol::GetCmd::Get,
            exptime: None,
            keys: keys
                .iter()
                .map(|k| Bytes::from_static(k.as_bytes()))
                .collect(),
        }
    }

    fn is_ready(t: &mut Ticket) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        pin!(t.ready()).as_mut().poll(&mut cx).is_ready()
    }

    #[test]
    fn a_request_waits_for_earlier_ones_on_its_keys_only() {
        let mut o = KeyOrder::default();
        let a = o.admit(&get(&["a"]));
        let mut b = o.admit(&get(&["b"]));
        let mut a2 = o.admit(&get(&["x", "a", "a"]));
        assert!(is_ready(&mut b), "no key in common");
        assert!(!is_ready(&mut a2), "waits for the first get of a");
        a.finish();
        assert!(is_ready(&mut a2));
    }

    #[test]
    fn a_barrier_waits_for_everything_and_everything_after_waits_for_it() {
        let mut o = KeyOrder::default();
        let a = o.admit(&get(&["a"]));
        let b = o.admit(&get(&["b"]));
        let mut stats = o.admit(&Request::Stats { group: None });
        let mut c = o.admit(&get(&["c"]));
        assert!(!is_ready(&mut stats));
        b.finish();
        assert!(!is_ready(&mut stats), "a is still running");
        drop(a); // a dropped request counts as finished
        assert!(is_ready(&mut stats));
        assert!(!is_ready(&mut c), "after the barrier");
        stats.finish();
        assert!(is_ready(&mut c));
    }

    #[test]
    fn finished_keys_are_pruned_from_a_pipeline_that_never_empties() {
        let mut o = KeyOrder::default();
        let keys: Vec<&'static str> = (0..10_000)
            .map(|i| &*Box::leak(format!("k{i}").into_boxed_str()))
            .collect();
        let mut held = o.admit(&get(&["held"]));
        for k in &keys {
            let mut t = o.admit(&get(&[k]));
            assert!(is_ready(&mut t));
            t.finish();
        }
        assert!(o.last.len() < 200, "{} keys remembered", o.last.len());
        assert!(is_ready(&mut held));
    }
}
