"""tls.py — TLS over a connection the program already has: a connected socket, blocking or not,
with sli's policies (TLS 1.2+, ECDHE, AEAD, verification on for clients).

    ctx = sli.tls.Context.server(cert="site.pem", key="site.key")
    conn = ctx.wrap(accepted_socket)          # conn.read(), conn.write(), conn.close()
    ctx = sli.tls.Context.client(ca="ca.pem")
    conn = ctx.wrap(sock, server_hostname="db.example.com")

Settings are the engine's, by the names of SLI_SETTING_MAP (api/sli.h) in lower case without the
prefix: cert, key, ca, crl, client_cert, policy, ciphers, min_version, max_version, alpn,
ticket_keys, session_resumption, handshake_timeout, … (`Context.server(alpn="h2,http/1.1")`).
On a non-blocking socket a call that would block raises WantRead or WantWrite (BlockingIOError):
wait for the socket to be readable (writable) and call again — what asyncio's add_reader does.

Without a socket: `ctx.wrap_callbacks(read, write)` runs TLS over two functions of the program's,
and `ctx.wrap_memory()` over two buffers it fills and empties (feed / data_to_send), for any event
loop or transport; `sli.aio` builds asyncio streams on it."""
import concurrent.futures
import ctypes
import os
import select
import socket
import time
import weakref
from typing import Optional

from . import _lib
from .errors import Error, check


class WantRead(BlockingIOError):
    """The call needs the socket to be readable first (a read may need that, a write too)."""


class WantWrite(BlockingIOError):
    """The call needs the socket to be writable first."""


class WantPrivateKey(BlockingIOError):
    """The handshake waits for the Future the private_key hook returned: call again once it is
    done (on a non-blocking socket; a blocking one waits for it)."""


