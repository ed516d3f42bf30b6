"""seal.py — sealed blobs (database fields) and the keyrings that open them (api/sli.h, "Sealed
blobs"): AES-256-GCM, 33 bytes of overhead, keys rotated without re-encrypting old blobs."""
import ctypes
import os
import threading
from typing import List, Tuple, Union

from . import _lib
from ._owned import Owned
from .errors import check

Bytes = Union[bytes, bytearray, memoryview]

_SCRATCH_MAX = 4 << 20  # outputs up to this size go through one buffer per thread, reused
_local = threading.local()
# The two per-call functions without ctypes' argument conversion (each argument is made a ctypes
# value here): a third of the binding's cost per 64-byte call.
_seal_fast, _open_fast = _lib.lib["sli_seal"], _lib.lib["sli_open"]
_seal_fast.restype = _open_fast.restype = ctypes.c_int
_size = ctypes.c_size_t


class _Scratch:
    """A thread's reused output buffer and its length cell (a fresh 1 MiB buffer per call cost
    more in page faults than the AES-GCM did)."""
    __slots__ = ("buf", "arr", "n", "nref", "cap", "busy")

    def __init__(self, cap: int):
        self.buf = bytearray(cap)
        self.arr = (ctypes.c_char * cap).from_buffer(self.buf)
        self.n = ctypes.c_size_t(cap)
        self.nref = ctypes.byref(self.n)
        self.cap, self.busy = cap, False


def _scratch(need: int) -> _Scratch:
    """The thread's scratch of at least `need` bytes, marked busy; a fresh one past 4 MiB or
    while the thread's is in use (a signal handler sealing in the middle of a call)."""
    st = getattr(_local, "st", None)
    if need > _SCRATCH_MAX or (st is not None and st.busy):
        st = _Scratch(max(need, 1))
    elif st is None or st.cap < need:
        st = _local.st = _Scratch(max(need, 4096))
    st.busy = True
    st.n.value = st.cap
    return st


def _bytes(b: Bytes) -> bytes:
    return b if type(b) is bytes else bytes(b)


class Keyring(Owned):
    """An immutable set of keys, one of them the primary (the one that seals). Thread-safe: seal
    and open may run from several threads at once, and close() from another waits for them."""
    _free = staticmethod(_lib.sli_keyring_free)
    _what = "keyring"

    def __init__(self, handle: ctypes.c_void_p):
        self._own(handle)

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
        with self._held() as h:
            check(_lib.sli_keyring_save_file(h, os.fsencode(path)))

    def rotate(self) -> "Keyring":
        """A new keyring: these keys (still opening) and a fresh primary. This one is unchanged."""
        out = ctypes.c_void_p()
        with self._held() as h:
            check(_lib.sli_keyring_rotate(ctypes.byref(out), h))
        return Keyring(out)

    @property
    def key_ids(self) -> List[int]:
        """The keys' IDs, the primary first."""
        with self._held() as h:
            return [_lib.sli_keyring_key_id(h, i) for i in range(_lib.sli_keyring_count(h))]

    @property
    def created(self) -> List[int]:
        """Each key's creation time (Unix seconds), the primary first."""
        with self._held() as h:
            return [_lib.sli_keyring_key_created(h, i) for i in range(_lib.sli_keyring_count(h))]

    def seal(self, data: Bytes, ad: Bytes = b"") -> bytes:
        """`data` sealed with the primary key, bound to the associated data `ad`."""
        data, ad = _bytes(data), _bytes(ad)
        h = self._use()
        try:
            st = _scratch(len(data) + _lib.SEAL_OVERHEAD)
            try:
                rc = _seal_fast(h, st.arr, st.nref, data, _size(len(data)), ad, _size(len(ad)))
                if rc < 0:
                    check(rc)
                return bytes(memoryview(st.buf)[:st.n.value])
            finally:
                st.busy = False
        finally:
            self._done()

    def open(self, blob: Bytes, ad: Bytes = b"") -> bytes:
        """The plaintext of a sealed blob, or sli.Error (SLI_E_PAYLOAD for any change, a wrong
        `ad`; SLI_E_NO_MATCH for a key not in this keyring; SLI_E_HEADER)."""
        blob, ad = _bytes(blob), _bytes(ad)
        h = self._use()
        try:
            st = _scratch(max(1, len(blob) - _lib.SEAL_OVERHEAD))
            try:
                rc = _open_fast(h, st.arr, st.nref, blob, _size(len(blob)), ad, _size(len(ad)))
                if rc < 0:
                    st.n.value = 0
                    check(rc)
                return bytes(memoryview(st.buf)[:st.n.value])
            finally:
                ctypes.memset(st.arr, 0, st.n.value)  # the plaintext stays only in what we return
                st.busy = False
        finally:
            self._done()


def sealed_key_id(blob: Bytes) -> int:
    """The ID of the key that sealed `blob`, read from its header (it is not opened)."""
    blob = bytes(blob)
    kid = ctypes.c_uint32()
    check(_lib.sli_sealed_key_id(blob, len(blob), ctypes.byref(kid)))
    return kid.value


