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
