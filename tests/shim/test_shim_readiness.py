#!/usr/bin/python3
"""Differential host tests (difftest.py) of readiness: what epoll, poll and select report for TLS
fds must be what the kernel reports for plain sockets (issue 9, items 6, 12, 15, 17).

Not covered here: a non-blocking connect's readiness (item 17, first half) is in
test_shim_connect.py; a TLS and a plaintext client on one optional-mode port need a peer that
speaks both in one run (this harness runs one mode per run).

Cases (hosts in hosts/readiness/):
  epoll_pool_oneshot       4 workers on one epoll set, EPOLLIN|EPOLLONESHOT, re-armed with
                           EPOLL_CTL_MOD; 8 clients x 256 KiB echoed in pieces: no overlap of two
                           workers on one connection, no event on a disarmed fd, echoes intact
  epoll_pool_et_oneshot    the same with EPOLLET|EPOLLONESHOT
  epoll_pool_lt_single     1 worker, level-triggered, one 1000-byte read per event
  epoll_pool_et_single7    1 worker, edge-triggered, 7-byte reads until EAGAIN
  epoll_early_wait         a worker blocked in epoll_wait on an empty set before the first
                           EPOLL_CTL_ADD: it gets the registered cookie, and one-shot holds
  epoll_exclusive          nginx-style: 3 workers, each its own set, the listener in each with
                           EPOLLIN|EPOLLEXCLUSIVE; 9 clients, all served
  epoll_exclusive_conn     connections registered with EPOLLEXCLUSIVE too, and the kernel's
                           EINVAL rules for EPOLLEXCLUSIVE on a connection
  poll_rdhup_poll          poll(POLLIN|POLLRDHUP): data (POLLIN), then the peer's half-close
                           (POLLIN|POLLRDHUP, read 0); the reply written after it arrives
  poll_rdhup_epoll_lt      the same with epoll EPOLLIN|EPOLLRDHUP, level-triggered
  poll_rdhup_epoll_et      the same, edge-triggered
  poll_rdhup_poll_late     request and half-close at once, the host looks 300 ms later: POLLRDHUP
                           with the data still unread, and again after it
  poll_rdhup_epoll_lt_late the same with level-triggered epoll
  select_echo              select() echo server, blocking fds, 7-byte reads, 4 clients
  hot_list                 300 silent connections, then 5 clients each answered within 2 s
  optional_banner          SLI_MODE=optional: a speak-first epoll server, 5 plaintext clients at
                           once, each banner within 0..1000 ms (sniff timeout 300 ms)
  lt_fairness              level-triggered, maxevents 1: a connection that stays readable must
                           not starve the listener and a second client (answered at once)
  writer_epoll_et          8 MiB to a slow reader, non-blocking, waiting on EPOLLOUT|EPOLLET at
                           each EAGAIN: writability reported again, no stall, every byte arrives
  writer_epoll_lt          the same, EPOLLOUT added while blocked (level-triggered)
  writer_poll              the same with poll(POLLOUT)
  epoll_handshake_out      EPOLLOUT|EPOLLET first: the greeting written before the handshake
                           arrives after it; then EPOLLIN|EPOLLET
  not_data_server          bytes that are not data wake nobody: the end of the handshake and half
                           of the first record reach the server; poll and epoll_wait time out
  not_data_client          the same for a client: the server's session tickets after the
                           handshake; poll and epoll_wait time out until the answer
"""
import hashlib
import resource
import threading
import time

import difftest
from difftest import Case, Timeout, host_exe, run_cases  # noqa: I001 (shimlib sets sys.path)


# ---- helpers ----

def run_clients(ctx, n, fn, timeout=30.0):
    """Runs fn(ctx, k) for k in 0..n-1 on threads; observes each result in client order (so the
    observation list does not depend on scheduling)."""
    results = [None] * n

    def one(k):
        try:
            results[k] = fn(ctx, k)
        except Exception as e:  # noqa: BLE001 — an observation, compared between the runs
            results[k] = "failed: %s %s" % (type(e).__name__, e)

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    end = time.time() + timeout
    for t in threads:
        t.join(max(0.0, end - time.time()))
    for k in range(n):
        ctx.obs("client %d: %s" % (k, results[k] if results[k] is not None else "still running"))


