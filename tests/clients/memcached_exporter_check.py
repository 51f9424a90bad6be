#!/usr/bin/env python3
"""Would memcached_exporter report `memcached_up 1` for this server? Checked without it.

Usage: memcached_exporter_check.py HOST:PORT [--all]

The standard exporter (prometheus/memcached_exporter) is not packaged in Debian 12 and CI cannot
reach the Go module proxy to build it, so this script makes the same requests and applies the
same rules as its collector (pkg/exporter/exporter.go with its gomemcache client):

- on one connection `stats`, `stats slabs`, `stats items`, each read up to `END` within the
  exporter's default 1 s timeout; a reply starting `CLIENT_ERROR` fails the scrape;
- `stats settings`, every line `STAT name value` (or one more token), up to `END`;
- `cmd_set` and `cas_misses`, `cas_hits`, `cas_badval` must be present in `stats`;
- every value the exporter reads must parse as a number (a float), `rusage_user` and
  `rusage_system` as `seconds.microseconds`, the `lru_crawler` settings' yes/no as booleans;
  keys it reads that are absent are skipped without failing.

Prints the memcached_exporter metrics that would be absent (stats it looks for and does not
find) and exits non-zero if the exporter would report `memcached_up 0`; with `--all`, also if
any metric the exporter collects for memcached 1.6 would be absent (extstore's aside: the
exporter reads those only where extstore is on). The lists below are the exporter's
(pkg/exporter/exporter.go: parseStats, parseStatsSettings).
"""
import socket
import sys
import time

TIMEOUT = 1.0

# stats key -> the exporter metric fed by it (the general `stats` keys it reads).
GENERAL = {
    "uptime": "memcached_uptime_seconds",
    "time": "memcached_time_seconds",
    "cas_badval": "memcached_commands_total{command=cas,status=badval}",
    "cmd_flush": "memcached_commands_total{command=flush}",
    "bytes": "memcached_current_bytes",
    "limit_maxbytes": "memcached_limit_bytes",
    "curr_items": "memcached_current_items",
    "total_items": "memcached_items_total",
    "bytes_read": "memcached_read_bytes_total",
    "bytes_written": "memcached_written_bytes_total",
    "curr_connections": "memcached_current_connections",
    "total_connections": "memcached_connections_total",
    "rejected_connections": "memcached_connections_rejected_total",
    "conn_yields": "memcached_connections_yielded_total",
    "listen_disabled_num": "memcached_connections_listener_disabled_total",
    "evictions": "memcached_items_evicted_total",
    "reclaimed": "memcached_items_reclaimed_total",
    "store_too_large": "memcached_item_too_large_total",
    "store_no_memory": "memcached_item_no_memory_total",
    "lru_crawler_starts": "memcached_lru_crawler_starts_total",
    "direct_reclaims": "memcached_direct_reclaims_total",
    "crawler_items_checked": "memcached_lru_crawler_items_checked_total",
    "crawler_reclaimed": "memcached_lru_crawler_reclaimed_total",
    "moves_to_cold": "memcached_lru_crawler_moves_to_cold_total",
    "moves_to_warm": "memcached_lru_crawler_moves_to_warm_total",
    "moves_within_lru": "memcached_lru_crawler_moves_within_lru_total",
    "total_malloced": "memcached_malloced_bytes",
    "accepting_conns": "memcached_accepting_connections",
}
for op in ("get", "delete", "incr", "decr", "cas", "touch"):
    GENERAL[f"{op}_hits"] = f"memcached_commands_total{{command={op},status=hit}}"
    GENERAL[f"{op}_misses"] = f"memcached_commands_total{{command={op},status=miss}}"
TIMEVAL = {"rusage_user": "memcached_process_user_cpu_seconds_total",
           "rusage_system": "memcached_process_system_cpu_seconds_total"}
# `stats items` keys read per slab class.
ITEMS = ["number", "age", "hits_to_hot", "hits_to_warm", "hits_to_cold", "hits_to_temp",
         "crawler_reclaimed", "evicted", "evicted_nonzero", "evicted_time", "evicted_unfetched",
         "expired_unfetched", "outofmemory", "reclaimed", "store_too_large", "store_no_memory",
         "tailrepairs", "mem_requested", "moves_to_cold", "moves_to_warm", "moves_within_lru",
         "number_hot", "number_warm", "number_cold", "number_temp", "age_hot", "age_warm"]
# `stats slabs` keys read per slab class.
SLABS = ["get_hits", "delete_hits", "incr_hits", "decr_hits", "cas_hits", "touch_hits",
         "cas_badval", "cmd_set", "chunk_size", "chunks_per_page", "total_pages", "total_chunks",
         "used_chunks", "free_chunks", "free_chunks_end", "mem_requested"]
# Read where present, and memcached 1.6.18 itself gives none of them (`number_temp` needs its
# temp_lru; the `store_*` pair and a class's `mem_requested` in `stats slabs` are from older
# versions): `--all` does not ask for them.
OPTIONAL = {"store_too_large", "store_no_memory", "number_temp", "mem_requested"}
LRU_BOOLS = ["lru_crawler", "lru_maintainer_thread"]
LRU_SETTINGS = ["lru_crawler_sleep", "lru_crawler_tocrawl", "hot_lru_pct", "warm_lru_pct",
                "hot_max_factor", "warm_max_factor"]


