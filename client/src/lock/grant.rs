//! One grant of a lock: the `add` on every owner of the name, whether each node that took it
//! counts toward the majority, and what a grant does when racing grants split the owners so that
//! none of them has a majority.
//!
//! **A node's age.** A node counts only when it has been up longer than any lease
//! ([`LockOptions::min_uptime`]), asked after our `add` succeeded there. A ringcache node says
//! `uptime_ms`, from a monotonic clock, which never reads high. memcached says only `uptime`, in
//! whole seconds, and it reads high: memcached dates its start 2 s before the real one (so that
//! `time(0) - process_started` is never zero, memcached.c `stats_init`) and counts whole seconds,
//! which adds up to one more. So a node without `uptime_ms` is taken to be
//! [`MEMCACHED_UPTIME_HIGH`] younger than it says.
//!
//! **A race has a winner.** Two racers on two replicas can each take one, and undoing both
//! partial grants would leave nobody holding the lock, on every try, where memcached alone
//! always grants one. So every grant stores one router-chosen CAS on every owner (`E<cas>`,
//! nanoseconds since the epoch, so a lower CAS is an earlier grant), and of the grants stored the
//! one with the lowest CAS wins, unless one grant holds a majority of the replica set already
//! (then no other can win, and it does). A partial grant reads the CAS of the items on the
//! owners it lacks (`mg <key> c`): it yields (undoes its items) if one CAS is on a majority, or
//! if any is lower than its own. A grant that holds a majority (of owners that answer, trusted
//! or not yet) never yields, and neither does the earliest racer: they retry their `add` where
//! it was refused until the others have undone theirs, for at most two request timeouts, and
//! a grant that waited stores its items again before it answers, so their TTL starts then. Every
//! router decides alike, from the items alone, so no racer needs to know the others. Safety
//! never rests on this: an item is only ever added where none is and removed by
//! the grant that stored it, so two majorities of different grants cannot both exist. What it
//! cannot promise (racers that see different owners, nodes without `E`): docs/locks.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;

use super::{majority, stored_cas, LockOptions, Locker};
use crate::health::NodeState;
use crate::protocol::{
    number::parse_u64, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response,
};
use crate::router::Router;
use crate::topology::{CasSupport, NodeEntry};

/// How much more than its real age memcached's whole-second `uptime` can say: 2 s it adds at
/// start, and up to 1 s of a clock counted in whole seconds.
const MEMCACHED_UPTIME_HIGH: u64 = 3;

/// The first pause of the earliest racer between its retries, doubled up to [`MAX_PAUSE`]: the
/// others undo their items one round trip after they read its CAS.
const FIRST_PAUSE: Duration = Duration::from_millis(1);

/// The longest pause between the earliest racer's retries.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// How many request timeouts the earliest racer waits for the others to yield, from its first
/// answers: a rival's first round can take one (an owner that does not answer), and its reads
/// and undo a few round trips more.
const RIVAL_WAIT_TIMEOUTS: u32 = 2;

/// What a grant stores: the same `add` on every owner, first try and retries.
pub(super) struct Ask {
    pub key: Bytes,
    pub value: Bytes,
    /// memcached's client flags (`F`), when not 0.
    pub client_flags: Option<u32>,
    /// The TTL as the store takes it (`T`).
    pub ttl: i64,
}

impl Ask {
    /// `ms` of the asked item to `node` with `flags` (an add's `ME`, or a compare on the CAS
    /// held there), carrying its TTL and client flags, asking for the CAS back, and with our
    /// CAS where the node takes `E`.
    fn store(&self, node: &NodeEntry, cas: u64, flags: MetaFlags) -> Request {
        let flags = MetaFlags {
            ttl: Some(self.ttl),
            client_flags: self.client_flags,
            ret_cas: true,
            new_cas: (node.cas_support() != CasSupport::No).then_some(cas),
            ..flags
        };
        let req = MetaRequest::new(
            MetaCmd::Set,
            self.key.clone(),
            flags,
            Some(self.value.clone()),
        );
        Request::Meta(Box::new(req))
    }
}

/// How a grant ended.
pub(super) enum Outcome {
    /// A majority of trusted owners hold our item: each such node and the CAS it gave it.
    Granted(Vec<(Arc<NodeEntry>, u64)>),
    /// Not granted, and nothing of ours is left where a node answered. `quorum_answered`: a
    /// majority of the replica set answered the first `add` (stored or refused), so another
    /// owner may hold the key; otherwise too few nodes could be asked at all.
    Refused { quorum_answered: bool },
}

