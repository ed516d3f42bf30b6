#!/usr/bin/python3
"""bench_shim.py — real servers behind TLS, side by side in one run, each against the same client.

redis: redis-benchmark --tls against redis with the shim, redis's own TLS (OpenSSL 3), stunnel,
       hitch, haproxy and `sli proxy` in front of a plain redis, and plain redis (the ceiling): pipelined GET/s,
       new connections/s (a full handshake each), RSS per idle TLS connection, the shim's cost on
       plain fds (loaded, no port configured).
nginx: h2load --h1 (16 connections, keep-alive) against nginx (1 worker, sendfile on) with the shim
       and nginx's own TLS (OpenSSL 3), a 1 KiB and a 1 MiB file: requests/s.
node:  h2load --h1 against node's plain `http` server with the shim, node's own `https` server
       (OpenSSL), and the four proxies in front of a plain node, a 1 KiB response: requests/s.

With --landed PATH (a libsli-preload.so built from an earlier commit), that shim is measured too, in
the same run, so "no figure below the landed shim's" is a same-run comparison.
Every server is measured in each round, rounds interleaved so drift hits all alike; the report gives
the median of the rounds and their spread (min–max). Loopback only, bounded counts.

usage: bench/bench_shim.py [--runs N] [--landed PATH] [redis] [nginx] [node]
(as root: installs stunnel4, hitch, haproxy and nghttp2-client if missing — services they bring are
not started: a policy-rc.d for the install, and nothing the machine runs is stopped)"""
import argparse
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
SLI = os.path.join(TOP, "build", "tools", "sli")
D = tempfile.mkdtemp(prefix="sli-bench-")
procs = []
ARGS = None


def sh(*args, **kw):
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def setup():
    need = (("stunnel4", "stunnel"), ("hitch", "hitch"), ("haproxy", "haproxy"),
            ("nghttp2-client", "h2load"))
    missing = [p for p, b in need if not shutil.which(b) and not os.path.exists("/usr/sbin/" + b)]
    if missing:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        policy = "/usr/sbin/policy-rc.d"
        own = not os.path.exists(policy)
        if own:  # the packages' services are not started by this install
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
        try:
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                           check=True, env=env, stdout=subprocess.DEVNULL)
        finally:
            if own:
                os.unlink(policy)
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


def shims():
    """(label, preload path) of each shim under test."""
    out = [("sli shim", PRELOAD)]
    if ARGS.landed:
        out.append(("landed shim", ARGS.landed))
    return out


def shim_env(preload, port):
    return {"LD_PRELOAD": preload, "SLI_SERVER_PORTS": str(port), "SLI_CERT": D + "/cert.pem",
            "SLI_KEY": D + "/key.pem", "SLI_STATE_DIR": D + "/state"}


def stats(xs):
    return statistics.median(xs), min(xs), max(xs)


def table(title, unit, anchor, results):
    """results: {label: [per-round values]}; ratios against the anchor's median."""
    a = statistics.median(results[anchor])
    print("\n%s\n" % title)
    print("| server | %s (median) | spread (min–max) | vs %s |" % (unit, anchor))
    print("|---|---|---|---|")
    for label, xs in results.items():
        m, lo, hi = stats(xs)
        print("| %s | %.0f | %.0f–%.0f | %.2f× |" % (label, m, lo, hi, m / a))


# ---- redis ----

def redis(port, extra=(), env=None, name="redis"):
    return start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--protected-mode", "no"] + list(extra), env, port)


def redis_fronts(plain_port):
    out = {}
    for label, so in shims():
        p = free_port()
        pr = redis(p, env=shim_env(so, p), name=label.replace(" ", "-"))
        out[label + " in redis"] = (p, pr.pid)
    p = free_port()  # the cost of counting (SLI_METRICS: shared counters, one thread serving them)
    pr = redis(p, env=dict(shim_env(PRELOAD, p), SLI_METRICS="127.0.0.1:%d" % free_port()),
               name="sli-shim-metrics")
    out["sli shim in redis, SLI_METRICS on"] = (p, pr.pid)
    p = free_port()
    nr = start("native", ["redis-server", "--port", "0", "--tls-port", str(p), "--bind", "127.0.0.1",
                          "--tls-cert-file", D + "/cert.pem", "--tls-key-file", D + "/key.pem",
                          "--tls-ca-cert-file", D + "/cert.pem", "--tls-auth-clients", "no",
                          "--save", "", "--appendonly", "no"], port=p)
    out["redis native TLS"] = (p, nr.pid)
    out.update(proxies(plain_port, "redis"))
    return out