class Context:
    """A server or client context: its settings, one for many connections. Thread-safe."""

    def __init__(self, handle: ctypes.c_void_p, server: bool):
        self._h = handle
        self.server = server
        self._conns = weakref.WeakValueDictionary()

    @classmethod
    def _make(cls, server: bool, settings) -> "Context":
        alpn_select = settings.pop("alpn_select", None)
        private_key = settings.pop("private_key", None)
        if (alpn_select or private_key) and not server:
            raise ValueError("alpn_select and private_key are for a server context")
        if private_key and (settings.get("key") or not settings.get("cert")):
            raise ValueError("private_key signs for `cert`: give cert and no key")
        self = cls.__new__(cls)
        self._h, self.server = None, server
        self._conns = weakref.WeakValueDictionary()  # sli_conn address -> Connection, for hooks
        cfg = _lib.sli_config_new()
        if not cfg:
            raise MemoryError("sli_config_new")
        try:
            def fail(rc):
                m = _lib.sli_config_error(cfg)
                check(rc, m.decode(errors="replace") if m else "")
            if private_key:
                cert = os.fsencode(settings.pop("cert"))
                self._pkey_fn, self._pkey_c = private_key, _lib.PKEY_FN(self._on_private_key)
                fail(_lib.sli_config_add_cert_file_async_key(cfg, cert))
                fail(_lib.sli_config_set_private_key_cb(cfg, self._pkey_c, None))
            if alpn_select:
                self._alpn_fn, self._alpn_c = alpn_select, _lib.ALPN_FN(self._on_alpn)
                fail(_lib.sli_config_set_alpn_select_cb(cfg, self._alpn_c, None))
            for name, value in settings.items():
                if value is None or value is False:
                    continue
                full = ("SLI_" + name.upper()).encode()
                val = b"1" if value is True else str(value).encode()
                rc = _lib.sli_config_set_option(cfg, full, val)
                if rc < 0:
                    fail(rc)
            h = ctypes.c_void_p()
            make = _lib.sli_ctx_new_server if server else _lib.sli_ctx_new_client
            rc = make(ctypes.byref(h), cfg, 0)
            if rc < 0:
                fail(rc)
            self._h = h
            return self
        finally:
            _lib.sli_config_free(cfg)

    def _hook_failed(self, conn_ptr, e: BaseException) -> None:
        c = self._conns.get(conn_ptr)
        if c is not None:
            c._exc = e

    def _on_alpn(self, conn_ptr, offered, n, _arg) -> int:
        try:
            names = [offered[i].decode("utf-8", "replace") for i in range(n)]
            choice = self._alpn_fn(names)
            if choice is None:
                return _lib.ALPN_NONE
            if choice not in names:
                raise ValueError("alpn_select chose %r, which the client did not offer %r"
                                 % (choice, names))
            return names.index(choice)
        except Error as e:  # the host's refusal, by name
            self._hook_failed(conn_ptr, e)
            return e.code if e.code < 0 and e.code not in (_lib.WANT_READ, _lib.WANT_WRITE) \
                else _lib.E_INVAL
        except BaseException as e:  # noqa: B902 — nothing may unwind through C
            self._hook_failed(conn_ptr, e)
            return _lib.E_INVAL

    def _on_private_key(self, conn_ptr, cert_ptr, data, n, _arg) -> int:
        try:
            from .certs import Certificate
            cert = Certificate(ctypes.c_void_p(_lib.sli_cert_up_ref(cert_ptr)))
            sig = self._pkey_fn(ctypes.string_at(data, n), cert)
            if hasattr(sig, "add_done_callback"):  # a Future: answered when it is done
                conn = self._conns.get(conn_ptr)
                if conn is None:
                    raise RuntimeError("private_key: the connection is gone")
                # the raw pointer: the answer must come even if the connection is freed first
                # (sli_conn_private_key_done then frees what is left)
                conn._pk_future, conn._pk_ptr = sig, conn_ptr
                sig.add_done_callback(conn._private_key_answer)
                return _lib.WANT_PRIVATE_KEY
            if not isinstance(sig, (bytes, bytearray, memoryview)):
                raise TypeError("private_key returned %s, not a signature (bytes) or a Future"
                                % type(sig).__name__)
            sig = bytes(sig)
            return _lib.sli_conn_private_key_done(conn_ptr, sig, len(sig))
        except BaseException as e:  # noqa: B902
            self._hook_failed(conn_ptr, e)
            return _lib.E_SIGNATURE

    @classmethod
    def server(cls, **settings) -> "Context":
        """A server context (without cert and key: the per-install default identity). Hooks:
        `alpn_select(offered) -> name | None` chooses the protocol (raising refuses the handshake
        with alert 120: a sli.Error by its code, anything else as SLI_E_INVAL); `private_key(
        message, certificate) -> signature` signs for `cert` whose key the program keeps (an HSM,
        a KMS), the signature `Key.sign` makes — or returns a concurrent.futures.Future (or an
        asyncio one) of it, done later in any thread: a blocking handshake waits for it, a
        non-blocking one raises WantPrivateKey meanwhile. An exception in a hook, or in the
        Future, fails that connection and is the cause of the sli.Error its call raises."""
        return cls._make(True, settings)

    @classmethod
    def client(cls, **settings) -> "Context":
        """A client context: it verifies servers (against `ca`, else the system's roots)."""
        return cls._make(False, settings)

    def wrap(self, sock: socket.socket, server_hostname: Optional[str] = None) -> "Connection":
        """TLS on the connected socket `sock`, which the connection keeps (and never closes)."""
        return Connection(self, sock, server_hostname)

    def wrap_callbacks(self, read, write, server_hostname: Optional[str] = None) -> "CallbackConnection":
        """TLS over the program's own transport: `read(n)` returns up to n bytes, b"" at its end, or
        None when it would block; `write(view)` takes some of the bytes (a count) or None when it
        would block. An exception in either fails the connection: the call that ran it raises
        sli.Error (SLI_E_IO) with the exception as its cause — never an end of stream."""
        return CallbackConnection(self, read, write, server_hostname)

    def wrap_memory(self, server_hostname: Optional[str] = None) -> "MemoryConnection":
        """TLS over two buffers: `feed()` what arrived, send what `data_to_send()` returns."""
        return MemoryConnection(self, server_hostname)

    def close(self) -> None:
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.sli_ctx_free(h)

    def __del__(self):
        self.close()


def _servername(ctx: Context, server_hostname: Optional[str]) -> Optional[bytes]:
    if not ctx._h:
        raise ValueError("the context was closed")
    if ctx.server and server_hostname:
        raise ValueError("server_hostname is for a client context")
    if not ctx.server and not server_hostname:
        raise ValueError("a client connection needs server_hostname (the name it verifies)")
    return server_hostname.encode() if server_hostname else None


