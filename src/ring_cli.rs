//! `ringcache ring locate` and `ringcache ring diff`: placement questions answered from config
//! files (the proxy's file shape, docs/placement.md; only `[ring]` and `[[nodes]]` are read), without
//! touching a node.

use std::fmt::Write as _;
use std::path::Path;

use ringcache_client::cluster_config::ClusterConfig;
use ringcache_client::ring::{self, NodeMove, RingDiff};

use crate::error::Error;

/// `KEY<TAB>owner1,owner2…` per key, one line each: owners by ring name (the configured name,
/// else the address), primary first, `[ring] replicas` of them (fewer if there are fewer nodes).
/// When the nodes have zones, a third column gives each owner's zone, and `#` lines after the
/// keys what losing each zone would cost (docs/placement.md, "Zones").
pub fn locate(config: &Path, keys: &[String]) -> Result<String, Error> {
    let cfg = ClusterConfig::load(config)?;
    static_nodes(config, &cfg)?;
    let ring = cfg.ring()?;
    let replicas = cfg.replicas();
    let mut owners = vec![0usize; replicas];
    let mut out = String::new();
    for key in keys {
        let mut len = 0;
        ring.replicas_into(key.as_bytes(), replicas, &mut owners, &mut len);
        let names: Vec<&str> = owners[..len]
            .iter()
            .map(|&i| ring.nodes()[i].ring_name())
            .collect();
        let _ = write!(out, "{key}\t{}", names.join(","));
        if ring.zone_count() > 0 {
            let zones: Vec<&str> = owners[..len]
                .iter()
                .map(|&i| ring.nodes()[i].zone.as_deref().unwrap_or("-"))
                .collect();
            let _ = write!(out, "\t{}", zones.join(","));
        }
        out.push('\n');
    }
    for (zone, share) in ring::zone_outage(&ring, replicas) {
        let _ = writeln!(out, "# keys with every copy in zone {zone}: {}", pct(share));
    }
    Ok(out)
}

/// How the keyspace moves from the placement of `old` to that of `new`: per node its share
/// before and after and what it gains and loses, then the totals. Exact (arc arithmetic), not
/// sampled; nodes are matched by address.
pub fn diff(old: &Path, new: &Path) -> Result<String, Error> {
    let (a, b) = (ClusterConfig::load(old)?, ClusterConfig::load(new)?);
    static_nodes(old, &a)?;
    static_nodes(new, &b)?;
    let (ra, rb) = (a.ring()?, b.ring()?);
    let d = ring::diff(&ra, a.replicas(), &rb, b.replicas());
    let mut out = render_diff(&a, &b, &d);
    render_zones(
        &mut out,
        &ring::zone_outage(&ra, a.replicas()),
        &ring::zone_outage(&rb, b.replicas()),
    );
    Ok(out)
}

/// What losing each zone would cost before and after: the share of keys with every copy in
/// it (`-` where the zone is not in that placement). Nothing when neither side has zones.
fn render_zones(out: &mut String, before: &[(String, f64)], after: &[(String, f64)]) {
    let mut zones: Vec<&str> = before.iter().map(|(z, _)| z.as_str()).collect();
    for (z, _) in after {
        if !zones.contains(&z.as_str()) {
            zones.push(z);
        }
    }
    if zones.is_empty() {
        return;
    }
    let share = |side: &[(String, f64)], z: &str| {
        side.iter()
            .find(|(m, _)| m == z)
            .map_or_else(|| "-".to_string(), |(_, s)| pct(*s))
    };
    let w = zones.iter().map(|z| z.len()).max().unwrap_or(0).max(4);
    let _ = writeln!(
        out,
        "keys with every copy in one zone (lost with that zone):"
    );
    let _ = writeln!(out, "{:<w$}  {:>8}  {:>8}", "zone", "before", "after");
    for z in zones {
        let _ = writeln!(
            out,
            "{z:<w$}  {:>8}  {:>8}",
            share(before, z),
            share(after, z)
        );
    }
}

