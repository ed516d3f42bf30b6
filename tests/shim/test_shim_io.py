#!/usr/bin/python3
"""Differential host tests (difftest.py) of the data calls: half-close in both directions."""
from difftest import Case, host_exe, run_cases  # noqa: I001 (shimlib sets sys.path)


def peer_half_closes(ctx):
    p = ctx.connect()
    p.send(b"x" * 419)
    p.shutdown_write()
    data, how = p.recv_all()
    ctx.obs("reply %r, end %s" % (data, how))


def peer_answers_after_eof(ctx):
    p = ctx.accept()
    data, how = p.recv_all()
    ctx.obs("request %r, end %s" % (data, how))
    p.send(b"the answer, after your half-close\n")
    p.shutdown_write()
    rest, how = p.recv_all()
    ctx.obs("after our close: %r, end %s" % (rest, how))


cases = [
    Case("halfclose_peer_first", [host_exe("halfclose"), "{port}", "server"], "server",
         peer_half_closes, connections=1),
    Case("halfclose_host_first", [host_exe("halfclose"), "{port}", "client"], "client",
         peer_answers_after_eof, connections=1),
]

run_cases(cases)
