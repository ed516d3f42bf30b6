#!/usr/bin/python3
"""The sli client (`sli connect`) against `openssl s_server` on loopback: a verified exchange, one
named reason for each way a server certificate is refused, and a client context that resumes."""
import os

from harness import (BUILD, CA, NOW, DAY, SLI, Checks, Dir, Proc, expect, free_port, run,
                     self_signed)

d = Dir()
ca = CA(d)
checks = Checks()
procs = []


def s_server(cert, key, *extra):
    port = free_port()
    p = Proc(["openssl", "s_server", "-accept", "127.0.0.1:%d" % port, "-cert", cert, "-key", key,
              "-rev", "-quiet"] + list(extra), d, "s_server-%d" % port)
    procs.append(p)
    import socket
    import time
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    # the probe above counts as a connection for s_server; it is gone before the real one
    return p, port


def connect(port, *extra, name="localhost"):
    return run([SLI, "connect", "127.0.0.1:%d" % port, "--servername", name, "--linger", "500"]
               + list(extra),
               input=b"hello\n", timeout=20)


@checks.case
def client_context_resumes_against_openssl_s_server():
    """Three connections of one client context to `openssl s_server`: the second and third resume,
    with TLS 1.3 tickets and with TLS 1.2 sessions (a client context never resumed before)."""
    c, k = ca.issue("localhost")
    probe = os.path.join(BUILD, "tests", "tls", "test_resumption")
    for version in ("1.3", "1.2"):
        _, port = s_server(c, k, "-tls1_3" if version == "1.3" else "-tls1_2")
        rc, out, err = run([probe, str(port), ca.path] + (["1.2"] if version == "1.2" else []))
        expect(rc == 0 and out.strip() == "resumed 0 1 1",
               "TLS %s: %r %s" % (version, out, err))


@checks.case
def verified_exchange():
    c, k = ca.issue("localhost")
    p, port = s_server(c, k)
    rc, out, err = connect(port, "--ca", ca.path, "--verbose")
    expect(rc == 0, "rc=%d %s" % (rc, err))
    expect("olleh" in out, "no reply from s_server -rev: %r" % out)
    expect("TLSv1.3" in err, err)


@checks.case
def ca_directory():
    c, k = ca.issue("localhost")
    p, port = s_server(c, k)
    cadir = d("cadir")
    os.makedirs(cadir, exist_ok=True)
    import shutil
    shutil.copy(ca.path, os.path.join(cadir, "test-ca.pem"))
    rc, out, err = connect(port, "--ca", cadir)
    expect(rc == 0 and "olleh" in out, "rc=%d %s" % (rc, err))


@checks.case
def verified_exchange_tls12():
    c, k = ca.issue("localhost")
    p, port = s_server(c, k, "-tls1_2")
    rc, out, err = connect(port, "--ca", ca.path, "--verbose")
    expect(rc == 0 and "olleh" in out and "TLSv1.2" in err, "rc=%d %s %s" % (rc, out, err))


def refused(port, code, *extra, name="localhost"):
    rc, out, err = connect(port, "--ca", ca.path, *extra, name=name)
    expect(rc == 4, "expected exit 4, got %d: %s" % (rc, err))
    expect(code in err, "expected %s in: %s" % (code, err))
    expect("olleh" not in out, "data flowed from a refused server")


@checks.case
def untrusted_issuer():
    other = CA(d, "Other CA")
    c, k = other.issue("localhost")
    p, port = s_server(c, k)
    refused(port, "SLI_E_UNTRUSTED")


@checks.case
def expired():
    c, k = ca.issue("expired", sans=("localhost",), not_before=NOW - 20 * DAY,
                    not_after=NOW - 10 * DAY)
    p, port = s_server(c, k)
    refused(port, "SLI_E_EXPIRED")


@checks.case
def not_yet_valid():
    c, k = ca.issue("future", sans=("localhost",), not_before=NOW + 10 * DAY,
                    not_after=NOW + 20 * DAY)
    p, port = s_server(c, k)
    refused(port, "SLI_E_NOT_YET_VALID")


@checks.case
def wrong_host():
    c, k = ca.issue("localhost")
    p, port = s_server(c, k)
    refused(port, "SLI_E_HOSTNAME", name="db.example.com")


@checks.case
def self_signed_server():
    c, k = self_signed(d, "lonely")
    p, port = s_server(c, k)
    refused(port, "SLI_E_SELF_SIGNED")


@checks.case
def revoked():
    c, k = ca.issue("revoked-leaf", sans=("localhost",))
    crl = ca.crl([ca.last])
    p, port = s_server(c, k)
    refused(port, "SLI_E_REVOKED", "--crl", crl)
    # The same CRL does not refuse a certificate it does not list.
    c2, k2 = ca.issue("good-leaf", sans=("localhost",))
    p2, port2 = s_server(c2, k2)
    rc, out, err = connect(port2, "--ca", ca.path, "--crl", crl)
    expect(rc == 0 and "olleh" in out, "unrevoked certificate refused: %s" % err)


@checks.case
def insecure_says_so_and_connects():
    c, k = self_signed(d, "lonely2")
    p, port = s_server(c, k)
    rc, out, err = connect(port, "--insecure")
    expect(rc == 0 and "olleh" in out, err)
    expect("insecure" in err.lower(), "no warning printed: " + err)


@checks.case
def client_certificate_to_openssl():
    c, k = ca.issue("localhost")
    cc, ck = ca.issue("client", sans=("client.example",), client=True)
    p, port = s_server(c, k, "-Verify", "1", "-CAfile", ca.path, "-verify_return_error")
    rc, out, err = connect(port, "--ca", ca.path, "--cert", cc, "--key", ck)
    expect(rc == 0 and "olleh" in out, "rc=%d %s" % (rc, err))


for p in procs:
    p.stop()
checks.finish(d)