class Scrape(Exception):
    pass


def read_until_end(f, cmd):
    """The lines of one reply up to END, as gomemcache reads them (1 s deadline overall)."""
    f.write(cmd)
    f.flush()
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise Scrape(f"{cmd!r}: connection closed before END")
        if line.startswith(b"CLIENT_ERROR "):
            raise Scrape(f"{cmd!r}: {line!r}")
        if line == b"END\r\n":
            return lines
        lines.append(line)


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=TIMEOUT)
    s.settimeout(TIMEOUT)
    return s, s.makefile("rwb")


def not_number(v):
    """Whether the exporter's strconv.ParseFloat would refuse `v`."""
    try:
        float(v)
    except ValueError:
        return True
    return False


def main() -> int:
    addr = sys.argv[1]
    problems, absent = [], []
    started = time.monotonic()
    try:
        s, f = connect(addr)
        stats, items, slabs = {}, {}, {}
        for cmd in (b"stats\r\n", b"stats slabs\r\n", b"stats items\r\n"):
            for line in read_until_end(f, cmd):
                parts = line.split(b" ")
                if len(parts) != 3 or not parts[0].startswith(b"STAT"):
                    continue  # gomemcache ignores such lines
                name, value = parts[1].decode(), parts[2].strip().decode()
                fields = name.split(":")
                if len(fields) == 1:
                    stats[name] = value
                elif len(fields) == 3:
                    items.setdefault(int(fields[1]), {})[fields[2]] = value
                elif len(fields) == 2:
                    # a slab id that is not a number fails the scrape
                    slabs.setdefault(int(fields[0]), {})[fields[1]] = value
        s.close()
        s, f = connect(addr)
        settings = {}
        for line in read_until_end(f, b"stats settings\r\n"):
            parts = line.split(b" ")
            if len(parts) not in (3, 4):
                raise Scrape(f"stats settings: unexpected line {line!r}")
            settings[parts[1].decode()] = parts[2].strip().decode()
        s.close()
    except (OSError, Scrape, ValueError) as e:
        print(f"memcached_up 0: {e}")
        return 1

    for key, metric in GENERAL.items():
        if key not in stats:
            absent.append(f"{metric} (stats {key})")
            continue
        if not_number(stats[key]):
            problems.append(f"stats {key} = {stats[key]!r} is not a number")
    for key in ("cmd_set", "cas_misses", "cas_hits", "cas_badval"):
        if key not in stats:
            problems.append(f"stats {key} is missing (the exporter needs it for set counts)")
    for key, metric in TIMEVAL.items():
        if key not in stats:
            absent.append(f"{metric} (stats {key})")
            continue
        sec, _, usec = stats[key].partition(".")
        try:
            float(sec), float(usec)
            if stats[key].count(".") != 1:
                raise ValueError
        except ValueError:
            problems.append(f"stats {key} = {stats[key]!r} is not seconds.microseconds")
    for slab, kv in items.items():
        for key in ITEMS:
            if key in kv:
                if not_number(kv[key]):
                    problems.append(f"stats items {slab}:{key} = {kv[key]!r} is not a number")
    if not items:
        absent.append("memcached_slab_* (stats items is empty)")
    for slab, kv in items.items():
        for key in ITEMS:
            if key not in kv and key not in OPTIONAL:
                absent.append(f"memcached_slab_* (stats items items:{slab}:{key})")
    if not slabs:
        absent.append("memcached_slab_* (stats slabs has no class)")
    for slab, kv in slabs.items():
        for key in SLABS:
            if key not in kv:
                if key not in OPTIONAL:
                    absent.append(f"memcached_slab_* (stats slabs {slab}:{key})")
            elif not_number(kv[key]):
                problems.append(f"stats slabs {slab}:{key} = {kv[key]!r} is not a number")
    if "version" not in stats:
        absent.append("memcached_version (stats version)")
    if "maxconns" not in settings:
        absent.append("memcached_max_connections (stats settings maxconns)")
    else:
        if not_number(settings["maxconns"]):
            problems.append(f"stats settings maxconns = {settings['maxconns']!r}")
    if settings.get("lru_crawler") == "yes":
        for key in LRU_SETTINGS:
            if key not in settings:
                absent.append(f"memcached_lru_* (stats settings {key})")
            elif not_number(settings[key]):
                problems.append(f"stats settings {key} = {settings[key]!r} is not a number")
        for key in LRU_BOOLS:
            if key not in settings:
                absent.append(f"memcached_lru_* (stats settings {key})")
            elif settings[key] not in ("yes", "no"):
                problems.append(f"stats settings {key} = {settings[key]!r} is not yes/no")
    else:
        absent.append("memcached_lru_crawler_* (stats settings lru_crawler is not yes)")
    for line in absent:
        print(f"absent: {line}")
    took = time.monotonic() - started
    if "--all" in sys.argv[2:] and absent:
        problems.append(f"{len(absent)} metrics absent (--all wants every one)")
    if problems:
        for p in problems:
            print(f"parse failure: {p}")
        print("memcached_up 0")
        return 1
    print(f"memcached_up 1 ({len(stats)} stats, {len(items)} item classes, "
          f"{len(settings)} settings, {took:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
