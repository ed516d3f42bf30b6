#!/usr/bin/python3
"""The Python binding's TLS without a socket of its own, by unittest: over the program's callbacks
(an exception inside one fails the connection as sli.Error SLI_E_IO with the exception as its
cause, never an end; an OSError's errno reaches sys_error; a callback that returns more than asked
fails it; the callbacks outlive every reference the program dropped), over two memory buffers, and
sli.aio's asyncio streams against python's own ssl in asyncio, both ways, with half-close,
truncation, a failed handshake on the server and one task reading while another writes."""
import asyncio
import concurrent.futures
import errno
import gc
import os
import socket
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import skip_if_asan  # noqa: E402

skip_if_asan()
import sli  # noqa: E402
from sli import aio, tls  # noqa: E402
from test_tls import CA, CERT, KEY  # noqa: E402  (the PKI that file makes)


def memory_pair(**server_settings):
    server = tls.Context.server(cert=CERT, key=KEY, **server_settings).wrap_memory()
    client = tls.Context.client(ca=CA).wrap_memory("localhost")
    return server, client


def pump(a, b):
    """Moves what each side has to send to the other; True if anything moved."""
    moved = False
    for x, y in ((a, b), (b, a)):
        out = x.data_to_send()
        if out:
            y.feed(out)
            moved = True
    return moved


def handshake(server, client):
    done = set()
    for _ in range(20):
        for c in (server, client):
            if c in done:
                continue
            try:
                c.handshake()
                done.add(c)
            except tls.WantRead:
                pass
        if not pump(server, client) and len(done) == 2:
            return
    raise AssertionError("the handshake did not complete over memory")


class Callbacks(unittest.TestCase):
    def test_memory_both_ways_and_half_close(self):
        server, client = memory_pair()
        handshake(server, client)
        self.assertEqual(client.version, "TLSv1.3")
        self.assertEqual(client.peer_certificate.subject, "CN = localhost")
        client.sendall(b"x" * 200000)
        pump(server, client)
        got = b""
        while len(got) < 200000:
            got += server.read(65536)
        self.assertEqual(got, b"x" * 200000)
        with self.assertRaises(tls.WantRead):
            server.read()
        client.close()
        pump(server, client)
        self.assertEqual(server.read(), b"")  # close_notify: a clean end
        server.sendall(b"still going")  # the other direction goes on
        pump(server, client)
        self.assertEqual(client.read(), b"still going")

    def test_transport_end_without_close_notify(self):
        server, client = memory_pair()
        handshake(server, client)
        client.sendall(b"partial")
        pump(server, client)
        server.feed_eof()
        self.assertEqual(server.read(), b"partial")
        with self.assertRaises(sli.Error) as e:
            server.read()
        self.assertEqual(e.exception.name, "SLI_E_TRUNCATED")

    def test_exception_in_read_callback_fails_not_ends(self):
        ctx = tls.Context.server(cert=CERT, key=KEY)

        class Boom(Exception):
            pass

        def read(n):
            raise Boom("the disk is on fire")
        c = ctx.wrap_callbacks(read, lambda v: len(v))
        with self.assertRaises(sli.Error) as e:
            c.read()
        self.assertEqual(e.exception.name, "SLI_E_IO")
        self.assertIsInstance(e.exception.__cause__, Boom)
        self.assertIn("the disk is on fire", str(e.exception))

    def test_oserror_in_callback_keeps_errno(self):
        ctx = tls.Context.client(ca=CA)

        def write(view):
            raise ConnectionResetError(errno.ECONNRESET, "peer reset")
        c = ctx.wrap_callbacks(lambda n: None, write, "localhost")
        with self.assertRaises(sli.Error) as e:
            c.handshake()
        self.assertEqual(e.exception.name, "SLI_E_IO")
        self.assertEqual(c.sys_error, errno.ECONNRESET)
        self.assertIsInstance(e.exception.__cause__, ConnectionResetError)

    def test_callback_returning_too_much(self):
        ctx = tls.Context.server(cert=CERT, key=KEY)
        c = ctx.wrap_callbacks(lambda n: b"\x16" * (n + 10), lambda v: len(v))
        with self.assertRaises(sli.Error) as e:
            c.handshake()
        self.assertIn("returned", str(e.exception))
        c2 = ctx.wrap_callbacks(lambda n: None, lambda v: len(v) + 5)
        c2b = tls.Context.client(ca=CA).wrap_callbacks(lambda n: None, lambda v: len(v) + 5,
                                                       "localhost")
        with self.assertRaises(sli.Error):
            c2b.handshake()
        c2.free()

    def test_callbacks_outlive_the_programs_references(self):
        """Only the connection holds the functions (closures over state): after gc, they still run."""
        server, client = memory_pair()
        a, b = bytearray(), bytearray()  # client to server, server to client

        def take(buf, n):
            if not buf:
                return None
            data = bytes(buf[:n])
            del buf[:n]
            return data
        s = tls.Context.server(cert=CERT, key=KEY).wrap_callbacks(
            lambda n: take(a, n), lambda v: b.extend(v) or len(v))
        c = tls.Context.client(ca=CA).wrap_callbacks(
            lambda n: take(b, n), lambda v: a.extend(v) or len(v), "localhost")
        del server, client
        gc.collect()
        for _ in range(10):
            for x in (c, s):
                try:
                    x.handshake()
                except tls.WantRead:
                    pass
            gc.collect()
        self.assertTrue(c.is_secured and s.is_secured)
        c.sendall(b"hi")
        self.assertEqual(s.read(), b"hi")

    def test_read_sizes(self):
        """read(0) asks nothing of the engine and returns b"" (the connection lives on); a negative
        size is a ValueError, never a buffer overrun (found by review: a bus error)."""
        server, client = memory_pair()
        handshake(server, client)
        client.sendall(b"y" * 20000)
        pump(server, client)
        self.assertEqual(server.read(0), b"")
        with self.assertRaises(ValueError):
            server.read(-1)
        got = b""
        while len(got) < 20000:
            got += server.read(65536)
        self.assertEqual(got, b"y" * 20000)

    def test_freed_connection_is_an_error(self):
        server, client = memory_pair()
        client.free()
        client.free()  # twice: nothing
        with self.assertRaises(ValueError):
            client.read()
        ctx = tls.Context.client(ca=CA)
        ctx.close()
        with self.assertRaises(ValueError):
            ctx.wrap_memory("localhost")


