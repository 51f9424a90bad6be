#!/usr/bin/env python3
"""Drive a memcached-protocol server with pymemcache, a third-party client users run.

Usage: pymemcache_check.py HOST:PORT

Exercises what pymemcache users rely on (set/get, get_many, gets/cas, incr/decr, add/replace,
append/prepend, touch, delete, flush_all, noreply, binary-safe values, stats, version) and
asserts each answer. Exits non-zero with a message on the first wrong answer.
"""
import sys

from checklist import Checks
from pymemcache.client.base import Client


def main() -> int:
    host, port = sys.argv[1].rsplit(":", 1)
    c = Client((host, int(port)), connect_timeout=5, timeout=5, default_noreply=False)
    check = Checks()

    c.flush_all()
    check(c.set("alpha", b"one") is True, "set")
    check(c.get("alpha") == b"one", "get after set")
    check(c.get("missing") is None, "get miss")
    check(c.set("beta", b"two", expire=100, flags=7) is True, "set with ttl and flags")
    got = c.get_many(["alpha", "beta", "missing"])
    check(got == {"alpha": b"one", "beta": b"two"}, f"get_many: {got!r}")
    value, cas = c.gets("alpha")
    check(value == b"one" and cas is not None, "gets")
    check(c.cas("alpha", b"uno", cas) is True, "cas with current token")
    check(c.cas("alpha", b"eins", cas) is False, "cas with stale token")
    check(c.get("alpha") == b"uno", "value after cas")
    check(c.cas("nokey", b"x", 1) is None, "cas on missing key")
    check(c.add("alpha", b"x") is False, "add existing")
    check(c.add("gamma", b"3") is True, "add new")
    check(c.replace("gamma", b"4") is True, "replace existing")
    check(c.replace("delta", b"4") is False, "replace missing")
    check(c.append("gamma", b"5") is True, "append")
    check(c.prepend("gamma", b"3") is True, "prepend")
    check(c.get("gamma") == b"345", "append/prepend result")
    check(c.set("n", b"10") is True, "set counter")
    check(c.incr("n", 5) == 15, "incr")
    check(c.decr("n", 20) == 0, "decr floors at zero")
    check(c.incr("nokey", 1) is None, "incr missing")
    check(c.touch("alpha", 1000) is True, "touch existing")
    check(c.touch("nokey", 1000) is False, "touch missing")
    check(c.delete("alpha") is True, "delete existing")
    check(c.delete("alpha") is False, "delete missing")
    c.set("quiet", b"q", noreply=True)
    check(c.get("quiet") == b"q", "noreply set then get")
    blob = bytes(range(256)) * 40
    check(c.set("blob", blob) is True, "binary value")
    check(c.get("blob") == blob, "binary value round trip")
    many = {f"k{i}": str(i).encode() for i in range(200)}
    check(c.set_many(many) == [], "set_many")
    check(c.get_many(list(many)) == many, "get_many 200 keys")
    stats = c.stats()
    check(b"curr_items" in stats or "curr_items" in stats, f"stats has curr_items: {stats!r}")
    check(isinstance(c.version(), (bytes, str)), "version")
    c.flush_all()
    check(c.get("beta") is None, "flush_all")
    c.close()
    print(f"pymemcache: {check.passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"pymemcache: check failed: {e}")
        print("pymemcache: 0 passed, 1 failed")
        sys.exit(1)
