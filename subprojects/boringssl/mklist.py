#!/usr/bin/env python3
"""Print one source path per line for the make variables named on the command line.

Usage: mklist.py FILE.mk VAR [VAR...]  — reads Debian's generated sources.mk ("VAR := \\" lists).
"""
import sys

def read_vars(path):
    out, cur = {}, None
    for raw in open(path, encoding="utf-8"):
        line = raw.rstrip("\n")
        if cur is None:
            if ":=" in line and line.rstrip().endswith("\\"):
                cur = line.split(":=")[0].strip()
                out[cur] = []
            continue
        item = line.strip().rstrip("\\").strip()
        if item:
            out[cur].append(item)
        if not line.rstrip().endswith("\\"):
            cur = None
    return out

vs = read_vars(sys.argv[1])
for name in sys.argv[2:]:
    if name not in vs:
        sys.exit("mklist: %s has no variable %s" % (sys.argv[1], name))
    print("\n".join(vs[name]))
