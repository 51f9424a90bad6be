//! `bench/RESULTS.md`: what ran where, the tables, the targets with met / not met, and links to
//! the SVG plots written beside it.

use std::fmt::Write as _;

use serde::Serialize;

use super::hit_ratio::HitFigures;
use super::idle::{self, IdleFigures};
use super::matrix::{Check, Kind, Row};
use super::memory::MemFigures;
use super::rebalance::Series;

/// Where and how the results were produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Meta {
    pub date: String,
    pub nproc: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    pub command: String,
    pub commit: String,
    pub versions: Vec<(String, String)>,
    /// Durations, rounds, key space … as one line.
    pub settings: String,
    pub quick: bool,
}

/// Everything RESULTS.md shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Results {
    pub meta: Meta,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
    pub memory: Vec<MemFigures>,
    pub memory_items: u64,
    pub hit_ratio: Vec<HitFigures>,
    pub rebalance: Vec<Series>,
    /// The TLS rows, when they ran.
    pub tls: Option<TlsSection>,
    /// The zone rows, when they ran.
    pub zones: Option<TlsSection>,
    /// Memory per idle connection, when it ran.
    pub idle: Vec<IdleFigures>,
    /// Parts that did not run, with why.
    pub skipped: Vec<String>,
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn utc_date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn num(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let s = format!("{:.0}", v);
    // Thousands separators for readability.
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn opt_num(v: Option<f64>) -> String {
    v.map_or("–".into(), num)
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("–".into(), |r| format!("{r:.2}×"))
}

fn verdict(c: &Check) -> &'static str {
    match c.met() {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "no figure",
    }
}

/// What each target is, for the setup tables.
fn what(k: Kind) -> &'static str {
    match k {
        Kind::Memcached => "Debian memcached, 4 threads (its default)",
        Kind::Node => "`ringcache node`, 4 threads (its default)",
        Kind::Nutcracker => {
            "nutcracker (twemproxy), ketama + md5, 2 connections per server, in front of 3 memcached"
        }
        Kind::Proxy => {
            "`ringcache proxy --config`, replicas 1, 2 connections per node, in front of 3 `ringcache node`"
        }
        Kind::Embedded => {
            "`ringcache_client::Client` inside the bench (`embedded:` target), replicas 1, over the proxy's 3 nodes"
        }
        Kind::MemcachedTls => {
            "Debian memcached, 4 threads, `-Z -o ssl_chain_cert=…,ssl_key=…` (OpenSSL, its defaults)"
        }
        Kind::NodeTls => "`ringcache node --ssl-chain-cert … --ssl-key …`, 4 threads (rustls, ring)",
        Kind::ProxyTls => {
            "`ringcache proxy` with `ssl_chain_cert` (TLS to clients) and `[backend] tls` to 3 TLS `ringcache node`, replicas 1"
        }
        Kind::ProxyFlat => {
            "`ringcache proxy`, replicas 2, in front of 6 `ringcache node` without zones"
        }
        Kind::ProxyZones => {
            "the same 6 nodes in 3 zones (`[[nodes]] zone`), the proxy in the first (`zone`): copies in distinct zones, reads from its zone first"
        }
    }
}

/// The setup table: what each target is and whose CPU time its ops/cpu-s divides by.
fn targets_table(s: &mut String, kinds: &[Kind]) {
    let _ = writeln!(
        s,
        "| target | what | ops/cpu-s divides by the CPU time of |"
    );
    let _ = writeln!(s, "| --- | --- | --- |");
    for &k in kinds {
        let _ = writeln!(s, "| {} | {} | {} |", k.label(), what(k), k.cpu_charged());
    }
}

