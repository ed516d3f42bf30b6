#!/usr/bin/python3
"""Real legacy binaries made TLS by LD_PRELOAD, as differential cases (difftest.py): each host runs
plain against a plain peer, then preloaded against a TLS peer, through the wire recorder; what the
host printed, how it exited and what the peers observed must be equal, and every TLS connection
must be clean on the wire (the python peer's connections decrypted record by record with its key
log; those of real TLS clients -- redis-cli --tls, redis-benchmark, curl -- judged on framing:
opaque_peers). Loopback only; every process is this program's own, started in its own session.

  redis_tls_clients          redis-server: redis-cli --tls PING / SET / GET, the python peer's
                             RESP exchange (a 300 KiB value both ways), redis-benchmark --tls
                             (20 clients, then 10 clients pipelining 16): no errors
  redis_require_refuses_plaintext
                             require mode (the default): a plaintext redis-cli gets no answer
                             (served in the plain run: a documented difference), nothing but TLS
                             records from the server on its connection, SLI_E_NOT_TLS logged; a
                             TLS client is served after it
  redis_optional_serves_both SLI_MODE=optional: a plaintext redis-cli and the python peer's raw
                             RESP are served in the clear, redis-cli --tls and the python TLS peer
                             over TLS, on the same port
  nginx_sendfile             nginx, master + 2 workers (running as nobody), sendfile on: a 6 MiB
                             file byte-exact to the python peer and to curl, then 24 parallel
                             requests (every 4th the big file), each byte-exact
  nginx_refuses_plaintext    a plaintext GET to nginx's TLS port is not served (documented
                             difference), nothing but TLS records from nginx on it
  http_server_threaded       python3 -m http.server (ThreadingHTTPServer): curl and the python
                             peer; 16 requests at once (8 curl, 8 python peers)
  curl_tls_client            curl fetching a plain http:// URL is a verifying TLS client; the peer
                             plays the HTTP server
  redis_cli_tls_client       plain redis-cli (commands on stdin) as a TLS client: PING, SET, GET of
                             a 300 KiB value; the peer plays a RESP server
  redis_cli_wrong_ca         the same client with SLI_CA naming another CA: the handshake fails
                             with SLI_E_UNTRUSTED in the shim log, redis-cli gets an error, not a
                             byte of the command crosses the wire (documented difference)
  redis_cli_wrong_name       the same with the target's server name db.example.com:
                             SLI_E_HOSTNAME, nothing sent
  redis_native_tls_interop   (not differential: a real OpenSSL TLS server as the peer) plain
                             redis-cli preloaded against redis-server --tls-port, through a
                             wire.Recorder: PING / SET / GET answered, every connection nothing but
                             TLS 1.3 records; with another CA: SLI_E_UNTRUSTED, no answer, no
                             plaintext on the wire
  invalid_configuration_fails_closed
                             (not differential) a missing SLI_CERT: the preloaded http.server's
                             bind fails with EACCES, the shim names SLI_E_FILE; a bad
                             SLI_SERVER_PORTS value in a program that never binds is reported, the
                             program runs
  shim_exports_cover_hosts_imports
                             (static) the shim exports exactly shim.sym, and every socket call
                             nginx, redis-server and python3 import is among them

The non-differential checks are Cases whose host is /bin/true and whose check() does the work, so
that they share difftest's pass/fail count. In a sanitizer build the case whose *host* is curl is
left out: curl with libasan preloaded hangs even without the shim (LD_PRELOAD=libasan.so.8 curl
http://127.0.0.1:1/ never returns); curl as a peer (not preloaded) runs in every build.
"""
import hashlib
import json
import os
import re
import subprocess
import threading
import time

import difftest
import wire
from difftest import Case, Timeout  # noqa: I001 (shimlib sets sys.path)
from harness import CA
from shimlib import SANITIZER_LIBS, free_port

SHIM = difftest.SHIM
KIB, MIB = 1024, 1024 * 1024


def sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


def blob(label, n):
    return hashlib.shake_256(label.encode()).digest(n)


