#!/usr/bin/env python3
"""Hit ratio under a skewed load: a cache-aside client (get; on a miss, set) drawing keys from a
Zipf distribution, against a server whose memory limit holds only part of the working set.

Starts the server itself on a free loopback port (the same way `mem_per_item.py` does), sends
pipelined multi-gets of --batch keys, sets the misses, and reports the hit ratio of the second
half of the requests (the first half warms the cache). Kills only the process it started.

    python3 bench/tools/zipf_hit_ratio.py node      [--bin target/release/ringcache]
    python3 bench/tools/zipf_hit_ratio.py memcached [--bin /usr/bin/memcached]
    options: --keys 1000000 --value 100 --limit-mib 50 --requests 2000000 --s 0.99 --seed 1

With 11-byte keys and 100-byte values memcached holds about 200 B per item, so 1 M keys are a
~200 MB working set and `--limit-mib 50` is a quarter of it.
"""

import bisect
import itertools
import json
import random
import subprocess
import sys
import time

from mem_per_item import (connect, expect_reply, free_port, read_until, server_command,
                          server_parser, stats)


def zipf_cdf(n, s):
    """Cumulative weights of ranks 1..n with P(rank k) proportional to k^-s."""
    return list(itertools.accumulate(k ** -s for k in range(1, n + 1)))


def main():
    ap = server_parser(limit_mib=50)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--s", type=float, default=0.99)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    port = free_port()
    proc = subprocess.Popen(server_command(a, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect(port)
        cdf = zipf_cdf(a.keys, a.s)
        total = cdf[-1]
        rng = random.Random(a.seed)
        value = b"x" * a.value
        tail = b" 0 0 %d\r\n%s\r\n" % (a.value, value)
        hits = misses = 0
        t0 = time.time()
        for start in range(0, a.requests, a.batch):
            n = min(a.batch, a.requests - start)
            keys = [b"key:%07d" % bisect.bisect_left(cdf, rng.random() * total)
                    for _ in range(n)]
            sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
            reply = read_until(sock, b"", b"END\r\n")
            found = set()
            for line in reply.split(b"\r\n"):
                if line.startswith(b"VALUE "):
                    found.add(line.split(b" ")[1])
            missed = [k for k in keys if k not in found]
            if start >= a.requests // 2:
                hits += n - len(missed)
                misses += len(missed)
            if missed:
                # Distinct keys only: a batch may draw a hot key twice.
                missed = list(dict.fromkeys(missed))
                sock.sendall(b"".join(b"set " + k + tail for k in missed))
                expect_reply(sock, b"STORED\r\n" * len(missed))
        st = stats(sock)
        print(json.dumps({
            "server": a.server, "keys": a.keys, "value": a.value, "limit_mib": a.limit_mib,
            "requests": a.requests, "s": a.s,
            "hit_ratio": round(hits / max(hits + misses, 1), 4),
            "curr_items": int(st.get("curr_items", 0)),
            "evictions": int(st.get("evictions", 0)),
            "elapsed_s": round(time.time() - t0, 1),
        }))
        sock.close()
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
