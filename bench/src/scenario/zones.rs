//! The zone rows (issue 25): the same 6 `ringcache node`s behind two proxies with replicas 2,
//! one placing keys without zones, one with the nodes in 3 zones (2 each) and itself in the
//! first, so it reads the copy in its zone first. The loads go through each proxy in turn;
//! the ratio says what the zone walk and the read order cost per request.

use std::path::Path;

use super::procs::{self, Proc};
use crate::error::Result;

/// The zones of the 6 nodes, two each; the proxy with zones runs in the first.
const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// The zone rows' targets, started; every process is killed when this is dropped.
pub struct ZoneCluster {
    _nodes: Vec<Proc>,
    flat: Proc,
    zoned: Proc,
}

impl ZoneCluster {
    /// Starts 6 nodes (each told its zone, as a deployment would) and the two proxies.
    pub fn start(rc: &Path, dir: &Path) -> Result<ZoneCluster> {
        let nodes = (0..6)
            .map(|i| {
                let zone = ZONES[i / 2];
                let name = format!("zone-node{i}");
                procs::ringcache_node_with(rc, &name, 1024, &["--zone", zone], dir)
            })
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = nodes.iter().map(|p| p.addr.to_string()).collect();
        let (flat, _) = procs::ringcache_proxy(rc, "proxy-flat", &addrs, 2, "", dir)?;
        let zoned_nodes: Vec<(String, String)> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), ZONES[i / 2].to_string()))
            .collect();
        let home = format!("zone = \"{}\"\n", ZONES[0]);
        let (zoned, _) =
            procs::ringcache_proxy_zoned(rc, "proxy-zones", &zoned_nodes, 2, &home, dir)?;
        Ok(ZoneCluster {
            _nodes: nodes,
            flat,
            zoned,
        })
    }

    /// `(target, pids)` in [`super::matrix::Kind::ZONES`] order: CPU is charged to the proxy.
    pub fn targets(&self) -> Vec<(String, String)> {
        [&self.flat, &self.zoned]
            .iter()
            .map(|p| (p.addr.to_string(), p.pid().to_string()))
            .collect()
    }
}
