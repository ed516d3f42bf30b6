#!/usr/bin/python3
"""The Python binding's hooks, by unittest, against python's `ssl` as the peer: alpn_select sees the
client's list and its choice is negotiated, None negotiates none, an exception refuses the
handshake (the client gets no_application_protocol; the server's sli.Error has the exception as its
cause), a name not offered is refused; private_key signs for a certificate whose key only the
program holds (EC and Ed25519 made by sli.Key), now or later from another thread through
a Future (WantPrivateKey meanwhile when non-blocking), and a hook that raises fails the handshake with its cause;
sli.log hands libsli's warnings to a function or to `logging`, and None stops them."""
import concurrent.futures
import logging
import os
import select
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import skip_if_asan  # noqa: E402

skip_if_asan()
import sli  # noqa: E402
from sli import certs, tls  # noqa: E402

D = tempfile.mkdtemp(prefix="sli-py-hooks-")


def identity(kind):
    key = sli.Key.generate(kind)
    path = os.path.join(D, kind + ".pem")
    with open(path, "wb") as f:
        f.write(certs.self_signed(key, "/CN=localhost", ["DNS:localhost"], days=2))
    return key, path


EC_KEY, EC_CERT = identity("ec")
KEYFILE = os.path.join(D, "ec.key")
with open(KEYFILE, "wb") as f:
    f.write(EC_KEY.private_pem())


def handshake_pair(server_ctx, trust, alpn=None, drive=None):
    """An sli server connection on one end of a socketpair, python's ssl client on the other.
    Returns (server connection, client's outcome: ssl socket or the exception)."""
    a, b = socket.socketpair()
    sconn = server_ctx.wrap(a)
    out = {}

    def client():
        c = ssl.create_default_context(cafile=trust)
        if alpn:
            c.set_alpn_protocols(alpn)
        try:
            s = c.wrap_socket(b, server_hostname="localhost")
            out["ok"], out["alpn"] = s, s.selected_alpn_protocol()
            s.recv(1)  # waits for the server's close
        except (ssl.SSLError, OSError) as e:
            out["err"] = e
    t = threading.Thread(target=client)
    t.start()
    err = None
    try:
        (drive or (lambda c: c.handshake()))(sconn)
    except sli.Error as e:
        err = e
    finally:
        if err is None:
            sconn.close()
        a.shutdown(socket.SHUT_RDWR)
        t.join(10)
        if "ok" in out:
            out["ok"].close()
        a.close()
        b.close()
    return sconn, err, out


class Alpn(unittest.TestCase):
    def test_choice_none_raise_and_stranger(self):
        seen = []

        def choose(offered):
            seen.append(offered)
            return {"pick-b": "b", "none": None, "stranger": "zzz"}.get(mode[0], None) \
                if mode[0] != "raise" else (_ for _ in ()).throw(ValueError("no protocol for you"))
        mode = ["pick-b"]
        ctx = tls.Context.server(cert=EC_CERT, key=KEYFILE, alpn_select=choose)
        conn, err, out = handshake_pair(ctx, EC_CERT, alpn=["a", "b"])
        self.assertIsNone(err)
        self.assertEqual(seen[-1], ["a", "b"])
        self.assertEqual(conn.alpn, "b")
        self.assertEqual(out["alpn"], "b")

        mode[0] = "none"
        conn, err, out = handshake_pair(ctx, EC_CERT, alpn=["a", "b"])
        self.assertIsNone(err)
        self.assertIsNone(conn.alpn)
        self.assertIsNone(out["alpn"])

        mode[0] = "raise"
        conn, err, out = handshake_pair(ctx, EC_CERT, alpn=["a", "b"])
        self.assertIsInstance(err, sli.Error)
        self.assertIsInstance(err.__cause__, ValueError)
        self.assertIn("no protocol for you", str(err))
        self.assertIn("NO APPLICATION PROTOCOL", str(out.get("err")).upper())

        mode[0] = "stranger"
        conn, err, out = handshake_pair(ctx, EC_CERT, alpn=["a", "b"])
        self.assertIsInstance(err, sli.Error)
        self.assertIn("did not offer", str(err))
        self.assertIn("err", out)

    def test_hooks_are_for_servers(self):
        with self.assertRaises(ValueError):
            tls.Context.client(alpn_select=lambda o: None)
        with self.assertRaises(ValueError):
            tls.Context.server(cert=EC_CERT, key=KEYFILE, private_key=lambda m, c: b"")


