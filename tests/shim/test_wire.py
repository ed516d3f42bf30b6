#!/usr/bin/python3
"""test_wire.py — the wire oracle's own test (wire.py): it must accept clean TLS and catch bad TLS.

Real TLS comes from python's ssl module on both ends (client <-> Recorder <-> server, loopback
only), with a key log from one end.  Clean sessions must come out clean and decrypted, with the
application data and close_notify alerts that were really sent; recordings edited the way a broken
shim would break them (plaintext written past TLS, a record sealed again with a used sequence
number, a lost record, a truncated stream, a duplicated TLS 1.2 record) must be caught and placed.
The relay itself is tested for half-close, reset and refused-upstream propagation, pause_accept,
a bounded stop(), volume and concurrency.

TLS 1.3 suites: this python has no SSLContext.set_ciphersuites, so TLS_AES_128_GCM_SHA256 and
TLS_CHACHA20_POLY1305_SHA256 are forced in a child process of this script started with an
OPENSSL_CONF whose system_default section sets Ciphersuites; the default suite
(TLS_AES_256_GCM_SHA384) is tested in-process.  KeyUpdate cannot be triggered from python's ssl,
so it is tested on a recording extended with records sealed by wire.Tls13Key.

Run: /usr/bin/python3 tests/shim/test_wire.py   (exit 0 = all passed; one line per case)
"""
import datetime
import errno
import os
import random
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import wire

CASE_LIMIT = 30      # seconds: a case still running then has failed (SIGALRM)
IO_TIMEOUT = 5.0     # every socket operation of the tests
MiB = 1 << 20
_rng = random.Random(0x5119)


def data(n):
    return _rng.randbytes(n)


# Request/response exchanges (client sends, then server answers), sizes around record limits.
FULL = [(data(1), data(7)), (data(300), data(16384)), (data(16385), data(1)),
        (data(MiB), data(70000)), (data(5), data(MiB)), (data(2000), data(3))]
SMALL = [(data(10), data(20)), (data(100), data(40000)), (data(50), data(30)),
         (data(60), data(25))]


class Failure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failure(what)


def expect_problem(rep, text):
    """rep must have a problem containing `text` (and nothing but such problems)."""
    expect(any(text in p for p in rep.problems),
           "no problem containing %r; report:\n%s" % (text, rep))


# ----------------------------------------------------------------------------------------------
# helpers: certificates, sessions, servers
# ----------------------------------------------------------------------------------------------

