#!/usr/bin/env python3
"""Offline checks of deploy/ that the standard tools do not do (run by .ci/run, "deploy checks").

- `promql OUT.yaml`: writes every PromQL expression of the Grafana dashboard as a recording
  rule (Grafana's variables replaced by plain values), so `promtool check rules OUT.yaml`
  parses each one with Prometheus' own parser.
- `names METRICS...`: every `ringcache_*` metric the dashboard and the alert rules use must
  appear in one of the given /metrics dumps (of a running node and proxy), so a renamed metric
  breaks CI instead of a dashboard panel.
- `configs DIR [NAME=RENDERED.yaml ...]`: writes the proxy.toml of every ConfigMap under
  deploy/kubernetes, and of every ConfigMap in the given `kubectl kustomize` outputs (a
  component's proxy config only exists rendered), to DIR, for tests/deploy_configs.rs
  (`RINGCACHE_DEPLOY_CONFIGS=DIR`) and `ringcache ring locate --config` to validate.
- `prometheusrule [--write]`: deploy/kubernetes/components/monitoring/prometheusrule.yaml must
  hold exactly the rule groups of deploy/prometheus/alerts.yaml; `--write` regenerates it.
- `rendered NAMESPACE RENDERED.yaml [--plain]`: checks a `kubectl kustomize` output of
  deploy/kubernetes (base, with any components, in any namespace) for what a schema cannot
  see: every object in NAMESPACE, the proxies' discovery name resolving to the node Service of
  that namespace, every file a node or proxy is told to read mounted from a Secret,
  certificates naming every node pod, NetworkPolicies selecting the pods, probes and hardening
  of both workloads. `--plain`: only kinds every cluster has (no CRD).

Needs PyYAML (installed with kubernetes-validate).
"""

import fnmatch
import json
import pathlib
import re
import sys
import tomllib

import yaml

HERE = pathlib.Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "ringcache.json"
ALERTS = HERE / "prometheus" / "alerts.yaml"
PROMETHEUS_RULE = HERE / "kubernetes" / "components" / "monitoring" / "prometheusrule.yaml"

# Grafana's variables, replaced by values PromQL accepts.
GRAFANA_VARS = {
    "$__rate_interval": "5m",
    "$__range": "1h",
    "$__interval": "1m",
    "$node_job": ".*",
    "$proxy_job": ".*",
    "$instance": ".*",
}


def dashboard_exprs():
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    ids = set()
    for p in dash["panels"]:
        if p["id"] in ids:
            sys.exit(f"dashboard: panel id {p['id']} used twice")
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            sys.exit(f"dashboard: panel {p['title']!r} is wider than the grid")
        if p["type"] == "row":
            continue
        if not p.get("targets"):
            sys.exit(f"dashboard: panel {p['title']!r} has no query")
        exprs += [(p["title"], t["expr"]) for t in p["targets"]]
    exprs += [(a["name"], a["expr"]) for a in dash["annotations"]["list"] if "expr" in a]
    out = []
    for title, e in exprs:
        for k in sorted(GRAFANA_VARS, key=len, reverse=True):
            e = e.replace(k, GRAFANA_VARS[k])
        if "$" in e:
            sys.exit(f"dashboard: panel {title!r}: unknown variable in {e!r}")
        out.append((title, e))
    return out