def run(args, timeout=30, env=None, stdin=None):
    """(rc, stdout, stderr) of a program; rc "timeout" when it did not end in time."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("SLI_TEST_")}
    e.update(env or {})
    try:
        r = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, env=e)
    except subprocess.TimeoutExpired as x:
        return "timeout", (x.stdout or b"").decode(errors="replace"), \
            (x.stderr or b"").decode(errors="replace")
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def parallel(n, fn, timeout=60):
    """fn(i) for i in 0..n-1 on threads; the results in index order (an exception is a result)."""
    results = [None] * n

    def one(i):
        try:
            results[i] = fn(i)
        except Exception as e:  # noqa: BLE001 — an observation, compared between the runs
            results[i] = "failed: %s %s" % (type(e).__name__, e)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    end = time.time() + timeout
    for t in threads:
        t.join(max(0.0, end - time.time()))
    return [r if r is not None else "still running" for r in results]


# ---- RESP (the redis protocol), for the python peer ----

def resp_command(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Stream:
    """Buffered reads over a difftest Peer."""

    def __init__(self, peer):
        self.p = peer
        self.buf = b""

    def line(self, timeout=10.0):
        end = time.time() + timeout
        while b"\r\n" not in self.buf:
            chunk = self.p.recv(65536, max(0.001, end - time.time()))
            if not chunk:
                raise EOFError("connection ended (%s) after %r" % (self.p.eof, self.buf[:60]))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exact(self, n, timeout=10.0):
        end = time.time() + timeout
        while len(self.buf) < n:
            chunk = self.p.recv(65536, max(0.001, end - time.time()))
            if not chunk:
                raise EOFError("connection ended (%s) in a %d-byte read" % (self.p.eof, n))
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def reply(self):
        """One RESP reply: bytes for a bulk string, str for status/error/integer, None for nil."""
        line = self.line()
        if line[:1] == b"$":
            n = int(line[1:])
            if n < 0:
                return None
            data = self.exact(n + 2)
            return data[:-2]
        return line.decode(errors="replace")

    def command(self):
        """One RESP command (array of bulk strings) from a client; None at the end of input."""
        try:
            line = self.line()
        except EOFError:
            return None
        if line[:1] != b"*":
            raise ValueError("not a RESP array: %r" % line[:60])
        args = []
        for _ in range(int(line[1:])):
            n = int(self.line()[1:])
            args.append(self.exact(n + 2)[:-2])
        return args


def resp_exchange(ctx, tag, size=300 * KIB):
    """The python peer's RESP exchange on one connection: PING, SET and GET of a big value."""
    p = ctx.connect()
    s = Stream(p)
    value = blob(tag, size)
    p.send(resp_command("PING"))
    ctx.obs("%s PING -> %s" % (tag, s.reply()))
    p.send(resp_command("SET", tag, value))
    ctx.obs("%s SET %d bytes -> %s" % (tag, size, s.reply()))
    p.send(resp_command("GET", tag))
    got = s.reply()
    ctx.obs("%s GET -> %s" % (tag, "the same %d bytes" % size if got == value else
                              "%r (%d bytes)" % (got[:40] if got else got, len(got or b""))))
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("%s end: %r %s" % (tag, rest, how))


def redis_cli(ctx, *cmd, tls=None, timeout=15):
    """redis-cli against the host through the recorder; TLS (--tls, our CA) when `tls` (default:
    the run's mode)."""
    tls = ctx.tls if tls is None else tls
    args = ["redis-cli", "-h", "127.0.0.1", "-p", str(ctx.connect_port)]
    if tls:
        args += ["--tls", "--cacert", ctx.files.ca.path]
    return run(args + list(cmd), timeout=timeout)


# ---- redis-server ----

def redis_host(*extra):
    # the log goes to a file of the run: redis' stdout lines carry pids and times
    return ["redis-server", "--port", "{port}", "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--logfile", "{dir}/redis-{port}.log"
            ] + list(extra)


