#!/usr/bin/python3
"""`sli keygen`, `sli sign`, `sli verify` against openssl (and ssh-keygen): every generated key
passes `openssl pkey -check` / `-pubcheck`, private keys are 0600, weak RSA is refused unless
asked with --insecure-weak, and signatures interoperate both ways with openssl for Ed25519,
ECDSA and RSA-PSS; a tampered message is SLI_E_SIGNATURE."""
import os
import shutil
import subprocess
import sys

from harness import SLI, Checks, Dir, expect, read, run, write

d = Dir()
checks = Checks()
KINDS = [("rsa", []), ("rsa", ["--bits", "3072"]), ("ec", []), ("ec", ["--curve", "P-384"]),
         ("ec", ["--curve", "P-521"]), ("ed25519", []), ("x25519", [])]


def keygen(name, kind, extra=()):
    key, pub = d(name + ".key"), d(name + ".pub")
    rc, out, err = run([SLI, "keygen", "--type", kind, "-o", key, "--pub", pub] + list(extra), timeout=60)
    expect(rc == 0, "keygen %s %s: %s" % (kind, extra, err))
    return key, pub


@checks.case
def generated_keys_pass_openssl_checks():
    for i, (kind, extra) in enumerate(KINDS):
        key, pub = keygen("k%d" % i, kind, extra)
        expect(os.stat(key).st_mode & 0o777 == 0o600, "%s key is not 0600" % kind)
        for args in (["pkey", "-in", key, "-check", "-noout"], ["pkey", "-pubin", "-in", pub, "-pubcheck", "-noout"]):
            rc, out, err = run(["openssl"] + args)
            expect(rc == 0 and "valid" in (out + err).lower(), "%s %s: %s %s" % (kind, extra, out, err))
        rc, out, err = run(["openssl", "pkey", "-in", key, "-text", "-noout"])
        want = {"rsa": "Private-Key", "ec": "Private-Key", "ed25519": "ED25519", "x25519": "X25519"}[kind]
        expect(want in out, out[:200])


@checks.case
def encrypted_private_key():
    pw = d("pass.txt")
    write(pw, b"correct horse battery\n")
    key, pub = keygen("enc", "ec", ["--passphrase-file", pw])
    expect(b"ENCRYPTED PRIVATE KEY" in read(key), "key is not encrypted")
    rc, out, err = run(["openssl", "pkey", "-in", key, "-passin", "file:" + pw, "-check", "-noout"])
    expect(rc == 0, "openssl cannot open it: " + err)
    write(d("msg"), b"signed with an encrypted key")
    rc, out, err = run([SLI, "sign", "--key", key, "--passphrase-file", pw, "-o", d("enc.sig"), d("msg")])
    expect(rc == 0, err)
    write(d("bad.txt"), b"wrong\n")
    rc, out, err = run([SLI, "sign", "--key", key, "--passphrase-file", d("bad.txt"), d("msg")])
    expect(rc == 3 and "SLI_E_PASSWORD" in err, err)


@checks.case
def weak_rsa_refused_unless_insecure():
    rc, out, err = run([SLI, "keygen", "--type", "rsa", "--bits", "1024", "-o", d("weak.key")])
    expect(rc == 3 and "SLI_E_WEAK_KEY" in err and not os.path.exists(d("weak.key")), err)
    rc, out, err = run([SLI, "keygen", "--type", "rsa", "--bits", "1024", "--insecure-weak", "-o", d("weak.key")])
    expect(rc == 0 and "WARNING" in err, err)


