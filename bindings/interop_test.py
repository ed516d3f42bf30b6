#!/usr/bin/python3
"""bindings_interop — the bindings against each other and against C, in every direction: a blob
sealed by each of Python, Go, Node and `sli seal` (C) opens in each of them and in `sli unseal`;
an age file made by each of them and by `age` decrypts with each of them, `sli decrypt` and
`age -d`; a TLS server in each binding serves a client in each binding and `openssl s_client`.

Each language has one small command (bindings/<lang>/…/interop…) with the same operations:
  seal KEYRING AD | open KEYRING AD          stdin to stdout
  encrypt RECIPIENT | decrypt IDENTITY_FILE  stdin to stdout
  serve CERT KEY                             prints its port, answers one line, close_notify
  connect PORT CA NAME                       sends "hello from LANG", prints the answer"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
from harness import Checks, Dir, expect  # noqa: E402

BUILD = os.environ.get("SLI_BUILD_DIR", os.path.join(HERE, "..", "build"))
SLI = os.path.join(BUILD, "tools", "sli")
D = Dir()
checks = Checks()


d = D


def langs():
    """The bindings' commands: Python always; Go and Node when built (their meson targets)."""
    lib = os.path.join(BUILD, "plugin")
    env = dict(os.environ, SLI_BUILD_DIR=BUILD,
               LD_LIBRARY_PATH=":".join(filter(None, [lib, os.environ.get("LD_LIBRARY_PATH")])))
    out = {"python": [sys.executable, os.path.join(HERE, "python", "tests", "interop_cli.py")]}
    go = os.path.join(BUILD, "bindings", "sli-interop")
    if os.path.exists(go):
        out["go"] = [go]
    node = shutil.which("node")
    addon = os.path.join(BUILD, "bindings", "node", "sli.node")
    if node and os.path.exists(addon):
        out["node"] = [node, os.path.join(HERE, "node", "scripts", "interop-cli.js")]
    return out, env


LANGS, ENV = langs()


def run(cmd, data=b"", timeout=60):
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=ENV, timeout=timeout)
    if r.returncode:
        raise AssertionError("%s: exit %d: %s" % (" ".join(cmd), r.returncode,
                                                   r.stderr.decode(errors="replace")[-400:]))
    return r.stdout


def sealers():
    kr = d("fields.keyring")
    out = {lang: (lambda data, ad, c=cmd: run(c + ["seal", kr, ad], data)) for lang, cmd in LANGS.items()}
    out["c"] = lambda data, ad: run([SLI, "seal", "--keyring", kr, "--ad", ad], data)
    return out


def openers():
    kr = d("fields.keyring")
    out = {lang: (lambda blob, ad, c=cmd: run(c + ["open", kr, ad], blob)) for lang, cmd in LANGS.items()}
    out["c"] = lambda blob, ad: run([SLI, "unseal", "--keyring", kr, "--ad", ad], blob)
    return out


@checks.case
def all_languages_present():
    expect(set(LANGS) == {"python", "go", "node"}, "the bindings built: %s" % sorted(LANGS))


@checks.case
def sealed_blobs_every_direction():
    run([SLI, "keyring", "new", d("fields.keyring")])
    plain = os.urandom(1000) + b"\x00 end"
    opens = openers()
    for maker, seal in sealers().items():
        blob = seal(plain, "users.ssn")
        expect(len(blob) == len(plain) + 33, "%s: a blob of %d bytes" % (maker, len(blob)))
        for reader, open_ in opens.items():
            expect(open_(blob, "users.ssn") == plain, "%s -> %s: the plaintext" % (maker, reader))
        # the associated data binds in every language: a wrong one is refused by each reader
        for reader, open_ in opens.items():
            try:
                open_(blob, "users.name")
                ok = False
            except AssertionError:
                ok = True
            expect(ok, "%s -> %s: a wrong ad refused" % (maker, reader))


@checks.case
def age_files_every_direction():
    run(["age-keygen", "-o", d("id.txt")])
    rcpt = [ln.split()[-1] for ln in open(d("id.txt")) if ln.startswith("# public key:")][0]
    plain = os.urandom(200000)  # more than three 64 KiB chunks
    makers = {lang: (lambda data, c=cmd: run(c + ["encrypt", rcpt], data))
              for lang, cmd in LANGS.items()}
    makers["sli"] = lambda data: run([SLI, "encrypt", "-r", rcpt], data)
    makers["age"] = lambda data: run(["age", "-r", rcpt], data)
    readers = {lang: (lambda f, c=cmd: run(c + ["decrypt", d("id.txt")], f))
               for lang, cmd in LANGS.items()}
    readers["sli"] = lambda f: run([SLI, "decrypt", "-i", d("id.txt")], f)
    readers["age"] = lambda f: run(["age", "-d", "-i", d("id.txt")], f)
    for maker, enc in makers.items():
        f = enc(plain)
        expect(f.startswith(b"age-encryption.org/v1\n"), "%s: an age file" % maker)
        for reader, dec in readers.items():
            expect(dec(f) == plain, "%s -> %s: the plaintext" % (maker, reader))


@checks.case
def tls_every_direction():
    key, cert = d("tls.key"), d("tls.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=localhost", "-days", "2",
         "-addext", "subjectAltName=DNS:localhost"])
    clients = {lang: (lambda port, c=cmd: run(c + ["connect", str(port), cert, "localhost"]))
               for lang, cmd in LANGS.items()}

    def s_client(port):
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile",
                            cert, "-verify_return_error", "-servername", "localhost", "-quiet"],
                           input=b"hello from openssl\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        return r.stdout
    clients["openssl"] = s_client
    for server, cmd in LANGS.items():
        for client, connect in clients.items():
            p = subprocess.Popen(cmd + ["serve", cert, key], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=ENV)
            try:
                port = int(p.stdout.readline())
                got = connect(port)
                p.wait(20)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            want = ("%s heard: hello from %s\n" % (server, client)).encode()
            expect(got == want, "%s server, %s client: %r" % (server, client, got))
            expect(p.returncode == 0, "%s server, %s client: the server's exit %s: %s"
                   % (server, client, p.returncode, p.stderr.read()[-300:]))


sys.exit(checks.finish(D))
