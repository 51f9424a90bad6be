//! `ringcache-bench scenario`: starts the peers and ringcache on loopback, runs the standard
//! matrix in compare mode, measures memory per item and a rebalance, and writes
//! `bench/RESULTS.md` with SVG plots in `bench/results/`.
//!
//! - [`procs`]: the server processes (killed on drop, and with the bench), configs, `/proc`.
//! - [`matrix`]: the loads, per-target medians and the target ratios.
//! - [`memory`]: memory per item (RSS growth per item held).
//! - [`idle`]: memory per idle client connection (RSS growth per connection held).
//! - [`rebalance`]: hit ratio per second while a 4th server joins.
//! - [`tls`]: the TLS rows' servers (memcached `-Z`, node and proxy over TLS).
//! - [`plot`] and [`markdown`]: the SVGs and RESULTS.md.
//!
//! Every measurement goes through the same code as a command-line run ([`crate::compare::run`]
//! with an [`Args`] built from flags), so the scenario's figures are the tool's figures.

pub mod hit_ratio;
pub mod idle;
pub mod markdown;
pub mod matrix;
pub mod memory;
pub mod plot;
pub mod procs;
pub mod rebalance;
pub mod tls;
pub mod zones;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use serde::Serialize;

use crate::args::Args;
use crate::compare;
use crate::error::{BenchError, Result};
use crate::report::BenchReport;
use markdown::{Meta, Results, TlsSection};
use matrix::{Kind, Load, Row};
use procs::{Proc, TempDir};

/// Seconds as a decimal number.
fn secs(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !v.is_finite() || v <= 0.0 || v > 3600.0 {
        return Err(format!("{s:?}: seconds must be in (0, 3600]"));
    }
    Ok(v)
}

/// The parts of a scenario, to skip (`--skip`) or run alone (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    Matrix,
    Memory,
    HitRatio,
    Rebalance,
    /// memcached `-Z`, node and proxy over TLS, at the loads of `matrix::tls_loads`.
    Tls,
    /// A proxy over 6 nodes with zones against the same without, at `matrix::zone_loads`.
    Zones,
    /// RSS per idle client connection at 1 000, 10 000 and 50 000 connections.
    Idle,
}

/// Start memcached, nutcracker and ringcache on loopback, run the standard comparison and write
/// RESULTS.md with SVG plots.
///
/// Default run: 2.5 s measured + 0.5 s warm-up per target, 3 alternating rounds, 10 loads,
/// the 4 TLS loads over 3 TLS targets, memory at 1 M items of 10, 100 and 1000 bytes, the Zipf
/// hit ratio over 1 M keys, 15 s rebalance per system — about 14 minutes on 2 cores.
/// `--only tls` runs the TLS rows alone (about 2 minutes at 3 rounds), `--only zones` the zone
/// rows (a proxy over 6 nodes with and without zones, about 1.5 minutes).
#[derive(Debug, Clone, Parser, Serialize)]
#[command(name = "ringcache-bench scenario", version)]
pub struct ScenarioArgs {
    /// Smoke run of about a minute: 0.5 s measurements, 1 round, 100 000 items for memory,
    /// 6 s rebalance. The figures are noisy; RESULTS.md says so.
    #[arg(long)]
    pub quick: bool,
    /// Measured seconds per target and round [default: 2.5; quick 0.5].
    #[arg(long, value_parser = secs)]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measurement [default: 0.5; quick 0.2].
    #[arg(long, value_parser = secs)]
    pub warmup: Option<f64>,
    /// Alternating rounds per load [default: 3; quick 1].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Key space of the matrix [default: 100000; quick 20000].
    #[arg(long)]
    pub keys: Option<u64>,
    /// Items for memory per item [default: 1000000; quick 100000].
    #[arg(long)]
    pub memory_items: Option<u64>,
    /// Seconds of reading in the rebalance scenario [default: 15; quick 6].
    #[arg(long, value_parser = secs)]
    pub rebalance_secs: Option<f64>,
    /// Only the loads whose name contains one of these (e.g. "c100 p1 100B"); all by default.
    #[arg(long = "load", value_name = "NAME")]
    pub loads: Vec<String>,
    /// Parts to leave out (repeatable).
    #[arg(long, value_enum)]
    pub skip: Vec<Part>,
    /// Run only these parts (repeatable). `--only tls` alone measures the TLS rows and
    /// replaces the TLS section of an existing RESULTS.md, keeping the rest of the file (raw
    /// figures in results/scenario-tls.json).
    #[arg(long, value_enum)]
    pub only: Vec<Part>,
    /// Directory for RESULTS.md; plots go to DIR/results/ [default: the bench crate's directory].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The ringcache binary [default: target/release/ringcache, built when missing].
    #[arg(long, value_name = "PATH")]
    pub ringcache: Option<PathBuf>,
    /// Rebuild target/release/ringcache first even if it exists.
    #[arg(long)]
    pub rebuild: bool,
    /// Build ringcache from this git revision instead of the working tree: a clean `git
    /// archive` export under target/, built with its own target directory. Use it when the
    /// working tree holds unfinished edits.
    #[arg(long, value_name = "REV", conflicts_with = "ringcache")]
    pub ringcache_rev: Option<String>,
    /// memcached binary (Debian: apt-get install memcached).
    #[arg(long, default_value = "/usr/bin/memcached")]
    pub memcached: String,
    /// nutcracker binary (Debian: apt-get install nutcracker).
    #[arg(long, default_value = "/usr/sbin/nutcracker")]
    pub nutcracker: String,
    /// Install memcached and nutcracker with apt-get when they are missing.
    #[arg(long)]
    pub install: bool,
    /// Tokio worker threads of the bench [default: one per CPU].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// The knobs after `--quick` and the defaults are applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub duration: f64,
    pub warmup: f64,
    pub rounds: usize,
    pub keys: u64,
    pub memory_items: u64,
    /// Key space and look-ups of the Zipf hit-ratio part.
    pub hit_keys: u64,
    pub hit_requests: u64,
    pub rebalance_secs: f64,
    pub loads: Vec<Load>,
    /// The TLS rows' loads.
    pub tls_loads: Vec<Load>,
    /// The zone rows' loads.
    pub zone_loads: Vec<Load>,
}

