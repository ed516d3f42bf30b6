#!/usr/bin/python3
"""Differential host tests (difftest.py) of the ways a client connection to a TLS target starts.

Every host is a client (the peer script is the server: ctx.accept()); in the tls run the target is
127.0.0.1:{port} (or a name), and a single plaintext byte to it is the failure the wire oracle
reports. Issue 9, item 1 (fail closed on every way a connection starts) and item 17 (a refused
non-blocking connect must look refused).

Cases (host program in hosts/connect/, mode after the program's name):
  v4mapped_{block,nonblock}
      an AF_INET6 socket connecting to ::ffff:127.0.0.1 (target configured as 127.0.0.1)
  connect_eintr_{poll,again_nb,again_block,write,giveup,restart,sndtimeo}
      a blocking connect interrupted by SIGALRM (-1 EINTR) while the kernel goes on connecting
      (the peer fills the accept queue); then poll / connect again (EALREADY, 0, EISCONN) / a
      blocking connect again / a write at once / a new socket; SA_RESTART; SO_SNDTIMEO
  fastopen_{sendto_block,sendto_nb,sendmsg,sendmsg_nb,sendto_v6mapped,sendto_again,
            fastopen_connect}
      MSG_FASTOPEN sends with an address and no connect() (a second one on the connected socket:
      -1 EISCONN), TCP_FASTOPEN_CONNECT then connect()
  multi_addr_{block,nonblock}
      a target given by name (nss_wrapper: 127.0.0.2, refused, then 127.0.0.1): the getaddrinfo
      loop falls back to the next address, which must be TLS
  multi_addr_{changed,gethostbyname_changed}
      the name gains 127.0.0.1 after the shim started (a DNS update): the host's own lookup
      (getaddrinfo / gethostbyname) must count
  multi_addr_python
      python's socket.create_connection("multi.test", port), blocking and with a timeout
  nb_connect_refused_{poll,epoll,read,write,blocking,retry,retry_blocking}
      a connect to a closed TLS target port: EINPROGRESS, POLLOUT|POLLERR|POLLHUP, SO_ERROR =
      ECONNREFUSED (once), read/send report the error; then the open port, from a new socket or
      from the same one (which must not keep the closed target's identity)
  nb_connect_refused_python
      python's create_connection over [closed port, open port] moves on to the open one
  nb_connect_slow
      a non-blocking connect still in progress: write/read EAGAIN, SO_ERROR 0, getpeername
      ENOTCONN, connect EALREADY, no POLLOUT yet; then POLLOUT, connect 0 then EISCONN
  banner_{block,poll,epoll,select}
      server speaks first: after a (non-blocking) connect the client waits for POLLIN only
  udp_to_target
      UDP sockets connected to the target's address and port stay datagram sockets
  nb_connect_ok_{poll,epoll}, nb_connect_ok_late_{poll,epoll}
      a non-blocking connect to the target: EINPROGRESS, POLLOUT alone, SO_ERROR 0, the request
      written at once (late: before the server answered the ClientHello), then a blocking read
"""
import atexit
import os
import shutil
import socket
import tempfile
import time

from difftest import SHIM, Case, Peer, host_exe, run_cases  # noqa: I001 (shimlib sets sys.path)
from shimlib import SANITIZER_LIBS, free_port

PY = "/usr/bin/python3"
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"

# A hosts file for nss_wrapper: multi.test is 127.0.0.2 (nothing listens there: refused) then
# 127.0.0.1 (the recorder).
_tmp = tempfile.mkdtemp(prefix="sli-connect-")
atexit.register(shutil.rmtree, _tmp, True)
HOSTS_FILE = os.path.join(_tmp, "hosts")
with open(HOSTS_FILE, "w") as f:
    f.write("127.0.0.2 multi.test\n127.0.0.1 multi.test\n")
# One whose name has only 127.0.0.2 when the host starts (the host adds 127.0.0.1: a DNS update).
HOSTS_CHANGING = os.path.join(_tmp, "hosts-changing")


def _reset_changing():
    with open(HOSTS_CHANGING, "w") as f:
        f.write("127.0.0.2 multi.test\n")


