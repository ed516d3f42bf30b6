#!/usr/bin/python3
"""Differential tests (difftest.py) with real programs nobody here wrote as hosts, each run plain
and preloaded, the same peer script against both:

  node_http           node's plain `http` server (libuv, epoll, syscall(SYS_close)): requests with
                      Connection: close; a file read with fs.readFileSync on a reused fd number;
                      node's own https client (OpenSSL) in the same process reading its CA file
  memcached           memcached (libevent, 4 threads): set/get on 6 concurrent connections, quit
  asyncio_echo        a python asyncio stream server: line echo, the client half-closes, "bye"
  socat_halfclose     socat as a TLS *client* that half-closes after its request (a plain socat
                      lost the server's answer to the landed shim)
  socat_fork_server   socat TCP-LISTEN,fork with SYSTEM: one forked process per connection
  http_server_cgi     python3 -m http.server --cgi: the CGI script's stdout is the connection
                      (fork + dup2 + exec in the server: the session goes to a relay)
"""
import os
import socket
import ssl
import subprocess
import threading

from difftest import Case  # noqa: I001 (shimlib sets sys.path)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hosts", "realhosts")


def http_get(ctx, path):
    p = ctx.connect()
    p.send(b"GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path.encode())
    data, how = p.recv_all(timeout=15)
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n")[0] if head else b""
    return status, body, how


# ---- node ----

class HttpsServer:
    """A small python ssl HTTPS server for node's own https client (not a shim target)."""

    def __init__(self, files):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(files.cert, files.key)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            try:
                s = self.ctx.wrap_socket(c, server_side=True)
                s.recv(4096)
                s.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nfrom elsewhere")
                s.close()
            except (OSError, ssl.SSLError):
                c.close()


def node_peer(ctx):
    def on(p, path):
        p.send(b"GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path.encode())
        data, how = p.recv_all(timeout=15)
        head, _, body = data.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode(), body, how

    for i in range(2):
        # a connection held open while another comes and goes: the file is then opened on the
        # number the closed socket had (libuv closes with syscall(SYS_close))
        held = ctx.connect()
        ctx.obs("quick %d: %s %r %s" % ((i,) + on(ctx.connect(), "/file")))
        ctx.obs("held %d: %s %r %s" % ((i,) + on(held, "/file" if i == 0 else "/fetch")))
    ctx.obs("last: %s %r %s" % on(ctx.connect(), "/file"))


# ---- memcached ----

def memcached_peer(ctx):
    peers = [ctx.connect() for _ in range(6)]
    results = [None] * 6

    def one(i):
        p = peers[i]
        out = []
        for k in range(20):
            value = b"v%d-%d-" % (i, k) + b"x" * (k * 50)
            p.send(b"set key%d_%d 0 0 %d\r\n%s\r\n" % (i, k, len(value), value))
            out.append(p.recv_exact(len(b"STORED\r\n")))
        for k in range(20):
            value = b"v%d-%d-" % (i, k) + b"x" * (k * 50)
            p.send(b"get key%d_%d\r\n" % (i, k))
            want = b"VALUE key%d_%d 0 %d\r\n%s\r\nEND\r\n" % (i, k, len(value), value)
            got = p.recv_exact(len(want))
            out.append(b"ok" if got == want else b"bad: " + got[:60])
        p.send(b"quit\r\n")
        rest, how = p.recv_all()
        out.append(b"after quit %r %s" % (rest, how.encode()))
        results[i] = out

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for i, r in enumerate(results):
        ctx.obs("client %d: %s" % (i, r and sorted(set(x.decode(errors="replace") for x in r))))


# ---- asyncio ----

def asyncio_peer(ctx):
    for i in range(3):
        p = ctx.connect()
        for k in range(5):
            p.send(b"line %d.%d\n" % (i, k))
        p.shutdown_write()
        data, how = p.recv_all()
        ctx.obs("client %d: %r %s" % (i, data, how))


# ---- socat ----

def socat_server_peer(ctx):
    p = ctx.accept()
    data, how = p.recv_all()
    ctx.obs("request %r, end %s" % (data, how))
    p.send(b"the answer comes after your half-close\n")
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("then %r %s" % (rest, how))


def socat_fork_peer(ctx):
    for i in range(3):
        p = ctx.connect()
        p.send(b"hello %d\n" % i)
        data, how = p.recv_all()
        ctx.obs("client %d: %r %s" % (i, data, how))


# ---- http.server --cgi ----

def cgi_peer(ctx):
    for q in ("a=1", "b=2"):
        status, body, how = http_get(ctx, "/cgi-bin/hello.sh?" + q)
        ctx.obs("cgi %s: %s %d bytes, %r ... %r, end %s" % (
            q, status.decode(), len(body), body[:60], body[-30:], how))


def cases(files):
    data_file = os.path.join(os.environ["SLI_STATE_DIR"] + "-data.txt")
    with open(data_file, "w") as f:
        f.write("the contents of a file read on a reused fd number\n")
    https = HttpsServer(files)
    socat_req = os.path.join(os.environ["SLI_STATE_DIR"] + "-req.txt")
    with open(socat_req, "w") as f:
        f.write("a request, then socat half-closes\n")
    return [
        Case("node_http", ["node", os.path.join(HERE, "node_http.js"), "{port}", data_file,
                           files.ca.path, str(https.port)], "server", node_peer, stop="term"),
        Case("memcached", ["memcached", "-u", "root", "-l", "127.0.0.1", "-p", "{port}", "-U", "0",
                           "-t", "4"], "server", memcached_peer, ready="port", connections=6, stop="term"),
        Case("asyncio_echo", ["/usr/bin/python3", os.path.join(HERE, "asyncio_echo.py"), "{port}"],
             "server", asyncio_peer, connections=3),
        Case("socat_halfclose", ["/bin/sh", "-c", "socat -t 5 - TCP:127.0.0.1:{port} < %s; "
                                 "echo socat exit $?" % socat_req], "client", socat_server_peer,
             connections=1),
        Case("socat_fork_server", ["socat", "TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                                   "SYSTEM:'read l; echo \"got $l\"'"], "server", socat_fork_peer,
             ready="port", connections=3, stop="term"),
        Case("http_server_cgi", ["/usr/bin/python3", "-m", "http.server", "--cgi", "--bind",
                                 "127.0.0.1", "--directory", HERE, "{port}"], "server", cgi_peer,
             ready="port", connections=2, stop="term"),
    ]


if __name__ == "__main__":
    import difftest
    difftest.run_cases(cases)
