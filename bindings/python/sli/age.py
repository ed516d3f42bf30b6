"""age.py — age v1 files (api/sli.h, "age v1 file encryption"), interoperable with the `age` tool:
X25519 ("age1…"), SSH (ssh-ed25519, ssh-rsa) and passphrase recipients; streaming in constant
memory through file-like objects.

    with open("out.age", "wb") as f, sli.age.Encryptor(f, [sli.age.Recipient.parse(r)]) as w:
        shutil.copyfileobj(src, w)
    with open("out.age", "rb") as f:
        r = sli.age.Decryptor(f, [identity])
        data = r.read()

A Decryptor releases each 64 KiB chunk once it is authenticated; the file is whole only when the
end is read without an error. With all_or_nothing=True nothing is released before the end is
authenticated (the plaintext waits in a temporary file, on disk past 8 MiB)."""
import ctypes
import io

import tempfile
from typing import BinaryIO, Iterable, Optional, Union

from . import _lib
from .errors import Error, check
from .keys import Key

_READ = 1 << 20  # ciphertext read per step: 16 chunks


class Recipient:
    """Whom a file is encrypted to."""

    def __init__(self, handle: ctypes.c_void_p):
        self._h = handle

    @classmethod
    def parse(cls, text: str) -> "Recipient":
        """An "age1…" string or an OpenSSH public-key line."""
        h = ctypes.c_void_p()
        check(_lib.sli_age_recipient_parse(ctypes.byref(h), text.strip().encode()))
        return cls(h)

    @classmethod
    def passphrase(cls, passphrase: Union[str, bytes], log2_n: int = 0) -> "Recipient":
        """A passphrase (scrypt, work factor 2^log2_n, 18 when 0); a file with one has no other."""
        pw = passphrase.encode() if isinstance(passphrase, str) else passphrase
        h = ctypes.c_void_p()
        check(_lib.sli_age_recipient_scrypt(ctypes.byref(h), pw, log2_n))
        return cls(h)

    @classmethod
    def from_key(cls, key: Key) -> "Recipient":
        h = ctypes.c_void_p()
        with key._held() as kh:
            check(_lib.sli_age_recipient_from_key(ctypes.byref(h), kh))
        return cls(h)

    def __str__(self) -> str:
        buf = ctypes.create_string_buffer(3000)
        check(_lib.sli_age_recipient_encode(self._h, buf, len(buf)))
        return buf.value.decode()

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.sli_age_recipient_free(h)


class Identity:
    """What opens a file."""

    def __init__(self, handle: ctypes.c_void_p):
        self._h = handle

    @classmethod
    def generate(cls) -> "Identity":
        h = ctypes.c_void_p()
        check(_lib.sli_age_identity_generate(ctypes.byref(h)))
        return cls(h)

    @classmethod
    def parse(cls, text: str) -> "Identity":
        """An "AGE-SECRET-KEY-1…" string."""
        h = ctypes.c_void_p()
        check(_lib.sli_age_identity_parse(ctypes.byref(h), text.strip().encode()))
        return cls(h)

    @classmethod
    def passphrase(cls, passphrase: Union[str, bytes]) -> "Identity":
        pw = passphrase.encode() if isinstance(passphrase, str) else passphrase
        h = ctypes.c_void_p()
        check(_lib.sli_age_identity_scrypt(ctypes.byref(h), pw))
        return cls(h)

    @classmethod
    def from_key(cls, key: Key) -> "Identity":
        """An X25519 key, or an SSH key (Ed25519, RSA) for the files age encrypts to it."""
        h = ctypes.c_void_p()
        with key._held() as kh:
            check(_lib.sli_age_identity_from_key(ctypes.byref(h), kh))
        return cls(h)

    def recipient(self) -> Recipient:
        h = ctypes.c_void_p()
        check(_lib.sli_age_identity_recipient(self._h, ctypes.byref(h)))
        return Recipient(h)

    def __str__(self) -> str:
        buf = ctypes.create_string_buffer(128)
        check(_lib.sli_age_identity_encode(self._h, buf, len(buf)))
        return buf.value.decode()

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.sli_age_identity_free(h)


