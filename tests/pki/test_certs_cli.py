#!/usr/bin/python3
"""`sli csr`, `sli selfsign`, `sli ca issue`: requests that `openssl req -verify` accepts with every
subject field and SAN shown by `openssl req -text`; a local CA whose leaves `openssl verify`
accepts and that serve real TLS; named errors for bad subjects, keys that cannot sign, a CA key that
does not match, a certificate that is not a CA, and a tampered request."""
import base64
import os
import sys

from harness import SLI, Checks, Dir, expect, read, run, sli_serve, write

d = Dir()
checks = Checks()
SUBJECT = "/CN=db.example.com/O=Acme/OU=Ops/L=Paris/ST=IDF/C=FR/emailAddress=ops@acme.fr"
SANS = ["--san", "DNS:db.example.com", "--san", "DNS:localhost", "--san", "IP:127.0.0.1",
        "--san", "email:ops@acme.fr"]


def ok(args):
    rc, out, err = run([SLI] + args, timeout=60)
    expect(rc == 0, "%s: %s" % (" ".join(args[:2]), err))


@checks.case
def csr_verifies_and_shows_every_field():
    for kind in ("ec", "rsa", "ed25519"):
        key, req = d("csr-%s.key" % kind), d("csr-%s.req" % kind)
        ok(["keygen", "--type", kind, "-o", key])
        ok(["csr", "--key", key, "--subject", SUBJECT, "-o", req] + SANS)
        rc, out, err = run(["openssl", "req", "-in", req, "-verify", "-noout"])
        expect(rc == 0 and "verify OK" in out + err, "%s: %s" % (kind, err))
        rc, out, err = run(["openssl", "req", "-in", req, "-text", "-noout"])
        for want in ("CN = db.example.com", "O = Acme", "OU = Ops", "L = Paris", "ST = IDF", "C = FR",
                     "emailAddress = ops@acme.fr", "DNS:db.example.com", "DNS:localhost",
                     "IP Address:127.0.0.1", "email:ops@acme.fr"):
            expect(want in out, "%s: %r missing from openssl req -text" % (kind, want))


@checks.case
def local_ca_issues_leaves_that_serve_tls():
    ok(["keygen", "--type", "ec", "-o", d("ca.key")])
    ok(["selfsign", "--key", d("ca.key"), "--subject", "/CN=Dev CA/O=Acme", "--ca", "--days", "30", "-o", d("ca.crt")])
    ok(["keygen", "--type", "ec", "-o", d("leaf.key")])
    ok(["csr", "--key", d("leaf.key"), "--subject", "/CN=localhost", "--san", "DNS:localhost", "-o", d("leaf.req")])
    ok(["ca", "issue", "--ca-cert", d("ca.crt"), "--ca-key", d("ca.key"), "--csr", d("leaf.req"), "--days", "10", "-o", d("leaf.crt")])
    rc, out, err = run(["openssl", "verify", "-CAfile", d("ca.crt"), d("leaf.crt")])
    expect(rc == 0 and "OK" in out, out + err)
    p, port = sli_serve(d, "issued", "--cert", d("leaf.crt"), "--key", d("leaf.key"), "--echo")
    rc, out, err = run([SLI, "connect", "127.0.0.1:%d" % port, "--ca", d("ca.crt"), "--servername",
                        "localhost", "--linger", "300"], input=b"issued by sli")
    p.stop()
    expect(rc == 0 and out == "issued by sli", "rc=%d %s %s" % (rc, out, err))


@checks.case
def selfsigned_leaf_serves_tls():
    ok(["keygen", "--type", "ed25519", "-o", d("ss.key")])
    ok(["selfsign", "--key", d("ss.key"), "--subject", "/CN=localhost", "--san", "DNS:localhost", "-o", d("ss.crt")])
    rc, out, err = run(["openssl", "x509", "-in", d("ss.crt"), "-noout", "-text"])
    expect("pathlen:0" in out and "TLS Web Server Authentication" in out and "DNS:localhost" in out, out[:600])
    p, port = sli_serve(d, "selfsigned", "--cert", d("ss.crt"), "--key", d("ss.key"), "--echo")
    rc, out, err = run([SLI, "connect", "127.0.0.1:%d" % port, "--ca", d("ss.crt"), "--servername",
                        "localhost", "--linger", "300"], input=b"ed25519 leaf")
    p.stop()
    expect(rc == 0 and out == "ed25519 leaf", "rc=%d %s %s" % (rc, out, err))


@checks.case
def named_errors():
    key = d("csr-ec.key")
    for subject in ("CN=no-slash", "/XX=unknown", "/C=FRA", "/CN="):
        rc, out, err = run([SLI, "csr", "--key", key, "--subject", subject, "-o", d("bad.req")])
        expect(rc == 3 and "SLI_E_INVAL" in err, "%s: rc=%d %s" % (subject, rc, err))
    rc, out, err = run([SLI, "csr", "--key", key, "--subject", "/CN=x", "--san", "URL:x", "-o", d("bad.req")])
    expect(rc == 3 and "SLI_E_INVAL" in err, err)
    ok(["keygen", "--type", "x25519", "-o", d("x.key")])
    rc, out, err = run([SLI, "csr", "--key", d("x.key"), "--subject", "/CN=x", "-o", d("bad.req")])
    expect(rc == 3 and "SLI_E_UNSUPPORTED" in err, err)
    rc, out, err = run([SLI, "ca", "issue", "--ca-cert", d("ca.crt"), "--ca-key", d("leaf.key"),
                        "--csr", d("leaf.req"), "-o", d("bad.crt")])
    expect(rc == 3 and "SLI_E_KEY_MISMATCH" in err, err)
    rc, out, err = run([SLI, "ca", "issue", "--ca-cert", d("leaf.crt"), "--ca-key", d("leaf.key"),
                        "--csr", d("leaf.req"), "-o", d("bad.crt")])
    expect(rc == 3 and "SLI_E_CONFIG" in err and "not a CA" in err, err)
    # a request whose subject was changed after signing
    text = read(d("leaf.req")).decode()
    body = "".join(text.split("\n")[1:-2])
    der = bytearray(base64.b64decode(body))
    i = der.find(b"localhost")
    der[i] = ord("L")
    tampered = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)).decode() + "-----END CERTIFICATE REQUEST-----\n"
    write(d("tampered.req"), tampered.encode())
    rc, out, err = run([SLI, "ca", "issue", "--ca-cert", d("ca.crt"), "--ca-key", d("ca.key"),
                        "--csr", d("tampered.req"), "-o", d("bad.crt")])
    expect(rc == 6 and "SLI_E_SIGNATURE" in err and not os.path.exists(d("bad.crt")), "rc=%d %s" % (rc, err))
    # a certificate given where the request belongs is named as such
    rc, out, err = run([SLI, "ca", "issue", "--ca-cert", d("ca.crt"), "--ca-key", d("ca.key"),
                        "--csr", d("leaf.crt"), "-o", d("bad.crt")])
    expect(rc == 3 and "SLI_E_PEM" in err and "holds a certificate, not a certificate request" in err
           and not os.path.exists(d("bad.crt")), "rc=%d %s" % (rc, err))


checks.finish(d)
