//! The proxy configs shipped inside deploy/kubernetes's ConfigMaps are configs the proxy takes:
//! each `proxy.toml: |` block is parsed and validated by `ProxyConfig`, as the proxy does at
//! start-up. (.ci/run also places keys with `ringcache ring locate` on those that list
//! `[[nodes]]`; a config whose nodes come from DNS has no list to place keys on.)
//!
//! A discovery config must also name the SRV records the node Service publishes: the port named
//! in node-service.yaml, over TCP, of that Service. The central proxy names it relative
//! (`_memcache._tcp.ringcache-nodes`), resolved in the pod's own namespace through its search
//! path, so the manifests work in any namespace; the sidecar, which runs in the application's
//! namespace, names the nodes' namespace.
//!
//! The tls and auth components (deploy/kubernetes/components) add `backend.*` keys to the
//! central proxy's config, which therefore exists whole only in `kubectl kustomize`'s output:
//! .ci/run extracts the config of every rendered combination to a directory
//! (`deploy/check.py configs`) and names it in `RINGCACHE_DEPLOY_CONFIGS`; every `*.toml`
//! there is validated the same way.

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

/// Parses and validates one proxy config as the proxy does at start-up, and checks its
/// discovery source against the node Service's SRV name. `origin` (the file, or the rendered
/// ConfigMap's name) says whether it is the sidecar's.
fn check_config(origin: &str, toml: &str, port_name: &str) {
    let cfg = ProxyConfig::from_toml(toml)
        .unwrap_or_else(|e| panic!("{origin}: proxy.toml refused: {e}\n{toml}"));
    if let Some(d) = &cfg.discovery {
        let relative = format!("dnssrv+_{port_name}._tcp.ringcache-nodes");
        let sidecar = format!("{relative}.ringcache.svc.cluster.local");
        let want = if origin.contains("sidecar") {
            sidecar
        } else {
            relative
        };
        assert_eq!(d.sources, vec![want], "{origin}");
    }
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
    let mut seen = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read yaml");
        let origin = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for toml in proxy_tomls(&text) {
            seen += 1;
            check_config(&origin, &toml, port_name);
        }
    }
    assert!(
        seen >= 2,
        "found {seen} proxy configs under {}",
        root.display()
    );
    // The rendered configs, when .ci/run gives them: at least one per rendered combination.
    if let Some(dir) = std::env::var_os("RINGCACHE_DEPLOY_CONFIGS") {
        let mut rendered = 0;
        for e in std::fs::read_dir(&dir).expect("read RINGCACHE_DEPLOY_CONFIGS") {
            let p = e.expect("dir entry").path();
            if p.extension().is_some_and(|x| x == "toml") {
                let toml = std::fs::read_to_string(&p).expect("read toml");
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                check_config(&name, &toml, port_name);
                rendered += 1;
            }
        }
        assert!(rendered > seen, "found {rendered} configs in {dir:?}");
    }
}
