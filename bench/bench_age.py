#!/usr/bin/python3
"""bench_age.py — age-format encryption and decryption of 1 GiB, `sli` against the `age` tool, in one
run: the same random input file in /dev/shm, output to /dev/null, X25519 recipient, medians of RUNS
of the wall time, and the CPU time (user + system) the run took.

usage: bench/bench_age.py [RUNS]"""
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SLI = os.path.join(TOP, "build", "tools", "sli")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
base = "/dev/shm" if os.path.isdir("/dev/shm") else None
d = tempfile.mkdtemp(prefix="sli-age-bench-", dir=base)


cpu = {}


def timed(args, stdin_path, key):
    with open(stdin_path, "rb") as f:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(args, stdin=f, stdout=subprocess.DEVNULL, check=True)
        dt = time.perf_counter() - t
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.setdefault(key, []).append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        return dt


try:
    subprocess.run([SLI, "keygen", "--type", "x25519", "--format", "age", "-o", d + "/id", "--pub", d + "/id.pub"],
                   check=True, stderr=subprocess.DEVNULL)
    rcpt = open(d + "/id.pub").read().strip()
    with open(d + "/in", "wb") as f:
        for _ in range(1024):
            f.write(os.urandom(1 << 20))
    subprocess.run([SLI, "encrypt", "-r", rcpt, "-o", d + "/s.age", d + "/in"], check=True)
    subprocess.run(["age", "-e", "-r", rcpt, "-o", d + "/a.age", d + "/in"], check=True)
    res = {k: [] for k in ("sli encrypt", "age encrypt", "sli decrypt", "age decrypt")}
    for _ in range(RUNS):  # interleaved
        res["sli encrypt"].append(timed([SLI, "encrypt", "-r", rcpt], d + "/in", "sli encrypt"))
        res["age encrypt"].append(timed(["age", "-e", "-r", rcpt], d + "/in", "age encrypt"))
        res["sli decrypt"].append(timed([SLI, "decrypt", "-i", d + "/id"], d + "/a.age", "sli decrypt"))
        res["age decrypt"].append(timed(["age", "-d", "-i", d + "/id"], d + "/s.age", "age decrypt"))
    print("| 1 GiB, X25519 recipient | seconds (median of %d) | MB/s | CPU seconds (user + sys) |" % RUNS)
    print("|---|---|---|---|")
    for k, v in res.items():
        m = statistics.median(v)
        print("| %s | %.3f | %.0f | %.3f |" % (k, m, (1 << 30) / m / 1e6, statistics.median(cpu[k])))
    e = statistics.median(res["age encrypt"]) / statistics.median(res["sli encrypt"])
    dd = statistics.median(res["age decrypt"]) / statistics.median(res["sli decrypt"])
    print("\nsli vs age: encrypt %.2fx as fast, decrypt %.2fx as fast" % (e, dd))
finally:
    subprocess.run(["rm", "-rf", d])
