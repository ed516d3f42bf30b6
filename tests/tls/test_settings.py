#!/usr/bin/python3
"""Every setting of SLI_SETTING_MAP (api/sli.h, the one list) has the same effect through its three
doors: the C API (sli_config_set_option, in settings_probe.c), the CLI's flag (`sli serve`,
`sli connect`) and the shim's variable (plain_echo.py with libsli-preload.so). The test walks the
table: every row must have a probe here. A probe runs with the setting and without it and observes,
from a client, what changed; the three doors must observe the same thing, and something different
from the run without the setting (but SLI_DHPARAMS, ignored by design, which must change nothing).
A malformed value is refused by every door."""
import os
import re
import socket
import ssl
import subprocess
import sys
import time

from harness import BUILD, CA, SLI, Checks, Dir, Proc, expect, free_port, run, write
from shimlib import shim_env

PROBE = os.path.join(BUILD, "tests", "tls", "settings_probe")
ECHO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plain_echo.py")
DOORS = ("api", "cli", "shim")

d = Dir()
ca = CA(d)
CERT, KEY = ca.issue("localhost")
CLIENT_CERT, CLIENT_KEY = ca.issue("client", client=True)
REVOKED_CERT, REVOKED_KEY = ca.issue("revoked", client=True)
CRL = ca.crl([ca.last])
PASSWORD = "correct horse"
write(d("password"), PASSWORD + "\n")
ENC_KEY = d("localhost-enc.key")
subprocess.run(["openssl", "pkey", "-in", KEY, "-out", ENC_KEY, "-aes256", "-passout",
                "pass:" + PASSWORD], check=True)
TICKETS = d("tickets")
subprocess.run([SLI, "tickets", "rotate", TICKETS], check=True, stdout=subprocess.DEVNULL)
IDENTITY = [("SLI_CERT", CERT), ("SLI_KEY", KEY)]

# the table, from the library's own expansion of SLI_SETTING_MAP: NAME -> (FLAG, VALUE)
ROWS = {}
for line in subprocess.run([PROBE, "list"], capture_output=True, text=True, check=True).stdout.split("\n"):
    if line:
        name, flag, value = line.split(" ")
        ROWS[name] = (flag, value)


# ---- the doors: a server made with some settings, a client made with some settings ----

class Server:
    def __init__(self, door, settings, name):
        self.proc, self.port = None, None
        if door == "api":
            args = [PROBE, "serve"] + ["%s=%s" % kv for kv in settings]
            self.proc = Proc(args, d, name)
        elif door == "cli":
            self.proc = Proc([SLI, "serve", "--listen", "127.0.0.1:0", "--echo"] + cli_args(settings),
                             d, name)
        else:
            port = free_port()
            self.proc = Proc(["/usr/bin/python3", ECHO, "serve", str(port)], d, name,
                             env=shim_env(SLI_SERVER_PORTS=port, **dict(settings)))
        try:
            self.port = int(self.proc.wait_for(r"listening on 127\.0\.0\.1:(\d+)").group(1))
        except AssertionError:
            self.proc.stop()  # refused its settings (and said so)

    def stop(self):
        self.proc.stop()


def cli_args(settings):
    args = []
    for name, value in settings:
        flag, kind = ROWS[name]
        if kind == "-":
            if value == "1":
                args.append(flag)
        else:
            args += [flag, value]
    return args


def client_door(door, port, settings):
    """A client through `door` to 127.0.0.1:port (name localhost): "got ping" or "failed"."""
    if door == "api":
        rc, out, _ = run([PROBE, "connect", str(port)] + ["%s=%s" % kv for kv in settings])
    elif door == "cli":
        rc, out, _ = run([SLI, "connect", "127.0.0.1:%d" % port, "--servername", "localhost",
                          "--linger", "300"] + cli_args(settings), input=b"ping\n")
        out = "got " + out if rc == 0 else out
    else:
        env = shim_env(SLI_CLIENT_TARGETS="127.0.0.1:%d=localhost" % port, **dict(settings))
        rc, out, _ = run(["/usr/bin/python3", ECHO, "connect", str(port)], env=env)
    return "got ping" if rc == 0 and out.strip() == "got ping" else "failed"


