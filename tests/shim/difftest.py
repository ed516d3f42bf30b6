"""difftest.py — differential host tests for the LD_PRELOAD shim, with a wire oracle.

A *case* is a host program (tests/shim/hosts/*.c, written the way a real daemon is, against plain
TCP) and a *peer script* (Python, below the host on the wire). The harness runs every case twice:

  plain: the host without the shim    <->  recorder  <->  the peer speaking plain TCP
  tls:   the host with libsli-preload <->  recorder  <->  the same peer script speaking TLS 1.3

and the case passes only if
  * the host printed the same observation lines and exited the same way in both runs (the kernel is
    the oracle: what the host sees through the shim must be what it saw on a plain socket),
  * the peer script observed the same things in both runs (bytes, clean EOF vs truncation, resets),
  * in the tls run, every connection the recorder saw carried nothing but TLS records, and — with
    the peer's key log — every record decrypted in order at consecutive sequence numbers (no
    plaintext leak, no reused or skipped nonce: wire.py),
  * the shim wrote nothing to the host's stderr at level error (warnings a case expects are named).

The peer's TLS side uses an SSLObject over a memory BIO, so it controls each half-close exactly:
`shutdown_write()` sends close_notify (TLS) or a FIN (plain) and keeps reading; `recv_all()` tells
a clean end (close_notify or, in plain, a FIN) from a truncation (FIN without close_notify).

Environment: SLI_TEST_PRELOAD overrides the shim under test (e.g. the landed one, to show that a
case fails there). Everything is on 127.0.0.1, every process is started in its own session and
killed with its group, every wait is bounded.
"""
import errno
import hashlib
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from shimlib import BUILD, PRELOAD, SANITIZER_LIBS, free_port  # noqa: I001 (sets sys.path)
from harness import CA, read
import wire

HOSTS = os.path.abspath(os.path.join(BUILD, "tests", "shim", "hosts"))
SHIM = os.environ.get("SLI_TEST_PRELOAD") or PRELOAD


