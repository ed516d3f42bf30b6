#!/usr/bin/python3
"""testssl.sh (Debian's testssl.sh, nobody here wrote it) scans `sli serve` with the default policy:
no SSLv2/SSLv3/TLS 1.0/1.1, TLS 1.2 and 1.3 offered, no NULL, anonymous, export, LOW, 3DES or
obsolete CBC suites, strong AEAD suites offered, forward secrecy offered."""
import re

from harness import CA, Checks, Dir, expect, run, sli_serve

d = Dir()
ca = CA(d)
cert, key = ca.issue("localhost")
checks = Checks()


@checks.case
def testssl_protocols_ciphers_forward_secrecy():
    p, port = sli_serve(d, "scan", "--cert", cert, "--key", key, "--echo")
    rc, out, err = run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "-f",
                        "127.0.0.1:%d" % port], timeout=170)
    p.stop()
    want = [r"SSLv2\s+not offered", r"SSLv3\s+not offered", r"TLS 1\s+not offered",
            r"TLS 1\.1\s+not offered", r"TLS 1\.2\s+offered", r"TLS 1\.3\s+offered",
            r"NULL ciphers.*not offered", r"Anonymous NULL Ciphers.*not offered",
            r"Export ciphers.*not offered", r"LOW: 64 Bit.*not offered",
            r"Triple DES Ciphers.*not offered", r"Obsolete CBC ciphers.*not offered",
            r"Strong encryption \(AEAD ciphers\)\s+offered", r"PFS is offered"]
    for w in want:
        expect(re.search(w, out), "testssl: /%s/ not found in:\n%s" % (w, out[-3000:]))


checks.finish(d)
