#!/usr/bin/python3
"""The files the `sli` command writes, as a new user and a hostile neighbour meet them:
- symbolic links planted in a shared directory at every name the old writer would have used
  (OUT.tmp.<pid> for the next 300 pids) and at the output itself: the key lands in a new file of
  ours, 0600, and no link target is ever written;
- an output that exists with mode 0666 is replaced by a new 0600 file, never reused;
- `sli keygen` never replaces an existing key without --force, nor writes -o and --pub to one file;
- 70 recipients are 70 (age decrypts with the last one), not 64;
- SIGINT and SIGTERM in the middle of a decrypt or an encrypt leave no output and no temporary file;
- a private key others can read is used with a warning; an empty passphrase is refused by keygen
  as by encrypt; a 2000-byte passphrase is used whole; `sign -o IN IN` is refused and IN kept;
  `seal` refuses an input over its documented 64 MiB and says so before reading it all; a write
  error says why."""
import os
import signal
import stat
import subprocess
import sys
import time

from harness import SLI, Checks, Dir, expect, run

d = Dir()
checks = Checks()


def tmp_leftovers(directory):
    return [f for f in os.listdir(directory) if ".tmp." in f]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@checks.case
def planted_links_are_never_followed():
    work = d("shared")
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o1777)  # a shared directory, as /tmp
    victim = d("victim.txt")
    with open(victim, "w") as f:
        f.write("precious\n")
    out = os.path.join(work, "k.pem")
    last = int(open("/proc/sys/kernel/ns_last_pid").read())
    for pid in range(last + 1, last + 301):  # every name the old writer could pick next
        os.symlink(victim, "%s.tmp.%d" % (out, pid))
    rc, _, err = run([SLI, "keygen", "--type", "ec", "-o", out])
    expect(rc == 0, "keygen: %d %s" % (rc, err))
    expect(open(victim).read() == "precious\n", "a planted link's target was written")
    expect(stat.S_ISREG(os.lstat(out).st_mode) and mode(out) == 0o600,
           "the key is a regular file, 0600: %o" % mode(out))
    expect("PRIVATE KEY" in open(out).read(), "and holds the key")
    # a link at the output's own name: replaced by the file, its target untouched
    out2 = os.path.join(work, "k2.pem")
    os.symlink(victim, out2)
    rc, _, err = run([SLI, "keygen", "--type", "ed25519", "-o", out2, "--force"])
    expect(rc == 0 and open(victim).read() == "precious\n", "%d %s" % (rc, err))
    expect(stat.S_ISREG(os.lstat(out2).st_mode) and mode(out2) == 0o600, "link replaced by a 0600 file")
    leftovers = [f for f in tmp_leftovers(work) if not os.path.islink(os.path.join(work, f))]
    expect(not leftovers, "temporary files left: %s" % leftovers)


@checks.case
def existing_output_is_replaced_not_reused():
    ident = d("id.txt")
    run(["age-keygen", "-o", ident])
    recipient = [l for l in open(ident) if l.startswith("# public key: ")][0].split(": ")[1].strip()
    enc = d("secret.age")
    rc, _, err = run([SLI, "encrypt", "-r", recipient, "-o", enc], input=b"the plaintext\n")
    expect(rc == 0, err)
    out = d("plain.txt")
    with open(out, "w") as f:
        f.write("old\n")
    os.chmod(out, 0o666)
    before = os.stat(out).st_ino
    rc, _, err = run([SLI, "decrypt", "-i", ident, "-o", out, enc])
    expect(rc == 0 and open(out).read() == "the plaintext\n", "%d %s" % (rc, err))
    expect(mode(out) == 0o600, "the plaintext is 0600, not the old file's 0666: %o" % mode(out))
    expect(os.stat(out).st_ino != before, "a new file, not the old one rewritten")


@checks.case
def keygen_never_replaces_a_key():
    key, pub = d("keep.pem"), d("keep.pub")
    rc, _, err = run([SLI, "keygen", "--type", "ec", "-o", key, "--pub", pub])
    expect(rc == 0, err)
    first = open(key).read()
    rc, _, err = run([SLI, "keygen", "--type", "ec", "-o", key])
    expect(rc == 3 and "exists" in err and open(key).read() == first,
           "an existing key refused (exit 3) and kept: %d %s" % (rc, err))
    rc, _, err = run([SLI, "keygen", "--type", "ec", "-o", d("new.pem"), "--pub", pub])
    expect(rc == 3 and not os.path.exists(d("new.pem")), "an existing --pub refused too: %d %s" % (rc, err))
    rc, _, err = run([SLI, "keygen", "--type", "ec", "-o", d("same.pem"), "--pub", d("same.pem")])
    expect(rc == 2 and not os.path.exists(d("same.pem")), "-o and --pub one file refused: %d %s"
           % (rc, err))
    rc, _, err = run([SLI, "keygen", "--type", "ec", "-o", key, "--force"])
    expect(rc == 0 and open(key).read() != first, "--force replaces it: %d %s" % (rc, err))


