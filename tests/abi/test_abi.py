#!/usr/bin/python3
"""ABI of libsli.so.1: exports equal api/sli.sym, imports come from libc only (no allocator or
OpenSSL symbol a host could satisfy), needed libraries are libc (and libgcc_s), the SONAME is
libsli.so.1, and sli.h compiles alone as C99 and as C++."""
import os
import subprocess
import sys
import tempfile

from harness import LIBSLI, Checks, expect

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
checks = Checks()


def out(*args):
    return subprocess.run(args, stdout=subprocess.PIPE, text=True, check=True).stdout


@checks.case
def exports_equal_symbol_list():
    want = {l.strip() for l in open(os.path.join(ROOT, "api", "sli.sym")) if l.strip()}
    got = set()
    for line in out("nm", "-D", "--defined-only", LIBSLI).splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] != "A":
            got.add(parts[2].split("@")[0])
    expect(got == want, "extra exports: %s; missing: %s" % (sorted(got - want), sorted(want - got)))


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
