#!/usr/bin/python3
"""The Python binding's TLS (sli.tls), by unittest: an sli server on a socket the program accepted
serves python's `ssl` and `openssl s_client`; an sli client verifies python's `ssl` server and
refuses a wrong name (SLI_E_HOSTNAME) and an unknown CA; sli to sli over a socketpair; a
non-blocking handshake driven by select through WantRead/WantWrite; half-close by close_notify;
a peer that leaves without close_notify is SLI_E_TRUNCATED, never a clean end."""
import atexit
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import skip_if_asan  # noqa: E402

skip_if_asan()
import sli  # noqa: E402
from sli import tls  # noqa: E402

D = tempfile.mkdtemp(prefix="sli-py-tls-")
atexit.register(shutil.rmtree, D, True)


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki():
    ca_key, ca, key, csr, cert = (os.path.join(D, n) for n in
                                  ("ca.key", "ca.pem", "leaf.key", "leaf.csr", "leaf.pem"))
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", ca_key, "-out", ca, "-subj", "/CN=py test CA", "-days", "2")
    sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
       "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    ext = os.path.join(D, "ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
       "-out", cert, "-days", "2", "-extfile", ext)
    return ca, cert, key


CA, CERT, KEY = make_pki()


def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


class Tls(unittest.TestCase):
    def test_server_for_python_ssl(self):
        ctx = tls.Context.server(cert=CERT, key=KEY)
        lst = listener()
        port = lst.getsockname()[1]

        def serve():
            s, _ = lst.accept()
            with s, ctx.wrap(s) as c:
                data = c.read()
                c.sendall(b"echo: " + data)
                self.server_version = c.version
                c.close()
        t = threading.Thread(target=serve)
        t.start()
        cctx = ssl.create_default_context(cafile=CA)
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with cctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"hello")
                self.assertEqual(s.recv(100), b"echo: hello")
        t.join(10)
        self.assertEqual(self.server_version, "TLSv1.3")
        lst.close()

    def test_server_for_openssl(self):
        ctx = tls.Context.server(cert=CERT, key=KEY, max_version="1.2")
        lst = listener()
        port = lst.getsockname()[1]

        def serve():
            s, _ = lst.accept()
            with s, ctx.wrap(s) as c:
                c.sendall(b"greeting from python\n")
                c.close()
                while c.read():
                    pass
        t = threading.Thread(target=serve)
        t.start()
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", CA,
                            "-verify_return_error", "-servername", "localhost", "-ign_eof"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=20)
        t.join(10)
        self.assertIn("greeting from python", r.stdout)
        self.assertIn("TLSv1.2", r.stdout)
        lst.close()

    def _python_server(self, answer=b"from python ssl"):
        sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        sctx.load_cert_chain(CERT, KEY)
        lst = listener()

        def serve():
            s, _ = lst.accept()
            try:
                with sctx.wrap_socket(s, server_side=True) as t:
                    t.sendall(answer)
                    t.unwrap()
            except (ssl.SSLError, OSError):
                s.close()
        th = threading.Thread(target=serve)
        th.start()
        return lst, th

    def test_client_verifies(self):
        lst, th = self._python_server()
        ctx = tls.Context.client(ca=CA)
        with socket.create_connection(lst.getsockname()) as s, ctx.wrap(s, "localhost") as c:
            self.assertEqual(c.read(), b"from python ssl")
            self.assertTrue(c.is_secured)
            self.assertEqual(c.read(), b"")  # close_notify: a clean end
        th.join(10)
        lst.close()
        for name, ca, code in (("wrong.example", CA, "SLI_E_HOSTNAME"),
                               ("localhost", None, "SLI_E_UNTRUSTED")):
            lst, th = self._python_server()
            ctx = tls.Context.client(ca=ca) if ca else tls.Context.client()
            with socket.create_connection(lst.getsockname()) as s, ctx.wrap(s, name) as c:
                with self.assertRaises(sli.Error) as e:
                    c.handshake()
                self.assertEqual(e.exception.name, code)
            th.join(10)
            lst.close()

    def test_sli_to_sli_nonblocking(self):
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        server = tls.Context.server(cert=CERT, key=KEY).wrap(a)
        client = tls.Context.client(ca=CA).wrap(b, "localhost")
        waits = 0
        pending = [server, client]
        while pending:
            for c in list(pending):
                try:
                    c.handshake()
                    pending.remove(c)
                except tls.WantRead:
                    waits += 1
                except tls.WantWrite:
                    waits += 1
            if pending:
                select.select([x.fileno() for x in pending], [], [], 5)
        self.assertGreater(waits, 0, "a non-blocking handshake waits at least once")
        client.sendall(b"x" * 100000)
        got = b""
        while len(got) < 100000:
            try:
                got += server.read(65536)
            except tls.WantRead:
                select.select([a], [], [], 5)
            except tls.WantWrite:
                select.select([], [a], [], 5)
        self.assertEqual(got, b"x" * 100000)
        with self.assertRaises(tls.WantRead):
            server.read()  # nothing more yet: would block
        client.close()  # close_notify: our direction ends
        select.select([a], [], [], 5)
        self.assertEqual(server.read(), b"")
        server.sendall(b"after the client's end")  # the other direction still works
        select.select([b], [], [], 5)
        self.assertEqual(client.read(), b"after the client's end")
        server.free()
        client.free()
        a.close()
        b.close()

    def test_socket_with_a_timeout(self):
        """create_connection(timeout=…) makes a non-blocking socket underneath: calls wait for
        it, up to the timeout, then socket.timeout — as the socket's own calls do."""
        lst, th = self._python_server(b"x" * 300000)
        ctx = tls.Context.client(ca=CA)
        with socket.create_connection(lst.getsockname(), timeout=5) as s, ctx.wrap(s, "localhost") as c:
            c.sendall(b"hello")
            got = b""
            while True:
                d = c.read()
                if not d:
                    break
                got += d
            self.assertEqual(got, b"x" * 300000)
        th.join(10)
        lst.close()
        lst = listener()  # a server that accepts and never answers
        with socket.create_connection(lst.getsockname(), timeout=0.3) as s, ctx.wrap(s, "localhost") as c:
            t0 = time.monotonic()
            with self.assertRaises(socket.timeout):
                c.handshake()
            self.assertTrue(0.25 < time.monotonic() - t0 < 3)
        lst.close()

    def test_truncation_is_not_an_end(self):
        a, b = socket.socketpair()
        # TLS 1.2: no session ticket left unread after the handshake (a socket closed with unread
        # bytes is a reset, not the clean FIN this case is about)
        server = tls.Context.server(cert=CERT, key=KEY, max_version="1.2").wrap(a)
        client = tls.Context.client(ca=CA).wrap(b, "localhost")
        t = threading.Thread(target=server.handshake)
        t.start()
        client.handshake()
        t.join(10)
        client.free()
        b.close()  # gone without close_notify
        with self.assertRaises(sli.Error) as e:
            server.read()
        self.assertEqual(e.exception.name, "SLI_E_TRUNCATED")
        server.free()
        a.close()

    def test_settings_refused_by_name(self):
        with self.assertRaises(sli.Error) as e:
            tls.Context.server(cert=CERT, key=KEY, min_version="1.1")
        self.assertTrue(e.exception.name.startswith("SLI_E_"))
        with self.assertRaises(ValueError), socket.socket() as s:
            tls.Context.client(ca=CA).wrap(s)


if __name__ == "__main__":
    unittest.main(verbosity=2)
