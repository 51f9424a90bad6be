//! What moves when membership changes: the arcs of the hash space whose owner set differs
//! between two rings, and the share of the keyspace each node gains and loses — computed by
//! exact arc arithmetic, not by sampling keys.
//!
//! Between two consecutive points of either ring every position has the same owners in both
//! rings (owners only change at a point), so it is enough to look up each such elementary arc
//! once, at its inclusive end, and add up arc widths as integers over the 2^64 (xxh3) or 2^32
//! (ketama) space; shares are divided out only at the end.
//!
//! Nodes are matched between the two rings by **address**, because that is where the bytes
//! are: a node that keeps its name but changes address keeps its ring positions, yet its keys
//! must still be copied to the new address, so it is reported as losing and gaining them.
//!
//! When the two rings hash differently (xxh3 ↔ ketama) a key's two positions are unrelated, so
//! there are no arcs to move; the shares are then the exact expectations over keys, treating
//! the two hash functions as independent (e.g. `moved = 1 − Σ_S P_old(S)·P_new(S)` over owner
//! sets `S`), and [`RingDiff::arcs`] is empty.

use std::collections::BTreeMap;

use super::Ring;

/// One arc of the hash space, `(start, end]`, whose owner set changes. It wraps through the
/// top of the space when `start >= end` (`start == end` is the whole ring).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedArc {
    /// Exclusive start.
    pub start: u64,
    /// Inclusive end.
    pub end: u64,
    /// Owners before, primary first, as indexes into the old ring's `nodes()`.
    pub old: Vec<usize>,
    /// Owners after, primary first, as indexes into the new ring's `nodes()`.
    pub new: Vec<usize>,
}

impl MovedArc {
    /// Number of positions in the arc, in a space of `space` positions.
    pub fn width(&self, space: u128) -> u128 {
        arc_width(self.start, self.end, space)
    }

    /// Whether the ring position `hash` lies in the arc.
    pub fn contains(&self, hash: u64) -> bool {
        if self.start < self.end {
            hash > self.start && hash <= self.end
        } else {
            hash > self.start || hash <= self.end
        }
    }
}

/// One node's shares of the keyspace, before and after (0..=1 each).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeMove {
    /// Ring name (the new configuration's when the node is in both).
    pub name: String,
    /// Address: the node's identity across the two rings.
    pub addr: String,
    /// Share of keys it holds a copy of (as any replica), before and after.
    pub before: f64,
    pub after: f64,
    /// Share of keys it is the primary of, before and after.
    pub primary_before: f64,
    pub primary_after: f64,
    /// Share of keys it must receive (owner after, not before) and may drop (owner before, not
    /// after).
    pub gained: f64,
    pub lost: f64,
}

/// The difference between two placements.
#[derive(Debug, Clone, PartialEq)]
pub struct RingDiff {
    /// Whether both rings hash keys the same way (same [`super::HashKind`]); when not, `arcs` is
    /// empty and the shares are expectations (see the module docs).
    pub same_hash: bool,
    /// Size of the hash space the arcs live in.
    pub space: u128,
    /// Share of keys whose owner set changes.
    pub moved: f64,
    /// Share of keys whose primary changes.
    pub primary_moved: f64,
    /// Copies to make, as a share of the keyspace: the sum of every node's `gained` (with
    /// replicas = 2 it can reach 2).
    pub copies_moved: f64,
    /// Every node of either ring: old ring's order, then the newcomers in new ring's order.
    pub nodes: Vec<NodeMove>,
    /// The moved arcs in ring order (adjacent arcs with the same owners merged).
    pub arcs: Vec<MovedArc>,
}

/// Width of `(start, end]` in a space of `space` positions; `start >= end` wraps.
fn arc_width(start: u64, end: u64, space: u128) -> u128 {
    if start < end {
        u128::from(end - start)
    } else {
        space - u128::from(start) + u128::from(end)
    }
}

/// The arcs between sorted, distinct `bounds`: `(start, end, width)` of each `(start, end]`,
/// the wrapping one (from the last boundary through the top of the space) first.
fn arcs_between(bounds: &[u64], space: u128) -> impl Iterator<Item = (u64, u64, u128)> + '_ {
    let last = bounds.last().copied();
    bounds.iter().enumerate().map(move |(j, &end)| {
        let start = if j == 0 {
            last.unwrap_or(end)
        } else {
            bounds[j - 1]
        };
        (start, end, arc_width(start, end, space))
    })
}

/// The nodes of both rings, matched by address.
struct Members {
    names: Vec<String>,
    addrs: Vec<String>,
    /// Member id of each old / new node index.
    old: Vec<usize>,
    new: Vec<usize>,
}

impl Members {
    fn of(old: &Ring, new: &Ring) -> Members {
        let mut m = Members {
            names: Vec::new(),
            addrs: Vec::new(),
            old: Vec::new(),
            new: Vec::new(),
        };
        for n in old.nodes() {
            m.old.push(m.addrs.len());
            m.names.push(n.ring_name().to_string());
            m.addrs.push(n.addr.clone());
        }
        for n in new.nodes() {
            match m.addrs.iter().position(|a| *a == n.addr) {
                Some(id) => {
                    m.names[id] = n.ring_name().to_string();
                    m.new.push(id);
                }
                None => {
                    m.new.push(m.addrs.len());
                    m.names.push(n.ring_name().to_string());
                    m.addrs.push(n.addr.clone());
                }
            }
        }
        m
    }
}

