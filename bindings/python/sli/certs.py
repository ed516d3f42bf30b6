"""certs.py — certificates (api/sli.h, "Certificates" and "Certificate requests"): inspect one,
make a request or a self-signed certificate for a Key, issue from a CA."""
import ctypes
import os
from typing import List, Sequence, Union

from . import _lib
from .errors import check
from .keys import Key, _take


def _sans(sans: Sequence[str]):
    arr = (ctypes.c_char_p * max(1, len(sans)))(*[s.encode() for s in sans])
    return arr, len(sans)


class Certificate:
    """An X.509 certificate (with the chain that came with it). Immutable."""

    def __init__(self, handle: ctypes.c_void_p):
        self._h = handle

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Certificate":
        h = ctypes.c_void_p()
        msg = ctypes.create_string_buffer(512)
        check(_lib.sli_cert_load_file(ctypes.byref(h), os.fsencode(path), msg, len(msg)),
              msg.value.decode(errors="replace"))
        return cls(h)

    @classmethod
    def from_pem(cls, pem: Union[str, bytes]) -> "Certificate":
        data = pem.encode() if isinstance(pem, str) else bytes(pem)
        h = ctypes.c_void_p()
        msg = ctypes.create_string_buffer(512)
        check(_lib.sli_cert_load_mem(ctypes.byref(h), data, len(data), msg, len(msg)),
              msg.value.decode(errors="replace"))
        return cls(h)

    def _s(self, fn) -> str:
        v = fn(self._h)
        return v.decode() if v else ""

    @property
    def subject(self) -> str:
        return self._s(_lib.sli_cert_subject)

    @property
    def issuer(self) -> str:
        return self._s(_lib.sli_cert_issuer)

    @property
    def sans(self) -> List[str]:
        return [_lib.sli_cert_san(self._h, i).decode()
                for i in range(_lib.sli_cert_san_count(self._h))]

    @property
    def not_before(self) -> int:
        return _lib.sli_cert_not_before(self._h)

    @property
    def not_after(self) -> int:
        return _lib.sli_cert_not_after(self._h)

    @property
    def fingerprint_sha256(self) -> str:
        return self._s(_lib.sli_cert_fingerprint_sha256)

    @property
    def pem(self) -> str:
        return self._s(_lib.sli_cert_chain_pem)

    def __del__(self):
        h, self._h = getattr(self, "_h", None), None
        if h:
            _lib.sli_cert_free(h)


def csr(key: Key, subject: str, sans: Sequence[str] = ()) -> bytes:
    """A PKCS#10 request signed by `key`: subject "/CN=db.example.com/O=Acme", SANs "DNS:…",
    "IP:…", "email:…", "URI:…"."""
    arr, n = _sans(sans)
    p, ln = ctypes.c_void_p(), ctypes.c_size_t()
    check(key._call(_lib.sli_csr_create_alloc, subject.encode(), arr, n, ctypes.byref(p),
                    ctypes.byref(ln)))
    return _take(p, ln)


def self_signed(key: Key, subject: str, sans: Sequence[str] = (), days: int = 365,
                ca: bool = False) -> bytes:
    """A self-signed certificate for `key` (a CA one with ca=True)."""
    arr, n = _sans(sans)
    p, ln = ctypes.c_void_p(), ctypes.c_size_t()
    check(key._call(_lib.sli_cert_selfsign_alloc, subject.encode(), arr, n, days, 1 if ca else 0,
                    ctypes.byref(p), ctypes.byref(ln)))
    return _take(p, ln)


def issue(ca_cert_pem: bytes, ca_key: Key, csr_pem: bytes, days: int = 365) -> bytes:
    """A leaf certificate for the request `csr_pem`, signed by the CA."""
    p, ln = ctypes.c_void_p(), ctypes.c_size_t()
    with ca_key._held() as kh:
        check(_lib.sli_ca_issue_alloc(bytes(ca_cert_pem), len(ca_cert_pem), kh, bytes(csr_pem),
                                      len(csr_pem), days, ctypes.byref(p), ctypes.byref(ln)))
    return _take(p, ln)


