#!/usr/bin/python3
"""Watching a preloaded host: a scan of 61 plaintext clients against a preloaded
`python3 -m http.server` (require mode) is logged at most 20 failures a second, the first line of
the next second counting those left out — every failure either shown or counted; the host serves
TLS clients throughout."""
import re
import socket
import ssl
import sys
import time

from harness import CA, Checks, Dir, Proc, expect, free_port, plaintext_client
from shimlib import shim_env

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")
checks = Checks()


@checks.case
def scan_logged_under_a_limit():
    port = free_port()
    p = Proc(["/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", str(port),
              "--directory", d("")], d, "scan",
             env=shim_env(SLI_SERVER_PORTS=port, SLI_CERT=CERT, SLI_KEY=KEY))
    try:
        ctx = ssl.create_default_context(cafile=ca.path)
        t0 = time.time()
        while time.time() - t0 < 10:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    with ctx.wrap_socket(s, server_hostname="localhost"):
                        break
            except (OSError, ssl.SSLError):
                time.sleep(0.05)
        t0 = time.time()
        for _ in range(60):
            plaintext_client(port)
        expect(time.time() - t0 < 0.9, "the scan fits in a second (%.2f s)" % (time.time() - t0))
        time.sleep(1.1)
        plaintext_client(port)
        p.wait_for(r"(\d+) more failed connections in the last second were not logged", where="log")
        log = p.stderr()
        shown = len(re.findall(r"SLI_E_NOT_TLS", log))
        hidden = sum(int(n) for n in re.findall(r"(\d+) more failed connections", log))
        expect(shown + hidden == 61, "every failure shown or counted: %d + %d" % (shown, hidden))
        expect(shown <= 41, "at most 20 a second shown: %d" % shown)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET / HTTP/1.0\r\n\r\n")
                expect(t.recv(12).startswith(b"HTTP/1.0 200"), "still serving TLS")
    finally:
        p.stop()


sys.exit(checks.finish(d))