/// Placement is computed from a file's `[[nodes]]`; a file whose nodes come from DNS has none.
fn static_nodes(path: &Path, cfg: &ClusterConfig) -> Result<(), Error> {
    if cfg.nodes.is_empty() {
        return Err(Error::Config(format!(
            "{}: the nodes come from [discovery] (DNS); `ringcache ring` needs a file with \
             [[nodes]] (name = \"TARGET:PORT\" as discovery names them, docs/cluster.md)",
            path.display()
        )));
    }
    Ok(())
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn settings(c: &ClusterConfig) -> String {
    format!(
        "hash {}, vnodes {}, replicas {}, {} node{}",
        c.ring.hash,
        c.ring.vnodes,
        c.replicas(),
        c.nodes.len(),
        if c.nodes.len() == 1 { "" } else { "s" }
    )
}

fn render_diff(a: &ClusterConfig, b: &ClusterConfig, d: &RingDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "old: {}", settings(a));
    let _ = writeln!(out, "new: {}", settings(b));
    if !d.same_hash {
        let _ = writeln!(
            out,
            "the hash changes: old and new key positions are unrelated, so the shares below are \
             expectations over keys and no arcs can be listed"
        );
    }
    // Column widths: the widest entry, at least the header's.
    let width = |len: fn(&NodeMove) -> usize| d.nodes.iter().map(len).max().unwrap_or(0).max(4);
    let name_w = width(|n| n.name.len());
    let addr_w = width(|n| n.addr.len());
    // With zones, a column of them: the new file's zone of a node, else the old one's; a
    // node whose zone changes shows `old->new`.
    let zoned = [a, b]
        .iter()
        .any(|c| c.nodes.iter().any(|n| n.zone.is_some()));
    let zone_of = |c: &ClusterConfig, addr: &str| {
        c.nodes
            .iter()
            .find(|n| n.addr == addr)
            .and_then(|n| n.zone.clone())
    };
    let zones: Vec<String> = d
        .nodes
        .iter()
        .map(|n| match (zone_of(a, &n.addr), zone_of(b, &n.addr)) {
            (Some(x), Some(y)) if x != y => format!("{x}->{y}"),
            (x, y) => y.or(x).unwrap_or_else(|| "-".into()),
        })
        .collect();
    let zone_w = zones.iter().map(String::len).max().unwrap_or(0).max(4);
    let zone_col = |z: &str| {
        if zoned {
            format!("  {z:<zone_w$}")
        } else {
            String::new()
        }
    };
    let _ = writeln!(
        out,
        "{:<name_w$}  {:<addr_w$}{}  {:>8}  {:>8}  {:>8}  {:>8}",
        "node",
        "addr",
        zone_col("zone"),
        "before",
        "after",
        "gains",
        "loses"
    );
    for (n, z) in d.nodes.iter().zip(&zones) {
        let _ = writeln!(
            out,
            "{:<name_w$}  {:<addr_w$}{}  {:>8}  {:>8}  {:>8}  {:>8}",
            n.name,
            n.addr,
            zone_col(z),
            pct(n.before),
            pct(n.after),
            pct(n.gained),
            pct(n.lost)
        );
    }
    let _ = writeln!(
        out,
        "total: {} of keys change owner set, {} change primary; copies to make: {} of the \
         keyspace; {} moved arc{}",
        pct(d.moved),
        pct(d.primary_moved),
        pct(d.copies_moved),
        d.arcs.len(),
        if d.arcs.len() == 1 { "" } else { "s" }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The line of `out` that starts with the node or zone `name`.
    fn row<'a>(out: &'a str, name: &str) -> &'a str {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("a row for {name} in:\n{out}"))
    }

    /// A config file removed when the test ends.
    struct TempConfig(PathBuf);

    impl TempConfig {
        fn new(tag: &str, text: &str) -> TempConfig {
            let p = std::env::temp_dir().join(format!(
                "ringcache-ring-cli-{}-{tag}.toml",
                std::process::id()
            ));
            std::fs::write(&p, text).expect("write temp config");
            TempConfig(p)
        }
    }

    impl Drop for TempConfig {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn cluster(nodes: &[(&str, &str)], replicas: usize) -> String {
        let mut t = format!(
            "listen = \"127.0.0.1:11211\"\nmetrics_listen = \"127.0.0.1:9151\"\n\
             request_timeout_ms = 1000\n[ring]\nhash = \"xxh3\"\nvnodes = 160\nreplicas = {replicas}\n"
        );
        for (addr, name) in nodes {
            t.push_str(&format!(
                "[[nodes]]\naddr = \"{addr}\"\nname = \"{name}\"\n"
            ));
        }
        t
    }

    #[test]
    fn locate_prints_owner_names_per_key() {
        let cfg = TempConfig::new(
            "locate",
            &cluster(
                &[
                    ("127.0.0.1:11311", "a"),
                    ("127.0.0.1:11312", "b"),
                    ("127.0.0.1:11313", "c"),
                ],
                2,
            ),
        );
        let keys = vec!["foo".to_string(), "bar".to_string()];
        let out = locate(&cfg.0, &keys).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        let ring = ClusterConfig::load(&cfg.0).unwrap().ring().unwrap();
        for (line, key) in lines.iter().zip(&keys) {
            let (k, owners) = line.split_once('\t').unwrap();
            assert_eq!(k, key);
            let want: Vec<&str> = ring
                .replicas(key.as_bytes(), 2)
                .iter()
                .map(|&i| ring.nodes()[i].ring_name())
                .collect();
            assert_eq!(owners, want.join(","));
        }
    }

    #[test]
    fn diff_reports_the_newcomer_share() {
        let three = [
            ("127.0.0.1:11311", "a"),
            ("127.0.0.1:11312", "b"),
            ("127.0.0.1:11313", "c"),
        ];
        let old = TempConfig::new("old", &cluster(&three, 1));
        let mut four = three.to_vec();
        four.push(("127.0.0.1:11314", "d"));
        let new = TempConfig::new("new", &cluster(&four, 1));
        let out = diff(&old.0, &new.0).unwrap();
        assert!(
            out.contains("old: hash xxh3, vnodes 160, replicas 1, 3 nodes"),
            "{out}"
        );
        let d_line = row(&out, "d");
        let cols: Vec<&str> = d_line.split_whitespace().collect();
        assert_eq!(cols[2], "0.00%", "d held nothing before: {d_line}");
        assert_eq!(cols[3], cols[4], "d's new share is all gained: {d_line}");
        let total = out.lines().last().unwrap();
        assert!(
            total.starts_with(&format!("total: {} of keys", cols[4])),
            "{out}"
        );
    }

    fn zoned(nodes: &[(&str, &str, &str)], replicas: usize) -> String {
        let mut t = format!("[ring]\nreplicas = {replicas}\n");
        for (addr, name, zone) in nodes {
            t.push_str(&format!(
                "[[nodes]]\naddr = \"{addr}\"\nname = \"{name}\"\nzone = \"{zone}\"\n"
            ));
        }
        t
    }

    const SIX: [(&str, &str, &str); 6] = [
        ("127.0.0.1:11311", "a1", "zone-a"),
        ("127.0.0.1:11312", "a2", "zone-a"),
        ("127.0.0.1:11313", "b1", "zone-b"),
        ("127.0.0.1:11314", "b2", "zone-b"),
        ("127.0.0.1:11315", "c1", "zone-c"),
        ("127.0.0.1:11316", "c2", "zone-c"),
    ];

    #[test]
    fn locate_shows_zones_and_what_a_zone_outage_costs() {
        let cfg = TempConfig::new("zoned-locate", &zoned(&SIX, 2));
        let out = locate(&cfg.0, &["foo".to_string()]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let ring = ClusterConfig::load(&cfg.0).unwrap().ring().unwrap();
        let owners = ring.replicas(b"foo", 2);
        let names: Vec<&str> = owners
            .iter()
            .map(|&i| ring.nodes()[i].ring_name())
            .collect();
        let zones: Vec<&str> = owners
            .iter()
            .map(|&i| ring.nodes()[i].zone.as_deref().unwrap())
            .collect();
        assert_ne!(zones[0], zones[1]);
        assert_eq!(
            lines[0],
            format!("foo\t{}\t{}", names.join(","), zones.join(","))
        );
        assert_eq!(
            &lines[1..],
            [
                "# keys with every copy in zone zone-a: 0.00%",
                "# keys with every copy in zone zone-b: 0.00%",
                "# keys with every copy in zone zone-c: 0.00%",
            ]
        );
        // Without zones the output is one line per key, as before.
        let bare = TempConfig::new("bare-locate", &cluster(&[("127.0.0.1:11311", "a")], 1));
        assert_eq!(locate(&bare.0, &["foo".to_string()]).unwrap(), "foo\ta\n");
    }

    #[test]
    fn diff_shows_a_zone_change_and_the_outage_before_and_after() {
        // Turning zones on: before, nothing to report per zone; after, no zone holds every
        // copy of any key. The zone-less walk did put both copies of some keys in one zone.
        let bare: Vec<(&str, &str)> = SIX.iter().map(|&(a, n, _)| (a, n)).collect();
        let old = TempConfig::new("bare-old", &cluster(&bare, 2));
        let new = TempConfig::new("zoned-new", &zoned(&SIX, 2));
        let out = diff(&old.0, &new.0).unwrap();
        let b = row(&out, "zone-b");
        assert_eq!(
            b.split_whitespace().collect::<Vec<_>>(),
            ["zone-b", "-", "0.00%"]
        );
        assert!(!out.contains("total: 0.00%"), "zones move keys: {out}");
        // Moving one node to another zone is a membership change: keys move.
        let mut moved = SIX;
        moved[1].2 = "zone-b";
        let old = TempConfig::new("zoned-moved", &zoned(&moved, 2));
        let out = diff(&old.0, &new.0).unwrap();
        let a2 = row(&out, "a2");
        assert!(a2.contains("zone-b->zone-a"), "{out}");
        assert!(
            !out.contains("total: 0.00%"),
            "a zone change moves keys: {out}"
        );
        let c = row(&out, "zone-c");
        assert_eq!(
            c.split_whitespace().collect::<Vec<_>>(),
            ["zone-c", "0.00%", "0.00%"]
        );
    }

    #[test]
    fn bad_files_are_config_errors() {
        let bad = TempConfig::new("bad", "[ring]\nhash = \"crc32\"\n");
        assert!(matches!(
            locate(&bad.0, &[]),
            Err(Error::Client(ringcache_client::Error::Config(_)))
        ));
        assert!(diff(Path::new("/nonexistent.toml"), &bad.0).is_err());
    }
}
