#!/usr/bin/python3
"""bench_bindings.py — what a binding adds: seal and open of 64 B and 1 MiB per call from Python
(bindings/python, ctypes) against the same calls from C (build/bench/bench_seal, the same
libsli.so.1); and (--age) 1 GiB of age encryption and decryption through the Python streams
against the `sli` CLI, input and output in memory (/dev/shm, /dev/null). One run, rounds
interleaved; medians and their spread. With --go and --node, the same for those bindings, each by
its own program (bindings/go/bench, bindings/node/bench/bench.js: each measures C, or the CLI,
in its own rounds, interleaved), one after the other. Goals (issue 14): overhead per 64 B call
under 3 µs in Python, under 1 µs in Go and Node; age through the streams at least 0.8× the CLI.

usage: bench/bench_bindings.py [--runs N] [--age] [--go] [--node] [--no-python]"""
import argparse
import os
import shutil
import tempfile
import re
import statistics
import subprocess
import sys
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SLI = os.path.join(TOP, "build", "tools", "sli")
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


def age_bench(runs):
    from sli import age
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = tempfile.mkdtemp(prefix="sli-bind-age-", dir=base)
    try:
        me = age.Identity.generate()
        rcpt = me.recipient()
        with open(os.open(d + "/id", os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(str(me) + "\n")
        block = os.urandom(1 << 20)
        with open(d + "/in", "wb") as f:
            for _ in range(1024):
                f.write(block)
        subprocess.run([SLI, "encrypt", "-r", str(rcpt), "-o", d + "/in.age", d + "/in"], check=True)
        times = {k: [] for k in ("encrypt: sli CLI", "encrypt: Python stream",
                                 "decrypt: sli CLI", "decrypt: Python stream")}
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([SLI, "encrypt", "-r", str(rcpt), d + "/in"], stdout=subprocess.DEVNULL,
                           check=True)
            times["encrypt: sli CLI"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with open(d + "/in", "rb") as src, open("/dev/null", "wb") as dst:
                with age.Encryptor(dst, [rcpt], parallel=True) as w:
                    shutil.copyfileobj(src, w, 1 << 20)
            times["encrypt: Python stream"].append(time.perf_counter() - t)
            t = time.perf_counter()
            subprocess.run([SLI, "decrypt", "-i", d + "/id", d + "/in.age"],
                           stdout=subprocess.DEVNULL, check=True)
            times["decrypt: sli CLI"].append(time.perf_counter() - t)
            t = time.perf_counter()
            with open(d + "/in.age", "rb") as src, open("/dev/null", "wb") as dst:
                with age.Decryptor(src, [me], parallel=True) as r:
                    shutil.copyfileobj(r, dst, 1 << 20)
            times["decrypt: Python stream"].append(time.perf_counter() - t)
        print("\n1 GiB of age, medians of %d rounds (spread min–max)\n" % runs)
        print("| what | seconds | MB/s | vs the CLI |")
        print("|---|---|---|---|")
        for k, xs in times.items():
            m = statistics.median(xs)
            cli = statistics.median(times[k.split(":")[0] + ": sli CLI"])
            print("| %s | %.2f (%.2f–%.2f) | %.0f | %.2f× |" % (k, m, min(xs), max(xs),
                                                              (1 << 30) / m / 1e6, cli / m))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--age", action="store_true", help="also 1 GiB of age through the streams")
    ap.add_argument("--go", action="store_true", help="also the Go binding (bindings/go/bench)")
    ap.add_argument("--node", action="store_true", help="also the Node binding (its bench.js)")
    ap.add_argument("--no-python", action="store_true", help="only the other bindings")
    a = ap.parse_args()
    if not a.no_python:
        python_bench(a)
    build = os.path.join(TOP, "build")
    env = dict(os.environ, SLI_BUILD_DIR=build, LD_LIBRARY_PATH=os.path.join(build, "plugin"))
    if a.go:
        print("\n## Go (bindings/go/bench)\n", flush=True)
        env_go = dict(env, PKG_CONFIG_PATH=os.path.join(build, "meson-uninstalled"),
                      GOFLAGS="-mod=mod", GOPROXY="off",
                      GOCACHE=os.path.join(build, "bindings", "go-cache"))
        subprocess.run(["go", "run", ".", "-runs", str(a.runs)] + (["-age"] if a.age else []),
                       cwd=os.path.join(TOP, "bindings", "go", "bench"), env=env_go, check=True)
    if a.node:
        print("\n## Node (bindings/node/bench/bench.js)\n", flush=True)
        subprocess.run(["node", "--expose-gc", os.path.join(TOP, "bindings", "node", "bench",
                                                            "bench.js"), "--runs", str(a.runs)]
                       + (["--age"] if a.age else []), env=env, check=True)


def python_bench(a):
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
    if a.age:
        age_bench(a.runs)


main()
