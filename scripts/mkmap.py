#!/usr/bin/env python3
"""mkmap.py [--node NAME] SYM MAP — turns a committed symbol list (api/sli.sym, shim/shim.sym) into
a linker version script that exports those names and hides everything else. The default node is
SLI_1.0; `--node global` writes an unversioned script (the shim's names must match libc's)."""
import sys

args = sys.argv[1:]
node = "SLI_1.0"
if args[0] == "--node":
    node, args = args[1], args[2:]
names = [l.strip() for l in open(args[0]) if l.strip() and not l.startswith("#")]
with open(args[1], "w") as f:
    f.write("%s{\n  global:\n" % ("" if node == "global" else node + " "))
    for n in names:
        f.write("    %s;\n" % n)
    f.write("  local: *;\n};\n")
