//! What moves when membership changes: the arcs of the hash space whose owner set differs
//! between two rings, and the share of the keyspace each node gains and loses.
//!
//! Exact arc arithmetic over the hash space, not key sampling: between two consecutive points of
//! either ring, every key has the same owners in both, so each such arc is compared once.

use super::Ring;

/// One arc of the hash space, `(start, end]`, whose owners change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedArc {
    /// Exclusive start (the previous boundary); the arc wraps when `start >= end`.
    pub start: u64,
    /// Inclusive end.
    pub end: u64,
    /// Owner names before and after, primary first.
    pub old: Vec<String>,
    pub new: Vec<String>,
}

/// The difference between two rings.
#[derive(Debug, Clone, Default)]
pub struct RingDiff {
    /// Share of the keyspace whose owner set changes (0..=1).
    pub moved: f64,
    /// Share whose primary changes.
    pub primary_moved: f64,
    /// Per node name: (share it gains, share it loses), over owner sets.
    pub per_node: Vec<(String, f64, f64)>,
    pub arcs: Vec<MovedArc>,
}

/// Compares the placement of `old` and `new` with `replicas` owners per key.
pub fn diff(old: &Ring, new: &Ring, replicas: usize) -> RingDiff {
    let space = new.space().max(old.space()) as f64;
    let mut bounds: Vec<u64> = old
        .points()
        .iter()
        .chain(new.points())
        .map(|&(p, _)| p)
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut out = RingDiff::default();
    if bounds.is_empty() {
        return out;
    }
    let names = |r: &Ring, h: u64| -> Vec<String> {
        let mut buf = vec![0usize; replicas.max(1)];
        let mut len = 0;
        r.owners_of_hash(h, replicas.max(1), &mut buf, &mut len);
        buf[..len]
            .iter()
            .map(|&i| r.nodes()[i].ring_name().to_string())
            .collect()
    };
    let mut per: Vec<(String, f64, f64)> = Vec::new();
    let mut bump =
        |name: &str, gain: f64, loss: f64| match per.iter_mut().find(|(n, _, _)| n == name) {
            Some(e) => {
                e.1 += gain;
                e.2 += loss;
            }
            None => per.push((name.to_string(), gain, loss)),
        };
    for (j, &end) in bounds.iter().enumerate() {
        let start = if j == 0 {
            bounds[bounds.len() - 1]
        } else {
            bounds[j - 1]
        };
        // Length of (start, end]; the first arc wraps through the top of the space.
        let len = if j == 0 {
            (new.space().max(old.space()) - u128::from(start) + u128::from(end)) as f64
        } else {
            (end - start) as f64
        };
        let share = if bounds.len() == 1 { 1.0 } else { len / space };
        let (o, n) = (names(old, end), names(new, end));
        if o.first() != n.first() {
            out.primary_moved += share;
        }
        if o != n {
            out.moved += share;
            for x in n.iter().filter(|x| !o.contains(x)) {
                bump(x, share, 0.0);
            }
            for x in o.iter().filter(|x| !n.contains(x)) {
                bump(x, 0.0, share);
            }
            out.arcs.push(MovedArc {
                start,
                end,
                old: o,
                new: n,
            });
        }
    }
    per.sort_by(|a, b| a.0.cmp(&b.0));
    out.per_node = per;
    out
}