/// The goals with their measured ratios and verdicts, and how many were met.
fn checks_table(s: &mut String, checks: &[Check]) {
    let _ = writeln!(s, "| target | load | measured | goal | verdict |");
    let _ = writeln!(s, "| --- | --- | ---: | --- | --- |");
    for c in checks {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            c.what,
            c.load,
            ratio(c.ratio),
            c.goal.text(),
            verdict(c)
        );
    }
    let met = checks.iter().filter(|c| c.met() == Some(true)).count();
    let _ = writeln!(s, "\n{met} of {} targets met.", checks.len());
}

/// The throughput and latency table of `rows`, then the connection faults seen.
fn rows_table(s: &mut String, rows: &[Row]) {
    let _ = writeln!(
        s,
        "| load | target | ops/s | ops/cpu-s | p50 µs | p99 µs | p99.9 µs | hit % | errors |"
    );
    let _ = writeln!(
        s,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for row in rows {
        for f in &row.figures {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.load.name,
                f.kind.label(),
                num(f.ops_per_sec),
                opt_num(f.ops_per_cpu_sec),
                num(f.p50_us),
                num(f.p99_us),
                num(f.p999_us),
                f.hit_ratio
                    .map_or("–".into(), |h| format!("{:.1}", h * 100.0)),
                f.errors
            );
        }
    }
    let faults: Vec<String> = rows
        .iter()
        .flat_map(|row| {
            row.figures.iter().flat_map(move |f| {
                f.faults
                    .iter()
                    .map(move |e| format!("- {} on {}: {e}", f.kind.label(), row.load.name))
            })
        })
        .collect();
    if !faults.is_empty() {
        let _ = writeln!(
            s,
            "\nConnection faults (first per round; ops lost to them count as errors when they \
             fell in the measured window, not when they fell in the warm-up):\n"
        );
        for f in faults {
            let _ = writeln!(s, "{f}");
        }
    }
}

/// Where the TLS section starts and ends in RESULTS.md: `scenario --only tls` replaces what
/// lies between (markers included) and leaves the rest of the file as it was.
pub const TLS_BEGIN: &str =
    "<!-- TLS rows: begin (regenerated alone by `ringcache-bench scenario --only tls`) -->";
pub const TLS_END: &str = "<!-- TLS rows: end -->";

/// The TLS rows, which can be measured on their own (`--only tls`) and spliced into an
/// existing RESULTS.md, so they carry their own date, commit and settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TlsSection {
    pub meta: Meta,
    pub rows: Vec<Row>,
    pub checks: Vec<Check>,
}

/// The TLS section, between its markers.
pub fn render_tls(t: &TlsSection) -> String {
    render_section(
        t,
        (TLS_BEGIN, TLS_END),
        "## TLS (issue 23, item 8)",
        "Every target serves TLS only, with one certificate for 127.0.0.1 signed by a CA made for \
         the run (rcgen); the bench's TLS driver (rustls, `--tls-ca`) trusts that CA and opens \
         every connection, handshake included, before the warm-up, so the figures are of \
         steady-state records, not handshakes. Loads and rounds are those of the plain matrix \
         (1:10 set:get, prefilled, targets alternating):\n",
        &Kind::TLS,
        "The proxy's TLS rows have no peer (twemproxy has no TLS): they are figures, not \
         goals. Why a goal is unmet: [ANALYSIS.md](ANALYSIS.md), \"TLS\".\n",
    )
}

/// A section measured on its own (TLS, zones), between its markers `begin` and `end`:
/// `heading`, the quick-run warning, when and how it was measured, `intro`, the targets of
/// `kinds`, the checks followed by `after_checks` (a note, or nothing), and the rows.
fn render_section(
    t: &TlsSection,
    (begin, end): (&str, &str),
    heading: &str,
    intro: &str,
    kinds: &[Kind],
    after_checks: &str,
) -> String {
    let m = &t.meta;
    let mut s = String::new();
    let _ = writeln!(s, "{begin}\n");
    let _ = writeln!(s, "{heading}\n");
    quick_warning(&mut s, m);
    let _ = writeln!(
        s,
        "Measured {} with ringcache commit {}; {}. To reproduce:\n\n```\n{}\n```\n",
        m.date, m.commit, m.settings, m.command
    );
    let _ = writeln!(s, "{intro}");
    targets_table(&mut s, kinds);
    let _ = writeln!(s);
    if !t.checks.is_empty() {
        checks_table(&mut s, &t.checks);
        let _ = writeln!(s, "{after_checks}");
    }
    if !t.rows.is_empty() {
        rows_table(&mut s, &t.rows);
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "{end}\n");
    s
}

