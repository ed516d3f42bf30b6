#!/usr/bin/python3
"""Differential tests (difftest.py) of one small plain-TCP echo server per event-loop style
(hosts/evloop/evloop.c), each run plain against a plain peer and preloaded against a TLS peer,
through the wire recorder:

  <style>_large_transfer  4 MiB echoed, read 64 KiB at a time, the peer keeping 128 KiB in flight
  <style>_tiny_reads      256 KiB echoed, read 7 bytes at a time: every read leaves plaintext
                          buffered inside TLS, which readiness must report (a hang fails the case)
      for the styles blocking, peek (MSG_PEEK and FIONREAD agree with the read), poll, select,
      epoll-lt, epoll-et (read until EAGAIN) and fork (listen in the parent, serve in a child);
      then the peer half-closes and the host's last read must be 0, its close a clean end
  handshake_timeout_<style>  a client that connects and never speaks, with SLI_HANDSHAKE_TIMEOUT
                          300 ms, for epoll-lt and blocking: the loop is freed (the read fails
                          within bounds, SLI_E_TIMEOUT logged). The kernel's nearest is a peer that
                          goes away; the plain peer resets after 300 ms. Documented difference: the
                          host reads ETIMEDOUT where the plain run reads ECONNRESET.
  nonblocking_connect_client  a non-blocking connect + poll client made a TLS client by
                          SLI_CLIENT_TARGETS, 2 MiB echoed by the peer
"""
import random
import socket
import struct
import time

from difftest import Case  # noqa: I001 (shimlib sets sys.path)

STYLES = ("blocking", "peek", "poll", "select", "epoll-lt", "epoll-et", "fork")


def echo_peer(nbytes, seed):
    """Sends nbytes (128 KiB in flight at most), reads the echo, half-closes, reads the end."""
    def peer(ctx):
        data = random.Random(seed).randbytes(nbytes)
        p = ctx.connect(timeout=20)
        sent, got = 0, bytearray()
        while len(got) < nbytes:
            if sent < nbytes and sent - len(got) < (128 << 10):
                n = min(16 << 10, nbytes - sent)
                p.send(data[sent:sent + n])
                sent += n
                continue
            chunk = p.recv(65536, timeout=20)
            if not chunk:
                break
            got += chunk
        ctx.obs("echoed %d of %d bytes, equal: %s" % (len(got), nbytes, bytes(got) == data))
        p.shutdown_write()
        rest, how = p.recv_all(timeout=20)
        ctx.obs("after our half-close: %d bytes, %s" % (len(rest), how))
    return peer


def silent_peer(ctx):
    """Connects and never speaks. Plain run: resets after 300 ms (a peer gone away)."""
    s = ctx.raw_connect()
    if not ctx.tls:
        time.sleep(0.3)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        return
    # the shim gives up on the handshake and the host closes: wait for that end (the host's
    # observations carry the claim)
    s.settimeout(10)
    try:
        s.recv(100)
    except OSError:
        pass
    s.close()


def echo_server_peer(ctx):
    p = ctx.accept(timeout=20)
    total = 0
    while True:
        chunk = p.recv(65536, timeout=20)
        if not chunk:
            break
        total += len(chunk)
        p.send(chunk)
        if total == 2 << 20:
            break
    ctx.obs("echoed %d bytes" % total)
    rest, how = p.recv_all(timeout=20)
    ctx.obs("then %d bytes, %s" % (len(rest), how))


def cases():
    out = []
    for style in STYLES:
        name = style.replace("-", "_")
        out.append(Case(name + "_large_transfer",
                        ["host_evloop", "server", style, "{port}", "65536"],
                        "server", echo_peer(4 << 20, 1), connections=1, timeout=60))
        out.append(Case(name + "_tiny_reads",
                        ["host_evloop", "server", style, "{port}", "7"],
                        "server", echo_peer(256 << 10, 2), connections=1, timeout=60))
    for style in ("epoll-lt", "blocking"):
        out.append(Case("handshake_timeout_" + style.replace("-", "_"),
                        ["host_evloop", "server", style, "{port}", "4096", "150", "3000"],
                        "server", silent_peer, shim_env={"SLI_HANDSHAKE_TIMEOUT": 300},
                        expect_log=[r"SLI_E_TIMEOUT"], connections=1,
                        differs=[("host", r"^end: read -1 ECONNRESET$", r"^end: read -1 ETIMEDOUT$",
                                  "a TLS handshake that times out ends the connection as "
                                  "ETIMEDOUT")]))
    out.append(Case("nonblocking_connect_client", ["host_evloop", "client-nb", "{port}",
                                                   str(2 << 20)],
                    "client", echo_server_peer, connections=1, timeout=60))
    return out


if __name__ == "__main__":
    import difftest
    cs = cases()
    for c in cs:
        c.host[0] = difftest.host_exe("evloop")
    difftest.run_cases(cs)
