#!/usr/bin/env python3
"""Memory per item: RSS growth of a server after loading N items, divided by N.

Starts the server itself on a free loopback port, reads VmRSS from /proc/PID/status, loads N
items with pipelined `set`s (keys "key:0000123", fixed-size values), asks `stats` (which also
lets the node run moka's pending maintenance), reads VmRSS again, prints one JSON line and
kills only the process it started. Used for the figures in `ITEM_OVERHEAD`'s doc comment.

    python3 bench/tools/mem_per_item.py node      [--bin target/release/ringcache]
    python3 bench/tools/mem_per_item.py memcached [--bin /usr/bin/memcached]
    options: --items 1000000 --value 100 --key-len 11 --limit-mib 4096 --batch 500 --ttl 0

--key-len pads the number with zeros ("key:000000000123" at 16, the bench scenario's and issue
11's key length); the default 11 is the key:%07d of the earlier figures.

The growth is split into anonymous memory and file-backed pages (`RssAnon` / `RssFile`: the
binary's code first run during the load), and `marginal_bytes_per_item` is the growth over the
second half of the load divided by the items it added: the cost of one more item, without the
process's one-off costs (code pages, thread stacks, connection buffers, allocator metadata)
that `bytes_per_item` spreads over the items (bench/ANALYSIS.md, "item overhead").

With --items beyond what --limit-mib holds, the cache fills and evicts; `rss_over_limit` (RSS
growth / limit) then shows how honestly the node's byte accounting maps to real memory.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field}")


def rss_kib(pid):
    return status_kib(pid, "VmRSS")


def connect(port, deadline=10.0):
    end = time.time() + deadline
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port))
        except OSError:
            if time.time() > end:
                raise
            time.sleep(0.05)


def read_until(sock, buf, token):
    while token not in buf:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def expect_reply(sock, want):
    """Reads exactly len(want) bytes of reply and fails unless they are `want`."""
    got = b""
    while len(got) < len(want):
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise RuntimeError("connection closed")
        got += chunk
    if got != want:
        raise RuntimeError(f"unexpected reply {got[:80]!r}")


def server_parser(limit_mib):
    """The options every tool here takes to start its server: which one, its binary, the value
    size and the memory limit (`limit_mib` is the tool's default)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("server", choices=["node", "memcached"])
    ap.add_argument("--bin")
    ap.add_argument("--value", type=int, default=100)
    ap.add_argument("--limit-mib", type=int, default=limit_mib)
    return ap


def server_command(a, port):
    """The command line that starts `a.server` on 127.0.0.1:`port` with `a.limit_mib` MiB."""
    if a.server == "node":
        return [a.bin or "target/release/ringcache", "node", "--listen", f"127.0.0.1:{port}",
                "--memory-limit", str(a.limit_mib)]
    cmd = [a.bin or "/usr/bin/memcached", "-p", str(port), "-m", str(a.limit_mib),
           "-U", "0", "-l", "127.0.0.1"]
    if os.geteuid() == 0:
        cmd += ["-u", "nobody"]  # memcached refuses to run as root without -u
    return cmd


def stats(sock):
    sock.sendall(b"stats\r\n")
    buf = read_until(sock, b"", b"END\r\n")
    out = {}
    for line in buf.decode().split("\r\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    return out


def main():
    ap = server_parser(limit_mib=4096)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--key-len", type=int, default=11,
                    help="key length: 'key:' and the item's number, zero-padded")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--ttl", type=int, default=0, help="exptime of every item (0 = never)")
    ap.add_argument("--gets", type=int, default=0,
                    help="then read this many keys back (pipelined multi-gets of --batch keys)")
    ap.add_argument("--wrap", default="",
                    help="command prefix for the server, e.g. 'valgrind --tool=callgrind': "
                         "instruction counts for a fixed request count; stops it with SIGTERM")
    a = ap.parse_args()
    if a.key_len - 4 < len(str(max(a.items - 1, 0))):
        ap.error(f"--key-len {a.key_len} cannot number {a.items} items")
    key_fmt = b"key:%%0%dd" % (a.key_len - 4)

    port = free_port()
    cmd = server_command(a, port)
    if a.wrap:
        cmd = a.wrap.split() + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sock = connect(port, 120.0 if a.wrap else 10.0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stats(sock)
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        anon_before, file_before = status_kib(proc.pid, "RssAnon"), status_kib(proc.pid, "RssFile")
        half = a.items // 2
        mid, mid_items = None, 0
        value = b"x" * a.value
        tail = b" 0 %d %d\r\n%s\r\n" % (a.ttl, a.value, value)
        want = b"STORED\r\n" * a.batch
        t0 = time.time()
        for start in range(0, a.items, a.batch):
            if mid is None and start >= half:
                mid_items = int(stats(sock).get("curr_items", 0))
                mid = rss_kib(proc.pid)
            n = min(a.batch, a.items - start)
            req = b"".join(b"set " + key_fmt % i + tail for i in range(start, start + n))
            sock.sendall(req)
            expect_reply(sock, want[: 8 * n])
        load_s = time.time() - t0
        for start in range(0, a.gets, a.batch):
            n = min(a.batch, a.gets - start)
            keys = b" ".join(key_fmt % (i % a.items) for i in range(start, start + n))
            sock.sendall(b"get " + keys + b"\r\n")
            read_until(sock, b"", b"END\r\n")
        st = stats(sock)
        time.sleep(1.0)
        st = stats(sock)
        after = rss_kib(proc.pid)
        anon_after, file_after = status_kib(proc.pid, "RssAnon"), status_kib(proc.pid, "RssFile")
        items = int(st.get("curr_items", 0))
        added = items - mid_items
        print(json.dumps({
            "server": a.server, "items_sent": a.items, "curr_items": items,
            "value": a.value, "key_len": a.key_len, "ttl": a.ttl, "rss_before_kib": before, "rss_after_kib": after,
            "bytes_per_item": round((after - before) * 1024 / max(items, 1), 1),
            "anon_kib": anon_after - anon_before, "file_kib": file_after - file_before,
            "marginal_bytes_per_item": round((after - (mid or before)) * 1024 / max(added, 1), 1),
            "rss_over_limit": round((after - before) * 1024 / (a.limit_mib << 20), 3),
            "evictions": int(st.get("evictions", 0)), "bytes_stat": int(st.get("bytes", 0)),
            "load_s": round(load_s, 2),
        }))
        sock.close()
    finally:
        if a.wrap:
            proc.terminate()  # a graceful exit, so the wrapper writes its report
        else:
            proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(main())