def redis_tls_clients_peer(ctx):
    rc, out, err = redis_cli(ctx, "PING")
    ctx.obs("redis-cli PING -> %r rc %s %s" % (out.strip(), rc, err.strip()))
    rc, out, err = redis_cli(ctx, "SET", "greeting", "hello over tls")
    ctx.obs("redis-cli SET -> %r rc %s %s" % (out.strip(), rc, err.strip()))
    rc, out, err = redis_cli(ctx, "GET", "greeting")
    ctx.obs("redis-cli GET -> %r rc %s %s" % (out.strip(), rc, err.strip()))
    resp_exchange(ctx, "python")
    for label, args in (("20 clients", ["-n", "10000", "-c", "20"]),
                        ("10 clients, pipeline 16", ["-n", "50000", "-c", "10", "-P", "16"])):
        cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(ctx.connect_port), "-t", "set,get",
               "-q"] + args
        if ctx.tls:
            cmd[1:1] = ["--tls", "--cacert", ctx.files.ca.path]
        rc, out, err = run(cmd, timeout=60)
        if rc == 0 and "SET:" in out and "GET:" in out and "rror" not in out + err:
            ctx.obs("redis-benchmark %s: SET and GET ran, no errors" % label)
        else:
            ctx.obs("redis-benchmark %s: rc %s: %s %s" % (label, rc, out[-300:], err[-300:]))
    # the server still answers after the load
    rc, out, err = redis_cli(ctx, "DBSIZE")
    ctx.obs("redis-cli DBSIZE after the load -> rc %s, a number: %s" % (rc, out.strip().isdigit()))


def redis_require_peer(ctx):
    rc, out, err = redis_cli(ctx, "PING", tls=False)
    if out.strip() == "PONG":
        ctx.obs("plaintext redis-cli PING: served")
    else:
        ctx.obs("plaintext redis-cli PING: not served (rc %s)" % rc)
    rc, out, err = redis_cli(ctx, "PING")
    ctx.obs("then redis-cli PING -> %r rc %s" % (out.strip(), rc))
    resp_exchange(ctx, "after-refusal", 1000)


def redis_optional_peer(ctx):
    rc, out, err = redis_cli(ctx, "PING", tls=False)
    ctx.obs("plaintext redis-cli PING -> %r rc %s %s" % (out.strip(), rc, err.strip()))
    rc, out, err = redis_cli(ctx, "SET", "mode", "optional")
    ctx.obs("redis-cli SET -> %r rc %s %s" % (out.strip(), rc, err.strip()))
    # the python peer in the clear (a raw socket, both runs) ...
    s = ctx.raw_connect()
    s.settimeout(10)
    s.sendall(resp_command("GET", "mode"))
    got = b""
    try:
        while got.count(b"\r\n") < 2:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError as e:
        got += b" [%s]" % type(e).__name__.encode()
    ctx.obs("raw plaintext GET -> %r" % got)
    s.close()
    # ... and speaking the run's protocol (TLS in the tls run)
    resp_exchange(ctx, "python", 64 * KIB)


def only_tls_records_to_plaintext_clients(plain, tls):
    """In a require-mode tls run: a client that sent no TLS record got nothing but TLS records
    back (an alert at most), and there was such a client."""
    seen = 0
    for c in tls.conns:
        if c.c2s and c.c2s[:1] != b"\x16":
            seen += 1
            _, problem = wire.split_records(c.s2c)
            assert not problem, "wire, connection %d (a plaintext client): server sent %s" % (
                c.index, problem)
    assert seen, "no plaintext client was seen on the wire"


