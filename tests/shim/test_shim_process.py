#!/usr/bin/python3
"""Differential host tests (difftest.py) of processes around a TLS connection: fork after reading
the request, fork per connection ending by close / exit() / _exit() — the session has one owner,
no nonce is reused, and the peer sees a clean end."""
from difftest import Case, host_exe, run_cases  # noqa: I001 (shimlib sets sys.path)


def one_request(ctx):
    p = ctx.connect()
    p.send(b"GET /x\n")
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


def three_requests(ctx):
    for i in range(3):
        p = ctx.connect()
        p.send(b"req %d\n" % i)
        data, how = p.recv_all()
        ctx.obs("reply %r, end %s" % (data, how))


cases = [
    Case("fork_after_read", [host_exe("fork_after_read"), "{port}"], "server", one_request,
         connections=1),
]
for mode in ("close", "exit", "_exit"):
    cases.append(Case("fork_per_conn_" + mode, [host_exe("fork_per_conn"), "{port}", mode],
                      "server", three_requests, connections=3))

run_cases(cases)
