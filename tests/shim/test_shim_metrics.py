#!/usr/bin/python3
"""SLI_METRICS (README "Watching it run"): a preloaded host serves its counters in Prometheus' text
format, scraped here with curl — handshakes, resumptions, failures by reason, bytes, live
connections and the certificate's remaining seconds move as the traffic says; a forking server's
children count where the parent serves; a daemon whose first process exits has the page taken over
by the process that goes on; a host that closes every descriptor it did not open (closerange,
/proc/self/fd, dup2 over the numbers) neither closes nor reaches ours; unix:/path replaces a stale
socket file; a bad value fails closed, an address in use is logged and TLS is served anyway."""
import os
import re
import socket
import ssl
import subprocess
import sys
import time

from harness import CA, Checks, Dir, Proc, expect, free_port, plaintext_client, recv_to_end
from shimlib import shim_env

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")
checks = Checks()


def scrape(where):
    """The page at `where` (a port, or a unix socket path), through curl, as {series: value}."""
    args = ["curl", "-sS", "--max-time", "5"]
    args += ["--unix-socket", where, "http://localhost/metrics"] if isinstance(where, str) \
        else ["http://127.0.0.1:%d/metrics" % where]
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    if r.returncode:
        raise AssertionError("curl %s: exit %d: %s" % (where, r.returncode, r.stderr.strip()))
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+) (-?\d+)$", r.stdout, re.M)}


def scrape_until(where, settled, timeout=5):
    """The page once `settled(page)` holds, or the last one after `timeout` seconds: the host
    counts when it gets to the bytes, a moment after a client is done."""
    t0 = time.time()
    while True:
        m = scrape(where)
        if settled(m) or time.time() - t0 > timeout:
            return m
        time.sleep(0.05)


CTX = ssl.create_default_context(cafile=ca.path)
CTX12 = ssl.create_default_context(cafile=ca.path)  # TLS 1.2: the session is there at once
CTX12.maximum_version = ssl.TLSVersion.TLSv1_2


def tls_client(port, session=None, tls12=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return (CTX12 if tls12 else CTX).wrap_socket(s, server_hostname="localhost", session=session)


def wait_tls(port, timeout=10, read=0):
    """Connects until the host serves TLS (within `timeout`); with `read`, what the host's first
    answer holds (up to that many bytes): that client's handshake is counted for sure."""
    t0 = time.time()
    while True:
        try:
            with tls_client(port) as t:
                return t.recv(read) if read else b""
        except OSError:  # refused, reset, or a TLS error (ssl.SSLError is one) while it starts
            if time.time() - t0 > timeout:
                raise
            time.sleep(0.05)


def http_get(port, session=None):
    t = tls_client(port, session, tls12=True)
    t.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = recv_to_end(t)
    resumed, sess = t.session_reused, t.session
    t.close()
    return data, resumed, sess


def http_server(name, port, mport, **more):
    return Proc(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port),
                 "--directory", d("")], d, name,
                env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY, SLI_METRICS=mport,
                             **more))


@checks.case
def counters_move():
    port, mport = free_port(), free_port()
    p = http_server("counters", port, "127.0.0.1:%d" % mport)
    try:
        wait_tls(port)
        # TLS 1.3: the client is done before the host has read its Finished (http.server
        # answers nothing unasked), so the count may come a moment after wait_tls returns
        m0 = scrape_until(mport, lambda m: m["sli_handshakes_total"] >= 1)
        expect(m0["sli_handshakes_total"] >= 1, "the first handshake counted: %s" % m0)
        left = m0.get("sli_certificate_expiry_seconds", 0)
        expect(85 * 86400 < left <= 90 * 86400, "the certificate's remaining seconds: %d" % left)
        body, _, sess = http_get(port)
        body2, resumed, _ = http_get(port, sess)
        expect(resumed, "the second client resumed")
        held = tls_client(port)  # open while we scrape: half a request, the host waits for more
        held.sendall(b"GET / HTTP/1.0\r\n")
        plaintext_client(port)
        plaintext_client(port)
        m = scrape_until(mport, lambda m: m["sli_handshakes_total"] - m0["sli_handshakes_total"] >= 3
                         and m['sli_handshake_failures_total{reason="protocol"}'] >= 2)
        expect(m["sli_handshakes_total"] - m0["sli_handshakes_total"] == 3,
               "3 handshakes more: %s" % m)
        expect(m["sli_handshakes_resumed_total"] - m0["sli_handshakes_resumed_total"] == 1,
               "1 resumed: %s" % m)
        expect(m['sli_handshake_failures_total{reason="protocol"}'] == 2,
               "2 plaintext clients failed, reason protocol: %s" % m)
        expect(m["sli_connections"] == 1, "1 connection open now: %s" % m)
        expect(m["sli_bytes_received_total"] - m0["sli_bytes_received_total"] >= 2 * 18 + 16,
               "the requests' bytes received: %s" % m)
        expect(m["sli_bytes_sent_total"] - m0["sli_bytes_sent_total"] >= len(body) + len(body2),
               "the answers' bytes sent: %s" % m)
        held.close()
        expect(scrape_until(mport, lambda m: m["sli_connections"] == 0)["sli_connections"] == 0, "none open once the last client left")
    finally:
        p.stop()


