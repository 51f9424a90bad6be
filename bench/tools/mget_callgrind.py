#!/usr/bin/env python3
"""Instructions per 10-key multi-get, node vs memcached, counted by callgrind.

Why: the 2-core bench machine is shared, so ops per CPU-second moves by tens of percent between
runs; callgrind's instruction count (user space only, for both servers) does not. For each
server this runs it twice under callgrind: once with the load (KEYS sets of VALUE_SIZE bytes)
plus N 10-key `get`s spread over CONNS connections (one request in flight per connection,
replies read whole), once with the load followed by as long an idle wait as the gets took.
(total with gets - total with load only) / N is the cost of one multi-get.

Usage: bench/tools/mget_callgrind.py [--n 4000] [--conns 4] [--keys-per-get 10]
       [--only node|memcached]
       [--node-bin target/release/ringcache] [--keep DIR]
"""
import argparse
import os
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

from mem_per_item import read_until

KEYS = 10_000
VALUE_SIZE = 100


def wait_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited early")
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("server did not come up")


def load(port):
    s = socket.create_connection(("127.0.0.1", port))
    value = b"v" * VALUE_SIZE
    batch = 100
    for base in range(0, KEYS, batch):
        req = b"".join(
            b"set key:%d 0 0 %d\r\n%s\r\n" % (i, VALUE_SIZE, value)
            for i in range(base, base + batch)
        )
        s.sendall(req)
        buf = b""
        while buf.count(b"STORED\r\n") < batch:
            buf += s.recv(1 << 16)
    s.close()


def multigets(port, n, conns, per_get):
    rng = random.Random(42)
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(n):
        s = socks[i % conns]
        keys = b" ".join(b"key:%d" % rng.randrange(KEYS) for _ in range(per_get))
        s.sendall(b"get " + keys + b"\r\n")
        reply = read_until(s, b"", b"END\r\n")
        if reply.count(b"VALUE ") != per_get:
            raise RuntimeError("expected all hits, got %r" % reply[:200])
    for s in socks:
        s.close()


def run(cmd, port, n, conns, outdir, tag, idle=0.0, per_get=10):
    out = os.path.join(outdir, "callgrind.%s" % tag)
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=no", "--callgrind-out-file=" + out]
        + cmd,
        stdout=subprocess.DEVNULL,
        # valgrind keeps 12 descriptors for itself and refuses a setrlimit whose hard limit is
        # not exactly what is left; memcached sets both to its maxconns (1024 by default).
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1036, 1036)),
        stderr=open(out + ".log", "w"),
    )
    try:
        wait_port(port, proc)
        load(port)
        started = time.time()
        if n:
            multigets(port, n, conns, per_get)
        time.sleep(idle)
        took = time.time() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1)), out, took
    raise RuntimeError("no totals in " + out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--keys-per-get", type=int, default=10)
    ap.add_argument("--only", choices=["node", "memcached"])
    ap.add_argument("--node-bin", default="target/release/ringcache")
    ap.add_argument("--keep", help="directory for the callgrind output files")
    a = ap.parse_args()
    outdir = a.keep or tempfile.mkdtemp(prefix="mget-cg-")
    os.makedirs(outdir, exist_ok=True)
    servers = {
        "node": lambda p: [a.node_bin, "node", "--listen", "127.0.0.1:%d" % p,
                           "--memory-limit", "256", "--threads", "2"],
        "memcached": lambda p: ["memcached", "-p", str(p), "-m", "256", "-t", "2", "-U", "0"]
        + (["-u", "root"] if os.geteuid() == 0 else []),
    }
    port = 23000 + os.getpid() % 1000
    for name, cmd in servers.items():
        if a.only and a.only != name:
            continue
        full, path, took = run(cmd(port), port, a.n, a.conns, outdir, name + ".mget", per_get=a.keys_per_get)
        port += 1
        # The baseline idles as long as the gets took: both servers have background threads
        # (memcached's LRU maintainer and crawler, the node's timers and sweep) whose work
        # grows with wall time, which valgrind stretches ~50x.
        base, _, _ = run(cmd(port), port, 0, a.conns, outdir, name + ".load", idle=took)
        port += 1
        print("%-10s load-only %d  with %d gets %d  per %d-key get %.0f  (%s)"
              % (name, base, a.n, full, a.keys_per_get, (full - base) / a.n, path))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
