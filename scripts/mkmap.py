#!/usr/bin/env python3
"""mkmap.py SYM MAP — turns the committed symbol list (api/sli.sym) into a linker version script
that exports those names under the SLI_1.0 node and hides everything else."""
import sys

names = [l.strip() for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")]
with open(sys.argv[2], "w") as f:
    f.write("SLI_1.0 {\n  global:\n")
    for n in names:
        f.write("    %s;\n" % n)
    f.write("  local: *;\n};\n")