# ---- what a client sees of a server ----

def hello(port, version=None, ciphers=None, alpn=None, cert=None, session=None, ctx=None):
    """A python ssl client verifying against the test CA: what it negotiated, or "refused"; and
    its session (resumed with the same `ctx`)."""
    ctx = ctx or client_ctx(version, ciphers, alpn, cert)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost", session=session) as t:
                t.sendall(b"ping\n")
                if t.recv(64) != b"ping\n":
                    return "no echo", None
                cn = t.getpeercert()["subject"][-1][0][1]
                seen = "ok %s %s alpn=%s cn=%s resumed=%s" % (
                    t.version(), t.cipher()[0], t.selected_alpn_protocol(), cn, t.session_reused)
                return seen, t.session
    except (ssl.SSLError, OSError):  # an alert, or the reset that may overtake it: refused
        return "refused", None


def client_ctx(version=None, ciphers=None, alpn=None, cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca.path)
    if version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def served(door, settings, name, *clients):
    """Starts a server through `door`; runs each client function on its port."""
    srv = Server(door, settings, name)
    if not srv.port:
        return "server refused its settings"
    try:
        return " | ".join(c(srv.port) for c in clients)
    finally:
        srv.stop()


def plain(port):
    return hello(port)[0]


# ---- one probe per row: (settings with it, settings without it) -> what a client sees ----

PROBES = {}


def probe(*names):
    def register(fn):
        for n in names:
            PROBES[n] = fn
        return fn
    return register


@probe("SLI_CERT", "SLI_KEY")
def p_identity(door, on, tag):
    return served(door, IDENTITY if on else [], tag, plain)


@probe("SLI_KEY_PASSWORD_FILE", "SLI_PASSWORD_FILE")
def p_password(door, on, tag, name=None):
    pw = [(name, d("password"))] if on else []
    return served(door, pw + [("SLI_CERT", CERT), ("SLI_KEY", ENC_KEY)], tag, plain)


@probe("SLI_CLIENT_CERT")
def p_client_cert(door, on, tag):
    s = IDENTITY + [("SLI_CA", ca.path)] + ([("SLI_CLIENT_CERT", "required")] if on else [])
    return served(door, s, tag, lambda p: hello(p, cert=(CLIENT_CERT, CLIENT_KEY))[0], plain)


@probe("SLI_CRL")
def p_crl(door, on, tag):
    s = IDENTITY + [("SLI_CA", ca.path), ("SLI_CLIENT_CERT", "required")]
    s += [("SLI_CRL", CRL)] if on else []
    return served(door, s, tag, lambda p: hello(p, cert=(REVOKED_CERT, REVOKED_KEY))[0],
                  lambda p: hello(p, cert=(CLIENT_CERT, CLIENT_KEY))[0])


@probe("SLI_POLICY")
def p_policy(door, on, tag):
    return served(door, IDENTITY + ([("SLI_POLICY", "modern")] if on else []), tag,
                  lambda p: hello(p, version="1.2")[0])


