#!/usr/bin/python3
"""`sli keyring` and `sli seal` / `sli unseal` from the command line: files 0600, round trips through
files and pipes, rotation without re-encryption, and every failure a named error (exit 6 for a
tampered blob or wrong associated data) that leaves no output file behind."""
import os
import sys

from harness import SLI, Checks, Dir, expect, read, run, write

d = Dir()
checks = Checks()
KR = d("ring")


@checks.case
def keyring_new_is_private_and_not_overwritten():
    rc, out, err = run([SLI, "keyring", "new", KR])
    expect(rc == 0 and "primary key" in out, err)
    expect(os.stat(KR).st_mode & 0o777 == 0o600, "keyring is not 0600")
    rc, out, err = run([SLI, "keyring", "new", KR])
    expect(rc == 3 and "exists" in err, "overwrote a keyring: %s" % err)


@checks.case
def seal_unseal_round_trip_file_and_pipe():
    data = os.urandom(100000)
    write(d("plain.bin"), data)
    rc, _, err = run([SLI, "seal", "--keyring", KR, "--ad", "users.ssn", "-o", d("sealed.bin"), d("plain.bin")])
    expect(rc == 0, err)
    expect(len(read(d("sealed.bin"))) == len(data) + 33, "overhead is not 33 bytes")
    rc, _, err = run([SLI, "unseal", "--keyring", KR, "--ad", "users.ssn", "-o", d("back.bin"), d("sealed.bin")])
    expect(rc == 0 and read(d("back.bin")) == data, err)
    import subprocess
    p = subprocess.run([SLI, "seal", "--keyring", KR], input=b"via a pipe", stdout=subprocess.PIPE)
    q = subprocess.run([SLI, "unseal", "--keyring", KR], input=p.stdout, stdout=subprocess.PIPE)
    expect(q.returncode == 0 and q.stdout == b"via a pipe", q.stdout)


@checks.case
def failures_are_named_and_leave_nothing():
    for args, code in ((["--ad", "users.email"], "SLI_E_PAYLOAD"), ([], "SLI_E_PAYLOAD")):
        out = d("should-not-exist")
        rc, _, err = run([SLI, "unseal", "--keyring", KR, "-o", out, d("sealed.bin")] + args)
        expect(rc == 6 and code in err, "rc=%d %s" % (rc, err))
        expect(not os.path.exists(out), "a failed unseal left an output file")
    blob = bytearray(read(d("sealed.bin")))
    blob[50] ^= 0x20
    write(d("flipped.bin"), bytes(blob))
    rc, _, err = run([SLI, "unseal", "--keyring", KR, "--ad", "users.ssn", d("flipped.bin")])
    expect(rc == 6 and "SLI_E_PAYLOAD" in err, err)
    write(d("short.bin"), b"\x01abc")
    rc, _, err = run([SLI, "unseal", "--keyring", KR, d("short.bin")])
    expect(rc == 6 and "SLI_E_HEADER" in err, err)
    write(d("notring"), b"hello\n")
    rc, _, err = run([SLI, "seal", "--keyring", d("notring"), d("plain.bin")])
    expect(rc == 3 and "not an sli keyring" in err, err)


@checks.case
def rotation_keeps_old_blobs_readable():
    rc, out, err = run([SLI, "keyring", "rotate", KR])
    expect(rc == 0 and "2 key(s)" in out, err)
    rc, out, err = run([SLI, "keyring", "list", KR])
    lines = out.strip().splitlines()
    expect(len(lines) == 2 and lines[0].endswith("primary"), out)
    rc, _, err = run([SLI, "unseal", "--keyring", KR, "--ad", "users.ssn", "-o", d("back2.bin"), d("sealed.bin")])
    expect(rc == 0 and read(d("back2.bin")) == read(d("plain.bin")), err)
    rc, _, err = run([SLI, "seal", "--keyring", KR, "-o", d("new.bin"), d("plain.bin")])
    new_id = read(d("new.bin"))[1:5].hex()
    expect(lines[0].startswith(new_id), "new blobs do not use the new primary %s" % new_id)


checks.finish(d)
