#!/usr/bin/env python3
"""mkmap.py [--node NAME] SYM MAP — turns a committed symbol list (api/sli.sym, shim/shim.sym) into
a linker version script that exports those names and hides everything else. Names before the first
'@NODE' line of the list are in NAME (default SLI_1.0); each '@NODE' line starts a further node,
which inherits the one before it:
    SLI_1.0 { global: a; b; local: *; };
    SLI_1.1 { global: c; } SLI_1.0;
`--node global` writes one unversioned node (the shim's names must match libc's) and refuses
'@NODE' lines."""
import sys

args = sys.argv[1:]
first = "SLI_1.0"
if args[0] == "--node":
    first, args = args[1], args[2:]
nodes = [(first, [])]
for line in open(args[0]):
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    if line.startswith("@"):
        if first == "global":
            sys.exit("mkmap.py: %s: an unversioned list has no '%s' node" % (args[0], line))
        nodes.append((line[1:], []))
    else:
        nodes[-1][1].append(line)
with open(args[1], "w") as f:
    for i, (node, names) in enumerate(nodes):
        f.write("%s{\n  global:\n" % ("" if node == "global" else node + " "))
        for n in names:
            f.write("    %s;\n" % n)
        if i == 0:
            f.write("  local: *;\n")
        f.write("}%s;\n" % (" " + nodes[i - 1][0] if i else ""))
