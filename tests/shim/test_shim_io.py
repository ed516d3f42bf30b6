#!/usr/bin/python3
"""Differential host tests (difftest.py) of the data calls on one connection (issue 9's items in
brackets). Each host program is in hosts/io/ and says what daemon pattern it stands for.

halfclose_peer_first       the peer half-closes, the server reads to EOF and replies (8)
halfclose_host_first       the client shuts down writing and reads the reply (7)
halfclose_poll_server      the same server as a poll() loop on a non-blocking fd (POLLRDHUP) (8)
halfclose_multi_reply      replies in several writes after the peer's end, then shutdown(SHUT_WR),
                           then a read (0 at once) and poll (both ends: POLLHUP) (7, 8)
writev_big                 blocking write() / writev() of 1 MiB and send() of 100 000 bytes
                           return their full count (10)
waitall                    recv(MSG_WAITALL) over many segments, MSG_PEEK = read, FIONREAD
splice_in                  splice(conn -> 4 KiB non-blocking pipe) loses nothing (9)
splice_in_blocking         the same on a blocking connection: splice waits for the data (9)
splice_out                 splice(4 KiB pipe -> non-blocking conn) with a late reader (9)
sendfile                   sendfile() with an offset pointer and with the file position (9)
timeout_rcvtimeo           SO_RCVTIMEO with a silent peer; MSG_WAITALL returns what came (13)
timeout_rcvtimeo_handshake SO_RCVTIMEO while the peer's ClientHello has not come (13)
timeout_banner_first       a blocking banner write (both timeouts set) while the ClientHello has not
                           come: the kernel takes it at once (13, 15)
timeout_sndtimeo           SO_SNDTIMEO on a big blocking write to a peer that does not read (13)
signal_read_eintr          SIGALRM without SA_RESTART interrupts a blocking read: EINTR (14)
signal_read_eintr_handshake  the same before the peer's ClientHello (14)
signal_read_restart        with SA_RESTART the read goes on and gets the data (14)
signal_write_eintr         SIGALRM during a stuck blocking write: the partial count (14)
signal_write_restart       the same under SA_RESTART (the kernel returns the partial count) (14)
signal_thread_kill         pthread_kill(SIGINT) interrupts another thread's read (14)
nonblock_server            a non-blocking fd never blocks during the handshake; writes before it
                           are accepted (server speaks first) (15)
nonblock_client            the same for a client writing its request at once (15)
close_fast_linger          close() after writing until EAGAIN returns at once; every accepted
                           byte still arrives, then a clean end (16)
close_fast_exit            the same, the server exiting right after close (16)
close_fast_shutdown        the same with shutdown(SHUT_WR): returns at once, nothing lost (7, 16)
sigpipe_fin_ignored        writing to a closed peer: -1 EPIPE with SIGPIPE ignored
sigpipe_reset_ignored      writing to a peer that reset: -1 ECONNRESET then EPIPE
sigpipe_reset_soerror      after a reset SO_ERROR says ECONNRESET once, then reads 0 (17)
othercalls_mmsg            recvmmsg (MSG_WAITFORONE, a timeout looked at between messages, a bad
                           timeout, every message 0 at the end) and sendmmsg on a TLS fd
othercalls_v2              preadv2/pwritev2: offset -1 is readv/writev (RWF_NOWAIT: EAGAIN on an
                           empty socket), an offset is ESPIPE, a flag sockets refuse EOPNOTSUPP
othercalls_pwait2          epoll_pwait2 (timespec timeout), 7-byte reads per level-triggered
                           wakeup: plaintext left inside TLS is reported; a 50 ms empty wait
othercalls_fastopen_mmsg   sendmmsg(MSG_FASTOPEN) with a target's address connects it as TLS
sigpipe_fin_default        with SIGPIPE at its default the write kills the program, as the kernel
"""
import re
import socket
import ssl
import struct
import time

from difftest import Case, Peer, host_exe, pattern, run_cases  # noqa: I001 (shimlib sets sys.path)

MIB = 1 << 20
_patterns = {}


def pat(seed):
    """host io.h's big_pattern unit: 1 MiB of difftest.pattern(seed) (made once per seed)."""
    if seed not in _patterns:
        _patterns[seed] = pattern(seed, MIB)
    return _patterns[seed]


