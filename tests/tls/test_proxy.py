#!/usr/bin/python3
"""`sli proxy` (README "sli proxy"): several loops on one port (SO_REUSEPORT), every connection
answered and a drain on SIGTERM that finishes a live transfer; routes chosen by the client's SNI
name (exact, "*.domain", the default --backend, and a refusal when nothing matches); a --config
file of the same flags, with the command line after it and its mistakes named by line; --client
(plain in, verified TLS out, a wrong name refused as a reset, half-close passed on); haproxy as a
PROXY-protocol backend seeing the TLS client's own address (v1 and v2)."""
import os
import re
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time

from harness import CA, SLI, Checks, Dir, Proc, expect, free_port, recv_to_end, run

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost", sans=("localhost", "a.test", "x.b.test", "b.test", "*.flood.test",
                                        "127.0.0.1"))
checks = Checks()


class Backend:
    """A plain TCP server on loopback; each connection gets `answer(data)` for every chunk, or the
    same bytes back (an echo); its FIN after the client's."""

    def __init__(self, tag=None):
        outer = self

        class H(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    while True:
                        b = self.request.recv(65536)
                        if not b:
                            break
                        self.request.sendall(tag + b":" + b if tag else b)
                    self.request.shutdown(socket.SHUT_WR)
                except ConnectionResetError:  # a client that left without close_notify
                    pass

        class S(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = S(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def proxy(name, *args, env=None):
    p = Proc([SLI, "proxy", "--listen", "127.0.0.1:0"] + list(args), d, name, env=env)
    return p, int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))


def tls_ask(port, data, name="localhost", timeout=10):
    """One TLS request (SNI `name`, None for none) and everything answered until the end."""
    ctx = ssl.create_default_context(cafile=ca.path)
    if name is None:
        ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=name) as t:
            t.sendall(data)
            got = b""
            while not got.endswith(data):
                b = t.recv(65536)
                if not b:
                    break
                got += b
            return got


def listeners(port):
    """How many sockets listen on the port (the kernel's /proc/net/tcp: state 0A is LISTEN)."""
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


@checks.case
def loops_share_the_port_and_drain():
    be = Backend()
    p, port = proxy("loops", "--workers", "2", "--cert", CERT, "--key", KEY,
                    "--backend", "127.0.0.1:%d" % be.port)
    try:
        expect(listeners(port) == 2, "two listening sockets on the port: %d" % listeners(port))
        answers, errors = [], []

        def one(i):
            try:
                answers.append(tls_ask(port, b"request %d\n" % i))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        expect(not errors and len(answers) == 40, "40 concurrent clients answered: %s" % errors[:3])
        # a live transfer when SIGTERM comes: it finishes, then the proxy exits 0
        ctx = ssl.create_default_context(cafile=ca.path)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                            server_hostname="localhost")
        s.sendall(b"before\n")
        expect(s.recv(100) == b"before\n", "the live connection works")
        p.p.send_signal(signal.SIGTERM)
        p.wait_for("stopping: 1 live connection", where="log")
        for _ in range(4):  # every loop's socket refuses now, whichever the kernel would pick
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                refused = False
            except OSError:
                refused = True
            expect(refused, "new connections refused while draining")
        s.sendall(b"after the signal\n")
        expect(s.recv(100) == b"after the signal\n", "the live connection goes on during the drain")
        s.unwrap()  # close_notify: the backend gets its FIN, answers with its own, and we are done
        s.close()
        expect(p.p.wait(10) == 0, "exit 0 once drained")
    finally:
        p.stop()
        be.close()


