"""harness.py — shared by the real-peer tests: test certificates made at test time (python3's
cryptography, Debian's package), peers started in their own process group on loopback, and a tiny
check/report runner. Nothing here talks to anything but 127.0.0.1 / ::1."""
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BUILD = os.environ.get("SLI_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..", "build")
SLI = os.path.abspath(os.path.join(BUILD, "tools", "sli"))
LIBSLI = os.path.abspath(os.path.join(BUILD, "plugin", "libsli.so.1"))

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


class Dir:
    """A temporary directory for one test program, removed at exit."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="sli-test-")
        os.environ["SLI_STATE_DIR"] = os.path.join(self.path, "state")

    def __call__(self, name):
        return os.path.join(self.path, name)

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def _name(cn, org="sli tests"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_key(kind="ec"):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "rsa1024":
        return rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def _sign(builder, key):
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algo)


class CA:
    def __init__(self, d, name="Test CA", kind="ec"):
        self.key = new_key(kind)
        b = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
             .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(NOW - DAY).not_valid_after(NOW + 365 * DAY)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                            critical=True))
        self.cert = _sign(b, self.key)
        self.path = d("ca-%s.pem" % name.replace(" ", "_"))
        write(self.path, self.cert.public_bytes(serialization.Encoding.PEM))
        self.d = d
        self.revoked = []

    def issue(self, name, sans=("localhost", "127.0.0.1"), kind="ec", not_before=None,
              not_after=None, client=False, key=None):
        """Returns (cert_path, key_path) for a leaf signed by this CA."""
        key = key or new_key(kind)
        alt = []
        for s in sans:
            try:
                import ipaddress
                alt.append(x509.IPAddress(ipaddress.ip_address(s)))
            except ValueError:
                alt.append(x509.DNSName(s))
        b = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(self.cert.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + 90 * DAY)
             .add_extension(x509.SubjectAlternativeName(alt), critical=False)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                   else ExtendedKeyUsageOID.SERVER_AUTH]),
                            critical=False))
        cert = _sign(b, self.key)
        base = self.d(name.replace(" ", "_").replace("*", "star"))
        write(base + ".crt", cert.public_bytes(serialization.Encoding.PEM))
        write(base + ".key", key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        self.last = cert
        return base + ".crt", base + ".key"

    def crl(self, revoked_certs, next_update=None, name="crl.pem"):
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
             .last_update(NOW - 2 * DAY).next_update(next_update or NOW + 10 * DAY))
        for c in revoked_certs:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(c.serial_number).revocation_date(NOW - DAY)
                                          .build())
        crl = _sign(b, self.key)
        p = self.d(name)
        write(p, crl.public_bytes(serialization.Encoding.PEM))
        return p


def self_signed(d, name, sans=("localhost",)):
    key = new_key()
    b = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW - DAY).not_valid_after(NOW + 90 * DAY)
         .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False))
    cert = _sign(b, key)
    base = d(name.replace(" ", "_"))
    write(base + ".crt", cert.public_bytes(serialization.Encoding.PEM))
    write(base + ".key", key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return base + ".crt", base + ".key"


def write(path, data, mode=0o600):
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Proc:
    """A process in its own session; output to a file; killed with its group."""

    def __init__(self, args, d, name, stdin=subprocess.DEVNULL, env=None):
        self.log_path = d(name + ".log")
        self.out_path = d(name + ".out")
        self.log = open(self.log_path, "wb")
        self.out = open(self.out_path, "wb")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.p = subprocess.Popen(args, stdin=stdin, stdout=self.out, stderr=self.log,
                                  start_new_session=True, env=e)

    def wait_for(self, pattern, timeout=10.0, where="out"):
        path = self.out_path if where == "out" else self.log_path
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, read(path).decode(errors="replace"))
            if m:
                return m
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("no /%s/ from %s within %.0fs; stderr: %s" % (
            pattern, self.p.args[0], timeout, read(self.log_path).decode(errors="replace")[-800:]))

    def stderr(self):
        return read(self.log_path).decode(errors="replace")

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(3)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()
        self.out.close()


def sli_serve(d, name, *args):
    """Starts `sli serve --listen 127.0.0.1:0 ARGS`; returns (proc, port)."""
    p = Proc([SLI, "serve", "--listen", "127.0.0.1:0"] + list(args), d, name)
    port = int(p.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
    return p, port


def run(args, input=b"", timeout=20, env=None):
    """Runs a client to completion; returns (rc, stdout, stderr) as text."""
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run(args, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=e, start_new_session=True)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


class Checks:
    """Runs named cases, prints ok/FAIL per case with the reason, exits non-zero on any failure."""

    def __init__(self):
        self.failed = []
        self.passed = 0

    def case(self, fn):
        name = fn.__name__
        t = time.time()
        try:
            fn()
            self.passed += 1
            print("ok   %-45s %.2fs" % (name, time.time() - t), flush=True)
        except Exception as e:  # noqa: BLE001 — report every failure, go on with the next case
            self.failed.append(name)
            print("FAIL %-45s %s" % (name, e), flush=True)
            traceback.print_exc(file=sys.stdout)
        return fn

    def finish(self, d=None):
        if d:
            d.cleanup()
        print("%d passed, %d failed" % (self.passed, len(self.failed)))
        sys.exit(1 if self.failed else 0)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def recv_to_end(sock, chunk=65536):
    """Everything `sock` (a socket or an ssl socket) gives until its end."""
    data = b""
    while True:
        b = sock.recv(chunk)
        if not b:
            return data
        data += b


def plaintext_client(port):
    """Connects to 127.0.0.1:port and speaks plain HTTP, as a scanner or a misconfigured client
    does to a TLS port; waits briefly for whatever comes back."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
