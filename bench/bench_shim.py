#!/usr/bin/python3
"""bench_shim.py — redis behind TLS, side by side in one run, with the same redis-benchmark --tls
client: the shim in a plain redis, redis's own TLS (OpenSSL 3), stunnel, hitch and haproxy in front
of a plain redis, and plain redis without TLS (the ceiling). Loopback only, bounded counts.

Measures pipelined GET/s, new connections/s without keep-alive, server RSS per idle TLS connection
(2000 connections), and the cost of the shim on plain fds (loaded, no port configured).

usage: bench/bench_shim.py [RUNS]   (installs stunnel4, hitch, haproxy if missing; needs root)"""
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PRELOAD = os.path.join(TOP, "build", "shim", "libsli-preload.so")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
D = tempfile.mkdtemp(prefix="sli-bench-")
procs = []


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def setup():
    missing = [p for p, b in (("stunnel4", "stunnel"), ("hitch", "hitch"), ("haproxy", "haproxy"))
               if not shutil.which(b) and not os.path.exists("/usr/sbin/" + b)]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                       check=True, env=env, stdout=subprocess.DEVNULL)
    for svc in ("haproxy", "hitch", "stunnel4"):
        subprocess.run(["systemctl", "stop", svc], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", D + "/key.pem", "-out", D + "/cert.pem", "-subj", "/CN=localhost",
       "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "2")
    with open(D + "/both.pem", "w") as f:
        f.write(open(D + "/cert.pem").read() + open(D + "/key.pem").read())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(name, args, env=None, port=None):
    e = dict(os.environ)
    e.update(env or {})
    log = open(os.path.join(D, name + ".log"), "w")
    p = subprocess.Popen(args, env=e, stdout=log, stderr=log, start_new_session=True)
    procs.append(p)
    if port:
        end = time.time() + 10
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
    return p


def redis(port, extra=(), env=None, name="redis"):
    return start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--protected-mode", "no"] + list(extra), env, port)


def servers(plain_port):
    """Starts every TLS front; returns {label: (port, server pid for RSS)}."""
    out = {}
    p = free_port()
    pr = redis(p, env={"LD_PRELOAD": PRELOAD, "SLI_SERVER_PORTS": str(p),
                       "SLI_CERT": D + "/cert.pem", "SLI_KEY": D + "/key.pem"}, name="shim")
    out["sli shim in redis"] = (p, pr.pid)
    p = free_port()
    nr = start("native", ["redis-server", "--port", "0", "--tls-port", str(p), "--bind", "127.0.0.1",
                          "--tls-cert-file", D + "/cert.pem", "--tls-key-file", D + "/key.pem",
                          "--tls-ca-cert-file", D + "/cert.pem", "--tls-auth-clients", "no",
                          "--save", "", "--appendonly", "no"], port=p)
    out["redis native TLS"] = (p, nr.pid)
    p = free_port()
    with open(D + "/stunnel.conf", "w") as f:
        f.write("foreground = yes\npid =\n[redis]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                "cert = %s/cert.pem\nkey = %s/key.pem\n" % (p, plain_port, D, D))
    st = start("stunnel", ["stunnel", D + "/stunnel.conf"], port=p)
    out["stunnel"] = (p, st.pid)
    p = free_port()
    hi = start("hitch", ["hitch", "--frontend=[127.0.0.1]:%d" % p, "--backend=[127.0.0.1]:%d" % plain_port,
                         "--workers=1", "--user=nobody", D + "/both.pem"], port=p)
    out["hitch"] = (p, hi.pid)
    p = free_port()
    with open(D + "/haproxy.cfg", "w") as f:
        f.write("global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
                "  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:%d ssl crt %s/both.pem\n"
                "  default_backend be\nbackend be\n  server r 127.0.0.1:%d\n" % (p, D, plain_port))
    ha = start("haproxy", ["haproxy", "-f", D + "/haproxy.cfg", "-db"], port=p)
    out["haproxy"] = (p, ha.pid)
    return out


def bench(port, tls, args):
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q"] + args
    if tls:
        cmd[1:1] = ["--tls", "--cacert", D + "/cert.pem"]
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=60).stdout
    except subprocess.TimeoutExpired:
        print("  (a run against port %d stalled for 60 s and counts as 0)" % port, file=sys.stderr)
        return 0.0
    m = re.findall(r"([\d.]+) requests per second", out.replace("\r", "\n"))
    if not m:
        raise RuntimeError("redis-benchmark: %s" % out[-300:])
    return float(m[-1])


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def rss_per_conn(port, pid, n=2000):
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 200, n + 200))
    ctx = ssl.create_default_context(cafile=D + "/cert.pem")
    before = rss_kib(pid)
    conns = []
    for _ in range(n):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
        s.sendall(b"PING\r\n")
        s.recv(64)
        conns.append(s)
    time.sleep(0.5)
    after = rss_kib(pid)
    for s in conns:
        s.close()
    return (after - before) / n


def median(f, runs=RUNS):
    return statistics.median(f() for _ in range(runs))


def main():
    setup()
    plain = free_port()
    redis(plain, name="plain")
    fronts = servers(plain)
    labels = list(fronts)
    get_args = ["-t", "get", "-P", "16", "-c", "10", "-n", "300000"]
    conn_args = ["-t", "ping_inline", "-c", "20", "-n", "6000", "-k", "0"]
    rows = {}
    for label in labels:
        rows[label] = {}
    rows["plain redis (no TLS)"] = {}
    res = {l: [] for l in rows}
    cres = {l: [] for l in rows}
    for _ in range(RUNS):  # interleaved, so drift hits every server alike
        for label in labels:
            res[label].append(bench(fronts[label][0], True, get_args))
            cres[label].append(bench(fronts[label][0], True, conn_args))
        res["plain redis (no TLS)"].append(bench(plain, False, get_args))
        cres["plain redis (no TLS)"].append(bench(plain, False, conn_args))
    rss = {}
    for label in ("sli shim in redis", "redis native TLS"):
        rss[label] = rss_per_conn(fronts[label][0], fronts[label][1])
    # the shim on plain fds: loaded, no port configured, vs not loaded
    inert_port = free_port()
    redis(inert_port, env={"LD_PRELOAD": PRELOAD}, name="inert")
    inert, none = [], []
    for _ in range(RUNS):
        inert.append(bench(inert_port, False, get_args))
        none.append(bench(plain, False, get_args))

    native = statistics.median(res["redis native TLS"])
    native_c = statistics.median(cres["redis native TLS"])
    print("| server (same redis-benchmark --tls client) | pipelined GET/s (-P 16 -c 10) | vs redis native | new connections/s (-k 0) | vs redis native |")
    print("|---|---|---|---|---|")
    for label in list(rows):
        g, c = statistics.median(res[label]), statistics.median(cres[label])
        print("| %s | %.0f | %.2fx | %.0f | %.2fx |" % (label, g, g / native, c, c / native_c))
    print()
    print("| server | RSS per idle TLS connection (2000 connections) |")
    print("|---|---|")
    for label, v in rss.items():
        print("| %s | %.1f KiB |" % (label, v))
    print()
    i, n = statistics.median(inert), statistics.median(none)
    print("plain fds: redis with the shim loaded and no port configured %.0f GET/s vs without the "
          "shim %.0f GET/s: %.3fx" % (i, n, i / n))
    print("(medians of %d runs)" % RUNS)


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