@checks.case
def routes_by_sni():
    a, b, dflt = Backend(b"A"), Backend(b"B"), Backend(b"D")
    p, port = proxy("routes", "--workers", "1", "--cert", CERT, "--key", KEY,
                    "--route", "a.test=127.0.0.1:%d" % a.port,
                    "--route", "*.b.test=127.0.0.1:%d" % b.port,
                    "--backend", "127.0.0.1:%d" % dflt.port)
    try:
        expect(tls_ask(port, b"hi", "a.test") == b"A:hi", "a.test to A")
        expect(tls_ask(port, b"hi", "A.TEST") == b"A:hi", "names compare without case")
        expect(tls_ask(port, b"hi", "x.b.test") == b"B:hi", "x.b.test to B (*.b.test)")
        expect(tls_ask(port, b"hi", "b.test") == b"D:hi", "b.test itself is not *.b.test: default")
        expect(tls_ask(port, b"hi", "localhost") == b"D:hi", "another name: the default")
        expect(tls_ask(port, b"hi", None) == b"D:hi", "no SNI: the default")
    finally:
        p.stop()
    q, port = proxy("routes-only", "--workers", "1", "--cert", CERT, "--key", KEY,
                    "--route", "a.test=127.0.0.1:%d" % a.port)
    try:
        expect(tls_ask(port, b"hi", "a.test") == b"A:hi", "a.test to A")
        try:
            got = tls_ask(port, b"hi", "localhost")
        except (ConnectionResetError, ssl.SSLError) as e:
            got = repr(e)
        expect(got != b"hi" and b"hi" not in (got if isinstance(got, bytes) else b""),
               "no route, no default: refused (%r)" % (got,))
        q.wait_for(r"no route for the name 'localhost' and no default --backend", where="log")
    finally:
        q.stop()
    # sli serve --backend is the same command: its routes too, one loop
    s = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--cert", CERT, "--key", KEY,
              "--route", "a.test=127.0.0.1:%d" % a.port, "--backend", "127.0.0.1:%d" % dflt.port],
             d, "serve-routes")
    try:
        port = int(s.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        expect(listeners(port) == 1, "sli serve: one loop unless --workers")
        expect(tls_ask(port, b"hi", "a.test") == b"A:hi", "sli serve routes a.test to A")
        expect(tls_ask(port, b"hi", "localhost") == b"D:hi", "and the rest to its --backend")
    finally:
        s.stop()
        for x in (a, b, dflt):
            x.close()


@checks.case
def config_file():
    a, dflt = Backend(b"A"), Backend(b"D")
    conf = d("proxy.conf")
    with open(conf, "w") as f:
        f.write("# sli proxy, as an operator writes it\n"
                "listen 127.0.0.1:0\n"
                "workers = 2\n"
                "cert %s\nkey %s\n"
                "  route a.test=127.0.0.1:%d   \n\n"
                "drain-timeout 2000\n" % (CERT, KEY, a.port))
    p = Proc([SLI, "proxy", "--config", conf, "--backend", "127.0.0.1:%d" % dflt.port], d, "conf")
    try:
        port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        expect(listeners(port) == 2, "workers from the file")
        expect(tls_ask(port, b"hi", "a.test") == b"A:hi", "the file's route")
        expect(tls_ask(port, b"hi", "localhost") == b"D:hi", "the command line's backend")
    finally:
        p.stop()
        a.close()
        dflt.close()
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:0\n--backend 127.0.0.1:1\n")
    rc, out, err = run([SLI, "proxy", "--config", conf])
    expect(rc != 0 and "line 2: '--backend' is not a flag name" in err, "dashes named: %s" % err)
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:0\nfrobnicate 1\n")
    rc, out, err = run([SLI, "proxy", "--config", conf])
    expect(rc == 2 and "unknown or incomplete option '--frobnicate'" in err, "unknown flag: %s" % err)
    rc, out, err = run([SLI, "proxy", "--config", d("missing.conf")])
    expect(rc != 0 and "missing.conf" in err, "a missing file named: %s" % err)
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:0\nROUTE a=127.0.0.1:1\n")
    rc, out, err = run([SLI, "proxy", "--config", conf])
    expect(rc == 2 and "'--ROUTE' (%s line 2)" % conf in err, "an unknown name with its line: %s" % err)
    os.mkdir(d("confdir"))
    rc, out, err = run([SLI, "proxy", "--config", d("confdir"), "--listen", "127.0.0.1:0",
                        "--backend", "127.0.0.1:1"])
    expect(rc != 0 and "Is a directory" in err, "a directory refused: %s" % err)
    # two files, both read in order; a comment after a value
    a = Backend(b"A")
    base, site = d("base.conf"), d("site.conf")
    with open(base, "w") as f:
        f.write("listen 127.0.0.1:0   # any port\ncert %s\nkey %s\n" % (CERT, KEY))
    with open(site, "w") as f:
        f.write("backend 127.0.0.1:%d # the app\n" % a.port)
    p = Proc([SLI, "proxy", "--config", base, "--config", site], d, "two-confs")
    try:
        port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        expect(tls_ask(port, b"hi") == b"A:hi", "both files read, comments after values dropped")
    finally:
        p.stop()
        a.close()


@checks.case
def client_mode():
    server = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--cert", CERT, "--key", KEY, "--echo"],
                  d, "tls-server")
    sport = int(server.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    p, port = proxy("client", "--client", "--workers", "1", "--ca", ca.path,
                    "--backend", "127.0.0.1:%d" % sport, "--servername", "localhost")
    bad, bport = proxy("client-bad", "--client", "--workers", "1", "--ca", ca.path,
                       "--backend", "127.0.0.1:%d" % sport, "--servername", "wrong.example")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"plain in, TLS out\n" * 1000)
            s.shutdown(socket.SHUT_WR)  # our end goes on as close_notify, the echo's comes back
            got = recv_to_end(s)
        expect(got == b"plain in, TLS out\n" * 1000, "the echo, whole, then the end (%d)" % len(got))
        server.wait_for(r"secured TLSv1\.3", where="log")
        with socket.create_connection(("127.0.0.1", bport), timeout=10) as s:
            s.sendall(b"hello\n")
            try:
                got = s.recv(100)
                how = "eof %r" % got
            except ConnectionResetError:
                how = "reset"
        expect(how == "reset", "a server that fails verification: the plain client is reset (%s)"
               % how)
        bad.wait_for(r"SLI_E_", where="log")
        rc, out, err = run([SLI, "proxy", "--client", "--listen", "127.0.0.1:0", "--route",
                            "a=127.0.0.1:1", "--backend", "127.0.0.1:1"])
        expect(rc == 2, "--client with --route: usage")
    finally:
        for x in (p, bad, server):
            x.stop()


