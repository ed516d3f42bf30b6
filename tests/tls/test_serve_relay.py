#!/usr/bin/python3
"""`sli serve --backend` as a relay that drops nothing, bounds its memory and fails loudly, against
python backends and a python ssl client that half-closes (SSLObject over a socket, so that it can
send close_notify and go on reading):
- an upload of 20 MiB then close_notify reaches the backend whole (its SHA-256), and the backend's
  answer after that FIN comes back before close_notify ("request, half-close, reply");
- the backend's FIN comes to the client as close_notify while the client still sends, and what it
  sends after reaches the backend (half-close the other way);
- a backend flooding a client that does not read, and a client flooding a backend that does not
  read, grow sli's memory by a bounded amount (RSS measured), and the flood still arrives intact
  once the reader reads;
- an unreachable backend reaches the client as an error (a reset), never a clean empty close, and
  the log says so; `sli connect` fails;
- SIGTERM drains: a download in progress finishes whole with close_notify, new connections are
  refused, the process exits 0; a connection still open at --drain-timeout is cut with a reset;
- out of descriptors (EMFILE), a client turned away is logged."""
import hashlib
import os
import signal
import socket
import ssl
import sys
import threading
import time

from harness import CA, SLI, Checks, Dir, Proc, expect, free_port, run
from shimlib import SANITIZER_LIBS

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")
MIB = 1 << 20


class Client:
    """A TLS client over a socket through an SSLObject: it can half-close (close_notify, then
    read on) and tell how the server's direction ended."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca.path)
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inb, self.outb, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self):
        data = self.outb.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(262144)
        if data:
            self.inb.write(data)
        else:
            self.inb.write_eof()

    def send(self, data):
        for i in range(0, len(data), 65536):
            self.obj.write(data[i:i + 65536])
            self._flush()

    def shutdown_write(self):
        try:
            self.obj.unwrap()  # close_notify out; the server's is not awaited here
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass
        self._flush()

    def read_all(self, limit=None):
        """Reads until the server's direction ends: (bytes, "close_notify"|"truncated"|"reset")."""
        out = bytearray()
        while limit is None or len(out) < limit:
            try:
                chunk = self.obj.read(262144)
                if not chunk:
                    return bytes(out), "close_notify"
                out += chunk
            except ssl.SSLWantReadError:
                try:
                    self._fill()
                except ConnectionResetError:
                    return bytes(out), "reset"
                except socket.timeout:
                    return bytes(out), "timeout"
            except ssl.SSLZeroReturnError:
                return bytes(out), "close_notify"
            except ssl.SSLEOFError:
                return bytes(out), "truncated"
            except ssl.SSLError as e:
                return bytes(out), "error " + str(e)
        return bytes(out), "limit"

    def close(self):
        self.sock.close()


class Backend:
    """A plain TCP server on a free port running `handler(conn)` for each connection, in threads."""

    def __init__(self, handler):
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.results = []
        self.handler = handler
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                conn, _ = self.s.accept()
            except OSError:
                return
            conn.settimeout(20)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            self.results.append(self.handler(conn))
        except Exception as e:  # noqa: BLE001 - what the backend saw is the result
            self.results.append("backend error: %r" % e)
        finally:
            conn.close()

    def result(self, timeout=20):
        deadline = time.time() + timeout
        while not self.results and time.time() < deadline:
            time.sleep(0.02)
        return self.results[0] if self.results else "no result"

    def close(self):
        self.s.close()


def read_to_eof(conn):
    h, n = hashlib.sha256(), 0
    while True:
        b = conn.recv(262144)
        if not b:
            return h.hexdigest(), n
        h.update(b)
        n += len(b)


# Under AddressSanitizer freed memory waits in a quarantine, which RSS would count: none here.
ENV = {"ASAN_OPTIONS": ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=0"]))}
# what a flood may add to sli's RSS (ASan's shadow memory adds its own share)
RSS_BOUND_KIB = (12 if SANITIZER_LIBS else 8) * 1024


def hash_then_answer(conn):
    """A backend that reads to the client's end, then answers with the SHA-256 and the length."""
    digest, n = read_to_eof(conn)
    conn.sendall(("%s %d\n" % (digest, n)).encode())  # the answer after the client's end
    return digest, n


def serve(name, backend_port, *extra):
    p = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--cert", CERT, "--key", KEY, "--backend",
              "127.0.0.1:%d" % backend_port] + list(extra), d, name, env=ENV)
    port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    return p, port


def rss_kib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


checks = Checks()


