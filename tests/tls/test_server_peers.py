#!/usr/bin/python3
"""Real clients nobody here wrote — openssl s_client, gnutls-cli, curl, python's ssl — against
`sli serve` on loopback: protocol versions, refused weak peers, mTLS, SNI, ALPN, resumption across
two server processes, reload with a live connection, truncation, handshake timeout."""
import http.server
import os
import select
import signal
import socket
import ssl
import subprocess
import threading
import time

from harness import (CA, SLI, Checks, Dir, Proc, expect, read, run, sli_serve, write)

d = Dir()
ca = CA(d)
cert, key = ca.issue("localhost")
ccert, ckey = ca.issue("client one", sans=("client.example",), client=True)
checks = Checks()
servers = []


def serve(name, *args):
    p, port = sli_serve(d, name, *args)
    servers.append(p)
    return p, port


def interact(args, send, want, timeout=10):
    """Starts a client, sends `send`, reads stdout until `want` appears; returns (out, err)."""
    p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    try:
        p.stdin.write(send)
        p.stdin.flush()
    except BrokenPipeError:  # the client already gave up (a refused handshake): read what it said
        pass
    out = b""
    deadline = time.time() + timeout
    while want not in out and time.time() < deadline and p.poll() is None:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
    try:
        os.killpg(p.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, err = p.communicate(timeout=5)
    return out.decode(errors="replace"), err.decode(errors="replace")


def s_client(port, *extra):
    return ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost",
            "-CAfile", ca.path, "-verify_return_error", "-brief"] + list(extra)


def py_client(port, send=b"ping", cafile=None, server_hostname="localhost", session=None, ctx=None,
              close=True):
    ctx = ctx or ssl.create_default_context(cafile=cafile or ca.path)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
    s.sendall(send)
    got = b""
    while len(got) < len(send):
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    if close:
        s.close()
    return s, got


echo, echo_port = serve("echo", "--cert", cert, "--key", key, "--echo")


@checks.case
def openssl_s_client_tls13():
    out, err = interact(s_client(echo_port, "-tls1_3"), b"hello sli\n", b"hello sli")
    expect("hello sli" in out, "no echo: " + out + err)
    expect("Protocol version: TLSv1.3" in err and "Verification: OK" in err, err)


@checks.case
def openssl_s_client_tls12_ecdhe_aead():
    out, err = interact(s_client(echo_port, "-tls1_2"), b"hello 12\n", b"hello 12")
    expect("hello 12" in out, "no echo: " + out + err)
    expect("Protocol version: TLSv1.2" in err, err)
    expect("Ciphersuite: ECDHE-" in err and ("GCM" in err or "CHACHA20" in err), err)


@checks.case
def gnutls_cli():
    out, err = interact(["gnutls-cli", "--x509cafile", ca.path, "-p", str(echo_port), "127.0.0.1"],
                        b"gnutls says hi\n", b"gnutls says hi")
    expect("gnutls says hi" in out, "no echo: " + out[-500:] + err[-500:])


@checks.case
def python_ssl_client():
    s, got = py_client(echo_port, b"python here")
    expect(got == b"python here", got)


@checks.case
def curl_through_backend_byte_exact():
    root = d("www")
    os.makedirs(root, exist_ok=True)
    blob = os.urandom(5 << 20)
    write(os.path.join(root, "big.bin"), blob, 0o644)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=root, **k)  # noqa
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *a: None
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        p, port = serve("proxy", "--cert", cert, "--key", key,
                        "--backend", "127.0.0.1:%d" % httpd.server_address[1])
        out = d("download.bin")
        rc, _, err = run(["curl", "-sS", "--fail", "--cacert", ca.path, "--resolve",
                          "localhost:%d:127.0.0.1" % port, "-o", out,
                          "https://localhost:%d/big.bin" % port])
        expect(rc == 0, "curl failed: %s" % err)
        expect(read(out) == blob, "downloaded bytes differ")
    finally:
        httpd.shutdown()


@checks.case
def tls10_and_tls11_clients_refused():
    for flag in ("-tls1", "-tls1_1"):
        out, err = interact(s_client(echo_port, flag, "-cipher", "DEFAULT@SECLEVEL=0"), b"x\n", b"x")
        expect("Protocol version" not in err, "%s handshake succeeded: %s" % (flag, err))
    echo.wait_for(r"SLI_E_VERSION", where="log")


