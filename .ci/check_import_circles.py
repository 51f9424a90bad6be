#!/usr/bin/env python3
"""Fails on an import circle between modules of a crate (docs/architecture.md, layering).

Usage: check_import_circles.py CRATE_SRC_DIR...

Each .rs file is a module (mod.rs/lib.rs/main.rs stand for their directory). A `crate::a::b`
or `super::…` path in a file is an edge from the file's module to the module it names, taken
at the level where the two paths part: `node::exec` using `node::store` is the edge
exec -> store, and a parent using its child (or a child its parent) is no edge. A strongly
connected set of more than one module is a circle: printed with its edges, exit 1. Test
modules (`tests`, `*_tests`, a `#[cfg(test)] mod tests` block) are skipped: tests may reach
anywhere. A heuristic reader of paths, not a Rust parser: a path written another way (a `use`
of a re-export, a glob) is seen where it is written.
"""
import os, re, sys
from collections import defaultdict

def modpath(root, path):
    rel = os.path.relpath(path, root)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel

def refs(text, me):
    out = set()
    # strip comments
    text = re.sub(r"//[^\n]*", "", text)
    # expand `use crate::{a, b::c}` roughly: catch crate::x and crate::{x, y}
    for m in re.finditer(r"\bcrate::(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_:]*)", text):
        body = m.group(1)
        if body.startswith("{"):
            for part in re.split(r"[,\s]+", body.strip("{}")):
                part = part.strip()
                if part and re.match(r"[a-z_]", part):
                    out.add(tuple(part.split("::")[:3]))
        else:
            out.add(tuple(body.split("::")[:3]))
    for m in re.finditer(r"\b((?:super::)+)([A-Za-z_][A-Za-z0-9_:]*|\{[^}]*\})", text):
        ups = m.group(1).count("super::")
        base = me[:len(me) - ups] if ups <= len(me) else []
        body = m.group(2)
        parts = [body] if not body.startswith("{") else [p.strip() for p in re.split(r"[,\s]+", body.strip("{}")) if p.strip()]
        for p in parts:
            out.add(tuple(base + p.split("::")[:3]))
    return out

def check(root):
    mods = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(".rs"):
                p = os.path.join(d, f)
                mods[tuple(modpath(root, p))] = p
    known = set(mods)
    edges = defaultdict(set)
    for me, p in mods.items():
        if any(x in ("tests", "meta_tests", "segment_tests") or x.endswith("_tests") for x in me):
            continue
        text = open(p).read()
        # skip #[cfg(test)] mod tests { ... } blocks: crude, cut at '#[cfg(test)]\nmod tests'
        text = re.split(r"#\[cfg\(test\)\]\s*mod tests\s*\{", text)[0]
        for r in refs(text, list(me)):
            # longest known module prefix
            target = None
            for n in range(len(r), 0, -1):
                if tuple(r[:n]) in known:
                    target = tuple(r[:n]); break
            if target is None:
                continue
            # sibling level: first divergence
            i = 0
            while i < min(len(me), len(target)) and me[i] == target[i]:
                i += 1
            if i >= len(me) or i >= len(target):
                continue  # parent/child
            a, b = me[:i+1], target[:i+1]
            if a != b:
                edges[a].add(b)
    # SCCs (Tarjan)
    index, low, stack, on, sccs, c = {}, {}, [], set(), [], [0]
    def sc(v):
        index[v] = low[v] = c[0]; c[0] += 1; stack.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                sc(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1:
                sccs.append(comp)
    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            sc(v)
    return sccs, edges

bad = 0
for root in sys.argv[1:]:
    sccs, edges = check(root)
    for comp in sccs:
        bad += 1
        names = ["::".join(x) or "crate" for x in comp]
        print(f"{root}: import circle: {' <-> '.join(sorted(names))}")
        for a in comp:
            for b in edges[a]:
                if b in comp:
                    print(f"    {'::'.join(a)} -> {'::'.join(b)}")
sys.exit(1 if bad else 0)