@checks.case
def second_signal_cuts_at_once():
    """A second SIGTERM (or SIGINT) during a drain cuts what is left with a reset and exits 0 —
    with several loops too, one of which has already ended (it aborted in libuv once)."""
    be = Backend()
    for sigs in ((signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGINT)):
        p, port = proxy("second-%d" % sigs[0], "--workers", "2", "--cert", CERT, "--key", KEY,
                        "--backend", "127.0.0.1:%d" % be.port)
        try:
            ctx = ssl.create_default_context(cafile=ca.path)
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                server_hostname="localhost", suppress_ragged_eofs=False)
            s.sendall(b"x\n")
            s.recv(10)
            p.p.send_signal(sigs[0])
            p.wait_for("stopping: 1 live connection", where="log")
            time.sleep(0.3)  # the idle loop has ended by now
            p.p.send_signal(sigs[1])
            expect(p.p.wait(10) == 0, "exit 0 after the second signal: %s" % p.p.returncode)
            try:  # python's ssl reports the reset as an EOF "in violation of protocol"
                how = "data %r" % s.recv(10)
            except (ConnectionResetError, ssl.SSLEOFError):
                how = "cut"
            expect(how == "cut", "the live connection cut, not ended cleanly: %s" % how)
            expect("cut (reset)" in p.stderr() and "at a second signal" in p.stderr(),
                   "the log says it was cut at the second signal")
        finally:
            p.stop()
    for _ in range(5):  # two signals in a row, nothing live
        p, port = proxy("twice", "--workers", "2", "--cert", CERT, "--key", KEY,
                        "--backend", "127.0.0.1:%d" % be.port)
        p.p.send_signal(signal.SIGTERM)
        p.p.send_signal(signal.SIGTERM)
        expect(p.p.wait(10) == 0, "two signals at once: exit 0, not %s" % p.p.returncode)
        p.stop()
    be.close()


