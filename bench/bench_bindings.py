#!/usr/bin/python3
"""bench_bindings.py — what a binding adds per call: seal and open of 64 B and 1 MiB from Python
(bindings/python, ctypes) against the same calls from C (build/bench/bench_seal, the same
libsli.so.1), in one run, rounds interleaved; medians of the rounds and their spread. The
overhead is the Python time per call minus C's (goal, issue 14: under 3 µs at 64 B).

usage: bench/bench_bindings.py [--runs N]"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(TOP, "bindings", "python"))
import sli  # noqa: E402


def per_call_py(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e9  # ns


def c_figures():
    """ns per call of sli seal/open at 64 B and 1 MiB, from bench_seal's table (one run): seal in
    ns per call, open from its MB/s (MB = 10^6 bytes, as bench_seal counts)."""
    out = subprocess.run([os.path.join(TOP, "build", "bench", "bench_seal"), "3"],
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    size = {"64 B": 64, "1 MiB": 1 << 20}
    got = {}
    for line in out.splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) >= 9 and cols[0] in size:
            got[("seal", cols[0])] = float(cols[4])
            got[("open", cols[0])] = size[cols[0]] / (float(cols[6]) * 1e6) * 1e9
    return got, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    kr = sli.Keyring.generate()
    sizes = {"64 B": os.urandom(64), "1 MiB": os.urandom(1 << 20)}
    blobs = {k: kr.seal(v, b"t.c") for k, v in sizes.items()}
    counts = {"64 B": 200000, "1 MiB": 300}
    py = {(op, s): [] for op in ("seal", "open") for s in sizes}
    c = {k: [] for k in py}
    for _ in range(a.runs):
        figs, raw = c_figures()
        for k in c:
            if k not in figs:
                sys.exit("bench_seal printed no figure for %s: %s" % (k, raw[-400:]))
            c[k].append(figs[k])
        for s, data in sizes.items():
            py[("seal", s)].append(per_call_py(lambda: kr.seal(data, b"t.c"), counts[s]))
            blob = blobs[s]
            py[("open", s)].append(per_call_py(lambda: kr.open(blob, b"t.c"), counts[s]))
    print("bench_bindings.py: medians of %d rounds (spread min–max), ns per call\n" % a.runs)
    print("| call | C | Python | Python overhead |")
    print("|---|---|---|---|")
    for (op, s), xs in py.items():
        cm, pm = statistics.median(c[(op, s)]), statistics.median(xs)
        print("| %s %s | %.0f (%.0f–%.0f) | %.0f (%.0f–%.0f) | %.0f ns |" % (
            op, s, cm, min(c[(op, s)]), max(c[(op, s)]), pm, min(xs), max(xs), pm - cm))


main()
