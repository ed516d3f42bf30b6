#!/usr/bin/python3
"""ABI of libsli.so.1: exports equal api/sli.sym, each name in the version node the list gives it
(SLI_1.0 for the 1.0 names, so a 1.0 binary keeps finding them), imports come from libc only (no
allocator or OpenSSL symbol a host could satisfy), needed libraries are libc (and libgcc_s), the
SONAME is libsli.so.1, and sli.h compiles alone as C99 and as C++."""
import os
import re
import subprocess
import sys
import tempfile

from harness import LIBSLI, Checks, expect

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
checks = Checks()


def out(*args):
    return subprocess.run(args, stdout=subprocess.PIPE, text=True, check=True).stdout


def symbol_nodes():
    """{name: version node} from api/sli.sym: SLI_1.0 until the first '@NODE' line."""
    nodes, node = {}, "SLI_1.0"
    for line in open(os.path.join(ROOT, "api", "sli.sym")):
        line = line.strip()
        if line.startswith("@"):
            node = line[1:]
        elif line and not line.startswith("#"):
            nodes[line] = node
    return nodes


def exported():
    """{name: version node} of the functions libsli.so.1 defines, from readelf's name@@NODE."""
    got = {}
    for line in out("readelf", "--dyn-syms", "--wide", LIBSLI).splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[3] == "FUNC" and parts[6] != "UND":
            name, _, node = parts[7].partition("@@")
            got[name] = node
    return got


@checks.case
def exports_equal_symbol_list():
    want, got = set(symbol_nodes()), set(exported())
    expect(got == want, "extra exports: %s; missing: %s" % (sorted(got - want), sorted(want - got)))


@checks.case
def each_export_in_its_version_node():
    want, got = symbol_nodes(), exported()
    expect("SLI_1.1" in want.values(), "api/sli.sym has no SLI_1.1 node")
    wrong = ["%s@@%s (want %s)" % (n, got[n] or "-", want[n]) for n in sorted(want)
             if n in got and got[n] != want[n]]
    expect(not wrong, "exports in the wrong version node: %s" % wrong)
    # each node after the first inherits the one before it (readelf -V: "Parent 1: SLI_1.0")
    defs = out("readelf", "-V", "--wide", LIBSLI)
    order = sorted(set(want.values()), key=lambda v: [int(x) for x in v.split("_")[1].split(".")])
    for prev, node in zip(order, order[1:]):
        expect(re.search(r"Name: %s\n\s+0x\w+: Parent 1: %s\n" % (re.escape(node), re.escape(prev)), defs),
               "version node %s does not inherit %s:\n%s" % (node, prev, defs))


@checks.case
def imports_only_from_libc():
    allowed_weak = {"_ITM_deregisterTMCloneTable", "_ITM_registerTMCloneTable", "__gmon_start__",
                    "__cxa_finalize"}
    bad = []
    for line in out("nm", "-D", "--undefined-only", LIBSLI).splitlines():
        name = line.split()[-1]
        base = name.split("@")[0]
        if base in allowed_weak:
            continue
        if "@GLIBC_" not in name:
            bad.append(name)
    expect(not bad, "imports a host could satisfy: %s" % bad)


@checks.case
def needs_only_libc_and_soname():
    dyn = out("readelf", "-d", LIBSLI)
    needed = [l.split("[")[1].rstrip("]") for l in dyn.splitlines() if "(NEEDED)" in l]
    expect(set(needed) <= {"libc.so.6", "libgcc_s.so.1"}, "needs %s" % needed)
    expect("Library soname: [libsli.so.1]" in dyn, "SONAME is not libsli.so.1")


@checks.case
def header_compiles_alone_as_c99_and_cxx():
    with tempfile.TemporaryDirectory() as d:
        for compiler, ext, std in (("cc", "c", "-std=c99"), ("c++", "cc", "-std=c++11")):
            src = os.path.join(d, "h." + ext)
            with open(src, "w") as f:
                f.write('#include "sli.h"\nint main(void) { return sli_version() == 0; }\n')
            r = subprocess.run([compiler, std, "-Wall", "-Wextra", "-Werror", "-pedantic", "-I",
                                os.path.join(ROOT, "api"), "-c", src, "-o", os.path.join(d, "h.o")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            expect(r.returncode == 0, "%s %s: %s" % (compiler, std, r.stdout))


checks.finish()
