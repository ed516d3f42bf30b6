#!/usr/bin/env python3
"""The README's layout table against the tree, so that it cannot go stale: every folder of the tree
(top level, plugin/'s domains, tests/'s features) has its row and every row names a folder that
exists; for the source folders (plugin/<domain>/, shim/, tools/) the `.c` files a row names are
exactly the folder's; every `.c` of plugin/ is in its domain's meson.build list; plugin/'s domains
include each other one way only (core <- pki <- tls, core <- seal, pki <- age); the top level holds
no stray file (benchmark output, logs); every test has its row in the README's tests section; ./bootstrap
stops, disables or kills nothing."""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# which domains each domain of plugin/ may include (its own header and those below it)
MAY_INCLUDE = {"core": {"core"}, "pki": {"core", "pki"}, "tls": {"core", "pki", "tls"},
               "seal": {"core", "seal"}, "age": {"core", "pki", "age"}}
# the files the top level may hold, besides folders
TOP_FILES = {"README.md", "LICENSE", "meson.build", "meson_options.txt", "bootstrap", ".gitignore"}
# folders whose rows must name every .c file they hold
SOURCE_ROWS = ("plugin/", "shim/", "tools/")

failures = []


def check(ok, what):
    print("%s %s" % ("ok  " if ok else "FAIL", what))
    if not ok:
        failures.append(what)


def tracked():
    out = subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout (a tarball): the files on disk
        files = []
        for d, dirs, names in os.walk(ROOT):
            dirs[:] = [x for x in dirs if not x.startswith("build") and x != ".git"
                       and x != "src" and x != "__pycache__"]
            files += [os.path.relpath(os.path.join(d, n), ROOT) for n in names]
        return files
    return [f for f in out.stdout.splitlines() if os.path.exists(os.path.join(ROOT, f))]


def readme_rows():
    text = open(os.path.join(ROOT, "README.md")).read()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| `([^`]+)` \| (.*) \|$", line)
        if m:
            rows[m.group(1)] = m.group(2)
    return rows


def main():
    files = tracked()
    rows = readme_rows()
    check(len(rows) > 10, "the README has a layout table (%d rows)" % len(rows))
    # the folders the table must cover
    want = set()
    for f in files:
        parts = f.split("/")
        if len(parts) > 1:
            want.add(parts[0] + "/")
        if len(parts) > 2 and parts[0] in ("plugin", "tests"):
            want.add(parts[0] + "/" + parts[1] + "/")
    for d in sorted(want - set(rows)):
        check(False, "folder %s has a row in the README's layout table" % d)
    for d in sorted(set(rows) - want):
        check(False, "the README's row %s names a folder that exists" % d)
    check(want == set(rows), "the table's rows are exactly the tree's folders (%d)" % len(want))
    # the .c files of the source folders
    for row, what in sorted(rows.items()):
        if not row.startswith(SOURCE_ROWS) or row == "plugin/":
            continue
        named = set(re.findall(r"`([\w.]+\.c)`", what))
        have = {f[len(row):] for f in files if f.startswith(row) and "/" not in f[len(row):]
                and f.endswith(".c")}
        check(named == have, "%s: the row names its .c files exactly (missing %s, extra %s)"
              % (row, sorted(have - named) or "none", sorted(named - have) or "none"))
    # plugin/: every source in its domain's list, includes one way
    for dom, allowed in MAY_INCLUDE.items():
        d = os.path.join(ROOT, "plugin", dom)
        listed = open(os.path.join(d, "meson.build")).read()
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            if name.endswith(".c"):
                check("'%s'" % name in listed, "plugin/%s/%s is in plugin/%s/meson.build"
                      % (dom, name, dom))
            src = open(os.path.join(d, name)).read()
            used = set(re.findall(r'#include "(\w+)/\w+\.h"', src))
            check(used <= allowed, "plugin/%s/%s includes only %s (it includes %s)"
                  % (dom, name, "/".join(sorted(allowed)), "/".join(sorted(used)) or "nothing"))
            if dom in ("core", "seal", "age"):
                check("<openssl/ssl.h>" not in src, "plugin/%s/%s does not see the TLS engine "
                      "(<openssl/ssl.h>)" % (dom, name))
    for dom in sorted(os.listdir(os.path.join(ROOT, "plugin"))):
        if os.path.isdir(os.path.join(ROOT, "plugin", dom)):
            check(dom in MAY_INCLUDE, "plugin/%s/ is a known domain" % dom)
    # every test meson runs has its row in the README's tests table
    build = os.environ.get("SLI_BUILD_DIR")
    if build:
        out = subprocess.run([shutil.which("meson") or "meson", "test", "-C", build, "--list"], capture_output=True,
                             text=True)
        names = {line.rsplit(" / ", 1)[1].strip() for line in out.stdout.splitlines()
                 if " / " in line}
        tests = open(os.path.join(ROOT, "README.md")).read().split("\n## Tests\n", 1)[1]
        tests = tests.split("\n## ", 1)[0]
        described = set(re.findall(r"`(\w+)`", tests))
        check(len(names) > 10 and not names - described,
              "every test of `meson test` is described in the README's tests section (missing %s)"
              % (sorted(names - described) or "none"))
    # ./bootstrap installs what it needs and never stops, disables or kills the machine's services
    boot = [l.split("#", 1)[0] for f in ("bootstrap", "scripts/bootstrap.sh")
            for l in open(os.path.join(ROOT, f))]
    bad = [l.strip() for l in boot if re.search(
        r"\bsystemctl\s+(stop|disable|mask|kill|restart)\b|\bservice\s+\S+\s+(stop|restart)\b|"
        r"\b(pkill|killall|kill)\b|invoke-rc\.d\s+\S+\s+stop|update-rc\.d\s+\S+\s+(disable|remove)", l)]
    check(not bad, "bootstrap stops, disables or kills no service (%s)" % (bad or "none"))
    # the top level
    top = sorted({f for f in files if "/" not in f} - TOP_FILES)
    check(not top, "the top level holds no stray file (%s)" % (", ".join(top) or "none"))
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
