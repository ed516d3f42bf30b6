#!/usr/bin/python3
"""key.pem / cert.pem as administrators bring them: what works (CRLF, encrypted keys, RSA, Ed25519,
a chain) and one named error for each way they are wrong, through `sli serve` and `sli cert inspect`.
Also the default identity: generated once, 0600, reused, renewed when it has expired."""
import os
import re
import subprocess

from cryptography.hazmat.primitives import serialization

from harness import (CA, SLI, Checks, Dir, expect, new_key, read, run, sli_serve, write)

d = Dir()
ca = CA(d)
cert, key = ca.issue("localhost")
checks = Checks()


def serve_fails(code, *args):
    """`sli serve` must refuse to start with exit 3 and `code` in its message."""
    rc, out, err = run([SLI, "serve", "--listen", "127.0.0.1:0", "--echo"] + list(args), timeout=10)
    expect(rc == 3, "expected exit 3, got %d: %s" % (rc, err))
    expect(code in err, "expected %s in: %s" % (code, err))
    return err


def serve_works(*args):
    p, port = sli_serve(d, "ok-%d" % len(os.listdir(d.path)), *args, "--echo")
    rc, out, err = run([SLI, "connect", "127.0.0.1:%d" % port, "--ca", ca.path, "--servername",
                        "localhost", "--linger", "300"], input=b"ping")
    p.stop()
    expect(rc == 0 and out == "ping", "rc=%d out=%r err=%s" % (rc, out, err))


@checks.case
def crlf_line_endings_accepted():
    c, k = d("crlf.crt"), d("crlf.key")
    write(c, read(cert).replace(b"\n", b"\r\n"))
    write(k, read(key).replace(b"\n", b"\r\n"))
    serve_works("--cert", c, "--key", k)


@checks.case
def lone_cr_refused():
    c = d("cr.crt")
    write(c, read(cert).replace(b"\n", b"\r"))
    err = serve_fails("SLI_E_LINE_ENDINGS", "--cert", c, "--key", key)
    expect("cr.crt" in err, "message does not name the file: " + err)


@checks.case
def truncated_pem_refused():
    c = d("trunc.crt")
    data = read(cert)
    write(c, data[: len(data) // 2])
    err = serve_fails("SLI_E_PEM_TRUNCATED", "--cert", c, "--key", key)
    expect("trunc.crt" in err, err)


@checks.case
def bad_base64_refused():
    c = d("b64.crt")
    lines = read(cert).split(b"\n")
    lines[2] = b"!!!!" + lines[2][4:]
    write(c, b"\n".join(lines))
    serve_fails("SLI_E_PEM", "--cert", c, "--key", key)


@checks.case
def der_instead_of_pem_refused():
    c = d("cert.der")
    subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER", "-out", c], check=True)
    err = serve_fails("SLI_E_NOT_PEM", "--cert", c, "--key", key)
    expect("DER" in err, err)


@checks.case
def key_mismatch_refused():
    other_c, other_k = ca.issue("someone else", sans=("localhost",))
    err = serve_fails("SLI_E_KEY_MISMATCH", "--cert", cert, "--key", other_k)
    expect(os.path.basename(other_k) in err and os.path.basename(cert) in err, err)


@checks.case
def swapped_files_refused():
    err = serve_fails("SLI_E_PEM", "--cert", key, "--key", cert)
    expect("swapped" in err, err)


@checks.case
def missing_file_refused():
    err = serve_fails("SLI_E_FILE", "--cert", d("nope.crt"), "--key", key)
    expect("nope.crt" in err, err)


@checks.case
def encrypted_key_with_password():
    pw = d("pw.txt")
    write(pw, b"correct horse\n")
    for fmt, extra in (("pkcs8", []), ("traditional", ["-traditional"])):
        k = d("enc-%s.key" % fmt)
        subprocess.run(["openssl", "pkey", "-in", key, "-aes256", "-passout", "file:" + pw, "-out", k]
                       + extra, check=True)
        serve_works("--password-file", pw, "--cert", cert, "--key", k)
        bad = d("bad-pw.txt")
        write(bad, b"wrong\n")
        serve_fails("SLI_E_PASSWORD", "--password-file", bad, "--cert", cert, "--key", k)
        err = serve_fails("SLI_E_PASSWORD", "--cert", cert, "--key", k)
        expect("no password" in err, err)


@checks.case
def rsa_pkcs1_and_ed25519_identities():
    rsa_key = new_key("rsa")
    c, k = ca.issue("localhost-rsa", sans=("localhost",), key=rsa_key)
    pkcs1 = d("rsa-pkcs1.key")
    write(pkcs1, rsa_key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    serve_works("--cert", c, "--key", pkcs1)
    ec_key = new_key("ec")
    c, k = ca.issue("localhost-sec1", sans=("localhost",), key=ec_key)
    sec1 = d("ec-sec1.key")
    write(sec1, ec_key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption()))
    serve_works("--cert", c, "--key", sec1)
    c, k = ca.issue("localhost-ed", sans=("localhost",), kind="ed25519")
    serve_works("--cert", c, "--key", k, "--min-version", "1.3")


@checks.case
def weak_rsa_refused():
    c, k = ca.issue("weak", sans=("localhost",), kind="rsa1024")
    serve_fails("SLI_E_WEAK_KEY", "--cert", c, "--key", k)


@checks.case
def chain_file_with_intermediate():
    from harness import x509, NOW, DAY, hashes, _name
    inter_key = new_key()
    b = (x509.CertificateBuilder().subject_name(_name("Intermediate")).issuer_name(ca.cert.subject)
         .public_key(inter_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY).not_valid_after(NOW + 20 * DAY)
         .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True))
    inter = b.sign(ca.key, hashes.SHA256())
    sub = CA.__new__(CA)
    sub.key, sub.cert, sub.d = inter_key, inter, d
    c, k = sub.issue("localhost-chained", sans=("localhost",))
    full = d("fullchain.pem")
    write(full, read(c) + inter.public_bytes(serialization.Encoding.PEM))
    serve_works("--cert", full, "--key", k)


@checks.case
def weak_cipher_strings_refused():
    for s in ("RC4-SHA", "DES-CBC3-SHA", "NULL-SHA", "EXP-RC4-MD5"):
        err = serve_fails("SLI_E_CIPHERS", "--cert", cert, "--key", key, "--ciphers", s)
        expect(s in err, "message does not name the suite: " + err)
    serve_works("--cert", cert, "--key", key, "--ciphers", "ECDHE-ECDSA-AES256-GCM-SHA384",
                "--max-version", "1.2")


@checks.case
def dhparams_accepted_with_notice():
    dh = d("dhparams.pem")
    write(dh, b"-----BEGIN DH PARAMETERS-----\nMAA=\n-----END DH PARAMETERS-----\n")
    p, port = sli_serve(d, "dh", "--cert", cert, "--key", key, "--dhparams", dh, "--echo")
    p.wait_for("ECDHE key exchange provides perfect forward secrecy", where="log")
    p.stop()


@checks.case
def cert_inspect():
    rc, out, err = run([SLI, "cert", "inspect", cert])
    expect(rc == 0, err)
    for field in ("subject:", "CN = localhost", "issuer:", "Test CA", "not before:", "not after:",
                  "DNS:localhost", "IP:127.0.0.1", "SHA-256:"):
        expect(field in out, "%r missing from:\n%s" % (field, out))
    expect(re.search(r"valid now:\s+yes", out), out)
    fp = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                        stdout=subprocess.PIPE, text=True).stdout.strip().split("=", 1)[1]
    expect(fp in out, "fingerprint differs from openssl's %s" % fp)
    rc, out, err = run([SLI, "cert", "inspect", key])
    expect(rc == 3 and "SLI_E_PEM" in err, err)


