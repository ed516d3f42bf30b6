#!/usr/bin/python3
"""The Python side of the cross-language test (bindings/interop_test.py): one small command per
operation, bytes on stdin and stdout, the same commands as the Go and Node ones.

  seal KEYRING AD | open KEYRING AD          sealed blobs
  encrypt RECIPIENT | decrypt IDENTITY_FILE  age, streaming
  serve CERT KEY                             TLS: prints the port, answers one line, close_notify
  connect PORT CA NAME                       TLS: sends a line, prints the answer"""
import os
import shutil
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import sli  # noqa: E402
from sli import age, tls  # noqa: E402

LANG = "python"


def main(cmd, *a):
    out = sys.stdout.buffer
    if cmd in ("seal", "open"):
        kr = sli.Keyring.load(a[0])
        data = sys.stdin.buffer.read()
        out.write(kr.seal(data, a[1].encode()) if cmd == "seal" else kr.open(data, a[1].encode()))
    elif cmd == "encrypt":
        with age.Encryptor(out, [age.Recipient.parse(a[0])]) as w:
            shutil.copyfileobj(sys.stdin.buffer, w)
    elif cmd == "decrypt":
        ids = [age.Identity.parse(line.strip()) for line in open(a[0])
               if line.startswith("AGE-SECRET-KEY-")]
        shutil.copyfileobj(age.Decryptor(sys.stdin.buffer, ids), out)
    elif cmd == "serve":
        ctx = tls.Context.server(cert=a[0], key=a[1])
        lst = socket.create_server(("127.0.0.1", 0))
        print(lst.getsockname()[1], flush=True)
        s, _ = lst.accept()
        with s, ctx.wrap(s) as c:
            line = b""
            while not line.endswith(b"\n"):
                d = c.read()
                if not d:
                    break
                line += d
            c.sendall(("%s heard: " % LANG).encode() + line)
            c.close()
            try:
                while c.read():
                    pass
            except sli.Error:
                pass  # a peer that leaves without its own close_notify, after ours
    elif cmd == "connect":
        ctx = tls.Context.client(ca=a[1])
        with socket.create_connection(("127.0.0.1", int(a[0]))) as s, ctx.wrap(s, a[2]) as c:
            c.sendall(("hello from %s\n" % LANG).encode())
            while True:
                d = c.read()
                if not d:
                    break
                out.write(d)
            c.close()
    else:
        raise SystemExit("unknown command " + cmd)
    out.flush()


if __name__ == "__main__":
    try:
        main(*sys.argv[1:])
    except sli.Error as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
