#!/usr/bin/python3
"""Adversarial differential host tests (difftest.py): small programs written the way real daemons
and clients are, each run plain and through the shim; what the host observes, its exit status and
what the peer observes must be equal, and the wire must carry nothing but TLS records.

Cases (host programs in hosts/adversary/):
  peek_header          the request line and the headers arrive in two writes; the server peeks
                       until "\\r\\n\\r\\n" is visible, then reads exactly the header
  peek_big             20000 bytes in one write; one recv(MSG_PEEK) of 64 KiB 300 ms later shows
                       all of them
  fionread_msg         a 4-byte length then a 96-byte body; the server waits for FIONREAD >= 100
  fionread_handshake   after accept the server only polls FIONREAD (sleep-and-check) until input
  errqueue             recvmsg(MSG_ERRQUEUE) (with and without MSG_DONTWAIT) with data waiting:
                       -1 EAGAIN at once, the data stays for the next read
  trunc                recv(MSG_TRUNC) discards without writing the buffer; recv(NULL, 4,
                       MSG_TRUNC) skips 4 bytes
  oob_recv             recv(MSG_OOB) without urgent data: -1 EINVAL, the in-band bytes stay
  oob_send             send(MSG_OOB) of one byte between "abc" and "def": the peer's stream
                       ("abcdef"); on a TLS fd the send is refused (EOPNOTSUPP: documented)
  rcvlowat             SO_RCVLOWAT 10: poll and a blocking read wait until 10 bytes are there
  zerocopy             SO_ZEROCOPY + send(MSG_ZEROCOPY): the completions on the error queue; on a
                       TLS fd SO_ZEROCOPY is refused (documented), the sends arrive intact
  linger_abort         SO_LINGER {1, 0} then close after half a response: the peer sees the
                       bytes, then a reset (not a clean end that makes the half look whole)
  dup_interleave       dup / F_DUPFD_CLOEXEC / dup2(fd, fd) / dup3(fd, fd, 0); writes through three
                       numbers interleaved, closes one by one, shutdown and EOF through the last
  poll_odd             poll with one fd listed twice, negative fds, events 0, nfds 0, a closed fd
  zero_len             0-byte write/send/read/recv/writev before the ClientHello, after the data,
                       after shutdown(SHUT_WR)
  splice_sock          splice() from one connection straight to a file and to another connection
                       (the kernel: EINVAL, a pipe is needed), then the read/write fallback
  epoll_two            one connection in an edge-triggered and a level-triggered set; a MOD from
                       another thread wakes the waiter; DEL from one set, close (documented: an
                       edge-triggered set may see one extra event)
  sigpipe_blocked      SIGPIPE blocked by sigprocmask: after the peer's reset ECONNRESET, then EPIPE
                       with SIGPIPE pending (sigtimedwait takes it), MSG_NOSIGNAL raises none
  lobby                a blocking server greets player A, then blocks in accept() for player B:
                       A's greeting must arrive before B joins
  odd_waits            select() leaves the time not slept in its timeval; a ppoll() timeout above
                       INT_MAX ms does not wrap into a short one; invalid timeouts and negative
                       iovec counts are EINVAL
"""
import socket
import struct
import time

from difftest import Case, Peer, Timeout, host_exe, pattern, run_cases  # noqa: I001 (shimlib sets sys.path)


def adv(name, *args):
    return [host_exe(name), "{port}"] + list(args)


def peer_two_writes(ctx):
    p = ctx.connect()
    p.send(b"GET / HTTP/1.0\r\n")
    time.sleep(0.1)
    p.send(b"Host: x\r\n\r\n")
    data, how = p.recv_all(timeout=5)
    ctx.obs("reply %r, end %s" % (data, how))


def peer_big_write(ctx):
    p = ctx.connect()
    p.send(pattern(5, 20000))
    data, how = p.recv_all(timeout=5)
    ctx.obs("reply %r, end %s" % (data, how))


def peer_length_prefixed(ctx):
    p = ctx.connect()
    p.send(b"\0\0\0\x60")
    time.sleep(0.05)
    p.send(b"m" * 96)
    data, how = p.recv_all(timeout=5)
    ctx.obs("reply %r, end %s" % (data, how))


