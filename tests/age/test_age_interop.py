#!/usr/bin/python3
"""age v1 files, both ways with Debian's `age` (nobody here wrote it), for every recipient type —
X25519, scrypt passphrase (age -p driven through a pty), ssh-ed25519 and ssh-rsa (keys made by
ssh-keygen) —: binary and armored, empty input, exact multiples of 64 KiB, 1 GiB; several recipients
of mixed types; and a named error — never an output file — for a wrong key, a modified header or
payload, a truncated or extended file, broken armor (as strict as age's: stray base64 bits, an
empty line; whitespace after END accepted), a passphrase-protected or unsupported SSH key."""
import hashlib
import os
import pty
import subprocess
import sys
import time

from harness import SLI, Checks, Dir, expect, read, run, write

d = Dir()
checks = Checks()
PASS = b"correct horse battery staple"
write(d("pw.txt"), PASS + b"\n")
os.environ["SLI_PASSPHRASE_FILE"] = d("pw.txt")  # sli's -p and passphrase decryption read it


def sh(cmd, timeout=120):
    r = subprocess.run(cmd, shell=True, executable="/bin/bash", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def sh_pty(cmd, answers, timeout=600):
    """Runs a bash command whose controlling terminal is a pty, typing the passphrase at each of
    `answers` prompts (age reads passphrases from /dev/tty only). Returns (rc, terminal output)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp("bash", ["bash", "-o", "pipefail", "-c", cmd])
    out, answered, end = b"", 0, time.time() + timeout
    while time.time() < end:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
        while answered < answers and out.lower().count(b"passphrase") > answered:
            os.write(fd, PASS + b"\n")
            answered += 1
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


rc, _, err = run([SLI, "keygen", "--type", "x25519", "--format", "age", "-o", d("ours.key"), "--pub", d("ours.pub")])
OURS = read(d("ours.pub")).decode().strip()
subprocess.run(["age-keygen", "-o", d("theirs.key")], stderr=subprocess.DEVNULL, check=True)
THEIRS = [l.split(": ")[1] for l in read(d("theirs.key")).decode().splitlines() if "public key" in l][0]
for name, args in (("ed", ["-t", "ed25519"]), ("rsa", ["-t", "rsa", "-b", "3072"]),
                   ("enc", ["-t", "ed25519", "-N", "secret"]), ("ecdsa", ["-t", "ecdsa"]),
                   ("rsa1024", ["-t", "rsa", "-b", "1024"]), ("pemrsa", ["-t", "rsa", "-m", "PEM"])):
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", "sli test", "-f", d(name)] + args, check=True,
                   stdout=subprocess.DEVNULL)

# Per recipient type: (encrypt flags, decrypt flags, passphrase prompts age shows to encrypt / decrypt).
TYPES = {
    "x25519": (f"-r {OURS}", f"-i {d('ours.key')}", 0, 0),
    "ssh-ed25519": (f"-R {d('ed.pub')}", f"-i {d('ed')}", 0, 0),
    "ssh-rsa": (f"-R {d('rsa.pub')}", f"-i {d('rsa')}", 0, 0),
    "scrypt": ("-p", "", 2, 1),
}


def both_ways(kind, name, data, armor=False):
    enc, dec, p_enc, p_dec = TYPES[kind]
    write(d(name), data)
    a = "-a " if armor else ""
    f = d(name)
    rc, out, err = sh(f"{SLI} encrypt {a}{enc} -o {f}.s.age {f}")
    expect(rc == 0, "sli encrypt %s: %s" % (kind, err))
    expect(read(f + ".s.age").startswith(b"-----BEGIN AGE" if armor else b"age-encryption.org/v1\n"), "format")
    if not armor:
        stanza = "-> %s " % ("X25519" if kind == "x25519" else kind)
        expect(stanza.encode() in read(f + ".s.age")[:2000], "no '%s' stanza" % stanza)
    rc, out = sh_pty(f"age -d {dec} {f}.s.age > {f}.s.out", p_dec)  # (age -o makes no file for empty output)
    expect(rc == 0 and read(f + ".s.out") == data, "age -d of sli's %s file: rc=%d %r" % (kind, rc, out[-300:]))
    rc, out = sh_pty(f"age -e {a}{enc} -o {f}.a.age {f}", p_enc)
    expect(rc == 0, "age -e %s: %r" % (kind, out[-300:]))
    rc, out, err = sh(f"{SLI} decrypt {dec} -o {f}.a.out {f}.a.age")
    expect(rc == 0 and read(f + ".a.out") == data, "sli decrypt of age's %s file: rc=%d %s" % (kind, rc, err))


def matrix(kind):
    data = os.urandom(300000)
    both_ways(kind, kind + ".bin", data)
    both_ways(kind, kind + ".asc", data, armor=True)
    both_ways(kind, kind + ".empty", b"")
    both_ways(kind, kind + ".64k", os.urandom(65536))
    both_ways(kind, kind + ".128k", os.urandom(131072), armor=True)
    both_ways(kind, kind + ".64k1", os.urandom(65537))


ZEROS_1GIB = "49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"


def one_gib(kind):
    enc, dec, p_enc, p_dec = TYPES[kind]
    for pipeline, answers in ((f"head -c {1 << 30} /dev/zero | {SLI} encrypt {enc} | age -d {dec} | sha256sum > {d('gib')}", p_dec),
                              (f"head -c {1 << 30} /dev/zero | age -e {enc} | {SLI} decrypt {dec} | sha256sum > {d('gib')}", p_enc)):
        rc, out = sh_pty(pipeline, answers)
        expect(rc == 0, "%s: %r" % (pipeline, out[-300:]))
        expect(read(d("gib")).split()[0].decode() == ZEROS_1GIB, "1 GiB of zeros did not survive: %s" % pipeline)


@checks.case
def x25519_matrix():
    matrix("x25519")
    expect(read(d("x25519.asc.s.age")).startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n"), "no armor")


@checks.case
def ssh_ed25519_matrix():
    matrix("ssh-ed25519")


@checks.case
def ssh_rsa_matrix():
    matrix("ssh-rsa")


@checks.case
def scrypt_matrix():
    matrix("scrypt")
    expect(b"-> scrypt " in read(d("scrypt.bin.s.age"))[:200], "no scrypt stanza")


@checks.case
def several_recipients_of_mixed_types():
    data = b"for all of us\n" * 5000
    write(d("multi.bin"), data)
    rcpts = f"-r {OURS} -r {THEIRS} -R {d('ed.pub')} -r '{read(d('rsa.pub')).decode().strip()}'"
    ids = (d("theirs.key"), d("ours.key"), d("ed"), d("rsa"))
    for tool in (SLI + " encrypt", "age -e"):
        rc, out, err = sh(f"{tool} {rcpts} -o {d('multi.age')} {d('multi.bin')}")
        expect(rc == 0, "%s: %s" % (tool, err))
        head = read(d("multi.age"))[:4000]
        expect(all(t in head for t in (b"-> X25519 ", b"-> ssh-ed25519 ", b"-> ssh-rsa ")), "stanzas: %r" % head[:300])
        for ident in ids:
            for dec in ("age -d -i", f"{SLI} decrypt -i"):
                rc, out, err = sh(f"{dec} {ident} {d('multi.age')}")
                expect(rc == 0 and out == data, "%s %s of %s's file: %s" % (dec, ident, tool, err))
        # an identity file may hold several keys; the SSH key of a stranger is simply not a match
        rc, out, err = sh(f"{SLI} decrypt -i {d('pemrsa')} -i {d('ed')} {d('multi.age')}")
        expect(rc == 0 and out == data, err)


@checks.case
def one_gib_each_way_per_type():
    for kind in ("x25519", "ssh-ed25519", "ssh-rsa", "scrypt"):
        one_gib(kind)


@checks.case
def ssh_keys_from_other_sources():
    data = os.urandom(5000)
    write(d("k.bin"), data)
    # a PEM PKCS#1 RSA key (ssh-keygen -m PEM) and its .pub
    rc, _, err = sh(f"age -R {d('pemrsa.pub')} -o {d('k.age')} {d('k.bin')} && {SLI} decrypt -i {d('pemrsa')} -o {d('k.out')} {d('k.age')}")
    expect(rc == 0 and read(d("k.out")) == data, err)
    # keys sli makes: OpenSSH keys (--format ssh), read by age too
    for kind in ("ed25519", "rsa"):
        sk = d("sk-" + kind)  # a name each: keygen never replaces a key
        rc, _, err = run([SLI, "keygen", "--type", kind, "--format", "ssh", "-o", sk, "--pub", sk + ".pub"])
        expect(rc == 0, err)
        rc, out, err = sh(f"{SLI} encrypt -R {sk}.pub {d('k.bin')} | age -d -i {sk}")
        expect(rc == 0 and out == data, "age -d -i (sli's OpenSSH %s key): %s" % (kind, err))
        rc, out, err = sh(f"age -e -R {sk}.pub {d('k.bin')} | {SLI} decrypt -i {sk}")
        expect(rc == 0 and out == data, err)
    # a PKCS#8 RSA key from sli, its line derived by ssh-keygen
    rc, _, err = run([SLI, "keygen", "--type", "rsa", "-o", d("pk8.pem")])
    rc, line, err = sh(f"ssh-keygen -y -f {d('pk8.pem')}")
    expect(rc == 0 and line.startswith(b"ssh-rsa "), err)
    rc, out, err = sh(f"age -e -r '{line.decode().strip()}' {d('k.bin')} | {SLI} decrypt -i {d('pk8.pem')}")
    expect(rc == 0 and out == data, "sli decrypt -i (PKCS#8 RSA): %s" % err)
    rc, out, err = sh(f"{SLI} encrypt -r '{line.decode().strip()}' {d('k.bin')} | age -d -i {d('pk8.pem')}")
    expect(rc == 0 and out == data, "age -d -i (PKCS#8 RSA): %s" % err)
    # the public line ssh-keygen derives from sli's key is the one sli wrote
    rc, out, err = sh(f"ssh-keygen -y -f {d('ed')}")
    expect(rc == 0 and out.split()[:2] == read(d("ed.pub")).split()[:2], err)


@checks.case
def ssh_key_errors_are_named():
    sh(f"age -e -R {d('ed.pub')} -o {d('e.age')} {d('pw.txt')}")
    rc, _, err = run([SLI, "decrypt", "-i", d("enc"), "-o", d("e.out"), d("e.age")])
    expect(rc == 3 and "SLI_E_KEY_ENCRYPTED" in err and "ssh-keygen -p" in err and not os.path.exists(d("e.out")), err)
    rc, _, err = run([SLI, "encrypt", "-R", d("ecdsa.pub"), d("pw.txt")])
    expect(rc != 0 and "SLI_E_UNSUPPORTED" in err, err)
    rc, _, err = run([SLI, "decrypt", "-i", d("ecdsa"), d("e.age")])
    expect(rc != 0 and "SLI_E_UNSUPPORTED" in err, err)
    rc, _, err = run([SLI, "encrypt", "-R", d("rsa1024.pub"), d("pw.txt")])
    expect(rc != 0 and "SLI_E_WEAK_KEY" in err, err)
    rc, _, err = run([SLI, "encrypt", "-r", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBad", d("pw.txt")])
    expect(rc == 3 and "not a valid" in err, "rc=%d %s" % (rc, err))
    # the type on the line must be the key's type
    ed_blob = read(d("ed.pub")).split()[1].decode()
    rc, _, err = run([SLI, "encrypt", "-r", "ssh-rsa " + ed_blob, d("pw.txt")])
    expect(rc == 3 and "not a valid" in err, "rc=%d %s" % (rc, err))
    rc, _, err = run([SLI, "decrypt", "-i", d("rsa"), "-o", d("e.out"), d("e.age")])
    expect(rc == 6 and "SLI_E_NO_MATCH" in err and not os.path.exists(d("e.out")), err)
    # a malformed ssh-ed25519 stanza for our key's tag is a header error, not a silent miss
    blob = read(d("e.age"))
    line = blob.split(b"\n")[1]
    write(d("m.age"), blob.replace(line, line.rsplit(b" ", 1)[0] + b" AAAA", 1))
    rc, _, err = run([SLI, "decrypt", "-i", d("ed"), "-o", d("e.out"), d("m.age")])
    expect(rc == 6 and "SLI_E_HEADER" in err and not os.path.exists(d("e.out")), err)


@checks.case
def bad_input_fails_before_the_input_ends():
    """A bad version line or an oversized header fails at once, while the writer still holds the pipe
    open (the reader thread is stopped inside its read)."""
    for first in (b"age-encryption.org/v2\n", b"a" * 70000):
        p = subprocess.Popen([SLI, "decrypt", "-i", d("ours.key")], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdin.write(first)
        p.stdin.flush()
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError("sli decrypt waited for the end of an input it had already refused")
        err = p.stderr.read().decode()
        p.stdin.close()
        expect(rc == 6 and "SLI_E_HEADER" in err, err)


@checks.case
def wrong_passphrase():
    write(d("wrong.txt"), b"wrong\n")
    r = subprocess.run([SLI, "decrypt", "-o", d("pw.bad"), d("scrypt.bin.a.age")],
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


def armored(binary, trailer=b""):
    """age's armor of `binary`: 64-character base64 lines, the last one shorter."""
    import base64
    b64 = base64.b64encode(binary)
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return (b"-----BEGIN AGE ENCRYPTED FILE-----\n" + b"\n".join(lines) +
            b"\n-----END AGE ENCRYPTED FILE-----\n" + trailer)


def both_decrypt(text):
    """(sli's exit, age's exit) decrypting `text`; sli's refusal must name SLI_E_ARMOR."""
    write(d("arm.age"), text)
    rc, _, err = run([SLI, "decrypt", "-i", d("ours.key"), "-o", d("arm.out"), d("arm.age")])
    expect(rc == 0 or "SLI_E_ARMOR" in err, "sli: not an armor error: " + err)
    arc, _, _ = sh(f"age -d -i {d('ours.key')} -o {d('arm.age.out')} {d('arm.age')}")
    return rc, arc


@checks.case
def armor_as_strict_as_age():
    """Armor as strict as the spec (RFC 7468's strict PEM, canonical base64): sli refuses
    (SLI_E_ARMOR) stray bits before the padding, as age does, and an empty line as the last data
    line (age 1.1.1 is laxer there); it accepts what age accepts: whitespace lines after the END
    line, one starting with CR. Lengths are chosen so that each fault can be made."""
    import base64
    sh(f"{SLI} encrypt -r {OURS} -o {d('probe.age')} {d('pw.txt')}")
    overhead = len(read(d("probe.age"))) - len(read(d("pw.txt")))  # header, nonce, one tag
    # a binary file whose length is 1 more than a multiple of 3: the last group ends "x==", 4 stray bits
    n = next(n for n in range(100, 200) if (overhead + n) % 3 == 1)
    write(d("arm.bin"), os.urandom(n))
    sh(f"{SLI} encrypt -r {OURS} -o {d('arm.bin.age')} {d('arm.bin')}")
    good = armored(read(d("arm.bin.age")))
    expect(both_decrypt(good) == (0, 0), "the canonical armor is refused")
    text = bytearray(good)
    pad = good.index(b"==\n-----END")
    last = good[pad - 1:pad].decode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    text[pad - 1] = ord(alphabet[alphabet.index(last) | 1])  # a stray bit
    expect(base64.b64decode(bytes(text[pad - 2:pad + 2])) == base64.b64decode(good[pad - 2:pad + 2]),
           "the stray bit changed the decoded bytes")
    rc, arc = both_decrypt(bytes(text))
    expect(arc != 0, "age accepted stray bits before the padding (the test's premise)")
    expect(rc != 0, "sli accepted stray bits before the padding")
    # a binary of a multiple of 48 bytes: whole lines only, then an empty line before END
    n = next(n for n in range(100, 200) if (overhead + n) % 48 == 0)
    write(d("arm.bin"), os.urandom(n))
    sh(f"{SLI} encrypt -r {OURS} -o {d('arm.bin.age')} {d('arm.bin')}")
    full = armored(read(d("arm.bin.age")))
    expect(both_decrypt(full) == (0, 0), "whole-line armor is refused")
    # RFC 7468's strict form, which the age spec asks for, ends with a line of at least one base64
    # group: an empty last line is non-canonical. (Debian's age 1.1.1 accepts it; sli follows the
    # spec, so here only sli is asked.)
    rc, _ = both_decrypt(full.replace(b"\n-----END", b"\n\n-----END"))
    expect(rc != 0, "sli accepted an empty armor line")
    # whitespace after END, a line starting with CR among it
    for trailer in (b"\r\n", b" \t\n", b"\r  \n\n", b"\r\x0b\x0c\n"):
        expect(both_decrypt(full + trailer) == (0, 0), "whitespace %r after END refused" % trailer)


checks.finish(d)
