#!/usr/bin/env bash
# Every byte a router sends a node goes through one transport: client/src/transport.rs's
# Connector opens every socket to a node (TCP or TLS, then authentication), so TLS and auth
# apply to every path by construction (docs/architecture.md, "The crates and their layers").
# This fails on a `TcpStream::connect` (or a `TcpSocket`, its lower-level twin) in the non-test
# code of client/src and src anywhere but the transport module; tests are left out as in
# check_reply_literals.sh (.ci/non_test_code.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/non_test_code.sh

hits=$(non_test_code '^client/src/transport\.rs$' |
  grep -E '^(client/src|src)/' |
  grep -E 'TcpStream::connect|TcpSocket::' || true)

report_hits "$hits" \
  "sockets to nodes opened outside client/src/transport.rs (ask the router's Connector for a stream):" \
  "every connection to a node is opened by client/src/transport.rs"