@checks.case
def weak_suites_refused():
    for suite in ("DES-CBC3-SHA", "NULL-SHA256", "RC4-SHA", "AES128-SHA256"):
        out, err = interact(s_client(echo_port, "-tls1_2", "-cipher", suite + "@SECLEVEL=0"), b"x\n",
                            b"x")
        expect("Protocol version" not in err, "%s negotiated: %s" % (suite, err))
    echo.wait_for(r"SLI_E_NO_SHARED_CIPHER", where="log")


@checks.case
def mtls_required():
    p, port = serve("mtls-req", "--cert", cert, "--key", key, "--ca", ca.path,
                    "--client-cert", "required", "--echo")
    out, err = interact(s_client(port, "-cert", ccert, "-key", ckey), b"with cert\n", b"with cert")
    expect("with cert" in out, "client with a certificate refused: " + err)
    out, err = interact(s_client(port), b"no cert\n", b"no cert")
    expect("no cert" not in out, "client without a certificate was served")
    p.wait_for(r"SLI_E_NO_PEER_CERT", where="log")
    other = CA(d, "Other CA")
    oc, ok = other.issue("stranger", client=True)
    out, err = interact(s_client(port, "-cert", oc, "-key", ok), b"stranger\n", b"stranger")
    expect("stranger" not in out, "client with an untrusted certificate was served")
    p.wait_for(r"SLI_E_UNTRUSTED", where="log")


@checks.case
def mtls_optional():
    p, port = serve("mtls-opt", "--cert", cert, "--key", key, "--ca", ca.path,
                    "--client-cert", "optional", "--echo")
    out, err = interact(s_client(port), b"anonymous\n", b"anonymous")
    expect("anonymous" in out, "client without a certificate refused in optional mode: " + err)
    out, err = interact(s_client(port, "-cert", ccert, "-key", ckey), b"named\n", b"named")
    expect("named" in out, "client with a certificate refused: " + err)


@checks.case
def sni_picks_identity():
    c2, k2 = ca.issue("db.example.com", sans=("db.example.com",))
    p, port = serve("sni", "--cert", cert, "--key", key, "--cert", c2, "--key", k2, "--echo")
    ctx = ssl.create_default_context(cafile=ca.path)
    for name, cn in (("db.example.com", "db.example.com"), ("localhost", "localhost")):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname=name)
        subject = dict(x[0] for x in s.getpeercert()["subject"])
        s.close()
        expect(subject["commonName"] == cn, "SNI %s got %s" % (name, subject))


@checks.case
def alpn_negotiated():
    p, port = serve("alpn", "--cert", cert, "--key", key, "--alpn", "h2,http/1.1", "--echo")
    args = [a for a in s_client(port, "-alpn", "foo,http/1.1") if a != "-brief"]
    out, err = interact(args, b"alpn\n", b"\nalpn")
    expect("ALPN protocol: http/1.1" in out, out)
    ctx = ssl.create_default_context(cafile=ca.path)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    s, _ = py_client(port, b"a", ctx=ctx, close=False)
    expect(s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol())
    s.close()


@checks.case
def resumption_across_processes_with_shared_ticket_keys():
    keys = d("tickets.keys")
    rc, out, err = run([SLI, "tickets", "rotate", keys])
    expect(rc == 0, err)
    expect(os.stat(keys).st_mode & 0o777 == 0o600, "ticket key file is not 0600")
    a, pa = serve("tick-a", "--cert", cert, "--key", key, "--ticket-keys", keys, "--echo")
    b, pb = serve("tick-b", "--cert", cert, "--key", key, "--ticket-keys", keys, "--echo")
    other_keys = d("other.keys")
    run([SLI, "tickets", "rotate", other_keys])
    c, pc = serve("tick-c", "--cert", cert, "--key", key, "--ticket-keys", other_keys, "--echo")
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = ssl.create_default_context(cafile=ca.path)
        ctx.maximum_version = version
        s, _ = py_client(pa, b"first", ctx=ctx, close=False)
        sess = s.session
        s.close()
        s2, got = py_client(pb, b"second", ctx=ctx, session=sess, close=False)
        expect(got == b"second" and s2.session_reused, "%s: not resumed on the second server" % version)
        s2.close()
        s3, _ = py_client(pc, b"third", ctx=ctx, session=sess, close=False)
        expect(not s3.session_reused, "%s: resumed with foreign ticket keys" % version)
        s3.close()