def peer_hello(ctx):
    p = ctx.connect(timeout=4)
    p.send(b"hello")
    data, how = p.recv_all(timeout=4)
    ctx.obs("reply %r, end %s" % (data, how))


def peer_sends(*parts, gap=0.3):
    def peer(ctx):
        p = ctx.connect()
        for i, part in enumerate(parts):
            if i:
                time.sleep(gap)
            p.send(part)
        data, how = p.recv_all(timeout=5)
        ctx.obs("reply %r, end %s" % (data, how))
    return peer


def peer_trunc(ctx):
    p = ctx.connect()
    p.send(b"abcdefghij")
    ctx.obs("host says %r" % p.recv_exact(5))
    p.send(b"0123456789")
    data, how = p.recv_all(timeout=5)
    ctx.obs("reply %r, end %s" % (data, how))


def peer_zerocopy(ctx):
    p = ctx.connect()
    p.send(b"go\n")
    data = p.recv_exact(32768)
    ctx.obs("got %d bytes, all z: %s" % (len(data), data == b"z" * 32768))
    p.send(b"bye\n")
    data, how = p.recv_all(timeout=5)
    ctx.obs("reply %r, end %s" % (data, how))



def late_peer(ctx, sock):
    """A connection made with raw_connect() that starts speaking (TLS: its ClientHello) now."""
    p = Peer(sock, ctx.client_ctx() if ctx.tls else None, server_hostname="localhost")
    ctx.peers.append(p)
    return p


def peer_dup(ctx):
    p = ctx.connect()
    ctx.obs("host wrote %r" % p.recv_exact(10))
    p.send(b"x\n")
    data, how = p.recv_all(timeout=5)
    ctx.obs("then %r, end %s" % (data, how))
    p.shutdown_write()


def peer_poll_odd(ctx):
    p = ctx.connect()
    time.sleep(0.3)
    p.send(b"hi\n")
    ctx.obs("host says %r" % p.recv_exact(3))
    p.shutdown_write()
    data, how = p.recv_all(timeout=5)
    ctx.obs("then %r, end %s" % (data, how))


def peer_zero_len(ctx):
    s = ctx.raw_connect()
    time.sleep(0.3)
    p = late_peer(ctx, s)
    p.send(b"hello\n")
    ctx.obs("host says %r" % p.recv_exact(3))
    data, how = p.recv_all(timeout=5)
    ctx.obs("then %r, end %s" % (data, how))
    p.shutdown_write()


def peer_splice(ctx):
    c1 = ctx.connect()
    c1.send(b"one\n")
    ctx.obs("c1 says %r" % c1.recv_exact(3))
    c2 = ctx.connect(handshake=False)  # the host touches c2 only at the end (lazy handshake)
    c1.send(b"secret-from-c1\n")
    try:
        c2.handshake()
        data, how = c2.recv_all(timeout=5)
    except Exception as e:  # noqa: BLE001 -- what the peer saw is the observation
        data, how = b"", "handshake failed: %s" % type(e).__name__
    ctx.obs("c2 got %r, end %s" % (data, how))
    data, how = c1.recv_all(timeout=5)
    ctx.obs("c1 then %r, end %s" % (data, how))


def peer_epoll_two(ctx):
    p = ctx.connect()
    p.send(b"abcdefghij")
    ctx.obs("host says %r" % p.recv_exact(4))
    p.send(b"bye")
    data, how = p.recv_all(timeout=5)
    ctx.obs("then %r, end %s" % (data, how))


def peer_resets(ctx):
    p = ctx.connect()
    p.send(b"bye\n")
    ctx.obs("host says %r" % p.recv_exact(4))
    p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    p.sock.close()