# ---- nginx ----

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 2;
pid @TMP@/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path @TMP@/body;
  proxy_temp_path @TMP@/proxy;
  fastcgi_temp_path @TMP@/fastcgi;
  uwsgi_temp_path @TMP@/uwsgi;
  scgi_temp_path @TMP@/scgi;
  server { listen 127.0.0.1:@PORT@; root @ROOT@; }
}
"""


def nginx_host(d):
    # the configuration names the run's port: made from a template when the run starts
    tmp = "{dir}/nginx-{port}"
    return ["/bin/sh", "-c", "mkdir -p %s && chmod 755 %s && "
            "sed -e 's|@PORT@|{port}|' -e 's|@TMP@|%s|' %s/nginx.conf.in > %s/nginx.conf && "
            "exec nginx -p %s -e stderr -c %s/nginx.conf" % (tmp, tmp, tmp, d, tmp, tmp, tmp)]


def http_get(ctx, path, timeout=30):
    """GET over the python peer: (status line, body, how the connection ended)."""
    p = ctx.connect(timeout=timeout)
    p.send(b"GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path.encode())
    data, how = p.recv_all(timeout=timeout)
    head, _, body = data.partition(b"\r\n\r\n")
    return (head.split(b"\r\n")[0].decode(errors="replace") if head else ""), body, how


def curl(ctx, path, out=None, timeout=60):
    """curl (the real TLS client in the tls run) GETting path through the recorder."""
    port = ctx.connect_port
    if ctx.tls:
        args = ["curl", "-sS", "--fail", "--cacert", ctx.files.ca.path, "--resolve",
                "localhost:%d:127.0.0.1" % port, "https://localhost:%d%s" % (port, path)]
    else:
        args = ["curl", "-sS", "--fail", "http://127.0.0.1:%d%s" % (port, path)]
    if out:
        args += ["-o", out]
    return run(args, timeout=timeout)


def nginx_peer(big, small):
    def peer(ctx):
        status, body, how = http_get(ctx, "/big.bin")
        ctx.obs("python GET big: %s, %d bytes, %s, end %s" % (
            status, len(body), "byte-exact" if body == big else "DIFFERS " + sha(body), how))
        out = os.path.join(os.path.dirname(ctx.keylog), "curl-big-%s.bin" % ctx.mode)
        rc, _, err = curl(ctx, "/big.bin", out)
        got = open(out, "rb").read() if os.path.exists(out) else b""
        ctx.obs("curl GET big: rc %s %s, %d bytes, %s" % (
            rc, err.strip(), len(got), "byte-exact" if got == big else "DIFFERS " + sha(got)))

        def one(i):
            want = big if i % 4 == 0 else small
            status, body, how = http_get(ctx, "/big.bin" if i % 4 == 0 else "/small.txt")
            return "%s %s end %s" % (status, "byte-exact" if body == want else "DIFFERS %d bytes"
                                     % len(body), how)

        for i, r in enumerate(parallel(24, one, timeout=60)):
            ctx.obs("parallel %d: %s" % (i, r))
    return peer


def nginx_plaintext_peer(ctx):
    s = ctx.raw_connect()
    s.settimeout(5)
    s.sendall(b"GET /small.txt HTTP/1.0\r\nHost: localhost\r\n\r\n")
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    s.close()
    ctx.obs("plaintext GET: %s" % ("served" if b"small file" in got else "not served"))
    status, body, how = http_get(ctx, "/small.txt")
    ctx.obs("then GET: %s %r end %s" % (status, body, how))


# ---- python3 -m http.server ----

HELLO = b"hello from a plain python server\n"


def http_server_peer(ctx):
    rc, out, err = curl(ctx, "/hello.txt")
    ctx.obs("curl: rc %s %r %s" % (rc, out, err.strip()))
    status, body, how = http_get(ctx, "/hello.txt")
    ctx.obs("python: %s %r end %s" % (status, body, how))

    def one(i):
        if i % 2:
            status, body, how = http_get(ctx, "/hello.txt")
            return "python %s %r %s" % (status, body == HELLO, how)
        rc, out, err = curl(ctx, "/hello.txt")
        return "curl rc %s %r %s" % (rc, out.encode() == HELLO, err.strip())

    for i, r in enumerate(parallel(16, one, timeout=60)):
        ctx.obs("parallel %d: %s" % (i, r))


# ---- curl as a client ----

CURL_BODY = b"fetched through a preloaded curl\n" * 3


def curl_server_peer(ctx):
    p = ctx.accept()
    s = Stream(p)
    request = []
    while True:
        line = s.line().decode(errors="replace")
        if not line:
            break
        request.append(line)
    ctx.obs("request line: %s" % request[0])
    names = sorted(h.split(":", 1)[0].lower() for h in request[1:])
    host = [h.split(":", 1)[1].strip().replace(str(ctx.connect_port), "{port}")
            for h in request[1:] if h.lower().startswith("host:")]
    ctx.obs("header names: %s, host %s" % (names, host))
    p.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        len(CURL_BODY), CURL_BODY))
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("after the answer: %r %s" % (rest, how))


# ---- redis-cli as a client ----

CLI_BIG = blob("redis-cli big value", 300 * KIB).hex()[:300 * KIB]  # printable: redis-cli prints it


def cli_host(d, commands=None):
    """redis-cli, its commands on stdin (or PING as its argument: one connection, no reconnect
    after an error); its output summarised: exit status, the first line of stdout (or else of
    stderr), the length and hash of stdout. redis-cli's stderr (the shim's log, any sanitizer
    report) is copied to the host's stderr, which difftest judges."""
    out, err = "%s/cli-{port}.out" % d, "%s/cli-{port}.err" % d
    cli = "redis-cli -h 127.0.0.1 -p {port}"
    cli = "printf '%s' | %s" % (commands, cli) if commands else cli + " PING"
    return ["/bin/sh", "-c", "%s > %s 2> %s; echo \"redis-cli exit $?\"; "
            "cat %s >&2; (cat %s; grep -v sli-preload %s) | head -n 1 | cut -c 1-60; "
            "wc -c < %s; sha256sum < %s" % (cli, out, err, err, out, err, out, out)]


