#!/usr/bin/python3
"""One small plain-TCP echo server per event-loop style (blocking, poll, select, epoll LT, epoll ET,
fork after listen), preloaded with the shim and driven over TLS by python's ssl with a large
transfer and with tiny reads; a non-blocking-connect client made a TLS client by SLI_CLIENT_TARGETS.
A buffered-plaintext hang shows up as a failed case (each side gives up after 20 s)."""
import os
import socket
import ssl

from shimlib import EVLOOP, free_port, preloaded, shim_env  # noqa: I001 (sets sys.path)
from harness import Checks, Dir, expect, run, sli_serve

d = Dir()
checks = Checks()
CA = None


def echo_exchange(s, data, limit=20.0):
    """Sends `data` and reads the echo on one thread (an ssl socket must not be used by two)."""
    import selectors
    import time
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, got, end = 0, bytearray(), time.time() + limit
    while len(got) < len(data) and time.time() < end:
        sel.select(0.5)
        if sent < len(data):
            try:
                sent += s.send(data[sent:sent + 65536])
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            if sent == len(data):
                sel.modify(s, selectors.EVENT_READ)
        while True:
            try:
                chunk = s.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not chunk:
                return bytes(got)
            got += chunk
    s.setblocking(True)
    return bytes(got)


def drive(style, readsize, nbytes):
    global CA
    port = free_port()
    p = preloaded(d, "%s-%d" % (style, readsize), [EVLOOP, "server", style, str(port), str(readsize)],
                  SLI_SERVER_PORTS=port)
    try:
        p.wait_for("ready")
        CA = CA or os.path.join(os.environ["SLI_STATE_DIR"], "default-cert.pem")
        ctx = ssl.create_default_context(cafile=CA)
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=20),
                            server_hostname="localhost")
        data = os.urandom(nbytes)
        got = echo_exchange(s, data)
        expect(bytes(got) == data, "%s/%d: echoed %d of %d bytes, equal=%s" % (
            style, readsize, len(got), nbytes, bytes(got) == data[:len(got)]))
        s.unwrap().close()
        rc = p.p.wait(20)
        expect(rc == 0, "server exited %d: %s" % (rc, p.stderr()[-500:]))
    finally:
        p.stop()


for style in ("blocking", "peek", "poll", "select", "epoll-lt", "epoll-et", "fork"):
    def big(style=style):
        drive(style, 65536, 4 << 20)

    def tiny(style=style):
        drive(style, 7, 256 << 10)

    big.__name__ = "%s_large_transfer" % style.replace("-", "_")
    tiny.__name__ = "%s_tiny_reads" % style.replace("-", "_")
    checks.case(big)
    checks.case(tiny)


@checks.case
def handshake_timeout_frees_the_loop():
    for style in ("epoll-lt", "blocking"):
        port = free_port()
        p = preloaded(d, "timeout-" + style, [EVLOOP, "server", style, str(port), "4096"],
                      SLI_SERVER_PORTS=port, SLI_HANDSHAKE_TIMEOUT=300)
        try:
            p.wait_for("ready")
            silent = socket.create_connection(("127.0.0.1", port))
            rc = p.p.wait(10)  # the server sees an error on that connection and exits
            expect("SLI_E_TIMEOUT" in p.stderr(), "%s: no timeout logged: %s" % (style, p.stderr()))
            silent.close()
        finally:
            p.stop()


@checks.case
def nonblocking_connect_client():
    srv, port = sli_serve(d, "echo", "--echo")
    ca = os.path.join(os.environ["SLI_STATE_DIR"], "default-cert.pem")
    rc, out, err = run([EVLOOP, "client-nb", "127.0.0.1", str(port), str(2 << 20)],
                       env=shim_env(SLI_CLIENT_TARGETS="127.0.0.1:%d=localhost" % port, SLI_CA=ca),
                       timeout=40)
    srv.stop()
    expect(rc == 0 and "echoed" in out, "rc=%d out=%s err=%s" % (rc, out, err[-800:]))


checks.finish(d)