def recv_line(p, timeout=5.0):
    """Reads from a Peer up to and including a newline."""
    end = time.time() + timeout
    got = b""
    while b"\n" not in got:
        chunk = p.recv(4096, max(0.001, end - time.time()))
        if not chunk:
            break
        got += chunk
    return got


def raw_recv_line(s, timeout=5.0):
    """The same on a plain socket."""
    s.settimeout(timeout)
    got = b""
    try:
        while b"\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError as e:
        return got + (" [%s]" % type(e).__name__).encode()
    return got


def raw_recv_all(s, timeout=5.0):
    s.settimeout(timeout)
    got = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                return got, "eof"
            got += chunk
    except OSError as e:
        return got, type(e).__name__


def blob(seed, n):
    return hashlib.shake_256(b"readiness %d" % seed).digest(n)


KIB = 1024
PIECES = [1, 700, 16384, 5000, 33, 9000, 1500, 12000, 4096, 257, 16385, 2048]


def echo_client(size):
    """A client that sends `size` bytes in pieces of varied sizes, keeping up to two pieces in
    flight, reads every echo back and checks it; then half-closes and expects a clean end."""
    def client(ctx, k):
        data = blob(k, size)
        p = ctx.connect()
        pieces, off, i = [], 0, k
        while off < size:
            n = min(PIECES[i % len(PIECES)], size - off)
            pieces.append((off, n))
            off += n
            i += 1
        echo = bytearray()
        for j, (o, n) in enumerate(pieces):
            p.send(data[o:o + n])
            if j >= 1:
                echo += p.recv_exact(pieces[j - 1][1], timeout=10)
        echo += p.recv_exact(pieces[-1][1], timeout=10)
        p.shutdown_write()
        rest, how = p.recv_all(timeout=10)
        if bytes(echo) == data:
            verdict = "echo intact (%d bytes)" % len(echo)
        else:
            bad = next((i for i, (a, b) in enumerate(zip(echo, data)) if a != b), len(echo))
            verdict = "echo differs: %d of %d bytes, first difference at %d" % (
                len(echo), len(data), bad)
        return "%s, then %r, end %s" % (verdict, rest, how)
    return client


# ---- epoll worker pool, ONESHOT (item 6) ----

def pool_peer(nclients, size):
    def peer(ctx):
        run_clients(ctx, nclients, echo_client(size), timeout=40)
    return peer


def one_request(ctx):
    p = ctx.connect()
    p.send(b"hello\n")
    data, how = p.recv_all(timeout=10)
    ctx.obs("reply %r, end %s" % (data, how))


# ---- EPOLLEXCLUSIVE ----

def line_clients(n):
    def client(ctx, k):
        p = ctx.connect()
        p.send(b"hello %d\n" % k)
        data, how = p.recv_all(timeout=10)
        return "reply %r, end %s" % (data, how)

    def peer(ctx):
        run_clients(ctx, n, client)
    return peer


# ---- POLLRDHUP / EPOLLRDHUP (item 17, second half) ----

def rdhup_peer(pause):
    def peer(ctx):
        p = ctx.connect()
        p.send(b"r" * 100)
        time.sleep(pause)
        p.shutdown_write()
        data, how = p.recv_all(timeout=10)
        ctx.obs("reply %r, end %s" % (data, how))
    return peer


# ---- select ----

def select_client(ctx, k):
    p = ctx.connect()
    out = []
    for r, n in enumerate((300, 2000, 17000)):
        msg = blob(100 + 10 * k + r, n)
        p.send(msg)
        echo = p.recv_exact(n, timeout=10)
        verdict = "intact" if echo == msg else "differs (%d bytes)" % len(echo)
        out.append("round %d %s" % (r, verdict))
    p.shutdown_write()
    rest, how = p.recv_all(timeout=10)
    return "%s, then %r, end %s" % (", ".join(out), rest, how)