/// The warning a quick (smoke) run's figures carry.
fn quick_warning(s: &mut String, m: &Meta) {
    if m.quick {
        let _ = writeln!(
            s,
            "> **Quick (smoke) run**: short measurements and one round; the figures are noisy \
             and not the reference.\n"
        );
    }
}

/// Where the zone section starts and ends in RESULTS.md (`scenario --only zones`).
pub const ZONES_BEGIN: &str =
    "<!-- Zone rows: begin (regenerated alone by `ringcache-bench scenario --only zones`) -->";
pub const ZONES_END: &str = "<!-- Zone rows: end -->";

/// The zone section (issue 25), between its markers: the same 6 nodes behind a proxy without
/// zones and one with zones; same shape as the TLS section.
pub fn render_zones(t: &TlsSection) -> String {
    render_section(
        t,
        (ZONES_BEGIN, ZONES_END),
        "## Zones (issue 25)",
        "Two proxies over the same 6 nodes, replicas 2, targets alternating; loads and rounds \
         as in the plain matrix (1:10 set:get, prefilled). With zones every key's two copies \
         sit in two of the three zones and the proxy reads the copy in its own zone first, so \
         about a third of its reads still cross zones (no copy in its zone); on loopback a \
         zone costs nothing, so the ratio measures the zone walk and the read order alone:\n",
        &Kind::ZONES,
        "",
    )
}

/// `existing` (a RESULTS.md) with its TLS section replaced by `section`; a file without one
/// gets it before its closing "Raw figures" line, or at the end.
pub fn splice(existing: &str, section: &str) -> String {
    splice_between(existing, section, TLS_BEGIN, TLS_END)
}

/// [`splice`] for the section between the markers `begin` and `end`.
pub fn splice_between(existing: &str, section: &str, begin: &str, end: &str) -> String {
    if let (Some(b), Some(e)) = (existing.find(begin), existing.find(end)) {
        if b < e {
            // The section ends with the marker and a blank line, as render_tls writes it.
            let rest = &existing[e + end.len()..];
            let rest = rest
                .strip_prefix("\n\n")
                .or_else(|| rest.strip_prefix('\n'))
                .unwrap_or(rest);
            return format!("{}{section}{rest}", &existing[..b]);
        }
    }
    match existing.rfind("Raw figures") {
        Some(i) if existing[..i].ends_with('\n') || i == 0 => {
            format!("{}{section}{}", &existing[..i], &existing[i..])
        }
        _ if existing.trim().is_empty() => section.to_string(),
        _ => format!("{}\n\n{section}", existing.trim_end()),
    }
}

/// Where the idle-connection section starts and ends in RESULTS.md (`scenario --only idle`
/// replaces it alone).
pub const IDLE_BEGIN: &str =
    "<!-- Idle connections: begin (regenerated alone by `ringcache-bench scenario --only idle`) -->";
pub const IDLE_END: &str = "<!-- Idle connections: end -->";