def fake_redis_peer(ctx):
    """Plays a redis server for one client: PING, SET, GET, anything else an error. One
    observation line for the connection: the commands received and how it ended."""
    try:
        p = ctx.accept()
    except Timeout:
        ctx.obs("connection: none")
        return
    except Exception as e:  # noqa: BLE001 — the tls run of the verification-failure cases
        ctx.obs("connection: handshake failed" if "SSL" in type(e).__name__ else
                "connection: %s %s" % (type(e).__name__, e))
        return
    s = Stream(p)
    store = {b"big": CLI_BIG.encode()}
    seen = []
    while True:
        try:
            cmd = s.command()
        except EOFError as e:
            end = "ended in a command: %s" % e
            break
        if cmd is None:
            end = "client ended (%s)" % p.eof
            break
        name = cmd[0].upper()
        seen.append(" ".join([name.decode(errors="replace")] + [
            "<%d bytes>" % len(a) if len(a) > 40 else a.decode(errors="replace") for a in cmd[1:]]))
        if name == b"PING":
            p.send(b"+PONG\r\n")
        elif name == b"SET" and len(cmd) == 3:
            store[cmd[1]] = cmd[2]
            p.send(b"+OK\r\n")
        elif name == b"GET" and len(cmd) == 2:
            v = store.get(cmd[1])
            p.send(b"$-1\r\n" if v is None else b"$%d\r\n%s\r\n" % (len(v), v))
        else:
            p.send(b"-ERR unknown command\r\n")
    ctx.obs("commands %s, %s" % (seen, end))


