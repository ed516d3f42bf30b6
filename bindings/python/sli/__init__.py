"""sli — the secured layer interface from Python: libsli.so.1 through ctypes (the standard library
only), the same engine and policies as the C API, nothing implemented twice.

    import sli
    kr = sli.Keyring.generate()
    blob = kr.seal(b"4111 1111 1111 1111", ad=b"customer 42")
    kr.open(blob, ad=b"customer 42")

Every failure is a sli.Error carrying the SLI_E_* name (`.name`), the code and libsli's message."""
from ._lib import lib as _library
from . import age, aio, certs, log, tls
from .errors import Error
from .keys import Key
from .seal import Keyring, sealed_key_id

__all__ = ["Error", "Key", "Keyring", "age", "aio", "certs", "log", "sealed_key_id", "tls", "version"]


def version() -> str:
    """libsli's version, as the loaded library says ("1.1.0")."""
    from . import _lib
    return _lib.sli_version_string().decode()


del _library