/// One owner of the name as this grant saw it.
struct Seat {
    node: Arc<NodeEntry>,
    answer: Answer,
    /// Whether the node counts toward the majority, asked after our `add` succeeded there.
    trust: Option<Trust>,
}

/// Whether a node holding our item counts toward the majority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Up longer than any lease, and up and unfenced as this router sees it.
    Yes,
    /// Answering, but too young, or down or fenced as this router sees it.
    No,
    /// Its `stats` went unanswered: it takes no further part in this grant.
    Silent,
}

/// What an owner last answered our `add`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Our item is stored there, with this CAS.
    Held(u64),
    /// Another item is there (`NS`).
    Taken,
    /// No answer (an error, a timeout): the node takes no further part in this grant.
    Failed,
}

/// Who holds an owner we lack, read after our `add` was refused there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rival {
    /// An item with this CAS.
    Cas(u64),
    /// Nothing any more: its grant undid it, so our retry can take the owner at once.
    Gone,
    /// The read failed: the owner takes no further part in this grant (a stopped owner would
    /// hold up every round by a request timeout).
    Unknown,
}

impl Locker<'_> {
    /// Grants `ask` as a lock: stored on every usable owner of its key with one CAS of this
    /// router's, granted when a majority of the replica set holds it and is trusted; a partial
    /// grant waits only while it is the earliest of the racers (module docs), for at most
    /// [`RIVAL_WAIT_TIMEOUTS`] request timeouts after the first answers, never past `latest`.
    pub(super) async fn grant(&self, opts: &LockOptions, ask: &Ask, latest: Instant) -> Outcome {
        let topo = self.router.topology();
        let need = majority(topo.replicas);
        let mut seats: Vec<Seat> = Router::live_owners(&topo, &ask.key)
            .into_iter()
            .map(|node| Seat {
                node,
                answer: Answer::Failed,
                trust: None,
            })
            .collect();
        if seats.len() < need {
            return Outcome::Refused {
                quorum_answered: false,
            };
        }
        let cas = self.router.next_cas();
        let every: Vec<usize> = (0..seats.len()).collect();
        self.add_on(&mut seats, &every, ask, cas).await;
        let answered = seats.iter().filter(|s| s.answer != Answer::Failed).count();
        // Counted from the first answers, so that an owner that timed out (paused, cut off)
        // does not use up the time the others' undo takes; and long enough for a racer whose
        // first round waits for that owner's timeout too, before it can see us and yield.
        let (now, deadline) = self.router.started_now();
        let timeout = deadline.into_std().saturating_duration_since(now);
        let give_up = (now + timeout * RIVAL_WAIT_TIMEOUTS).min(latest);
        let mut pause = FIRST_PAUSE;
        let mut waited = false;
        loop {
            self.judge(&mut seats, opts).await;
            let trusted = seats.iter().filter(|s| s.trust == Some(Trust::Yes)).count();
            if trusted >= need {
                // Our first items were stored before we waited: their TTL starts again, so
                // that a memcached client counting it from our answer does not outlive them by
                // the wait. Where one is no longer ours, the majority may be gone with it.
                if !waited || self.refresh(&mut seats, ask, cas).await >= need {
                    return Outcome::Granted(held(&seats));
                }
                break;
            }
            let taken: Vec<usize> = (0..seats.len())
                .filter(|&i| seats[i].answer == Answer::Taken)
                .collect();
            let holding = seats.iter().any(|s| matches!(s.answer, Answer::Held(_)));
            // Nothing to wait for: we hold nothing (another grant has the owners), even every
            // owner we lack would not make a trusted majority, or the time is up.
            if !holding || trusted + taken.len() < need || Instant::now() >= give_up {
                break;
            }
            let rivals = self.rivals(&seats, &taken, &ask.key).await;
            // Holding a majority of the replica set (of nodes that answer), we are the one grant
            // that can still win: the others see it and yield.
            let answering = seats
                .iter()
                .filter(|s| matches!(s.answer, Answer::Held(_)) && s.trust != Some(Trust::Silent))
                .count();
            if answering < need && yields(cas, &rivals, need) {
                break;
            }
            for (&i, r) in taken.iter().zip(&rivals) {
                if *r == Rival::Unknown {
                    seats[i].answer = Answer::Failed;
                }
            }
            let retry: Vec<usize> = taken
                .iter()
                .copied()
                .filter(|&i| seats[i].answer == Answer::Taken)
                .collect();
            if !rivals.contains(&Rival::Gone) {
                let left = give_up.saturating_duration_since(Instant::now());
                tokio::time::sleep(pause.min(left)).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            self.add_on(&mut seats, &retry, ask, cas).await;
            waited = true;
        }
        self.remove(&ask.key, &held(&seats)).await;
        Outcome::Refused {
            quorum_answered: answered >= need,
        }
    }

    /// Sends our `add` (`ms <key> ME E<cas> c`) to the seats `which` and records each answer.
    async fn add_on(&self, seats: &mut [Seat], which: &[usize], ask: &Ask, cas: u64) {
        let answers = join_all(which.iter().map(|&i| {
            let node = &seats[i].node;
            let add = MetaFlags {
                mode: Some(b'E'),
                ..MetaFlags::default()
            };
            self.router.send(node, ask.store(node, cas, add))
        }))
        .await;
        for (&i, r) in which.iter().zip(answers) {
            seats[i].answer = match (&r, stored_cas(&r)) {
                (_, Some(c)) => Answer::Held(c),
                (Ok(Response::Meta(m)), None) if m.status == MetaStatus::Ns => Answer::Taken,
                _ => Answer::Failed,
            };
        }
    }

    /// Stores our item again on each seat that holds it, compare on its CAS (`ms <key> C<cas>
    /// T<ttl>`), restarting its TTL; how many trusted seats still hold it. A seat whose item is
    /// no longer ours is no longer held (nothing of ours to undo there).
    async fn refresh(&self, seats: &mut [Seat], ask: &Ask, cas: u64) -> usize {
        let which: Vec<usize> = (0..seats.len())
            .filter(|&i| matches!(seats[i].answer, Answer::Held(_)))
            .collect();
        let answers = join_all(which.iter().map(|&i| {
            let seat = &seats[i];
            let held_cas = match seat.answer {
                Answer::Held(c) => c,
                _ => 0,
            };
            let compare = MetaFlags {
                compare_cas: Some(held_cas),
                ..MetaFlags::default()
            };
            self.router
                .send(&seat.node, ask.store(&seat.node, cas, compare))
        }))
        .await;
        for (&i, r) in which.iter().zip(answers) {
            seats[i].answer = match stored_cas(&r) {
                Some(c) => Answer::Held(c),
                None => Answer::Failed,
            };
        }
        seats
            .iter()
            .filter(|s| matches!(s.answer, Answer::Held(_)) && s.trust == Some(Trust::Yes))
            .count()
    }

    /// Asks each node that newly holds our item whether it counts toward the majority.
    async fn judge(&self, seats: &mut [Seat], opts: &LockOptions) {
        let ask: Vec<usize> = (0..seats.len())
            .filter(|&i| matches!(seats[i].answer, Answer::Held(_)) && seats[i].trust.is_none())
            .collect();
        let verdicts = join_all(ask.iter().map(|&i| self.trusts(&seats[i].node, opts))).await;
        for (&i, v) in ask.iter().zip(verdicts) {
            seats[i].trust = Some(v);
        }
    }

    /// The CAS of the items on the seats `which` (`mg <key> c`).
    async fn rivals(&self, seats: &[Seat], which: &[usize], key: &Bytes) -> Vec<Rival> {
        let reads = join_all(which.iter().map(|&i| {
            let flags = MetaFlags {
                ret_cas: true,
                ..MetaFlags::default()
            };
            let req = MetaRequest::new(MetaCmd::Get, key.clone(), flags, None);
            self.router
                .send(&seats[i].node, Request::Meta(Box::new(req)))
        }))
        .await;
        reads
            .into_iter()
            .map(|r| match r {
                Ok(Response::Meta(m)) if matches!(m.status, MetaStatus::Hd | MetaStatus::Va) => {
                    m.flag_u64(b'c').map_or(Rival::Unknown, Rival::Cas)
                }
                Ok(Response::Meta(m)) if m.status == MetaStatus::En => Rival::Gone,
                _ => Rival::Unknown,
            })
            .collect()
    }

    /// How many of `held` count toward a majority (see [`Router::trusts`]).
    pub(super) async fn trusted(
        &self,
        held: &[(Arc<NodeEntry>, u64)],
        opts: &LockOptions,
    ) -> usize {
        join_all(held.iter().map(|(node, _)| self.trusts(node, opts)))
            .await
            .into_iter()
            .filter(|&t| t == Trust::Yes)
            .count()
    }

    /// Whether `node` counts toward a majority: up and unfenced as this router sees it, and
    /// (asked now, after our write there) up longer than any lease lasts, plus the margin.
    async fn trusts(&self, node: &Arc<NodeEntry>, opts: &LockOptions) -> Trust {
        if node.health.state() != NodeState::Up {
            return Trust::No;
        }
        match self.router.send(node, Request::Stats { group: None }).await {
            Ok(Response::Stats(fields)) if up_at_least(&fields, opts.min_uptime()) => Trust::Yes,
            Ok(_) => Trust::No,
            Err(_) => Trust::Silent,
        }
    }
}

