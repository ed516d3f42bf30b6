#!/usr/bin/python3
"""`sli decrypt` against the hand-made age v1 vectors of tests/age/vectors (made by an independent
Python implementation, make_vectors.py; README.md there lists them): each valid file decrypts to the
plaintext whose SHA-256 expected.txt gives, through a file and through a pipe; each broken one fails
with exit 6 and the SLI_E_* name of its failure class, and leaves neither the -o file nor a temporary
file behind."""
import hashlib
import os
import subprocess
import sys

from harness import SLI, Checks, Dir, expect, read, run

VECTORS = os.path.abspath(os.path.join(os.path.dirname(__file__), "vectors"))
IDENTITY = os.path.join(VECTORS, "identity.txt")

d = Dir()
checks = Checks()


def load_expected():
    rows = []
    for line in read(os.path.join(VECTORS, "expected.txt")).decode().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split()
        expect(len(f) == 3 and f[1] == "ok" or len(f) == 2 and f[1].startswith("SLI_E_"),
               "bad expected.txt line: %r" % line)
        rows.append((f[0], f[2] if f[1] == "ok" else None, f[1]))
    return rows


ROWS = load_expected()


@checks.case
def expected_txt_lists_every_vector():
    listed = [r[0] for r in ROWS]
    on_disk = sorted(n for n in os.listdir(VECTORS) if n.endswith(".age"))
    expect(len(set(listed)) == len(listed), "a vector is listed twice")
    expect(sorted(listed) == on_disk, "in only one of expected.txt and %s: %s" % (
        VECTORS, sorted(set(listed) ^ set(on_disk))))
    expect(any(r[1] for r in ROWS) and any(not r[1] for r in ROWS), "no valid or no failing vector")


def vector_case(name, sha, expected):
    def fn():
        path = os.path.join(VECTORS, name)
        work = d(name + ".d")
        os.mkdir(work)
        out = os.path.join(work, "out")
        rc, _, err = run([SLI, "decrypt", "-i", IDENTITY, "-o", out, path], timeout=60)
        if sha:
            expect(rc == 0, "rc=%d, expected success: %s" % (rc, err.strip()))
            got = hashlib.sha256(read(out)).hexdigest()
            expect(got == sha, "plaintext sha256 %s, expected %s" % (got, sha))
        else:
            expect(rc == 6, "rc=%d, expected 6 (%s): %s" % (rc, expected, err.strip()))
            expect(expected + ":" in err, "expected %s, sli printed: %s" % (expected, err.strip()))
            expect(not os.path.exists(out), "a failed decryption left the -o file")
        left = sorted(set(os.listdir(work)) - {"out"})
        expect(not left, "files left behind: %s" % left)
        # The same through stdin and stdout.
        with open(path, "rb") as f:
            p = subprocess.run([SLI, "decrypt", "-i", IDENTITY], stdin=f, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
        if sha:
            expect(p.returncode == 0, "stdin: rc=%d %s" % (p.returncode, p.stderr.decode(errors="replace")))
            expect(hashlib.sha256(p.stdout).hexdigest() == sha, "stdin: wrong plaintext")
        else:
            expect(p.returncode != 0, "stdin: a broken vector decrypted (rc 0)")
    fn.__name__ = name[:-len(".age")] if name.endswith(".age") else name
    return fn


for row in ROWS:
    checks.case(vector_case(*row))

checks.finish(d)