def proxies(plain_port, tag):
    """TLS proxies in front of a plain server on plain_port: stunnel, hitch, haproxy, sli proxy."""
    out = {}
    p = free_port()
    with open(D + "/stunnel-%s.conf" % tag, "w") as f:
        f.write("foreground = yes\npid =\n[%s]\naccept = 127.0.0.1:%d\nconnect = 127.0.0.1:%d\n"
                "cert = %s/cert.pem\nkey = %s/key.pem\n" % (tag, p, plain_port, D, D))
    st = start("stunnel-" + tag, ["stunnel", D + "/stunnel-%s.conf" % tag], port=p)
    out["stunnel"] = (p, st.pid)
    p = free_port()
    hi = start("hitch-" + tag, ["hitch", "--frontend=[127.0.0.1]:%d" % p,
                                "--backend=[127.0.0.1]:%d" % plain_port, "--workers=%d" % os.cpu_count(),
                                "--user=nobody", D + "/both.pem"], port=p)
    out["hitch"] = (p, hi.pid)
    p = free_port()
    with open(D + "/haproxy-%s.cfg" % tag, "w") as f:
        f.write("global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n"
                "  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:%d ssl crt %s/both.pem\n"
                "  default_backend be\nbackend be\n  server r 127.0.0.1:%d\n" % (p, D, plain_port))
    ha = start("haproxy-" + tag, ["haproxy", "-f", D + "/haproxy-%s.cfg" % tag, "-db"], port=p)
    out["haproxy"] = (p, ha.pid)
    p = free_port()
    sp = start("sli-proxy-" + tag, [SLI, "proxy", "--listen", "127.0.0.1:%d" % p, "--cert",
                                     D + "/cert.pem", "--key", D + "/key.pem",
                                     "--backend", "127.0.0.1:%d" % plain_port], port=p)
    out["sli proxy"] = (p, sp.pid)
    return out


def redis_bench(port, tls, args):
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


def run_redis():
    plain = free_port()
    redis(plain, name="plain")
    fronts = redis_fronts(plain)
    get_args = ["-t", "get", "-P", "16", "-c", "10", "-n", "300000"]
    conn_args = ["-t", "ping_inline", "-c", "20", "-n", "6000", "-k", "0"]
    res = {l: [] for l in list(fronts) + ["plain redis (no TLS)"]}
    cres = {l: [] for l in res}
    for _ in range(ARGS.runs):
        for label, (port, _) in fronts.items():
            res[label].append(redis_bench(port, True, get_args))
            cres[label].append(redis_bench(port, True, conn_args))
        res["plain redis (no TLS)"].append(redis_bench(plain, False, get_args))
        cres["plain redis (no TLS)"].append(redis_bench(plain, False, conn_args))
    table("redis: pipelined GET/s (redis-benchmark --tls -t get -P 16 -c 10 -n 300000)", "GET/s",
          "redis native TLS", res)
    table("redis: new connections/s (-t ping_inline -c 20 -n 6000 -k 0)", "connections/s",
          "redis native TLS", cres)
    print("\n| server | RSS per idle TLS connection (2000 connections) |\n|---|---|")
    for label in [l for l in fronts if "shim" in l] + ["redis native TLS"]:
        print("| %s | %.1f KiB |" % (label, rss_per_conn(fronts[label][0], fronts[label][1])))
    inert_port = free_port()
    redis(inert_port, env={"LD_PRELOAD": PRELOAD}, name="inert")
    inert, none = [], []
    for _ in range(ARGS.runs):
        inert.append(redis_bench(inert_port, False, get_args))
        none.append(redis_bench(plain, False, get_args))
    (i, ilo, ihi), (n, nlo, nhi) = stats(inert), stats(none)
    print("\nplain fds: redis with the shim loaded and no port configured %.0f GET/s (%.0f–%.0f) vs "
          "without it %.0f GET/s (%.0f–%.0f): %.3f×" % (i, ilo, ihi, n, nlo, nhi, i / n))


# ---- h2load (nginx, node) ----

