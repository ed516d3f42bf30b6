#!/usr/bin/python3
"""The README's "Embedding libsli" server (tests/tls/embed_server.c, whole), run against real peers:
python's ssl (OpenSSL) and openssl s_client echo through it while its key server signs on another
thread after a delay; a client that never speaks is closed at the handshake deadline (the loop's
timeout, not a call) while others are served; SIGHUP reloads the certificate — new connections get
the new one, a connection made before goes on, a broken file is refused and the last good
certificate stays. And the README's excerpt is this program's own code, line for line."""
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time

from cryptography.hazmat.primitives import serialization
from harness import BUILD, CA, Checks, Dir, Proc, expect, free_port

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(BUILD, "tests", "tls", "embed_server")
README = os.path.join(HERE, "..", "..", "README.md")

d = Dir()
ca = CA(d)
first_cert, key = ca.issue("first")
with open(key, "rb") as f:  # the key server holds one key: the reload keeps it, with a new certificate
    second_cert, _ = ca.issue("second", key=serialization.load_pem_private_key(f.read(), None))
CERT = d("served.pem")  # what the server reads, replaced below


def install(path):
    tmp = CERT + ".tmp"
    with open(path, "rb") as f, open(tmp, "wb") as g:
        g.write(f.read())
    os.rename(tmp, CERT)


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca.path)
    return ctx


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return client_ctx().wrap_socket(s, server_hostname="localhost")


def echo(t, data):
    t.sendall(data)
    got = b""
    while len(got) < len(data):
        b = t.recv(65536)
        if not b:
            break
        got += b
    return got


def cn(t):
    return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]


class Server:
    def __init__(self, name, timeout_ms=800, delay_ms=300):
        install(first_cert)
        self.port = free_port()
        self.proc = Proc([SERVER, str(self.port), CERT, key, str(timeout_ms), str(delay_ms)], d, name)
        self.proc.wait_for(r"listening on")

    def out(self):
        with open(self.proc.out_path) as f:
            return f.read()

    def stop(self):
        self.proc.stop()


checks = Checks()


@checks.case
def echoes_with_a_slow_key_server():
    srv = Server("echo", delay_ms=300)
    try:
        t0 = time.time()
        with connect(srv.port) as t:
            took = time.time() - t0
            expect(echo(t, b"x" * 100000) == b"x" * 100000, "100 kB echoed")
            expect(cn(t) == "first", "the certificate served: %s" % cn(t))
        expect(took >= 0.25, "the handshake waited for the key server (%.2f s)" % took)
        s_client = Proc(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port, "-CAfile",
                         ca.path, "-verify_return_error", "-quiet", "-servername", "localhost"],
                        d, "s_client", stdin=subprocess.PIPE)
        try:
            s_client.p.stdin.write(b"ping from openssl\n")
            s_client.p.stdin.flush()
            s_client.wait_for(r"ping from openssl")  # echoed
        finally:
            s_client.stop()
    finally:
        srv.stop()


@checks.case
def silent_client_closed_at_the_deadline_others_served():
    srv = Server("deadline", timeout_ms=600, delay_ms=50)
    try:
        silent = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        t0 = time.time()
        with connect(srv.port) as t:  # served while the silent one waits
            expect(echo(t, b"meanwhile") == b"meanwhile", "another client was served")
        try:
            closed = silent.recv(1) == b""
        except ConnectionResetError:
            closed = True
        waited = time.time() - t0
        silent.close()
        expect(closed, "the silent client was closed")
        expect(0.4 <= waited <= 3.0, "closed at the deadline (%.2f s after connecting)" % waited)
        expect("no handshake within the deadline" in srv.out(), "the loop said why: " + srv.out())
    finally:
        srv.stop()


@checks.case
def sighup_reloads_without_dropping():
    srv = Server("reload", delay_ms=20)
    try:
        before = connect(srv.port)
        expect(cn(before) == "first", "first certificate at start")
        install(second_cert)
        os.kill(srv.proc.p.pid, signal.SIGHUP)
        srv.proc.wait_for(r"reloaded")
        with connect(srv.port) as t:
            expect(cn(t) == "second", "a new connection gets the new certificate: %s" % cn(t))
        expect(echo(before, b"still here") == b"still here", "the connection made before goes on")
        with open(CERT, "w") as f:  # an in-place write gone wrong
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n")
        os.kill(srv.proc.p.pid, signal.SIGHUP)
        srv.proc.wait_for(r"reload refused, the old certificate stays: .*served\.pem")
        with connect(srv.port) as t:
            expect(cn(t) == "second", "the last good certificate stays: %s" % cn(t))
        before.close()
    finally:
        srv.stop()


@checks.case
def readme_excerpt_is_this_program():
    text = open(README).read()
    section = text.split("## Embedding libsli", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```c\n(.*?)```", section, re.S)
    expect(blocks, "the section has a C excerpt")
    source = [line.strip() for line in open(os.path.join(HERE, "embed_server.c"))]
    quoted = [line.strip() for b in blocks for line in b.split("\n")]
    quoted = [q for q in quoted if q and q != "..." and not (q.startswith("/*") and q.endswith("*/"))]
    missing = [q for q in quoted if q not in source]
    expect(len(quoted) >= 15, "the excerpt quotes the program (%d lines)" % len(quoted))
    expect(not missing, "README lines not in embed_server.c: %s" % missing)


sys.exit(checks.finish(d))
