"""wire.py — a wire oracle for the shim tests: record what crossed a TCP connection, then judge it.

Two parts:

`Recorder` is a transparent TCP relay on loopback.  A test points its client at `Recorder.port`
instead of at the server; every accepted connection is relayed to the upstream server and both
byte streams are recorded (`Conn.c2s`, `Conn.s2c`), with a time-stamped event list (EOF, half-close,
reset, refused upstream).  Half-close and resets are propagated, so the endpoints see (almost) what
they would see on a direct connection.

`check_tls(conn, keylog_path)` judges a recorded connection and returns a `Report`:

* framing — each direction is nothing but well-formed TLS records.  The first byte that does not
  start a record is reported with its direction and offset: that is how plaintext leaking past the
  shim shows up.  A stream that stops inside a record (lost ciphertext) is reported too.
* handshake — client_random, negotiated version and cipher suite from the plaintext hellos
  (a HelloRetryRequest is recognised and skipped).
* TLS 1.3 with the key log (NSS format, as `ssl.SSLContext.keylog_filename` writes it): every
  encrypted record is decrypted with the key and sequence number it must have used (handshake key,
  then application traffic secret 0, then one more secret per KeyUpdate, each starting at sequence
  number 0).  A record that only opens with an earlier sequence number is a reused AEAD nonce
  (e.g. a forked child writing with its parent's key state); one that opens with a later number
  means records were skipped (lost); one that opens with nothing is reported as not decrypting.
  The decrypted application data and alerts of each direction are returned.
* TLS 1.2: for AES-GCM suites, the 8-byte explicit nonces of the encrypted records of each
  direction must all differ (a repeat is a reused nonce).  Nothing is decrypted.

Limits — what a clean Report does NOT prove:

* TLS 1.2 (and older) records are not decrypted: no check of their sequence numbers beyond the
  explicit-nonce uniqueness of AES-GCM suites, nothing for ChaCha20 or CBC suites, no application
  data or encrypted alerts returned.
* TLS 1.3 0-RTT early data (CLIENT_EARLY_TRAFFIC_SECRET) is not supported; such records are reported
  as not decrypting.  Only the three RFC 8446 AEAD suites are known (no AES-CCM).
* After the first decryption failure in a direction the rest of that direction is not examined.
* Handshake contents are not verified (certificates, Finished MACs): the TLS endpoints do that.
* The recorder sees TCP bytes, not write() calls: it cannot tell how a stream was segmented, and
  what it recorded is what it read — bytes still unread when `stop()` is called are not recorded.

Only loopback addresses (127.0.0.1, ::1) are ever bound or connected.  Standard library plus
`cryptography` (38 API) only.
"""
import errno
import os
import select
import socket
import struct
import threading
import time
from collections import namedtuple

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

# ----------------------------------------------------------------------------------------------
# Recorder: a transparent, recording TCP relay
# ----------------------------------------------------------------------------------------------

_LOOPBACK = {"127.0.0.1": socket.AF_INET, "::1": socket.AF_INET6}
_CHUNK = 65536              # bytes per recv()
_BUFFER_LIMIT = 256 * 1024  # stop reading a side while this much is waiting to be written on
_RCVBUF = 256 * 1024        # the receive buffer of the relay's host-facing sockets
_CONNECT_TIMEOUT = 10.0     # upstream connect (loopback: only slow if its backlog is full)
_STOP_LIMIT = 1.8           # stop() joins threads for at most this long in total
_POLL_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL


def _family(host):
    """The address family of an allowed (loopback) address; anything else is refused."""
    try:
        return _LOOPBACK[host]
    except KeyError:
        raise ValueError("wire.Recorder only uses 127.0.0.1 or ::1, not %r" % (host,)) from None


