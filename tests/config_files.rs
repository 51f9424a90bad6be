//! The shipped config files (`config/*.toml`) are the first thing a newcomer reads: each must be
//! taken by its program's settings type as it is (so no key is unknown or misspelt — the types
//! refuse unknown keys), and every key in it must be documented by a comment above it, in its
//! paragraph (a key repeated in a later `[[nodes]]` table counts as documented by the first).
//! And since each program's settings take the shared security keys through serde's `flatten`,
//! every program must still refuse a key it does not know, naming it.

use std::collections::BTreeSet;

use ringcache::config::NodeConfig;
use ringcache::local::LocalConfig;
use ringcache::proxy::ProxyConfig;
use ringcache::server::ServerSettings;

const FILES: [(&str, &str); 3] = [
    ("config/node.toml", include_str!("../config/node.toml")),
    ("config/proxy.toml", include_str!("../config/proxy.toml")),
    ("config/local.toml", include_str!("../config/local.toml")),
];

/// Every key path (`ring.replicas`, `nodes.addr`) the TOML parser sees in `text`.
fn parsed_keys(text: &str) -> BTreeSet<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
        for (k, v) in table {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&path, t, out),
                // An array of tables (`[[nodes]]`); an empty array (`admin_users = []`) is a
                // plain value.
                toml::Value::Array(items)
                    if !items.is_empty() && items.iter().all(|i| i.is_table()) =>
                {
                    for t in items.iter().filter_map(toml::Value::as_table) {
                        walk(&path, t, out);
                    }
                }
                _ => {
                    out.insert(path);
                }
            }
        }
    }
    let table: toml::Table = text.parse().expect("shipped config parses as TOML");
    let mut out = BTreeSet::new();
    walk("", &table, &mut out);
    out
}

/// The key paths written in `text` line by line, and those without a comment above them in
/// their paragraph.
fn written_keys(text: &str) -> (BTreeSet<String>, Vec<String>) {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut prefix = String::new();
    let (mut seen, mut undocumented) = (BTreeSet::new(), Vec::new());
    for (i, line) in lines.iter().enumerate() {
        if let Some(header) = line.strip_prefix('[') {
            prefix = header.trim_matches(['[', ']']).trim().to_string();
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, _)) = line.split_once('=') else {
            panic!("line {}: neither key, comment nor table: {line:?}", i + 1);
        };
        let path = if prefix.is_empty() {
            key.trim().to_string()
        } else {
            format!("{prefix}.{}", key.trim())
        };
        let commented = lines[..i]
            .iter()
            .rev()
            .take_while(|l| !l.is_empty())
            .any(|l| l.starts_with('#'));
        if !commented && !seen.contains(&path) {
            undocumented.push(format!("line {}: {path}", i + 1));
        }
        seen.insert(path);
    }
    (seen, undocumented)
}

#[test]
fn shipped_configs_are_taken_as_they_are() {
    let [(_, node), (_, proxy), (_, local)] = FILES;
    let n = NodeConfig::from_toml(node).expect("config/node.toml");
    let p = ProxyConfig::from_toml(proxy).expect("config/proxy.toml");
    assert_eq!(p.nodes.len(), 3);
    let l: LocalConfig = ringcache::settings::parse(local).expect("config/local.toml");
    // Each file shows the defaults, so reading it changes nothing but the addresses it sets.
    let defaults_but_metrics = |s: &ServerSettings| ServerSettings {
        metrics_listen: s.metrics_listen.clone(),
        ..ServerSettings::default()
    };
    assert_eq!(
        l,
        LocalConfig {
            server: defaults_but_metrics(&l.server),
            ..LocalConfig::default()
        }
    );
    assert_eq!(
        n,
        NodeConfig {
            server: defaults_but_metrics(&n.server),
            ..NodeConfig::default()
        }
    );
}

