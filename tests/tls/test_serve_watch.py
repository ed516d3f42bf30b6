#!/usr/bin/python3
"""Watching `sli serve` run: `--metrics` serves its counters in Prometheus' text format, scraped
with curl, and they move as connections succeed and fail (handshakes, failures by reason, bytes,
live connections, seconds until the certificate expires); a certificate that ends within 30 days
is warned about at start, within 7 an error; a scan of failing connections is logged at most 20 a
second, the next line saying how many were left out."""
import re
import socket
import ssl
import sys
import time

from harness import CA, DAY, NOW, SLI, Checks, Dir, Proc, expect, plaintext_client, run

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")


def serve(name, cert=CERT, key=KEY, *extra):
    p = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--cert", cert, "--key", key, "--echo"]
             + list(extra), d, name)
    port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    return p, port


def scrape(port):
    rc, out, err = run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/metrics" % port])
    expect(rc == 0, "curl: %s" % err)
    values = {}
    for line in out.split("\n"):
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def echo(port, data=b"ping"):
    ctx = ssl.create_default_context(cafile=ca.path)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(data)
            return t.recv(len(data))


checks = Checks()


@checks.case
def metrics_move():
    p, port = serve("metrics", CERT, KEY, "--metrics", "127.0.0.1:0")
    try:
        mport = int(p.wait_for(r"metrics on port (\d+)").group(1))
        before = scrape(mport)
        for _ in range(3):
            expect(echo(port, b"x" * 1000) == b"x" * 1000, "echo")
        plaintext_client(port)
        time.sleep(0.2)
        after = scrape(mport)
        moved = {k: after[k] - before.get(k, 0) for k in after}
        expect(moved["sli_handshakes_total"] == 3, "handshakes: %s" % moved)
        expect(moved['sli_handshake_failures_total{reason="protocol"}'] == 1,
               "a plaintext client is a protocol failure: %s" % moved)
        expect(moved["sli_bytes_received_total"] == 3000 and moved["sli_bytes_sent_total"] == 3000,
               "bytes: %s" % moved)
        expect(after["sli_connections"] == 0, "no connection left: %s" % after["sli_connections"])
        cert_end = ca.last.not_valid_after.timestamp()
        expect(abs(after["sli_certificate_expiry_seconds"] - (cert_end - time.time())) < 30,
               "expiry seconds: %s" % after["sli_certificate_expiry_seconds"])
        out = run(["curl", "-sS", "http://127.0.0.1:%d/" % mport])[1]
        expect("# TYPE sli_handshakes_total counter" in out, "the format: %s" % out[:200])
    finally:
        p.stop()


@checks.case
def expiry_warned():
    for days, want in ((5, r"error: the served certificate expires in [45] day"),
                       (20, r"warning: the served certificate expires in 19 days|expires in 20 days"),
                       (60, None)):
        c, k = ca.issue("exp%d" % days, not_after=NOW + days * DAY)
        p, port = serve("expiry-%d" % days, c, k)
        try:
            echo(port)
            if want:
                p.wait_for(want, where="log")
            else:
                time.sleep(0.3)
                expect("expires" not in p.stderr(), "nothing said at 60 days: " + p.stderr())
        finally:
            p.stop()


@checks.case
def trust_store_problems_said():
    """Client certificates checked against a CA that ends within 30 days and a CRL past its next
    update: both said at start (and at each reload)."""
    from harness import CA as _CA
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    short = _CA(d, "Short CA")
    # a CA ending in 10 days: re-sign its certificate with a shorter life
    b = (x509.CertificateBuilder().subject_name(short.cert.subject).issuer_name(short.cert.subject)
         .public_key(short.key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY).not_valid_after(NOW + 10 * DAY)
         .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    with open(short.path, "wb") as f:
        f.write(b.sign(short.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    stale = short.crl([], next_update=NOW - DAY, name="stale.pem")
    p, port = serve("trust", CERT, KEY, "--ca", short.path, "--crl", stale, "--client-cert", "optional")
    try:
        p.wait_for(r"the trusted CA '[^']*Short CA[^']*' expires within 30 days", where="log")
        p.wait_for(r"the CRL of '[^']*Short CA[^']*' is past its next update", where="log")
    finally:
        p.stop()


@checks.case
def failures_logged_at_most_twenty_a_second():
    p, port = serve("scan")
    try:
        for _ in range(60):
            plaintext_client(port)
        time.sleep(1.1)
        plaintext_client(port)  # the next second: its line says what was left out
        p.wait_for(r"(\d+) more failed connections in the last second were not logged", where="log")
        log = p.stderr()
        shown = len(re.findall(r"SLI_E_NOT_TLS", log))
        hidden = sum(int(n) for n in re.findall(r"(\d+) more failed connections", log))
        expect(shown + hidden == 61, "every failure shown or counted: %d + %d" % (shown, hidden))
        expect(shown <= 41, "at most 20 a second shown: %d" % shown)
    finally:
        p.stop()


sys.exit(checks.finish(d))