/// RSS per idle connection, one row per count, one column per server, between its markers.
pub fn render_idle(m: &Meta, figs: &[IdleFigures]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{IDLE_BEGIN}\n");
    let _ = writeln!(s, "## Memory per idle connection (issue 24)\n");
    let _ = writeln!(
        s,
        "Measured {} with ringcache commit {}. To reproduce:\n\n```\n{}\n```\n",
        m.date, m.commit, m.command
    );
    let _ = writeln!(
        s,
        "RSS growth of a fresh server per client connection that sent `version` once and then \
         stayed idle (`VmRSS` before the first and 0.5 s after the last; connections from \
         127.0.0.x, 20 000 per source address). The proxy stands in front of one node, \
         nutcracker in front of one memcached. Bytes per connection; a count the open-file \
         limit capped says how many were held.\n"
    );
    let _ = writeln!(
        s,
        "| connections | {} |\n|---|{}",
        idle::SERVERS.join(" | "),
        "---:|".repeat(idle::SERVERS.len())
    );
    for asked in idle::COUNTS {
        let mut row = format!("| {asked} |");
        for server in idle::SERVERS {
            let cell = figs
                .iter()
                .find(|f| f.asked == asked && f.server == server)
                .map_or("—".to_string(), |f| {
                    let per = f
                        .per_connection()
                        .map_or("?".into(), |v| format!("{v:.0} B"));
                    if f.opened < f.asked {
                        format!("{per} (at {})", f.opened)
                    } else {
                        per
                    }
                });
            row.push_str(&format!(" {cell} |"));
        }
        let _ = writeln!(s, "{row}");
    }
    let _ = writeln!(s, "\n{IDLE_END}\n");
    s
}