def peer_lobby(ctx):
    greeting = b"waiting for a second player\n"
    a = ctx.connect(handshake=False, timeout=1.5)
    try:
        a.handshake()
        got = a.recv_exact(len(greeting), timeout=1.5)
    except Timeout:
        got = b""
    ctx.obs("A greeted before B joined: %s" % (got == greeting))
    b = ctx.connect()
    a.timeout = 5
    if got != greeting:
        a.handshake()
        got += a.recv_exact(len(greeting) - len(got), timeout=5)
    ctx.obs("A's greeting %r" % got)
    ctx.obs("B says %r" % b.recv_exact(17 + 3))
    ctx.obs("A says %r" % a.recv_exact(3))
    a.send(b"a1\n")
    b.send(b"b1\n")
    for name, p in (("A", a), ("B", b)):
        data, how = p.recv_all(timeout=5)
        ctx.obs("%s then %r, end %s" % (name, data, how))


cases = [
    Case("peek_header", adv("peek", "peek_header"), "server", peer_two_writes, connections=1),
    Case("peek_big", adv("peek", "peek_big"), "server", peer_big_write, connections=1),
    Case("fionread_msg", adv("peek", "fionread_msg"), "server", peer_length_prefixed,
         connections=1),
    Case("fionread_handshake", adv("peek", "fionread_handshake"), "server", peer_hello,
         connections=1),
    Case("errqueue", adv("oddflags", "errqueue"), "server", peer_sends(b"hello"), connections=1),
    Case("trunc", adv("oddflags", "trunc"), "server", peer_trunc, connections=1),
    Case("oob_recv", adv("oddflags", "oob_recv"), "server", peer_sends(b"hello"), connections=1),
    Case("oob_send", adv("oddflags", "oob_send"), "server", peer_sends(b"go"), connections=1,
         differs=[("host", r"^send ! \(MSG_OOB\): 1$", r"^send ! \(MSG_OOB\): -1 EOPNOTSUPP$",
                   "TLS carries no urgent data: send(MSG_OOB) on a TLS fd is refused "
                   "(EOPNOTSUPP) rather than slipped into the stream")]),
    Case("rcvlowat", adv("oddflags", "rcvlowat"), "server", peer_sends(b"12345", b"67890"),
         connections=1),
    Case("zerocopy", adv("oddflags", "zerocopy"), "server", peer_zerocopy, connections=1,
         differs=[("host", r"^SO_ZEROCOPY: 0$", r"^SO_ZEROCOPY: -1 EOPNOTSUPP$",
                   "SO_ZEROCOPY is refused on a TLS fd: the kernel sends ciphertext the shim "
                   "made, so completions for the host's buffers would never come"),
                  ("host", r"^zerocopy completions: sends 0\.\.3$",
                   r"^zerocopy completions: none in 1 s$",
                   "without SO_ZEROCOPY the kernel sends MSG_ZEROCOPY writes as copies, "
                   "with no completions")]),
    Case("linger_abort", adv("linger"), "server", peer_sends(b"go"), connections=1),
    Case("dup_interleave", adv("fds", "dup_interleave"), "server", peer_dup, connections=1),
    Case("poll_odd", adv("fds", "poll_odd"), "server", peer_poll_odd, connections=1),
    Case("zero_len", adv("fds", "zero_len"), "server", peer_zero_len, connections=1),
    Case("splice_sock", adv("splice_sock"), "server", peer_splice, connections=2),
    Case("epoll_two", adv("epoll_two"), "server", peer_epoll_two, connections=1,
         differs=[("host", r"^ET again \(no new edge\): 0$", r"^ET again \(no new edge\): 1 IN$",
                   "an edge-triggered registration may get one extra event when the socket "
                   "becomes writable while plaintext is left unread (a read then returns it; "
                   "nothing is lost)")]),
    Case("sigpipe_blocked", adv("sigpipe_blocked"), "server", peer_resets, connections=1),
    Case("lobby", adv("lobby"), "server", peer_lobby, connections=2, timeout=8),
]

def peer_odd_waits(ctx):
    p = ctx.connect()
    ctx.obs("host says %r" % p.recv_exact(3))
    time.sleep(1.0)
    p.send(b"late\n")
    ctx.obs("host says %r" % p.recv_exact(5))
    time.sleep(0.3)
    p.send(b"more\n")
    rest, how = p.recv_all(timeout=10)
    ctx.obs("then %r, end %s" % (rest, how))


cases.append(Case("odd_waits", adv("odd_waits"), "server", peer_odd_waits, connections=1))

run_cases(cases)
