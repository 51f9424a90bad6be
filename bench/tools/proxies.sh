# Sourced by the proxy measurement scripts (proxy_instructions.sh, proxy_cpu.sh): three stock
# memcached on loopback and a proxy of either kind in front of them, configured alike
# (replicas 1 / ketama, 2 connections per server), so the two proxies are measured on equal
# terms. Needs memcached and nutcracker (Debian), python3 and nc.
#
# Sets: dir (a scratch directory), pids (processes to stop), mc (memcached ports), and the
# cleanup trap. PEERS, an array, prefixes the memcached commands (e.g. taskset).

dir=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 200); do nc -z 127.0.0.1 "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

mc=()
for _ in 1 2 3; do
  p=$(free_port); ${PEERS[@]+"${PEERS[@]}"} memcached -p "$p" -l 127.0.0.1 -U 0 -u nobody -m 256 &
  pids+=($!); wait_port "$p"; mc+=("$p")
done

# proxy_config KIND PORT: writes the proxy's config for the three memcached and prints its path.
proxy_config() {
  local kind=$1 port=$2 conf
  if [ "$kind" = ringcache ]; then
    conf=$dir/proxy.$port.toml
    { echo "listen = \"127.0.0.1:$port\""; echo "[ring]"; echo "replicas = 1"
      for m in "${mc[@]}"; do printf '[[nodes]]\naddr = "127.0.0.1:%s"\n' "$m"; done; } > "$conf"
  else
    conf=$dir/nut.$port.yml
    { echo "p:"; echo "  listen: 127.0.0.1:$port"; echo "  hash: md5"; echo "  distribution: ketama"
      echo "  timeout: 1000"; echo "  preconnect: true"; echo "  server_connections: 2"; echo "  servers:"
      for m in "${mc[@]}"; do echo "    - 127.0.0.1:$m:1"; done; } > "$conf"
  fi
  echo "$conf"
}

# proxy_command KIND CONF: the command line that runs that proxy.
proxy_command() {
  if [ "$1" = ringcache ]; then echo "$rc proxy --config $2"; else echo "nutcracker -c $2"; fi
}
