#!/usr/bin/env bash
# Instructions per proxied request: the proxy (ringcache or nutcracker) run under callgrind in
# front of three stock memcached, a counted load from ringcache-bench, and the total of a
# one-request run subtracted (start-up, connects, prefill) before dividing by N. Instruction
# counts do not move with the machine's load, unlike ops/s on a shared 2-core box.
#
#   bench/tools/proxy_instructions.sh ringcache|nutcracker CONNECTIONS PIPELINE MULTIGET [N]
#
# Needs valgrind, memcached and nutcracker (Debian), and release builds of ringcache and
# ringcache-bench (RINGCACHE / RCBENCH override their paths); KEEP=FILE keeps the measured run's
# callgrind output for callgrind_annotate. Prints one line:
#   <proxy> c<C> p<P> mget<M>: <instructions per request> Ir/request (<N> requests)
# With COUNT=syscalls the proxy runs under `strace -f -c` instead, and the line gives system
# calls per request (the same subtraction of a one-request run).
set -euo pipefail
kind=$1 conns=$2 pipe=$3 mget=$4 n=${5:-20000}
root=$(cd "$(dirname "$0")/../.." && pwd)
rc=${RINGCACHE:-$root/target/release/ringcache}
bench=${RCBENCH:-$root/target/release/ringcache-bench}
. "$(dirname "$0")/proxies.sh"

# One measured run of $1 requests; prints the proxy's total instructions.
run() {
  local reqs=$1 port out conf
  port=$(free_port); out=$dir/cg.$reqs.out
  conf=$(proxy_config "$kind" "$port")
  # shellcheck disable=SC2046 # the command's words, split on purpose
  $wrap "$out" $(proxy_command "$kind" "$conf") >/dev/null 2>&1 &
  local vg=$!
  wait_port "$port"
  "$bench" --target "127.0.0.1:$port" --connections "$conns" --pipeline "$pipe" \
    --multiget "$mget" --requests "$reqs" --keys 1000 --value-size 100 --prefill --duration 120 \
    >/dev/null 2>&1
  # strace, started in the background of a script, ignores SIGINT: stop the proxy under it.
  if [ "$count" = syscalls ]; then pkill -INT -P "$vg"; else kill -INT "$vg"; fi
  wait "$vg" 2>/dev/null || true
  if [ "$count" = syscalls ]; then
    # strace -c's last line: "100.00 <seconds> <usecs/call> <calls> [<errors>] total".
    awk '$NF == "total" {print $4}' "$out"
  else
    awk '/^(summary|totals):/ {print $2; exit}' "$out"
  fi
}
callgrind() { exec valgrind --tool=callgrind --callgrind-out-file="$1" "${@:2}"; }
syscalls() { exec strace -f -c -o "$1" "${@:2}"; }
count=${COUNT:-instructions}
case $count in
  instructions) wrap=callgrind unit=Ir ;;
  syscalls) wrap=syscalls unit=syscalls ;;
  *) echo "COUNT must be instructions or syscalls" >&2; exit 2 ;;
esac
base=$(run 1)
full=$(run "$n")
if [ -n "${KEEP:-}" ]; then cp "$dir/cg.$n.out" "$KEEP"; fi
if [ "$count" = syscalls ]; then
  echo "$kind c$conns p$pipe mget$mget: $(python3 -c "print(f'{($full - $base) / $n:.3f}')") syscalls/request ($n requests)"
else
  echo "$kind c$conns p$pipe mget$mget: $(( (full - base) / n )) $unit/request ($n requests)"
fi
