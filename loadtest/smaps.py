#!/usr/bin/env python3
"""Where a process's private memory sits, by kind of mapping (stdlib only).

  smaps.py PID [--regions]

Reads /proc/PID/smaps and sums Rss and Anonymous per kind: the binary and each library
(file-backed), `[heap]` (glibc's main arena), `[stack]` (the main thread), glibc's per-thread
arenas (64 MiB-aligned anonymous heaps), OS thread stacks (anonymous mappings just above a
guard page, 2 MiB or more reserved), coroutine stacks (anonymous mappings just above a guard
page, under 2 MiB reserved: may's), and other anonymous mappings (large mmap'ed blocks and the
like).  --regions also lists every anonymous mapping with Anonymous > 0.
"""
import sys

ARENA_ALIGN = 64 << 20
THREAD_STACK_MIN = 2 << 20


def mappings(pid):
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
                if cur:
                    yield cur
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                cur = {"lo": lo, "hi": hi, "perms": fields[1],
                       "name": fields[5] if len(fields) > 5 else "", "kib": {}}
            elif fields[0].endswith(":") and len(fields) >= 2 and fields[1].isdigit():
                cur["kib"][fields[0][:-1]] = int(fields[1])
    if cur:
        yield cur


def classify(maps):
    out = []
    prev = None
    for i, m in enumerate(maps):
        name = m["name"]
        if name.startswith("/"):
            kind = "file " + name.rsplit("/", 1)[-1]
        elif name in ("[heap]", "[stack]"):
            kind = name
        elif name.startswith("["):
            kind = name
        elif m["perms"].startswith("---"):
            kind = "guard/reserved"
        elif m["lo"] % ARENA_ALIGN == 0 and i + 1 < len(maps) and maps[i + 1]["perms"] == "---p" \
                and maps[i + 1]["lo"] == m["hi"]:
            kind = "glibc thread arena"
        elif prev and prev["perms"] == "---p" and prev["hi"] == m["lo"] and not prev["name"]:
            size = m["hi"] - m["lo"]
            kind = "thread stack" if size >= THREAD_STACK_MIN - (64 << 10) else "coroutine stack"
        else:
            kind = "other anonymous"
        out.append((kind, m))
        prev = m
    return out


def main(argv):
    if not argv:
        sys.exit(__doc__)
    maps = list(mappings(int(argv[0])))
    table = {}
    for kind, m in classify(maps):
        t = table.setdefault(kind, [0, 0, 0])
        t[0] += 1
        t[1] += m["kib"].get("Rss", 0)
        t[2] += m["kib"].get("Anonymous", 0)
    print(f"{'kind':28} {'maps':>5} {'Rss KiB':>9} {'Anon KiB':>9}")
    for kind, (n, rss, anon) in sorted(table.items(), key=lambda kv: -kv[1][1]):
        if rss:
            print(f"{kind:28} {n:5} {rss:9} {anon:9}")
    print(f"{'total':28} {'':5} {sum(t[1] for t in table.values()):9} "
          f"{sum(t[2] for t in table.values()):9}")
    if "--regions" in argv:
        for kind, m in classify(maps):
            if m["kib"].get("Anonymous", 0):
                print(f"{m['lo']:x}-{m['hi']:x} {(m['hi'] - m['lo']) >> 10:8} KiB reserved "
                      f"{m['kib']['Rss']:7} Rss {m['kib']['Anonymous']:7} Anon  {kind}")


if __name__ == "__main__":
    main(sys.argv[1:])
