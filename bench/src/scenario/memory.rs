//! Memory per item: fill a fresh server with N items of one value size (16-byte keys; each of
//! [`VALUE_SIZES`] in turn) and divide the
//! growth of its resident set (`VmRSS` of `/proc/PID/status`, sampled before the first set and
//! after the last) by the items it then holds (`curr_items` of its `stats`). The server's own
//! `stats bytes` per item is reported next to it: it counts what each server considers item
//! memory, which the two servers define differently, so the RSS figure is the one compared.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::procs::{self, Proc};
use crate::driver::{self, DriverOptions};
use crate::error::Result;
use crate::workload::{Workload, WorkloadSpec};

/// The value sizes of the memory table (issue 11: 10-, 100- and 1000-byte values).
pub const VALUE_SIZES: [usize; 3] = [10, 100, 1000];

/// What filling one server cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemFigures {
    pub server: String,
    /// Bytes of every value.
    pub value_size: usize,
    /// Sets acknowledged by the server.
    pub sets: u64,
    /// `curr_items` after the fill (what is divided by).
    pub items: u64,
    pub evictions: Option<u64>,
    pub rss_before: u64,
    pub rss_after: u64,
    /// `stats bytes` after the fill.
    pub stats_bytes: Option<u64>,
}

impl MemFigures {
    /// RSS growth per item held, in bytes.
    pub fn rss_per_item(&self) -> Option<f64> {
        per_item(self.rss_before, self.rss_after, self.items)
    }

    /// `stats bytes` per item held.
    pub fn stats_bytes_per_item(&self) -> Option<f64> {
        self.stats_bytes.and_then(|b| per_item(0, b, self.items))
    }
}

/// `(after - before) / items` in bytes (negative if the process shrank); `None` for no items.
pub fn per_item(before: u64, after: u64, items: u64) -> Option<f64> {
    (items > 0).then(|| (after as f64 - before as f64) / items as f64)
}

/// Fills `server` with `items` items of `value_size` bytes and measures it.
pub async fn measure(server: &Proc, items: u64, value_size: usize) -> Result<MemFigures> {
    let w = Arc::new(Workload::new(WorkloadSpec {
        keys: items,
        key_prefix: "m".into(),
        value_size: crate::workload::ValueSize {
            min: value_size,
            max: value_size,
        },
        ..WorkloadSpec::default()
    })?);
    // Let the freshly started server settle before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_before = procs::vm_rss(server.pid())?;
    let opts = DriverOptions {
        connections: 8,
        pipeline: 64,
        ..DriverOptions::default()
    };
    let r = driver::prefill(&server.addr.to_string(), &w, &opts).await?;
    if let Some(e) = &r.first_error {
        eprintln!("memory fill of {}: {e}", server.name);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_after = procs::vm_rss(server.pid())?;
    let st = procs::stats(&server.addr.to_string())?;
    Ok(MemFigures {
        server: server.name.clone(),
        value_size,
        sets: r.counts.sets - r.counts.errors,
        items: st.get("curr_items").copied().unwrap_or(r.counts.sets),
        evictions: st.get("evictions").copied(),
        rss_before,
        rss_after,
        stats_bytes: st.get("bytes").copied(),
    })
}

/// Node and memcached RSS per item at each value size both were measured at:
/// `(value size, node, memcached, fewer of the items each held)`.
pub fn pairs(figs: &[MemFigures]) -> Vec<(usize, f64, f64, u64)> {
    VALUE_SIZES
        .iter()
        .filter_map(|&size| {
            let of = |name: &str| {
                figs.iter()
                    .find(|m| m.server == name && m.value_size == size)
            };
            let (n, m) = (of(NODE)?, of(MEMCACHED)?);
            Some((
                size,
                n.rss_per_item()?,
                m.rss_per_item()?,
                n.items.min(m.items),
            ))
        })
        .collect()
}

/// The process names the memory part gives its servers.
pub const NODE: &str = "node-mem";
pub const MEMCACHED: &str = "memcached-mem";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_item_maths() {
        assert_eq!(per_item(1000, 1000 + 150_000_000, 1_000_000), Some(150.0));
        assert_eq!(per_item(2000, 1000, 10), Some(-100.0));
        assert_eq!(per_item(0, 1000, 0), None);
        let m = MemFigures {
            server: "x".into(),
            value_size: 100,
            sets: 10,
            items: 8,
            evictions: Some(2),
            rss_before: 100,
            rss_after: 900,
            stats_bytes: Some(400),
        };
        assert_eq!(m.rss_per_item(), Some(100.0));
        assert_eq!(m.stats_bytes_per_item(), Some(50.0));
    }
}