@checks.case
def openssh_keys():
    """--format ssh writes what ssh-keygen writes: an OpenSSH private key (0600) that ssh-keygen reads
    and derives the same public line from, and that sli signs with and verifies by the line; ECDSA and
    a passphrase (bcrypt) are refused by name."""
    if not shutil.which("ssh-keygen"):
        raise AssertionError("ssh-keygen missing (./bootstrap installs openssh-client)")
    for kind in ("ed25519", "rsa"):
        key, pub = keygen("ssh-" + kind, kind, ["--format", "ssh"])
        expect(read(key).startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----\n"), "not an OpenSSH private key")
        expect(os.stat(key).st_mode & 0o777 == 0o600, "the OpenSSH key is not 0600")
        rc, out, err = run(["ssh-keygen", "-l", "-f", pub])
        expect(rc == 0 and kind.upper() in out.upper(), "%s: %s %s" % (kind, out, err))
        rc, out, err = run(["ssh-keygen", "-y", "-f", key])
        expect(rc == 0 and out.split()[:2] == read(pub).decode().split()[:2], "ssh-keygen -y: %s %s" % (out, err))
        write(d("ssh.msg"), b"signed with an OpenSSH key")
        rc, _, err = run([SLI, "sign", "--key", key, "-o", d("ssh.sig"), d("ssh.msg")])
        expect(rc == 0, err)
        rc, _, err = run([SLI, "verify", "--pub", pub, "--sig", d("ssh.sig"), d("ssh.msg")])
        expect(rc == 0, err)
    rc, out, err = run([SLI, "keygen", "--type", "ec", "--format", "ssh", "-o", d("x.key"), "--pub", d("x.pub")])
    expect(rc == 3 and "SLI_E_UNSUPPORTED" in err, err)
    # an OpenSSH key whose outer public key is another key's: named, not used
    import base64
    def body(path):
        lines = read(path).decode().strip().split("\n")
        return base64.b64decode("".join(lines[1:-1]))
    a, b = body(d("ssh-ed25519.key")), None
    keygen("ssh-other", "ed25519", ["--format", "ssh"])
    b = body(d("ssh-other.key"))
    pub_a, pub_b = a[a.index(b"\0\0\0\x33"):][:55], b[b.index(b"\0\0\0\x33"):][:55]  # the 51-byte blob
    mixed = a.replace(pub_a, pub_b, 1)
    text = base64.encodebytes(mixed).decode().replace("\n", "")
    write(d("mixed.key"), ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(
        text[i:i + 70] for i in range(0, len(text), 70)) + "\n-----END OPENSSH PRIVATE KEY-----\n").encode())
    rc, out, err = run([SLI, "sign", "--key", d("mixed.key"), d("ssh.msg")])
    expect(rc == 3 and "SLI_E_KEY_MISMATCH" in err, err)
    write(d("pw"), b"pw\n")
    rc, out, err = run([SLI, "keygen", "--type", "ed25519", "--format", "ssh", "--passphrase-file", d("pw"),
                        "-o", d("y.key")])
    expect(rc != 0 and "ssh-keygen -p" in err and not os.path.exists(d("y.key")), err)


def openssl_verify(kind, pub, sig, msg):
    if kind == "ed25519":
        return run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-rawin", "-in", msg, "-sigfile", sig])
    extra = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"] if kind == "rsa" else []
    return run(["openssl", "dgst", "-sha256"] + extra + ["-verify", pub, "-signature", sig, msg])


def openssl_sign(kind, key, sig, msg):
    if kind == "ed25519":
        return run(["openssl", "pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", msg, "-out", sig])
    extra = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"] if kind == "rsa" else []
    return run(["openssl", "dgst", "-sha256"] + extra + ["-sign", key, "-out", sig, msg])


@checks.case
def signatures_interoperate_with_openssl():
    msg, tampered = d("doc.txt"), d("doc2.txt")
    write(msg, b"pay 100 EUR to Alice\n" * 50)
    write(tampered, b"pay 900 EUR to Alice\n" + b"pay 100 EUR to Alice\n" * 49)
    for kind in ("ed25519", "ec", "rsa"):
        key, pub = keygen("sig-" + kind, kind)
        sig = d(kind + ".sig")
        rc, out, err = run([SLI, "sign", "--key", key, "-o", sig, msg])
        expect(rc == 0, err)
        rc, out, err = openssl_verify(kind, pub, sig, msg)
        expect(rc == 0 and ("Verified OK" in out + err or "Signature Verified Successfully" in out + err),
               "openssl rejects our %s signature: %s %s" % (kind, out, err))
        rc, out, err = openssl_verify(kind, pub, sig, tampered)
        expect(rc != 0, "openssl accepted a %s signature over tampered data" % kind)
        osig = d(kind + ".osig")
        rc, out, err = openssl_sign(kind, key, osig, msg)
        expect(rc == 0, "openssl sign: " + err)
        rc, out, err = run([SLI, "verify", "--pub", pub, "--sig", osig, msg])
        expect(rc == 0 and "verified" in out, "we reject openssl's %s signature: %s" % (kind, err))
        rc, out, err = run([SLI, "verify", "--pub", pub, "--sig", osig, tampered])
        expect(rc == 6 and "SLI_E_SIGNATURE" in err, "tampered %s: rc=%d %s" % (kind, rc, err))
        bad = bytearray(read(sig))
        bad[len(bad) // 2] ^= 1
        write(d("bad.sig"), bytes(bad))
        rc, out, err = run([SLI, "verify", "--pub", pub, "--sig", d("bad.sig"), msg])
        expect(rc == 6 and "SLI_E_SIGNATURE" in err, "flipped %s signature: rc=%d %s" % (kind, rc, err))
    key, pub = keygen("agree", "x25519")
    rc, out, err = run([SLI, "sign", "--key", key, msg])
    expect(rc == 3 and "SLI_E_UNSUPPORTED" in err, err)


checks.finish(d)
