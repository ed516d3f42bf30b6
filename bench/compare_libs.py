#!/usr/bin/python3
"""compare_libs.py — the same benchmark programs (bench_tls, bench_seal) run against two builds of
libsli.so.1, interleaved A, B, A, B... so that drift hits both alike; prints the median and the
range of each figure and the ratio B / A of the medians. For a change that must not move speed (a
reorganisation): A is the library before it, B after.

  bench/compare_libs.py A_LIBDIR B_LIBDIR [ROUNDS]

A_LIBDIR and B_LIBDIR hold a libsli.so.1 (e.g. an older build's build/plugin); the benchmark
programs are this build's (build/bench), loaded with LD_LIBRARY_PATH pointing at each in turn."""
import os
import re
import statistics
import subprocess
import sys
import tempfile

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BENCH = os.path.join(os.environ.get("SLI_BUILD_DIR", os.path.join(TOP, "build")), "bench")


def cert(d):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/key.pem", "-out",
                    d + "/cert.pem", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost", "-days", "2"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return d + "/cert.pem", d + "/key.pem"


def run(libdir, args):
    env = dict(os.environ, LD_LIBRARY_PATH=libdir)
    return subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout


def tls(libdir, crt, key):
    """sli server handshakes/s and bulk MB/s (medians of 3 runs inside bench_tls)."""
    out = run(libdir, [os.path.join(BENCH, "bench_tls"), crt, key, "3", "300", "128"])
    m = re.search(r"^\| sli server \| (\d+) \| (\d+) \|", out, re.M)
    return {"TLS handshakes/s": int(m.group(1)), "TLS bulk MB/s": int(m.group(2))}


def seal(libdir):
    """sli_seal and sli_open MB/s at 64 B and 1 MiB (medians of 3 runs inside bench_seal)."""
    out = run(libdir, [os.path.join(BENCH, "bench_seal"), "3"])
    figures = {}
    for size in ("64 B", "1 MiB"):
        cells = [c.strip() for c in re.search(r"^\| %s \|(.*)$" % size, out, re.M).group(1).split("|")]
        figures["seal %s MB/s" % size] = int(cells[0])
        figures["open %s MB/s" % size] = int(cells[5])
    return figures


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    libs = {"A": sys.argv[1], "B": sys.argv[2]}
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    d = tempfile.mkdtemp(prefix="sli-bench-")
    crt, key = cert(d)
    seen = {"A": {}, "B": {}}
    for r in range(rounds):
        for side in ("A", "B") if r % 2 == 0 else ("B", "A"):
            figures = tls(libs[side], crt, key)
            figures.update(seal(libs[side]))
            for k, v in figures.items():
                seen[side].setdefault(k, []).append(v)
    print("| figure | A median (range) | B median (range) | B / A |")
    print("|---|---|---|---|")
    for k in seen["A"]:
        a, b = seen["A"][k], seen["B"][k]
        ma, mb = statistics.median(a), statistics.median(b)
        print("| %s | %g (%g–%g) | %g (%g–%g) | %.2f× |" % (k, ma, min(a), max(a), mb, min(b),
                                                          max(b), mb / ma))
    print("\n%d rounds, interleaved; A = %s, B = %s" % (rounds, libs["A"], libs["B"]))


if __name__ == "__main__":
    main()