@checks.case
def upload_then_close_notify_arrives_whole():
    b = Backend(hash_then_answer)
    p, port = serve("upload", b.port)
    try:
        data = os.urandom(20 * MIB)
        c = Client(port)
        c.send(data)
        c.shutdown_write()
        reply, how = c.read_all()
        c.close()
        want = hashlib.sha256(data).hexdigest()
        expect(b.result() == (want, len(data)), "the backend got all 20 MiB: %r" % (b.result(),))
        expect(reply == ("%s %d\n" % (want, len(data))).encode(), "the answer came back: %r" % reply)
        expect(how == "close_notify", "then close_notify: " + how)
    finally:
        p.stop()
        b.close()


@checks.case
def backend_end_first_client_goes_on():
    def backend(conn):
        conn.sendall(b"hello, send me more\n")
        conn.shutdown(socket.SHUT_WR)  # the backend's direction ends, it still reads
        return read_to_eof(conn)
    b = Backend(backend)
    p, port = serve("halfclose", b.port)
    try:
        c = Client(port)
        got, how = c.read_all()
        expect(got == b"hello, send me more\n" and how == "close_notify",
               "the greeting, then close_notify for the backend's FIN: %r %s" % (got, how))
        more = os.urandom(3 * MIB)
        c.send(more)  # after the server's close_notify, our direction is still open
        c.shutdown_write()
        expect(b.result() == (hashlib.sha256(more).hexdigest(), len(more)),
               "what the client sent after reached the backend: %r" % (b.result(),))
        c.close()
    finally:
        p.stop()
        b.close()