_reset_changing()

# A TLS target port nothing listens on (picked once: free now, and nobody here binds it).
CLOSED = free_port()


# ---- peer scripts ----

def _read_request(p):
    req = b""
    while b"\n" not in req:
        chunk = p.recv(256)
        if not chunk:
            break
        req += chunk
    return req


def serve_one(ctx, late=0.0, banner=None):
    """Accepts the host's connection, reads one line, answers it, ends its direction cleanly.
    With `banner`, the peer speaks first (SMTP, FTP). With `late`, it says nothing (no
    ServerHello) for that long after the TCP accept, and sends no session ticket (as servers with
    tickets off): nothing arrives after its Finished until it has the request."""
    if late:
        ctx.listener.settimeout(10)
        s, _ = ctx.listener.accept()
        time.sleep(late)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sctx = None
        if ctx.tls:
            sctx = ctx.server_ctx()
            sctx.num_tickets = 0
        p = Peer(s, sctx, server_side=True, timeout=6)
        ctx.peers.append(p)
    else:
        p = ctx.accept()
    if banner:
        p.send(banner)
    req = _read_request(p)
    ctx.obs("request %r" % req)
    p.send(b"reply to " + req)
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("after the reply: %r, end %s" % (rest, how))


def serve_banner(ctx):
    serve_one(ctx, banner=b"220 hello\n")


def serve_late(ctx):
    serve_one(ctx, late=0.3)


def slow_accept(sync):
    """serve_one behind a full accept queue: the host's SYN is dropped until ~0.5 s after `sync`
    (a file in the run's folder) is created; the kernel retransmits it after 1 s."""
    def peer(ctx):
        rec = ctx.recorder
        rec.pause_accept()
        # The recorder listens with backlog 64; 0 makes one queued connection fill it. (A harness
        # option for the recorder's backlog would spare reaching into it.)
        rec._listener.listen(0)
        raw = socket.create_connection(("127.0.0.1", rec.port), timeout=5)  # fills the queue
        path = os.path.join(os.path.dirname(ctx.keylog), sync)
        open(path, "w").close()
        time.sleep(0.5)
        raw.close()
        rec.resume_accept()
        # The silent connection is relayed first; it never reaches serve_one's accept().
        ctx.listener.settimeout(5)
        s, _ = ctx.listener.accept()
        s.close()
        try:
            os.unlink(path)  # the host removes it; never leave it for the next run
        except FileNotFoundError:
            pass
        serve_one(ctx)
    return peer


# ---- python hosts ----

PY_MULTI = r"""
import socket, sys
port = int(sys.argv[1])
for timeout in (None, 5):
    s = socket.create_connection(("multi.test", port), timeout=timeout)
    print("create_connection (timeout %s): connected to %s" % (timeout, s.getpeername()[0]),
          flush=True)
    s.sendall(b"GET python %s\n" % str(timeout).encode())
    s.settimeout(5)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print("reply %r" % data, flush=True)
    s.close()
"""

PY_REFUSED = r"""
import socket, sys
port, closed = int(sys.argv[1]), int(sys.argv[2])
s = None
for name, p in (("closed", closed), ("open", port)):
    try:
        s = socket.create_connection(("127.0.0.1", p), timeout=5)
    except OSError as e:
        print("%s port: %s" % (name, type(e).__name__), flush=True)
        continue
    print("%s port: connected" % name, flush=True)
    break
if s is None:
    sys.exit(1)
try:
    s.sendall(b"GET python\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    print("reply %r" % data, flush=True)
except OSError as e:
    print("exchange: %s" % type(e).__name__, flush=True)
s.close()
"""


# ---- cases ----

# (a sanitizer build's runtime must come first in any LD_PRELOAD of its own host programs; python
# is not one of them)
def _multi_env(hosts=None, ours=True):
    return {"LD_PRELOAD": " ".join((SANITIZER_LIBS if ours else []) + [NSS_WRAPPER]),
            "NSS_WRAPPER_HOSTS": hosts or HOSTS_FILE}


