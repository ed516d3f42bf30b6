#!/usr/bin/python3
"""Certificates that rotate under a preloaded host, never restarted: a plain redis-server and a
plain `python3 -m http.server`, preloaded with certificate A. The files are replaced by B — by an
atomic rename, as certbot and cert-manager do, and by an in-place write — and within a bound new
connections get B while a connection opened before keeps working; a broken B (a truncated key)
leaves A in place with the reason in the log; a steady `redis-benchmark --tls` load across
several reloads sees no failed request; SLI_RELOAD_SIGNAL=USR2 reloads on the signal; an unknown
signal name is refused (fail closed); a host that clears its environment before it listens keeps the
settings it started with."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

from harness import CA, DAY, NOW, Checks, Dir, Proc, expect, free_port, run
from shimlib import shim_env

d = Dir()
ca = CA(d)
A_CERT, A_KEY = ca.issue("first")
B_CERT, B_KEY = ca.issue("second")
CERT, KEY = d("served.crt"), d("served.key")  # what the host is given


def put(src_cert, src_key, how="rename"):
    """Installs a certificate and key as the host's files: by rename (key first, then the
    certificate, as a tool replacing both would) or by rewriting them in place."""
    for src, dst in ((src_key, KEY), (src_cert, CERT)):
        data = open(src, "rb").read()
        if how == "rename":
            with open(dst + ".new", "wb") as f:
                f.write(data)
            os.rename(dst + ".new", dst)
        else:
            with open(dst, "r+b" if os.path.exists(dst) else "wb") as f:
                f.seek(0)
                f.write(data)
                f.truncate()


def ctx():
    c = ssl.create_default_context(cafile=ca.path)
    c.check_hostname = False
    return c


def served_cn(port):
    """The CN of the certificate a new connection gets."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx().wrap_socket(s, server_hostname="localhost") as t:
            return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]


def wait_for_cn(port, want, bound=3.0):
    t0 = time.time()
    seen = None
    while time.time() - t0 < bound:
        try:
            seen = served_cn(port)
        except (OSError, ssl.SSLError) as e:
            seen = "error %s" % e
        if seen == want:
            return time.time() - t0
        time.sleep(0.05)
    raise AssertionError("new connections still get %r %.1f s after the change, not %r"
                         % (seen, bound, want))


class Redis:
    def __init__(self, name, **extra):
        put(A_CERT, A_KEY)
        self.port = free_port()
        env = shim_env(SLI_SERVER_PORTS=self.port, SLI_CERT=CERT, SLI_KEY=KEY, SLI_LOG="info", **extra)
        self.p = Proc(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--protected-mode", "no", "--logfile", d(name + ".redis.log")],
                      d, name, env=env)
        t0 = time.time()
        while time.time() - t0 < 10:
            try:
                served_cn(self.port)
                return
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        raise AssertionError("redis did not come up: " + self.p.stderr())

    def stop(self):
        self.p.stop()


def ping(t):
    t.sendall(b"PING\r\n")
    return t.recv(64)


checks = Checks()


@checks.case
def redis_rename_and_in_place():
    r = Redis("redis-rotate")
    try:
        expect(served_cn(r.port) == "first", "A at start")
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            old = ctx().wrap_socket(s, server_hostname="localhost")
            expect(ping(old) == b"+PONG\r\n", "a connection before")
            put(B_CERT, B_KEY, "rename")
            took = wait_for_cn(r.port, "second")
            expect(ping(old) == b"+PONG\r\n", "the connection made before goes on after the reload")
            put(A_CERT, A_KEY, "in place")
            took2 = wait_for_cn(r.port, "first")
            expect(ping(old) == b"+PONG\r\n", "and after the second")
            old.close()
        print("     new connections got the new certificate %.2f s after a rename, %.2f s after an "
              "in-place write" % (took, took2))
    finally:
        r.stop()