@checks.case
def reload_keeps_live_connections():
    c1, k1 = ca.issue("reload one", sans=("localhost",))
    live_c, live_k = d("live.crt"), d("live.key")
    write(live_c, read(c1))
    write(live_k, read(k1))
    p, port = serve("reload", "--cert", live_c, "--key", live_k, "--echo")
    ctx = ssl.create_default_context(cafile=ca.path)
    s1, got = py_client(port, b"before", ctx=ctx, close=False)
    expect(dict(x[0] for x in s1.getpeercert()["subject"])["commonName"] == "reload one", "first cert")
    c2, k2 = ca.issue("reload two", sans=("localhost",))
    write(live_c, read(c2))
    write(live_k, read(k2))
    os.kill(p.p.pid, signal.SIGHUP)
    p.wait_for(r"configuration reloaded", where="log")
    s2, _ = py_client(port, b"after", ctx=ctx, close=False)
    expect(dict(x[0] for x in s2.getpeercert()["subject"])["commonName"] == "reload two",
           "new connection did not get the new certificate")
    s1.sendall(b"still here")
    expect(s1.recv(100) == b"still here", "live connection broken by the reload")
    s1.close()
    s2.close()
    # A broken file keeps the previous identity and says why.
    write(live_k, b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    os.kill(p.p.pid, signal.SIGHUP)
    p.wait_for(r"SLI_E_PEM_TRUNCATED: key file [^\n]* is truncated: its 'PRIVATE KEY' block[^\n]*\n"
               r"sli serve: reload \([^)]*\) failed", where="log")
    s3, got = py_client(port, b"kept", ctx=ctx)
    expect(got == b"kept", "server stopped serving after a failed reload")


@checks.case
def rotated_files_reloaded_without_a_signal():
    """certbot's way: new files renamed over the old ones, no signal: new connections get them
    within a second, one made before goes on; a broken set keeps the last good one, said."""
    c1, k1 = ca.issue("rotate one", sans=("localhost",))
    c2, k2 = ca.issue("rotate two", sans=("localhost",))
    live_c, live_k = d("rot.crt"), d("rot.key")
    write(live_c, read(c1))
    write(live_k, read(k1))
    p, port = serve("rotate", "--cert", live_c, "--key", live_k, "--echo")
    ctx = ssl.create_default_context(cafile=ca.path)
    cn = lambda s: dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
    s1, _ = py_client(port, b"before", ctx=ctx, close=False)
    expect(cn(s1) == "rotate one", "first certificate")
    for src, dst in ((k2, live_k), (c2, live_c)):
        write(dst + ".new", read(src))
        os.rename(dst + ".new", dst)
    t0, seen = time.time(), None
    while time.time() - t0 < 3:
        s, _ = py_client(port, b"x", ctx=ctx, close=False)
        seen = cn(s)
        s.close()
        if seen == "rotate two":
            break
        time.sleep(0.1)
    expect(seen == "rotate two", "a new connection got %r %.1f s after the rename" % (seen, time.time() - t0))
    p.wait_for(r"configuration reloaded \(the certificate files changed\)", where="log")
    s1.sendall(b"still here")
    expect(s1.recv(100) == b"still here", "the connection made before goes on")
    s1.close()
    write(live_k, b"-----BEGIN PRIVATE KEY-----\nAAAA\n")  # broken: the last good set stays
    p.wait_for(r"reload \(the certificate files changed\) failed", where="log")
    s, _ = py_client(port, b"x", ctx=ctx, close=False)
    expect(cn(s) == "rotate two", "the last good certificate stays")
    s.close()


@checks.case
def truncation_and_clean_close_are_distinguished():
    p, port = serve("trunc", "--cert", cert, "--key", key, "--echo")
    ctx = ssl.create_default_context(cafile=ca.path)
    s, _ = py_client(port, b"bye", ctx=ctx, close=False)
    s.unwrap().close()  # close_notify
    p.wait_for(r":\d+: closed\n", where="log")
    s, _ = py_client(port, b"cut", ctx=ctx, close=False)
    s.close()  # no close_notify
    p.wait_for(r"closed without close_notify \(truncated\)", where="log")


@checks.case
def handshake_timeout_and_plaintext_peer():
    p, port = serve("timeout", "--cert", cert, "--key", key, "--handshake-timeout", "400", "--echo")
    idle = socket.create_connection(("127.0.0.1", port))
    p.wait_for(r"SLI_E_TIMEOUT", where="log", timeout=5)
    idle.close()
    plain = socket.create_connection(("127.0.0.1", port))
    plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
    p.wait_for(r"SLI_E_NOT_TLS", where="log", timeout=5)
    plain.close()


@checks.case
def tls12_suite_chosen_in_the_servers_order():
    """A client that lists ChaCha20 before AES-128-GCM gets AES-128-GCM, the policy's first (the
    server's order: a scanner rates the client's order as a weakness); and each suite alone works."""
    out, err = interact(s_client(echo_port, "-tls1_2", "-cipher",
                                 "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256"),
                        b"order\n", b"order")
    expect("Ciphersuite: ECDHE-ECDSA-AES128-GCM-SHA256" in err, "not the server's order: " + err)
    out, err = interact(s_client(echo_port, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"),
                        b"alone\n", b"alone")
    expect("Ciphersuite: ECDHE-ECDSA-CHACHA20-POLY1305" in err, err)


@checks.case
def handshake_failures_name_their_cause():
    """The server's log names why a handshake failed: no key-exchange group in common (a client
    offering only FFDHE) is not "no cipher suite in common" (a TLS 1.2 client offering only CBC)."""
    p, port = serve("causes", "--cert", cert, "--key", key, "--echo")
    run(s_client(port, "-tls1_3", "-groups", "ffdhe2048"), input=b"x", timeout=10)
    run(s_client(port, "-tls1_2", "-cipher", "AES128-SHA256"), input=b"x", timeout=10)
    deadline = time.time() + 5
    while time.time() < deadline and p.stderr().count("SLI_E_NO_SHARED_CIPHER") < 2:
        time.sleep(0.05)
    log = p.stderr()
    expect("no key-exchange group in common" in log, "group cause not named: " + log[-600:])
    expect("no cipher suite in common" in log, "suite cause not named: " + log[-600:])
    # a handshake record whose version is not TLS 1.x (SSL 2.0's 0x0200): not "versions we refuse"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"\x16\x02\x00\x00\x05hello")
        try:
            raw.recv(64)
        except OSError:
            pass
    deadline = time.time() + 5
    while time.time() < deadline and "a record carried a protocol version" not in p.stderr():
        time.sleep(0.05)
    log = p.stderr()
    expect("a record carried a protocol version other than the one negotiated" in log and
           "SLI_E_VERSION" in log, "record version cause not named: " + log[-600:])
    expect("offered only protocol versions we refuse" not in log, "the wrong cause named: " + log[-600:])


def close_notify_while_writing(port, rounds):
    """`rounds` clients each send 64 KiB, then close_notify and close at once, while the server is
    still writing its answer (an echo, or a backend's): its next writes meet a closed socket."""
    ctx = ssl.create_default_context(cafile=ca.path)
    for _ in range(rounds):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            t = ctx.wrap_socket(raw, server_hostname="localhost")
            t.sendall(b"x" * 65536)
            t.setblocking(False)
            try:
                t.unwrap()  # close_notify out; the server's is not awaited
            except (ssl.SSLError, OSError):
                pass


@checks.case
def client_gone_while_server_writes_does_not_kill_it():
    """A client that sends close_notify and closes while `sli serve` writes (SIGPIPE killed it
    with exit 141): 1000 such clients in --echo mode and 300 in --backend mode, then the server
    still serves."""
    echo = socket.socket()
    echo.bind(("127.0.0.1", 0))
    echo.listen(64)

    def backend():
        while True:
            try:
                c, _ = echo.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=c: [c.sendall(b) for b in iter(lambda: c.recv(65536), b"")],
                             daemon=True).start()
    threading.Thread(target=backend, daemon=True).start()
    try:
        for mode, args, rounds in (("echo", ["--echo"], 1000),
                                   ("backend", ["--backend", "127.0.0.1:%d" % echo.getsockname()[1]], 300)):
            p, port = serve("gone-" + mode, "--cert", cert, "--key", key, *args)
            close_notify_while_writing(port, rounds)
            expect(p.p.poll() is None, "%s: sli serve died (exit %s) after clients left while it wrote: %s"
                   % (mode, p.p.returncode, p.stderr()[-300:]))
            _, got = py_client(port, send=b"still here")
            expect(got == b"still here", "%s: the server no longer serves: %r" % (mode, got))
    finally:
        echo.close()


for s in servers:
    s.stop()
checks.finish(d)