FORKING = r'''
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"you said " + self.rfile.readline())
class S(socketserver.ForkingTCPServer):
    allow_reuse_address = True
s = S(("127.0.0.1", int(sys.argv[1])), H)
print("ready", flush=True)
s.serve_forever()
'''


@checks.case
def forked_children_count():
    """Each connection is handled in a forked child: the parent serves the page, the children's
    handshakes and bytes are on it."""
    port, mport = free_port(), free_port()
    p = Proc(["/usr/bin/python3", "-c", FORKING, str(port)], d, "forking",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY,
                          SLI_METRICS="127.0.0.1:%d" % mport))
    try:
        p.wait_for("ready")
        for i in range(3):
            with tls_client(port) as t:
                t.sendall(b"line %d\n" % i)
                expect(t.recv(100) == b"you said line %d\n" % i, "child %d answered" % i)
        time.sleep(0.3)
        m = scrape(mport)
        expect(m["sli_handshakes_total"] == 3, "the children's 3 handshakes: %s" % m)
        expect(m["sli_bytes_received_total"] == 3 * 7, "their 21 bytes in: %s" % m)
        expect(m["sli_bytes_sent_total"] == 3 * 16, "their 48 bytes out: %s" % m)
        expect(m["sli_connections"] == 0, "none open: %s" % m)
    finally:
        p.stop()


DAEMON = r'''
import os, socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))   # the TLS context, and the metrics, start here
l.listen()
if os.fork():
    os._exit(0)                           # the first process leaves, as a daemon's does
os.setsid()
while True:
    c, _ = l.accept()
    c.sendall(b"pid %d\n" % os.getpid())
    c.close()
'''


@checks.case
def daemon_takeover():
    port, mport = free_port(), free_port()
    p = Proc(["/usr/bin/python3", "-c", DAEMON, str(port)], d, "daemon",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY,
                          SLI_METRICS="127.0.0.1:%d" % mport, SLI_LOG="info"))
    try:
        t0 = time.time()
        while p.p.poll() is None and time.time() - t0 < 10:
            time.sleep(0.05)
        expect(p.p.returncode == 0, "the first process left")
        with tls_client(port) as t:
            daemon = t.recv(100)
        expect(daemon.startswith(b"pid "), "the daemon serves TLS: %r" % daemon)
        m = scrape(mport)
        expect(m["sli_handshakes_total"] == 1, "the daemon serves the page: %s" % m)
        took = re.findall(r"sli-preload\[(\d+)\] info: metrics on", p.stderr())
        expect(len(took) == 2 and took[1] == daemon.split()[1].decode(),
               "served by the first process, then by the daemon: %s" % took)
    finally:
        p.stop()
        for line in re.findall(r"sli-preload\[(\d+)\] info: metrics on", p.stderr())[1:]:
            try:
                os.kill(int(line), 9)  # the daemon left our process group (setsid)
            except ProcessLookupError:
                pass


CLOSER = r'''
import os, socket, sys, errno
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen()
c, _ = l.accept(); c.sendall(b"one\n"); c.close()
# a daemon making sure it holds nothing it did not open: every other number in /proc/self/fd is
# closed one by one, then closerange over the rest, then its listener dup2'd over each number
seen = [int(n) for n in os.listdir("/proc/self/fd") if int(n) > 2 and int(n) != l.fileno()]
ebadf = 0
for n in seen:
    try:
        os.close(n)
    except OSError as e:
        ebadf += e.errno == errno.EBADF
os.closerange(3, l.fileno())
os.closerange(l.fileno() + 1, 65536)
for n in seen:
    os.dup2(l.fileno(), n)
    os.close(n)
print("closed %d, EBADF %d" % (len(seen), ebadf), flush=True)
while True:
    c, _ = l.accept()
    try:
        c.sendall(b"more\n")
    except OSError:
        pass
    c.close()
'''


@checks.case
def host_closes_every_descriptor():
    port, mport = free_port(), free_port()
    p = Proc(["/usr/bin/python3", "-c", CLOSER, str(port)], d, "closer",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY,
                          SLI_METRICS="127.0.0.1:%d" % mport))
    try:
        got = wait_tls(port, read=100)
        expect(got == b"one\n", "the first client served: %r; host: %s" % (got, p.stderr()[-1500:]))
        p.wait_for(r"closed (\d+), EBADF (\d+)")  # the shim's own numbers answer EBADF
        for _ in range(3):
            with tls_client(port) as t:
                expect(t.recv(100) == b"more\n", "the host serves on")
        m = scrape(mport)
        expect(m["sli_handshakes_total"] == 4, "the page still served, counting: %s" % m)
    finally:
        p.stop()


