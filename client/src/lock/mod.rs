//! Locks and leases on the cluster: `add` on a majority of a name's replicas, a fencing token
//! that increases across grants, and nodes that may have forgotten a lease kept out of the vote.
//!
//! Teams build locks on memcached with `add` and a TTL, and get them wrong when a node fails: the
//! lock key lives on one node, the node restarts empty, and a second owner takes the same lock.
//! Here a lock is granted only when a majority of the name's replica set stored it, so any two
//! grants share a node; and a node counts toward that majority only when it cannot have forgotten
//! a live lease: it must have been up longer than the longest lease any router grants
//! ([`LockOptions::max_ttl`]), the router must not know it to be down or fenced (flushed on
//! return), and its uptime is read *after* its `add` succeeded, so an `add` that reached a process
//! that then died is never counted. This is Redlock's "delayed restart", enforced by the router
//! instead of asked of the operator. What holds under which failures, and what does not (this is
//! a lease on a cache, not consensus): docs/locks.md.
//!
//! Every request here names its node: the lock item goes to each owner of the lock name, the
//! fencing counter (`<name>:fence`) to each owner of its own key, and replies are judged per node.
//! One grant (the `add`s, the trust verdicts, and a race between partial grants resolved so that
//! one of them wins) is [`grant`]'s.

mod grant;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::join_all;

use crate::error::{Error, Refused};
use crate::protocol::{
    number::parse_u64, valid_key, MetaCmd, MetaFlags, MetaRequest, MetaStatus, Request, Response,
};
use crate::router::Router;
use crate::topology::NodeEntry;
use grant::{Ask, Outcome};

/// The suffix of the fencing counter's key: `<name>:fence`.
const FENCE_SUFFIX: &[u8] = b":fence";

/// memcached expires items on whole seconds of its own clock, so an item stored with `T<n>` may
/// be gone up to a second before `n` seconds have passed; a lease ends this much earlier too.
const EXPIRY_ROUNDING: Duration = Duration::from_secs(1);

/// How much longer than the longest lease a node must have been up to count toward a majority:
/// the margin docs/locks.md promises for clock-rate drift and the time a grant's replies take.
const TRUST_MARGIN: Duration = Duration::from_secs(1);

/// Settings every router of one cluster must agree on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LockOptions {
    /// The longest lease granted. A node counts toward a majority only after it has been up this
    /// long plus a second (measured to the millisecond where the node is ringcache), since a node
    /// that restarted sooner may have forgotten a live lease.
    pub max_ttl: Duration,
    /// Clock drift allowed for, as a fraction of the TTL (Redlock uses 1 %).
    pub drift: f64,
}

impl Default for LockOptions {
    fn default() -> Self {
        LockOptions {
            max_ttl: Duration::from_secs(60),
            drift: 0.01,
        }
    }
}