impl ScenarioArgs {
    pub fn plan(&self) -> Plan {
        let q = self.quick;
        let pick = |all: Vec<Load>| -> Vec<Load> {
            all.into_iter()
                .filter(|l| self.loads.is_empty() || self.loads.iter().any(|n| l.name.contains(n)))
                .collect()
        };
        Plan {
            duration: self.duration.unwrap_or(if q { 0.5 } else { 2.5 }),
            warmup: self.warmup.unwrap_or(if q { 0.2 } else { 0.5 }),
            rounds: self.rounds.unwrap_or(if q { 1 } else { 3 }).max(1),
            keys: self.keys.unwrap_or(if q { 20_000 } else { 100_000 }),
            memory_items: self
                .memory_items
                .unwrap_or(if q { 100_000 } else { 1_000_000 }),
            hit_keys: if q { 200_000 } else { 1_000_000 },
            hit_requests: if q { 400_000 } else { 4_000_000 },
            rebalance_secs: self.rebalance_secs.unwrap_or(if q { 6.0 } else { 15.0 }),
            loads: pick(matrix::standard()),
            tls_loads: pick(matrix::tls_loads()),
            zone_loads: pick(matrix::zone_loads()),
        }
    }

    fn skips(&self, p: Part) -> bool {
        self.skip.contains(&p) || (!self.only.is_empty() && !self.only.contains(&p))
    }

    /// Only the TLS rows run: their section is spliced into the existing RESULTS.md.
    fn tls_alone(&self) -> bool {
        !self.only.is_empty() && self.only.iter().all(|&p| p == Part::Tls)
    }

    /// Only the zone rows run: their section is spliced into the existing RESULTS.md.
    fn zones_alone(&self) -> bool {
        !self.only.is_empty() && self.only.iter().all(|&p| p == Part::Zones)
    }

    /// Only the idle connections run: their section is spliced into the existing RESULTS.md.
    fn idle_alone(&self) -> bool {
        !self.only.is_empty() && self.only.iter().all(|&p| p == Part::Idle)
    }
}

/// The workspace root (the bench crate's parent directory).
pub fn workspace_root() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

fn io_err(msg: String) -> BenchError {
    BenchError::Io(std::io::Error::other(msg))
}