@checks.case
def default_identity_generated_once():
    state = d("state-once")
    env = {"SLI_STATE_DIR": state}
    rc, out, err = run([SLI, "demo"], env=env)
    expect(rc == 0, err)
    expect("SELF-SIGNED" in err and state in err, "no loud notice: " + err)
    for line in ("protocol:    TLSv1.3", "verified:    yes", "received:    echo: hello over TLS",
                 "part two: plain `python3 -m http.server` with LD_PRELOAD=", "HTTP/1.0 200 OK",
                 "now speaking TLS"):
        expect(line in out, "%r missing from demo output:\n%s" % (line, out))
    ident = os.path.join(state, "default-identity.pem")
    expect(os.stat(ident).st_mode & 0o777 == 0o600, "default identity is not 0600")
    first = read(ident)
    rc, out, err = run([SLI, "demo"], env=env)
    expect(rc == 0 and "SELF-SIGNED" not in err, "regenerated or failed: " + err)
    expect(read(ident) == first, "default identity changed between runs")


@checks.case
def default_identity_renewed_when_expired():
    """An expired default identity is set aside (.expired) and a new one serves at once."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    state = d("state-expired")
    os.makedirs(state, mode=0o700)
    k = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old default identity")])
    now = datetime.datetime.now(datetime.timezone.utc)
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
           .serial_number(1).not_valid_before(now - datetime.timedelta(days=30))
           .not_valid_after(now - datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
    ident = os.path.join(state, "default-identity.pem")
    write(ident, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()) +
          old.public_bytes(serialization.Encoding.PEM))
    p = subprocess.Popen([SLI, "serve", "--listen", "127.0.0.1:0", "--echo"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, SLI_STATE_DIR=state),
                         start_new_session=True)
    try:
        line = p.stdout.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        expect(m, "sli serve did not start with an expired default identity: %r %s" % (
            line, p.stderr.read1(4096).decode() if p.poll() is not None else ""))
        rc, out, err = run([SLI, "connect", "127.0.0.1:%s" % m.group(1), "--ca",
                            os.path.join(state, "default-cert.pem"), "--servername", "localhost",
                            "--linger", "300"], input=b"ping")
        expect(rc == 0 and out == "ping", "the renewed identity does not serve: rc=%d %s" % (rc, err))
    finally:
        p.terminate()
        p.wait()
    expect(os.path.exists(ident + ".expired"), "the expired identity was not set aside")
    expect(read(ident) != read(ident + ".expired"), "the identity was not renewed")


checks.finish(d)
