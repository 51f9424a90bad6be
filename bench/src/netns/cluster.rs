//! The cluster a namespace harness (`netns-faults`, `netns-counters`) runs and checks: its
//! nodes and proxies started in their hosts, the wait for them to come up, one fault of the
//! script, and the ring and direct connections the final check reads every owner with.

use std::path::Path;
use std::time::Duration;

use ringcache_client::cluster_config::RingSettings;
use ringcache_client::ring::{NodeSpec, Ring};

use super::hosts::{wait_up, Net, NsProc};
use super::load::Phase;
use crate::error::{BenchError, Result};
use crate::harness::{fail, Wire};

/// Waits (bounded, 15 s each) until every one of `addrs` accepts, from the calling thread's
/// namespace: the harnesses' check that their cluster came up before the load starts.
pub fn wait_all_up(addrs: impl IntoIterator<Item = impl AsRef<str>>) -> Result<()> {
    for addr in addrs {
        let addr = addr.as_ref();
        if !wait_up(addr, Duration::from_secs(15)) {
            return Err(fail(format!("{addr} did not come up in its namespace")));
        }
    }
    Ok(())
}

/// Starts `ringcache node --listen ADDR --memory-limit 64` on host `i` of `net` for each
/// `addrs[i]`, named `node<i>`, logging into `dir`.
pub fn start_nodes(net: &Net, bin: &Path, addrs: &[String], dir: &Path) -> Result<Vec<NsProc>> {
    let mut nodes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let args: Vec<String> = ["node", "--listen", addr, "--memory-limit", "64"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        nodes.push(NsProc::start(
            &format!("node{i}"),
            &net.hosts[i],
            bin,
            &args,
            dir,
        )?);
    }
    Ok(nodes)
}

/// Writes `dir/NAME.toml` (a proxy on `listen` over `nodes`, replicas 2, no TLS) and starts
/// `ringcache proxy --config` with it in namespace `ns`.
pub fn start_proxy(
    name: &str,
    ns: &str,
    bin: &Path,
    listen: &str,
    nodes: &[String],
    dir: &Path,
) -> Result<NsProc> {
    let conf = dir.join(format!("{name}.toml"));
    std::fs::write(
        &conf,
        crate::scenario::procs::proxy_toml(listen, "", nodes, 2),
    )?;
    NsProc::start(
        name,
        ns,
        bin,
        &[
            "proxy".into(),
            "--config".into(),
            conf.display().to_string(),
        ],
        dir,
    )
}

/// The ring the harnesses' proxies build over `nodes` (replicas 2, as [`start_proxy`] writes
/// it), for reading a key on each of its owners directly.
pub fn owner_ring(nodes: &[String]) -> Result<Ring> {
    let specs: Vec<NodeSpec> = nodes.iter().map(NodeSpec::new).collect();
    RingSettings {
        replicas: 2,
        ..RingSettings::default()
    }
    .build(&specs)
    .map_err(|e| fail(e.to_string()))
}

/// One plain connection to each node, in `nodes`' order (the ring's node indices), from the
/// calling thread's namespace.
pub fn direct_wires(nodes: &[String]) -> Result<Vec<Wire>> {
    nodes
        .iter()
        .map(|a| Wire::connect(a).map_err(BenchError::from))
        .collect()
}

/// A fault a harness's script puts on its cluster, and undoes after a while.
#[derive(Clone, Copy)]
pub enum Fault {
    /// Node `i`'s link down (every router loses it at once), then up.
    LinkDown(usize),
    /// Node `i` SIGSTOPped (hangs with its sockets open), then SIGCONT.
    Stop(usize),
    /// Node `i` SIGKILLed, then started again, empty.
    Kill(usize),
}

/// One step of a fault script: the fault, the phase names during and after it, and how many
/// seconds the cluster settles after it is undone.
pub type Step<'a> = (Fault, &'a str, &'a str, u64);

/// Runs `steps` in order: for each, names the phase, starts the fault, holds it for `hold`,
/// undoes it, names the phase after it and lets the cluster settle.
pub fn run_faults(
    phase: &Phase,
    net: &Net,
    nodes: &mut [NsProc],
    hold: Duration,
    steps: &[Step],
) -> Result<()> {
    for &(fault, name, after, settle) in steps {
        phase.set(name);
        match fault {
            Fault::LinkDown(i) => net.link(i, false)?,
            Fault::Stop(i) => nodes[i].signal(libc::SIGSTOP),
            Fault::Kill(i) => nodes[i].kill9(),
        }
        std::thread::sleep(hold);
        match fault {
            Fault::LinkDown(i) => net.link(i, true)?,
            Fault::Stop(i) => nodes[i].signal(libc::SIGCONT),
            Fault::Kill(i) => nodes[i].spawn()?,
        }
        phase.set(after);
        std::thread::sleep(Duration::from_secs(settle));
    }
    Ok(())
}