def _multi_shim_env():
    # The shim first, nss_wrapper after it: the shim's getaddrinfo sees the host's lookups, and
    # its own lookup of the target name (at start) goes to nss_wrapper's.
    return {"LD_PRELOAD": " ".join(SANITIZER_LIBS + [SHIM, NSS_WRAPPER]),
            "SLI_CLIENT_TARGETS": "multi.test:{port}=localhost"}


# Both ports are targets; the closed one under another server name (the peer's certificate is for
# localhost only): a connection that kept the closed target's identity fails verification.
TWO_TARGETS = {"SLI_CLIENT_TARGETS":
               "127.0.0.1:{port}=localhost,127.0.0.1:%d=other.invalid" % CLOSED}

cases = []
for mode in ("block", "nonblock"):
    cases.append(Case("v4mapped_" + mode, [host_exe("v4mapped"), "{port}", mode], "client",
                      serve_one, connections=1))
for mode in ("poll", "again_nb", "again_block", "write", "giveup", "restart", "sndtimeo"):
    sync = "eintr-go-" + mode
    cases.append(Case("connect_eintr_" + mode,
                      [host_exe("connect_eintr"), "{port}", mode, "{dir}/" + sync], "client",
                      slow_accept(sync), connections=2))
for mode in ("sendto_block", "sendto_nb", "sendmsg", "sendmsg_nb", "sendto_v6mapped",
             "sendto_again", "fastopen_connect"):
    cases.append(Case("fastopen_" + mode, [host_exe("fastopen"), "{port}", mode], "client",
                      serve_one, connections=1))
for mode in ("block", "nonblock"):
    cases.append(Case("multi_addr_" + mode, [host_exe("multi_addr"), "multi.test", "{port}", mode],
                      "client", serve_one, env=_multi_env(), shim_env=_multi_shim_env(),
                      connections=1))


def serve_then_reset(ctx):
    serve_one(ctx)
    _reset_changing()  # the host has rewritten it by now; the next run starts as this one did


for mode in ("changed", "gethostbyname_changed"):
    cases.append(Case("multi_addr_" + mode,
                      [host_exe("multi_addr"), "multi.test", "{port}", mode, HOSTS_CHANGING],
                      "client", serve_then_reset,
                      env=_multi_env(HOSTS_CHANGING),
                      shim_env=_multi_shim_env(), connections=1))


def serve_two(ctx):
    serve_one(ctx)
    serve_one(ctx)


cases.append(Case("multi_addr_python", [PY, "-c", PY_MULTI, "{port}"], "client", serve_two,
                  env=_multi_env(ours=False), shim_env=_multi_shim_env(), connections=2))
for mode in ("poll", "epoll", "read", "write", "blocking", "retry", "retry_blocking"):
    cases.append(Case("nb_connect_refused_" + mode,
                      [host_exe("nb_connect_refused"), "{port}", str(CLOSED), mode], "client",
                      serve_one, shim_env=TWO_TARGETS, connections=1))
cases.append(Case("nb_connect_refused_python", [PY, "-c", PY_REFUSED, "{port}", str(CLOSED)],
                  "client", serve_one, shim_env=TWO_TARGETS, connections=1))
cases.append(Case("nb_connect_slow", [host_exe("nb_connect_slow"), "{port}", "{dir}/slow-go"],
                  "client", slow_accept("slow-go"), connections=2))
for mode in ("block", "poll", "epoll", "select"):
    cases.append(Case("banner_" + mode, [host_exe("banner"), "{port}", mode], "client",
                      serve_banner, connections=1))
cases.append(Case("udp_to_target", [host_exe("udp_to_target"), "{port}"], "client", serve_one,
                  connections=1))
for mode in ("poll", "epoll"):
    cases.append(Case("nb_connect_ok_" + mode, [host_exe("nb_connect_ok"), "{port}", mode],
                      "client", serve_one, connections=1))
    # The request is written while the server has not answered the ClientHello yet.
    cases.append(Case("nb_connect_ok_late_" + mode, [host_exe("nb_connect_ok"), "{port}", mode],
                      "client", serve_late, connections=1))

run_cases(cases)