def make_cert(d):
    """An EC P-256 self-signed certificate for "localhost": (cert path, key path)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), MiB))
        if not chunk:
            raise Failure("EOF after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_all(s):
    buf = bytearray()
    while True:
        chunk = s.recv(MiB)
        if not chunk:
            return bytes(buf)
        buf += chunk


def listener(host="127.0.0.1"):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.bind((host, 0))
    ls.listen(64)
    ls.settimeout(IO_TIMEOUT)
    return ls


def thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t


def tls_session(tmp, exchanges, max_version=None, server_setup=None, keylog_side="client",
                after=None):
    """python ssl client <-> Recorder <-> python ssl server, one connection.  The client sends
    each request and reads each response of `exchanges`, then closes with close_notify
    (unwrap), or calls after(ssl_socket) and just closes.  Returns (conn, keylog path, info)."""
    cert, key = make_cert(tmp)
    keylog = os.path.join(tmp, "keys.log")
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.create_default_context(cafile=cert)
    if max_version:
        cctx.maximum_version = max_version
    wire.keylog_context(cctx if keylog_side == "client" else sctx, keylog)
    if server_setup:
        server_setup(sctx)
    ls = listener()
    info = {}

    def server():
        sock = None
        try:
            sock, _ = ls.accept()
            sock.settimeout(IO_TIMEOUT)
            sock = s = sctx.wrap_socket(sock, server_side=True)  # takes over the fd
            for request, response in exchanges:
                if recv_exact(s, len(request)) != request:
                    raise Failure("server: wrong request")
                s.sendall(response)
            if s.recv(1) != b"":
                raise Failure("server: data after the exchanges")
            s.unwrap()  # the client's close_notify came: answer it
            info["server_done"] = True
        except Exception as e:  # reported by the case that cares
            info["server_error"] = e
        finally:
            if sock is not None:
                sock.close()

    srv = thread(server)
    with wire.Recorder("127.0.0.1", ls.getsockname()[1]) as rec:
        raw = socket.create_connection(("127.0.0.1", rec.port), timeout=IO_TIMEOUT)
        s = cctx.wrap_socket(raw, server_hostname="localhost")
        info["version"], info["cipher"] = s.version(), s.cipher()[0]
        for request, response in exchanges:
            s.sendall(request)
            expect(recv_exact(s, len(response)) == response, "client: wrong response")
        if after:
            after(s)
            s.close()
        else:
            s.unwrap().close()
        srv.join(IO_TIMEOUT)
        expect(rec.wait_closed(1, IO_TIMEOUT), "the recorder saw no end of the connection")
        conn = rec.connections[0]
    ls.close()
    return conn, keylog, info


def check_clean_tls13(conn, keylog, exchanges, suite):
    """A clean, fully decrypted TLS 1.3 session that carried `exchanges` and two close_notify."""
    rep = wire.check_tls(conn, keylog)
    expect(rep.ok(), "problems in a clean session:\n%s" % rep)
    expect(rep.version == "TLSv1.3", "version %s" % rep.version)
    expect(rep.cipher == suite, "cipher %s, not %s" % (rep.cipher, suite))
    expect(rep.decrypted, "not decrypted:\n%s" % rep)
    expect(rep.c2s_app == b"".join(c for c, _ in exchanges), "c2s application data differs")
    expect(rep.s2c_app == b"".join(s for _, s in exchanges), "s2c application data differs")
    expect(rep.c2s_alerts == [(1, 0)], "c2s alerts %s" % rep.c2s_alerts)
    expect(rep.s2c_alerts == [(1, 0)], "s2c alerts %s" % rep.s2c_alerts)
    for d in ("c2s", "s2c"):  # handshake key, then application key 0, both from sequence 0
        epochs = [(t.epoch, t.seq) for t in rep.trace[d]]
        expect(epochs[0] == (0, 0) and (1, 0) in epochs, "%s epochs %s" % (d, epochs[:5]))
    return rep


def record_bytes(stream, rec):
    return stream[rec.offset:rec.offset + rec.size]


# ----------------------------------------------------------------------------------------------
# cases
# ----------------------------------------------------------------------------------------------

CASES = []


def case(name):
    """Registers fn(tmp_dir) as a case; it raises to fail and may return a note to print."""
    def register(fn):
        CASES.append((name, fn))
        return fn
    return register


@case("tls13 default suite (TLS_AES_256_GCM_SHA384): 1 MiB both ways, decrypted, close_notify")
def _tls13_default(tmp):
    conn, keylog, info = tls_session(tmp, FULL)
    expect("server_error" not in info, "server: %r" % info.get("server_error"))
    expect(info["cipher"] == "TLS_AES_256_GCM_SHA384", "negotiated %s" % info["cipher"])
    rep = check_clean_tls13(conn, keylog, FULL, "TLS_AES_256_GCM_SHA384")
    # The server's NewSessionTickets came under application key 0 and were skipped.
    expect(any(t.epoch == 1 and t.inner_type == 22 for t in rep.trace["s2c"]),
           "no post-handshake handshake record seen")


def _forced_suite_case(suite):
    def run(tmp):
        conf = os.path.join(tmp, "openssl.cnf")
        with open(conf, "w") as f:
            f.write("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
                    "[ssl_sect]\nsystem_default = tls_defaults\n"
                    "[tls_defaults]\nCiphersuites = %s\n" % suite)
        env = dict(os.environ, OPENSSL_CONF=conf)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--tls13-child", suite],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=CASE_LIMIT - 5)
        expect(p.returncode == 0, "child: %s" % p.stdout.strip()[-2000:])
    return run


for _suite in ("TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"):
    case("tls13 %s (forced via OPENSSL_CONF in a child): 1 MiB both ways, decrypted" % _suite)(
        _forced_suite_case(_suite))


def tls13_child(suite):
    """The child of _forced_suite_case: one full session, which must use `suite`."""
    with tempfile.TemporaryDirectory(prefix="test_wire.") as tmp:
        try:
            conn, keylog, info = tls_session(tmp, FULL)
            expect(info["cipher"] == suite, "OPENSSL_CONF did not force %s: negotiated %s" % (
                suite, info["cipher"]))
            expect("server_error" not in info, "server: %r" % info.get("server_error"))
            check_clean_tls13(conn, keylog, FULL, suite)
        except Exception as e:
            print("FAIL %s %s" % (suite, e))
            return 1
    print("ok")
    return 0


@case("tls13 HelloRetryRequest (server only offers P-384), key log written by the server")
def _tls13_hrr(tmp):
    conn, keylog, info = tls_session(tmp, SMALL, keylog_side="server",
                                     server_setup=lambda ctx: ctx.set_ecdh_curve("secp384r1"))
    expect("server_error" not in info, "server: %r" % info.get("server_error"))
    rep = check_clean_tls13(conn, keylog, SMALL, "TLS_AES_256_GCM_SHA384")
    expect(rep.hello_retry, "no HelloRetryRequest was seen (the case did not force one)")


@case("tls13 without key log, and with a key log of other connections: clean, not decrypted")
def _tls13_no_keylog(tmp):
    conn, keylog, _ = tls_session(tmp, SMALL)
    rep = wire.check_tls(conn)
    expect(rep.ok() and rep.version == "TLSv1.3" and not rep.decrypted, str(rep))
    expect(rep.c2s_app == b"" and rep.c2s_alerts == [], str(rep))
    other = os.path.join(tmp, "other.log")
    with open(keylog) as f, open(other, "w") as g:
        g.write(f.read().replace(rep.client_random.hex(), "00" * 32))
    rep = wire.check_tls(conn, other)
    expect(rep.ok() and not rep.decrypted and rep.notes, str(rep))
    rep = wire.check_tls(conn, os.path.join(tmp, "missing.log"))
    expect(rep.ok() and not rep.decrypted, str(rep))


@case("tls12: clean, version and AES-GCM suite reported, not decrypted")
def _tls12(tmp):
    conn, keylog, info = tls_session(tmp, FULL, max_version=ssl.TLSVersion.TLSv1_2)
    expect("server_error" not in info, "server: %r" % info.get("server_error"))
    rep = wire.check_tls(conn, keylog)
    expect(rep.ok(), "problems in a clean session:\n%s" % rep)
    expect(rep.version == "TLSv1.2" and info["version"] == "TLSv1.2", str(rep))
    expect(rep.cipher_id in wire.TLS12_GCM_SUITES, "suite %s" % rep.cipher)
    expect(not rep.decrypted and rep.c2s_app == b"" and rep.s2c_app == b"", str(rep))


@case("tls12 negative: a duplicated encrypted record is an explicit nonce reuse")
def _tls12_duplicate(tmp):
    conn, keylog, _ = tls_session(tmp, SMALL, max_version=ssl.TLSVersion.TLSv1_2)
    c2s = conn.c2s
    recs, _ = wire.split_records(c2s)
    ccs = next(r.index for r in recs if r.type == wire.CT_CHANGE_CIPHER_SPEC)
    app = [r for r in recs[ccs + 1:] if r.type == wire.CT_APPLICATION_DATA]
    dup = app[len(app) // 2]
    end = dup.offset + dup.size
    bad = wire.check_tls(wire.Conn.from_streams(c2s[:end] + record_bytes(c2s, dup) + c2s[end:],
                                                conn.s2c), keylog)
    expect_problem(bad, "c2s record #%d at offset %d: explicit nonce %s reused (first in record "
                   "#%d)" % (dup.index + 1, end, dup.payload[:8].hex(), dup.index))
    expect(len(bad.problems) == 1, str(bad))


@case("negative: plaintext written on the socket after the handshake is found at its offset")
def _plaintext_leak(tmp):
    def leak(s):
        socket.socket.send(s, b"GET / HTTP/1.0\r\n")  # the raw socket, bypassing TLS
        try:
            s.recv(1)  # the server gives up on the connection
        except (ssl.SSLError, OSError):
            pass

    conn, keylog, info = tls_session(tmp, SMALL[:1], after=leak)
    expect("server_error" in info, "the server accepted plaintext?")
    c2s = conn.c2s
    at = c2s.find(b"GET / HTTP/1.0")
    expect(at > 0, "the plaintext was not recorded")
    rep = wire.check_tls(conn, keylog)
    expect_problem(rep, "c2s offset %d (record #" % at)
    expect_problem(rep, "not a TLS record (content type 71): b'GET / HTTP/1.0\\r\\n'")
    expect(len(rep.problems) == 1, str(rep))
    expect(rep.c2s_app == SMALL[0][0], "the data before the leak was not decrypted")


def _small_tls13(tmp):
    conn, keylog, info = tls_session(tmp, SMALL)
    expect("server_error" not in info, "server: %r" % info.get("server_error"))
    rep = check_clean_tls13(conn, keylog, SMALL, "TLS_AES_256_GCM_SHA384")
    secret = wire.read_keylog(keylog)[("SERVER_TRAFFIC_SECRET_0", rep.client_random)]
    key = wire.Tls13Key(rep.cipher_id, secret)
    return conn, keylog, rep, key


@case("tls13 negative: a record sealed again with a used sequence number is 'reused'")
def _tls13_reuse(tmp):
    conn, keylog, rep, key = _small_tls13(tmp)
    s2c = conn.s2c
    last = rep.trace["s2c"][-1]
    expect(last.epoch == 1, "last s2c record not under application key 0")
    # What a forked child holding a copy of the key state would write next: the same nonce.
    forged = key.seal(last.seq, wire.CT_APPLICATION_DATA, b"written by a forked child")
    bad = wire.check_tls(wire.Conn.from_streams(conn.c2s, s2c + forged), keylog)
    expect_problem(bad, "s2c record #%d at offset %d: sequence number %d reused (expected %d)" % (
        last.index + 1, len(s2c), last.seq, last.seq + 1))
    expect(len(bad.problems) == 1 and not bad.decrypted, str(bad))
    # The same in the middle of the stream, right after the record whose nonce it repeats.
    mid = [t for t in rep.trace["s2c"] if t.epoch == 1 and t.inner_type == 23][1]
    end = mid.offset + mid.size
    forged = key.seal(mid.seq, wire.CT_APPLICATION_DATA, b"x" * 100)
    bad = wire.check_tls(wire.Conn.from_streams(conn.c2s, s2c[:end] + forged + s2c[end:]), keylog)
    expect_problem(bad, "s2c record #%d at offset %d: sequence number %d reused (expected %d)" % (
        mid.index + 1, end, mid.seq, mid.seq + 1))


@case("tls13 negative: a record dropped from the middle is 'skipped', a corrupt one "
      "'does not decrypt'")
def _tls13_skip(tmp):
    conn, keylog, rep, _ = _small_tls13(tmp)
    s2c = conn.s2c
    mid = [t for t in rep.trace["s2c"] if t.epoch == 1 and t.inner_type == 23][1]
    cut = s2c[:mid.offset] + s2c[mid.offset + mid.size:]
    bad = wire.check_tls(wire.Conn.from_streams(conn.c2s, cut), keylog)
    expect_problem(bad, "s2c record #%d at offset %d: sequence number %d skipped to: 1 record(s) "
                   "missing (expected %d)" % (mid.index, mid.offset, mid.seq + 1, mid.seq))
    expect(len(bad.problems) == 1, str(bad))
    flipped = bytearray(s2c)
    flipped[mid.offset + 20] ^= 1
    bad = wire.check_tls(wire.Conn.from_streams(conn.c2s, bytes(flipped)), keylog)
    expect_problem(bad, "s2c record #%d at offset %d: does not decrypt (expected sequence number "
                   "%d in epoch 1)" % (mid.index, mid.offset, mid.seq))
    # A client record sealed under its handshake key after its Finished (one record: seq 0).
    secrets = wire.read_keylog(keylog)
    hs = wire.Tls13Key(rep.cipher_id, secrets[("CLIENT_HANDSHAKE_TRAFFIC_SECRET",
                                                rep.client_random)])
    c2s = conn.c2s
    first_app = next(t for t in rep.trace["c2s"] if t.epoch == 1)
    for seq, text in ((0, "sequence number 0 of the retired key of epoch 0 reused"),
                      (1, "sealed with the retired key of epoch 0, sequence number 1")):
        stale = hs.seal(seq, wire.CT_APPLICATION_DATA, b"under the handshake key")
        bad = wire.check_tls(wire.Conn.from_streams(
            c2s[:first_app.offset] + stale + c2s[first_app.offset:], s2c), keylog)
        expect_problem(bad, "c2s record #%d at offset %d: %s (expected 0 in epoch 1)" % (
            first_app.index, first_app.offset, text))


@case("tls13 KeyUpdate (synthetic): the next key from sequence 0 is clean; the old key after "
      "it is not")
def _tls13_key_update(tmp):
    conn, keylog, rep, key = _small_tls13(tmp)
    s2c = conn.s2c
    last = rep.trace["s2c"][-1]
    key_update = key.seal(last.seq + 1, wire.CT_HANDSHAKE, b"\x18\x00\x00\x01\x00", padding=7)
    after = key.next().seal(0, wire.CT_APPLICATION_DATA, b"after the key update")
    good = wire.check_tls(wire.Conn.from_streams(conn.c2s, s2c + key_update + after), keylog)
    expect(good.ok() and good.decrypted, str(good))
    expect(good.s2c_app.endswith(b"after the key update"), "data after the KeyUpdate lost")
    expect(good.trace["s2c"][-1][4:] == (0, 23) and good.trace["s2c"][-1].epoch == 2,
           "trace %s" % (good.trace["s2c"][-1],))
    stale = key.seal(last.seq + 2, wire.CT_APPLICATION_DATA, b"old key")
    bad = wire.check_tls(wire.Conn.from_streams(conn.c2s, s2c + key_update + stale), keylog)
    expect_problem(bad, "sealed with the retired key of epoch 1, sequence number %d (expected 0 "
                   "in epoch 2)" % (last.seq + 2))


@case("negative: truncated streams 'end inside a record'; plaintext-only and empty streams")
def _truncated(tmp):
    conn, keylog, rep, _ = _small_tls13(tmp)
    s2c, c2s = conn.s2c, conn.c2s
    last = rep.trace["s2c"][-1]
    bad = wire.check_tls(wire.Conn.from_streams(c2s, s2c[:-3]), keylog)
    expect_problem(bad, "s2c offset %d (record #%d): ends inside a record: %d of %d bytes" % (
        last.offset, last.index, last.size - 3, last.size))
    recs, _ = wire.split_records(c2s)
    bad = wire.check_tls(wire.Conn.from_streams(c2s[:recs[2].offset + 2], s2c), keylog)
    expect_problem(bad, "c2s offset %d (record #2): ends inside a record: 2 of 5 header bytes" % (
        recs[2].offset))
    bad = wire.check_tls(wire.Conn.from_streams(b"hello, world\n", b""))
    expect_problem(bad, "c2s offset 0 (record #0): not a TLS record (content type 104)")
    bad = wire.check_tls(wire.Conn.from_streams(b"", b"\x17\x03\x03\x00\x00"))
    expect_problem(bad, "s2c offset 0 (record #0): not a TLS record (length 0)")
    empty = wire.check_tls(wire.Conn.from_streams(b"", b""))
    expect(empty.ok() and empty.version is None, str(empty))


@case("relay: half-close propagated, the reply after the client's EOF still arrives")
def _half_close(tmp):
    ls = listener()
    got = {}

    def server():
        s, _ = ls.accept()
        s.settimeout(IO_TIMEOUT)
        got["request"] = recv_all(s)  # returns once the client's EOF came through
        s.sendall(b"reply after your EOF " * 1000)
        s.close()

    srv = thread(server)
    with wire.Recorder("127.0.0.1", ls.getsockname()[1]) as rec:
        c = socket.create_connection(("127.0.0.1", rec.port), timeout=IO_TIMEOUT)
        c.sendall(b"request" * 100)
        c.shutdown(socket.SHUT_WR)
        reply = recv_all(c)
        c.close()
        srv.join(IO_TIMEOUT)
        expect(rec.wait_closed(1, IO_TIMEOUT), "not finished")
        conn = rec.connections[0]
    ls.close()
    expect(got.get("request") == b"request" * 100, "server got %r" % got)
    expect(reply == b"reply after your EOF " * 1000, "client got %d bytes" % len(reply))
    expect(conn.c2s == got["request"] and conn.s2c == reply, "recording differs")
    names = [e for _, e in conn.events]
    order = [names.index("c2s eof"), names.index("c2s eof forwarded"),
             next(i for i, e in enumerate(names) if e.startswith("s2c data")),
             names.index("s2c eof"), names.index("s2c eof forwarded"), names.index("closed")]
    expect(order == sorted(order), "event order %s" % names)


@case("relay: a client reset is propagated as a reset to the server")
def _reset(tmp):
    ls = listener()
    got = {}

    def server():
        s, _ = ls.accept()
        s.settimeout(IO_TIMEOUT)
        got["first"] = s.recv(10)
        try:
            got["then"] = s.recv(10)
        except OSError as e:
            got["then"] = e
        s.close()

    srv = thread(server)
    with wire.Recorder("127.0.0.1", ls.getsockname()[1]) as rec:
        c = socket.create_connection(("127.0.0.1", rec.port), timeout=IO_TIMEOUT)
        c.sendall(b"x")
        time.sleep(0.1)
        wire._reset_close(c)
        srv.join(IO_TIMEOUT)
        expect(rec.wait_closed(1, IO_TIMEOUT), "not finished")
        conn = rec.connections[0]
    ls.close()
    expect(got.get("first") == b"x", "server got %r" % got)
    expect(isinstance(got.get("then"), ConnectionResetError), "server then got %r" % got)
    expect(any(e.startswith("c2s reset") for _, e in conn.events), "events %s" % conn.events)


@case("relay: upstream refused -> the client is reset at once, event recorded")
def _refused(tmp):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    # Bound but not listening: connects are refused, and the port cannot be handed to the
    # recorder's own listener (closed, it once was: the relay then connected to itself, again
    # and again, until the process ran out of descriptors).
    with s, wire.Recorder("127.0.0.1", dead_port) as rec:
        t0 = time.monotonic()
        c = socket.socket()
        c.settimeout(IO_TIMEOUT)
        try:
            # The reset may even beat the end of connect() (python's connect polls).
            c.connect(("127.0.0.1", rec.port))
            outcome = c.recv(10)
        except OSError as e:
            outcome = e
        waited = time.monotonic() - t0
        c.close()
        expect(rec.wait_closed(1, 2), "not finished")
        conn = rec.connections[0]
    expect(isinstance(outcome, ConnectionResetError) or outcome == b"", "client got %r" % outcome)
    expect(waited < 1.0, "the client waited %.2f s" % waited)
    expect(any(e.startswith("upstream connect failed") for _, e in conn.events),
           "events %s" % conn.events)


def _echo_server(ls, stop):
    """Echoes every connection until `stop` is set (one thread per connection)."""
    def echo(s):
        with s:
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        return
                    s.sendall(chunk)
            except OSError:
                pass

    ls.settimeout(0.1)
    while not stop.is_set():
        try:
            s, _ = ls.accept()
        except socket.timeout:
            continue
        s.settimeout(IO_TIMEOUT)
        thread(echo, s)


@case("relay: pause_accept with backlog 0 holds a second connect until resume_accept")
def _pause(tmp):
    ls, stop = listener(), threading.Event()
    srv = thread(_echo_server, ls, stop)
    try:
        with wire.Recorder("127.0.0.1", ls.getsockname()[1], backlog=0) as rec:
            rec.pause_accept()
            first = socket.create_connection(("127.0.0.1", rec.port), timeout=IO_TIMEOUT)
            second = socket.socket()
            second.setblocking(False)
            err = second.connect_ex(("127.0.0.1", rec.port))
            expect(err == errno.EINPROGRESS, "non-blocking connect: %s" % os.strerror(err))
            p = select.poll()
            p.register(second, select.POLLOUT)
            expect(p.poll(300) == [], "the second connect completed while accept was paused")
            expect(rec.connections == [], "accepted while paused")
            rec.resume_accept()
            t0 = time.monotonic()
            expect(p.poll(8000) != [], "the second connect did not complete after resume")
            err = second.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            expect(err == 0, "second connect: %s" % os.strerror(err))
            waited = time.monotonic() - t0
            second.setblocking(True)
            second.settimeout(IO_TIMEOUT)
            for c, msg in ((first, b"first"), (second, b"second")):
                c.sendall(msg)
                expect(recv_exact(c, len(msg)) == msg, "no echo through the relay")
                c.close()
            expect(rec.wait_closed(2, IO_TIMEOUT), "not finished")
            expect(len(rec.connections) == 2, "%d connections" % len(rec.connections))
    finally:
        stop.set()
        srv.join(IO_TIMEOUT)
        ls.close()
    return "second connect completed %.2f s after resume_accept" % waited


def _sink_server(ls, stop):
    """Per connection: reads to EOF, then sends back what it read, reversed."""
    def serve(s):
        with s:
            s.sendall(recv_all(s)[::-1])

    ls.settimeout(0.1)
    while not stop.is_set():
        try:
            s, _ = ls.accept()
        except socket.timeout:
            continue
        s.settimeout(IO_TIMEOUT)
        thread(serve, s)


@case("relay: 32 concurrent connections of 512 KiB each way, plus 24 MiB each way on one")
def _volume(tmp):
    ls, stop = listener(), threading.Event()
    srv = thread(_sink_server, ls, stop)
    results = {}

    def client(i, size):
        try:
            c = socket.create_connection(("127.0.0.1", rec.port), timeout=IO_TIMEOUT)
            payload = bytes([i % 256]) * size
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            results[i] = (payload, recv_all(c))
            c.close()
        except Exception as e:
            results[i] = e

    try:
        with wire.Recorder("127.0.0.1", ls.getsockname()[1]) as rec:
            t0 = time.monotonic()
            threads = [thread(client, i, 512 * 1024) for i in range(32)]
            threads.append(thread(client, 32, 24 * MiB))
            for t in threads:
                t.join(CASE_LIMIT - 10)
            expect(rec.wait_closed(33, IO_TIMEOUT), "not all finished")
            took = time.monotonic() - t0
            conns = rec.connections
    finally:
        stop.set()
        srv.join(IO_TIMEOUT)
        ls.close()
    errors = [r for r in results.values() if isinstance(r, Exception)]
    expect(len(results) == 33 and not errors, "client errors: %s" % errors[:3])
    recorded = {conn.c2s[:1]: conn for conn in conns}
    for i, (sent, got) in results.items():
        conn = recorded[bytes([i % 256])]
        expect(conn.c2s == sent and conn.s2c == got, "recording %d differs" % i)
    return "%d MiB relayed in %.2f s" % ((32 * 2 * 512 * 1024 + 48 * MiB) // MiB, took)


@case("relay: stop() with a live, stuck connection returns within 2 s and resets it")
def _stop(tmp):
    ls = listener()
    held = []
    srv = thread(lambda: held.append(ls.accept()[0]))  # accepts and never reads
    rec = wire.Recorder("127.0.0.1", ls.getsockname()[1]).start()
    c = socket.create_connection(("127.0.0.1", rec.port), timeout=IO_TIMEOUT)
    c.setblocking(False)
    try:
        while True:  # fill every buffer on the way
            c.send(b"z" * 65536)
    except BlockingIOError:
        pass
    srv.join(IO_TIMEOUT)
    t0 = time.monotonic()
    rec.stop()
    took = time.monotonic() - t0
    expect(took < 2.0, "stop() took %.2f s" % took)
    expect(not any(t.name.startswith("wire-") for t in threading.enumerate()),
               "recorder threads left")
    c.setblocking(True)
    c.settimeout(2)
    try:
        outcome = recv_all(c)
    except OSError as e:
        outcome = e
    expect(isinstance(outcome, ConnectionResetError) or outcome == b"", "client got %r" % outcome)
    c.close()
    for s in held:
        s.close()
    ls.close()
    expect(rec.connections[0].finished and
           rec.connections[0].events[-1][1] == "stopped", "events %s" % rec.connections[0].events)


@case("relay: ::1 works; non-loopback addresses are refused")
def _addresses(tmp):
    for kwargs in ({"upstream_host": "192.0.2.1", "upstream_port": 1},
                   {"upstream_host": "127.0.0.1", "upstream_port": 1, "listen_host": "0.0.0.0"},
                   {"upstream_host": "localhost", "upstream_port": 1}):
        try:
            wire.Recorder(**kwargs)
        except ValueError:
            continue
        raise Failure("accepted %s" % kwargs)
    try:
        ls = listener("::1")
    except OSError:
        return "::1 part skipped: no IPv6 loopback"
    stop = threading.Event()
    srv = thread(_echo_server, ls, stop)
    try:
        with wire.Recorder("::1", ls.getsockname()[1], listen_host="::1") as rec:
            c = socket.create_connection(("::1", rec.port), timeout=IO_TIMEOUT)
            c.sendall(b"over ipv6")
            expect(recv_exact(c, 9) == b"over ipv6", "no echo")
            c.close()
            expect(rec.wait_closed(1, IO_TIMEOUT), "not finished")
            expect(rec.connections[0].c2s == b"over ipv6", "not recorded")
    finally:
        stop.set()
        srv.join(IO_TIMEOUT)
        ls.close()


# ----------------------------------------------------------------------------------------------
# runner
# ----------------------------------------------------------------------------------------------

def _alarm(signum, frame):
    raise Failure("timed out after %d s" % CASE_LIMIT)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--tls13-child":
        return tls13_child(sys.argv[2])
    signal.signal(signal.SIGALRM, _alarm)
    passed = failed = 0
    t_all = time.monotonic()
    for name, fn in CASES:
        t0 = time.monotonic()
        signal.alarm(CASE_LIMIT)
        try:
            with tempfile.TemporaryDirectory(prefix="test_wire.") as tmp:
                note = fn(tmp)
            signal.alarm(0)
            print("ok  %s (%.2f s%s)" % (name, time.monotonic() - t0, "; " + note if note else ""),
                  flush=True)
            passed += 1
        except Exception as e:
            signal.alarm(0)
            reason = str(e) if isinstance(e, Failure) else repr(e)
            print("FAIL %s: %s (%.2f s)" % (name, reason, time.monotonic() - t0), flush=True)
            failed += 1
    print("%d passed, %d failed (%.1f s)" % (passed, failed, time.monotonic() - t_all))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
