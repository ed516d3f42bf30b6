#!/usr/bin/python3
"""The Python binding's certificates and streaming signatures, by unittest: a request openssl
verifies; a self-signed certificate inspected and served (python's `ssl` trusts exactly it); a CA
that issues a leaf openssl verifies; the peer's certificate of a TLS connection; signatures over
pieces equal to whole ones, a changed piece refused."""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import skip_if_asan  # noqa: E402

skip_if_asan()
import sli  # noqa: E402
from sli import certs, tls  # noqa: E402


class Certs(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, data):
        path = os.path.join(self.dir.name, name)
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            f.write(data)
        return path

    def test_request_openssl_verifies(self):
        k = sli.Key.generate("ec")
        req = self.write("r.csr", certs.csr(k, "/CN=db.example.com/O=Acme", ["DNS:db.example.com",
                                                                            "IP:10.0.0.5"]))
        r = subprocess.run(["openssl", "req", "-in", req, "-noout", "-verify", "-text"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.assertIn("verify OK", r.stdout)
        self.assertIn("DNS:db.example.com", r.stdout)
        with self.assertRaises(sli.Error) as e:
            certs.csr(k, "not a subject")
        self.assertEqual(e.exception.name, "SLI_E_INVAL")

    def test_self_signed_served(self):
        k = sli.Key.generate("ec")
        pem = certs.self_signed(k, "/CN=localhost", ["DNS:localhost", "IP:127.0.0.1"], days=30)
        c = certs.Certificate.from_pem(pem)
        self.assertIn("localhost", c.subject)
        self.assertIn("DNS:localhost", c.sans)
        self.assertAlmostEqual(c.not_after - c.not_before, 30 * 86400, delta=86400)
        self.assertEqual(len(c.fingerprint_sha256.split(":")), 32)
        cert, key = self.write("c.pem", pem), self.write("k.pem", k.private_pem())
        ctx = tls.Context.server(cert=cert, key=key)
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen()

        def serve():
            s, _ = lst.accept()
            with s, ctx.wrap(s) as conn:
                conn.sendall(b"trusted exactly")
                conn.close()
        t = threading.Thread(target=serve)
        t.start()
        cctx = ssl.create_default_context(cafile=cert)
        with socket.create_connection(lst.getsockname()) as raw:
            with cctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.recv(100), b"trusted exactly")
        t.join(10)
        lst.close()
        # and the client side sees it as the peer's certificate
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sctx.load_cert_chain(cert, key)

        def pyserve():
            s, _ = lst.accept()
            with sctx.wrap_socket(s, server_side=True) as t2:
                t2.sendall(b"x")
        t = threading.Thread(target=pyserve)
        t.start()
        with socket.create_connection(lst.getsockname()) as s:
            with tls.Context.client(ca=cert).wrap(s, "localhost") as conn:
                conn.handshake()
                peer = conn.peer_certificate
                self.assertEqual(peer.fingerprint_sha256, c.fingerprint_sha256)
                conn.read()
        t.join(10)
        lst.close()

    def test_ca_issues(self):
        ca_key = sli.Key.generate("ec")
        ca = certs.self_signed(ca_key, "/CN=Test CA", days=10, ca=True)
        leaf_key = sli.Key.generate("ed25519")
        leaf = certs.issue(ca, ca_key, certs.csr(leaf_key, "/CN=svc", ["DNS:svc"]), days=5)
        r = subprocess.run(["openssl", "verify", "-CAfile", self.write("ca.pem", ca),
                            self.write("leaf.pem", leaf)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        self.assertIn(": OK", r.stdout)
        other = sli.Key.generate("ec")
        with self.assertRaises(sli.Error) as e:
            certs.issue(ca, other, certs.csr(leaf_key, "/CN=svc"))
        self.assertEqual(e.exception.name, "SLI_E_KEY_MISMATCH")

    def test_signatures_in_pieces(self):
        data = os.urandom(300000)
        for kind in ("ec", "ed25519", "rsa"):
            k = sli.Key.generate(kind)
            s = k.signer()
            for i in range(0, len(data), 7777):
                s.update(data[i:i + 7777])
            sig = s.sign()
            k.verify(sig, data)  # the same signature a whole-message sign makes
            v = k.verifier().update(data[:1000]).update(data[1000:])
            v.verify(k.sign(data))
            bad = k.verifier().update(data[:-1] + b"!")
            with self.assertRaises(sli.Error) as e:
                bad.verify(sig)
            self.assertEqual(e.exception.name, "SLI_E_SIGNATURE")


if __name__ == "__main__":
    unittest.main(verbosity=2)
