#!/usr/bin/python3
"""plain_echo.py — a plain-TCP program for the shim's door in test_settings.py (the shim makes it TLS).
  plain_echo.py serve PORT     an echo server on 127.0.0.1:PORT, a thread per connection; prints
                               "listening on 127.0.0.1:PORT"; exits 3 if it cannot listen
  plain_echo.py connect PORT   sends "ping\\n" to 127.0.0.1:PORT, prints what comes back"""
import socket
import sys
import threading


def echo(c):
    try:
        while True:
            b = c.recv(4096)
            if not b:
                break
            c.sendall(b)
    except OSError:
        pass
    c.close()


def serve(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(16)
    except OSError as e:
        print("refused %s" % e, flush=True)
        sys.exit(3)
    print("listening on 127.0.0.1:%d" % port, flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"ping\n")
        b = s.recv(64)
    except OSError as e:
        b = b""
        print("failed %s" % e.__class__.__name__)
    print("got %s" % b.decode(errors="replace") if b else "failed EOF", end="" if b else "\n")
    return 0 if b else 1


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    sys.exit(connect(int(sys.argv[2])))