def alert_exprs():
    rules = yaml.safe_load(ALERTS.read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def promql(out):
    rules = [
        {"record": f"ringcache:dashboard_check:{i}", "expr": e}
        for i, (_, e) in enumerate(dashboard_exprs())
    ]
    pathlib.Path(out).write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    print(f"{len(rules)} dashboard expressions written to {out}")


def names(dumps):
    exported = set()
    for d in dumps:
        for line in pathlib.Path(d).read_text().splitlines():
            m = re.match(r"^(ringcache_[a-zA-Z0-9_]+)", line)
            if m:
                exported.add(re.sub(r"_(bucket|sum|count)$", "", m.group(1)))
    used = {}
    for title, e in dashboard_exprs() + alert_exprs():
        for n in re.findall(r"\bringcache_[a-zA-Z0-9_]+", e):
            used.setdefault(re.sub(r"_(bucket|sum|count)$", "", n), title)
    missing = sorted(n for n in used if n not in exported)
    for n in missing:
        print(f"not exported: {n} (used by {used[n]!r})")
    if missing:
        sys.exit(1)
    print(f"{len(used)} metric names used by the dashboard and alerts, all exported")


def proxy_tomls(docs):
    """(ConfigMap name, proxy.toml text) of every ConfigMap in `docs` that holds a proxy config."""
    return [
        (d["metadata"]["name"], d["data"]["proxy.toml"])
        for d in docs
        if d and d.get("kind") == "ConfigMap" and "proxy.toml" in d.get("data", {})
    ]


def configs(out, rendered):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted((HERE / "kubernetes").rglob("*.yaml")):
        for name, text in proxy_tomls(yaml.safe_load_all(f.read_text())):
            (out / f"{name}.toml").write_text(text)
            n += 1
    for arg in rendered:
        label, path = arg.split("=", 1)
        for name, text in proxy_tomls(yaml.safe_load_all(pathlib.Path(path).read_text())):
            (out / f"rendered-{label}-{name}.toml").write_text(text)
            n += 1
    print(f"{n} proxy configs written to {out}")


PROMETHEUS_RULE_HEADER = """\
# GENERATED from deploy/prometheus/alerts.yaml by `python3 deploy/check.py prometheusrule --write`:
# edit alerts.yaml, then run that. .ci/run fails when the rules here differ from alerts.yaml.
# The label `release: prometheus` is what a kube-prometheus-stack install selects by default;
# match it to your Prometheus' ruleSelector.
"""


def prometheus_rule():
    """The PrometheusRule object carrying alerts.yaml's groups, unchanged."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "ringcache",
            "namespace": "ringcache",
            "labels": {"app.kubernetes.io/name": "ringcache", "release": "prometheus"},
        },
        "spec": {"groups": groups},
    }


def prometheusrule(args):
    want = prometheus_rule()
    if args == ["--write"]:
        text = yaml.safe_dump(want, sort_keys=False, width=100, allow_unicode=True)
        PROMETHEUS_RULE.write_text(PROMETHEUS_RULE_HEADER + text)
        print(f"wrote {PROMETHEUS_RULE}")
        return
    have = yaml.safe_load(PROMETHEUS_RULE.read_text())
    if have != want:
        sys.exit(
            f"{PROMETHEUS_RULE.relative_to(HERE.parent)} differs from "
            "deploy/prometheus/alerts.yaml: run `python3 deploy/check.py prometheusrule --write`"
        )
    rules = sum(len(g["rules"]) for g in want["spec"]["groups"])
    print(f"PrometheusRule: the {rules} rules of alerts.yaml")


# The API groups of the kinds the base uses, all built into Kubernetes.
BUILT_IN = {"v1", "apps/v1", "policy/v1", "networking.k8s.io/v1"}


def rendered(namespace, path, plain):
    """The checks of `rendered NAMESPACE RENDERED.yaml [--plain]` (module docstring)."""
    docs = [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]
    errors = []

    def fail(msg):
        errors.append(msg)

    if plain:
        for d in docs:
            if d["apiVersion"] not in BUILT_IN:
                fail(f"{d['kind']} {d['metadata']['name']} ({d['apiVersion']}) needs a CRD")

    def one(kind, component):
        found = [
            d
            for d in docs
            if d["kind"] == kind
            and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        if len(found) != 1:
            sys.exit(f"{path}: expected one {kind} of component {component}, found {len(found)}")
        return found[0]

    for d in docs:
        m = d["metadata"]
        if d["kind"] == "Namespace":
            if m["name"] != namespace:
                fail(f"Namespace {m['name']}, expected {namespace}")
        elif m.get("namespace") != namespace:
            fail(f"{d['kind']} {m['name']} in namespace {m.get('namespace')}, expected {namespace}")

    sts = one("StatefulSet", "node")
    deploy = one("Deployment", "proxy")
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    headless = services.get(sts["spec"]["serviceName"])
    if headless is None or headless["spec"].get("clusterIP") != "None":
        sys.exit(f"{path}: no headless Service {sts['spec']['serviceName']} for the StatefulSet")
    svc = headless["metadata"]["name"]
    srv_ports = [p["name"] for p in headless["spec"]["ports"]]

    # Discovery: the SRV records of the node Service's memcache port, named relative (resolved
    # in the proxy pod's own namespace through its search path) or in this namespace.
    for name, text in proxy_tomls(docs):
        cfg = tomllib.loads(text)
        for src in cfg.get("discovery", {}).get("sources", []):
            m = re.fullmatch(r"dnssrv\+_([a-z0-9-]+)\._tcp\.([a-z0-9-]+)((?:\.[a-z0-9.-]+)?)", src)
            ok = (
                m
                and m.group(1) in srv_ports
                and m.group(2) == svc
                and m.group(3) in ("", f".{namespace}.svc", f".{namespace}.svc.cluster.local")
            )
            if not ok:
                fail(
                    f"ConfigMap {name}: discovery source {src!r} is not the SRV name of Service "
                    f"{svc} in namespace {namespace} (nor the relative name the pod resolves there)"
                )

    # Files the programs are told to read: each under a mount of a Secret in that container.
    def secret_mounts(workload):
        spec = workload["spec"]["template"]["spec"]
        secrets = {
            v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v
        }
        c = spec["containers"][0]
        mounts = {
            m["mountPath"].rstrip("/") + "/": secrets[m["name"]]
            for m in c.get("volumeMounts", [])
            if m["name"] in secrets
        }
        return c, mounts

    cert_secrets = {d["spec"]["secretName"] for d in docs if d["kind"] == "Certificate"}
    needed = set()

    def check_file(who, key, file, mounts):
        where = [s for mp, s in mounts.items() if file.startswith(mp)]
        if not where:
            fail(f"{who}: {key} {file} is not in a Secret mounted in the container")
        needed.update(where)

    node, node_mounts = secret_mounts(sts)
    for arg in node.get("args", []):
        m = re.fullmatch(r"--(ssl-chain-cert|ssl-key|ssl-ca-cert|auth-file)=(.+)", arg)
        if m:
            check_file("node", "--" + m.group(1), m.group(2), node_mounts)
    proxy, proxy_mounts = secret_mounts(deploy)
    for name, text in proxy_tomls(docs):
        backend = tomllib.loads(text).get("backend", {})
        for key in ("ssl_ca_cert", "ssl_chain_cert", "ssl_key", "auth_password_file"):
            if key in backend:
                check_file("proxy", f"[backend] {key}", backend[key], proxy_mounts)
        if backend.get("tls") and not any("--ssl-chain-cert=" in a for a in node.get("args", [])):
            fail("proxy speaks TLS to the nodes, but the nodes are started without --ssl-chain-cert")
        node_auth = any(a.startswith("--auth-file=") for a in node.get("args", []))
        if "auth_user" in backend and not node_auth:
            fail("proxy authenticates to the nodes, but the nodes are not started with --auth-file")

    # Certificates: every node pod's name, as the proxies reach it (the SRV target).
    for d in docs:
        if d["kind"] != "Certificate":
            continue
        names = d["spec"].get("dnsNames", [])
        if d["spec"]["secretName"] in node_mounts.values():
            for i in range(sts["spec"]["replicas"]):
                pod = f"{sts['metadata']['name']}-{i}.{svc}.{namespace}.svc.cluster.local"
                # A wildcard covers one label, as in TLS name matching.
                if not any(
                    fnmatch.fnmatchcase(pod, n) and n.count(".") == pod.count(".") for n in names
                ):
                    fail(f"Certificate {d['metadata']['name']} does not name pod {pod}: {names}")
        if not d["spec"].get("issuerRef", {}).get("name"):
            fail(f"Certificate {d['metadata']['name']} has no issuerRef")

    # NetworkPolicies: one selecting each workload's pods.
    for w in (sts, deploy):
        labels = w["spec"]["template"]["metadata"]["labels"]
        if not any(
            d["kind"] == "NetworkPolicy"
            and d["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            for d in docs
        ):
            fail(f"no NetworkPolicy selects the pods of {w['kind']} {w['metadata']['name']}")

    # Both workloads: no API token, ready when /ready says so on the metrics port.
    for w in (sts, deploy):
        spec = w["spec"]["template"]["spec"]
        who = f"{w['kind']} {w['metadata']['name']}"
        if spec.get("automountServiceAccountToken") is not False:
            fail(f"{who}: automountServiceAccountToken is not false")
        probe = spec["containers"][0].get("readinessProbe", {}).get("httpGet", {})
        if probe.get("path") != "/ready" or probe.get("port") != "metrics":
            fail(f"{who}: readinessProbe is not GET /ready on the metrics port")
        zones = [
            t
            for t in spec.get("topologySpreadConstraints", [])
            if t["topologyKey"] == "topology.kubernetes.io/zone"
        ]
        if not zones or zones[0]["whenUnsatisfiable"] != "ScheduleAnyway":
            fail(f"{who}: no zone topologySpreadConstraint with ScheduleAnyway")
        # Its zone from the pod's zone label (docs/operations.md, "Zones").
        zone_env = [
            e
            for e in spec["containers"][0].get("env", [])
            if e["name"] == "RINGCACHE_ZONE"
        ]
        label = "metadata.labels['topology.kubernetes.io/zone']"
        if not zone_env or zone_env[0].get("valueFrom", {}).get("fieldRef", {}).get(
            "fieldPath"
        ) != label:
            fail(f"{who}: RINGCACHE_ZONE is not the pod's topology.kubernetes.io/zone label")

    for d in docs:
        if d["kind"] == "PrometheusRule" and d["spec"] != prometheus_rule()["spec"]:
            fail(f"PrometheusRule {d['metadata']['name']}: rules differ from alerts.yaml")

    for e in errors:
        print(f"{path}: {e}")
    if errors:
        sys.exit(1)
    user = sorted(needed - cert_secrets)
    print(
        f"{path}: {len(docs)} objects in {namespace}; "
        + (f"Secrets the user creates: {', '.join(user)}" if user else "no Secret to create")
    )


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "promql": lambda: promql(args[0]),
        "names": lambda: names(args),
        "configs": lambda: configs(args[0], args[1:]),
        "prometheusrule": lambda: prometheusrule(args),
        "rendered": lambda: rendered(args[0], args[1], args[2:] == ["--plain"]),
    }[cmd]()
