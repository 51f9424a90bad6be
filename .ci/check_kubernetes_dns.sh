#!/usr/bin/env bash
# The shipped proxy config finds the nodes of its own namespace as it would in a pod, by the
# relative discovery name `_memcache._tcp.ringcache-nodes` (docs/cluster.md, "Discovery"):
# in a network and mount namespace of its own, a pod's /etc/resolv.conf (search list of
# namespace `cache`, ndots:5, the cluster DNS at 127.0.0.1) is bind-mounted over the real one,
# dnsmasq serves the records a headless Service `ringcache-nodes` in namespace `cache` publishes
# (one SRV record per node pod, each target's A record), three real nodes listen at those
# addresses, started with the rendered StatefulSet's arguments, and the real proxy runs with
# the config of the rendered ConfigMap (both with their listen addresses moved to loopback).
# The proxy must resolve the three nodes under their names in `cache` and serve a set and a
# get.
#
# Usage: .ci/check_kubernetes_dns.sh RINGCACHE_BINARY RENDERED.yaml
#   (a `kubectl kustomize` output of deploy/kubernetes without the tls and auth components,
#   whose files this check does not provide)
# Exit 2: could not run here (needs root for the namespaces, unshare and dnsmasq).
set -euo pipefail

if [ "${1:-}" != --inside ]; then
  if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v dnsmasq >/dev/null; then
    echo "check_kubernetes_dns: needs root, unshare and dnsmasq" >&2
    exit 2
  fi
  bin=$(realpath "$1")
  rendered=$(realpath "$2")
  exec unshare --mount --net --propagation private bash "$0" --inside "$bin" "$rendered"
fi
bin=$2
rendered=$3
ns=cache
domain=cluster.local
work=$(mktemp -d)
cfg="$work/proxy.toml"
# The proxy's config, and the node container's arguments one per line.
python3 - "$rendered" "$cfg" "$work/node-args" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and "proxy.toml" in d.get("data", {}))
open(sys.argv[2], "w").write(cm["data"]["proxy.toml"])
sts = next(d for d in docs if d["kind"] == "StatefulSet")
open(sys.argv[3], "w").write("\n".join(sts["spec"]["template"]["spec"]["containers"][0]["args"]))
PY
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip link set lo up
# What the kubelet writes for a pod of namespace $ns with dnsPolicy ClusterFirst.
printf 'search %s.svc.%s svc.%s %s\nnameserver 127.0.0.1\noptions ndots:5\n' \
  "$ns" "$domain" "$domain" "$domain" >"$work/resolv.conf"
mount --bind "$work/resolv.conf" /etc/resolv.conf

# The cluster DNS: the headless Service's SRV records and the pods' A records; anything else
# under the cluster domain is NXDOMAIN (--local), as CoreDNS answers.
srv="_memcache._tcp.ringcache-nodes.$ns.svc.$domain"
records=()
for i in 0 1 2; do
  pod="ringcache-node-$i.ringcache-nodes.$ns.svc.$domain"
  records+=(--srv-host="$srv,$pod,11211" --host-record="$pod,127.0.0.1$((i + 1))")
done
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-hosts --no-resolv --bind-interfaces \
  --listen-address=127.0.0.1 --port=53 --local="/$domain/" --user=root "${records[@]}" \
  2>"$work/dnsmasq.log" &
pids+=($!)

for i in 0 1 2; do
  args=()
  while read -r a; do
    case "$a" in
      --listen=*) a="--listen=127.0.0.1$((i + 1)):11211" ;;
      --metrics-listen=*) a="--metrics-listen=127.0.0.1$((i + 1)):9150" ;;
    esac
    args+=("$a")
  done <"$work/node-args"
  "$bin" "${args[@]}" >"$work/node-$i.log" 2>&1 &
  pids+=($!)
done
# The rendered config as it is, but for the listen addresses (the nodes use 11211 on loopback).
"$bin" proxy --config "$cfg" --listen 127.0.0.1:11211 --metrics-listen 127.0.0.1:9151 \
  >"$work/proxy.log" 2>&1 &
pids+=($!)

fetch() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1" 2>/dev/null; }
# Discovery resolves at start and every interval_secs: wait for the three nodes (60 tries,
# half a second apart, each fetch bounded by its 5 s timeout).
for _ in $(seq 1 60); do
  if fetch http://127.0.0.1:9151/metrics | grep -qx 'ringcache_discovery_nodes 3'; then
    break
  fi
  sleep 0.5
done
metrics=$(fetch http://127.0.0.1:9151/metrics || true)
if ! grep -qx 'ringcache_discovery_nodes 3' <<<"$metrics"; then
  echo "check_kubernetes_dns: the proxy did not discover 3 nodes through the search list" >&2
  grep -E '^ringcache_discovery' <<<"$metrics" >&2 || true
  cat "$work/proxy.log" "$work/dnsmasq.log" "$work"/node-*.log >&2
  exit 1
fi
for i in 0 1 2; do
  name="ringcache-node-$i.ringcache-nodes.$ns.svc.$domain:11211"
  if ! grep -q "^ringcache_client_node_up{node=\"$name\"} 1" <<<"$metrics"; then
    echo "check_kubernetes_dns: node $name not up in the proxy" >&2
    grep '^ringcache_client_node_up' <<<"$metrics" >&2 || true
    cat "$work"/node-*.log >&2
    exit 1
  fi
done
got=$(python3 - <<'PY'
import socket
s = socket.create_connection(("127.0.0.1", 11211), timeout=5)
s.sendall(b"set k8s-dns 0 0 2\r\nok\r\nget k8s-dns\r\n")
want = b"STORED\r\nVALUE k8s-dns 0 2\r\nok\r\nEND\r\n"
buf = b""
while len(buf) < len(want):
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
print(repr(buf))
PY
)
if [ "$got" != "b'STORED\\r\\nVALUE k8s-dns 0 2\\r\\nok\\r\\nEND\\r\\n'" ]; then
  echo "check_kubernetes_dns: set/get through the proxy answered $got" >&2
  exit 1
fi
echo "check_kubernetes_dns: 3 nodes of namespace $ns found by $(grep -o 'dnssrv+[^"]*' "$cfg"), set and get served"
