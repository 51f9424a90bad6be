//! The proxy configs shipped inside deploy/kubernetes's ConfigMaps are configs the proxy takes:
//! each `proxy.toml: |` block is parsed and validated by `ProxyConfig`, as the proxy does at
//! start-up. (.ci/run also places keys with `ringcache ring locate` on those that list
//! `[[nodes]]`; a config whose nodes come from DNS has no list to place keys on.)
//!
//! A discovery config must also name the SRV records the node Service publishes: the port named
//! in node-service.yaml, over TCP, of that Service in its namespace.

use std::path::{Path, PathBuf};

use ringcache::proxy::ProxyConfig;

/// Every `*.yaml` under `dir`, recursively.
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read deploy dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
}

/// The text of each `proxy.toml: |` literal block in a YAML file (the lines indented deeper
/// than the key, with that indentation removed).
fn proxy_tomls(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = yaml.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start() != "proxy.toml: |" {
            continue;
        }
        let key_indent = l.len() - l.trim_start().len();
        let mut block = String::new();
        let mut indent = None;
        for b in &lines[i + 1..] {
            if b.trim().is_empty() {
                block.push('\n');
                continue;
            }
            let n = b.len() - b.trim_start().len();
            if n <= key_indent {
                break;
            }
            let cut = *indent.get_or_insert(n);
            block.push_str(b.get(cut..).unwrap_or(b.trim_start()));
            block.push('\n');
        }
        out.push(block);
    }
    out
}

#[test]
fn configmap_proxy_configs_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes");
    let mut files = Vec::new();
    yaml_files(&root, &mut files);
    files.sort();
    let service = std::fs::read_to_string(root.join("node-service.yaml")).expect("node service");
    let port_name = service
        .lines()
        .find_map(|l| l.trim().strip_prefix("- name: "))
        .expect("the node Service's first port has a name");
    let srv = format!("dnssrv+_{port_name}._tcp.ringcache-nodes.ringcache.svc.cluster.local");
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read yaml");
        for toml in proxy_tomls(&text) {
            seen += 1;
            let cfg = ProxyConfig::from_toml(&toml)
                .unwrap_or_else(|e| panic!("{}: proxy.toml refused: {e}\n{toml}", f.display()));
            if let Some(d) = &cfg.discovery {
                assert_eq!(d.sources, vec![srv.clone()], "{}", f.display());
            }
        }
    }
    assert!(
        seen >= 2,
        "found {seen} proxy configs under {}",
        root.display()
    );
}