/// A granted lock: valid until [`Lease::valid_until`] unless renewed; carries a fencing token.
pub struct Lease {
    router: Router,
    opts: LockOptions,
    name: Bytes,
    owner: Bytes,
    token: u64,
    ttl: Duration,
    valid_until: Instant,
    /// The nodes holding our lock item and the CAS each gave it (for compare-and-delete).
    held: Vec<(Arc<NodeEntry>, u64)>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("token", &self.token)
            .field("ttl", &self.ttl)
            .field("valid", &self.is_valid())
            .field(
                "held_on",
                &self.held.iter().map(|(n, _)| &n.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Lease {
    /// The lock's name.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The owner the lock was granted to.
    pub fn owner(&self) -> &[u8] {
        &self.owner
    }

    /// The fencing token: strictly greater than the token of any earlier grant of this name
    /// (while the counter survives; see docs/locks.md). Hand it to the resource the lock guards,
    /// which rejects writes carrying a token older than one it has seen.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The instant until which no other owner can be granted the lock.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Whether the lease still holds (the caller's clock; drift allowed for).
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }

    /// Extends the lease by `ttl` from now, on the nodes where our item is still ours (compare
    /// on its CAS). True if a majority renewed it in time; false if the lease was lost (expired,
    /// or its item replaced), in which case it must be treated as gone.
    pub async fn renew(&mut self, ttl: Duration) -> Result<bool, Error> {
        let secs = self.opts.ttl_secs(ttl)?;
        if !self.is_valid() {
            return Ok(false);
        }
        let started = Instant::now();
        let topo = self.router.topology();
        let need = majority(topo.replicas);
        let results = join_all(self.held.iter().map(|(node, cas)| {
            let flags = MetaFlags {
                compare_cas: Some(*cas),
                ttl: Some(secs),
                ret_cas: true,
                ..MetaFlags::default()
            };
            let req = MetaRequest::new(
                MetaCmd::Set,
                self.name.clone(),
                flags,
                Some(self.owner.clone()),
            );
            let router = &self.router;
            let node = node.clone();
            async move {
                let r = router.send(&node, Request::Meta(Box::new(req))).await;
                (node, stored_cas(&r))
            }
        }))
        .await;
        let renewed: Vec<(Arc<NodeEntry>, u64)> = results
            .into_iter()
            .filter_map(|(n, cas)| cas.map(|c| (n, c)))
            .collect();
        let trusted = Locker {
            router: &self.router,
        }
        .trusted(&renewed, &self.opts)
        .await;
        self.held = renewed;
        let deadline = self.opts.lease_end(started, ttl);
        if trusted >= need && Instant::now() < deadline {
            self.ttl = ttl;
            self.valid_until = deadline;
            Ok(true)
        } else {
            // Not renewed on a majority: give up what we still hold rather than keep a minority.
            self.valid_until = Instant::now();
            Locker {
                router: &self.router,
            }
            .remove(&self.name, &self.held)
            .await;
            self.held.clear();
            Ok(false)
        }
    }

    /// Releases the lock: deletes our item where its CAS still matches (`md … C<cas>`, never a
    /// blind delete, so an expired lease cannot remove the next owner's lock). True if a node
    /// still held it as ours.
    pub async fn release(mut self) -> Result<bool, Error> {
        let held = std::mem::take(&mut self.held);
        Ok(Locker {
            router: &self.router,
        }
        .remove(&self.name, &held)
        .await
            > 0)
    }
}

impl LockOptions {
    /// The TTL in whole seconds as the store takes it; refused when it could not protect anything
    /// (under 2 s, after memcached's expiry rounding) or is longer than `max_ttl`.
    fn ttl_secs(&self, ttl: Duration) -> Result<i64, Error> {
        if ttl < Duration::from_secs(2) || ttl > self.max_ttl || ttl.subsec_nanos() != 0 {
            return Err(Error::Lock(format!(
                "lease TTL must be whole seconds from 2 to {} s",
                self.max_ttl.as_secs()
            )));
        }
        i64::try_from(ttl.as_secs()).map_err(|_| Error::Lock("lease TTL out of range".into()))
    }

    /// When a lease taken at `started` for `ttl` ends, from the holder's point of view.
    fn lease_end(&self, started: Instant, ttl: Duration) -> Instant {
        let margin = ttl.mul_f64(self.drift) + Duration::from_millis(2) + EXPIRY_ROUNDING;
        started + ttl.saturating_sub(margin)
    }

    /// How long a node must have been up to count toward a majority.
    fn min_uptime(&self) -> Duration {
        self.max_ttl + TRUST_MARGIN
    }
}

/// Takes the lock `name` for `owner` for `ttl` (whole seconds, 2 s up to
/// [`LockOptions::max_ttl`]) on `router`'s cluster: `Some(lease)` if a majority of the
/// name's replicas granted it, `None` if another owner holds it (or too few trusted replicas
/// answered). Refused with replicas 1: a single copy cannot survive its node's restart. Every
/// router of the cluster must use the same `opts`.
pub async fn lock(
    router: &Router,
    opts: &LockOptions,
    name: &[u8],
    owner: &[u8],
    ttl: Duration,
) -> Result<Option<Lease>, Error> {
    let locker = Locker { router };
    let secs = opts.ttl_secs(ttl)?;
    if !valid_key(name) || name.len() + FENCE_SUFFIX.len() > crate::protocol::MAX_KEY_LEN {
        return Err(Error::InvalidKey(
            String::from_utf8_lossy(name).into_owned(),
        ));
    }
    let topo = router.topology();
    if topo.replicas < 2 {
        return Err(Error::Lock(
            "locks need replicas >= 2: one copy is lost with its node".into(),
        ));
    }
    let name = Bytes::copy_from_slice(name);
    let owner = Bytes::copy_from_slice(owner);
    let started = Instant::now();
    let valid_until = opts.lease_end(started, ttl);
    let ask = Ask {
        key: name.clone(),
        value: owner.clone(),
        client_flags: None,
        ttl: secs,
    };
    let held = match locker.grant(opts, &ask, valid_until).await {
        Outcome::Granted(held) => held,
        Outcome::Refused { .. } => return Ok(None),
    };
    if Instant::now() >= valid_until {
        locker.remove(&name, &held).await;
        return Ok(None);
    }
    let token = match locker.next_token(&name).await {
        Ok(t) => t,
        Err(e) => {
            locker.remove(&name, &held).await;
            return Err(e);
        }
    };
    if Instant::now() >= valid_until {
        locker.remove(&name, &held).await;
        return Ok(None);
    }
    Ok(Some(Lease {
        router: router.clone(),
        opts: *opts,
        name,
        owner,
        token,
        ttl,
        valid_until,
        held,
    }))
}

/// `add` with a lock's majority rule, for memcached clients behind the proxy (its `add`
/// under `ack = quorum`): stored on every usable owner (`ms … ME`, one router-chosen CAS
/// where the node takes `E`), `STORED` only when a majority of the replica set took it and
/// counts as [trusted](LockOptions::max_ttl); otherwise what was stored is removed again
/// (compare on its CAS) and the answer is `NOT_STORED` — or, when fewer than a majority
/// answered at all, a `SERVER_ERROR`, since nobody may hold the key. Racing `add`s that
/// split the owners so that none has a majority still grant one of them (the earliest; see
/// [`grant`]).
pub async fn add_majority(
    router: &Router,
    opts: &LockOptions,
    key: Bytes,
    value: Bytes,
    flags: u32,
    exptime: i64,
) -> Result<Response, Error> {
    let locker = Locker { router };
    let ask = Ask {
        key,
        value,
        client_flags: (flags != 0).then_some(flags),
        ttl: exptime,
    };
    // A grant that cannot be valid any more is of no use to its client either.
    let latest = Instant::now() + opts.max_ttl;
    match locker.grant(opts, &ask, latest).await {
        Outcome::Granted(_) => Ok(Response::Stored),
        Outcome::Refused { quorum_answered } if quorum_answered => Ok(Response::NotStored),
        Outcome::Refused { .. } => Err(Error::Server(Refused::Server(
            "too few replicas answered for a majority".into(),
        ))),
    }
}

/// The lock algorithm over one router: it uses the engine's public methods only (the
/// topology, a key's owners, one request to one node, the router-chosen CAS).
struct Locker<'a> {
    router: &'a Router,
}

impl Locker<'_> {
    /// Deletes our lock item from each node where it still carries our CAS; how many did.
    async fn remove(&self, name: &Bytes, held: &[(Arc<NodeEntry>, u64)]) -> usize {
        let results = join_all(held.iter().map(|(node, cas)| {
            let flags = MetaFlags {
                compare_cas: Some(*cas),
                ..MetaFlags::default()
            };
            let req = MetaRequest::new(MetaCmd::Delete, name.clone(), flags, None);
            self.router.send(node, Request::Meta(Box::new(req)))
        }))
        .await;
        results
            .iter()
            .filter(|r| matches!(r, Ok(Response::Meta(m)) if m.status == MetaStatus::Hd))
            .count()
    }

