"""keys.py — key pairs and signatures (api/sli.h, "Key pairs and signatures"): Ed25519, ECDSA
P-256 with SHA-256, RSA-PSS with SHA-256 — the signatures `openssl dgst`/`pkeyutl` make and check."""
import ctypes
import os
from typing import Optional, Union

from . import _lib
from ._owned import Owned
from .errors import check

Bytes = Union[bytes, bytearray, memoryview]
_TYPES = {"rsa": 1, "ec": 2, "ed25519": 3, "x25519": 4}
_NAMES = {v: k for k, v in _TYPES.items()}


def _take(ptr: ctypes.c_void_p, n: ctypes.c_size_t) -> bytes:
    """The bytes of an allocation of libsli's, then freed (wiped) by it."""
    try:
        return ctypes.string_at(ptr, n.value).rstrip(b"\0")
    finally:
        _lib.sli_free(ptr, n.value)


class Key(Owned):
    """A private key (which also acts as its public key) or a public key alone. Immutable and
    thread-safe (close() from another thread waits for the calls using it)."""
    _free = staticmethod(_lib.sli_key_free)
    _what = "key"

    def __init__(self, handle: ctypes.c_void_p):
        self._own(handle)

    def _call(self, fn, *args):
        """fn(handle, *args) with the handle kept in use for the call."""
        with self._held() as h:
            return fn(h, *args)

    @classmethod
    def generate(cls, kind: str = "ec", bits: int = 0) -> "Key":
        """A new key: "ec" (`bits` 256 — the default —, 384 or 521), "ed25519", "x25519" or "rsa"
        (`bits` 2048 — the default —, 3072 or 4096)."""
        if kind not in _TYPES:
            raise ValueError("kind must be one of %s" % ", ".join(sorted(_TYPES)))
        h = ctypes.c_void_p()
        check(_lib.sli_key_generate(ctypes.byref(h), _TYPES[kind], bits, 0))
        return cls(h)

    @classmethod
    def load(cls, path: Union[str, os.PathLike], password: Optional[Union[str, bytes]] = None) -> "Key":
        """A PEM private key (encrypted with `password` if it is) or public key."""
        h = ctypes.c_void_p()
        msg = ctypes.create_string_buffer(512)
        pw = password.encode() if isinstance(password, str) else password
        rc = _lib.sli_key_load_file(ctypes.byref(h), os.fsencode(path), pw, msg, len(msg))
        check(rc, msg.value.decode(errors="replace"))
        return cls(h)

    @property
    def kind(self) -> str:
        return _NAMES.get(self._call(_lib.sli_key_type), "unknown")

    @property
    def bits(self) -> int:
        return self._call(_lib.sli_key_bits)

    @property
    def has_private(self) -> bool:
        return bool(self._call(_lib.sli_key_has_private))

    def private_pem(self, passphrase: Optional[Union[str, bytes]] = None) -> bytes:
        """PKCS#8 PEM, encrypted with `passphrase` if given."""
        pw = passphrase.encode() if isinstance(passphrase, str) else passphrase
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(self._call(_lib.sli_key_private_pem_alloc, pw, ctypes.byref(p), ctypes.byref(n)))
        return _take(p, n)

    def public_pem(self) -> bytes:
        p, n = ctypes.c_void_p(), ctypes.c_size_t()
        check(self._call(_lib.sli_key_public_pem_alloc, ctypes.byref(p), ctypes.byref(n)))
        return _take(p, n)

    def sign(self, data: Bytes) -> bytes:
        data = bytes(data)
        with self._held() as h:
            out = ctypes.create_string_buffer(_lib.sli_key_sig_max_size(h) or 1)
            n = ctypes.c_size_t(len(out))
            check(_lib.sli_key_sign(h, out, ctypes.byref(n), data, len(data)))
        return out.raw[:n.value]

    def verify(self, signature: Bytes, data: Bytes) -> None:
        """Returns if `signature` is this key's over `data`; else sli.Error (SLI_E_SIGNATURE)."""
        sig, data = bytes(signature), bytes(data)
        check(self._call(_lib.sli_key_verify, sig, len(sig), data, len(data)))

    def signer(self) -> "Signer":
        """A signature over a message given in pieces (a file as it is read)."""
        return Signer(self, verify=False)

    def verifier(self) -> "Signer":
        return Signer(self, verify=True)


class Signer:
    """Makes (or checks) the signature Key.sign makes, over `update`d pieces. One use."""

    def __init__(self, key: Key, verify: bool):
        self._key = key
        h = ctypes.c_void_p()
        with key._held() as kh:
            check(_lib.sli_signer_new(ctypes.byref(h), kh, 1 if verify else 0))
            self._max = _lib.sli_key_sig_max_size(kh) or 1  # the signer keeps its own key
        self._h = h

    def update(self, data: Bytes) -> "Signer":
        data = bytes(data)
        check(_lib.sli_signer_update(self._h, data, len(data)))
        return self

    def sign(self) -> bytes:
        out = ctypes.create_string_buffer(self._max)
        n = ctypes.c_size_t(len(out))
        check(_lib.sli_signer_sign_final(self._h, out, ctypes.byref(n)))
        return out.raw[:n.value]

    def verify(self, signature: Bytes) -> None:
        """Returns if it verifies; else sli.Error (SLI_E_SIGNATURE)."""
        sig = bytes(signature)
        check(_lib.sli_signer_verify_final(self._h, sig, len(sig)))

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.sli_signer_free(h)