def py_ssl_server_ctx():
    s = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    s.load_cert_chain(CERT, KEY)
    return s


class Asyncio(unittest.TestCase):
    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 20))

    def test_client_against_python_ssl_server(self):
        async def main():
            async def handler(r, w):
                line = await r.readline()
                w.write(b"you said " + line)
                await w.drain()
                w.close()
            srv = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=py_ssl_server_ctx())
            port = srv.sockets[0].getsockname()[1]
            s = await aio.connect("127.0.0.1", port, tls.Context.client(ca=CA),
                                  server_hostname="localhost")
            self.assertTrue(s.is_secured)
            await s.write(b"hello\n")
            got = b""
            while True:
                try:
                    d = await s.read()
                except sli.Error as e:  # python's ssl may close without close_notify
                    self.assertEqual(e.name, "SLI_E_TRUNCATED")
                    break
                if not d:
                    break
                got += d
            self.assertEqual(got, b"you said hello\n")
            await s.close()
            srv.close()
            await srv.wait_closed()
        self.run_async(main())

    def test_server_for_python_ssl_client_and_concurrent_tasks(self):
        async def main():
            async def handler(s):
                # one task reads while another writes: 1 MiB each way at once
                async def reader():
                    got = 0
                    while True:
                        d = await s.read()
                        if not d:
                            return got
                        got += len(d)

                async def writer():
                    await s.write(b"s" * (1 << 20))
                    await s.shutdown_write()
                self.server_got, _ = await asyncio.gather(reader(), writer())
            srv = await aio.start_server(handler, "127.0.0.1", 0,
                                         tls.Context.server(cert=CERT, key=KEY))
            port = srv.sockets[0].getsockname()[1]
            cctx = ssl.create_default_context(cafile=CA)
            r, w = await asyncio.open_connection("127.0.0.1", port, ssl=cctx,
                                                 server_hostname="localhost")

            async def send():
                w.write(b"c" * (1 << 20))
                await w.drain()
                w.write_eof() if w.can_write_eof() else None
            got = b""
            sender = asyncio.ensure_future(send())
            while len(got) < (1 << 20):
                d = await r.read(65536)
                if not d:
                    break
                got += d
            await sender
            self.assertEqual(got, b"s" * (1 << 20))
            w.close()
            try:
                await w.wait_closed()
            except (ssl.SSLError, OSError):
                pass
            for _ in range(100):
                if getattr(self, "server_got", None) is not None:
                    break
                await asyncio.sleep(0.05)
            srv.close()
            await srv.wait_closed()
        self.server_got = None
        # python's ssl client cannot half-close TLS (write_eof is unsupported over ssl); the server
        # sees its close_notify at close: by then it has all the client's 1 MiB
        self.run_async(main())
        self.assertEqual(self.server_got, 1 << 20)

    def test_sli_to_sli_half_close_and_truncation(self):
        async def main():
            done = asyncio.get_running_loop().create_future()

            async def handler(s):
                data = b""
                while True:
                    d = await s.read()
                    if not d:
                        break
                    data += d
                await s.write(b"got %d bytes" % len(data))  # after the client's close_notify
                done.set_result(s.version)
            srv = await aio.start_server(handler, "127.0.0.1", 0,
                                         tls.Context.server(cert=CERT, key=KEY))
            port = srv.sockets[0].getsockname()[1]
            c = await aio.connect("127.0.0.1", port, tls.Context.client(ca=CA), "localhost")
            await c.write(b"q" * 100000)
            await c.shutdown_write()
            self.assertEqual(await c.read(), b"got 100000 bytes")
            self.assertEqual(await c.read(), b"")  # the server's close_notify
            await c.close()
            self.assertEqual(await done, "TLSv1.3")

            # a server that cuts the socket without close_notify: an error at the client, not b""
            async def cutter(r, w):
                s = await aio.wrap(r, w, tls.Context.server(cert=CERT, key=KEY))
                await s.write(b"half an answer")
                s.abort()
            srv2 = await asyncio.start_server(cutter, "127.0.0.1", 0)
            port2 = srv2.sockets[0].getsockname()[1]
            c2 = await aio.connect("127.0.0.1", port2, tls.Context.client(ca=CA), "localhost")
            self.assertEqual(await c2.read(), b"half an answer")
            with self.assertRaises(sli.Error) as e:
                await c2.read()
            self.assertIn(e.exception.name, ("SLI_E_TRUNCATED", "SLI_E_IO"))
            c2.abort()
            for s in (srv, srv2):
                s.close()
                await s.wait_closed()
        self.run_async(main())

    def test_read_all_and_a_private_key_future(self):
        """aio's read(-1) reads to the peer's close_notify; a server whose private_key hook
        returns a Future (a thread pool's, or an asyncio one) serves aio clients (found by
        review: every such handshake failed)."""
        key = sli.Key.generate("ec")
        cert = os.path.join(os.path.dirname(CA), "aio-hsm.pem")
        with open(cert, "wb") as f:
            f.write(sli.certs.self_signed(key, "/CN=localhost", ["DNS:localhost"], days=2))
        pool = concurrent.futures.ThreadPoolExecutor(2)

        async def main():
            loop = asyncio.get_running_loop()

            def by_pool(m, c):
                return pool.submit(lambda: (time.sleep(0.05), key.sign(m))[1])

            def by_loop(m, c):
                fut = loop.create_future()
                loop.call_later(0.05, fut.set_result, key.sign(m))
                return fut

            async def handler(s):
                await s.write(b"z" * 300000)
            for hook in (by_pool, by_loop):
                srv = await aio.start_server(handler, "127.0.0.1", 0,
                                             tls.Context.server(cert=cert, private_key=hook))
                port = srv.sockets[0].getsockname()[1]
                c = await aio.connect("127.0.0.1", port, tls.Context.client(ca=cert), "localhost")
                self.assertEqual(await c.read(-1), b"z" * 300000)
                await c.close()
                srv.close()
                await srv.wait_closed()
        self.run_async(main())
        pool.shutdown()

    def test_wrong_name_and_plaintext_peer(self):
        async def main():
            srv = await aio.start_server(lambda s: asyncio.sleep(0), "127.0.0.1", 0,
                                         tls.Context.server(cert=CERT, key=KEY))
            port = srv.sockets[0].getsockname()[1]
            with self.assertRaises(sli.Error) as e:
                await aio.connect("127.0.0.1", port, tls.Context.client(ca=CA), "wrong.example")
            self.assertEqual(e.exception.name, "SLI_E_HOSTNAME")
            # a plaintext client: the server drops it and goes on serving
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET / HTTP/1.0\r\n\r\n")
            await w.drain()
            self.assertNotIn(b"HTTP", await r.read())
            w.close()
            c = await aio.connect("127.0.0.1", port, tls.Context.client(ca=CA), "localhost")
            self.assertTrue(c.is_secured)
            await c.close()
            srv.close()
            await srv.wait_closed()
        self.run_async(main())

    def test_silent_client_times_out(self):
        async def main():
            lst = socket.socket()
            lst.bind(("127.0.0.1", 0))
            lst.listen()
            port = lst.getsockname()[1]
            r, w = await asyncio.open_connection("127.0.0.1", port)
            held, _ = lst.accept()  # a peer that never answers
            ctx = tls.Context.client(ca=CA, handshake_timeout=500)  # milliseconds
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            with self.assertRaises(sli.Error) as e:
                await aio.wrap(r, w, ctx, "localhost")
            took = loop.time() - t0
            self.assertTrue(0.4 < took < 3, "timed out after %.2f s" % took)
            self.assertEqual(e.exception.name, "SLI_E_TIMEOUT")
            held.close()
            lst.close()
        self.run_async(main())


if __name__ == "__main__":
    unittest.main()
