#!/usr/bin/env python3
"""Offline checks of deploy/ that the standard tools do not do (run by .ci/run, "deploy checks").

- `promql OUT.yaml`: writes every PromQL expression of the Grafana dashboard as a recording
  rule (Grafana's variables replaced by plain values), so `promtool check rules OUT.yaml`
  parses each one with Prometheus' own parser.
- `names METRICS...`: every `ringcache_*` metric the dashboard and the alert rules use must
  appear in one of the given /metrics dumps (of a running node and proxy), so a renamed metric
  breaks CI instead of a dashboard panel.
- `configs DIR`: writes the proxy.toml of every ConfigMap under deploy/kubernetes to DIR, for
  `ringcache ring locate --config` to parse and validate.

Needs PyYAML (installed with kubernetes-validate).
"""

import json
import pathlib
import re
import sys

import yaml

HERE = pathlib.Path(__file__).resolve().parent
DASHBOARD = HERE / "grafana" / "ringcache.json"
ALERTS = HERE / "prometheus" / "alerts.yaml"

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


def configs(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in sorted((HERE / "kubernetes").rglob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc and doc.get("kind") == "ConfigMap" and "proxy.toml" in doc.get("data", {}):
                name = doc["metadata"]["name"]
                (out / f"{name}.toml").write_text(doc["data"]["proxy.toml"])
                n += 1
    print(f"{n} proxy configs written to {out}")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"promql": lambda: promql(args[0]), "names": lambda: names(args), "configs": lambda: configs(args[0])}[cmd]()
