#!/usr/bin/env bash
# The other half of "one home for the wire format": client/src/protocol/ encodes every memcached
# request too (Request::encode, protocol::auth, protocol::metadump::request_all;
# docs/architecture.md, "The crates and their layers"). This fails on a request literal in any
# other non-test Rust source: a byte string that starts with a command word and a space or its
# line end (b"get ", b"mn\r\n", b"lru_crawler metadump all\r\n"), or a string that does and ends
# the line (format!("set auth 0 0 {}\r\n…"), "stats\r\n"), or is the word and a space ("get ").
# Log messages that start with a command word ("shutdown command received") are not requests.
# Tests and harnesses are left out as in check_reply_literals.sh (.ci/non_test_code.sh).
#
# Usage: .ci/check_request_literals.sh [--count]   (--count prints the number of hits and exits 0)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/non_test_code.sh

verbs='get|gets|gat|gats|set|add|replace|append|prepend|cas|incr|decr|touch|delete|flush_all|version|verbosity|stats|quit|shutdown|cache_memlimit|slabs|lru_crawler|watch|misbehave|mn|mg|ms|md|ma|me'
pattern="b\"($verbs)( |\\\\r)|(^|[^b[:alnum:]_])\"($verbs)( [^\"]*)?\\\\r\\\\n|(^|[^b[:alnum:]_])\"($verbs) \""

hits=$(non_test_code '^client/src/protocol/' | grep -E "$pattern" || true)

report_hits "$hits" \
  "memcached request literals outside client/src/protocol/ (encode them there: a Request, or an encoder function):" \
  "no request literals outside client/src/protocol/" "${1:-}"