class _Out:
    """One output buffer for an encryptor's or decryptor's steps, grown as needed and reused: a
    fresh megabyte per step cost more in page faults than the cipher did."""

    def __init__(self):
        self.buf, self.arr = bytearray(0), None

    def get(self, need: int):
        if len(self.buf) < max(1, need):
            self.buf = bytearray(max(1, need))
            self.arr = (ctypes.c_char * len(self.buf)).from_buffer(self.buf)
        return self.buf, self.arr


def _handles(objs):
    objs = list(objs)
    arr = (ctypes.c_void_p * max(1, len(objs)))(*[o._h for o in objs])
    return objs, arr, len(objs)


class Encryptor(io.RawIOBase):
    """A writable file: what is written goes encrypted to `dst`; close() writes the last chunk
    (and the armor's end). `dst` is not closed."""

    def __init__(self, dst: BinaryIO, recipients: Iterable[Recipient], armor: bool = False,
                 parallel: bool = False):
        super().__init__()
        self._dst = dst
        self._rcpts, arr, n = _handles(recipients)  # kept: the encryptor copies what it needs
        h = ctypes.c_void_p()
        flags = (_lib.AGE_ARMOR if armor else 0) | (_lib.AGE_PARALLEL if parallel else 0)
        check(_lib.sli_age_enc_new(ctypes.byref(h), ctypes.cast(arr, _lib.c_pp), n, flags))
        self._h = h
        self._out = _Out()

    def writable(self) -> bool:
        return True

    def _fail(self, rc: int) -> None:
        m = _lib.sli_age_enc_error(self._h)
        check(rc, m.decode(errors="replace") if m else "")

    _broken = False

    def write(self, data) -> int:
        if self._broken:
            raise ValueError("the encryptor failed earlier: its output is incomplete")
        if self._h is None:
            raise ValueError("write to a closed encryptor")
        try:
            return self._write(bytes(data))
        except BaseException:
            self._broken = True  # a part the engine sealed may be missing from dst
            raise

    def _write(self, data: bytes) -> int:
        done = 0
        while done < len(data):
            piece = data[done:done + _READ]
            cap = _lib.sli_age_enc_update_bound(self._h, len(piece))
            buf, arr = self._out.get(cap)
            n = ctypes.c_size_t(cap)
            rc = _lib.sli_age_enc_update(self._h, arr, ctypes.byref(n), piece, len(piece))
            if rc < 0:
                self._fail(rc)
            if n.value:
                self._dst.write(memoryview(buf)[:n.value])
            done += len(piece)
        return len(data)

    def abort(self) -> None:
        """Ends without the last chunk: what was written is not a valid age file (its end is
        missing, so no reader takes it as whole)."""
        if self.closed:
            return
        _lib.sli_age_enc_free(self._h)
        self._h = None
        super().close()

    def __exit__(self, exc_type, exc, tb) -> None:
        # an exception inside `with` (the source failed mid-way): never finish the file, or a
        # cut plaintext would read as a whole, authentic one
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def close(self) -> None:
        """Writes the last chunk (and the armor's end); after a failed write, aborts instead and
        raises ValueError."""
        if self.closed:
            return
        if self._broken:
            self.abort()
            raise ValueError("the encryptor failed earlier: the file was left without its end")
        try:
            cap = _lib.sli_age_enc_final_bound(self._h)
            out = ctypes.create_string_buffer(max(1, cap))
            n = ctypes.c_size_t(cap)
            rc = _lib.sli_age_enc_final(self._h, out, ctypes.byref(n))
            if rc < 0:
                self._fail(rc)
            self._dst.write(out.raw[:n.value])
            if hasattr(self._dst, "flush"):
                self._dst.flush()
        finally:
            _lib.sli_age_enc_free(self._h)
            self._h = None
            super().close()


