#!/usr/bin/env bash
# The wire format has one home: client/src/protocol/ writes every memcached reply (reply.rs,
# metadump.rs, fault.rs; docs/architecture.md, "The crates and their layers"). This fails if a
# reply literal (b"STORED", b"END\r\n", b"CLIENT_ERROR ...", b"VALUE ", b"STAT ", ...) appears in
# any other Rust source, so a second hand-written copy of a reply cannot creep back in.
# tests/, testkit/ (their scaffolding), bench/ and fuzz/ assert expected bytes and are left out; so are test modules inside
# source files (a `mod tests {` to the end of the file), test-only files (`*tests.rs`) and comment
# lines (.ci/non_test_code.sh, shared with the request-literal and connect checks).
#
# Usage: .ci/check_reply_literals.sh [--count]   (--count prints the number of hits and exits 0)
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/non_test_code.sh

# A byte-string literal that starts with a reply word memcached sends.
pattern='b"(STORED|NOT_STORED|EXISTS|NOT_FOUND|DELETED|TOUCHED|END|OK|ERROR|RESET|VALUE |STAT |ITEM |PREFIX |VERSION |CLIENT_ERROR|SERVER_ERROR|BADCLASS|MEMLIMIT_|BUSY|(VA|HD|EN|NF|NS|EX|MN|ME)( |\\r|"))'

hits=$(non_test_code '^client/src/protocol/' | grep -E "$pattern" || true)

report_hits "$hits" \
  "memcached reply literals outside client/src/protocol/ (write them with protocol::reply or a Fault):" \
  "no reply literals outside client/src/protocol/" "${1:-}"