def select_peer(ctx):
    run_clients(ctx, 4, select_client)


# ---- many silent connections (item 12) ----

def hot_list_peer(ctx):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # 300 silent sockets here, two more per connection in the recorder
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    for i in range(300):
        ctx.raw_connect()
        # the recorder accepts on one thread: let it keep up, or its backlog (64) overflows and a
        # dropped SYN costs a 1 s retransmission
        end = time.time() + 5
        while i + 1 - len(ctx.recorder.connections) > 32 and time.time() < end:
            time.sleep(0.001)
    end = time.time() + 5
    while len(ctx.recorder.connections) < 300 and time.time() < end:
        time.sleep(0.005)
    time.sleep(0.2)  # and open them all upstream
    for k in range(5):
        t0 = time.time()
        try:
            p = ctx.connect(timeout=5)
            p.send(b"hello %d\n" % k)
            data, how = p.recv_all(timeout=5)
        except (Timeout, OSError) as e:
            data, how = b"", type(e).__name__
        ms = (time.time() - t0) * 1000
        when = "answered within 0..2000 ms" if ms <= 2000 else "took %d ms" % ms
        ctx.obs("client %d: %r, end %s, %s" % (k, data, how, when))


# ---- optional mode, a server that speaks first (item 15) ----

def banner_peer(ctx):
    socks = [(ctx.raw_connect(), time.time()) for _ in range(5)]
    results = [None] * 5

    def one(k):
        s, t0 = socks[k]
        banner = raw_recv_line(s, timeout=8)
        ms = (time.time() - t0) * 1000
        when = "within 0..1000 ms" if ms <= 1000 else "after %d ms" % ms
        s.sendall(b"CMD %d\r\n" % k)
        reply, how = raw_recv_all(s, timeout=5)
        results[k] = "banner %r %s, reply %r, end %s" % (banner, when, reply, how)

    threads = [threading.Thread(target=one, args=(k,), daemon=True) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    for k in range(5):
        ctx.obs("client %d: %s" % (k, results[k]))


# ---- a large response to a slow reader: EAGAIN, then writability again ----

def slow_reader(ctx):
    p = ctx.connect()
    time.sleep(0.2)  # the host fills every buffer meanwhile
    data, how, end = bytearray(), "timeout", time.time() + 20
    while time.time() < end:  # then reads slower than the host writes
        try:
            chunk = p.recv(65536, timeout=max(0.001, end - time.time()))
        except Timeout:
            break
        if not chunk:
            how = p.eof
            break
        data += chunk
        time.sleep(0.001)
    data = bytes(data)
    expect = (bytes(range(251)) * (len(data) // 251 + 1))[:len(data)]  # the host's bytes
    ctx.obs("received %d bytes, %s, end %s" % (
        len(data), "intact" if data == expect else "NOT what was sent", how))


# ---- level-triggered fairness with maxevents 1 ----

def bulk_then_ping(ctx):
    a = ctx.connect()
    a.send(blob(7, 64 * KIB))  # consumed a byte per millisecond: readable for a minute
    time.sleep(0.2)
    t0 = time.time()
    try:
        b = ctx.connect(timeout=5)
        b.send(b"ping\n")
        data, how = b.recv_all(timeout=5)
    except (Timeout, OSError) as e:
        data, how = b"", type(e).__name__
    ms = (time.time() - t0) * 1000
    ctx.obs("B: %r, end %s, %s" % (data, how, "within 0..1500 ms" if ms <= 1500 else
                                   "after %d ms" % ms))


# ---- EPOLLOUT first, a greeting written before the handshake ----

def greeting_client(ctx, k):
    p = ctx.connect()
    greeting = recv_line(p)
    p.send(b"cmd %d\n" % k)
    data, how = p.recv_all(timeout=10)
    return "greeting %r, reply %r, end %s" % (greeting, data, how)


def greeting_peer(ctx):
    run_clients(ctx, 3, greeting_client)


cases = [
    Case("epoll_pool_oneshot", [host_exe("epoll_pool"), "{port}", "oneshot", "8"], "server",
         pool_peer(8, 256 * KIB), connections=8, timeout=60),
    Case("epoll_pool_et_oneshot", [host_exe("epoll_pool"), "{port}", "et_oneshot", "8"], "server",
         pool_peer(8, 256 * KIB), connections=8, timeout=60),
    Case("epoll_pool_lt_single", [host_exe("epoll_pool"), "{port}", "lt_single", "8"], "server",
         pool_peer(8, 256 * KIB), connections=8, timeout=60),
    Case("epoll_pool_et_single7", [host_exe("epoll_pool"), "{port}", "et_single7", "8"], "server",
         pool_peer(8, 64 * KIB), connections=8, timeout=60),
    Case("epoll_early_wait", [host_exe("epoll_early_wait"), "{port}"], "server", one_request,
         connections=1),
    Case("epoll_exclusive", [host_exe("epoll_exclusive"), "{port}", "9", "listener"], "server",
         line_clients(9), connections=9),
    Case("epoll_exclusive_conn", [host_exe("epoll_exclusive"), "{port}", "9", "conn_exclusive"],
         "server", line_clients(9), connections=9),
]
for mode in ("poll", "epoll_lt", "epoll_et", "poll_late", "epoll_lt_late"):
    cases.append(Case("poll_rdhup_" + mode, [host_exe("poll_rdhup"), "{port}", mode], "server",
                      rdhup_peer(0 if mode.endswith("_late") else 0.2), connections=1))
cases += [
    Case("select_echo", [host_exe("select_echo"), "{port}", "4"], "server", select_peer,
         connections=4),
    Case("hot_list", [host_exe("hot_list"), "{port}", "5"], "server", hot_list_peer,
         connections=305, timeout=40),
    Case("optional_banner", [host_exe("optional_banner"), "{port}", "5"], "server", banner_peer,
         shim_env={"SLI_MODE": "optional", "SLI_SNIFF_TIMEOUT_MS": "300"}, connections=5,
         plaintext_clients=True),
    Case("lt_fairness", [host_exe("lt_fairness"), "{port}"], "server", bulk_then_ping,
         connections=2),
]
for mode in ("epoll_et", "epoll_lt", "poll"):
    cases.append(Case("writer_" + mode, [host_exe("writer"), "{port}", mode], "server", slow_reader,
                      connections=1))
cases.append(Case("epoll_handshake_out", [host_exe("epoll_handshake_out"), "{port}", "3"],
                  "server", greeting_peer, connections=3))


def not_data_peer(role):
    """TLS: the handshake, then (server host) half of a record, 0.9 s, the rest; (client host) the
    server's session tickets, 0.9 s, the answer. Plain: 0.9 s of nothing, then the bytes."""
    def peer(ctx):
        p = ctx.connect() if role == "server" else ctx.accept()
        if role == "client":
            ctx.obs("request %r" % p.recv_exact(7))
        msg = b"the data after a pause"
        if ctx.tls and role == "server":
            p.obj.write(msg)
            rec = p.out.read()
            p.sock.sendall(rec[:len(rec) // 2])
            time.sleep(0.9)
            p.sock.sendall(rec[len(rec) // 2:])
        else:
            time.sleep(0.9)
            p.send(msg)
        ctx.obs("host answers %r" % p.recv_exact(2))
        rest, how = p.recv_all()
        ctx.obs("then %r, end %s" % (rest, how))
    return peer


def tickets_sent(plain, tls):
    """not_data_client proves something only if session tickets did reach the host first."""
    import wire
    rep = wire.check_tls(tls.conns[0], tls.keylog)
    n = sum(1 for t in rep.trace["s2c"] if t.epoch >= 1 and t.inner_type == 22)
    assert n >= 1, "no session ticket reached the host: the case proves nothing"


cases += [Case("not_data_" + role, [host_exe("not_data"), "{port}", role], role, not_data_peer(role),
               connections=1, check=tickets_sent if role == "client" else None)
          for role in ("server", "client")]

run_cases(cases)