def refused_in_handshake(plain, tls):
    """A client that refused the server's certificate: its connection carries the ClientHello
    and, under its handshake key, nothing but a fatal alert -- not a byte of application data.
    (wire.check_tls decrypts a direction only when the key log has its application secret too,
    which a server never logs when the client aborts: the handshake records are opened here.)"""
    assert len(tls.conns) == 1, "%d connections" % len(tls.conns)
    c = tls.conns[0]
    rep = wire.check_tls(c, tls.keylog)
    assert rep.version == "TLSv1.3" and not rep.problems, "wire: %s" % rep
    secret = wire.read_keylog(tls.keylog).get(("CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                               rep.client_random))
    assert secret, "no client handshake secret in the key log"
    key = wire.Tls13Key(rep.cipher_id, secret)
    recs, problem = wire.split_records(c.c2s)
    assert not problem, "wire c2s: %s" % problem
    enc = [r for r in recs if r.type == wire.CT_APPLICATION_DATA]
    inner = [key.open(seq, r) for seq, r in enumerate(enc)]
    assert inner and all(i is not None for i in inner), \
        "c2s: %d encrypted records, not all open under the handshake key" % len(enc)
    inner = [i.rstrip(b"\0") for i in inner]
    assert all(i[-1] == wire.CT_ALERT and i[0] == 2 for i in inner), \
        "c2s: the client sent more than a fatal alert: %r" % [i[:8] for i in inner]


# ---- redis-server --tls-port (OpenSSL) as a real TLS server: not differential ----

def preload_env(**settings):
    """The environment of a program run preloaded outside difftest (the shim under test)."""
    env = {"LD_PRELOAD": " ".join(SANITIZER_LIBS + [SHIM])}
    if SANITIZER_LIBS:
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    env.update({k: str(v) for k, v in settings.items()})
    return env


def shim_trouble(err):
    """A shim warning/error or a sanitizer report in a preloaded program's stderr."""
    m = re.search(r".*sli-preload\[\d+\] (error|warn).*|ERROR: AddressSanitizer.*|"
                  r".*runtime error:.*", err)
    return m.group(0) if m else None


def redis_native_tls_interop(files, d):
    other = CA(lambda name: os.path.join(d, name), "Other CA")
    port = free_port()
    log = open(os.path.join(d, "native-redis.log"), "wb")
    srv = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", files.cert, "--tls-key-file", files.key, "--tls-ca-cert-file",
         files.ca.path, "--tls-auth-clients", "no", "--save", "", "--appendonly", "no"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    rec = wire.Recorder("127.0.0.1", port).start()
    problems = []
    try:
        end = time.time() + 10
        while not difftest._listening(port):
            assert time.time() < end and srv.poll() is None, \
                "redis-server --tls-port never listened"
            time.sleep(0.02)

        def cli(ca, name, *cmd):
            env = preload_env(SLI_CA=ca, SLI_CLIENT_TARGETS="127.0.0.1:%d=%s" % (rec.port, name))
            return run(["redis-cli", "-h", "127.0.0.1", "-p", str(rec.port)] + list(cmd),
                       env=env, timeout=15)

        for cmd, want in ((["PING"], "PONG"), (["SET", "k", "over a preloaded redis-cli"], "OK"),
                          (["GET", "k"], "over a preloaded redis-cli")):
            rc, out, err = cli(files.ca.path, "localhost", *cmd)
            if rc != 0 or out.strip() != want or shim_trouble(err):
                problems.append("verified %s: rc %s %r %r" % (cmd[0], rc, out, err[-300:]))
        good = len(rec.connections)
        for label, ca, name, code in (("another CA", other.path, "localhost", "SLI_E_UNTRUSTED"),
                                      ("another name", files.ca.path, "db.example.com",
                                       "SLI_E_HOSTNAME")):
            rc, out, err = cli(ca, name, "PING")
            if rc == 0 or "PONG" in out or code not in err or "ERROR: AddressSanitizer" in err:
                problems.append("%s: rc %s %r %r" % (label, rc, out, err[-300:]))
        rec.wait_closed(len(rec.connections), timeout=3)
        conns = rec.connections
        if good != 3 or len(conns) != good + 2:
            problems.append("%d connections on the wire, expected 3 + 2" % len(conns))
        for c in conns:
            rep = wire.check_tls(c)
            for p in rep.problems:
                problems.append("wire, connection %d: %s" % (c.index, p))
            if rep.version != "TLSv1.3":
                problems.append("wire, connection %d: %s, not TLSv1.3" % (c.index, rep.version))
            enc = [r for r in wire.split_records(c.c2s)[0] if r.type == wire.CT_APPLICATION_DATA]
            if c.index >= good and (len(enc) > 1 or any(len(r.payload) > 32 for r in enc)):
                # no key log from OpenSSL: an alert is 2 bytes + type + 16-byte tag
                problems.append("wire, connection %d: the refusing client sent more than an "
                                "alert: %s" % (c.index, [len(r.payload) for r in enc]))
    finally:
        rec.stop()
        try:
            os.killpg(srv.pid, 15)
        except ProcessLookupError:
            pass
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(srv.pid, 9)
            srv.wait()
        log.close()
    assert not problems, "\n".join(problems)


# ---- configuration and exports: not differential ----

def invalid_configuration_fails_closed(d):
    port = free_port()
    env = preload_env(SLI_SERVER_PORTS=port, SLI_CERT=os.path.join(d, "missing.crt"),
                      SLI_KEY=os.path.join(d, "missing.key"))
    rc, out, err = run(["/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                       env=env, timeout=20)
    assert rc not in (0, "timeout"), "the host ran with an invalid TLS configuration (rc %s)" % rc
    assert "invalid configuration" in err and "SLI_E_FILE" in err, err[-600:]
    assert "Permission denied" in err or "Errno 13" in err, "bind did not fail with EACCES: " + \
        err[-400:]
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err[-2000:]
    rc, out, err = run(["/usr/bin/python3", "-c", "print('other ports still work')"],
                       env=preload_env(SLI_SERVER_PORTS="70000"), timeout=20)
    assert rc == 0 and "other ports still work" in out and "not a port number" in err, err
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err[-2000:]


def shim_source():
    """The source tree the shim under test was built from (its build's meson-info), else ours."""
    info = os.path.join(os.path.dirname(os.path.dirname(SHIM)), "meson-info", "meson-info.json")
    try:
        with open(info) as f:
            return json.load(f)["directories"]["source"]
    except (OSError, ValueError, KeyError):
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def shim_exports_cover_hosts_imports():
    exported = set(l.split()[2] for l in subprocess.run(
        ["nm", "-D", "--defined-only", SHIM], stdout=subprocess.PIPE, text=True).stdout.splitlines()
        if len(l.split()) == 3)
    sym = os.path.join(shim_source(), "shim", "shim.sym")
    want = set(l.strip() for l in open(sym) if l.strip())
    assert exported == want, "exports differ from shim.sym: %s" % sorted(exported ^ want)
    socket_calls = re.compile(r"^(accept4?|bind|listen|connect|close|close_range|shutdown|"
                              r"dup[23]?|fcntl(64)?|ioctl|read|readv|write|writev|recv|recvfrom|"
                              r"recvmsg|send|sendto|sendmsg|sendfile(64)?|splice|poll|ppoll|"
                              r"select|pselect|epoll_ctl|epoll_wait|epoll_pwait|socket|"
                              r"__\w+_chk)$")
    for host in ("/usr/sbin/nginx", "/usr/bin/redis-server", "/usr/bin/python3"):
        imports = set()
        for l in subprocess.run(["nm", "-D", "--undefined-only", os.path.realpath(host)],
                                stdout=subprocess.PIPE, text=True).stdout.splitlines():
            name = l.split()[-1].split("@")[0]
            if socket_calls.match(name):
                imports.add(name)
        assert imports, "%s: no socket imports found (nm failed?)" % host
        missing = sorted(n for n in imports - exported
                         if not n.startswith("__") or n in ("__read_chk", "__recv_chk",
                                                            "__recvfrom_chk", "__poll_chk"))
        assert not missing, "%s imports socket calls the shim does not wrap: %s" % (host, missing)


def check_case(name, fn):
    """A non-differential check counted as a case: the host is /bin/true, check() does the work."""
    def check(plain, tls):
        fn()
    return Case(name, ["/bin/true"], "client", lambda ctx: None, check=check, connections=0,
                timeout=60)


# ---- the cases ----

def cases(files):
    d = os.path.dirname(files.ca.path)
    os.chmod(d, 0o755)  # nginx's workers run as nobody: they must reach the files
    www = os.path.join(d, "www")
    os.makedirs(www, exist_ok=True)
    os.chmod(www, 0o755)
    big = blob("nginx big file", 6 * MIB)
    small = b"small file\n"
    for name, data in (("big.bin", big), ("small.txt", small), ("hello.txt", HELLO)):
        with open(os.path.join(www, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(www, name), 0o644)
    with open(os.path.join(d, "nginx.conf.in"), "w") as f:
        f.write(NGINX_CONF.replace("@ROOT@", www))
    other = CA(lambda name: os.path.join(d, name), "Wrong CA")
    cli_cmds = "PING\\nSET greeting hello\\nGET greeting\\nGET big\\nGET missing\\n"
    cli_differs = [("host", r"^redis-cli exit 0$", r"^redis-cli exit 1$",
                    "a verification failure: redis-cli cannot connect"),
                   ("host", r"^PONG$", r"^(Could not connect|Error): ",
                    "the error redis-cli prints"),
                   ("host", r"^5$", r"^0$", "redis-cli printed nothing on stdout"),
                   ("host", "^%s  -$" % hashlib.sha256(b"PONG\n").hexdigest(),
                    "^%s  -$" % hashlib.sha256(b"").hexdigest(), "(its hash)"),
                   ("peer", r"^commands \['PING'\]", r"^connection: handshake failed$",
                    "nothing of the command crosses the wire")]
    out = [
        Case("redis_tls_clients", redis_host(), "server", redis_tls_clients_peer, ready="port",
             stop="term", opaque_peers=True, timeout=120),
        Case("redis_require_refuses_plaintext", redis_host(), "server", redis_require_peer,
             ready="port", stop="term", opaque_peers=True, plaintext_clients=True,
             expect_log=[r"SLI_E_NOT_TLS"],
             differs=[("peer", r"PING: served$", r"PING: not served",
                       "require mode: a plaintext client is refused")],
             check=only_tls_records_to_plaintext_clients),
        Case("redis_optional_serves_both", redis_host(), "server", redis_optional_peer,
             ready="port", stop="term", opaque_peers=True, plaintext_clients=True,
             shim_env={"SLI_MODE": "optional", "SLI_SNIFF_TIMEOUT_MS": "300"}),
        Case("nginx_sendfile", nginx_host(d), "server", nginx_peer(big, small), ready="port",
             stop="term", opaque_peers=True, timeout=120),
        Case("nginx_refuses_plaintext", nginx_host(d), "server", nginx_plaintext_peer,
             ready="port", stop="term", plaintext_clients=True, expect_log=[r"SLI_E_NOT_TLS"],
             differs=[("peer", r"GET: served$", r"GET: not served$",
                       "require mode: a plaintext client is refused")],
             check=only_tls_records_to_plaintext_clients),
        Case("http_server_threaded", ["/usr/bin/python3", "-m", "http.server", "{port}", "--bind",
                                      "127.0.0.1", "--directory", www], "server",
             http_server_peer, env={"PYTHONUNBUFFERED": "1"}, ready="port", stop="term",
             opaque_peers=True, timeout=90),
        Case("curl_tls_client", ["curl", "-sS", "--fail", "http://127.0.0.1:{port}/c.txt"],
             "client", curl_server_peer, connections=1),
        Case("redis_cli_tls_client", cli_host(d, cli_cmds), "client", fake_redis_peer,
             connections=1),
        Case("redis_cli_wrong_ca", cli_host(d), "client", fake_redis_peer,
             shim_env={"SLI_CA": other.path}, expect_log=[r"SLI_E_UNTRUSTED"],
             differs=cli_differs, connections=1, opaque_peers=True, check=refused_in_handshake),
        Case("redis_cli_wrong_name", cli_host(d), "client", fake_redis_peer,
             shim_env={"SLI_CLIENT_TARGETS": "127.0.0.1:{port}=db.example.com"},
             expect_log=[r"SLI_E_HOSTNAME"], differs=cli_differs, connections=1,
             opaque_peers=True, check=refused_in_handshake),
        check_case("redis_native_tls_interop", lambda: redis_native_tls_interop(files, d)),
        check_case("invalid_configuration_fails_closed",
                   lambda: invalid_configuration_fails_closed(d)),
        check_case("shim_exports_cover_hosts_imports", shim_exports_cover_hosts_imports),
    ]
    if SANITIZER_LIBS:
        print("(a sanitizer build: curl_tls_client left out -- curl with libasan preloaded hangs "
              "even without the shim)", flush=True)
        out = [c for c in out if c.host[0] != "curl"]
    return out


if __name__ == "__main__":
    difftest.run_cases(cases)