@probe("SLI_CIPHERS")
def p_ciphers(door, on, tag):
    s = IDENTITY + ([("SLI_CIPHERS", "ECDHE-ECDSA-CHACHA20-POLY1305")] if on else [])
    return served(door, s, tag, lambda p: hello(p, version="1.2")[0],
                  lambda p: hello(p, version="1.2", ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")[0])


@probe("SLI_MIN_VERSION")
def p_min(door, on, tag):
    return served(door, IDENTITY + ([("SLI_MIN_VERSION", "1.3")] if on else []), tag,
                  lambda p: hello(p, version="1.2")[0])


@probe("SLI_MAX_VERSION")
def p_max(door, on, tag):
    return served(door, IDENTITY + ([("SLI_MAX_VERSION", "1.2")] if on else []), tag, plain)


@probe("SLI_ALPN")
def p_alpn(door, on, tag):
    return served(door, IDENTITY + ([("SLI_ALPN", "h2,http/1.1")] if on else []), tag,
                  lambda p: hello(p, alpn=["http/1.1", "h2"])[0])


def resumes(first_port, second_port):
    ctx = client_ctx()
    seen, session = hello(first_port, ctx=ctx)
    if session is None:
        return "first: " + seen
    return hello(second_port, session=session, ctx=ctx)[0]


@probe("SLI_SESSION_RESUMPTION")
def p_resumption(door, on, tag):
    s = IDENTITY + ([("SLI_SESSION_RESUMPTION", "0")] if on else [])
    return served(door, s, tag, lambda p: resumes(p, p))


@probe("SLI_TICKET_KEYS")
def p_tickets(door, on, tag):
    """A session from one server resumes on another process only when they share the key file."""
    s = IDENTITY + ([("SLI_TICKET_KEYS", TICKETS)] if on else [])
    a, b = Server(door, s, tag + "-a"), Server(door, s, tag + "-b")
    try:
        if not a.port or not b.port:
            return "server refused its settings"
        return resumes(a.port, b.port)
    finally:
        a.stop()
        b.stop()


def silent_client(port):
    """Connects and says nothing: is the connection closed by the server within 1.5 s?"""
    with socket.create_connection(("127.0.0.1", port), timeout=1.5) as s:
        try:
            return "closed" if s.recv(1) == b"" else "data"
        except socket.timeout:
            return "still open after 1.5 s"
        except OSError:
            return "closed"


@probe("SLI_HANDSHAKE_TIMEOUT")
def p_timeout(door, on, tag):
    return served(door, IDENTITY + ([("SLI_HANDSHAKE_TIMEOUT", "300")] if on else []), tag,
                  silent_client, plain)


@probe("SLI_DHPARAMS")
def p_dhparams(door, on, tag):
    return served(door, IDENTITY + ([("SLI_DHPARAMS", d("no-such-dhparams.pem"))] if on else []),
                  tag, plain)


@probe("SLI_CA")
def p_ca(door, on, tag):
    """A client: with the CA it trusts the server; without, the system's CAs do not."""
    srv = Server("api", IDENTITY, tag + "-server")
    try:
        return client_door(door, srv.port, [("SLI_CA", ca.path)] if on else [])
    finally:
        srv.stop()


@probe("SLI_INSECURE")
def p_insecure(door, on, tag):
    srv = Server("api", IDENTITY, tag + "-server")
    try:
        return client_door(door, srv.port, [("SLI_INSECURE", "1")] if on else [])
    finally:
        srv.stop()


def keylog_matches(logfile):
    """A python ssl client (OpenSSL) writing its own key log: does the server's key log hold the
    very secrets OpenSSL derived for the connection?"""
    def client(port):
        mine = logfile + ".client"
        ctx = client_ctx()
        ctx.keylog_filename = mine
        seen = hello(port, ctx=ctx)[0]
        if not seen.startswith("ok"):
            return seen
        theirs = set(open(logfile).read().split("\n")) - {""} if os.path.exists(logfile) else set()
        ours = set(open(mine).read().split("\n")) - {""}
        ours = {line for line in ours if not line.startswith("#")}
        if not theirs:
            return "no key log"
        mode = oct(os.stat(logfile).st_mode & 0o777)
        return "server key log holds the client's %d secrets: %s, mode %s" % (
            len(ours), ours <= theirs, mode)
    return client


@probe("SLI_INSECURE_KEYLOG")
def p_keylog(door, on, tag):
    logfile = d(tag + "-keys.log")
    return served(door, IDENTITY + ([("SLI_INSECURE_KEYLOG", logfile)] if on else []), tag,
                  keylog_matches(logfile))


# a malformed value for each row, which every door must refuse (server side)
BAD = {"FILE": d("no-such-file"), "none|optional|required": "sometimes",
       "default|modern|compat": "strongest", "1.2|1.3": "1.1", "0|1": "off", "MS": "soon",
       "LIST": ","}
NOT_REFUSED = {"SLI_DHPARAMS": "ignored by design", "SLI_INSECURE": "anything but 1 changes nothing"}
NO_EFFECT = {"SLI_DHPARAMS"}

checks = Checks()


@checks.case
def every_row_has_a_probe():
    expect(len(ROWS) >= 17, "the table has its rows (%d)" % len(ROWS))
    missing = sorted(set(ROWS) - set(PROBES))
    expect(not missing, "rows without a probe here: %s" % missing)


@checks.case
def every_row_is_documented():
    """The CLI's help, the README's shim variables and the man pages name every row (made from it
    or checked against it)."""
    rc, out, _ = run([SLI, "serve", "--help"])
    readme = open(os.path.join(os.path.dirname(ECHO), "..", "..", "README.md")).read()
    shim_table = readme.split("| variable | meaning |", 1)[1].split("\n\n", 1)[0]
    cli_section = readme.split("\nTLS flags", 1)[1].split("\n\n", 1)[0]
    for name, (flag, _) in ROWS.items():
        expect("%s " % flag in out and "(%s" % name in out, "sli serve --help lacks %s (%s)" % (flag, name))
        expect("`%s" % flag in cli_section, "the README's TLS flags lack %s" % flag)
        expect("`%s" % name in shim_table, "the README's shim variables lack %s" % name)
    man = os.path.join(os.path.dirname(ECHO), "..", "..", "man")
    for page in ("sli.1", "sli-preload.8", "sli_config.3"):
        text = open(os.path.join(man, page)).read()
        for name in ROWS:
            expect(name in text, "man page %s lacks %s" % (page, name))
    # the shim's own settings (its list in shim/config.c) in the README and sli-preload(8)
    src = open(os.path.join(os.path.dirname(ECHO), "..", "..", "shim", "config.c")).read()
    own = re.findall(r'"(SLI_\w+)"', src.split("shim_settings[] = {", 1)[1].split("};", 1)[0])
    page = open(os.path.join(man, "sli-preload.8")).read()
    expect(len(own) >= 6, "the shim's own settings were found (%s)" % own)
    for name in own:
        expect("`%s" % name in readme, "the README lacks the shim setting %s" % name)
        expect(name in page, "sli-preload(8) lacks the shim setting %s" % name)


def make_case(name):
    def case():
        fn = PROBES[name]
        kw = {"name": name} if fn is p_password else {}
        seen = {}
        for on in (True, False):
            for door in DOORS:
                seen[(door, on)] = fn(door, on, "%s-%s-%d" % (name, door, on), **kw)
        report = "; ".join("%s %s: %s" % (door, "with" if on else "without", seen[(door, on)])
                           for on in (True, False) for door in DOORS)
        for on in (True, False):
            expect(len({seen[(door, on)] for door in DOORS}) == 1,
                   "the doors differ %s the setting: %s" % ("with" if on else "without", report))
        if name in NO_EFFECT:
            expect(seen[("api", True)] == seen[("api", False)], "it changed something: " + report)
        else:
            expect(seen[("api", True)] != seen[("api", False)], "it changed nothing: " + report)
        print("     %s: with: %s / without: %s" % (name, seen[("api", True)], seen[("api", False)]))
    case.__name__ = "setting_" + name[4:].lower()
    return case


def make_bad_case(name):
    def case():
        flag, kind = ROWS[name]
        value = BAD["LIST"] if name == "SLI_ALPN" else BAD.get(kind)
        if name == "SLI_CIPHERS":
            value = "RC4-MD5"
        if name == "SLI_INSECURE_KEYLOG":  # an output file: one that cannot be created
            value = d("no-such-dir/keys.log")
        settings = [(name, value)] + ([] if name in ("SLI_CERT", "SLI_KEY") else IDENTITY)
        if name == "SLI_CERT":
            settings.append(("SLI_KEY", KEY))
        if name == "SLI_KEY":
            settings.insert(0, ("SLI_CERT", CERT))
        seen = {door: served(door, settings, "bad-%s-%s" % (name, door), plain) for door in DOORS}
        expect(set(seen.values()) == {"server refused its settings"},
               "%s=%r: %s" % (name, value, seen))
    case.__name__ = "malformed_" + name[4:].lower()
    return case


for _name in ROWS:
    if _name in PROBES:
        checks.case(make_case(_name))
    if _name not in NOT_REFUSED:
        checks.case(make_bad_case(_name))

sys.exit(checks.finish(d))