    /// The next fencing token of `name`: one more than the largest counter value held by any
    /// owner of `<name>:fence` that answers (a majority must), and at least the current time in
    /// microseconds, so that tokens keep increasing even where every copy of the counter was
    /// lost, as long as clocks do not step back. Written back to every owner before it is used.
    async fn next_token(&self, name: &Bytes) -> Result<u64, Error> {
        let mut key = Vec::with_capacity(name.len() + FENCE_SUFFIX.len());
        key.extend_from_slice(name);
        key.extend_from_slice(FENCE_SUFFIX);
        let key = Bytes::from(key);
        let topo = self.router.topology();
        let need = majority(topo.replicas);
        let owners: Vec<Arc<NodeEntry>> = Router::live_owners(&topo, &key);
        let reads = join_all(owners.iter().map(|node| {
            let flags = MetaFlags {
                value: true,
                ret_cas: true,
                ..MetaFlags::default()
            };
            let req = MetaRequest::new(MetaCmd::Get, key.clone(), flags, None);
            self.router.send(node, Request::Meta(Box::new(req)))
        }))
        .await;
        // Per answering owner: the counter's value and CAS, or `None` where it is missing.
        let mut seen: Vec<(Arc<NodeEntry>, Option<Counter>)> = Vec::new();
        for (node, r) in owners.iter().zip(reads) {
            match r {
                Ok(Response::Meta(m)) if m.status == MetaStatus::Va => {
                    let value = m.value.as_deref().and_then(parse_u64).unwrap_or(0);
                    let cas = m.flag_u64(b'c').unwrap_or(0);
                    seen.push((node.clone(), Some(Counter { value, cas })));
                }
                Ok(Response::Meta(m)) if m.status == MetaStatus::En => {
                    seen.push((node.clone(), None));
                }
                _ => {}
            }
        }
        if seen.len() < need {
            return Err(Error::Lock(
                "fencing counter: too few replicas answered".into(),
            ));
        }
        let counted = seen
            .iter()
            .filter_map(|(_, v)| v.map(|c| c.value))
            .max()
            .unwrap_or(0);
        let now_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let token = counted.saturating_add(1).max(now_us);
        let value = Bytes::from(token.to_string());
        // Compare-and-set on each copy read (add where it was missing): a racing grant's write
        // makes ours fail there instead of lowering the counter.
        let writes = join_all(seen.iter().map(|(node, v)| {
            let flags = MetaFlags {
                compare_cas: v.map(|c| c.cas),
                mode: v.is_none().then_some(b'E'),
                ..MetaFlags::default()
            };
            let req = MetaRequest::new(MetaCmd::Set, key.clone(), flags, Some(value.clone()));
            self.router.send(node, Request::Meta(Box::new(req)))
        }))
        .await;
        let stored = writes
            .iter()
            .filter(|r| matches!(r, Ok(Response::Meta(m)) if m.status == MetaStatus::Hd))
            .count();
        if stored < need {
            return Err(Error::Lock(
                "fencing counter: a concurrent grant raced this one".into(),
            ));
        }
        Ok(token)
    }
}