def host_exe(name):
    """The built host program `name` (SLI_TEST_HOSTS: another folder holding host_NAME files)."""
    other = os.environ.get("SLI_TEST_HOSTS")
    if other and os.path.exists(os.path.join(other, "host_" + name)):
        return os.path.join(other, "host_" + name)
    for group in sorted(os.listdir(HOSTS)):
        p = os.path.join(HOSTS, group, "host_" + name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError("no host program %r under %s" % (name, HOSTS))


class Timeout(Exception):
    pass


class Truncated(Exception):
    pass


# ---- one connection, seen from the peer script: the same calls in plain and TLS mode ----

class Peer:
    """A connected socket; with `ctx`, a TLS endpoint driven through memory BIOs."""

    def __init__(self, sock, ctx=None, server_side=False, server_hostname=None, timeout=10.0,
                 handshake=True):
        self.sock = sock
        self.sock.setblocking(True)
        self.timeout = timeout
        self.tls = ctx is not None
        self.eof = None  # how the peer's input ended: "eof", "truncated", "reset"
        self.pending = b""  # plaintext decrypted before our close_notify, not yet returned
        if self.tls:
            self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.obj = ctx.wrap_bio(self.inc, self.out, server_side=server_side,
                                    server_hostname=server_hostname)
            if handshake:
                self._handshake()

    def handshake(self):
        """The TLS handshake, for a Peer made with handshake=False (a late ClientHello)."""
        if self.tls:
            self._handshake()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.time()
        if left <= 0:
            raise Timeout()
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise Timeout() from None
        finally:
            self.sock.settimeout(None)
        if data:
            self.inc.write(data)
        else:
            self.inc.write_eof()

    def _handshake(self):
        deadline = time.time() + self.timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill(deadline)

    def send(self, data):
        if self.tls:
            self.obj.write(data)
            self._flush()
        else:
            self.sock.sendall(data)

    def recv(self, n=65536, timeout=None):
        """Up to n bytes; b"" at the end of input (see self.eof). Raises Timeout, Truncated."""
        if self.pending:
            data, self.pending = self.pending[:n], self.pending[n:]
            return data
        deadline = time.time() + (timeout or self.timeout)
        if not self.tls:
            self.sock.settimeout(max(0.001, deadline - time.time()))
            try:
                data = self.sock.recv(n)
            except socket.timeout:
                raise Timeout() from None
            except ConnectionResetError:
                self.eof = "reset"
                return b""
            finally:
                self.sock.settimeout(None)
            if not data:
                self.eof = "eof"
            return data
        while True:
            try:
                data = self.obj.read(n)
                if not data:
                    self.eof = "eof"
                return data
            except ssl.SSLWantReadError:
                self._flush()
                try:
                    self._fill(deadline)
                except ConnectionResetError:
                    self.eof = "reset"
                    return b""
            except ssl.SSLZeroReturnError:
                self.eof = "eof"
                return b""
            except ssl.SSLEOFError:
                self.eof = "truncated"
                return b""
            except ssl.SSLError as e:
                # OpenSSL 3 reports a FIN without close_notify this way
                self.eof = "truncated" if e.reason == "UNEXPECTED_EOF_WHILE_READING" else \
                    "tls error: %s" % e.reason
                return b""

    def recv_exact(self, n, timeout=None):
        deadline = time.time() + (timeout or self.timeout)
        got = b""
        while len(got) < n:
            chunk = self.recv(n - len(got), max(0.001, deadline - time.time()))
            if not chunk:
                break
            got += chunk
        return got

    def recv_all(self, timeout=None):
        """Everything until the end of input: (data, how) with how "eof", "truncated", "reset",
        "timeout" or "tls error: ..."."""
        deadline = time.time() + (timeout or self.timeout)
        got = b""
        try:
            while True:
                chunk = self.recv(65536, max(0.001, deadline - time.time()))
                if not chunk:
                    return got, self.eof
                got += chunk
        except Timeout:
            return got, "timeout"

    def shutdown_write(self):
        """Ends our direction only: close_notify (TLS) then the FIN; reading goes on."""
        if self.tls:
            # SSL_shutdown reads what is buffered: take the plaintext out first, or it is lost
            while True:
                try:
                    chunk = self.obj.read(65536)
                except ssl.SSLError:
                    break
                if not chunk:
                    break
                self.pending += chunk
            try:
                self.obj.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
        # A host that has closed its socket answers our close_notify (data, unlike a bare FIN)
        # with a reset, which may be here before our FIN: the connection has then ended, as recv
        # reports; that is TLS's way, not the host's doing, so it is no error of the script.
        try:
            if self.tls:
                self._flush()
            self.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except OSError as e:
            if e.errno != errno.ENOTCONN:
                raise

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pattern(seed, n, offset=0):
    """The bytes host.h's fill_pattern makes (same seed, offset)."""
    out = bytearray(n)
    for i in range(n):
        x = (seed * 6364136223846793005 + (offset + i) * 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
        out[i] = (x >> 17) & 0xFF
    return bytes(out)


def fnv(data):
    """host.h's digest: FNV-1a 64 as "len:hex"."""
    h = 1469598103934665603
    for b in data:
        h ^= b
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%d:%016x" % (len(data), h)


# ---- what a peer script gets ----

class PeerContext:
    """Given to a case's peer script: opens connections (server-role hosts) or accepts them
    (client-role hosts), and collects observations with obs()."""

    def __init__(self, mode, files, keylog, connect_port=None, listener=None):
        self.mode = mode
        self.tls = mode == "tls"
        self.files = files
        self.keylog = keylog
        self.connect_port = connect_port
        self.listener = listener
        self.observations = []
        self.lock = threading.Lock()
        self.peers = []

    def obs(self, line):
        with self.lock:
            self.observations.append(str(line))

    def client_ctx(self):
        ctx = ssl.create_default_context(cafile=self.files.ca.path)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # Debian's default hides truncation
        ctx.keylog_filename = self.keylog
        return ctx

    def server_ctx(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(self.files.cert, self.files.key)
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
        ctx.keylog_filename = self.keylog
        return ctx

    def connect(self, timeout=10.0, handshake=True):
        """A new connection to the host (server-role cases), TLS in the tls run (with
        handshake=False, the peer's ClientHello waits for Peer.handshake())."""
        s = socket.create_connection(("127.0.0.1", self.connect_port), timeout=timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p = Peer(s, self.client_ctx() if self.tls else None, server_hostname="localhost",
                 timeout=timeout, handshake=handshake)
        self.peers.append(p)
        return p

    def raw_connect(self, timeout=10.0):
        """A plain TCP connection that never speaks (half-open clients, load)."""
        s = socket.create_connection(("127.0.0.1", self.connect_port), timeout=timeout)
        self.peers.append(Peer(s))
        return s

    def accept(self, timeout=10.0):
        """The host's next connection (client-role cases)."""
        self.listener.settimeout(timeout)
        try:
            s, _ = self.listener.accept()
        except socket.timeout:
            raise Timeout() from None
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p = Peer(s, self.server_ctx() if self.tls else None, server_side=True, timeout=timeout)
        self.peers.append(p)
        return p


class Files:
    """One CA and a localhost certificate for a test program."""

    def __init__(self, d):
        self.ca = CA(d)
        self.cert, self.key = self.ca.issue("localhost", sans=("localhost", "127.0.0.1"))


class Case:
    """host: [program, args...] where "{port}" is replaced by the port to listen on (server) or
    to connect to (client) and "{dir}" by the test program's temporary folder (also in env values). peer(ctx): the peer script. env: extra environment for both runs;
    shim_env: extra SLI_* settings for the tls run. expect_log: regexes the shim's stderr must
    match in the tls run. check(plain, tls): extra assertions on the two Results."""

    def __init__(self, name, host, role, peer, env=None, shim_env=None, timeout=30,
                 expect_log=(), allow_log=(), check=None, connections=None, ready="line",
                 stop="wait", plaintext_clients=False, differs=(), opaque_peers=False):
        self.name = name
        self.host = host
        self.role = role
        self.peer = peer
        self.env = env or {}
        self.shim_env = shim_env or {}
        self.timeout = timeout
        self.expect_log = expect_log
        self.allow_log = allow_log
        self.check = check
        self.connections = connections  # how many connections the recorder must see (None: any)
        self.ready = ready  # server role: "line" (the host prints "ready") or "port" (it listens)
        self.stop = stop  # "wait": the host exits by itself; "term": SIGTERM once the peer is done
        # SLI_MODE=optional cases: a connection whose client never sent a TLS record is plaintext
        # by design and is not judged as TLS by the wire oracle (the peer checks its bytes)
        self.plaintext_clients = plaintext_clients
        # documented, deliberate differences: (where, plain_regex, tls_regex, reason), where is
        # "host" or "peer"; a line of the tls run matching tls_regex where the plain run has a line
        # matching plain_regex counts as equal (the reason goes in the README's limits)
        self.differs = differs
        # peers that are real TLS programs (redis-cli --tls, curl, nginx...) write no key log: their
        # connections are judged on record framing, version, suite and alerts only (no plaintext
        # byte, nothing but TLS records); connections of the python peer are still decrypted
        self.opaque_peers = opaque_peers


class Result:
    def __init__(self):
        self.lines = []
        self.rc = None
        self.peer = []
        self.peer_error = None
        self.conns = []
        self.stderr = ""
        self.keylog = None
        self.port = None


def _env(case, mode, files, port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLI_TEST_")}
    if SANITIZER_LIBS:  # both runs alike: leak checks of hosts (and their forked children) are off
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    env.update({k: str(v) for k, v in case.env.items()})
    if mode == "tls":
        env["LD_PRELOAD"] = " ".join(SANITIZER_LIBS + [SHIM])
        if case.role == "server":
            env["SLI_SERVER_PORTS"] = str(port)
            env["SLI_CERT"], env["SLI_KEY"] = files.cert, files.key
        else:
            env["SLI_CLIENT_TARGETS"] = "127.0.0.1:%d=localhost" % port
            env["SLI_CA"] = files.ca.path
        env["SLI_LOG"] = env.get("SLI_LOG", "warn")
        env.update({k: str(v) for k, v in case.shim_env.items()})
    return env


def _listening(port):
    """Whether something listens on 127.0.0.1:port or *:port (from /proc, without connecting)."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def _wait_ready(path, proc, timeout, port=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if port is not None and _listening(port):
            return True
        try:
            if port is None and b"ready\n" in read(path):
                return True
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def _stop(proc, timeout):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return "timeout"


def run_once(case, mode, files, d):
    """One run of a case; returns a Result."""
    res = Result()
    tag = "%s-%s" % (case.name, mode)
    out_path, err_path = os.path.join(d, tag + ".out"), os.path.join(d, tag + ".err")
    keylog = os.path.join(d, tag + ".keys")
    res.keylog = keylog
    listener = None
    if case.role == "server":
        port = free_port()
        rec = wire.Recorder("127.0.0.1", port)
        ctx = PeerContext(mode, files, keylog, connect_port=rec.port)
    else:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        rec = wire.Recorder("127.0.0.1", listener.getsockname()[1])
        port = rec.port
        ctx = PeerContext(mode, files, keylog, connect_port=rec.port, listener=listener)
    res.port = port
    ctx.recorder = rec
    rec.start()
    argv = [a.replace("{port}", str(port)).replace("{dir}", d) for a in case.host]
    env = _env(case, mode, files, port)
    for k, v in list(env.items()):
        if "{port}" in v or "{dir}" in v:
            env[k] = v.replace("{port}", str(port)).replace("{dir}", d)
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                start_new_session=True)
    try:
        peer_done = threading.Event()

        def run_peer():
            try:
                if case.role == "server" and not _wait_ready(
                        out_path, proc, 10, port if case.ready == "port" else None):
                    raise AssertionError("the host never got ready")
                case.peer(ctx)
            except Exception as e:  # noqa: BLE001 — reported as an observation difference
                res.peer_error = "%s: %s" % (type(e).__name__, e)
                ctx.obs("peer script failed: %s" % res.peer_error)
                traceback.print_exc(file=sys.stdout)
            finally:
                peer_done.set()

        t = threading.Thread(target=run_peer, daemon=True)
        t.start()
        peer_done.wait(case.timeout)
        if not peer_done.is_set():
            ctx.obs("peer script still running after %ds" % case.timeout)
        if case.stop == "term" and peer_done.is_set() and proc.poll() is None:
            time.sleep(0.2)  # let the host finish what the peer saw end
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            res.rc = _stop(proc, 5)
            res.rc = "terminated" if res.rc == -signal.SIGTERM else res.rc
        else:
            res.rc = _stop(proc, max(1, case.timeout - 1) if not peer_done.is_set() else 15)
        for p in ctx.peers:
            p.close()
        rec.wait_closed(len(rec.connections), timeout=3)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        rec.stop()
        if listener:
            listener.close()
        try:  # helpers the host left in its session (relays, workers)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    res.lines = [l.replace(str(port), "{port}")
                 for l in read(out_path).decode(errors="replace").splitlines()]
    res.stderr = read(err_path).decode(errors="replace")
    res.peer = list(ctx.observations)
    res.conns = list(rec.connections)
    return res


def run_once_retrying(case, mode, files, d):
    """run_once, again (once) when the host could not bind its port: another test running at the
    same time took the free port we picked — a setup failure, not an observation."""
    res = run_once(case, mode, files, d)
    if res.rc == 99 and "host setup failed: bind/listen" in res.stderr:
        res = run_once(case, mode, files, d)
    return res


def _allow(case, where, plain_lines, tls_lines):
    """tls_lines with the case's documented differences replaced by the plain run's lines."""
    out = list(tls_lines)
    for i, line in enumerate(out):
        if i >= len(plain_lines):
            break
        for w, pre, tre, _ in case.differs:
            if w == where and re.search(pre, plain_lines[i]) and re.search(tre, line):
                out[i] = plain_lines[i]
    return out


def compare(case, plain, tls):
    """Every difference between the runs, and every wire problem of the tls run."""
    problems = []
    tls_lines = _allow(case, "host", plain.lines, tls.lines)
    tls_peer = _allow(case, "peer", plain.peer, tls.peer)
    if plain.lines != tls_lines:
        problems.append("host observations differ:\n" + _diff(plain.lines, tls_lines))
    if plain.rc != tls.rc:
        problems.append("host exit status: plain %s, tls %s" % (plain.rc, tls.rc))
    if plain.peer != tls_peer:
        problems.append("peer observations differ:\n" + _diff(plain.peer, tls_peer))
    if plain.peer_error:
        problems.append("the peer script failed in the plain run (a broken case): " + plain.peer_error)
    if case.connections is not None and len(tls.conns) != case.connections:
        problems.append("tls run: %d connections on the wire, expected %d" % (len(tls.conns),
                                                                               case.connections))
    for c in tls.conns:
        if not c.c2s and not c.s2c:
            continue  # a connection that never carried a byte (a refused or silent client)
        if case.plaintext_clients and c.c2s[:1] != b"\x16":
            continue
        rep = wire.check_tls(c, tls.keylog)
        for p in rep.problems:
            problems.append("wire, connection %d: %s" % (c.index, p))
        if rep.ok() and not rep.decrypted and rep.version == "TLSv1.3" and not (
                case.opaque_peers and any("in the key log" in n for n in rep.notes)):
            problems.append("wire, connection %d: not decrypted (%s)" % (c.index, "; ".join(rep.notes)))
    errors = [l for l in tls.stderr.splitlines() if re.search(r"sli-preload\[\d+\] (error|warn)", l)]
    for l in errors:
        if not any(re.search(a, l) for a in list(case.allow_log) + list(case.expect_log)):
            problems.append("shim log: " + l)
    for pat in case.expect_log:
        if not re.search(pat, tls.stderr):
            problems.append("shim log lacks /%s/" % pat)
    if "ERROR: AddressSanitizer" in tls.stderr or "runtime error:" in tls.stderr:
        problems.append("sanitizer report:\n" + tls.stderr[-3000:])
    if case.check:
        try:
            case.check(plain, tls)
        except AssertionError as e:
            problems.append(str(e))
    return problems


def _diff(a, b):
    import difflib
    return "\n".join("      " + l for l in difflib.unified_diff(a, b, "plain", "tls", lineterm="", n=2))


def run_cases(cases, only=None):
    """Runs each case plain then tls; prints ok/FAIL per case; exits 1 on any failure."""
    d = tempfile.mkdtemp(prefix="sli-diff-")
    os.environ["SLI_STATE_DIR"] = os.path.join(d, "state")
    files = Files(lambda name: os.path.join(d, name))
    if callable(cases):  # cases that need the certificates or the folder: cases(files)
        cases = cases(files)
    only = only or (sys.argv[1:] if len(sys.argv) > 1 else None)
    failed = passed = 0
    for case in cases:
        if only and case.name not in only:
            continue
        t0 = time.time()
        try:
            plain = run_once_retrying(case, "plain", files, d)
            tls = run_once_retrying(case, "tls", files, d)
            problems = compare(case, plain, tls)
        except Exception as e:  # noqa: BLE001
            problems = ["harness error: %s\n%s" % (e, traceback.format_exc())]
            plain = tls = None
        if problems:
            failed += 1
            print("FAIL %-40s %.2fs" % (case.name, time.time() - t0), flush=True)
            for p in problems:
                print("     " + p.replace("\n", "\n     "), flush=True)
            if tls is not None:
                print("     --- tls run host output (last lines) ---")
                for l in tls.lines[-12:]:
                    print("       " + l)
                print("     --- tls run stderr (last 1500 chars) ---\n" +
                      "\n".join("       " + l for l in tls.stderr[-1500:].splitlines()), flush=True)
        else:
            passed += 1
            print("ok   %-40s %.2fs" % (case.name, time.time() - t0), flush=True)
        if os.environ.get("SLI_TEST_VERBOSE") and plain is not None:
            for label, r in (("plain", plain), ("tls", tls)):
                print("     %s host: %s\n     %s peer: %s" % (label, r.lines, label, r.peer))
    import shutil
    shutil.rmtree(d, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)
