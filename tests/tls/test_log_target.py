#!/usr/bin/python3
"""SLI_LOG_TARGET: the CLI's and the shim's log lines go to stderr by default, or, one datagram
each, to a syslog socket (syslog:PATH here; /dev/log by default, which journald and rsyslog read)
with a priority of facility daemon and the line's severity — and then nothing of theirs reaches the
program's stderr. A socket nobody listens on costs the host nothing; a value that is not a target
is refused."""
import os
import re
import socket
import sys

from harness import CA, SLI, Checks, Dir, Proc, expect, run
from shimlib import shim_env

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")


class Syslog:
    """A syslog socket of our own: the datagrams sent to it."""

    def __init__(self, name):
        self.path = d(name + ".sock")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.s.settimeout(5)

    def lines(self, want, timeout=5):
        got = []
        self.s.settimeout(timeout)
        try:
            while len(got) < want:
                got.append(self.s.recv(4096).decode(errors="replace"))
        except socket.timeout:
            pass
        return got

    def close(self):
        self.s.close()


checks = Checks()


@checks.case
def cli_notices_to_syslog():
    log = Syslog("cli")
    try:
        p = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--echo", "--cert", CERT, "--key", KEY,
                  "--insecure-keylog", d("keys.log")], d, "cli",
                 env={"SLI_LOG_TARGET": "syslog:" + log.path})
        try:
            p.wait_for(r"listening on")
            lines = log.lines(1)
        finally:
            p.stop()
        expect(lines, "a datagram arrived")
        m = re.match(r"<(\d+)>sli\[(\d+)\]: warning: INSECURE", lines[0])
        expect(m, "a syslog line: %r" % lines[0])
        expect(m.group(1) == "28", "daemon.warning is priority 28: %r" % lines[0])
        expect(int(m.group(2)) == p.p.pid, "the process's pid")
        expect("INSECURE" not in p.stderr(), "nothing of it on stderr: " + p.stderr())
        # and without the variable, on stderr as before
        p = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--echo", "--cert", CERT, "--key", KEY,
                  "--insecure-keylog", d("keys2.log")], d, "cli-stderr")
        try:
            p.wait_for(r"listening on")
            p.wait_for(r"sli: warning: INSECURE", where="log")
        finally:
            p.stop()
    finally:
        log.close()


@checks.case
def cli_refuses_unknown_target():
    rc, out, err = run([SLI, "version"], env={"SLI_LOG_TARGET": "journal"})
    expect(rc == 2 and "SLI_LOG_TARGET" in err, "rc %d: %s" % (rc, err))


@checks.case
def shim_lines_to_syslog():
    log = Syslog("shim")
    try:
        # a setting the shim refuses: an error line, then the fail-closed report
        rc, out, err = run(["/usr/bin/python3", "-c", "print('host ran')"],
                           env=shim_env(SLI_SERVER_PORTS="4433", SLI_MODE="sometimes",
                                        SLI_LOG_TARGET="syslog:" + log.path))
        lines = log.lines(2)
        expect(rc == 0 and "host ran" in out, "the host ran: %d %r %r" % (rc, out, err))
        expect("sli-preload" not in err, "nothing of the shim on the host's stderr: " + err)
        expect(lines and re.match(r"<27>sli-preload\[\d+\]: error: SLI_MODE: 'sometimes'", lines[0]),
               "daemon.err with the reason: %r" % lines)
    finally:
        log.close()


@checks.case
def shim_without_listener_costs_nothing():
    rc, out, err = run(["/usr/bin/python3", "-c", "print('host ran')"],
                       env=shim_env(SLI_SERVER_PORTS="4433", SLI_MODE="sometimes",
                                    SLI_LOG_TARGET="syslog:" + d("nobody-listens.sock")))
    expect(rc == 0 and "host ran" in out and "sli-preload" not in err, "%d %r %r" % (rc, out, err))


@checks.case
def shim_refuses_unknown_target():
    rc, out, err = run(["/usr/bin/python3", "-c", "print('host ran')"],
                       env=shim_env(SLI_SERVER_PORTS="4433", SLI_LOG_TARGET="journal"))
    expect("SLI_LOG_TARGET: 'journal'" in err, "refused on stderr: %r" % err)


sys.exit(checks.finish(d))
