#!/usr/bin/env bash
# pymemcache's own integration suite (pymemcache/test/test_integration.py, shipped in its
# wheel, run with pytest as its README says) against a memcached-protocol server; every test
# must pass (pytest fails on a failed test, and when it collects none).
# The suite calls flush_all, `stats cachedump` and cache_memlimit: a proxy must allow them
# (`[commands]`, docs/operations.md).
# Usage: pymemcache_suite.sh HOST:PORT
set -euo pipefail
addr=$1
suite=$(python3 -c 'import os, pymemcache.test as t; print(os.path.dirname(t.__file__))')
python3 -m pytest -q -p no:cacheprovider "$suite/test_integration.py" \
  --server "${addr%:*}" --port "${addr##*:}" -m integration
