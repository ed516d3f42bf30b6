#!/usr/bin/python3
"""`sli serve --backend ... --proxy-protocol v1|v2`: the backend learns the real client's address
from a PROXY protocol header sent before the first byte — checked by nginx's own `proxy_protocol`
listener (which answers with `$proxy_protocol_addr:$proxy_protocol_port`, both versions) and by a
python backend that parses the v2 binary header; without the flag nothing is prepended."""
import os
import socket
import ssl
import struct
import sys
import threading
import time

from harness import CA, SLI, Checks, Dir, Proc, expect, free_port

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")
checks = Checks()


def serve(name, backend_port, *extra):
    p = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--cert", CERT, "--key", KEY, "--backend",
              "127.0.0.1:%d" % backend_port] + list(extra), d, name)
    return p, int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))


def tls_request(port, data):
    """Sends `data` over TLS from a socket bound to a known port: (its local port, the answer)."""
    ctx = ssl.create_default_context(cafile=ca.path)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        local = s.getsockname()[1]
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(data)
            got = b""
            while True:
                try:
                    b = t.recv(65536)
                except (ssl.SSLError, OSError):
                    break
                if not b:
                    break
                got += b
            return local, got


def nginx(port):
    conf = d("nginx-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("""daemon off; master_process off; pid %s; error_log %s;
events { worker_connections 64; }
http { access_log off;
  server { listen 127.0.0.1:%d proxy_protocol;
    location / { return 200 "$proxy_protocol_addr:$proxy_protocol_port\\n"; } } }
""" % (d("nginx-%d.pid" % port), d("nginx-%d.err" % port), port))
    p = Proc(["nginx", "-c", conf, "-p", d("")], d, "nginx-%d" % port)
    t0 = time.time()
    while time.time() - t0 < 10:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nginx did not start: " + p.stderr())


@checks.case
def nginx_sees_the_client():
    for version in ("v1", "v2"):
        nport = free_port()
        n = nginx(nport)
        p, port = serve("pp-nginx-" + version, nport, "--proxy-protocol", version)
        try:
            local, got = tls_request(port, b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            body = got.split(b"\r\n\r\n", 1)[-1].strip()
            expect(body == b"127.0.0.1:%d" % local,
                   "nginx (%s) saw %r, the client is 127.0.0.1:%d" % (version, body, local))
        finally:
            p.stop()
            n.stop()


class Backend:
    """Reads what the relay sends first (up to 232 bytes, the largest v2 header), answers it."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        self.s.listen(4)
        self.port = self.s.getsockname()[1]
        self.first = None
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        c, _ = self.s.accept()
        c.settimeout(10)
        data = b""
        while len(data) < 16 + 12 + 5 and b"hello" not in data:
            b = c.recv(4096)
            if not b:
                break
            data += b
        self.first = data
        c.sendall(b"ok\n")
        c.close()


@checks.case
def v2_header_parsed():
    b = Backend()
    p, port = serve("pp-v2", b.port, "--proxy-protocol", "v2")
    try:
        local, got = tls_request(port, b"hello")
        data = b.first or b""
        expect(data[:12] == b"\r\n\r\n\x00\r\nQUIT\n", "the v2 signature: %r" % data[:16])
        expect(data[12] == 0x21 and data[13] == 0x11, "version 2 PROXY, TCP over IPv4: %r" % data[12:14])
        length = struct.unpack("!H", data[14:16])[0]
        src, dst, sport, dport = struct.unpack("!4s4sHH", data[16:16 + length])
        expect(socket.inet_ntoa(src) == "127.0.0.1" and sport == local and dport == port,
               "addresses: %s:%d -> :%d (client port %d, server %d)" % (socket.inet_ntoa(src), sport,
                                                                      dport, local, port))
        expect(data[16 + length:] == b"hello" and got == b"ok\n", "then the client's bytes: %r" % data)
    finally:
        p.stop()


@checks.case
def nothing_without_the_flag():
    b = Backend()
    p, port = serve("pp-none", b.port)
    try:
        tls_request(port, b"hello")
        expect(b.first == b"hello", "only the client's bytes: %r" % b.first)
    finally:
        p.stop()


sys.exit(checks.finish(d))
