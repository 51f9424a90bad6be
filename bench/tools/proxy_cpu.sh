#!/usr/bin/env bash
# A proxied request's CPU time, split: the proxy (ringcache or nutcracker) in front of three
# stock memcached, a timed load from ringcache-bench, and the proxy's user and system time
# (/proc/PID/stat), system calls and context switches (perf stat tracepoints; the VM has no
# hardware counters) over the measured window, each divided by the requests served.
#
#   bench/tools/proxy_cpu.sh ringcache|nutcracker CONNECTIONS PIPELINE MULTIGET [SECONDS]
#
# KEYS (default 100000, the scenario's) and RATIO (default 1:10 set:get) shape the load;
# RINGCACHE / RCBENCH override the binaries' paths. With PROFILE=FILE the window is sampled
# instead (`perf record -e cpu-clock -g`, kernel and user), for `perf report -i FILE`; the
# line then has no system-call counts. Prints one line:
#   <proxy> c<C> p<P> mget<M>: ops/s, user + sys = total µs/req, syscalls/req, and the
#   proxy's context switches per request: sleeps (voluntary) + preempted (involuntary)
# With PIN=1 the proxy runs on CPU 0 and memcached and the load on CPU 1, as a proxy with a
# core of its own would: a peer the proxy wakes can then never preempt it.
# The machine is noisy: alternate the proxies (or builds) and compare medians.
set -euo pipefail
kind=$1 conns=$2 pipe=$3 mget=$4 secs=${5:-4}
root=$(cd "$(dirname "$0")/../.." && pwd)
rc=${RINGCACHE:-$root/target/release/ringcache}
bench=${RCBENCH:-$root/target/release/ringcache-bench}
keys=${KEYS:-100000} ratio=${RATIO:-1:10}
if [ -n "${PIN:-}" ]; then mine=(taskset -c 0) PEERS=(taskset -c 1); else mine=() PEERS=(); fi
. "$(dirname "$0")/proxies.sh"
port=$(free_port)
# shellcheck disable=SC2046 # the command's words, split on purpose
${mine[@]+"${mine[@]}"} $(proxy_command "$kind" "$(proxy_config "$kind" "$port")") >/dev/null 2>&1 &
px=$!
pids+=("$px")
wait_port "$port"
load() {
  ${PEERS[@]+"${PEERS[@]}"} "$bench" --target "127.0.0.1:$port" --connections "$conns" --pipeline "$pipe" --multiget "$mget" \
    --keys "$keys" --ratio "$ratio" --value-size 100 "$@" 2>&1
}
# Warm-up: connections open, every key stored.
load --prefill --duration 1 >/dev/null
ticks() { awk '{print $14, $15}' "/proc/$px/stat"; }
# Voluntary switches are the proxy going to sleep; involuntary ones, another thread (often the
# peer it just woke on the same CPU) preempting it.
switches() { awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' "/proc/$px/status"; }
read -r u0 s0 <<<"$(ticks)"
read -r v0 n0 <<<"$(switches)"
if [ -n "${PROFILE:-}" ]; then
  perf record -q -e cpu-clock -g -p "$px" -o "$PROFILE" -- sleep "$secs" 2>/dev/null &
else
  perf stat -e raw_syscalls:sys_enter -p "$px" -o "$dir/perf.txt" -- sleep "$secs" &
fi
pf=$!
out=$(load --duration "$secs")
wait "$pf" || true
read -r u1 s1 <<<"$(ticks)"
read -r v1 n1 <<<"$(switches)"
# The bench's summary line for the target: "<addr> <ops> <ops/s> …".
ops=$(echo "$out" | awk '$1 ~ /^127/ && $2 ~ /^[0-9]+$/ {print $3}' | tail -1)
hz=$(getconf CLK_TCK)
python3 - "$kind" "$conns" "$pipe" "$mget" "$ops" "$secs" "$hz" "$u0" "$u1" "$s0" "$s1" "$v0" "$v1" "$n0" "$n1" "$dir/perf.txt" <<'EOF'
import os, sys
kind, c, p, m, ops, secs, hz, u0, u1, s0, s1, v0, v1, n0, n1, perf = sys.argv[1:]
ops, secs, hz = float(ops), float(secs), float(hz)
reqs = ops * secs
us = lambda a, b: (int(b) - int(a)) / hz * 1e6 / reqs
user, system = us(u0, u1), us(s0, s1)
line = f"{kind} c{c} p{p} mget{m}: {ops:.0f} ops/s, user {user:.2f} + sys {system:.2f} = {user + system:.2f} us/req"
if os.path.exists(perf):
    counts = [int(l.split()[0].replace(',', '')) for l in open(perf)
              if 'raw_syscalls' in l]
    if len(counts) == 1:
        line += f", {counts[0] / reqs:.2f} syscalls/req"
sw = lambda a, b: (int(b) - int(a)) / reqs
line += f", sleeps {sw(v0, v1):.2f} + preempted {sw(n0, n1):.2f} switches/req"
print(line)
EOF