#[test]
fn every_shipped_key_is_documented() {
    for (name, text) in FILES {
        let (written, undocumented) = written_keys(text);
        assert_eq!(
            written,
            parsed_keys(text),
            "{name}: the line scan and the TOML parser disagree on the keys"
        );
        assert!(!written.is_empty(), "{name} sets no key");
        assert!(
            undocumented.is_empty(),
            "{name}: keys without a comment above them: {undocumented:?}"
        );
    }
}

#[test]
fn the_scan_catches_an_undocumented_key() {
    let (_, undocumented) = written_keys("# the port\nlisten = 1\n\nthreads = 2\n");
    assert_eq!(undocumented, ["line 4: threads"]);
    let (_, repeated) = written_keys("# nodes\n[[nodes]]\naddr = 1\n\n[[nodes]]\naddr = 2\n");
    assert!(repeated.is_empty(), "{repeated:?}");
    assert_eq!(
        parsed_keys("admin_users = []\n"),
        written_keys("# admins\nadmin_users = []\n").0
    );
}

/// Files each program must refuse, and the key the error must name: `flatten` is where unknown
/// keys slip through unless the outer struct refuses what no field took.
const REFUSED: [(&str, &str); 5] = [
    // A misspelt top-level key, next to a flattened key set right.
    (
        "ssl_verify_mode = 0\nlisten_addr = \"127.0.0.1:1\"\n",
        "listen_addr",
    ),
    // A misspelt security key.
    ("ssl_chain_crt = \"/x.pem\"\n", "ssl_chain_crt"),
    // A command the gate does not know.
    ("[commands]\nflush_al = \"deny\"\n", "flush_al"),
    // A bad value of a flattened key: its name, not only the type serde wanted.
    ("ssl_verify_mode = \"two\"\n", "ssl_verify_mode"),
    ("[commands]\nflush_all = \"maybe\"\n", "commands"),
];

/// Each of [`REFUSED`], followed by `valid` (what else `T` needs), is refused as a `T` with an
/// error naming the key.
fn refuses_naming_the_key<T: ringcache::settings::ConfigFile + std::fmt::Debug>(valid: &str) {
    let program = std::any::type_name::<T>();
    for (text, key) in REFUSED {
        let text = format!("{text}{valid}");
        match ringcache::settings::parse::<T>(&text) {
            Ok(cfg) => panic!("{program}: {text:?} was taken: {cfg:?}"),
            Err(e) => assert!(
                e.to_string().contains(key),
                "{program}: {text:?} refused without naming {key}: {e}"
            ),
        }
    }
}

/// The security keys are one struct flattened into each program's settings: a typo at the top
/// level or in `[commands]` must still be refused by every program, naming the key, and so
/// must a bad value of a flattened key.
#[test]
fn every_program_refuses_unknown_keys_naming_them() {
    refuses_naming_the_key::<NodeConfig>("");
    // A proxy file needs a node list to be valid: give one, so only the key under test is wrong.
    refuses_naming_the_key::<ProxyConfig>("[[nodes]]\naddr = \"127.0.0.1:1\"\n");
    refuses_naming_the_key::<LocalConfig>("");
}

/// What the three files say about security reaches each program's settings through `flatten`.
#[test]
fn security_keys_reach_every_program() {
    let text = "ssl_chain_cert = \"/c.pem\"\nadmin_users = [\"root\"]\n\
                [commands]\nflush_all = \"deny\"\n";
    let deny = Some(ringcache::server::gate::Access::Deny);
    let n = NodeConfig::from_toml(text).expect("node");
    let p = ProxyConfig::from_toml(&format!("{text}[[nodes]]\naddr = \"127.0.0.1:1\"\n"))
        .expect("proxy");
    let l: LocalConfig = ringcache::settings::parse(text).expect("local");
    for s in [n.security, p.security, l.security] {
        assert_eq!(
            s.ssl_chain_cert.as_deref(),
            Some(std::path::Path::new("/c.pem"))
        );
        assert_eq!(s.admin_users, ["root"]);
        assert_eq!(s.commands.flush_all, deny);
    }
}