class Decryptor(io.RawIOBase):
    """A readable file of the plaintext of the age file `src`. Each chunk is released once it is
    authenticated; a changed, cut or extended file raises sli.Error (SLI_E_PAYLOAD, …) at the read
    that reaches it. With all_or_nothing=True the first read decrypts the whole file into a
    temporary file and releases nothing unless all of it is authentic."""

    def __init__(self, src: BinaryIO, identities: Iterable[Identity], all_or_nothing: bool = False,
                 parallel: bool = False):
        super().__init__()
        self._src = src
        self._ids, arr, n = _handles(identities)
        h = ctypes.c_void_p()
        check(_lib.sli_age_dec_new(ctypes.byref(h), ctypes.cast(arr, _lib.c_pp), n,
                                   _lib.AGE_PARALLEL if parallel else 0))
        self._h = h
        self._buf = b""
        self._eof = False
        self._spool: Optional[BinaryIO] = None
        self._whole = all_or_nothing
        self._out = _Out()

    def readable(self) -> bool:
        return True

    def _fail(self, rc: int) -> None:
        m = _lib.sli_age_dec_error(self._h)
        check(rc, m.decode(errors="replace") if m else "")

    def _step(self) -> bytes:
        """The next authenticated plaintext ("" at the authenticated end)."""
        while True:
            ct = self._src.read(_READ)
            ct_len = len(ct)
            if not ct_len:
                out = ctypes.create_string_buffer(_lib.AGE_CHUNK)
                n = ctypes.c_size_t(len(out))
                rc = _lib.sli_age_dec_final(self._h, out, ctypes.byref(n))
                if rc < 0:
                    self._fail(rc)
                self._eof = True
                return out.raw[:n.value]
            cap = _lib.sli_age_dec_update_bound(self._h, ct_len)
            buf, arr = self._out.get(cap)
            n = ctypes.c_size_t(cap)
            rc = _lib.sli_age_dec_update(self._h, arr, ctypes.byref(n), ct, ct_len)
            if rc < 0:
                self._fail(rc)
            if n.value:
                return bytes(memoryview(buf)[:n.value])  # the buffer is wiped at close()

    def _spool_all(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        try:
            while not self._eof:
                self._spool.write(self._step())
        except BaseException:
            self._spool.close()
            self._spool = None
            raise
        self._spool.seek(0)

    _broken: Optional[BaseException] = None

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes of authenticated plaintext (all of it with -1); b"" at the end. After
        any failure — the file's, or the source's own exception — every read raises: the engine
        has moved past what was lost, so nothing later may read as whole."""
        if self._broken is not None:
            raise ValueError("the decryptor failed earlier: %r" % (self._broken,))
        if self.closed:
            raise ValueError("read of a closed decryptor")
        try:
            return self._read(size)
        except BaseException as e:
            self._broken = e
            raise

    def _read(self, size: int) -> bytes:
        if size is None:
            size = -1
        if self._whole:
            if self._spool is None:
                self._spool_all()
            return self._spool.read(size)
        parts = [self._buf] if self._buf else []
        have = len(self._buf)
        while (size < 0 or have < size) and not self._eof:
            piece = self._step()
            parts.append(piece)
            have += len(piece)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if size < 0 or size >= len(data):
            self._buf = b""
            return data
        self._buf = data[size:]
        return data[:size]

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if self.closed:
            return
        if self._spool is not None:
            self._spool.close()
        if self._out.arr is not None:
            ctypes.memset(self._out.arr, 0, len(self._out.buf))  # plaintext of the last step
        if self._h:
            _lib.sli_age_dec_free(self._h)
            self._h = None
        super().close()


def encrypt(data: bytes, recipients: Iterable[Recipient], armor: bool = False) -> bytes:
    """`data` as an age file, in memory."""
    out = io.BytesIO()
    with Encryptor(out, recipients, armor=armor) as w:
        w.write(data)
    return out.getvalue()


def decrypt(data: bytes, identities: Iterable[Identity]) -> bytes:
    """The plaintext of an age file given in memory (all of it authentic, or sli.Error)."""
    with Decryptor(io.BytesIO(data), identities) as r:
        return r.read()


__all__ = ["Recipient", "Identity", "Encryptor", "Decryptor", "encrypt", "decrypt", "Error"]

