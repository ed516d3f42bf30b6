#!/usr/bin/python3
"""make_vectors.py — writes the age v1 test vectors of this directory: an independent implementation
of the C2SP age format (https://c2sp.org/age) in Python (standard library + python3-cryptography),
sharing no code with sli. Everything is derived from fixed labels (identity, ephemeral secrets, file
keys, payload nonces, plaintexts), so running it again reproduces the same bytes:

    python3 tests/age/vectors/make_vectors.py

It writes identity.txt (the AGE-SECRET-KEY-1... every vector is addressed to; a test-only key that
protects nothing), one <name>.age per vector and expected.txt, one line per vector: "<file> ok
<sha256 of the plaintext>" or "<file> <SLI_E_* name>" — the failure class the spec gives the vector,
not whatever an implementation happens to print. README.md describes the vectors."""
import base64
import hashlib
import hmac
import os
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNK = 64 * 1024


def det(label, n):
    """n bytes fixed by `label` (the vectors' only source of 'randomness')."""
    return hashlib.shake_256(b"sli age test vectors/" + label.encode()).digest(n)


# ---- bech32 (BIP 173), as age uses it: no length limit --------------------------------------------
CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values):
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def bech32_encode(hrp, data):
    acc = bits = 0
    five = []
    for b in data:
        acc = (acc << 8) | b
        bits += 8
        while bits >= 5:
            bits -= 5
            five.append((acc >> bits) & 31)
    if bits:
        five.append((acc << (5 - bits)) & 31)
    expanded = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]
    pm = _polymod(expanded + five + [0] * 6) ^ 1
    checksum = [(pm >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(CHARSET[d] for d in five + checksum)


# ---- primitives ----------------------------------------------------------------------------------
def b64(data):
    """Unpadded standard base64 (canonical), as text."""
    return base64.b64encode(data).decode().rstrip("=")


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def raw_pub(priv):
    return priv.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


IDENTITY = X25519PrivateKey.from_private_bytes(det("identity", 32))
RECIPIENT = raw_pub(IDENTITY)
OTHER = X25519PrivateKey.from_private_bytes(det("other identity", 32))  # a key no vector ships
OTHER_RECIPIENT = raw_pub(OTHER)


# ---- header --------------------------------------------------------------------------------------
def body_lines(b64_text):
    """A stanza body wrapped at 64 columns, always ending with a line shorter than 64 (maybe empty)."""
    lines = [b64_text[i:i + 64] for i in range(0, len(b64_text), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    return "".join(line + "\n" for line in lines)


def stanza(args, body):
    return ("-> " + " ".join(args) + "\n" + body_lines(b64(body))).encode()


def x25519_wrap(share, shared, recipient, file_key):
    key = hkdf(shared, share + recipient, b"age-encryption.org/v1/X25519")
    return ChaCha20Poly1305(key).encrypt(b"\x00" * 12, file_key, None)


def x25519_stanza(recipient, file_key, label):
    eph = X25519PrivateKey.from_private_bytes(det("ephemeral/" + label, 32))
    share = raw_pub(eph)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient))
    return stanza(["X25519", b64(share)], x25519_wrap(share, shared, recipient, file_key))


def header_mac(file_key, head):
    return hmac.new(hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()


def header(file_key, stanzas, version=b"age-encryption.org/v1"):
    """The header bytes, MAC line included (computed over exactly what is written)."""
    head = version + b"\n" + b"".join(stanzas) + b"---"
    return head + b" " + b64(header_mac(file_key, head)).encode() + b"\n"


# ---- payload -------------------------------------------------------------------------------------
def chunks_of(plaintext):
    """The spec's split: 64 KiB chunks, the last one short or full but never empty unless the whole
    payload is empty. Returns [(plaintext, last_flag)]."""
    pieces = [plaintext[i:i + CHUNK] for i in range(0, len(plaintext), CHUNK)] or [b""]
    return [(p, i == len(pieces) - 1) for i, p in enumerate(pieces)]


def seal_chunks(file_key, nonce, pieces):
    """Encrypts [(plaintext, last_flag)] with counters 0, 1, ...; returns the list of sealed chunks."""
    aead = ChaCha20Poly1305(hkdf(file_key, nonce, b"payload"))
    return [aead.encrypt(i.to_bytes(11, "big") + (b"\x01" if last else b"\x00"), p, None)
            for i, (p, last) in enumerate(pieces)]


class Parts:
    """One age file in parts, so that a vector can break exactly one of them."""

    def __init__(self, name, plaintext, stanzas=None, pieces=None):
        self.file_key = det("file key/" + name, 16)
        self.nonce = det("payload nonce/" + name, 16)
        self.stanzas = stanzas if stanzas is not None else [
            x25519_stanza(RECIPIENT, self.file_key, name)]
        self.header = header(self.file_key, self.stanzas)
        self.chunks = seal_chunks(self.file_key, self.nonce, pieces or chunks_of(plaintext))

    def bytes(self):
        return self.header + self.nonce + b"".join(self.chunks)


def armor(data, columns=64):
    text = base64.b64encode(data).decode()
    lines = "".join(text[i:i + columns] + "\n" for i in range(0, len(text), columns))
    return ("-----BEGIN AGE ENCRYPTED FILE-----\n" + lines + "-----END AGE ENCRYPTED FILE-----\n").encode()


# ---- the vectors ---------------------------------------------------------------------------------
SMALL = b"sli age test vector: a small file\n"
ARMORED = b"sli age test vector: an armored file, long enough for several lines of base64.\n" * 3
FULL = det("plaintext/64k", CHUNK)
FULL1 = det("plaintext/64k+1", CHUNK + 1)


def vectors():
    """Yields (name, bytes, expected, plaintext or None)."""
    ok = "ok"
    yield "valid_small", Parts("valid_small", SMALL).bytes(), ok, SMALL
    yield "valid_empty", Parts("valid_empty", b"").bytes(), ok, b""
    yield "valid_64k", Parts("valid_64k", FULL).bytes(), ok, FULL
    yield "valid_64k_plus1", Parts("valid_64k_plus1", FULL1).bytes(), ok, FULL1
    inner = Parts("valid_armored", ARMORED).bytes()
    assert len(base64.b64encode(inner)) % 64 != 0  # a short last line, whichever reading of RFC 7468
    yield "valid_armored", armor(inner), ok, ARMORED

    fk = det("file key/valid_two_stanzas", 16)
    st = [x25519_stanza(OTHER_RECIPIENT, fk, "valid_two_stanzas/other"),
          x25519_stanza(RECIPIENT, fk, "valid_two_stanzas"),
          stanza(["future-type", "arg"], det("future body", 48))]  # 48 bytes: a 64-column line + ""
    yield "valid_two_stanzas", Parts("valid_two_stanzas", SMALL, st).bytes(), ok, SMALL

    fk = det("file key/valid_unknown_first", 16)
    st = [stanza(["example.org/future", "a1", "b2"], det("future body 100", 100)),  # 64 + 64 + 6
          x25519_stanza(RECIPIENT, fk, "valid_unknown_first")]
    yield "valid_unknown_first", Parts("valid_unknown_first", SMALL, st).bytes(), ok, SMALL

    # ---- header: malformed (SLI_E_HEADER) ----
    p = Parts("bad_version", SMALL)
    p.header = header(p.file_key, p.stanzas, version=b"age-encryption.org/v2")
    yield "bad_version", p.bytes(), "SLI_E_HEADER", None

    p = Parts("missing_mac", SMALL)
    head = b"age-encryption.org/v1\n" + b"".join(p.stanzas)
    yield "missing_mac", head + p.nonce + b"".join(p.chunks), "SLI_E_HEADER", None

    p = Parts("mac_bad_base64", SMALL)
    mac = b64(header_mac(p.file_key, p.header[:p.header.rindex(b"---") + 3]))
    p.header = p.header[:p.header.rindex(b"--- ") + 4] + (mac[:20] + "!" + mac[21:]).encode() + b"\n"
    yield "mac_bad_base64", p.bytes(), "SLI_E_HEADER", None

    p = Parts("mac_padded", SMALL)
    mac = base64.b64encode(header_mac(p.file_key, p.header[:p.header.rindex(b"---") + 3]))  # with "="
    p.header = p.header[:p.header.rindex(b"--- ") + 4] + mac + b"\n"
    yield "mac_padded", p.bytes(), "SLI_E_HEADER", None

    fk = det("file key/stanza_noncanonical_base64", 16)
    good = x25519_stanza(RECIPIENT, fk, "stanza_noncanonical_base64").decode()
    arg_line, body, _ = good.split("\n")
    # 32 bytes are 43 characters whose last carries 2 unused bits that canonical base64 leaves at 0;
    # set one: a lenient decoder reads the same 32 bytes. The MAC covers the non-canonical text.
    alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    assert len(body) == 43 and alpha.index(body[-1]) & 3 == 0
    body = body[:-1] + alpha[alpha.index(body[-1]) | 1]
    st = [(arg_line + "\n" + body + "\n").encode()]
    yield "stanza_noncanonical_base64", Parts("stanza_noncanonical_base64", SMALL, st).bytes(), \
        "SLI_E_HEADER", None

    fk = det("file key/stanza_long_line", 16)
    st = [b"-> future-type arg\n" + b64(det("long", 60)).encode() + b"\n",  # one 80-column line
          x25519_stanza(RECIPIENT, fk, "stanza_long_line")]
    yield "stanza_long_line", Parts("stanza_long_line", SMALL, st).bytes(), "SLI_E_HEADER", None

    fk = det("file key/x25519_short_share", 16)
    eph = X25519PrivateKey.from_private_bytes(det("ephemeral/x25519_short_share", 32))
    share = raw_pub(eph)
    body = x25519_wrap(share, eph.exchange(X25519PublicKey.from_public_bytes(RECIPIENT)), RECIPIENT, fk)
    st = [stanza(["X25519", b64(share[:31])], body)]
    yield "x25519_short_share", Parts("x25519_short_share", SMALL, st).bytes(), "SLI_E_HEADER", None

    fk = det("file key/x25519_extra_arg", 16)
    good = x25519_stanza(RECIPIENT, fk, "x25519_extra_arg")
    arg_end = good.index(b"\n")
    st = [good[:arg_end] + b" extra" + good[arg_end:]]  # "-> X25519 <share> extra": 3 arguments
    yield "x25519_extra_arg", Parts("x25519_extra_arg", SMALL, st).bytes(), "SLI_E_HEADER", None

    fk = det("file key/x25519_body_33_bytes", 16)
    good = x25519_stanza(RECIPIENT, fk, "x25519_body_33_bytes").decode()
    arg_line, body, _ = good.split("\n")
    padded = base64.b64decode(body + "=") + b"\x00"  # 33 bytes: the spec's length check comes first
    st = [(arg_line + "\n" + body_lines(b64(padded))).encode()]
    yield "x25519_body_33_bytes", Parts("x25519_body_33_bytes", SMALL, st).bytes(), "SLI_E_HEADER", None

    fk = det("file key/stanza_missing_final_line", 16)
    full = stanza(["future-type", "arg"], det("future body", 48))
    assert full.endswith(b"\n\n")
    st = [x25519_stanza(RECIPIENT, fk, "stanza_missing_final_line"), full[:-1]]  # no empty last line
    yield "stanza_missing_final_line", Parts("stanza_missing_final_line", SMALL, st).bytes(), \
        "SLI_E_HEADER", None

    # An all-zero or low-order share makes the shared secret all zeros for any identity: the body is
    # wrapped with exactly that, so an implementation that skips the check would open the file.
    for name, share in (("x25519_zero_share", bytes(32)),
                        ("x25519_low_order_share", bytes.fromhex(
                            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"))):
        fk = det("file key/" + name, 16)
        st = [stanza(["X25519", b64(share)], x25519_wrap(share, bytes(32), RECIPIENT, fk))]
        yield name, Parts(name, SMALL, st).bytes(), "SLI_E_HEADER", None

    # ---- header: authentication (SLI_E_HEADER_MAC) ----
    fk = det("file key/header_modified_after_mac", 16)
    st = [x25519_stanza(RECIPIENT, fk, "header_modified_after_mac"),
          stanza(["future-type", "arg"], det("future body 16", 16))]
    data = Parts("header_modified_after_mac", SMALL, st).bytes()
    assert data.count(b"-> future-type arg\n") == 1
    yield "header_modified_after_mac", data.replace(b"-> future-type arg\n", b"-> future-type arh\n"), \
        "SLI_E_HEADER_MAC", None

    p = Parts("bad_mac", SMALL)
    mac = bytearray(header_mac(p.file_key, p.header[:p.header.rindex(b"---") + 3]))
    mac[7] ^= 0x10
    p.header = p.header[:p.header.rindex(b"--- ") + 4] + b64(bytes(mac)).encode() + b"\n"
    yield "bad_mac", p.bytes(), "SLI_E_HEADER_MAC", None

    # ---- no stanza for the identity (SLI_E_NO_MATCH) ----
    fk = det("file key/no_match", 16)
    st = [x25519_stanza(OTHER_RECIPIENT, fk, "no_match")]
    yield "no_match", Parts("no_match", SMALL, st).bytes(), "SLI_E_NO_MATCH", None

    # ---- payload (SLI_E_PAYLOAD) ----
    data = bytearray(Parts("payload_bitflip", SMALL).bytes())
    data[-20] ^= 0x01  # inside the ciphertext of the only chunk
    yield "payload_bitflip", bytes(data), "SLI_E_PAYLOAD", None

    p = Parts("truncated_last_chunk", FULL + SMALL)
    assert len(p.chunks) == 2
    p.chunks = p.chunks[:1]  # ends at a chunk boundary after a non-final chunk
    yield "truncated_last_chunk", p.bytes(), "SLI_E_PAYLOAD", None

    p = Parts("missing_last_flag", SMALL, pieces=[(SMALL, False)])
    yield "missing_last_flag", p.bytes(), "SLI_E_PAYLOAD", None

    yield "appended_data", Parts("appended_data", SMALL).bytes() + b"appended after the final chunk", \
        "SLI_E_PAYLOAD", None

    p = Parts("empty_last_chunk", FULL, pieces=[(FULL, False), (b"", True)])
    yield "empty_last_chunk", p.bytes(), "SLI_E_PAYLOAD", None

    p = Parts("reordered_chunks", FULL + FULL + SMALL)
    assert len(p.chunks) == 3
    p.chunks[0], p.chunks[1] = p.chunks[1], p.chunks[0]
    yield "reordered_chunks", p.bytes(), "SLI_E_PAYLOAD", None

    p = Parts("nonce_truncated", SMALL)
    yield "nonce_truncated", p.header + p.nonce[:10], "SLI_E_PAYLOAD", None

    p = Parts("nonce_only", SMALL)
    yield "nonce_only", p.header + p.nonce, "SLI_E_PAYLOAD", None

    p = Parts("payload_missing", SMALL)
    yield "payload_missing", p.header, "SLI_E_PAYLOAD", None

    yield "empty_file", b"", "SLI_E_HEADER", None

    # ---- ASCII armor (SLI_E_ARMOR); the binary inside is valid_armored's, intact ----
    good = armor(inner).decode().split("\n")  # BEGIN, base64 lines, END, ""
    bad = list(good)
    bad[2] = bad[2][:30] + "*" + bad[2][31:]
    yield "armor_bad_char", "\n".join(bad).encode(), "SLI_E_ARMOR", None
    yield "armor_missing_end", "\n".join(good[:-2] + [""]).encode(), "SLI_E_ARMOR", None
    yield "armor_long_lines", armor(inner, columns=76), "SLI_E_ARMOR", None
    bad = list(good)
    bad[1:3] = [bad[1][:60], bad[1][60:] + bad[2]]  # 60 then 68 columns: same base64, wrong wrap
    yield "armor_short_line", "\n".join(bad).encode(), "SLI_E_ARMOR", None
    yield "armor_garbage_after_end", armor(inner) + b"garbage after the armor\n", "SLI_E_ARMOR", None


def main():
    identity = bech32_encode("age-secret-key-", det("identity", 32)).upper()
    recipient = bech32_encode("age", RECIPIENT)
    with open(os.path.join(HERE, "identity.txt"), "w") as f:
        f.write("# test-only identity of the sli age vectors (protects nothing)\n")
        f.write("# public key: %s\n%s\n" % (recipient, identity))
    names = []
    lines = ["# generated by make_vectors.py: <file> ok <sha256 of plaintext> | <file> <SLI_E_* class>"]
    for name, data, expected, plaintext in vectors():
        assert len(data) < 200 * 1024, name
        fname = name + ".age"
        names.append(fname)
        with open(os.path.join(HERE, fname), "wb") as f:
            f.write(data)
        lines.append("%s %s" % (fname, "ok " + hashlib.sha256(plaintext).hexdigest()
                                if expected == "ok" else expected))
    for old in os.listdir(HERE):  # drop vectors this script no longer makes
        if old.endswith(".age") and old not in names:
            os.remove(os.path.join(HERE, old))
    with open(os.path.join(HERE, "expected.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%d vectors, recipient %s" % (len(names), recipient), file=sys.stderr)


if __name__ == "__main__":
    main()