@checks.case
def hostile_names_and_floods():
    """What a client sends reaches the log escaped (no forged lines, no terminal escapes), and
    every per-connection failure line is under the 20-a-second limit, not only handshakes."""
    a = Backend(b"A")
    p, port = proxy("names", "--workers", "2", "--cert", CERT, "--key", KEY,
                    "--route", "a.test=127.0.0.1:%d" % a.port)
    try:
        forged = "x\nsli proxy: 203.0.113.9:4444: secured TLSv1.3 FORGED\x1b[31m"
        subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername",
                        forged], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)
        line = p.wait_for(r"no route for the name '([^\n]*)' and no default", where="log")
        expect("\\x0a" in line.group(1) and "\\x1b" in line.group(1),
               "the name escaped: %s" % line.group(1))
        expect(not re.search(r"(?m)^sli proxy: 203\.0\.113\.9", p.stderr()), "no forged line")
        t0 = time.time()
        for i in range(60):
            try:
                tls_ask(port, b"hi", "n%d.flood.test" % i, timeout=5)  # verified: no route
            except (OSError, ssl.SSLError):
                pass
        took = time.time() - t0
        time.sleep(1.1)  # a failure in a later second says how many the last one left out
        try:
            tls_ask(port, b"hi", "more.flood.test")
        except (OSError, ssl.SSLError):
            pass
        p.wait_for(r"(\d+) more failed connections in the last second", where="log")
        time.sleep(0.2)
        shown = len(re.findall(r"no route for the name 'n\d+\.flood", p.stderr()))
        counted = sum(int(n) for n in re.findall(r"(\d+) more failed connections", p.stderr()))
        expect(shown <= 20 * (int(took) + 2) and shown + counted >= 60,
               "no-route lines under the limit: %d shown, %d counted, in %.1f s"
               % (shown, counted, took))
    finally:
        p.stop()
        a.close()


@checks.case
def numbers_are_numbers():
    for flag, value in (("--drain-timeout", "10s"), ("--drain-timeout", "-5"),
                        ("--drain-timeout", "1e4"), ("--workers", "2x"), ("--workers", "0")):
        rc, out, err = run([SLI, "proxy", "--listen", "127.0.0.1:0", flag, value, "--backend",
                            "127.0.0.1:1"])
        expect(rc == 2 and "'%s' is not a whole number" % value in err,
               "%s %s refused (%d): %s" % (flag, value, rc, err[:200]))


HAPROXY_CFG = """
global
    log stdout format raw local0
defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:%d accept-proxy
    option forwardfor
    default_backend be
backend be
    server app 127.0.0.1:%d
"""


@checks.case
def haproxy_as_backend():
    """haproxy behind sli proxy (accept-proxy) passes the TLS client's own address on as
    X-Forwarded-For — for both versions of the PROXY header."""
    class H(socketserver.StreamRequestHandler):
        def handle(self):
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = self.rfile.readline()
                if not line:
                    return
                head += line
            m = re.search(rb"(?im)^x-forwarded-for: *(\S+)", head)
            body = m.group(1) if m else b"none"
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    class S(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
    app = S(("127.0.0.1", 0), H)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    hport = free_port()
    cfg = d("haproxy.cfg")
    with open(cfg, "w") as f:
        f.write(HAPROXY_CFG % (hport, app.server_address[1]))
    ha = Proc(["haproxy", "-db", "-f", cfg], d, "haproxy")
    try:
        t0 = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", hport), timeout=1).close()
                break
            except OSError:
                expect(time.time() - t0 < 10, "haproxy listens")
                time.sleep(0.05)
        for version in ("v1", "v2"):
            p, port = proxy("pp-" + version, "--workers", "1", "--cert", CERT, "--key", KEY,
                            "--backend", "127.0.0.1:%d" % hport, "--proxy-protocol", version)
            try:
                ctx = ssl.create_default_context(cafile=ca.path)
                s = socket.socket()
                s.bind(("127.0.0.7", 0))  # a client address haproxy can only learn from us
                s.settimeout(10)
                s.connect(("127.0.0.1", port))
                with ctx.wrap_socket(s, server_hostname="localhost") as t:
                    t.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                    got = recv_to_end(t)
                expect(got.endswith(b"\r\n\r\n127.0.0.7"),
                       "%s: haproxy saw the TLS client's address: %r" % (version, got[-60:]))
            finally:
                p.stop()
    finally:
        ha.stop()
        app.shutdown()
        app.server_close()


sys.exit(checks.finish(d))
