#!/usr/bin/python3
"""age v1 files, both ways with Debian's `age` (nobody here wrote it): X25519 recipients binary and
armored, several recipients, empty input, an exact multiple of 64 KiB, 1 GiB once per direction,
scrypt passphrases (age -p driven through a pty), and a named error — never an output file — for a
wrong key, a modified header or payload, a truncated or extended file and broken armor."""
import hashlib
import os
import pty
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "peers"))
from harness import SLI, Checks, Dir, expect, read, run, write  # noqa: E402

d = Dir()
checks = Checks()


def sh(cmd, timeout=120):
    r = subprocess.run(cmd, shell=True, executable="/bin/bash", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


rc, _, err = run([SLI, "keygen", "--type", "x25519", "--format", "age", "-o", d("ours.key"), "--pub", d("ours.pub")])
OURS = read(d("ours.pub")).decode().strip()
subprocess.run(["age-keygen", "-o", d("theirs.key")], stderr=subprocess.DEVNULL, check=True)
THEIRS = [l.split(": ")[1] for l in read(d("theirs.key")).decode().splitlines() if "public key" in l][0]


def both_ways(name, data, armor=False):
    write(d(name), data)
    a = "-a " if armor else ""
    for enc, dec in ((f"{SLI} encrypt {a}-r {OURS} -o {d(name)}.s.age {d(name)}", f"age -d -i {d('ours.key')} {d(name)}.s.age"),
                     (f"age -e {a}-r {OURS} -o {d(name)}.a.age {d(name)}", f"{SLI} decrypt -i {d('ours.key')} {d(name)}.a.age")):
        rc, out, err = sh(enc)
        expect(rc == 0, "%s: %s" % (enc, err))
        rc, out, err = sh(dec)
        expect(rc == 0 and out == data, "%s: rc=%d len=%d/%d %s" % (dec, rc, len(out), len(data), err))


@checks.case
def x25519_binary_and_armored():
    data = os.urandom(300000)
    both_ways("plain.bin", data)
    both_ways("armored.bin", data, armor=True)
    expect(read(d("armored.bin.s.age")).startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n"), "no armor")


@checks.case
def empty_and_exact_chunk_multiples():
    both_ways("empty.bin", b"")
    both_ways("one.bin", os.urandom(65536))
    both_ways("two.bin", os.urandom(131072))
    both_ways("edge.bin", os.urandom(65537), armor=True)


@checks.case
def several_recipients():
    write(d("multi.bin"), b"for both of us\n" * 1000)
    rc, out, err = sh(f"{SLI} encrypt -r {OURS} -r {THEIRS} -o {d('multi.age')} {d('multi.bin')}")
    expect(rc == 0, err)
    for ident, tool in ((d("theirs.key"), "age -d -i"), (d("ours.key"), f"{SLI} decrypt -i"),
                        (d("theirs.key"), f"{SLI} decrypt -i")):
        rc, out, err = sh(f"{tool} {ident} {d('multi.age')}")
        expect(rc == 0 and out == read(d("multi.bin")), "%s %s: %s" % (tool, ident, err))
    rc, out, err = sh(f"age -e -r {OURS} -r {THEIRS} {d('multi.bin')} | {SLI} decrypt -i {d('ours.key')}")
    expect(rc == 0 and out == read(d("multi.bin")), err)


def age_with_pty(args, passphrase, times):
    """Runs age with a terminal (age -p refuses a pipe), answering its passphrase prompts."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("age", ["age"] + args)
    out, answered, end = b"", 0, time.time() + 60
    while time.time() < end:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        while answered < times and out.lower().count(b"passphrase") > answered:
            os.write(fd, passphrase + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


@checks.case
def scrypt_passphrase_both_ways():
    data = os.urandom(70000)
    write(d("pw.bin"), data)
    write(d("pw.txt"), b"correct horse battery staple\n")
    env = dict(os.environ, SLI_PASSPHRASE_FILE=d("pw.txt"))
    r = subprocess.run([SLI, "encrypt", "-p", "-o", d("pw.s.age"), d("pw.bin")], env=env, stderr=subprocess.PIPE)
    expect(r.returncode == 0, r.stderr)
    expect(b"-> scrypt " in read(d("pw.s.age"))[:200], "no scrypt stanza")
    rc, out = age_with_pty(["-d", "-o", d("pw.s.out"), d("pw.s.age")], b"correct horse battery staple", 1)
    expect(rc == 0 and read(d("pw.s.out")) == data, "age -d of our scrypt file: rc=%d %r" % (rc, out[-200:]))
    rc, out = age_with_pty(["-p", "-o", d("pw.a.age"), d("pw.bin")], b"correct horse battery staple", 2)
    expect(rc == 0, "age -p: %r" % out[-200:])
    r = subprocess.run([SLI, "decrypt", "-o", d("pw.a.out"), d("pw.a.age")], env=env, stderr=subprocess.PIPE)
    expect(r.returncode == 0 and read(d("pw.a.out")) == data, r.stderr)
    write(d("wrong.txt"), b"wrong\n")
    r = subprocess.run([SLI, "decrypt", "-o", d("pw.bad"), d("pw.a.age")],
                       env=dict(os.environ, SLI_PASSPHRASE_FILE=d("wrong.txt")), stderr=subprocess.PIPE)
    expect(r.returncode == 6 and b"SLI_E_NO_MATCH" in r.stderr and not os.path.exists(d("pw.bad")), r.stderr)


def refused(blob, code, ident=None):
    write(d("bad.age"), blob)
    out = d("bad.out")
    rc, _, err = run([SLI, "decrypt", "-i", ident or d("ours.key"), "-o", out, d("bad.age")])
    expect(rc == 6 and code in err, "expected %s: rc=%d %s" % (code, rc, err))
    expect(not os.path.exists(out), "a failed decryption left an output file")


@checks.case
def tampering_gets_named_errors():
    data = os.urandom(200000)
    write(d("t.bin"), data)
    sh(f"{SLI} encrypt -r {OURS} -o {d('t.age')} {d('t.bin')}")
    blob = read(d("t.age"))
    refused(blob, "SLI_E_NO_MATCH", ident=d("theirs.key"))
    hdr_end = blob.index(b"\n---") + 5
    mac = bytearray(blob)
    mac[hdr_end + 10] = ord("A") if mac[hdr_end + 10] != ord("A") else ord("B")
    refused(bytes(mac), "SLI_E_HEADER_MAC")
    body = bytearray(blob)
    body[blob.index(b"\n", blob.index(b"-> X25519")) + 5] ^= 0x01  # the wrapped key's base64
    refused(bytes(body), "SLI_E_")
    pay = bytearray(blob)
    pay[len(pay) // 2] ^= 0x80
    refused(bytes(pay), "SLI_E_PAYLOAD")
    refused(blob[:-10], "SLI_E_PAYLOAD")
    refused(blob[:hdr_end + 60], "SLI_E_PAYLOAD")
    refused(blob + b"x", "SLI_E_PAYLOAD")
    refused(b"age-encryption.org/v2\n", "SLI_E_HEADER")
    refused(b"", "SLI_E_HEADER")
    sh(f"{SLI} encrypt -a -r {OURS} -o {d('t.asc')} {d('t.bin')}")
    asc = read(d("t.asc"))
    refused(asc.replace(b"-----END AGE ENCRYPTED FILE-----\n", b""), "SLI_E_ARMOR")
    lines = asc.split(b"\n")
    lines[3] = lines[3][:10] + b"*" + lines[3][11:]
    refused(b"\n".join(lines), "SLI_E_ARMOR")
    # age agrees that the tampered payload is bad
    write(d("bad2.age"), bytes(pay))
    rc, out, err = sh(f"age -d -i {d('ours.key')} {d('bad2.age')}")
    expect(rc != 0, "age accepted a modified payload")


@checks.case
def one_gib_each_way():
    size = 1 << 30
    want = hashlib.sha256(b"\0" * (1 << 20)).digest()  # placeholder to warm hashlib
    for pipeline in (f"head -c {size} /dev/zero | {SLI} encrypt -r {OURS} | age -d -i {d('ours.key')} | sha256sum",
                     f"head -c {size} /dev/zero | age -e -r {OURS} | {SLI} decrypt -i {d('ours.key')} | sha256sum"):
        rc, out, err = sh("set -o pipefail; " + pipeline, timeout=600)
        expect(rc == 0, "%s: %s" % (pipeline, err))
        expect(out.split()[0] == b"49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14",
               "1 GiB of zeros did not survive: %s" % out)


checks.finish(d)
