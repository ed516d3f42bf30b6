#!/usr/bin/python3
"""One process loads python3's ssl (OpenSSL) and libsli.so.1 (private BoringSSL) and completes a
handshake through each: OpenSSL client -> sli server, sli client (ctypes) -> OpenSSL server."""
import ctypes
import os
import socket
import ssl
import threading

from harness import CA, LIBSLI, Checks, Dir, expect, sli_serve

d = Dir()
ca = CA(d)
cert, key = ca.issue("localhost")
checks = Checks()

ssl.create_default_context()  # OpenSSL initialised first, as in a host that already uses it
lib = ctypes.CDLL(LIBSLI)
lib.sli_config_new.restype = ctypes.c_void_p
lib.sli_config_set_ca_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
lib.sli_ctx_new_client.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_uint32]
lib.sli_conn_new_fd.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p, ctypes.c_int,
                                ctypes.c_char_p, ctypes.c_uint32]
lib.sli_conn_handshake.argtypes = [ctypes.c_void_p]
lib.sli_conn_write.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.sli_conn_write.restype = ctypes.c_ssize_t
lib.sli_conn_read.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.sli_conn_read.restype = ctypes.c_ssize_t
lib.sli_conn_version.argtypes = [ctypes.c_void_p]
lib.sli_conn_version.restype = ctypes.c_char_p
lib.sli_conn_error.argtypes = [ctypes.c_void_p]
lib.sli_conn_error.restype = ctypes.c_char_p
lib.sli_conn_free.argtypes = [ctypes.c_void_p]


@checks.case
def openssl_client_to_sli_server_in_process():
    p, port = sli_serve(d, "echo", "--cert", cert, "--key", key, "--echo")
    ctx = ssl.create_default_context(cafile=ca.path)
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost") as s:
        s.sendall(b"openssl side")
        expect(s.recv(100) == b"openssl side", "no echo")
    p.stop()


@checks.case
def sli_client_to_openssl_server_in_process():
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    port = lsock.getsockname()[1]

    def server():
        conn, _ = lsock.accept()
        with sctx.wrap_socket(conn, server_side=True) as s:
            s.sendall(s.recv(100)[::-1])

    t = threading.Thread(target=server, daemon=True)
    t.start()
    cfg = lib.sli_config_new()
    expect(lib.sli_config_set_ca_file(cfg, ca.path.encode()) == 0, "CA not loaded")
    cctx = ctypes.c_void_p()
    expect(lib.sli_ctx_new_client(ctypes.byref(cctx), cfg, 0) == 0, "no client context")
    sock = socket.create_connection(("127.0.0.1", port))
    conn = ctypes.c_void_p()
    expect(lib.sli_conn_new_fd(ctypes.byref(conn), cctx, sock.fileno(), b"localhost", 0) == 0, "conn")
    rc = lib.sli_conn_handshake(conn)
    expect(rc == 0, "handshake: %d %s" % (rc, lib.sli_conn_error(conn)))
    expect(lib.sli_conn_write(conn, b"boringssl side", 14) == 14, "write")
    buf = ctypes.create_string_buffer(100)
    n = lib.sli_conn_read(conn, buf, 100)
    expect(buf.raw[:n] == b"edis lssgnirob", "reply %r" % buf.raw[:max(n, 0)])
    expect(lib.sli_conn_version(conn) == b"TLSv1.3", "version")
    lib.sli_conn_free(conn)
    sock.close()
    t.join(5)


@checks.case
def preloaded_into_python_ssl():
    import subprocess
    r = subprocess.run(["/usr/bin/python3", "-c",
                        "import ssl, urllib.request; ssl.create_default_context(); print('alive')"],
                       env=dict(os.environ, LD_PRELOAD=LIBSLI), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30)
    expect(r.returncode == 0 and "alive" in r.stdout, "rc=%d %s" % (r.returncode, r.stderr[-500:]))


checks.finish(d)