/// memcached and nutcracker, installed with apt-get when asked to and missing.
fn peers(a: &ScenarioArgs) -> Result<(PathBuf, PathBuf)> {
    let find = || {
        (
            procs::find_binary(&a.memcached, "memcached"),
            procs::find_binary(&a.nutcracker, "nutcracker"),
        )
    };
    let mut found = find();
    if (found.0.is_none() || found.1.is_none()) && a.install {
        eprintln!("scenario: installing memcached and nutcracker with apt-get");
        for args in [
            vec!["update", "-qq"],
            vec!["install", "-y", "-qq", "memcached", "nutcracker"],
        ] {
            let st = Command::new("apt-get")
                .args(&args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .status()?;
            if !st.success() {
                return Err(io_err(format!("apt-get {} failed: {st}", args.join(" "))));
            }
        }
        found = find();
    }
    match found {
        (Some(m), Some(n)) => Ok((m, n)),
        (m, n) => Err(io_err(format!(
            "missing {}{}: install Debian's packages with `apt-get install memcached nutcracker` \
             (memcached 1.6 → /usr/bin/memcached, twemproxy 0.5 → /usr/sbin/nutcracker), or run \
             the scenario with --install, or point --memcached/--nutcracker at them",
            if m.is_none() { "memcached " } else { "" },
            if n.is_none() { "nutcracker" } else { "" }
        ))),
    }
}

/// The ringcache binary: `--ringcache`, or target/release/ringcache (built when missing or
/// with `--rebuild`).
fn ringcache_bin(a: &ScenarioArgs) -> Result<PathBuf> {
    if let Some(rev) = &a.ringcache_rev {
        return build_rev(rev);
    }
    if let Some(p) = &a.ringcache {
        return if p.is_file() {
            Ok(p.clone())
        } else {
            Err(io_err(format!("--ringcache {}: no such file", p.display())))
        };
    }
    let root = workspace_root();
    let bin = root.join("target/release/ringcache");
    if a.rebuild || !bin.is_file() {
        eprintln!("scenario: cargo build --release -p ringcache --bin ringcache");
        let st = cargo_build_ringcache(&root, None)?;
        if !st.success() || !bin.is_file() {
            return Err(io_err(format!("building {} failed: {st}", bin.display())));
        }
    }
    Ok(bin)
}

/// The full commit id `rev` names.
fn resolve_rev(rev: &str) -> Result<String> {
    let o = Command::new("git")
        .args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .current_dir(workspace_root())
        .output()?;
    let sha = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() || sha.is_empty() {
        return Err(io_err(format!("--ringcache-rev {rev}: not a commit")));
    }
    Ok(sha)
}

/// Exports `rev` with `git archive` to target/rcbench-src-SHA and builds its release binary
/// there (target directory target/rcbench-export, kept between runs so rebuilds are quick).
fn build_rev(rev: &str) -> Result<PathBuf> {
    let root = workspace_root();
    let sha = resolve_rev(rev)?;
    let src = root.join(format!("target/rcbench-src-{}", &sha[..12]));
    if !src.join("Cargo.toml").is_file() {
        std::fs::create_dir_all(&src)?;
        let tar = src.join("export.tar");
        let st = Command::new("git")
            .args(["archive", "--format=tar", "-o"])
            .arg(&tar)
            .arg(&sha)
            .current_dir(&root)
            .status()?;
        let st2 = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .current_dir(&src)
            .status()?;
        let _ = std::fs::remove_file(&tar);
        if !st.success() || !st2.success() {
            let _ = std::fs::remove_dir_all(&src);
            return Err(io_err(format!("exporting {sha} failed")));
        }
    }
    let target = root.join("target/rcbench-export");
    eprintln!(
        "scenario: building ringcache {} in {}",
        &sha[..12],
        src.display()
    );
    let st = cargo_build_ringcache(&src, Some(&target))?;
    let bin = target.join("release/ringcache");
    if !st.success() || !bin.is_file() {
        return Err(io_err(format!("building {sha} failed: {st}")));
    }
    Ok(bin)
}

/// First line a binary prints for `flag` (stdout or stderr).
fn version_of(bin: &Path, flag: &str) -> String {
    Command::new(bin)
        .arg(flag)
        .output()
        .ok()
        .and_then(|o| {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.lines().next().map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn machine_meta(a: &ScenarioArgs, plan: &Plan, bins: [&Path; 3]) -> Meta {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".into(), |(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb / 1_048_576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("?".into(), |s| s.trim().to_string());
    let root = workspace_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(&root)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let commit = match (&a.ringcache_rev, &a.ringcache) {
        (Some(rev), _) => format!(
            "`{}` (built by `--ringcache-rev {rev}` from a clean export of that commit)",
            git(&["rev-parse", "--short", &format!("{rev}^{{commit}}")])
        ),
        (None, Some(p)) => format!("unknown (binary given: {})", p.display()),
        (None, None) => {
            let mut c = format!("`{}`", git(&["rev-parse", "--short", "HEAD"]));
            if !git(&["status", "--porcelain", "--", "src", "client"]).is_empty() {
                c.push_str(" plus uncommitted changes in src/ or client/ (working tree)");
            }
            c
        }
    };
    let argv: Vec<String> = std::env::args().skip_while(|x| x != "scenario").collect();
    let command = format!(
        "cargo run --release -p ringcache-bench -- {}",
        if argv.is_empty() {
            "scenario".to_string()
        } else {
            argv.join(" ")
        }
    );
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Meta {
        date: markdown::utc_date(secs),
        nproc: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        cpu_model,
        mem_total,
        kernel,
        command,
        commit,
        versions: vec![
            ("memcached".into(), version_of(bins[0], "-V")),
            ("nutcracker".into(), version_of(bins[1], "-V")),
            (
                format!("ringcache binary ({})", bins[2].display()),
                version_of(bins[2], "--version"),
            ),
        ],
        settings: format!(
            "{} s measured after {} s warm-up per target, {} alternating round(s), {} keys, \
             bench threads {}",
            plan.duration,
            plan.warmup,
            plan.rounds,
            plan.keys,
            a.threads.map_or("= CPUs".to_string(), |t| t.to_string())
        ),
        quick: a.quick,
    }
}

/// The binaries every part starts its servers from (memcached, nutcracker, ringcache) and the
/// directory their files go to.
#[derive(Clone, Copy)]
struct Bins<'a> {
    mc: &'a Path,
    nc: &'a Path,
    rc: &'a Path,
    dir: &'a Path,
}

/// The servers of the matrix.
struct Cluster {
    memcached: Proc,
    node: Proc,
    _mc3: Vec<Proc>,
    nutcracker: Proc,
    nodes3: Vec<Proc>,
    proxy: Proc,
}

impl Cluster {
    fn start(mc: &Path, nc: &Path, rc: &Path, dir: &Path) -> Result<Cluster> {
        let memcached = procs::memcached(mc, "memcached", 2048, dir)?;
        let node = procs::ringcache_node(rc, "node", 2048, dir)?;
        let mc3 = (1..=3)
            .map(|i| procs::memcached(mc, &format!("nc-memcached{i}"), 1024, dir))
            .collect::<Result<Vec<_>>>()?;
        let servers: Vec<String> = mc3.iter().map(|p| p.addr.to_string()).collect();
        let nutcracker = procs::nutcracker(
            nc,
            "nutcracker",
            &testkit::free_addr().to_string(),
            &servers,
            dir,
        )?;
        let nodes3 = (1..=3)
            .map(|i| procs::ringcache_node(rc, &format!("proxy-node{i}"), 1024, dir))
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = nodes3.iter().map(|p| p.addr.to_string()).collect();
        let (proxy, _conf) = procs::ringcache_proxy(rc, "proxy", &addrs, 1, "", dir)?;
        Ok(Cluster {
            memcached,
            node,
            _mc3: mc3,
            nutcracker,
            nodes3,
            proxy,
        })
    }

    /// `(target, pids)` per kind, in [`Kind::ALL`] order.
    fn targets(&self) -> Vec<(String, String)> {
        let node_pids: Vec<String> = self.nodes3.iter().map(|p| p.pid().to_string()).collect();
        let node_addrs: Vec<String> = self.nodes3.iter().map(|p| p.addr.to_string()).collect();
        let one = |p: &Proc| (p.addr.to_string(), p.pid().to_string());
        vec![
            one(&self.memcached),
            one(&self.node),
            one(&self.nutcracker),
            one(&self.proxy),
            (
                format!(
                    "{}{}",
                    crate::driver::embedded::PREFIX,
                    node_addrs.join(",")
                ),
                node_pids.join(","),
            ),
        ]
    }
}

/// The bench's [`Args`] for one load of the matrix.
pub fn load_args(
    load: &Load,
    plan: &Plan,
    targets: &[(String, String)],
    prefill: bool,
    threads: Option<usize>,
    tls_ca: Option<&Path>,
) -> Result<Args> {
    let mut argv: Vec<String> = vec!["ringcache-bench".into(), "--quiet".into()];
    for (t, pids) in targets {
        argv.extend(["--target".into(), t.clone(), "--pids".into(), pids.clone()]);
    }
    let n = |v: &dyn ToString| v.to_string();
    for (flag, value) in [
        ("--connections", n(&load.connections)),
        ("--pipeline", n(&load.pipeline)),
        ("--value-size", n(&load.value_size)),
        ("--multiget", n(&load.multiget)),
        ("--ratio", "1:10".into()),
        ("--keys", n(&plan.keys)),
        ("--duration", n(&plan.duration)),
        ("--warmup", n(&plan.warmup)),
        ("--rounds", n(&plan.rounds)),
        ("--timeout", "5".into()),
    ] {
        argv.extend([flag.into(), value]);
    }
    if prefill {
        argv.push("--prefill".into());
    }
    if let Some(t) = threads {
        argv.extend(["--threads".into(), n(&t)]);
    }
    if let Some(ca) = tls_ca {
        argv.extend(["--tls-ca".into(), ca.to_string_lossy().into_owned()]);
    }
    let args = Args::try_parse_from(argv).map_err(|e| BenchError::InvalidArg(e.to_string()))?;
    args.validate()?;
    Ok(args)
}

/// Raw material kept in `results/scenario.json`.
#[derive(Debug, Serialize)]
struct Raw<'a> {
    args: &'a ScenarioArgs,
    plan: &'a Plan,
    results: &'a Results,
    reports: &'a [(String, BenchReport)],
}

/// Which rows of the matrix a run measures, each on a cluster of its own.
#[derive(Clone, Copy)]
enum Rows {
    /// Every target on plain TCP.
    Plain,
    /// memcached `-Z`, the node and the proxy over TLS, the driver trusting the run's CA.
    Tls,
    /// A proxy over 6 nodes without zones, and one over the same nodes in 3 zones.
    Zones,
}

/// Starts the cluster of `rows`, runs its loads over it and stops it; the reports are kept
/// under their target's name, prefixed with the section ("tls ", "zones ").
async fn run_rows(
    a: &ScenarioArgs,
    plan: &Plan,
    bins: &Bins<'_>,
    rows: Rows,
    reports: &mut Vec<(String, BenchReport)>,
) -> Result<Vec<Row>> {
    let mut mine = Vec::new();
    let (label, out) = match rows {
        Rows::Plain => {
            let cluster = Cluster::start(bins.mc, bins.nc, bins.rc, bins.dir)?;
            let (loads, targets) = (&plan.loads, cluster.targets());
            let out = run_loads(a, plan, loads, &Kind::ALL, &targets, None, &mut mine).await;
            ("", out)
        }
        Rows::Tls => {
            eprintln!("scenario: TLS rows (memcached -Z, node and proxy over TLS)");
            let cluster = tls::TlsCluster::start(bins.mc, bins.rc, bins.dir)?;
            let (loads, targets, ca) = (&plan.tls_loads, cluster.targets(), Some(cluster.ca()));
            let out = run_loads(a, plan, loads, &Kind::TLS, &targets, ca, &mut mine).await;
            ("tls ", out)
        }
        Rows::Zones => {
            eprintln!("scenario: zone rows (proxy over 6 nodes, without and with zones)");
            let cluster = zones::ZoneCluster::start(bins.rc, bins.dir)?;
            let (loads, targets) = (&plan.zone_loads, cluster.targets());
            let out = run_loads(a, plan, loads, &Kind::ZONES, &targets, None, &mut mine).await;
            ("zones ", out)
        }
    };
    reports.extend(mine.into_iter().map(|(n, r)| (format!("{label}{n}"), r)));
    out
}

/// Runs `loads` in compare mode over `targets` (one per kind of `kinds`, in that order),
/// prefilling whenever the value size changes.
async fn run_loads(
    a: &ScenarioArgs,
    plan: &Plan,
    loads: &[Load],
    kinds: &[Kind],
    targets: &[(String, String)],
    tls_ca: Option<&Path>,
    reports: &mut Vec<(String, BenchReport)>,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut filled_size = None;
    for (i, load) in loads.iter().enumerate() {
        let prefill = filled_size != Some(load.value_size);
        filled_size = Some(load.value_size);
        eprintln!(
            "scenario: load {}/{} \"{}\": {} targets × {} round(s){}",
            i + 1,
            loads.len(),
            load.name,
            targets.len(),
            plan.rounds,
            if prefill { ", prefill first" } else { "" }
        );
        let args = load_args(load, plan, targets, prefill, a.threads, tls_ca)?;
        let report = compare::run(&args).await?;
        for r in &report.runs {
            if let Some(e) = &r.first_error {
                eprintln!("  {} round {}: {e}", r.target, r.round);
            }
        }
        let figures = matrix::figures(&report, kinds);
        for f in &figures {
            eprintln!(
                "  {:<10} {:>10.0} ops/s  {:>10} ops/cpu-s  p50 {:>6.0}us  p99 {:>6.0}us  errors {}",
                f.kind.label(),
                f.ops_per_sec,
                f.ops_per_cpu_sec.map_or("-".into(), |v| format!("{v:.0}")),
                f.p50_us,
                f.p99_us,
                f.errors
            );
        }
        rows.push(Row {
            load: load.clone(),
            figures,
        });
        reports.push((load.name.clone(), report));
    }
    Ok(rows)
}

async fn run_memory(plan: &Plan, bins: &Bins<'_>) -> Result<Vec<memory::MemFigures>> {
    let Bins { mc, rc, dir, .. } = *bins;
    // Room for a million 1000-byte items in either server: nothing is evicted.
    const LIMIT_MIB: u64 = 2048;
    let mut out = Vec::new();
    for size in memory::VALUE_SIZES {
        {
            let p = procs::memcached(mc, memory::MEMCACHED, LIMIT_MIB, dir)?;
            eprintln!(
                "scenario: memory, memcached, {} items of {size} B",
                plan.memory_items
            );
            out.push(memory::measure(&p, plan.memory_items, size).await?);
        }
        {
            let p = procs::ringcache_node(rc, memory::NODE, LIMIT_MIB, dir)?;
            eprintln!(
                "scenario: memory, ringcache node, {} items of {size} B",
                plan.memory_items
            );
            out.push(memory::measure(&p, plan.memory_items, size).await?);
        }
    }
    for m in &out {
        eprintln!(
            "  {:<14} {:>4} B values: {} items, RSS/item {:.1} B, stats bytes/item {:.1} B",
            m.server,
            m.value_size,
            m.items,
            m.rss_per_item().unwrap_or(f64::NAN),
            m.stats_bytes_per_item().unwrap_or(f64::NAN)
        );
    }
    Ok(out)
}

/// RSS per idle connection: at each of [`idle::COUNTS`], a fresh node, proxy (in front of one
/// node), memcached and nutcracker (in front of one memcached), each told to take that many.
async fn run_idle(bins: &Bins<'_>) -> Result<Vec<idle::IdleFigures>> {
    let Bins { mc, nc, rc, dir } = *bins;
    let cap = idle::raise_own_limit();
    let mut out = Vec::new();
    for asked in idle::COUNTS {
        let n = asked.min(cap);
        let c = (n + idle::LIMIT_SPARE).to_string();
        for server in idle::SERVERS {
            eprintln!("scenario: idle connections, {server}, {n} of {asked}");
            let f = match server {
                "node" => {
                    let p = procs::ringcache_node_with(rc, "node", 64, &["-c", &c], dir)?;
                    idle::measure(&p, asked, cap).await?
                }
                "proxy" => {
                    let b = procs::ringcache_node(rc, "proxy-backend", 64, dir)?;
                    let extra = format!("max_connections = {c}");
                    let (p, _) =
                        procs::ringcache_proxy(rc, "proxy", &[b.addr.to_string()], 1, &extra, dir)?;
                    idle::measure(&p, asked, cap).await?
                }
                "memcached" => {
                    let p = procs::memcached_with(mc, "memcached", 64, &["-c", &c], dir)?;
                    idle::measure(&p, asked, cap).await?
                }
                _ => {
                    let b = procs::memcached(mc, "nutcracker-backend", 64, dir)?;
                    let listen = testkit::free_addr().to_string();
                    let p =
                        procs::nutcracker(nc, "nutcracker", &listen, &[b.addr.to_string()], dir)?;
                    idle::measure(&p, asked, cap).await?
                }
            };
            eprintln!(
                "  {:<10} {:>6} connections: RSS {} -> {} B, {:.0} B per connection",
                f.server,
                f.opened,
                f.rss_before,
                f.rss_after,
                f.per_connection().unwrap_or(f64::NAN)
            );
            out.push(f);
        }
    }
    Ok(out)
}

/// The Zipf hit-ratio part: memcached and the node, each fresh, with a quarter of the working
/// set as their memory limit, the same keys drawn for both.
async fn run_hit_ratio(plan: &Plan, bins: &Bins<'_>) -> Result<Vec<hit_ratio::HitFigures>> {
    let Bins { mc, rc, dir, .. } = *bins;
    let limit = hit_ratio::quarter_limit_mib(plan.hit_keys);
    let mut out = Vec::new();
    {
        let p = procs::memcached(mc, "memcached-zipf", limit, dir)?;
        eprintln!("scenario: hit ratio, memcached, {limit} MiB");
        out.push(hit_ratio::measure(&p, plan.hit_keys, limit, plan.hit_requests).await?);
    }
    {
        let p = procs::ringcache_node(rc, "node-zipf", limit, dir)?;
        eprintln!("scenario: hit ratio, ringcache node, {limit} MiB");
        out.push(hit_ratio::measure(&p, plan.hit_keys, limit, plan.hit_requests).await?);
    }
    for h in &out {
        eprintln!(
            "  {:<14} hit ratio {:.4} ({} of {}), {} items at the end",
            h.server,
            h.ratio().unwrap_or(f64::NAN),
            h.hits,
            h.asked,
            h.items_at_end.unwrap_or(0)
        );
    }
    Ok(out)
}

/// Adds what the added server saw (`stats`) to a rebalance series.
fn with_new_server(mut s: rebalance::Series, new: &Proc) -> rebalance::Series {
    match procs::stats(&new.addr.to_string()) {
        Ok(st) => {
            s.new_server_gets = st.get("cmd_get").copied();
            s.new_server_items = st.get("curr_items").copied();
        }
        Err(e) => eprintln!("rebalance {}: stats of the added server: {e}", s.system),
    }
    s
}

async fn run_rebalance(plan: &Plan, bins: &Bins<'_>) -> Result<Vec<rebalance::Series>> {
    let Bins { mc, nc, rc, dir } = *bins;
    let total = Duration::from_secs_f64(plan.rebalance_secs);
    let change_at = total.mul_f64(1.0 / 3.0);
    let w = rebalance::workload(20_000)?;
    let mut out = Vec::new();
    {
        eprintln!("scenario: rebalance, ringcache proxy + 3 → 4 nodes");
        let nodes = (1..=4)
            .map(|i| procs::ringcache_node(rc, &format!("rb-node{i}"), 256, dir))
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = nodes.iter().map(|p| p.addr.to_string()).collect();
        let (proxy, conf) = procs::ringcache_proxy(rc, "rb-proxy", &addrs[..3], 1, "", dir)?;
        let text = procs::proxy_toml(&proxy.addr.to_string(), "", &addrs, 1);
        let s = rebalance::run(
            "ringcache proxy",
            "4th node appended to the proxy's config file (hot reload)",
            &proxy.addr.to_string(),
            &w,
            total,
            change_at,
            || procs::write_atomically(&conf, &text),
        )
        .await?;
        out.push(with_new_server(s, &nodes[3]));
    }
    {
        eprintln!("scenario: rebalance, nutcracker + 3 → 4 memcached");
        let mcs = (1..=4)
            .map(|i| procs::memcached(mc, &format!("rb-memcached{i}"), 256, dir))
            .collect::<Result<Vec<_>>>()?;
        let addrs: Vec<String> = mcs.iter().map(|p| p.addr.to_string()).collect();
        let listen = testkit::free_addr().to_string();
        let mut nut = Some(procs::nutcracker(
            nc,
            "rb-nutcracker3",
            &listen,
            &addrs[..3],
            dir,
        )?);
        let s = rebalance::run(
            "nutcracker",
            "restarted with a 4-server config (twemproxy cannot reload)",
            &listen,
            &w,
            total,
            change_at,
            || {
                if let Some(mut old) = nut.take() {
                    old.kill9();
                }
                nut = Some(procs::nutcracker(
                    nc,
                    "rb-nutcracker4",
                    &listen,
                    &addrs,
                    dir,
                )?);
                Ok(())
            },
        )
        .await?;
        out.push(with_new_server(s, &mcs[3]));
        drop(nut);
    }
    for s in &out {
        eprintln!(
            "  {:<16} before {:.1}%, lowest after {:.1}%, last 3 s {:.1}%",
            s.system,
            s.before().unwrap_or(f64::NAN) * 100.0,
            s.lowest_after().unwrap_or(f64::NAN) * 100.0,
            s.last(3).unwrap_or(f64::NAN) * 100.0
        );
    }
    Ok(out)
}

async fn run_all(a: &ScenarioArgs) -> Result<Results> {
    let plan = a.plan();
    if a.tls_alone() && plan.tls_loads.is_empty() {
        // Nothing would be measured, and RESULTS.md must not be rewritten without it.
        return Err(BenchError::InvalidArg(
            "--only tls: no TLS load matches --load".into(),
        ));
    }
    if a.zones_alone() && plan.zone_loads.is_empty() {
        return Err(BenchError::InvalidArg(
            "--only zones: no zone load matches --load".into(),
        ));
    }
    let (mc, nc) = peers(a)?;
    let rc = ringcache_bin(a)?;
    let dir = TempDir::new()?;
    let meta = machine_meta(a, &plan, [&mc, &nc, &rc]);
    let bins = Bins {
        mc: &mc,
        nc: &nc,
        rc: &rc,
        dir: dir.path(),
    };
    let out_dir = a
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench"));
    let plots = out_dir.join("results");
    std::fs::create_dir_all(&plots)?;

    let mut results = Results {
        meta,
        memory_items: plan.memory_items,
        ..Results::default()
    };
    let mut reports = Vec::new();
    if a.skips(Part::Matrix) || plan.loads.is_empty() {
        results
            .skipped
            .push("the throughput matrix (--skip matrix, or no load matched --load)".into());
    } else {
        results.rows = run_rows(a, &plan, &bins, Rows::Plain, &mut reports).await?;
    }
    if a.skips(Part::Tls) || plan.tls_loads.is_empty() {
        results
            .skipped
            .push("the TLS rows (--skip tls, or no load matched --load)".into());
    } else {
        let rows = run_rows(a, &plan, &bins, Rows::Tls, &mut reports).await?;
        results.tls = Some(TlsSection {
            meta: results.meta.clone(),
            checks: matrix::tls_checks(&rows),
            rows,
        });
    }
    if a.skips(Part::Zones) || plan.zone_loads.is_empty() {
        results
            .skipped
            .push("the zone rows (--skip zones, or no load matched --load)".into());
    } else {
        let rows = run_rows(a, &plan, &bins, Rows::Zones, &mut reports).await?;
        results.zones = Some(TlsSection {
            meta: results.meta.clone(),
            checks: matrix::zone_checks(&rows),
            rows,
        });
    }
    if a.skips(Part::Memory) {
        results
            .skipped
            .push("memory per item (--skip memory)".into());
    } else {
        results.memory = run_memory(&plan, &bins).await?;
    }
    if a.skips(Part::Idle) {
        results
            .skipped
            .push("idle connections (--skip idle)".into());
    } else {
        results.idle = run_idle(&bins).await?;
    }
    if a.skips(Part::Rebalance) {
        results.skipped.push("rebalance (--skip rebalance)".into());
    } else {
        results.rebalance = run_rebalance(&plan, &bins).await?;
    }
    if a.skips(Part::HitRatio) {
        results.skipped.push("hit ratio (--skip hit-ratio)".into());
    } else {
        results.hit_ratio = run_hit_ratio(&plan, &bins).await?;
    }
    let hits = match (
        results.hit_ratio.iter().find(|h| h.server == "node-zipf"),
        results
            .hit_ratio
            .iter()
            .find(|h| h.server == "memcached-zipf"),
    ) {
        (Some(n), Some(m)) => n.ratio().zip(m.ratio()),
        _ => None,
    };
    results.checks = matrix::checks(&results.rows, &memory::pairs(&results.memory), hits);

    if !results.rows.is_empty() {
        plot::throughput(&plots.join("throughput.svg"), &results.rows)?;
        plot::efficiency(&plots.join("cpu.svg"), &results.rows)?;
        plot::latency(&plots.join("latency.svg"), &results.rows)?;
    }
    if !results.rebalance.is_empty() {
        plot::rebalance(&plots.join("rebalance.svg"), &results.rebalance)?;
    }
    let md = out_dir.join("RESULTS.md");
    let (text, json) = match (&results.tls, &results.zones) {
        _ if a.idle_alone() => {
            // Likewise the idle-connection section.
            let old = std::fs::read_to_string(&md).unwrap_or_default();
            let section = markdown::render_idle(&results.meta, &results.idle);
            let (b, e) = (markdown::IDLE_BEGIN, markdown::IDLE_END);
            (
                markdown::splice_between(&old, &section, b, e),
                "scenario-idle.json",
            )
        }
        (Some(t), _) if a.tls_alone() => {
            // Only the TLS section is new: the rest of the file is kept as it was.
            let old = std::fs::read_to_string(&md).unwrap_or_default();
            let section = markdown::render_tls(t);
            (markdown::splice(&old, &section), "scenario-tls.json")
        }
        (_, Some(z)) if a.zones_alone() => {
            // Likewise the zone section.
            let old = std::fs::read_to_string(&md).unwrap_or_default();
            let section = markdown::render_zones(z);
            let (b, e) = (markdown::ZONES_BEGIN, markdown::ZONES_END);
            (
                markdown::splice_between(&old, &section, b, e),
                "scenario-zones.json",
            )
        }
        _ => (markdown::render(&results), "scenario.json"),
    };
    std::fs::write(&md, text)?;
    let raw = Raw {
        args: a,
        plan: &plan,
        results: &results,
        reports: &reports,
    };
    std::fs::write(plots.join(json), serde_json::to_string_pretty(&raw)? + "\n")?;
    eprintln!("scenario: wrote {}", md.display());
    Ok(results)
}

/// Runs the whole scenario on a fresh runtime; Ctrl-C stops it and every started process is
/// killed on the way out.
pub fn run_blocking(a: &ScenarioArgs) -> Result<Results> {
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()?;
    // Processes are spawned from this (the main) thread, inside block_on, so their
    // parent-death signal is tied to a thread that lives as long as the bench.
    rt.block_on(async {
        tokio::select! {
            r = run_all(a) => r,
            _ = tokio::signal::ctrl_c() => Err(io_err("interrupted".into())),
        }
    })
}

/// `cargo build --release -p ringcache --bin ringcache` in `dir`, into `target_dir` if given.
fn cargo_build_ringcache(
    dir: &Path,
    target_dir: Option<&Path>,
) -> std::io::Result<std::process::ExitStatus> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "-p",
        "ringcache",
        "--bin",
        "ringcache",
    ])
    .current_dir(dir);
    if let Some(t) = target_dir {
        cmd.env("CARGO_TARGET_DIR", t);
    }
    cmd.status()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_and_default_plans() {
        let a = ScenarioArgs::try_parse_from(["scenario"]).expect("parse");
        let p = a.plan();
        assert_eq!((p.duration, p.rounds, p.memory_items), (2.5, 3, 1_000_000));
        assert_eq!(p.loads.len(), 10);
        // Budget: every target once per round per load, plus warm-up; ≤ 8 minutes of load.
        let load_secs = p.loads.len() as f64 * 5.0 * p.rounds as f64 * (p.duration + p.warmup);
        assert!(load_secs <= 480.0, "{load_secs}");
        let q = ScenarioArgs::try_parse_from(["scenario", "--quick", "--load", "c1 p16"])
            .expect("parse");
        let p = q.plan();
        assert_eq!((p.duration, p.rounds, p.keys), (0.5, 1, 20_000));
        let names: Vec<&str> = p.loads.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["c1 p16 100B", "c1 p16 4KiB", "mget10 c1 p16 100B"]
        );
    }

    #[test]
    fn load_args_build_a_valid_compare_run() {
        let a = ScenarioArgs::try_parse_from(["scenario", "--quick"]).expect("parse");
        let plan = a.plan();
        let targets = vec![
            ("127.0.0.1:1".to_string(), "10".to_string()),
            (
                "embedded:127.0.0.1:2,127.0.0.1:3".to_string(),
                "11,12".to_string(),
            ),
        ];
        let args = load_args(&plan.loads[8], &plan, &targets, true, Some(2), None).expect("args");
        assert_eq!(args.targets.len(), 2);
        assert_eq!(args.pids_for(1), vec![11, 12]);
        assert_eq!(args.multiget, 10);
        assert_eq!(args.connections, 100);
        assert!(args.prefill && args.quiet);
        assert_eq!(args.rounds, 1);
        assert_eq!(args.tls_ca, None);
        let tls = load_args(
            &plan.tls_loads[0],
            &plan,
            &targets[..1],
            false,
            None,
            Some(Path::new("/tmp/ca.pem")),
        )
        .expect("args");
        assert_eq!(
            tls.driver_options().tls_ca,
            Some(PathBuf::from("/tmp/ca.pem"))
        );
        assert_eq!((tls.connections, tls.pipeline), (100, 1));
    }

    #[test]
    fn only_tls_runs_the_tls_rows_alone() {
        let a = ScenarioArgs::try_parse_from(["scenario", "--only", "tls"]).expect("parse");
        assert!(a.tls_alone());
        for p in [Part::Matrix, Part::Memory, Part::HitRatio, Part::Rebalance] {
            assert!(a.skips(p), "{p:?}");
        }
        assert!(!a.skips(Part::Tls));
        let names: Vec<String> = a.plan().tls_loads.into_iter().map(|l| l.name).collect();
        assert_eq!(
            names,
            [
                "c100 p1 100B",
                "c1 p16 100B",
                "mget10 c100 p1 100B",
                "mget10 c1 p16 100B"
            ]
        );
        let all = ScenarioArgs::try_parse_from(["scenario", "--skip", "tls"]).expect("parse");
        assert!(!all.tls_alone() && all.skips(Part::Tls) && !all.skips(Part::Matrix));
        let both = ScenarioArgs::try_parse_from(["scenario", "--only", "tls", "--only", "matrix"])
            .expect("parse");
        assert!(
            !both.tls_alone(),
            "with the matrix, RESULTS.md is written whole"
        );
    }
}
