#!/usr/bin/python3
"""`sli serve` under systemd, without libsystemd: the listening socket systemd hands over
(LISTEN_FDS, fd 3 — here from `systemd-socket-activate`, systemd's own tool, and from a parent
doing what systemd does) replaces --listen and serves TLS; READY=1 goes to NOTIFY_SOCKET once it
serves and STOPPING=1 when SIGTERM starts the drain (Type=notify)."""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

from harness import CA, SLI, Checks, Dir, Proc, expect, free_port

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")
checks = Checks()


def echo(port, data=b"hello"):
    ctx = ssl.create_default_context(cafile=ca.path)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            t.sendall(data)
            return t.recv(len(data))


@checks.case
def systemd_socket_activate():
    port = free_port()
    p = Proc(["systemd-socket-activate", "-l", "127.0.0.1:%d" % port, SLI, "serve", "--echo",
              "--cert", CERT, "--key", KEY], d, "activate")
    try:
        t0 = time.time()
        got = None
        while time.time() - t0 < 10 and got is None:
            try:
                got = echo(port)  # the first connection starts sli, which takes it from the backlog
            except (OSError, ssl.SSLError):
                time.sleep(0.1)
        expect(got == b"hello", "served through systemd's socket: %r" % got)
        p.wait_for(r"listening on 127\.0\.0\.1:%d \(from systemd\)" % port)
    finally:
        p.stop()


@checks.case
def handed_socket_and_readiness():
    notify_path = d("notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(10)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    port = lsock.getsockname()[1]
    lfd = lsock.fileno()

    def at_fd3():  # in the child, as systemd does: the socket at fd 3
        os.dup2(lfd, 3)

    env = dict(os.environ, LISTEN_FDS="1", NOTIFY_SOCKET=notify_path)
    out = open(d("handed.out"), "wb")
    # LISTEN_PID is the pid of the process that takes the socket: sh's, which exec keeps
    p = subprocess.Popen(["/bin/sh", "-c", 'LISTEN_PID=$$ exec "$0" "$@"', SLI, "serve", "--echo",
                          "--cert", CERT, "--key", KEY], env=env, preexec_fn=at_fd3,
                         pass_fds=(3,), stdout=out, stderr=out)  # 3: kept after at_fd3 put it there
    try:
        expect(notify.recv(64) == b"READY=1", "READY=1 once serving")
        expect(echo(port) == b"hello", "served on the handed socket")
        p.send_signal(signal.SIGTERM)
        expect(notify.recv(64) == b"STOPPING=1", "STOPPING=1 when the drain starts")
        expect(p.wait(10) == 0, "exit 0")
    finally:
        if p.poll() is None:
            p.kill()
        out.close()
        notify.close()
        lsock.close()


sys.exit(checks.finish(d))
