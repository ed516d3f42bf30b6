#!/usr/bin/python3
"""bench_proxy.py — what each TLS proxy costs: the CPU time (user + system, every process and
thread of the proxy) per pipelined GET relayed to a plain redis, for stunnel, hitch, haproxy and
`sli proxy`, each driven by the same `redis-benchmark --tls -t get -P 16 -c 10`. On a machine
where the client, the proxy and redis share the cores, throughput mostly says how the cores were
shared; CPU per request says what the proxy itself spends. Rounds interleaved; the report gives
the median and the spread (min–max). Loopback only, bounded counts.

usage: bench/bench_proxy.py [--runs N] [--gets N]
(stunnel4, hitch and haproxy must be installed: bench/bench_shim.py installs them; haproxy comes
with ./bootstrap)"""
import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SLI = os.path.join(TOP, "build", "tools", "sli")
D = tempfile.mkdtemp(prefix="sli-bench-proxy-")
procs = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(args, port):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=D,
                         start_new_session=True)
    procs.append(p)
    end = time.time() + 10
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (args[0], port))


def cpu_ticks(pgid):
    """user + system clock ticks of every process in the group (threads included)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            st = open("/proc/%s/stat" % pid).read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        if int(f[2]) == pgid:
            total += int(f[11]) + int(f[12])
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gets", type=int, default=1000000)
    a = ap.parse_args()
    cert, key, both = D + "/cert.pem", D + "/key.pem", D + "/both.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-days", "2",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, stderr=subprocess.DEVNULL)
    with open(both, "w") as f:
        f.write(open(cert).read() + open(key).read())
    plain = free_port()
    start(["redis-server", "--port", str(plain), "--bind", "127.0.0.1", "--save", "",
           "--appendonly", "no"], plain)
    ports = {k: free_port() for k in ("stunnel", "hitch", "haproxy", "sli proxy")}
    with open(D + "/stunnel.conf", "w") as f:
        f.write("foreground = yes\npid =\n[r]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                "cert = %s\nkey = %s\n" % (ports["stunnel"], plain, cert, key))
    with open(D + "/haproxy.cfg", "w") as f:
        f.write("global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n"
                "  timeout client 60s\n  timeout server 60s\nfrontend fe\n"
                "  bind 127.0.0.1:%d ssl crt %s\n  default_backend be\nbackend be\n"
                "  server r 127.0.0.1:%d\n" % (ports["haproxy"], both, plain))
    cores = os.cpu_count()
    args = {
        "stunnel": ["stunnel", D + "/stunnel.conf"],
        "hitch": ["hitch", "--frontend=[127.0.0.1]:%d" % ports["hitch"],
                  "--backend=[127.0.0.1]:%d" % plain, "--workers=%d" % cores, "--user=nobody", both],
        "haproxy": ["haproxy", "-f", D + "/haproxy.cfg", "-db"],
        "sli proxy": [SLI, "proxy", "--listen", "127.0.0.1:%d" % ports["sli proxy"], "--cert", cert,
                      "--key", key, "--backend", "127.0.0.1:%d" % plain],
    }
    group = {k: start(args[k], ports[k]).pid for k in args}
    cpu = {k: [] for k in args}
    rate = {k: [] for k in args}
    tick = os.sysconf("SC_CLK_TCK")
    for _ in range(a.runs):
        for k in args:
            t0, w0 = cpu_ticks(group[k]), time.time()
            subprocess.run(["redis-benchmark", "--tls", "--cacert", cert, "-h", "127.0.0.1", "-p",
                            str(ports[k]), "-q", "-t", "get", "-P", "16", "-c", "10", "-n",
                            str(a.gets)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=True, timeout=300)
            wall = time.time() - w0
            cpu[k].append((cpu_ticks(group[k]) - t0) * 1e6 / tick / a.gets)
            rate[k].append(a.gets / wall)
    base = statistics.median(cpu["haproxy"])
    print("bench_proxy.py: %d rounds of %d pipelined GETs (-P 16 -c 10), proxies interleaved\n"
          % (a.runs, a.gets))
    print("| proxy | CPU µs per GET (median) | spread (min–max) | CPU vs haproxy | GET/s (median) |")
    print("|---|---|---|---|---|")
    for k in args:
        m = statistics.median(cpu[k])
        print("| %s | %.2f | %.2f–%.2f | %.2f× | %.0f |" % (k, m, min(cpu[k]), max(cpu[k]), m / base,
                                                      statistics.median(rate[k])))


try:
    main()
finally:
    for p in procs:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for p in procs:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
    shutil.rmtree(D, ignore_errors=True)