RACER = r'''
import os, socket, sys, threading, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen()
c, _ = l.accept(); c.sendall(b"one\n"); c.close()
# a thread that keeps closing every descriptor it did not open, checking its own each time,
# while the test scrapes the page as fast as it can
lost = rounds = 0
end = time.time() + float(sys.argv[2])
while time.time() < end:
    a, b = socket.socketpair()
    mine = {l.fileno(), a.fileno(), b.fileno()}
    for fd in range(3, 128):
        if fd not in mine:
            try:
                os.close(fd)
            except OSError:
                pass
    try:
        a.sendall(b"x")
        lost += b.recv(1) != b"x"
    except OSError:
        lost += 1
    a.close(); b.close()
    rounds += 1
print("rounds %d, lost %d" % (rounds, lost), flush=True)
'''


@checks.case
def close_loop_races_scrapes():
    """A host thread closing every descriptor it did not open, again and again, while scrapes
    come as fast as they can: no scrape fails, no descriptor of the host's is lost."""
    port, mport = free_port(), free_port()
    p = Proc(["/usr/bin/python3", "-c", RACER, str(port), "3"], d, "racer",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY,
                          SLI_METRICS="127.0.0.1:%d" % mport))
    try:
        wait_tls(port, read=10)
        failed = done = 0
        while p.p.poll() is None and done < 2000:
            try:
                with socket.create_connection(("127.0.0.1", mport), timeout=5) as s:
                    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
                    page = recv_to_end(s)
                    failed += b"sli_handshakes_total 1" not in page
            except OSError:
                failed += 1
            done += 1
        m = p.wait_for(r"rounds (\d+), lost (\d+)", timeout=20)
        expect(int(m.group(1)) > 10 and m.group(2) == "0",
               "the host lost none of its descriptors: %s" % m.group(0))
        expect(done > 50 and failed == 0, "%d scrapes, %d failed" % (done, failed))
    finally:
        p.stop()


@checks.case
def silent_scrapers_do_not_block_the_page():
    port, mport = free_port(), free_port()
    p = http_server("silent", port, "127.0.0.1:%d" % mport)
    try:
        wait_tls(port)
        silent = [socket.create_connection(("127.0.0.1", mport)) for _ in range(8)]
        time.sleep(0.2)
        t0 = time.time()
        scrape(mport)
        expect(time.time() - t0 < 1.0, "a scrape beside 8 silent ones: %.2f s" % (time.time() - t0))
        for s in silent:
            s.close()
    finally:
        p.stop()


@checks.case
def a_file_at_the_path_is_never_removed():
    port, path = free_port(), d("precious.conf")
    with open(path, "w") as f:
        f.write("important\n")
    link = d("link.sock")
    os.symlink(path, link)
    for where in (path, link):
        p = http_server("file-at-path", port, "unix:" + where)
        try:
            wait_tls(port)
            body, _, _ = http_get(port)
            expect(body.startswith(b"HTTP/1.0 200"), "TLS served")
            expect(open(path).read() == "important\n" and os.path.islink(link),
                   "%s left as it was" % where)
            expect("SLI_METRICS unix:%s" % where in p.stderr(), "the failure logged")
        finally:
            p.stop()


@checks.case
def unix_socket_replaces_a_stale_one():
    port, path = free_port(), d("metrics.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # a file nobody answers on: a server that died
    p = http_server("unix", port, "unix:" + path)
    try:
        wait_tls(port)
        http_get(port)
        expect(scrape(path)["sli_handshakes_total"] >= 1, "the page on the unix socket")
    finally:
        p.stop()


@checks.case
def bad_value_fails_closed():
    for value in ("localhost:1", "127.0.0.1: 9100", "127.0.0.1:+9100", "127.0.0.1:0"):
        port = free_port()
        p = http_server("bad", port, value)  # names are not resolved: numeric only
        try:
            t0 = time.time()
            while p.p.poll() is None and time.time() - t0 < 10:
                time.sleep(0.05)
            log = p.stderr()
            expect("SLI_METRICS: '%s' is not" % value in log, "%r: the reason logged" % value)
            expect("PermissionError" in log, "the TLS port refused rather than served in plaintext")
        finally:
            p.stop()
    port = free_port()
    p = http_server("empty", port, "")  # Environment=SLI_METRICS= in a unit: unset
    try:
        wait_tls(port)
        expect("SLI_METRICS" not in p.stderr(), "an empty value is no setting")
    finally:
        p.stop()


@checks.case
def address_in_use_still_serves():
    port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    p = http_server("inuse", port, "127.0.0.1:%d" % taken.getsockname()[1])
    try:
        wait_tls(port)
        body, _, _ = http_get(port)
        expect(body.startswith(b"HTTP/1.0 200"), "TLS served")
        expect(re.search(r"warn: SLI_METRICS .*: Address already in use", p.stderr()),
               "the taken address logged: %s" % p.stderr()[-300:])
    finally:
        p.stop()
        taken.close()


sys.exit(checks.finish(d))