@checks.case
def flooding_backend_slow_client_bounded():
    total = 64 * MIB
    def backend(conn):
        block = bytes(range(256)) * 256
        sent = 0
        while sent < total:
            conn.sendall(block)
            sent += len(block)
        return sent
    b = Backend(backend)
    p, port = serve("flood-down", b.port)
    try:
        before = rss_kib(p.p.pid)
        c = Client(port, timeout=20)
        time.sleep(2.0)  # the client reads nothing; the backend pushes
        during = rss_kib(p.p.pid)
        got, how = c.read_all(limit=total)
        c.close()
        expect(during - before < RSS_BOUND_KIB, "sli's RSS grew %d KiB while the client did not read"
               % (during - before))
        expect(len(got) == total and got[:65536] == (bytes(range(256)) * 256),
               "and all %d MiB arrived once it read (%d bytes, %s)" % (total // MIB, len(got), how))
        print("     RSS before %d KiB, after 2 s of a backend flooding a silent client %d KiB"
              % (before, during))
    finally:
        p.stop()
        b.close()


@checks.case
def flooding_client_slow_backend_bounded():
    gate = threading.Event()
    def backend(conn):
        gate.wait(30)  # reads nothing until told
        return read_to_eof(conn)
    b = Backend(backend)
    p, port = serve("flood-up", b.port)
    try:
        before = rss_kib(p.p.pid)
        c = Client(port)
        c.sock.setblocking(False)
        block, sent, deadline = os.urandom(65536), 0, time.time() + 2.0
        h = hashlib.sha256()
        pending = b""
        while time.time() < deadline:  # as much as the kernel and sli take in 2 s
            if not pending:
                c.obj.write(block)
                h.update(block)
                sent += len(block)
                pending = c.outb.read()
            try:
                k = c.sock.send(pending)
                pending = pending[k:]
            except BlockingIOError:
                time.sleep(0.01)
        during = rss_kib(p.p.pid)
        gate.set()
        c.sock.setblocking(True)
        if pending:
            c.sock.sendall(pending)
        c.shutdown_write()
        expect(during - before < RSS_BOUND_KIB, "sli's RSS grew %d KiB while the backend did not read"
               % (during - before))
        expect(sent < 256 * MIB, "the client was held back (%d MiB taken)" % (sent // MIB))
        expect(b.result() == (h.hexdigest(), sent), "and everything arrived once the backend read")
        print("     RSS before %d KiB, after 2 s of a client flooding a silent backend %d KiB "
              "(%d MiB taken by the kernel and sli)" % (before, during, sent // MIB))
        c.close()
    finally:
        p.stop()
        b.close()


@checks.case
def unreachable_backend_is_an_error():
    hold = socket.socket()  # bound, never listening: refused, and no one else gets the port
    hold.bind(("127.0.0.1", 0))
    dead = hold.getsockname()[1]
    p, port = serve("unreachable", dead)
    try:
        c = Client(port)
        got, how = c.read_all()
        c.close()
        expect(got == b"" and how in ("reset", "truncated"), "an error, not a clean close: %s" % how)
        p.wait_for(r"backend unreachable: connection refused", where="log")
        rc, out, err = run([SLI, "connect", "127.0.0.1:%d" % port, "--servername", "localhost",
                            "--ca", ca.path], input=b"hello\n")
        expect(rc != 0, "sli connect fails: rc %d, %s" % (rc, err.strip()))
    finally:
        p.stop()
        hold.close()


@checks.case
def sigterm_drains():
    total = 48 * MIB
    def backend(conn):
        block = os.urandom(65536)
        h = hashlib.sha256()
        for _ in range(total // len(block)):
            conn.sendall(block)
            h.update(block)
            time.sleep(0.002)  # ~1.5 s in all: SIGTERM lands in the middle
        return h.hexdigest()
    b = Backend(backend)
    p, port = serve("drain", b.port, "--drain-timeout", "20000")
    try:
        c = Client(port, timeout=20)
        first, _ = c.read_all(limit=MIB)
        os.kill(p.p.pid, signal.SIGTERM)
        p.wait_for(r"stopping: 1 live connection", where="log")
        try:  # no new connection meanwhile
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            refused = False
        except OSError:
            refused = True
        rest, how = c.read_all()
        c.close()
        got = first + rest
        expect(refused, "new connections are refused while draining")
        expect(hashlib.sha256(got).hexdigest() == b.result() and len(got) == total,
               "the download finished whole (%d of %d bytes)" % (len(got), total))
        expect(how == "close_notify", "with close_notify: " + how)
        p.p.wait(10)
        expect(p.p.returncode == 0, "exit 0 after the drain: %s" % p.p.returncode)
    finally:
        p.stop()
        b.close()


@checks.case
def drain_timeout_cuts_with_a_reset():
    def backend(conn):
        conn.sendall(b"hi\n")
        return read_to_eof(conn)  # an idle keep-alive connection
    b = Backend(backend)
    p, port = serve("drain-cut", b.port, "--drain-timeout", "500")
    try:
        c = Client(port)
        first, _ = c.read_all(limit=3)
        t0 = time.time()
        os.kill(p.p.pid, signal.SIGTERM)
        rest, how = c.read_all()
        waited = time.time() - t0
        c.close()
        expect(how == "reset", "cut with a reset, not a clean end: %s" % how)
        expect(0.3 < waited < 5, "at the drain deadline (%.2f s)" % waited)
        p.wait_for(r"drain: 1 connection\(s\) still open after 500 ms: cut", where="log")
        p.p.wait(10)
        expect(p.p.returncode == 0, "exit 0: %s" % p.p.returncode)
    finally:
        p.stop()
        b.close()


@checks.case
def emfile_is_logged():
    b = Backend(lambda conn: read_to_eof(conn))
    p = Proc(["prlimit", "--nofile=24:24", SLI, "serve", "--listen", "127.0.0.1:0", "--cert", CERT,
              "--key", KEY, "--backend", "127.0.0.1:%d" % b.port], d, "emfile")
    try:
        port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        socks = []
        for _ in range(40):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        p.wait_for(r"accept: Too many open files: a client was turned away", where="log")
        told = 0
        for s in socks:  # the ones turned away got a fatal internal_error alert, then the end
            s.settimeout(0.2)
            try:
                told += s.recv(16) == b"\x15\x03\x03\x00\x02\x02\x50"
            except OSError:
                pass
            s.close()
        expect(told >= 1, "a client turned away was told with an alert (%d of %d)" % (told, len(socks)))
    finally:
        p.stop()
        b.close()


@checks.case
def sli_proxy_is_the_same_relay():
    """`sli proxy` is `sli serve --backend` under its own name: the same relay, its own log
    prefix; it refuses --echo (a proxy has a backend)."""
    b = Backend(hash_then_answer)
    p = Proc([SLI, "proxy", "--listen", "127.0.0.1:0", "--cert", CERT, "--key", KEY, "--backend",
              "127.0.0.1:%d" % b.port], d, "proxy", env=ENV)
    try:
        port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        data = os.urandom(2 * MIB)
        c = Client(port)
        c.send(data)
        c.shutdown_write()
        reply, how = c.read_all()
        c.close()
        want = hashlib.sha256(data).hexdigest()
        expect(reply == ("%s %d\n" % (want, len(data))).encode() and how == "close_notify",
               "the same relay: %r %s" % (reply, how))
        p.wait_for(r"sli proxy: 127\.0\.0\.1:\d+: secured", where="log")
    finally:
        p.stop()
        b.close()
    rc, _, err = run([SLI, "proxy", "--listen", "127.0.0.1:0", "--echo"])
    expect(rc == 2 and "usage: sli proxy" in err, "proxy --echo refused: %d" % rc)


sys.exit(checks.finish(d))
