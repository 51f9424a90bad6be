//! `ringcache ring locate` and `ringcache ring diff`: placement questions answered from config
//! files, without touching a node.

use std::fmt::Write as _;
use std::path::Path;

use ringcache_client::cluster_config::ClusterConfig;
use ringcache_client::ring;

use crate::error::Error;

/// `KEY<TAB>owner1,owner2…` per key, owners by ring name, primary first.
pub fn locate(config: &Path, keys: &[String]) -> Result<String, Error> {
    let cfg = ClusterConfig::load(config)?;
    let ring = cfg.ring()?;
    let mut out = String::new();
    for key in keys {
        let owners: Vec<&str> = ring
            .replicas(key.as_bytes(), cfg.ring.replicas)
            .into_iter()
            .map(|i| ring.nodes()[i].ring_name())
            .collect();
        let _ = writeln!(out, "{key}\t{}", owners.join(","));
    }
    Ok(out)
}

/// The share of the keyspace that changes owners between two configs, per node and in total.
pub fn diff(old: &Path, new: &Path) -> Result<String, Error> {
    let (a, b) = (ClusterConfig::load(old)?, ClusterConfig::load(new)?);
    let replicas = b.ring.replicas;
    let d = ring::diff(&a.ring()?, &b.ring()?, replicas);
    let mut out = String::new();
    let _ = writeln!(out, "{:<24} {:>9} {:>9}", "node", "gains", "loses");
    for (name, gain, loss) in &d.per_node {
        let _ = writeln!(
            out,
            "{name:<24} {:>8.2}% {:>8.2}%",
            gain * 100.0,
            loss * 100.0
        );
    }
    let _ = writeln!(
        out,
        "total: {:.2}% of keys change owners ({} replicas), {:.2}% change primary, {} arcs",
        d.moved * 100.0,
        replicas,
        d.primary_moved * 100.0,
        d.arcs.len()
    );
    Ok(out)
}