def _reset_close(sock):
    """Closes `sock` with a reset (SO_LINGER {1, 0}) instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Conn:
    """One relayed (or synthetic) connection.  All accessors are thread-safe snapshots."""

    def __init__(self, c2s=b"", s2c=b"", finished=False, index=0):
        self.index = index        # position in Recorder.connections
        self.client = None        # the client's (host, port) as accepted
        self._lock = threading.Lock()
        self._data = {"c2s": bytearray(c2s), "s2c": bytearray(s2c)}
        self._events = []
        self._last_event = None
        self._finished = finished

    @classmethod
    def from_streams(cls, c2s, s2c):
        """A finished Conn holding the given streams (to check_tls() edited recordings)."""
        return cls(c2s, s2c, finished=True)

    @property
    def c2s(self):
        """Every byte the client sent, in order."""
        with self._lock:
            return bytes(self._data["c2s"])

    @property
    def s2c(self):
        """Every byte the upstream server sent, in order."""
        with self._lock:
            return bytes(self._data["s2c"])

    @property
    def events(self):
        """[(time.monotonic(), description)], e.g. "c2s eof", "s2c reset: ...", "closed"."""
        with self._lock:
            return list(self._events)

    @property
    def finished(self):
        """True once both directions have ended (EOF, reset, refused upstream or stop())."""
        with self._lock:
            return self._finished

    def _event(self, text):
        with self._lock:
            self._events.append((time.monotonic(), text))
            self._last_event = text

    def _add(self, direction, data):
        """Records bytes read; one "<dir> data @offset" event per run of reads in one direction."""
        with self._lock:
            buf = self._data[direction]
            tag = direction + " data"
            if self._last_event != tag:
                self._events.append((time.monotonic(), "%s @%d" % (tag, len(buf))))
                self._last_event = tag
            buf += data

    def __repr__(self):
        return "<Conn #%d c2s=%d s2c=%d finished=%s>" % (
            self.index, len(self._data["c2s"]), len(self._data["s2c"]), self.finished)


class _Pipe:
    """One direction of a relay: bytes read from `src`, waiting in `buf`, written to `dst`."""

    def __init__(self, name, src, dst):
        self.name, self.src, self.dst = name, src, dst
        self.buf = bytearray()
        self.eof = False   # EOF read from src
        self.done = False  # ... and forwarded to dst with shutdown(SHUT_WR)


class _Reset(Exception):
    """A side reset the connection; `direction` names the side ("c2s" = the client)."""

    def __init__(self, direction, err):
        super().__init__(direction, err)
        self.direction, self.err = direction, err


class Recorder:
    """A TCP relay: listens on listen_host:listen_port (port 0 = pick a free one), and for each
    accepted connection opens a connection to (upstream_host, upstream_port) and relays bytes both
    ways, recording them.  Runs on background threads (one acceptor, one per connection); a context
    manager (start on __enter__, stop on __exit__).  The listening socket exists (and `port` is
    known) right after construction; connections made before start() wait in the backlog."""

    def __init__(self, upstream_host, upstream_port, listen_host="127.0.0.1", backlog=64,
                 listen_port=0):
        self._up_family = _family(upstream_host)
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.socket(_family(listen_host), socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A fixed receive buffer on the sockets it accepts (inherited), and on the upstream
        # sockets it makes (_connect_upstream): the kernel's autotuning
        # (up to tcp_rmem's maximum, 32 MiB on some machines) would otherwise let a host's big
        # write vanish into the relay's side whatever the peer does, depending on timing. With
        # it, what a peer that does not read leaves unread stays with the host, as the cases
        # expect, in both runs alike.
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        self._listener.bind((listen_host, listen_port))
        self._listener.listen(backlog)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        # A pipe written once by stop() and never drained: it wakes every poll() for good.
        self._wake_r, self._wake_w = os.pipe()
        self._cond = threading.Condition()
        self._stopping = False
        self._paused = False
        self._started = False
        self._conns = []
        self._threads = []

    # -- control ---------------------------------------------------------------------------------

    def start(self):
        with self._cond:
            if self._started:
                return self
            self._started = True
        t = threading.Thread(target=self._accept_loop, name="wire-accept", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def stop(self):
        """Closes the listener and resets any live relays; joins the threads (at most ~2 s)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        os.write(self._wake_w, b"x")
        deadline = time.monotonic() + _STOP_LIMIT
        with self._cond:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self._listener.close()
        if not any(t.is_alive() for t in threads):
            # Only when nobody can still poll them (a closed fd number may be reused).
            os.close(self._wake_r)
            os.close(self._wake_w)

    def pause_accept(self):
        """Stops calling accept(): new connections pile up in the backlog (then get no SYN-ACK).
        No accept() happens after this returns."""
        with self._cond:
            self._paused = True

    def resume_accept(self):
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def wait_closed(self, n=1, timeout=10.0):
        """Waits until at least n connections are finished; True if they are."""
        with self._cond:
            return self._cond.wait_for(
                lambda: sum(c.finished for c in self._conns) >= n, timeout)

    @property
    def connections(self):
        """The connections in accept order (a snapshot list)."""
        with self._cond:
            return list(self._conns)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- threads ---------------------------------------------------------------------------------

    def _accept_loop(self):
        poller = select.poll()
        poller.register(self._listener, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        while True:
            with self._cond:
                while self._paused and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
            # Wakes for a connection or for stop(); a pause that came meanwhile is honoured below.
            poller.poll(200)
            with self._cond:
                if self._stopping:
                    return
                if self._paused:
                    continue
                try:
                    client, addr = self._listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    continue
                except OSError:  # e.g. EMFILE: back off instead of spinning
                    time.sleep(0.05)
                    continue
                conn = Conn(index=len(self._conns))
                conn.client = addr[:2]
                conn._event("accepted from %s port %d" % addr[:2])
                self._conns.append(conn)
                t = threading.Thread(target=self._relay, args=(conn, client),
                                     name="wire-relay-%d" % conn.index, daemon=True)
                self._threads.append(t)
                t.start()  # under the lock: stop() never sees an unstarted thread

    def _finish(self, conn, text):
        conn._event(text)
        with self._cond:
            with conn._lock:
                conn._finished = True
            self._cond.notify_all()

    def _connect_upstream(self, conn):
        """A non-blocking connect that stop() can interrupt.  Returns the socket, or None."""
        up = socket.socket(self._up_family, socket.SOCK_STREAM)
        # The same fixed receive buffer as the accepted sockets get (see __init__): in the
        # server-role cases this is the host-facing side, and an autotuned buffer here let a
        # host's 16 MiB write be absorbed before the peer read anything.
        up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        up.setblocking(False)
        err = up.connect_ex(self._upstream)
        if err == errno.EINPROGRESS:
            poller = select.poll()
            poller.register(up, select.POLLOUT)
            poller.register(self._wake_r, select.POLLIN)
            ready = dict(poller.poll(_CONNECT_TIMEOUT * 1000))
            if self._wake_r in ready:
                up.close()
                return None
            err = up.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if ready else errno.ETIMEDOUT
        if err:
            up.close()
            conn._event("upstream connect failed: [Errno %d] %s" % (err, os.strerror(err)))
            return None
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn._event("upstream connected")
        return up

    def _relay(self, conn, client):
        try:
            self._relay_one(conn, client)
        except Exception as e:  # a bug here must not leave wait_closed() waiting
            _reset_close(client)
            if not conn.finished:
                self._finish(conn, "relay error: %r" % (e,))
            raise

    def _relay_one(self, conn, client):
        client.setblocking(False)
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # already reset by the client: the first recv() will tell
            pass
        up = self._connect_upstream(conn)
        if up is None:
            # Refused (or stopping): the client gets a reset, much like a refused connect.
            _reset_close(client)
            self._finish(conn, "client reset" if not self._stopping else "stopped")
            return
        try:
            completed = self._pump(conn, client, up)
        except _Reset as r:
            conn._event("%s reset: %s" % (r.direction, r.err))
            # The side that reset is gone; the other one gets a reset too.
            for sock, name in ((client, "c2s"), (up, "s2c")):
                if name == r.direction:
                    sock.close()
                else:
                    _reset_close(sock)
            self._finish(conn, "closed after reset")
            return
        if not completed:  # stop()
            _reset_close(client)
            _reset_close(up)
            self._finish(conn, "stopped")
            return
        client.close()
        up.close()
        self._finish(conn, "closed")

    def _pump(self, conn, client, up):
        """Relays until both directions are done (True), stop() (False) or a reset (raised as
        _Reset)."""
        pipes = [_Pipe("c2s", client, up), _Pipe("s2c", up, client)]
        side = {client.fileno(): "c2s", up.fileno(): "s2c"}  # who reset, if this socket errs
        ignore_hup = set()
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        while not all(p.done for p in pipes):
            if self._stopping:
                return False
            masks = {client.fileno(): 0, up.fileno(): 0}
            for p in pipes:
                if not p.eof and len(p.buf) < _BUFFER_LIMIT:
                    masks[p.src.fileno()] |= select.POLLIN
                if p.buf:
                    masks[p.dst.fileno()] |= select.POLLOUT
            for fd, mask in masks.items():
                if mask or fd not in ignore_hup:
                    poller.register(fd, mask)  # a 0 mask still reports errors and hang-ups
                else:
                    try:
                        poller.unregister(fd)
                    except KeyError:
                        pass
            ready = dict(poller.poll())
            if self._wake_r in ready:
                return False
            for p in pipes:
                rev = ready.get(p.src.fileno(), 0)
                if masks[p.src.fileno()] & select.POLLIN and rev & (select.POLLIN | _POLL_BAD):
                    self._read(conn, p)
            for p in pipes:
                if p.buf:
                    self._write(p)
                if p.eof and not p.buf and not p.done:
                    try:
                        p.dst.shutdown(socket.SHUT_WR)
                    except OSError as e:
                        raise _Reset(_other(p.name), e) from None
                    p.done = True
                    conn._event("%s eof forwarded" % p.name)
            # An error on a socket nobody reads from (its side already sent EOF): a reset.
            for fd, rev in ready.items():
                if fd in side and rev & _POLL_BAD and not masks[fd] & select.POLLIN:
                    sock = client if fd == client.fileno() else up
                    err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise _Reset(side[fd], OSError(err, os.strerror(err)))
                    ignore_hup.add(fd)
        return True

    @staticmethod
    def _read(conn, p):
        try:
            data = p.src.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # ECONNRESET, ETIMEDOUT, ...
            _flush(p)
            raise _Reset(p.name, e) from None
        if data:
            conn._add(p.name, data)
            p.buf += data
        else:
            p.eof = True
            conn._event("%s eof" % p.name)

    @staticmethod
    def _write(p):
        try:
            n = p.dst.send(p.buf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # EPIPE / ECONNRESET: the receiving side is gone
            raise _Reset(_other(p.name), e) from None
        del p.buf[:n]


def _other(direction):
    return "s2c" if direction == "c2s" else "c2s"


def _flush(p):
    """Best effort: hands what is buffered to the other side before it is reset."""
    try:
        if p.buf:
            p.dst.send(p.buf)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# TLS record layer helpers
# ----------------------------------------------------------------------------------------------

CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA = 20, 21, 22, 23
_CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}
_RECORD_VERSIONS = (0x0301, 0x0302, 0x0303)
MAX_RECORD = 2 ** 14 + 256
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_NEW_SESSION_TICKET = 1, 2, 4
HS_FINISHED, HS_KEY_UPDATE = 20, 24
HRR_RANDOM = bytes.fromhex("CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
_VERSIONS = {0x0304: "TLSv1.3", 0x0303: "TLSv1.2", 0x0302: "TLSv1.1", 0x0301: "TLSv1"}

# suite -> (name, AEAD class, key length, hash class)
TLS13_SUITES = {
    0x1301: ("TLS_AES_128_GCM_SHA256", AESGCM, 16, hashes.SHA256),
    0x1302: ("TLS_AES_256_GCM_SHA384", AESGCM, 32, hashes.SHA384),
    0x1303: ("TLS_CHACHA20_POLY1305_SHA256", ChaCha20Poly1305, 32, hashes.SHA256),
}
# TLS 1.2 AES-GCM suites: the first 8 bytes of every encrypted record are an explicit nonce.
TLS12_GCM_SUITES = {
    0xC02B: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    0xC02C: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    0xC02F: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    0xC030: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    0x009C: "TLS_RSA_WITH_AES_128_GCM_SHA256",
    0x009D: "TLS_RSA_WITH_AES_256_GCM_SHA384",
    0x009E: "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    0x009F: "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
}
_OTHER_SUITE_NAMES = {
    0xCCA8: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCA9: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    0xCCAA: "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


def suite_name(suite):
    if suite in TLS13_SUITES:
        return TLS13_SUITES[suite][0]
    return TLS12_GCM_SUITES.get(suite) or _OTHER_SUITE_NAMES.get(suite) or "0x%04X" % suite


Record = namedtuple("Record", "index offset type version payload")
Record.__doc__ = "A TLS record: its index and byte offset in the stream, header fields, payload."
Record.header = property(lambda r: struct.pack("!BHH", r.type, r.version, len(r.payload)))
Record.size = property(lambda r: 5 + len(r.payload))


def _show(data):
    """A short repr of the bytes at a problem spot."""
    return repr(bytes(data[:24])) + ("..." if len(data) > 24 else "")


def split_records(data):
    """Splits a stream into TLS records.  Returns (records, problem): problem is None if the whole
    stream is records, else a text naming the offset where framing broke (without the direction)."""
    records, off = [], 0
    while off < len(data):
        i = len(records)
        head = data[off:off + 5]
        reason = None
        if head[0] not in _CONTENT_TYPES:
            reason = "content type %d" % head[0]
        elif len(head) >= 3 and struct.unpack("!H", head[1:3])[0] not in _RECORD_VERSIONS:
            reason = "version 0x%04X" % struct.unpack("!H", head[1:3])[0]
        elif len(head) == 5:
            length = struct.unpack("!H", head[3:5])[0]
            if not 1 <= length <= MAX_RECORD:
                reason = "length %d" % length
        if reason:
            return records, "offset %d (record #%d): not a TLS record (%s): %s" % (
                off, i, reason, _show(data[off:]))
        if len(head) < 5:
            return records, "offset %d (record #%d): ends inside a record: %d of 5 header bytes" % (
                off, i, len(head))
        end = off + 5 + length
        if end > len(data):
            return records, "offset %d (record #%d): ends inside a record: %d of %d bytes" % (
                off, i, len(data) - off, 5 + length)
        records.append(Record(i, off, head[0], struct.unpack("!H", head[1:3])[0],
                              bytes(data[off + 5:end])))
        off = end
    return records, None


class HandshakeReader:
    """Reassembles handshake messages (type, body) that may span records or share one."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        msgs = []
        while len(self.buf) >= 4:
            n = int.from_bytes(self.buf[1:4], "big")
            if len(self.buf) < 4 + n:
                break
            msgs.append((self.buf[0], bytes(self.buf[4:4 + n])))
            del self.buf[:4 + n]
        return msgs


class _Parser:
    """Bounds-checked reads from a handshake message body (ValueError when truncated)."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def num(self, n):
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes):
        return self.take(self.num(length_bytes))


def parse_client_hello(body):
    """-> client_random (32 bytes)."""
    p = _Parser(body)
    p.take(2)
    return p.take(32)


def parse_server_hello(body):
    """-> (random, cipher_suite, version): version from supported_versions, else legacy."""
    p = _Parser(body)
    version = p.num(2)
    random = p.take(32)
    p.vector(1)  # legacy_session_id_echo
    suite = p.num(2)
    p.take(1)    # legacy_compression_method
    if p.pos < len(body):
        ext = _Parser(p.vector(2))
        while ext.pos < len(ext.data):
            etype, edata = ext.num(2), ext.vector(2)
            if etype == 43:  # supported_versions: the selected version
                version = _Parser(edata).num(2)
    return random, suite, version


# ----------------------------------------------------------------------------------------------
# TLS 1.3 record protection (RFC 8446 §5.2, §7.1, §7.3)
# ----------------------------------------------------------------------------------------------

def hkdf_expand_label(hash_cls, secret, label, context, length):
    """HKDF-Expand-Label(secret, label, context, length) of RFC 8446 §7.1."""
    full = b"tls13 " + label
    info = struct.pack("!HB", length, len(full)) + full + struct.pack("!B", len(context)) + context
    return HKDFExpand(hash_cls(), length, info).derive(secret)


class Tls13Key:
    """The record protection of one traffic secret: open/seal records at a sequence number."""

    def __init__(self, suite, secret):
        _, aead_cls, key_len, self._hash = TLS13_SUITES[suite]
        self.suite, self.secret = suite, secret
        self._aead = aead_cls(hkdf_expand_label(self._hash, secret, b"key", b"", key_len))
        self._iv = int.from_bytes(hkdf_expand_label(self._hash, secret, b"iv", b"", 12), "big")

    def nonce(self, seq):
        return (self._iv ^ seq).to_bytes(12, "big")

    def open(self, seq, record):
        """The inner plaintext of `record` (a Record) at sequence number seq, or None."""
        try:
            return self._aead.decrypt(self.nonce(seq), record.payload, record.header)
        except InvalidTag:
            return None

    def seal(self, seq, inner_type, data, padding=0):
        """A complete protected record (header included) carrying `data` of `inner_type`."""
        inner = bytes(data) + bytes([inner_type]) + bytes(padding)
        header = struct.pack("!BHH", CT_APPLICATION_DATA, 0x0303, len(inner) + 16)
        return header + self._aead.encrypt(self.nonce(seq), inner, header)

    def next(self):
        """The key after a KeyUpdate: secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd")."""
        size = self._hash.digest_size
        return Tls13Key(self.suite, hkdf_expand_label(self._hash, self.secret, b"traffic upd",
                                                      b"", size))


_KEYLOG_LABELS = {
    "c2s": ("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"),
    "s2c": ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"),
}


def read_keylog(path):
    """An NSS key log -> {(label, client_random bytes): secret bytes}.  Unparsable lines,
    comments and a missing file give nothing."""
    secrets = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return secrets
    for line in lines:
        parts = line.split()
        if len(parts) != 3 or line.startswith("#"):
            continue
        try:
            secrets[(parts[0], bytes.fromhex(parts[1]))] = bytes.fromhex(parts[2])
        except ValueError:
            continue
    return secrets


def keylog_context(ctx, path):
    """Makes an ssl.SSLContext append its TLS secrets to `path` (NSS key log format)."""
    ctx.keylog_filename = path
    return ctx


# ----------------------------------------------------------------------------------------------
# check_tls
# ----------------------------------------------------------------------------------------------

RecordTrace = namedtuple("RecordTrace", "index offset size epoch seq inner_type")
RecordTrace.__doc__ = ("A decrypted TLS 1.3 record: epoch 0 = handshake key, 1 = application "
                       "traffic secret 0, 2+ = after each KeyUpdate; seq within that epoch.")


class Report:
    """What check_tls() found.  ok() is True when `problems` is empty."""

    def __init__(self):
        self.problems = []        # each: what and where (direction, offset, record index)
        self.notes = []           # informational (e.g. no key log lines for this connection)
        self.version = None       # "TLSv1.3", "TLSv1.2", ... or None if no ServerHello was seen
        self.cipher = None        # IANA name, e.g. "TLS_AES_256_GCM_SHA384"
        self.cipher_id = None
        self.client_random = None
        self.hello_retry = False  # the server sent a HelloRetryRequest
        self.c2s_app = b""        # decrypted application data (TLS 1.3 with key log only)
        self.s2c_app = b""
        self.c2s_alerts = []      # [(level, description)], plaintext or decrypted
        self.s2c_alerts = []
        self.decrypted = False    # every encrypted record of both directions was decrypted
        self.trace = {"c2s": [], "s2c": []}  # [RecordTrace] of decrypted records

    def ok(self):
        return not self.problems

    def __str__(self):
        lines = ["%s %s decrypted=%s c2s_app=%d s2c_app=%d c2s_alerts=%s s2c_alerts=%s" % (
            self.version, self.cipher, self.decrypted, len(self.c2s_app), len(self.s2c_app),
            self.c2s_alerts, self.s2c_alerts)]
        lines += ["problem: " + p for p in self.problems]
        lines += ["note: " + n for n in self.notes]
        return "\n".join(lines)


def _alerts(d, rec, out, rep, data=None):
    data = rec.payload if data is None else data
    if len(data) % 2:
        rep.problems.append("%s record #%d at offset %d: alert of %d bytes" % (
            d, rec.index, rec.offset, len(data)))
    out.extend((data[i], data[i + 1]) for i in range(0, len(data) - 1, 2))


def _check_ccs(d, rec, rep):
    if rec.payload != b"\x01":
        rep.problems.append("%s record #%d at offset %d: change_cipher_spec is not 0x01: %s" % (
            d, rec.index, rec.offset, _show(rec.payload)))


def _scan_hellos(recs, rep):
    """Reads ClientHello(s) and the ServerHello from the plaintext handshake records."""
    # Server: the first ServerHello that is not a HelloRetryRequest.  It comes before any
    # encrypted record; a compatibility change_cipher_spec may sit between an HRR and it.
    hs = HandshakeReader()
    for rec in recs["s2c"]:
        if rec.type == CT_APPLICATION_DATA or rep.version:
            break
        if rec.type != CT_HANDSHAKE:
            continue
        for mtype, body in hs.feed(rec.payload):
            if mtype != HS_SERVER_HELLO or rep.version:
                continue
            try:
                random, suite, version = parse_server_hello(body)
            except ValueError:
                rep.problems.append("s2c record #%d at offset %d: malformed ServerHello" % (
                    rec.index, rec.offset))
                return
            if random == HRR_RANDOM:
                rep.hello_retry = True
                continue
            rep.cipher_id, rep.cipher = suite, suite_name(suite)
            rep.version = _VERSIONS.get(version, "0x%04X" % version)
    # Client: the first ClientHello gives client_random; after an HRR the second must repeat it.
    hs, hellos = HandshakeReader(), []
    wanted = 2 if rep.hello_retry else 1
    for rec in recs["c2s"]:
        if rec.type == CT_APPLICATION_DATA or len(hellos) >= wanted:
            break
        if rec.type != CT_HANDSHAKE:
            continue
        for mtype, body in hs.feed(rec.payload):
            if len(hellos) >= wanted:
                break
            if mtype != HS_CLIENT_HELLO:
                rep.problems.append("c2s record #%d at offset %d: handshake message %d where a "
                                    "ClientHello was expected" % (rec.index, rec.offset, mtype))
                return
            try:
                hellos.append(parse_client_hello(body))
            except ValueError:
                rep.problems.append("c2s record #%d at offset %d: malformed ClientHello" % (
                    rec.index, rec.offset))
                return
    if hellos:
        rep.client_random = hellos[0]
        if len(hellos) > 1 and hellos[1] != hellos[0]:
            rep.problems.append("c2s: the ClientHello after the HelloRetryRequest has another "
                                "client_random")


class _Tls13Direction:
    """Decryption state of one direction: the key epochs and the expected sequence number."""

    def __init__(self, keys):
        self.keys = keys      # [handshake key, application key 0, ...], extended per KeyUpdate
        self.epoch, self.seq = 0, 0
        self.used = {0: 0}    # epoch -> records sealed with it

    def key(self, epoch):
        while epoch >= len(self.keys):
            self.keys.append(self.keys[-1].next())
        return self.keys[epoch]

    def advance(self):
        self.epoch, self.seq = self.epoch + 1, 0
        self.used[self.epoch] = 0

    def diagnose(self, rec):
        """Why `rec` does not open at (epoch, seq): returns the text of the problem."""
        k, cur = self.seq, self.epoch
        for j in range(k + 1, k + 17):
            if self.key(cur).open(j, rec) is not None:
                return "sequence number %d skipped to: %d record(s) missing (expected %d)" % (
                    j, j - k, k)
        for j in range(k - 1, max(-1, k - 17), -1):
            if self.key(cur).open(j, rec) is not None:
                return "sequence number %d reused (expected %d)" % (j, k)
        for e in range(cur - 1, -1, -1):
            n = self.used[e]
            for j in range(max(0, n - 16), n + 16):
                if self.key(e).open(j, rec) is not None:
                    if j < n:
                        return ("sequence number %d of the retired key of epoch %d reused "
                                "(expected %d in epoch %d)" % (j, e, k, cur))
                    return ("sealed with the retired key of epoch %d, sequence number %d "
                            "(expected %d in epoch %d)" % (e, j, k, cur))
        for j in range(0, 17):
            if self.key(cur + 1).open(j, rec) is not None:
                return ("sealed with the next key (epoch %d, sequence number %d): a key change was "
                        "skipped (expected %d in epoch %d)" % (cur + 1, j, k, cur))
        return "does not decrypt (expected sequence number %d in epoch %d)" % (k, cur)


def _walk_tls13(d, records, keys, rep):
    """TLS 1.3 checks of one direction; decrypts when keys is not None.  Returns True if every
    encrypted record was decrypted."""
    app, alerts = bytearray(), getattr(rep, d + "_alerts")
    state = _Tls13Direction(keys) if keys else None
    hs = HandshakeReader()
    encrypted = undecrypted = 0
    for rec in records:
        if rec.type == CT_CHANGE_CIPHER_SPEC:   # middlebox compatibility: plaintext, skipped
            _check_ccs(d, rec, rep)
            continue
        if rec.type != CT_APPLICATION_DATA:
            if encrypted:
                rep.problems.append("%s record #%d at offset %d: plaintext %s record after "
                                    "encryption started" % (d, rec.index, rec.offset,
                                                            _CONTENT_TYPES[rec.type]))
            if rec.type == CT_ALERT:
                _alerts(d, rec, alerts, rep)
            continue
        encrypted += 1
        if state is None:
            undecrypted += 1
            continue
        inner = state.key(state.epoch).open(state.seq, rec)
        if inner is None:
            rep.problems.append("%s record #%d at offset %d: %s" % (
                d, rec.index, rec.offset, state.diagnose(rec)))
            undecrypted += sum(1 for r in records[rec.index:] if r.type == CT_APPLICATION_DATA)
            break
        inner = inner.rstrip(b"\0")  # the inner plaintext: content, type, zero padding
        rep.trace[d].append(RecordTrace(rec.index, rec.offset, rec.size, state.epoch, state.seq,
                                        inner[-1] if inner else None))
        state.seq += 1
        state.used[state.epoch] = state.seq
        if not inner:
            rep.problems.append("%s record #%d at offset %d: no inner content type" % (
                d, rec.index, rec.offset))
            continue
        itype, content = inner[-1], inner[:-1]
        if itype == CT_APPLICATION_DATA:
            app += content
        elif itype == CT_ALERT:
            _alerts(d, rec, alerts, rep, content)
        elif itype == CT_HANDSHAKE:
            change = False
            for mtype, _body in hs.feed(content):
                if mtype == HS_FINISHED and state.epoch == 0:
                    change = True   # after this side's Finished: application traffic secret 0
                elif mtype == HS_KEY_UPDATE:
                    change = True
                # Anything else (EncryptedExtensions, Certificate, NewSessionTicket...): skipped.
            if change:
                if hs.buf:
                    rep.problems.append("%s record #%d at offset %d: handshake data after a key "
                                        "change in the same record" % (d, rec.index, rec.offset))
                state.advance()
        else:
            rep.problems.append("%s record #%d at offset %d: inner content type %d" % (
                d, rec.index, rec.offset, itype))
    setattr(rep, d + "_app", bytes(app))
    if hs.buf and not undecrypted:
        rep.problems.append("%s: stream ends inside an encrypted handshake message" % d)
    return state is not None and undecrypted == 0


def _walk_tls12(d, records, rep):
    """TLS 1.2 (or older) checks of one direction: plaintext alerts before ChangeCipherSpec, and
    distinct explicit nonces after it for AES-GCM suites."""
    alerts = getattr(rep, d + "_alerts")
    gcm = rep.cipher_id in TLS12_GCM_SUITES and rep.version == "TLSv1.2"
    encrypted = False
    seen = {}
    for rec in records:
        if not encrypted:
            if rec.type == CT_CHANGE_CIPHER_SPEC:
                _check_ccs(d, rec, rep)
                encrypted = True
            elif rec.type == CT_ALERT:
                _alerts(d, rec, alerts, rep)
            elif rec.type == CT_APPLICATION_DATA:
                rep.problems.append("%s record #%d at offset %d: application data before "
                                    "change_cipher_spec" % (d, rec.index, rec.offset))
            continue
        if not gcm:
            continue
        if len(rec.payload) < 8 + 16:
            rep.problems.append("%s record #%d at offset %d: %d bytes, too short for AES-GCM" % (
                d, rec.index, rec.offset, len(rec.payload)))
            continue
        nonce = rec.payload[:8]
        if nonce in seen:
            rep.problems.append("%s record #%d at offset %d: explicit nonce %s reused (first in "
                                "record #%d)" % (d, rec.index, rec.offset, nonce.hex(),
                                                 seen[nonce]))
        else:
            seen[nonce] = rec.index


def check_tls(conn, keylog_path=None):
    """Judges a recorded connection (anything with c2s and s2c bytes); see the module docstring."""
    rep = Report()
    recs = {}
    for d in ("c2s", "s2c"):
        recs[d], problem = split_records(getattr(conn, d))
        if problem:
            rep.problems.append("%s %s" % (d, problem))
    _scan_hellos(recs, rep)

    if rep.version == "TLSv1.3":
        keys = {"c2s": None, "s2c": None}
        if rep.cipher_id not in TLS13_SUITES:
            rep.notes.append("cannot decrypt suite %s" % rep.cipher)
        elif keylog_path and rep.client_random:
            secrets = read_keylog(keylog_path)
            for d, labels in _KEYLOG_LABELS.items():
                found = [secrets.get((label, rep.client_random)) for label in labels]
                if all(found):
                    keys[d] = [Tls13Key(rep.cipher_id, s) for s in found]
                else:
                    rep.notes.append("%s: no %s in the key log for client_random %s" % (
                        d, " / ".join(lb for lb, s in zip(labels, found) if not s),
                        rep.client_random.hex()))
        elif keylog_path:
            rep.notes.append("no ClientHello: nothing to look up in the key log")
        all_done = [_walk_tls13(d, recs[d], keys[d], rep) for d in ("c2s", "s2c")]
        rep.decrypted = all(all_done)
    elif rep.version is not None:
        for d in ("c2s", "s2c"):
            _walk_tls12(d, recs[d], rep)
        if rep.version == "TLSv1.2" and rep.cipher_id not in TLS12_GCM_SUITES:
            rep.notes.append("no explicit nonces to check with %s" % rep.cipher)
    else:
        # No ServerHello: only plaintext alerts before anything encrypted can be read.
        for d in ("c2s", "s2c"):
            for rec in recs[d]:
                if rec.type in (CT_CHANGE_CIPHER_SPEC, CT_APPLICATION_DATA):
                    break
                if rec.type == CT_ALERT:
                    _alerts(d, rec, getattr(rep, d + "_alerts"), rep)
        if recs["s2c"] or recs["c2s"]:
            rep.notes.append("no ServerHello: version unknown")
    return rep
