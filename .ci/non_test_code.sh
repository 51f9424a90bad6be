#!/usr/bin/env bash
# Sourced by the wire-format checks (.ci/check_reply_literals.sh, .ci/check_request_literals.sh,
# .ci/check_connects.sh): what counts as non-test code, in one place.
#
# non_test_code EXCLUDE_RE prints every line of the tracked Rust sources as "file:line: text",
# leaving out files whose path matches the extended regex EXCLUDE_RE, the test scaffolding and
# harnesses (tests/, testkit/, bench/, fuzz/, client/tests/) and test-only files (`*tests.rs`),
# the code from a file's test module on (a `mod tests {` at the start of a line, to the end
# of the file), and comment lines.

# The tracked sources; every .rs file outside target/ where this is not a git checkout.
rust_sources() {
  git ls-files '*.rs' 2>/dev/null ||
    find . -name '*.rs' -not -path './target/*' -not -path '*/target/*' | sed 's#^\./##'
}

non_test_code() {
  local exclude=$1
  rust_sources |
    grep -v -E "^(tests/|testkit/|bench/|fuzz/|client/tests/)|tests\.rs$" |
    { if [ -n "$exclude" ]; then grep -v -E "$exclude"; else cat; fi; } |
    while read -r f; do
      # Only the code before a file's test module.
      awk -v f="$f" '/^mod [a-z_]*tests \{/ { exit } { print f ":" FNR ": " $0 }' "$f"
    done |
    grep -v -E '^[^:]+:[0-9]+: *//' || true
}

# report_hits HITS FAILURE SUCCESS [--count]: the verdict of a check over non_test_code's
# lines. With --count, prints how many lines HITS holds and returns 0; otherwise, with hits,
# prints FAILURE and the lines to stderr and exits 1, and without, prints SUCCESS.
report_hits() {
  local hits=$1 failure=$2 success=$3 count=0
  [ -n "$hits" ] && count=$(printf '%s\n' "$hits" | wc -l)
  if [ "${4:-}" = --count ]; then
    echo "$count"
    return 0
  fi
  if [ "$count" != 0 ]; then
    echo "$failure" >&2
    printf '%s\n' "$hits" >&2
    exit 1
  fi
  echo "$success"
}