/// The nodes holding our item and the CAS each gave it.
fn held(seats: &[Seat]) -> Vec<(Arc<NodeEntry>, u64)> {
    seats
        .iter()
        .filter_map(|s| match s.answer {
            Answer::Held(c) => Some((s.node.clone(), c)),
            _ => None,
        })
        .collect()
}

/// Whether the grant with CAS `cas`, holding less than a majority, gives way to the items on
/// the owners it lacks: one CAS is on a majority (a grant that won, or will: it never yields),
/// or one of them is an earlier grant (a lower CAS).
fn yields(cas: u64, rivals: &[Rival], need: usize) -> bool {
    let seen: Vec<u64> = rivals
        .iter()
        .filter_map(|r| match r {
            Rival::Cas(c) => Some(*c),
            _ => None,
        })
        .collect();
    seen.iter().any(|&c| c < cas)
        || seen
            .iter()
            .any(|&c| seen.iter().filter(|&&d| d == c).count() >= need)
}

/// Whether a node's general `stats` show it up for at least `min`: ringcache's `uptime_ms`
/// where the node sends it, else memcached's `uptime` less the most it can read high.
fn up_at_least(fields: &[(Bytes, Bytes)], min: Duration) -> bool {
    let field = |name: &[u8]| {
        fields
            .iter()
            .find(|(k, _)| &k[..] == name)
            .and_then(|(_, v)| parse_u64(v))
    };
    let up = match (field(b"uptime_ms"), field(b"uptime")) {
        (Some(ms), _) => Duration::from_millis(ms),
        (None, Some(secs)) => Duration::from_secs(secs.saturating_sub(MEMCACHED_UPTIME_HIGH)),
        (None, None) => return false,
    };
    up >= min
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    Bytes::copy_from_slice(k.as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn a_ringcache_node_is_judged_to_the_millisecond() {
        let min = Duration::from_secs(4);
        // `uptime` (rounded) says 4 s; the monotonic milliseconds say not yet.
        let young = stats(&[("uptime", "4"), ("uptime_ms", "3999")]);
        assert!(!up_at_least(&young, min));
        let old = stats(&[("uptime", "4"), ("uptime_ms", "4000")]);
        assert!(up_at_least(&old, min));
    }

    #[test]
    fn memcached_uptime_counts_three_seconds_less() {
        let min = Duration::from_secs(4);
        assert!(!up_at_least(&stats(&[("uptime", "6")]), min));
        assert!(up_at_least(&stats(&[("uptime", "7")]), min));
        assert!(!up_at_least(&stats(&[("uptime", "2")]), min));
        assert!(!up_at_least(&stats(&[("pid", "1")]), min));
        assert!(!up_at_least(&stats(&[("uptime", "soon")]), min));
    }

    #[test]
    fn the_earliest_grant_is_the_only_one_that_waits() {
        // Two racers split three owners, a third holds the last: only the lowest CAS waits.
        assert!(!yields(10, &[Rival::Cas(20), Rival::Cas(30)], 2));
        assert!(yields(20, &[Rival::Cas(10)], 2));
        assert!(yields(30, &[Rival::Cas(10), Rival::Cas(20)], 2));
        // Owners emptied meanwhile or unread do not make a grant give way.
        assert!(!yields(10, &[Rival::Gone, Rival::Unknown], 2));
    }

    #[test]
    fn a_grant_holding_a_majority_is_never_waited_for() {
        // Its CAS is later (it chose it later, or its router's clock is ahead), but it holds a
        // majority: no other grant can win while it does, and it does not yield.
        assert!(yields(10, &[Rival::Cas(20), Rival::Cas(20)], 2));
        assert!(!yields(10, &[Rival::Cas(20), Rival::Cas(30)], 2));
    }
}