def h2load(port, path, n, conns=16):
    cmd = ["h2load", "--h1", "-c", str(conns), "-n", str(n), "https://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=120).stdout
    m = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed", out)
    if not m or not ok or int(ok.group(2)):
        raise RuntimeError("h2load: %s" % out[-600:])
    return float(m.group(1))


def nginx_conf(name, port, root, tls):
    tmp = os.path.join(D, name)
    os.makedirs(tmp, exist_ok=True)
    listen = "127.0.0.1:%d%s" % (port, " ssl" if tls else "")
    ssl_conf = ("ssl_certificate %s/cert.pem; ssl_certificate_key %s/key.pem; "
                "ssl_protocols TLSv1.2 TLSv1.3;" % (D, D)) if tls else ""
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off; master_process on; worker_processes 1; pid %(tmp)s/nginx.pid;
error_log %(tmp)s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 100000;
  client_body_temp_path %(tmp)s/body; proxy_temp_path %(tmp)s/proxy;
  fastcgi_temp_path %(tmp)s/fcgi; uwsgi_temp_path %(tmp)s/uwsgi; scgi_temp_path %(tmp)s/scgi;
  server { listen %(listen)s; root %(root)s; %(ssl)s }
}
""" % {"tmp": tmp, "listen": listen, "root": root, "ssl": ssl_conf})
    return ["nginx", "-p", tmp, "-e", tmp + "/error.log", "-c", conf]


def run_nginx():
    root = os.path.join(D, "www")
    os.makedirs(root, exist_ok=True)
    os.chmod(D, 0o755)  # nginx's worker runs as www-data
    os.chmod(root, 0o755)
    with open(os.path.join(root, "1k"), "wb") as f:
        f.write(os.urandom(1024))
    with open(os.path.join(root, "1m"), "wb") as f:
        f.write(os.urandom(1 << 20))
    for name in ("1k", "1m"):
        os.chmod(os.path.join(root, name), 0o644)
    servers = {}
    for label, so in shims():
        p = free_port()
        start("nginx-" + label, nginx_conf(label.replace(" ", "-"), p, root, False),
              env=shim_env(so, p), port=p)
        servers[label + " in nginx"] = p
    p = free_port()
    start("nginx-native", nginx_conf("native", p, root, True), port=p)
    servers["nginx native TLS"] = p
    for path, n in (("/1k", 200000), ("/1m", 3000)):
        res = {l: [] for l in servers}
        for _ in range(ARGS.runs):
            for label, port in servers.items():
                res[label].append(h2load(port, path, n))
        table("nginx (1 worker, sendfile): h2load --h1 -c 16 -n %d, %s file" % (n, path[1:].upper()),
              "requests/s", "nginx native TLS", res)


NODE_APP = r"""
const body = Buffer.alloc(1024, 'x');
const handler = (req, res) => { res.setHeader('Content-Length', body.length); res.end(body); };
const [kind, port, cert, key] = process.argv.slice(2);
const fs = require('fs');
const srv = kind === 'https'
  ? require('https').createServer({cert: fs.readFileSync(cert), key: fs.readFileSync(key)}, handler)
  : require('http').createServer(handler);
srv.keepAliveTimeout = 60000;
srv.listen(Number(port), '127.0.0.1');
"""


def run_node():
    app = os.path.join(D, "app.js")
    with open(app, "w") as f:
        f.write(NODE_APP)
    servers = {}
    for label, so in shims():
        p = free_port()
        start("node-" + label, ["node", app, "http", str(p)], env=shim_env(so, p), port=p)
        servers[label + " in node http"] = p
    p = free_port()
    start("node-https", ["node", app, "https", str(p), D + "/cert.pem", D + "/key.pem"], port=p)
    servers["node https (OpenSSL)"] = p
    plain = free_port()
    start("node-plain", ["node", app, "http", str(plain)], port=plain)
    for label, (port, _) in proxies(plain, "node").items():
        servers[label + " in front of node http"] = port
    res = {l: [] for l in servers}
    for _ in range(ARGS.runs):
        for label, port in servers.items():
            try:
                res[label].append(h2load(port, "/", 60000))
            except RuntimeError as e:  # seen once in a long run (haproxy's front): said, retried
                print("  (%s: a run failed, retried: %s)" % (label, str(e)[:80]), file=sys.stderr)
                time.sleep(1)
                res[label].append(h2load(port, "/", 60000))
    table("node: h2load --h1 -c 16 -n 60000, 1 KiB response", "requests/s", "node https (OpenSSL)",
          res)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--landed", help="another libsli-preload.so measured in the same run")
    ap.add_argument("parts", nargs="*", default=["redis", "nginx", "node"])
    ARGS = ap.parse_args()
    setup()
    print("bench_shim.py %s: medians of %d rounds, servers interleaved" % (" ".join(ARGS.parts),
                                                                            ARGS.runs))
    for part in ARGS.parts:
        {"redis": run_redis, "nginx": run_nginx, "node": run_node}[part]()
        sys.stdout.flush()


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