@checks.case
def broken_files_keep_the_old_certificate():
    r = Redis("redis-broken")
    try:
        key = open(B_KEY).read()
        with open(KEY + ".new", "w") as f:
            f.write(key[:len(key) // 2])  # a truncated key
        os.rename(KEY + ".new", KEY)
        shutil.copy(B_CERT, CERT + ".new")
        os.rename(CERT + ".new", CERT)
        time.sleep(0.6)
        for _ in range(5):
            expect(served_cn(r.port) == "first", "A stays while the files are broken")
        r.p.wait_for(r"SLI_KEY: SLI_E_PEM_TRUNCATED: key file [^\n]*served\.key[^\n]*\n[^\n]*"
                     r"reload: the server settings cannot be used; the previous ones stay",
                     where="log", timeout=5)
        put(B_CERT, B_KEY, "rename")  # repaired: taken at the next change
        wait_for_cn(r.port, "second")
    finally:
        r.stop()


@checks.case
def steady_load_across_reloads():
    r = Redis("redis-load")
    stop = threading.Event()
    reloads = [0]

    def rotate():
        pairs = [(B_CERT, B_KEY), (A_CERT, A_KEY)]
        while not stop.wait(0.3):
            put(*pairs[reloads[0] % 2])
            reloads[0] += 1
    t = threading.Thread(target=rotate)
    t.start()
    try:
        rc, out, err = run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(r.port), "--tls",
                            "--cacert", ca.path, "-n", "30000", "-c", "20", "-t", "ping,set,get",
                            "-q"], timeout=120)
    finally:
        stop.set()
        t.join()
        r.stop()
    expect(rc == 0 and "requests per second" in out and "rror" not in out + err,
           "redis-benchmark: rc %d %s %s" % (rc, out[-400:], err[-400:]))
    expect(reloads[0] >= 3, "reloads during the load: %d" % reloads[0])
    import re
    rates = re.findall(r"(\w+): ([\d.]+) requests per second", out)
    print("     %d reloads during the load; %s" % (reloads[0], ", ".join("%s %s/s" % r for r in rates)))


@checks.case
def http_server_and_the_reload_signal():
    put(A_CERT, A_KEY)
    port = free_port()
    env = shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY, SLI_LOG="info",
                   SLI_RELOAD_SIGNAL="USR2")
    p = Proc(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port),
              "--directory", d("")], d, "http", env=env)
    try:
        t0 = time.time()
        while time.time() - t0 < 10:
            try:
                expect(served_cn(port) == "first", "A at start")
                break
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        put(B_CERT, B_KEY, "in place")
        wait_for_cn(port, "second")
        os.kill(p.p.pid, signal.SIGUSR2)  # a reload asked for, files unchanged
        time.sleep(0.1)
        served_cn(port)
        p.wait_for(r"reloaded the certificates and settings \(signal\)", where="log")
        expect(p.p.poll() is None, "the host lives on after the signal")
    finally:
        p.stop()
    rc, out, err = run(["/usr/bin/python3", "-c", "print('ran')"],
                       env=shim_env(SLI_SERVER_PORTS=free_port(), SLI_RELOAD_SIGNAL="HUP"))
    expect("SLI_RELOAD_SIGNAL: 'HUP'" in err, "the host's SIGHUP is never taken: %r" % err)


@checks.case
def host_that_clears_its_environment():
    """A host that empties its environment before it listens (as nginx does for its workers): the
    settings it started with still make the context and its reloads."""
    put(A_CERT, A_KEY)
    port = free_port()
    script = ("import os, http.server, socketserver\n"
              "os.environ.clear()\n"
              "http.server.ThreadingHTTPServer(('127.0.0.1', %d), http.server.SimpleHTTPRequestHandler)"
              ".serve_forever()\n" % port)
    p = Proc(["/usr/bin/python3", "-c", script], d, "cleared",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY, SLI_LOG="info"))
    try:
        t0 = time.time()
        while time.time() - t0 < 10:
            try:
                expect(served_cn(port) == "first", "A, from the settings of the start")
                break
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        put(B_CERT, B_KEY)
        wait_for_cn(port, "second")
        expect("] error:" not in p.stderr(), "no error logged: " + p.stderr())
    finally:
        p.stop()


@checks.case
def expiring_certificate_said():
    """A served certificate ending within 30 days is a warning in the host's log, within 7 an
    error — when the context is made, and after a reload to another one."""
    c20, k20 = ca.issue("twenty", not_after=NOW + 20 * DAY)
    c5, k5 = ca.issue("five", not_after=NOW + 5 * DAY)
    put(c20, k20)
    port = free_port()
    p = Proc(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port),
              "--directory", d("")], d, "expiring",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY))
    try:
        p.wait_for(r"warn: the served certificate '[^']*served\.crt' expires in 1[89] days", where="log")
        t0 = time.time()
        while time.time() - t0 < 10:
            try:
                served_cn(port)
                break
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        put(c5, k5)
        wait_for_cn(port, "five")
        p.wait_for(r"error: the served certificate '[^']*' expires in [45] day\(s\): renew it now",
                   where="log")
    finally:
        p.stop()


sys.exit(checks.finish(d))