/// One copy of a fencing counter as read.
#[derive(Debug, Clone, Copy)]
struct Counter {
    value: u64,
    cas: u64,
}

/// The smallest majority of `replicas` copies.
fn majority(replicas: usize) -> usize {
    replicas / 2 + 1
}

/// The CAS of an item a meta set stored (`HD c<cas>`), `None` if it was not stored.
fn stored_cas(r: &Result<Response, Error>) -> Option<u64> {
    match r {
        Ok(Response::Meta(m)) if m.status == MetaStatus::Hd => Some(m.flag_u64(b'c').unwrap_or(0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majorities() {
        assert_eq!(majority(2), 2);
        assert_eq!(majority(3), 2);
        assert_eq!(majority(4), 3);
        assert_eq!(majority(5), 3);
    }

    #[test]
    fn ttl_bounds() {
        let o = LockOptions {
            max_ttl: Duration::from_secs(10),
            drift: 0.01,
        };
        assert!(o.ttl_secs(Duration::from_secs(1)).is_err());
        assert!(o.ttl_secs(Duration::from_millis(2500)).is_err());
        assert!(o.ttl_secs(Duration::from_secs(11)).is_err());
        assert_eq!(o.ttl_secs(Duration::from_secs(2)).ok(), Some(2));
        assert_eq!(o.ttl_secs(Duration::from_secs(10)).ok(), Some(10));
    }

    #[test]
    fn a_lease_ends_before_the_item_can_expire() {
        let o = LockOptions::default();
        let t0 = Instant::now();
        let end = o.lease_end(t0, Duration::from_secs(10));
        // 10 s less 1 s of expiry rounding, 100 ms of drift and 2 ms.
        assert_eq!(end - t0, Duration::from_millis(8_898));
    }
}
