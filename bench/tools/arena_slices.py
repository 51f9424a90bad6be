#!/usr/bin/env python3
"""Which of a process's large anonymous mappings are resident, in 64 KiB slices.

mimalloc (the node's allocator) carves its arenas into 64 KiB slices and gives a large block
(a 1 MiB segment) a run of whole slices; small and medium blocks (buffers, index tables) share
pages of a few slices. Reading /proc/PID/pagemap's present bit over every anonymous mapping of
32 MiB or more and counting, per slice, how many of its 16 pages are resident splits the
resident memory into fully resident slices (segments, large tables) and partially resident
ones (small allocations, freed memory not yet purged). Used for "Where the unitemized bytes
go" in bench/ANALYSIS.md: fill a node, then

    python3 bench/tools/arena_slices.py PID

Needs to read /proc/PID/pagemap (same user, or root). Reads only; prints one line.
"""

import struct
import sys

SLICE_PAGES = 16  # 64 KiB of 4 KiB pages


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: arena_slices.py PID")
    pid = int(sys.argv[1])
    full = partial_kib = 0
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
        for line in maps:
            parts = line.split()
            if len(parts) > 5:  # named: a file, the stack, the heap
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if hi - lo < (32 << 20):
                continue
            pages = (hi - lo) // 4096
            pm.seek(lo // 4096 * 8)
            data = pm.read(pages * 8)
            present = [struct.unpack_from("<Q", data, i * 8)[0] >> 63 for i in range(len(data) // 8)]
            for k in range(0, len(present), SLICE_PAGES):
                n = sum(present[k:k + SLICE_PAGES])
                if n == SLICE_PAGES:
                    full += 1
                elif n:
                    partial_kib += n * 4
    print(f"fully resident 64 KiB slices: {full} ({full * 64} KiB); "
          f"resident pages in partially resident slices: {partial_kib} KiB")


if __name__ == "__main__":
    main()