def big(seed, n):
    """The first n bytes of io.h's big_pattern(seed, ...)."""
    return (pat(seed) * (n // MIB + 1))[:n]


def same_bytes(got, want):
    """'as accepted' when equal; else where they differ (a failure's details)."""
    if got == want:
        return "exactly the bytes the writes accepted"
    i = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
    return "%d bytes, %d accepted, first difference at %s" % (len(got), len(want), i)


def late_peer(ctx, sock):
    """A connection made with raw_connect() that starts speaking (TLS: its ClientHello) now."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    p = Peer(sock, ctx.client_ctx() if ctx.tls else None, server_hostname="localhost")
    ctx.peers.append(p)
    return p


# ---- half-close ----

def peer_half_closes(ctx):
    p = ctx.connect()
    p.send(b"x" * 419)
    p.shutdown_write()
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


def peer_answers_after_eof(ctx):
    p = ctx.accept()
    data, how = p.recv_all()
    ctx.obs("request %r, end %s" % (data, how))
    p.send(b"the answer, after your half-close\n")
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("after our close: %r, end %s" % (rest, how))


def peer_half_closes_in_pieces(ctx):
    p = ctx.connect()
    p.send(b"a" * 200)
    time.sleep(0.1)
    p.send(b"b" * 219)
    time.sleep(0.1)
    p.shutdown_write()
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


# ---- big writes, MSG_WAITALL ----

def peer_reads_big(ctx):
    p = ctx.connect()
    time.sleep(0.3)  # the host's writes fill the buffers and really block
    data, how = p.recv_all(timeout=15)
    want = pat(10) + pat(10) + pat(10)[:100000]
    ctx.obs("received %d bytes, as written: %s, end %s" % (len(data), data == want, how))


def peer_waitall(ctx):
    p = ctx.connect()
    want = pattern(30, 100000)
    for i in range(20):
        p.send(want[i * 5000:(i + 1) * 5000])
        time.sleep(0.01)
    ctx.obs("host says %r" % p.recv_exact(5))
    p.send(pattern(31, 5000))
    ctx.obs("host says %r" % p.recv_exact(5))
    p.send(b"0123456789")
    p.shutdown_write()
    data, how = p.recv_all()
    ctx.obs("then %r, end %s" % (data, how))


# ---- splice, sendfile ----

def peer_sends_40000(ctx, delay=0):
    p = ctx.connect()
    time.sleep(delay)
    p.send(pattern(40, 40000))
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


def peer_reads_late(want):
    def peer(ctx):
        p = ctx.connect()
        time.sleep(0.3)
        data, how = p.recv_all(timeout=15)
        ctx.obs("received %d bytes, as sent: %s, end %s" % (len(data), data == want(), how))
    return peer


# ---- timeouts, signals ----

def peer_silent_then_late(ctx):
    p = ctx.connect()
    ctx.obs("host says %r" % p.recv_exact(10))
    p.send(b"late\n")
    ctx.obs("host says %r" % p.recv_exact(5))
    p.send(b"abc")
    data, how = p.recv_all()
    ctx.obs("then %r, end %s" % (data, how))


def peer_connects_speaks_later(delay, banner=False):
    def peer(ctx):
        s = ctx.raw_connect()
        time.sleep(delay)
        p = late_peer(ctx, s)
        if banner:
            ctx.obs("banner %r" % p.recv_exact(11))
        p.send(b"late\n")
        data, how = p.recv_all()
        ctx.obs("reply %r, end %s" % (data, how))
    return peer


def peer_sends_late(ctx):
    p = ctx.connect()
    time.sleep(0.6)
    p.send(b"late\n")
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


def peer_not_reading(seed, pause=1.2):
    """The peer asks, reads nothing for `pause` s, then reads everything: the bytes the host's big
    write accepted (its count in the trailer), the trailer, the rest of the host's output."""
    def peer(ctx):
        p = ctx.connect()
        p.send(b"go\n")
        time.sleep(pause)
        data, how = p.recv_all(timeout=15)
        m = re.search(rb"\nEND (\d+)\n", data)
        if not m:
            ctx.obs("no trailer in %d bytes, end %s" % (len(data), how))
            return
        n = int(m.group(1))
        exact = data[:m.start()] == big(seed, n)
        ctx.obs("the bytes the write accepted arrived, exactly: %s" % exact)
        ctx.obs("after the trailer %r, end %s" % (data[m.end():], how))
    return peer


# ---- non-blocking ----

def peer_slow_client_hello(ctx):
    """Connects, sends 10 bytes of its ClientHello (TLS) and the rest 300 ms later."""
    s = ctx.raw_connect()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx.tls:
        p = Peer(s, ctx.client_ctx(), server_hostname="localhost", handshake=False)
        try:
            p.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = p.out.read()
        s.sendall(hello[:10])
        time.sleep(0.3)
        s.sendall(hello[10:])
        p._handshake()
        ctx.peers.append(p)
    else:
        time.sleep(0.3)
        p = late_peer(ctx, s)
    ctx.obs("banner %r" % p.recv_exact(7))
    p.send(b"hello\n")
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


def peer_accepts_late(ctx):
    """Accepts, and answers the handshake (TLS) only after 300 ms."""
    ctx.listener.settimeout(10)
    s, _ = ctx.listener.accept()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    time.sleep(0.3)
    p = Peer(s, ctx.server_ctx() if ctx.tls else None, server_side=True)
    ctx.peers.append(p)
    ctx.obs("request %r" % p.recv_exact(6))
    p.send(b"reply\n")
    data, how = p.recv_all()
    ctx.obs("then %r, end %s" % (data, how))


# ---- close, SIGPIPE ----

def peer_reads_after_close(ctx, host_exits):
    c1 = ctx.connect()
    c1.send(b"go\n")
    ctx.obs("host says %r" % c1.recv_exact(3))  # c1 is accepted: now c2 (the relay keeps no order)
    c2 = ctx.connect()
    line = b""
    while not line.endswith(b"\n"):
        chunk = c2.recv(64)
        if not chunk:
            break
        line += chunk
    n = int(line or b"0")
    data, how = c1.recv_all(timeout=15)
    ctx.obs("first connection: %s, end %s" % (same_bytes(data, big(16, n)), how))
    if not host_exits:
        c2.shutdown_write()
    rest, how = c2.recv_all()
    ctx.obs("second connection: then %r, end %s" % (rest, how))


def peer_closes(reset):
    def peer(ctx):
        p = ctx.connect()
        p.send(b"bye\n")
        if not reset:
            p.shutdown_write()
        ctx.obs("host says %r" % p.recv_exact(4))
        if reset:
            p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        p.sock.close()
    return peer


def io(name, mode=None):
    return [host_exe(name), "{port}"] + ([mode] if mode else [])


cases = [
    Case("halfclose_peer_first", io("halfclose", "server"), "server", peer_half_closes,
         connections=1),
    Case("halfclose_host_first", io("halfclose", "client"), "client", peer_answers_after_eof,
         connections=1),
    Case("halfclose_poll_server", io("halfclose", "poll_server"), "server",
         peer_half_closes_in_pieces, connections=1),
    Case("halfclose_multi_reply", io("halfclose", "multi_reply"), "server", peer_half_closes,
         connections=1),
    Case("writev_big", io("writev_big"), "server", peer_reads_big, connections=1),
    Case("waitall", io("waitall"), "server", peer_waitall, connections=1),
    Case("splice_in", io("splice_sendfile", "splice_in"), "server", peer_sends_40000,
         connections=1),
    Case("splice_in_blocking", io("splice_sendfile", "splice_in_blocking"), "server",
         lambda ctx: peer_sends_40000(ctx, 0.3), connections=1),
    Case("splice_out", io("splice_sendfile", "splice_out"), "server",
         peer_reads_late(lambda: big(41, 6 * MIB)), connections=1),
    Case("sendfile", io("splice_sendfile", "sendfile"), "server",
         peer_reads_late(lambda: pattern(42, 300000) * 2), connections=1),
    Case("timeout_rcvtimeo", io("timeouts", "rcvtimeo"), "server", peer_silent_then_late,
         connections=1),
    Case("timeout_rcvtimeo_handshake", io("timeouts", "rcvtimeo_handshake"), "server",
         peer_connects_speaks_later(1.0), connections=1),
    Case("timeout_banner_first", io("timeouts", "banner_first"), "server",
         peer_connects_speaks_later(1.0, banner=True), connections=1),
    # the peer's pause outlasts the host's 300 ms timeout even when a loaded machine (CI, ASan)
    # delays the host's write by a second: else it may all be read before the timeout
    Case("timeout_sndtimeo", io("timeouts", "sndtimeo"), "server", peer_not_reading(13, 3.0),
         connections=1),
    Case("signal_read_eintr", io("signals", "read_eintr"), "server", peer_sends_late,
         connections=1),
    Case("signal_read_eintr_handshake", io("signals", "read_eintr_handshake"), "server",
         peer_connects_speaks_later(0.6), connections=1),
    Case("signal_read_restart", io("signals", "read_restart"), "server", peer_sends_late,
         connections=1),
    Case("signal_write_eintr", io("signals", "write_eintr"), "server", peer_not_reading(14),
         connections=1),
    Case("signal_write_restart", io("signals", "write_restart"), "server", peer_not_reading(14),
         connections=1),
    Case("signal_thread_kill", io("signals", "thread_kill"), "server", peer_sends_late,
         connections=1),
    Case("nonblock_server", io("nonblock", "server"), "server", peer_slow_client_hello,
         connections=1),
    Case("nonblock_client", io("nonblock", "client"), "client", peer_accepts_late,
         connections=1),
    Case("close_fast_linger", io("close_fast", "linger"), "server",
         lambda ctx: peer_reads_after_close(ctx, False), connections=2),
    Case("close_fast_exit", io("close_fast", "exit"), "server",
         lambda ctx: peer_reads_after_close(ctx, True), connections=2),
    Case("close_fast_shutdown", io("close_fast", "shutdown"), "server",
         lambda ctx: peer_reads_after_close(ctx, False), connections=2),
    Case("sigpipe_fin_ignored", io("sigpipe", "fin_ignored"), "server", peer_closes(False),
         connections=1),
    Case("sigpipe_reset_ignored", io("sigpipe", "reset_ignored"), "server", peer_closes(True),
         connections=1),
    Case("sigpipe_reset_soerror", io("sigpipe", "reset_soerror"), "server", peer_closes(True),
         connections=1),
    Case("sigpipe_fin_default", io("sigpipe", "fin_default"), "server", peer_closes(False),
         connections=1),
]


# ---- TCP_CORK / MSG_MORE ----

def cork_peer(mode):
    def peer(ctx):
        p = ctx.connect()
        t0 = time.time()
        p.send(b"go\n")
        if mode == "big":
            data, how = p.recv_all()
            ctx.obs("got %s, end %s" % (same_bytes(data, big(7, 100000)), how))
            return
        first = p.recv(64, timeout=5)
        dt = time.time() - t0
        if mode == "timeout":  # the kernel flushes a cork after 200 ms
            ctx.obs("first bytes %r after %s" % (first, "0.15..0.8 s" if 0.15 <= dt <= 0.8 else
                                                  "%.3f s" % dt))
        elif mode == "uncork":  # nothing before the uncork (100 ms after the writes)
            ctx.obs("first bytes %r %s" % (first, "after the uncork" if dt >= 0.08 else
                                            "too early (%.3f s)" % dt))
        else:
            ctx.obs("first bytes %r" % first)
        rest, how = p.recv_all()
        ctx.obs("then %r, end %s" % (rest, how))
    return peer


def one_data_record(plain, tls):
    """The README's claim: a corked header and body (or MSG_MORE then a send) leave as one record."""
    import wire
    rep = wire.check_tls(tls.conns[0], tls.keylog)
    n = sum(1 for t in rep.trace["s2c"] if t.inner_type == 23)
    assert n == 1, "the host's corked bytes left in %d application-data records, not 1" % n


for mode in ("uncork", "timeout", "more", "big"):
    cases.append(Case("cork_" + mode, io("cork", mode), "server", cork_peer(mode), connections=1,
                      check=one_data_record if mode in ("uncork", "more") else None))


# ---- recvmmsg / sendmmsg, preadv2 / pwritev2, epoll_pwait2 ----

def peer_mmsg(ctx):
    p = ctx.connect()
    p.send(b"abcdeABCDE12345")
    ctx.obs("host sent %r" % p.recv_exact(len(b"one,two,three\n")))
    p.send(b"fghijFGHIJ")
    time.sleep(0.3)
    p.send(b"67890")
    ctx.obs("host says %r" % p.recv_exact(5))
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("then %r, end %s" % (rest, how))


def peer_v2(ctx):
    p = ctx.connect()
    ctx.obs("host says %r" % p.recv_exact(3))
    p.send(b"hello v2")
    data, how = p.recv_all()
    ctx.obs("host wrote %r, end %s" % (data, how))
    p.shutdown_write()


def peer_pwait2(ctx):
    p = ctx.connect()
    p.send(b"0123456789abcdefghijklmnopqrstuvwxy")
    ctx.obs("host says %r" % p.recv_exact(5))
    rest, how = p.recv_all()  # the host closes
    ctx.obs("then %r, end %s" % (rest, how))


def peer_fastopen_mmsg(ctx):
    p = ctx.accept()
    ctx.obs("request %r" % p.recv_exact(10))
    p.send(b"ok\n")
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("then %r, end %s" % (rest, how))


cases += [
    Case("othercalls_mmsg", io("othercalls", "mmsg"), "server", peer_mmsg, connections=1),
    Case("othercalls_v2", io("othercalls", "v2"), "server", peer_v2, connections=1),
    Case("othercalls_pwait2", io("othercalls", "pwait2"), "server", peer_pwait2, connections=1),
    Case("othercalls_fastopen_mmsg", io("othercalls", "fastopen_mmsg"), "client",
         peer_fastopen_mmsg, connections=1),
]

run_cases(cases)