/// Reusable lookup of a ring's owners at a position.
struct Lookup<'a> {
    ring: &'a Ring,
    replicas: usize,
    buf: Vec<usize>,
    len: usize,
}

impl<'a> Lookup<'a> {
    fn new(ring: &'a Ring, replicas: usize) -> Lookup<'a> {
        let n = replicas.max(1).min(ring.nodes().len());
        Lookup {
            ring,
            replicas: n,
            buf: vec![0; n],
            len: 0,
        }
    }

    /// Owners (ring-local indexes, primary first) of position `hash`.
    fn at(&mut self, hash: u64) -> &[usize] {
        self.ring
            .owners_of_hash(hash, self.replicas, &mut self.buf, &mut self.len);
        &self.buf[..self.len]
    }
}

/// Whether two lists of distinct members hold the same members.
fn same_set(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// Compares the placement of `old` (with `old_replicas` copies per key) with that of `new`
/// (with `new_replicas`). Replica counts are clamped to each ring's node count, as lookups do.
pub fn diff(old: &Ring, old_replicas: usize, new: &Ring, new_replicas: usize) -> RingDiff {
    let members = Members::of(old, new);
    let (a, b) = (Side::new(old, old_replicas), Side::new(new, new_replicas));
    if old.kind() == new.kind() {
        diff_arcs(a, b, &members)
    } else {
        diff_independent(a, b, &members)
    }
}

/// One ring of a diff and the replica count it is read with: they always go together.
#[derive(Clone, Copy)]
struct Side<'a> {
    ring: &'a Ring,
    replicas: usize,
}

impl<'a> Side<'a> {
    fn new(ring: &'a Ring, replicas: usize) -> Side<'a> {
        Side { ring, replicas }
    }
}

fn diff_arcs(old: Side, new: Side, members: &Members) -> RingDiff {
    let space = new.ring.space();
    let count = members.addrs.len();
    let (mut before, mut after) = (vec![0u128; count], vec![0u128; count]);
    let (mut p_before, mut p_after) = (vec![0u128; count], vec![0u128; count]);
    let (mut gained, mut lost) = (vec![0u128; count], vec![0u128; count]);
    let (mut moved, mut primary_moved) = (0u128, 0u128);
    let mut arcs: Vec<MovedArc> = Vec::new();

    let mut bounds: Vec<u64> = old
        .ring
        .points()
        .chain(new.ring.points())
        .map(|(p, _)| p)
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let (mut lo, mut ln) = (
        Lookup::new(old.ring, old.replicas),
        Lookup::new(new.ring, new.replicas),
    );
    let (mut o, mut n) = (Vec::new(), Vec::new());
    for (start, end, width) in arcs_between(&bounds, space) {
        let (old_local, new_local) = (lo.at(end), ln.at(end));
        o.clear();
        o.extend(old_local.iter().map(|&i| members.old[i]));
        n.clear();
        n.extend(new_local.iter().map(|&i| members.new[i]));
        for &u in &o {
            before[u] += width;
        }
        for &u in &n {
            after[u] += width;
        }
        if let Some(&u) = o.first() {
            p_before[u] += width;
        }
        if let Some(&u) = n.first() {
            p_after[u] += width;
        }
        if o.first() != n.first() {
            primary_moved += width;
        }
        if same_set(&o, &n) {
            continue;
        }
        moved += width;
        for &u in n.iter().filter(|u| !o.contains(u)) {
            gained[u] += width;
        }
        for &u in o.iter().filter(|u| !n.contains(u)) {
            lost[u] += width;
        }
        match arcs.last_mut() {
            Some(last) if last.end == start && last.old == old_local && last.new == new_local => {
                last.end = end;
            }
            _ => arcs.push(MovedArc {
                start,
                end,
                old: old_local.to_vec(),
                new: new_local.to_vec(),
            }),
        }
    }
    // The wrapping arc came first; join it to the last arc when they meet with the same owners.
    if arcs.len() > 1 {
        let (first, last) = (&arcs[0], &arcs[arcs.len() - 1]);
        if first.start == last.end && first.old == last.old && first.new == last.new {
            let start = last.start;
            arcs.pop();
            arcs[0].start = start;
        }
    }

    let share = |x: u128| x as f64 / space as f64;
    let nodes: Vec<NodeMove> = (0..count)
        .map(|u| NodeMove {
            name: members.names[u].clone(),
            addr: members.addrs[u].clone(),
            before: share(before[u]),
            after: share(after[u]),
            primary_before: share(p_before[u]),
            primary_after: share(p_after[u]),
            gained: share(gained[u]),
            lost: share(lost[u]),
        })
        .collect();
    RingDiff {
        same_hash: true,
        space,
        moved: share(moved),
        primary_moved: share(primary_moved),
        copies_moved: share(gained.iter().sum()),
        nodes,
        arcs,
    }
}

/// One ring's exact ownership: per member, the positions it holds a copy of and is primary
/// of, and the positions held by each owner set.
struct Profile {
    owner: Vec<u128>,
    primary: Vec<u128>,
    sets: BTreeMap<Vec<usize>, u128>,
    space: u128,
}

impl Profile {
    fn of(ring: &Ring, replicas: usize, ids: &[usize], count: usize) -> Profile {
        let space = ring.space();
        let mut p = Profile {
            owner: vec![0; count],
            primary: vec![0; count],
            sets: BTreeMap::new(),
            space,
        };
        let mut bounds: Vec<u64> = ring.points().map(|(pos, _)| pos).collect();
        bounds.dedup();
        if bounds.is_empty() {
            // An empty ring: every key has the empty owner set (and no primary).
            p.sets.insert(Vec::new(), space);
        }
        let mut look = Lookup::new(ring, replicas);
        for (_, end, width) in arcs_between(&bounds, space) {
            let mut set: Vec<usize> = look.at(end).iter().map(|&i| ids[i]).collect();
            if let Some(&u) = set.first() {
                p.primary[u] += width;
            }
            for &u in &set {
                p.owner[u] += width;
            }
            set.sort_unstable();
            *p.sets.entry(set).or_insert(0) += width;
        }
        p
    }