class Connection:
    """One TLS connection over a socket. Not thread-safe (one thread at a time, as a socket)."""

    _h = None
    _exc = None  # what a callback of ours raised, the cause of the next failure

    def __init__(self, ctx: Context, sock: socket.socket, server_hostname: Optional[str]):
        name = _servername(ctx, server_hostname)
        self._ctx, self._sock = ctx, sock  # both kept alive as long as the engine may use them
        h = ctypes.c_void_p()
        check(_lib.sli_conn_new_fd(ctypes.byref(h), ctx._h, sock.fileno(), name, 0))
        self._register(h)

    def _register(self, h: ctypes.c_void_p) -> None:
        self._h = h
        self._ctx._conns[h.value] = self

    def _rc(self, rc: int) -> int:
        exc, self._exc = self._exc, None
        if rc >= 0:
            return rc
        if self._h is None:
            raise ValueError("the connection was freed")
        if exc is not None:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise exc
            m = _lib.sli_conn_error(self._h)
            msg = (m.decode(errors="replace") if m else "") + " (callback raised %s: %s)" % (
                type(exc).__name__, exc)
            raise Error(rc, msg) from exc
        if rc == _lib.WANT_PRIVATE_KEY:
            raise WantPrivateKey("sli: the private_key hook's Future is not done yet")
        if rc == _lib.WANT_READ:
            raise WantRead("sli: the socket must be readable first")
        if rc == _lib.WANT_WRITE:
            raise WantWrite("sli: the socket must be writable first")
        m = _lib.sli_conn_error(self._h) if self._h else None
        raise Error(rc, m.decode(errors="replace") if m else "")

    def _io(self, fn, *args) -> int:
        """One call of the engine. On a socket with a timeout (settimeout(5), create_connection(
        timeout=5): non-blocking underneath) it waits for the socket in between, up to that
        timeout each call, and then raises socket.timeout — as the socket itself would."""
        timeout = self._sock.gettimeout() if self._sock is not None else None
        if not timeout:  # None: a blocking fd blocks; 0.0: the caller waits (WantRead…)
            return self._rc(fn(self._h, *args))
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._rc(fn(self._h, *args))
            except WantRead:
                r, w = [self._sock], []
            except WantWrite:
                r, w = [], [self._sock]
            except WantPrivateKey:
                fut = self._pk_future
                left = deadline - time.monotonic()
                if fut is not None and left > 0:
                    if isinstance(fut, concurrent.futures.Future):
                        concurrent.futures.wait([fut], left)  # then the engine has its answer
                    else:
                        time.sleep(min(left, 0.01))  # another kind (it is done elsewhere)
                    continue
                if fut is None:
                    continue  # answered just now
                raise socket.timeout("timed out")
            left = deadline - time.monotonic()
            if left <= 0 or not any(select.select(r, w, [], left)[:2]):
                raise socket.timeout("timed out")

    def fileno(self) -> int:
        return self._sock.fileno()

    def handshake(self) -> None:
        """Runs the handshake (read and write run it too)."""
        self._io(_lib.sli_conn_handshake)

    def read(self, size: int = 16384) -> bytes:
        """Up to `size` bytes; b"" once the peer's close_notify came. A peer that left without it
        is sli.Error SLI_E_TRUNCATED: an end that may have been cut."""
        if size < 0:
            raise ValueError("read size must be 0 or more")
        if size == 0:
            return b""  # as socket.recv(0): nothing asked of the engine
        buf = ctypes.create_string_buffer(size)
        n = self._io(_lib.sli_conn_read, buf, size)
        return buf.raw[:n]

    recv = read

    def write(self, data) -> int:
        """Some of `data` (a count); on a blocking socket all of it in the end (sendall)."""
        data = bytes(data)
        return self._io(_lib.sli_conn_write, data, len(data))

    def sendall(self, data) -> None:
        view = memoryview(bytes(data))
        while view:
            view = view[self.write(view):]

    @property
    def pending(self) -> int:
        """Decrypted bytes waiting: read them before waiting on the socket again."""
        return _lib.sli_conn_pending(self._h)

    def close(self) -> None:
        """Sends close_notify (our direction ends; reading goes on until the peer's)."""
        self._io(_lib.sli_conn_close)

    def free(self) -> None:
        """Lets the engine's side go (nothing is sent); the socket stays the caller's."""
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.sli_conn_free(h)

    def __del__(self):
        self.free()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.free()

    @property
    def is_secured(self) -> bool:
        return bool(_lib.sli_conn_is_secured(self._h))

    def _text(self, fn) -> Optional[str]:
        v = fn(self._h)
        return v.decode() if v else None

    @property
    def version(self) -> Optional[str]:
        return self._text(_lib.sli_conn_version)

    @property
    def cipher(self) -> Optional[str]:
        return self._text(_lib.sli_conn_cipher)

    @property
    def alpn(self) -> Optional[str]:
        return self._text(_lib.sli_conn_alpn)

    @property
    def is_resumed(self) -> bool:
        return bool(_lib.sli_conn_is_resumed(self._h))

    @property
    def peer_certificate(self):
        """The peer's certificate (a certs.Certificate), or None."""
        from .certs import Certificate
        h = _lib.sli_conn_peer_cert(self._h)
        return Certificate(ctypes.c_void_p(_lib.sli_cert_up_ref(h))) if h else None

    _pk_future = None
    _pk_ptr = None

    def _private_key_answer(self, fut) -> None:
        """The private_key hook's Future is done (in whatever thread did it): the answer goes to
        the engine even if this connection was freed meanwhile (that frees what is left)."""
        ptr, self._pk_ptr, self._pk_future = self._pk_ptr, None, None
        if ptr is None:
            return
        try:
            sig = fut.result()
            if not isinstance(sig, (bytes, bytearray, memoryview)):
                raise TypeError("the private_key Future gave %s, not a signature (bytes)"
                                % type(sig).__name__)
            sig = bytes(sig)
        except BaseException as e:  # noqa: B902 — the signing failed: the handshake fails
            self._exc = e
            _lib.sli_conn_private_key_done(ptr, None, 0)
            return
        _lib.sli_conn_private_key_done(ptr, sig, len(sig))

    @property
    def servername(self) -> Optional[str]:
        """The SNI name the client sent (server side) or asked for (client side)."""
        return self._text(_lib.sli_conn_servername)

    @property
    def peer_addr(self) -> Optional[str]:
        """The peer's address, "192.0.2.7:443" or "[2001:db8::7]:443"."""
        return self._text(_lib.sli_conn_peer_addr)

    @property
    def deadline(self) -> Optional[float]:
        """Seconds left before the handshake's deadline (its clock started when the connection was
        made), so that an event loop can arm a timer; None once none applies."""
        ms = _lib.sli_conn_deadline_ms(self._h)
        return None if ms < 0 else ms / 1000.0