@checks.case
def seventy_recipients_are_seventy():
    idents, recips = [], []
    for i in range(70):
        p = d("id%02d.txt" % i)
        run(["age-keygen", "-o", p])
        idents.append(p)
        recips.append([l for l in open(p) if l.startswith("# public key: ")][0].split(": ")[1].strip())
    rfile = d("recipients.txt")
    with open(rfile, "w") as f:
        f.write("\n".join(recips) + "\n")
    enc = d("seventy.age")
    rc, _, err = run([SLI, "encrypt", "-R", rfile, "-o", enc], input=b"to all seventy\n")
    expect(rc == 0, err)
    stanzas = open(enc, "rb").read().count(b"\n-> X25519 ")
    expect(stanzas == 70, "70 recipient stanzas, not %d" % stanzas)
    sans = [a for i in range(65) for a in ("--san", "DNS:h%d.example" % i)]  # other lists: said
    rc, _, err = run([SLI, "csr", "--key", idents[0], "--subject", "/CN=x", "-o", d("x.csr")] + sans)
    expect(rc == 2 and "at most 64 --san" in err, "a 65th SAN is refused, said: %d %s" % (rc, err))
    for who in (idents[0], idents[64], idents[69]):  # past 64 too
        rc, out, err = run(["age", "-d", "-i", who, enc])
        expect(rc == 0 and out == "to all seventy\n", "age -d with %s: %d %s" % (who, rc, err))
    args = [SLI, "decrypt", "-o", "-", enc]
    for p in idents:
        args[2:2] = ["-i", p]
    rc, out, err = run(args)
    expect(rc == 0 and out == "to all seventy\n", "sli decrypt with 70 identities: %d %s" % (rc, err))