class PrivateKey(unittest.TestCase):
    def test_sign_now(self):
        for kind in ("ec", "ed25519"):
            key, cert = identity(kind)
            calls = []

            def sign(message, certificate):
                calls.append((len(message), certificate.subject))
                return key.sign(message)
            ctx = tls.Context.server(cert=cert, private_key=sign, max_version="1.3")
            conn, err, out = handshake_pair(ctx, cert)
            if kind == "ed25519" and err is not None:
                self.skipTest("python's ssl does not offer Ed25519 here: %s" % err)
            self.assertIsNone(err, kind)
            self.assertIn("ok", out, kind)
            self.assertEqual(len(calls), 1)
            self.assertEqual(calls[0][1], "CN = localhost")

    def test_sign_later_from_another_thread(self):
        """A Future done by a worker thread 0.2 s later: the blocking handshake waits for it, a
        non-blocking one raises WantPrivateKey until then."""
        key, cert = identity("ec")
        pool = concurrent.futures.ThreadPoolExecutor(2)
        threads = []

        def slow_sign(message):
            time.sleep(0.2)
            threads.append(threading.get_ident())
            return key.sign(message)
        ctx = tls.Context.server(cert=cert, private_key=lambda m, c: pool.submit(slow_sign, m))
        t0 = time.time()
        conn, err, out = handshake_pair(ctx, cert)
        self.assertIsNone(err)
        self.assertIn("ok", out)
        self.assertGreater(time.time() - t0, 0.19)
        self.assertNotEqual(threads[0], threading.get_ident())

        waits = []

        def drive(conn):
            conn._sock.setblocking(False)
            while True:
                try:
                    conn.handshake()
                    return
                except tls.WantPrivateKey:
                    waits.append("key")
                    time.sleep(0.05)
                except (tls.WantRead, tls.WantWrite):
                    select.select([conn._sock], [], [], 0.05)
        conn, err, out = handshake_pair(ctx, cert, drive=drive)
        self.assertIsNone(err)
        self.assertIn("ok", out)
        self.assertGreater(len(waits), 1, "WantPrivateKey while the Future runs")

        def broken(message):
            raise OSError("the KMS answered 503")
        ctx = tls.Context.server(cert=cert, private_key=lambda m, c: pool.submit(broken, m))
        conn, err, out = handshake_pair(ctx, cert)
        self.assertIsInstance(err, sli.Error)
        self.assertIn("503", str(err))
        self.assertIsInstance(err.__cause__, OSError)
        pool.shutdown()

    def test_future_on_a_socket_with_a_timeout_and_after_free(self):
        """On a socket with a timeout a handshake waits for the Future (found by review:
        WantPrivateKey escaped); a connection freed while its Future runs still gets the answer
        delivered to the engine, which frees what is left (else it leaked)."""
        key, cert = identity("ec")
        pool = concurrent.futures.ThreadPoolExecutor(2)
        ctx = tls.Context.server(cert=cert, private_key=lambda m, c: pool.submit(
            lambda: (time.sleep(0.2), key.sign(m))[1]))

        def drive(conn):
            conn._sock.settimeout(5)
            conn.handshake()
        conn, err, out = handshake_pair(ctx, cert, drive=drive)
        self.assertIsNone(err)
        self.assertIn("ok", out)

        gate = concurrent.futures.Future()
        ctx2 = tls.Context.server(cert=cert, private_key=lambda m, c: gate)
        s = ctx2.wrap_memory()
        c = tls.Context.client(ca=cert).wrap_memory("localhost")
        with self.assertRaises(tls.WantRead):
            c.handshake()
        s.feed(c.data_to_send())
        with self.assertRaises(tls.WantPrivateKey):
            s.handshake()
        s.free()
        gate.set_result(b"\x30" * 70)  # delivered to the engine after the free
        self.assertIsNone(s._pk_ptr)
        pool.shutdown()

    def test_garbage_from_hooks(self):
        key, cert = identity("ec")
        ctx = tls.Context.server(cert=cert, private_key=lambda m, c: 5)  # not bytes
        conn, err, out = handshake_pair(ctx, cert)
        self.assertIsInstance(err, sli.Error)
        self.assertIsInstance(err.__cause__, TypeError)
        keyfile = os.path.join(D, "garbage.key")
        with open(keyfile, "wb") as f:
            f.write(key.private_pem())
        ctx = tls.Context.server(cert=cert, key=keyfile,
                                 alpn_select=lambda o: (_ for _ in ()).throw(sli.Error(0)))
        conn, err, out = handshake_pair(ctx, cert, alpn=["h2"])
        self.assertIsInstance(err, sli.Error)  # a code that is no refusal still refuses
        self.assertIn("err", out)

    def test_failing_signer(self):
        key, cert = identity("ec")

        def sign(message, certificate):
            raise RuntimeError("the HSM is unplugged")
        ctx = tls.Context.server(cert=cert, private_key=sign)
        conn, err, out = handshake_pair(ctx, cert)
        self.assertIsInstance(err, sli.Error)
        self.assertIsInstance(err.__cause__, RuntimeError)
        self.assertIn("the HSM is unplugged", str(err))
        self.assertIn("err", out)

        other = sli.Key.generate("ec")  # a signature by another key: the client refuses it
        ctx = tls.Context.server(cert=cert, private_key=lambda m, c: other.sign(m))
        conn, err, out = handshake_pair(ctx, cert)
        self.assertIn("err", out)


class Log(unittest.TestCase):
    def test_handler_and_logging(self):
        got = []
        sli.log.set_handler(lambda level, msg: got.append((level, msg)), level="warn")
        try:
            tls.Context.client(insecure=True)
            self.assertTrue(any(lv == "warn" and "verif" in m.lower() for lv, m in got), got)
            sli.log.set_handler(lambda level, msg: 1 / 0, level="warn")  # a failing handler
            tls.Context.client(insecure=True)  # is not the context's failure
            records = []

            class H(logging.Handler):
                def emit(self, r):
                    records.append(r)
            lg = logging.getLogger("sli-test")
            lg.addHandler(H())
            lg.setLevel(logging.DEBUG)
            sli.log.to_logging(lg, level="warn")
            tls.Context.client(insecure=True)
            self.assertTrue(any(r.levelno == logging.WARNING for r in records), records)
        finally:
            sli.log.set_handler(None)
        n = len(got)
        tls.Context.client(insecure=True)
        self.assertEqual(len(got), n, "no handler: nothing delivered")
        with self.assertRaises(ValueError):
            sli.log.set_handler(print, level="loud")


if __name__ == "__main__":
    try:
        unittest.main()
    finally:
        shutil.rmtree(D, True)