class CallbackConnection(Connection):
    """TLS over the program's two functions (Context.wrap_callbacks). The functions, and this object,
    stay alive as long as the engine may call them; they run inside this connection's calls, in the
    calling thread, and must not call back into it."""

    def __init__(self, ctx: Context, read, write, server_hostname: Optional[str]):
        name = _servername(ctx, server_hostname)
        self._ctx, self._sock = ctx, None
        self._read_fn, self._write_fn, self._exc = read, write, None
        # the C side holds these two: they live as long as this object (freed after the connection)
        self._c_read, self._c_write = _lib.READ_FN(self._on_read), _lib.WRITE_FN(self._on_write)
        h = ctypes.c_void_p()
        check(_lib.sli_conn_new_cbs(ctypes.byref(h), ctx._h, self._c_read, self._c_write, None,
                                    name, 0))
        self._register(h)

    def _failed(self, e: BaseException) -> int:
        self._exc = e
        if isinstance(e, OSError) and e.errno and not isinstance(e, BlockingIOError):
            return -e.errno  # sli_conn_sys_error tells it, the message names it
        return _lib.E_IO

    def _on_read(self, _conn, buf, n, _arg) -> int:
        try:
            data = self._read_fn(n)
            if data is None:
                return _lib.WANT_READ
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError("the read callback returned %s, not bytes or None"
                                % type(data).__name__)
            data = bytes(data)
            if len(data) > n:
                raise ValueError("the read callback returned %d bytes where %d were asked"
                                 % (len(data), n))
            ctypes.memmove(buf, data, len(data))
            return len(data)
        except BlockingIOError:
            return _lib.WANT_READ
        except BaseException as e:  # noqa: B902 — nothing may unwind through C, nor read as an end
            return self._failed(e)

    def _on_write(self, _conn, buf, n, _arg) -> int:
        try:
            r = self._write_fn(memoryview(ctypes.string_at(buf, n)))
            if r is None:
                return _lib.WANT_WRITE
            if type(r) is not int or r < 0 or r > n:
                raise ValueError("the write callback returned %r for %d bytes" % (r, n))
            return r
        except BlockingIOError:
            return _lib.WANT_WRITE
        except BaseException as e:  # noqa: B902
            return self._failed(e)

    def fileno(self) -> int:
        raise OSError("a callback transport has no descriptor")

    @property
    def sys_error(self) -> int:
        """The errno behind the last SLI_E_IO (from an OSError a callback raised), or 0."""
        return _lib.sli_conn_sys_error(self._h) if self._h else 0


class MemoryConnection(CallbackConnection):
    """TLS over two buffers (Context.wrap_memory), for any event loop: `feed()` the bytes that
    arrived, `feed_eof()` at the transport's end, and send what `data_to_send()` returns after each
    call. A call that needs more bytes raises WantRead; WantWrite never happens."""

    def __init__(self, ctx: Context, server_hostname: Optional[str]):
        self._in, self._out, self._eof = bytearray(), bytearray(), False
        super().__init__(ctx, self._take, self._out_add, server_hostname)

    def _take(self, n: int):
        if self._in:
            data = bytes(self._in[:n])
            del self._in[:n]
            return data
        return b"" if self._eof else None

    def _out_add(self, view) -> int:
        self._out += view
        return len(view)

    def feed(self, data) -> None:
        """Bytes that arrived from the peer."""
        if self._eof:
            raise ValueError("feed after feed_eof")
        self._in += data

    def feed_eof(self) -> None:
        """The transport ended (with or without the peer's close_notify: read tells which)."""
        self._eof = True

    def data_to_send(self) -> bytes:
        """The bytes to send to the peer now (and forgets them)."""
        out = bytes(self._out)
        self._out.clear()
        return out
