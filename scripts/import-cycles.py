#!/usr/bin/env python3
"""Import circles between the files of a Rust crate.

Reads every .rs file under each crate's src/, maps it to its module path, and
draws an edge A -> B when A names an item of B (`use crate::…`, `super::…`,
`self::…`, a child module `child::…`, or a `crate::…` path in code; not a
`pub(in crate::…)` visibility). Inline
`#[cfg(test)] mod tests { … }` blocks are left out: a test may reach anywhere.
Prints each strongly connected component of more than one file and exits 1
when there is one.

    scripts/import-cycles.py [CRATE_DIR …]   (default: every workspace crate)
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CRATES = ["proto", "guest", "host-runner", "vmm", "l1", "images"]


def module_path(src, path):
    rel = os.path.relpath(path, src)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel in (["lib"], ["main"]):
        return ()
    return tuple(rel)


def strip_tests(text):
    # Cut inline test modules: from `#[cfg(test)]` + `mod NAME {` to its closing brace.
    out = []
    i = 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            break
        out.append(text[i : m.start()])
        depth = 1
        j = m.end()
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        i = j
    return "".join(out)


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # `pub(in crate::a)` restricts visibility; it names no item of `a`.
    return re.sub(r"\bpub\s*\(\s*in\s+[\w:]+\s*\)", "pub", text)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        if p:
            out += [prefix + q for q in expand_use(p)]
    return out


def crate_graph(crate_dir):
    src = os.path.join(crate_dir, "src")
    files = {}
    for dirpath, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(dirpath, n)
                files[module_path(src, p)] = p
    edges = {m: set() for m in files}

    def resolve(base, segs):
        """Longest module prefix of base + segs that is a file."""
        full = list(base)
        for s in segs:
            if s == "super":
                full = full[:-1]
            elif s == "self":
                pass
            else:
                full.append(s)
        for k in range(len(full), -1, -1):
            if tuple(full[:k]) in files:
                return tuple(full[:k])
        return None

    for mod, path in files.items():
        text = strip_comments(strip_tests(open(path, encoding="utf-8").read()))
        children = {m[-1] for m in files if len(m) == len(mod) + 1 and m[: len(mod)] == mod}
        paths = []
        for u in re.finditer(r"\buse\s+([^;]+);", text):
            paths += expand_use(u.group(1))
        # Paths in code; a `use` line's group prefix (`crate::a::{…}`) names
        # no item of `a` by itself.
        text = re.sub(r"\buse\s+[^;]+;", "", text)
        paths += re.findall(r"\b((?:crate|super|self)(?:::\w+)+)", text)
        paths += [
            m.group(0)
            for m in re.finditer(r"(?<![\w:])(\w+)(?:::\w+)+", text)
            if m.group(1) in children
        ]
        for p in paths:
            segs = [s for s in p.split("::") if s and s != "*"]
            if not segs:
                continue
            if segs[0] == "crate":
                target = resolve((), segs[1:])
            elif segs[0] in ("super", "self"):
                target = resolve(mod, segs)
            elif segs[0] in children:
                target = resolve(mod, segs)
            else:
                continue
            if target is not None and target != mod:
                edges[mod].add(target)
    return files, edges


def sccs(edges):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return out


def main():
    crates = sys.argv[1:] or [os.path.join(ROOT, c) for c in DEFAULT_CRATES]
    found = 0
    for c in crates:
        if not os.path.isdir(os.path.join(c, "src")):
            continue
        files, edges = crate_graph(c)
        for comp in sccs(edges):
            if len(comp) > 1:
                found += 1
                names = sorted(os.path.relpath(files[m], ROOT) for m in comp)
                print(f"circle: {' <-> '.join(names)}")
                for m in sorted(comp):
                    inside = sorted(os.path.relpath(files[t], ROOT) for t in edges[m] if t in comp)
                    print(f"    {os.path.relpath(files[m], ROOT)} -> {', '.join(inside)}")
    print(f"{found} import circle(s) in {len(crates)} crate dir(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
