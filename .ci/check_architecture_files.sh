#!/usr/bin/env bash
# docs/architecture.md, "9. Source files", names every source file of the servers and the client
# crate with its one job (issue 26). This fails on a `.rs` file under src/ or client/src/ that
# the table does not name (a row is "| `path` | job |"), and on a row naming a file that is gone.
# The files are the tracked ones and the untracked ones git does not ignore, as
# .ci/non_test_code.sh lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/non_test_code.sh

doc=docs/architecture.md
sources=$( { rust_sources; git ls-files --others --exclude-standard '*.rs' 2>/dev/null || true; } |
  grep -E '^(src|client/src)/' | sort -u)
rows=$(grep -oE '^\| `[^`]+\.rs` \|' "$doc" | sed -E 's/^\| `([^`]+)` \|$/\1/' | sort -u)

missing=$(comm -23 <(printf '%s\n' "$sources") <(printf '%s\n' "$rows") | sed 's/^/not in the table: /')
gone=$(comm -13 <(printf '%s\n' "$sources") <(printf '%s\n' "$rows") | grep -E '^(src|client/src)/' |
  sed 's/^/no such file: /' || true)
hits=$(printf '%s\n%s\n' "$missing" "$gone" | sed '/^$/d')

report_hits "$hits" \
  "$doc, \"9. Source files\", must name every .rs file under src/ and client/src/ (add a row: | \`path\` | its job |):" \
  "every source file under src/ and client/src/ is in $doc's table"
