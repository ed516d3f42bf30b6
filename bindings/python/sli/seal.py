"""seal.py — sealed blobs (database fields) and the keyrings that open them (api/sli.h, "Sealed
blobs"): AES-256-GCM, 33 bytes of overhead, keys rotated without re-encrypting old blobs."""
import ctypes
import os
import threading
from typing import List, Tuple, Union

from . import _lib
from .errors import check

Bytes = Union[bytes, bytearray, memoryview]

_SCRATCH_MAX = 4 << 20  # outputs up to this size go through one buffer per thread, reused
_local = threading.local()


def _buffer(need: int) -> Tuple[bytearray, ctypes.Array]:
    """An output buffer of at least `need` bytes: the thread's reused one when it is small enough
    (a fresh 1 MiB buffer per call cost more in page faults than the AES-GCM did), else a new
    one — also when the thread's is in use (a signal handler sealing in the middle of a call)."""
    if need > _SCRATCH_MAX or getattr(_local, "busy", False):
        b = bytearray(need)
        return b, (ctypes.c_char * need).from_buffer(b)
    b = getattr(_local, "buf", None)
    if b is None or len(b) < need:
        b = _local.buf = bytearray(max(need, 4096))
        _local.arr = (ctypes.c_char * len(b)).from_buffer(b)
    _local.busy = True
    return b, _local.arr


def _done(buf: bytearray) -> None:
    if buf is getattr(_local, "buf", None):
        _local.busy = False


class Keyring:
    """An immutable set of keys, one of them the primary (the one that seals). Thread-safe: seal
    and open may run from several threads at once."""

    def __init__(self, handle: ctypes.c_void_p):
        self._h = handle

    @classmethod
    def generate(cls) -> "Keyring":
        """A keyring holding one fresh random key."""
        h = ctypes.c_void_p()
        check(_lib.sli_keyring_generate(ctypes.byref(h)))
        return cls(h)

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Keyring":
        """A keyring file (as `sli keyring new` writes it)."""
        h = ctypes.c_void_p()
        msg = ctypes.create_string_buffer(512)
        rc = _lib.sli_keyring_load_file(ctypes.byref(h), os.fsencode(path), msg, len(msg))
        check(rc, msg.value.decode(errors="replace"))
        return cls(h)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the keyring to `path` atomically, mode 0600."""
        check(_lib.sli_keyring_save_file(self._h, os.fsencode(path)))

    def rotate(self) -> "Keyring":
        """A new keyring: these keys (still opening) and a fresh primary. This one is unchanged."""
        h = ctypes.c_void_p()
        check(_lib.sli_keyring_rotate(ctypes.byref(h), self._h))
        return Keyring(h)

    @property
    def key_ids(self) -> List[int]:
        """The keys' IDs, the primary first."""
        return [_lib.sli_keyring_key_id(self._h, i) for i in range(_lib.sli_keyring_count(self._h))]

    @property
    def created(self) -> List[int]:
        """Each key's creation time (Unix seconds), the primary first."""
        return [_lib.sli_keyring_key_created(self._h, i)
                for i in range(_lib.sli_keyring_count(self._h))]

    def seal(self, data: Bytes, ad: Bytes = b"") -> bytes:
        """`data` sealed with the primary key, bound to the associated data `ad`."""
        data, ad = bytes(data), bytes(ad)
        buf, arr = _buffer(len(data) + _lib.SEAL_OVERHEAD)
        try:
            n = ctypes.c_size_t(len(buf))
            check(_lib.sli_seal(self._h, arr, ctypes.byref(n), data, len(data), ad, len(ad)))
            return bytes(memoryview(buf)[:n.value])
        finally:
            _done(buf)

    def open(self, blob: Bytes, ad: Bytes = b"") -> bytes:
        """The plaintext of a sealed blob, or sli.Error (SLI_E_PAYLOAD for any change, a wrong
        `ad`; SLI_E_NO_MATCH for a key not in this keyring; SLI_E_HEADER)."""
        blob, ad = bytes(blob), bytes(ad)
        buf, arr = _buffer(max(1, len(blob) - _lib.SEAL_OVERHEAD))
        n = ctypes.c_size_t(len(buf))
        try:
            check(_lib.sli_open(self._h, arr, ctypes.byref(n), blob, len(blob), ad, len(ad)))
            return bytes(memoryview(buf)[:n.value])
        finally:
            ctypes.memset(arr, 0, n.value)  # the plaintext stays only in what we return
            _done(buf)

    def close(self) -> None:
        """Lets the keys go now (they are wiped when the last reference goes)."""
        h, self._h = self._h, None
        if h:
            _lib.sli_keyring_free(h)

    def __del__(self):
        self.close()

    def __enter__(self) -> "Keyring":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def sealed_key_id(blob: Bytes) -> int:
    """The ID of the key that sealed `blob`, read from its header (it is not opened)."""
    blob = bytes(blob)
    kid = ctypes.c_uint32()
    check(_lib.sli_sealed_key_id(blob, len(blob), ctypes.byref(kid)))
    return kid.value