def interrupted(cmd_args, feed, sig, name):
    """Starts `sli` writing `name` from a pipe fed slowly, signals it mid-way: what is left."""
    out = d(name)
    p = subprocess.Popen([SLI] + cmd_args + ["-o", out], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    p.stdin.write(feed[:len(feed) // 2])
    p.stdin.flush()
    time.sleep(0.5)  # the first half is in: the temporary file has content
    os.kill(p.pid, sig)
    try:
        p.stdin.write(feed[len(feed) // 2:])
        p.stdin.close()
    except OSError:
        pass
    p.wait(10)
    return p.returncode, os.path.exists(out), tmp_leftovers(os.path.dirname(out))


@checks.case
def interrupted_commands_leave_nothing():
    ident = d("int-id.txt")
    run(["age-keygen", "-o", ident])
    recipient = [l for l in open(ident) if l.startswith("# public key: ")][0].split(": ")[1].strip()
    plain = os.urandom(8 << 20)
    enc = d("int.age")
    rc, _, err = run([SLI, "encrypt", "-r", recipient, "-o", enc], input=plain)
    expect(rc == 0, err)
    cipher = open(enc, "rb").read()
    for sig in (signal.SIGINT, signal.SIGTERM):
        rc, exists, left = interrupted(["decrypt", "-i", ident], cipher, sig, "int-dec-%d.txt" % sig)
        expect(rc == -sig, "decrypt died of the signal: %s" % rc)
        expect(not exists and not left, "decrypt left output %s, temporary files %s" % (exists, left))
        rc, exists, left = interrupted(["encrypt", "-r", recipient], plain, sig, "int-enc-%d.age" % sig)
        expect(rc == -sig and not exists and not left,
               "encrypt: rc %s, output %s, temporary files %s" % (rc, exists, left))


@checks.case
def keys_passphrases_and_inputs():
    key = d("loose.pem")
    run([SLI, "keygen", "--type", "ec", "-o", key])
    os.chmod(key, 0o644)
    msg = d("msg.txt")
    with open(msg, "w") as f:
        f.write("sign me\n")
    rc, _, err = run([SLI, "sign", "--key", key, "-o", d("msg.sig"), msg])
    expect(rc == 0 and "can be read by others" in err, "a warning for a 0644 key: %s" % err)
    os.chmod(key, 0o600)
    rc, _, err = run([SLI, "sign", "--key", key, "-o", d("msg.sig"), msg])
    expect(rc == 0 and "warning" not in err, "none for 0600: %s" % err)
    # sign -o IN IN: refused, the message kept
    rc, _, err = run([SLI, "sign", "--key", key, "-o", msg, msg])
    expect(rc == 2 and open(msg).read() == "sign me\n", "sign -o IN IN: %d %s" % (rc, err))
    # passphrases: empty refused, 2000 bytes used whole
    empty, long_pw = d("empty.pw"), d("long.pw")
    open(empty, "w").close()
    with open(long_pw, "w") as f:
        f.write("x" * 1500 + "y" * 500 + "\n")
    rc, _, err = run([SLI, "keygen", "--type", "ec", "--passphrase-file", empty, "-o", d("e.pem")])
    expect(rc == 3 and "empty" in err and not os.path.exists(d("e.pem")), "%d %s" % (rc, err))
    rc, _, err = run([SLI, "keygen", "--type", "ec", "--passphrase-file", long_pw, "-o", d("l.pem")])
    expect(rc == 0, err)
    cut = d("cut.pw")
    with open(cut, "w") as f:
        f.write("x" * 1023 + "\n")
    rc, _, err = run([SLI, "sign", "--key", d("l.pem"), "--passphrase-file", cut, "-o", d("l.sig"), msg])
    expect(rc != 0, "the first 1023 bytes do not open it (no truncation): %d" % rc)
    rc, _, err = run([SLI, "sign", "--key", d("l.pem"), "--passphrase-file", long_pw, "-o", d("l.sig"), msg])
    expect(rc == 0, "the whole passphrase does: %s" % err)
    # seal: over 64 MiB refused, said; a write error says why
    kr = d("kr")
    run([SLI, "keyring", "new", kr])
    big = d("big.bin")
    with open(big, "wb") as f:
        f.truncate((64 << 20) + 1)
    rc, _, err = run([SLI, "seal", "--keyring", kr, "-o", d("big.sealed"), big])
    expect(rc != 0 and "64 MiB" in err and "sli encrypt" in err, "%d %s" % (rc, err))
    rc, _, err = run([SLI, "seal", "--keyring", kr, "-o", d("no-such-dir/x.sealed"), msg])
    expect(rc == 1 and "No such file or directory" in err, "the reason: %s" % err)


RSS_WRAPPER = ("import resource, subprocess, sys\n"
               "r = subprocess.run(sys.argv[1:])\n"
               "sys.stdout.flush()\n"
               "print('peak-rss-kib', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
               "sys.exit(r.returncode)\n")


def max_rss_kib(args, feed_mib):
    """Runs `sli ARGS` with `feed_mib` MiB piped to stdin: (rc, stdout, its peak RSS in KiB),
    measured by a fresh python parent of its own (RUSAGE_CHILDREN is the peak of all children)."""
    p = subprocess.Popen(["/usr/bin/python3", "-c", RSS_WRAPPER, SLI] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    block = bytes(range(256)) * 4096  # 1 MiB
    for _ in range(feed_mib):
        p.stdin.write(block)
    p.stdin.close()
    out = p.stdout.read()
    p.wait(60)
    text, _, peak = out.rpartition(b"peak-rss-kib ")
    return p.returncode, text, int(peak or 0)


@checks.case
def sign_and_verify_stream():
    """ECDSA and RSA signatures of 512 MiB from a pipe in constant memory (was: the whole input
    held), checked by openssl; and verified by sli the same way."""
    big = 512
    for kind in ("ec", "rsa"):
        key, pub = d("stream-%s.pem" % kind), d("stream-%s.pub" % kind)
        run([SLI, "keygen", "--type", kind, "-o", key, "--pub", pub])
        sig = d("stream-%s.sig" % kind)
        rc, _, peak = max_rss_kib(["sign", "--key", key, "-o", sig], big)
        expect(rc == 0, "sign: %d" % rc)
        expect(peak < 64 * 1024, "sign held %d KiB for %d MiB of input" % (peak, big))
        print("     sli sign (%s) of %d MiB from a pipe: peak RSS %d KiB" % (kind, big, peak))
        msg = d("stream.bin")
        if not os.path.exists(msg):
            with open(msg, "wb") as f:
                block = bytes(range(256)) * 4096
                for _ in range(big):
                    f.write(block)
        extra = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"] if kind == "rsa" else []
        rc, out, err = run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sig] + extra + [msg],
                           timeout=60)
        expect(rc == 0 and "Verified OK" in out, "openssl checks sli's %s signature: %s %s" % (kind, out, err))
        rc, out, peak = max_rss_kib(["verify", "--pub", pub, "--sig", sig], big)
        expect(rc == 0 and b"verified" in out and peak < 64 * 1024,
               "sli verify streams too: rc %d, %d KiB" % (rc, peak))
    os.unlink(d("stream.bin"))


sys.exit(checks.finish(d))