    fn share(&self, x: u128) -> f64 {
        x as f64 / self.space as f64
    }
}

fn diff_independent(old: Side, new: Side, members: &Members) -> RingDiff {
    let count = members.addrs.len();
    let a = Profile::of(old.ring, old.replicas, &members.old, count);
    let b = Profile::of(new.ring, new.replicas, &members.new, count);
    let same_sets: f64 = a
        .sets
        .iter()
        .filter_map(|(s, &w)| b.sets.get(s).map(|&v| a.share(w) * b.share(v)))
        .sum();
    // Two empty rings agree that no key has a primary.
    let none = |r: &Ring| if r.is_empty() { 1.0 } else { 0.0 };
    let same_primary: f64 = none(old.ring) * none(new.ring)
        + (0..count)
            .map(|u| a.share(a.primary[u]) * b.share(b.primary[u]))
            .sum::<f64>();
    let nodes: Vec<NodeMove> = (0..count)
        .map(|u| {
            let (qa, qb) = (a.share(a.owner[u]), b.share(b.owner[u]));
            NodeMove {
                name: members.names[u].clone(),
                addr: members.addrs[u].clone(),
                before: qa,
                after: qb,
                primary_before: a.share(a.primary[u]),
                primary_after: b.share(b.primary[u]),
                gained: qb * (1.0 - qa),
                lost: qa * (1.0 - qb),
            }
        })
        .collect();
    RingDiff {
        same_hash: false,
        space: new.ring.space(),
        moved: 1.0 - same_sets,
        primary_moved: 1.0 - same_primary,
        copies_moved: nodes.iter().map(|n| n.gained).sum(),
        nodes,
        arcs: Vec::new(),
    }
}

/// Each node's exact share of the keyspace (0..=1), by node index: the share of keys it holds
/// a copy of with `replicas` copies per key (with 1, the share it is primary of).
pub fn shares(ring: &Ring, replicas: usize) -> Vec<f64> {
    let count = ring.nodes().len();
    let ids: Vec<usize> = (0..count).collect();
    let p = Profile::of(ring, replicas, &ids, count);
    p.owner.iter().map(|&x| p.share(x)).collect()
}

/// What losing one zone would cost: per zone of `ring` (in order of first appearance in the
/// configuration), the exact share of keys with every copy in that zone, with `replicas` copies
/// per key. Empty when the members have no zones. With as many zones as copies the zone walk
/// makes every share 0; `ringcache ring locate|diff` print it so an operator sees it is.
pub fn zone_outage(ring: &Ring, replicas: usize) -> Vec<(String, f64)> {
    let mut zones: Vec<(String, u128)> = Vec::new();
    let mut of = Vec::with_capacity(ring.nodes().len());
    for n in ring.nodes() {
        let Some(z) = n.zone.as_deref() else {
            return Vec::new();
        };
        let id = zones.iter().position(|(m, _)| m == z).unwrap_or_else(|| {
            zones.push((z.to_string(), 0));
            zones.len() - 1
        });
        of.push(id);
    }
    let space = ring.space();
    let mut bounds: Vec<u64> = ring.points().map(|(pos, _)| pos).collect();
    bounds.dedup();
    let mut look = Lookup::new(ring, replicas);
    for (_, end, width) in arcs_between(&bounds, space) {
        let owners = look.at(end);
        if let Some(&first) = owners.first() {
            if owners.iter().all(|&o| of[o] == of[first]) {
                zones[of[first]].1 += width;
            }
        }
    }
    zones
        .into_iter()
        .map(|(z, w)| (z, w as f64 / space as f64))
        .collect()
}
