#!/usr/bin/env bash
# Drive a memcached-protocol server with libmemcached's command-line tools (Debian
# libmemcached-tools), as operators do: memccapable's ASCII protocol suite, then the file tools.
# Usage: libmemcached_check.sh HOST:PORT
set -euo pipefail
addr=$1
host=${addr%:*}
port=${addr##*:}
srv="--servers=$host:$port"
passed=0
failed=0
check() {
  local what=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "libmemcached: FAILED: $what"
    failed=$((failed + 1))
  fi
}

capable=$(memccapable -h "$host" -p "$port" -a -t 5 2>&1 || true)
echo "$capable" | sed 's/^/  memccapable: /'
check "memccapable ascii suite" grep -q "All tests passed" <<<"$capable"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'hello from memccp\n' >"$tmp/greeting.txt"
head -c 200000 /dev/urandom >"$tmp/blob.bin"
check "memccp text file" memccp "$srv" "$tmp/greeting.txt"
check "memccp binary file" memccp "$srv" "$tmp/blob.bin"
check "memccat text" test "$(memccat "$srv" greeting.txt)" = "hello from memccp"
memccat "$srv" blob.bin >"$tmp/blob.out"
# memccat ends what it prints with a newline (against memcached too).
printf '\n' | cat "$tmp/blob.bin" - >"$tmp/blob.want"
check "memccat binary round trip" cmp -s "$tmp/blob.want" "$tmp/blob.out"
check "memcexist present" memcexist "$srv" greeting.txt
check "memctouch" memctouch "$srv" --expire=300 greeting.txt
check "memcrm" memcrm "$srv" greeting.txt
check "memcexist after rm" bash -c "! memcexist '$srv' greeting.txt"
check "memcstat reports curr_items" bash -c "memcstat '$srv' | grep -q curr_items"
check "memcflush" memcflush "$srv"
check "memccat after flush misses" bash -c "! memccat '$srv' blob.bin >/dev/null 2>&1"

echo "libmemcached: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