/// The whole file.
pub fn render(r: &Results) -> String {
    let m = &r.meta;
    let mut s = String::new();
    let _ = writeln!(s, "# ringcache benchmark results\n");
    let _ = writeln!(
        s,
        "Generated by `ringcache-bench scenario`; do not edit by hand, regenerate instead. \
         Why each unmet target is unmet, and what was tried: [ANALYSIS.md](ANALYSIS.md).\n"
    );
    quick_warning(&mut s, m);
    let _ = writeln!(s, "- **Date**: {}", m.date);
    let _ = writeln!(
        s,
        "- **Machine**: {} CPUs ({}), {} RAM, Linux {}; shared with other work, which is why \
         targets alternate (A B A B …) and medians are compared",
        m.nproc, m.cpu_model, m.mem_total, m.kernel
    );
    let _ = writeln!(s, "- **ringcache**: commit {}", m.commit);
    for (name, v) in &m.versions {
        let _ = writeln!(s, "- **{name}**: {v}");
    }
    let _ = writeln!(s, "- **Settings**: {}", m.settings);
    let _ = writeln!(s, "\nTo reproduce (from the workspace root):\n");
    let _ = writeln!(s, "```\n{}\n```\n", m.command);

    let _ = writeln!(s, "## Setup\n");
    let _ = writeln!(
        s,
        "All servers listen on 127.0.0.1 ports picked at start and are killed when the run ends. \
         Every load is 1:10 set:get over a uniform key space with 16-byte keys, prefilled so gets \
         hit; each load runs every target once per round in this order, with the same seed:\n"
    );
    targets_table(&mut s, &Kind::ALL);
    let _ = writeln!(
        s,
        "\nLoad names: `cC pP SIZE` = C connections (for `embedded`: C tasks sharing one client), \
         P requests in flight per connection, SIZE-byte values; `mget10` = every get asks for 10 keys.\n"
    );

    if !r.checks.is_empty() {
        let _ = writeln!(s, "## Targets (issues 10 and 11)\n");
        checks_table(&mut s, &r.checks);
        let _ = writeln!(
            s,
            "Ratios are of medians over the rounds; latency ratios \
             are \"lower is better\" (≤ 1 means ringcache is no slower; \"on par\" is taken as \
             within 10%).\n"
        );
    }

    if !r.rows.is_empty() {
        let _ = writeln!(s, "## Throughput and latency\n");
        let _ = writeln!(
            s,
            "Medians over the rounds. Latency in µs from send to reply (closed loop).\n"
        );
        rows_table(&mut s, &r.rows);
        let _ = writeln!(s, "\n![throughput](results/throughput.svg)\n");
        let _ = writeln!(s, "![ops per CPU-second](results/cpu.svg)\n");
        let _ = writeln!(s, "![latency percentiles](results/latency.svg)\n");
    }

    if !r.memory.is_empty() {
        let _ = writeln!(s, "## Memory per item\n");
        let _ = writeln!(
            s,
            "A fresh server (2 GiB limit: nothing is evicted) filled with {} items of one value \
             size and 16-byte keys, for each size. **RSS/item** = growth of `VmRSS` \
             (`/proc/PID/status`) from before the first set to after the last, divided by \
             `curr_items`; this is the compared figure. `stats bytes`/item is each server's own \
             accounting, which they define differently.\n",
            num(r.memory_items as f64)
        );
        let _ = writeln!(
            s,
            "| value | server | items held | evictions | RSS before | RSS after | RSS/item (B) | stats bytes/item |"
        );
        let _ = writeln!(
            s,
            "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for mf in &r.memory {
            let _ = writeln!(
                s,
                "| {} B | {} | {} | {} | {} MiB | {} MiB | {} | {} |",
                mf.value_size,
                mf.server,
                num(mf.items as f64),
                mf.evictions.map_or("–".into(), |e| e.to_string()),
                num(mf.rss_before as f64 / 1_048_576.0),
                num(mf.rss_after as f64 / 1_048_576.0),
                opt_num(mf.rss_per_item()),
                opt_num(mf.stats_bytes_per_item()),
            );
        }
        let _ = writeln!(s);
    }

    if !r.hit_ratio.is_empty() {
        let _ = writeln!(s, "## Hit ratio under a skewed load\n");
        let _ = writeln!(
            s,
            "A cache-aside client on one connection: 100-key multi-gets of keys drawn Zipf \
             ({}) from the key space, every miss then `set` (100-byte values), against a fresh \
             server whose memory limit holds about a quarter of the working set. The hit ratio \
             is of the second half of the look-ups (the first half warms the cache); both \
             servers see the same keys.\n",
            super::hit_ratio::ZIPF_S
        );
        let _ = writeln!(
            s,
            "| server | keys | limit | look-ups measured | hit ratio | evictions | items at the end |"
        );
        let _ = writeln!(s, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for h in &r.hit_ratio {
            let _ = writeln!(
                s,
                "| {} | {} | {} MiB | {} | {} | {} | {} |",
                h.server,
                num(h.keys as f64),
                h.limit_mib,
                num(h.asked as f64),
                h.ratio()
                    .map_or("–".into(), |v| format!("{:.2}%", v * 100.0)),
                h.evictions.map_or("–".into(), |e| e.to_string()),
                h.items_at_end.map_or("–".into(), |e| num(e as f64)),
            );
        }
        let _ = writeln!(s);
    }

    if !r.rebalance.is_empty() {
        let _ = writeln!(s, "## Rebalance: adding a 4th server to a loaded cluster\n");
        let _ = writeln!(
            s,
            "20 000 keys (100-byte values) are written through the proxy (ringcache proxy, or \
             nutcracker), then every key is read \
             back round and round (100-key `get`s on one connection) while the cluster grows \
             from 3 to 4 servers. Each point is the share of keys read in that second that came \
             back with the value written. The dashed line marks the change.\n"
        );
        let _ = writeln!(
            s,
            "| system | how the 4th server was added | hit ratio before | lowest after | last 3 s | 4th server: gets / items |"
        );
        let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: |");
        let pct = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.1}%", v * 100.0));
        for sr in &r.rebalance {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} / {} |",
                sr.system,
                sr.how,
                pct(sr.before()),
                pct(sr.lowest_after()),
                pct(sr.last(3)),
                sr.new_server_gets.map_or("–".into(), |v| num(v as f64)),
                sr.new_server_items.map_or("–".into(), |v| num(v as f64)),
            );
        }
        let _ = writeln!(s, "\n![rebalance](results/rebalance.svg)\n");
        let _ = writeln!(s, "Per second (hit %):\n");
        let secs = r
            .rebalance
            .iter()
            .map(|sr| sr.points.len())
            .max()
            .unwrap_or(0);
        let _ = write!(s, "| second |");
        for sr in &r.rebalance {
            let _ = write!(s, " {} |", sr.system);
        }
        let _ = write!(s, "\n| ---: |");
        for _ in &r.rebalance {
            let _ = write!(s, " ---: |");
        }
        let _ = writeln!(s);
        for i in 0..secs {
            let _ = write!(s, "| {i} |");
            for sr in &r.rebalance {
                let _ = write!(s, " {} |", pct(sr.points.get(i).and_then(|p| p.ratio())));
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s);
    }

    if let Some(t) = &r.tls {
        s.push_str(&render_tls(t));
    }
    if let Some(t) = &r.zones {
        s.push_str(&render_zones(t));
    }
    if !r.idle.is_empty() {
        s.push_str(&render_idle(m, &r.idle));
    }

    if !r.skipped.is_empty() {
        let _ = writeln!(s, "## Not run\n");
        for k in &r.skipped {
            let _ = writeln!(s, "- {k}");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "Raw figures (every round of every load) are in `results/scenario.json`."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::super::matrix::{checks, standard, Figures};
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34 UTC (a leap day).
        assert_eq!(utc_date(1_709_210_040), "2024-02-29 12:34 UTC");
        assert_eq!(utc_date(1_798_761_600), "2027-01-01 00:00 UTC");
    }

    #[test]
    fn numbers() {
        assert_eq!(num(1_234_567.4), "1 234 567");
        assert_eq!(num(999.0), "999");
        assert_eq!(num(-1500.0), "-1 500");
        assert_eq!(num(f64::NAN), "–");
    }

    /// A target's figures as these tests make them: `rounds` rounds at `ops` ops/s and `cpu`
    /// ops per CPU-second, fixed latencies, every get a hit, no errors.
    fn figures(kind: Kind, rounds: usize, ops: f64, cpu: f64) -> Figures {
        Figures {
            kind,
            target: kind.label().into(),
            rounds,
            ops_per_sec: ops,
            ops_per_cpu_sec: Some(cpu),
            p50_us: 100.0,
            p99_us: 300.0,
            p999_us: 900.0,
            hit_ratio: Some(1.0),
            errors: 0,
            faults: Vec::new(),
        }
    }

    /// One row per load, with a column of `figure(kind)` for each of `kinds`.
    fn rows_of(
        loads: Vec<super::super::matrix::Load>,
        kinds: &[Kind],
        figure: impl Fn(Kind) -> Figures,
    ) -> Vec<Row> {
        loads
            .into_iter()
            .map(|load| Row {
                load,
                figures: kinds.iter().map(|&kind| figure(kind)).collect(),
            })
            .collect()
    }

    #[test]
    fn tls_section_is_spliced_alone() {
        use super::super::matrix::{tls_checks, tls_loads};
        let rows = rows_of(tls_loads(), &Kind::TLS, |kind| {
            let cpu = if kind == Kind::NodeTls {
                130_000.0
            } else {
                100_000.0
            };
            figures(kind, 5, 50_000.0, cpu)
        });
        let t = TlsSection {
            checks: tls_checks(&rows),
            rows,
            meta: Meta {
                date: "2026-12-07 13:40 UTC".into(),
                ..Meta::default()
            },
        };
        let section = render_tls(&t);
        assert!(section.starts_with(TLS_BEGIN) && section.trim_end().ends_with(TLS_END));
        assert!(section.contains(
            "| node tls / memcached -Z, ops per server CPU-s | mget10 c1 p16 100B | 1.30× | ≥ 1.2 | met |"
        ));
        assert!(section.contains("| c1 p16 100B | proxy tls | 50 000 | 100 000 |"));
        // Into a file without a TLS section: before the closing line, the rest kept.
        let old = "# results\n\n## Memory per item\n\nrows\n\nRaw figures are in x.\n";
        let once = splice(old, &section);
        assert!(once.starts_with("# results\n\n## Memory per item\n\nrows\n\n"));
        assert!(once.ends_with(&format!("{section}Raw figures are in x.\n")));
        // Again, with other figures: replaced, not added.
        let newer = render_tls(&TlsSection {
            meta: Meta {
                date: "2026-12-08 09:00 UTC".into(),
                ..Meta::default()
            },
            ..t.clone()
        });
        let twice = splice(&once, &newer);
        assert_eq!(twice.matches(TLS_BEGIN).count(), 1);
        assert!(twice.contains("2026-12-08 09:00 UTC") && !twice.contains("2026-12-07 13:40"));
        assert_eq!(twice.replace(&newer, ""), old);
        // A file with no closing line gets it at the end.
        assert_eq!(splice("# r\n", &section), format!("# r\n\n{section}"));
    }

    /// The zone section: its check divides the zoned proxy's ops/s by the zone-less one's, and
    /// it splices beside a TLS section without touching it.
    #[test]
    fn zone_section_checks_and_splices_beside_tls() {
        use super::super::matrix::{zone_checks, zone_loads};
        let rows = rows_of(zone_loads(), &Kind::ZONES, |kind| {
            let ops = if kind == Kind::ProxyZones {
                48_000.0
            } else {
                50_000.0
            };
            figures(kind, 3, ops, 100_000.0)
        });
        let z = TlsSection {
            checks: zone_checks(&rows),
            rows,
            meta: Meta::default(),
        };
        assert_eq!(z.checks.len(), 3);
        let section = render_zones(&z);
        assert!(section.starts_with(ZONES_BEGIN) && section.trim_end().ends_with(ZONES_END));
        assert!(
            section.contains(
                "| proxy zones / proxy 6 nodes, ops/s | c100 p1 100B | 0.96× | ≥ 0.95 | met |"
            ),
            "{section}"
        );
        let tls = format!("{TLS_BEGIN}\n\nTLS rows\n\n{TLS_END}\n\n");
        let old = format!("# results\n\n{tls}Raw figures are in x.\n");
        let once = splice_between(&old, &section, ZONES_BEGIN, ZONES_END);
        assert!(once.contains(&tls) && once.contains(&section));
        let twice = splice_between(&once, &section, ZONES_BEGIN, ZONES_END);
        assert_eq!(twice, once);
    }

    #[test]
    fn renders_tables_and_verdicts() {
        let load = standard().remove(0);
        let f = |kind: Kind, ops: f64| figures(kind, 3, ops, ops * 2.0);
        let rows = vec![Row {
            load,
            figures: Kind::ALL
                .iter()
                .map(|&k| {
                    f(
                        k,
                        if k == Kind::Node {
                            130_000.0
                        } else {
                            100_000.0
                        },
                    )
                })
                .collect(),
        }];
        let r = Results {
            checks: checks(&rows, &[], None),
            rows,
            meta: Meta {
                command: "cargo run --release -p ringcache-bench -- scenario".into(),
                ..Meta::default()
            },
            ..Results::default()
        };
        let md = render(&r);
        assert!(md
            .contains("| c100 p1 100B | node | 130 000 | 260 000 | 100 | 300 | 900 | 100.0 | 0 |"));
        assert!(md.contains(
            "| node / memcached, ops per server CPU-s | c100 p1 100B | 1.30× | ≥ 1.2 | met |"
        ));
        assert!(md.contains(
            "| proxy / nutcracker, ops/s | c100 p1 100B | 1.00× | ≥ 1.3 | **not met** |"
        ));
        assert!(md.contains("cargo run --release -p ringcache-bench -- scenario"));
        assert!(
            !md.contains("## Memory"),
            "no memory section without figures"
        );
    }
}
