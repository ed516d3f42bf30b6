"""aio.py — sli's TLS in asyncio: streams over any asyncio connection, by the memory transport
(tls.MemoryConnection), so the event loop owns the socket and nothing blocks.

    ctx = sli.tls.Context.client(ca="ca.pem")
    s = await sli.aio.connect("db.example.com", 5432, ctx)   # verified against the name
    await s.write(b"hello"); data = await s.read()
    await s.close()                                          # close_notify, then the socket

    async def handler(s): await s.write(await s.read())
    server = await sli.aio.start_server(handler, "127.0.0.1", 8443, srv_ctx)

`read()` returns b"" only after the peer's close_notify; a peer that left without it raises
sli.Error SLI_E_TRUNCATED. One task may read while another writes."""
import asyncio
import concurrent.futures
from typing import Awaitable, Callable, Optional

from . import tls
from .errors import Error

CHUNK = 65536


class Stream:
    """One TLS connection over an asyncio (reader, writer) pair of plain TCP streams."""

    def __init__(self, conn: tls.MemoryConnection, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter):
        self.conn, self._r, self._w = conn, reader, writer
        self._fill_lock = asyncio.Lock()
        self._filled = 0  # counts the fills: a waiter that got the lock late need not read again

    async def _flush(self) -> None:
        out = self.conn.data_to_send()
        if out:
            self._w.write(out)
            await self._w.drain()

    async def _fill(self, seen: int) -> None:
        async with self._fill_lock:
            if self._filled != seen:
                return  # another task brought bytes in meanwhile: try again with those
            data = await self._r.read(CHUNK)
            if data:
                self.conn.feed(data)
            else:
                self.conn.feed_eof()
            self._filled += 1

    async def _run(self, fn, *args):
        while True:
            seen = self._filled
            try:
                r = fn(*args)
            except tls.WantRead:
                await self._flush()
                await self._fill(seen)
                continue
            except tls.WantPrivateKey:  # the private_key hook's Future: wait for it, not the loop
                fut = self.conn._pk_future
                if fut is not None:
                    try:
                        await (asyncio.wrap_future(fut)
                               if isinstance(fut, concurrent.futures.Future) else fut)
                    except Exception:  # noqa: BLE001 — the engine hears of it and fails the call
                        pass
                continue
            await self._flush()
            return r

    async def handshake(self) -> None:
        """Completes the handshake, bounded by the context's handshake timeout."""
        left = self.conn.deadline
        coro = self._run(self.conn.handshake)
        if left is None:
            await coro
        else:
            try:
                await asyncio.wait_for(coro, left + 0.05)
            except asyncio.TimeoutError:
                self.conn.handshake()  # past the deadline: the engine's own SLI_E_TIMEOUT
                raise  # (not reached unless the engine finished meanwhile)

    async def read(self, size: int = CHUNK) -> bytes:
        """Up to `size` bytes; b"" after the peer's close_notify. read(-1): everything until then
        (as asyncio's StreamReader.read(-1))."""
        if size is None or size < 0:
            parts = []
            while True:
                d = await self._run(self.conn.read, CHUNK)
                if not d:
                    return b"".join(parts)
                parts.append(d)
        return await self._run(self.conn.read, size)

    async def write(self, data) -> None:
        """All of `data`, sealed and handed to the transport (drained)."""
        view = memoryview(bytes(data))
        while view:
            n = await self._run(self.conn.write, view)
            view = view[n:]

    async def close(self) -> None:
        """Sends close_notify and closes the socket (a peer still writing gets a reset)."""
        try:
            if self.conn._h is not None:
                await self._run(self.conn.close)
        finally:
            self.abort()
            try:
                await self._w.wait_closed()
            except OSError:
                pass

    async def shutdown_write(self) -> None:
        """Sends close_notify only: reading goes on until the peer's."""
        await self._run(self.conn.close)

    def abort(self) -> None:
        """Closes the socket at once, nothing sent; frees the engine's side."""
        self._w.close()
        self.conn.free()

    @property
    def version(self) -> Optional[str]:
        return self.conn.version

    @property
    def cipher(self) -> Optional[str]:
        return self.conn.cipher

    @property
    def alpn(self) -> Optional[str]:
        return self.conn.alpn

    @property
    def is_resumed(self) -> bool:
        return self.conn.is_resumed

    @property
    def is_secured(self) -> bool:
        return self.conn.is_secured

    @property
    def peer_certificate(self):
        return self.conn.peer_certificate

    def get_extra_info(self, name: str, default=None):
        """The plain socket's extra info (peername, sockname, socket…)."""
        return self._w.get_extra_info(name, default)


async def wrap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctx: tls.Context,
               server_hostname: Optional[str] = None, handshake: bool = True) -> Stream:
    """TLS over an asyncio connection the program already has; the handshake runs now unless
    `handshake=False` (then at the first read or write)."""
    s = Stream(ctx.wrap_memory(server_hostname), reader, writer)
    if handshake:
        try:
            await s.handshake()
        except BaseException:
            s.abort()
            raise
    return s


async def connect(host: str, port: int, ctx: tls.Context, server_hostname: Optional[str] = None,
                  **kw) -> Stream:
    """A verified TLS client connection to host:port (the name checked is `server_hostname`, by
    default `host`); other keywords go to asyncio.open_connection."""
    reader, writer = await asyncio.open_connection(host, port, **kw)
    return await wrap(reader, writer, ctx, server_hostname or host)


async def start_server(handler: Callable[[Stream], Awaitable[None]], host: Optional[str],
                       port: int, ctx: tls.Context, **kw) -> asyncio.base_events.Server:
    """An asyncio server whose connections are TLS: `handler(stream)` runs for each after its
    handshake, and the stream is closed (close_notify) when it returns. A failed handshake is
    dropped; a handler's exception closes its connection without close_notify and goes to the
    loop's exception handler."""
    async def each(reader, writer):
        try:
            s = await wrap(reader, writer, ctx)
        except Exception:  # a failed handshake: the peer's problem, not the server's
            return
        try:
            await handler(s)
        except Exception as e:
            s.abort()
            asyncio.get_running_loop().call_exception_handler(
                {"message": "sli.aio handler failed", "exception": e})
            return
        try:
            await s.close()
        except (Error, OSError):
            pass  # the peer left first
    return await asyncio.start_server(each, host, port, **kw)
