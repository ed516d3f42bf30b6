"""errors.py — sli.Error: a failing call of libsli, with its SLI_E_* name and its message."""
from . import _lib


class Error(Exception):
    """A libsli call failed. `code` is the negative SLI_E_* code, `name` its name ("SLI_E_PAYLOAD"),
    `message` what libsli said (naming the file, the line, the peer…)."""

    def __init__(self, code: int, message: str = ""):
        self.code = code
        self.name = _lib.sli_err_name(code).decode()
        self.message = message or _lib.sli_strerror(code).decode()
        super().__init__("%s: %s" % (self.name, self.message))


def check(rc: int, message: str = "") -> int:
    """rc if it is not an error, else sli.Error with the calling thread's last message."""
    if rc < 0:
        if not message:
            m = _lib.sli_last_error()
            message = m.decode(errors="replace") if m else ""
        raise Error(rc, message)
    return rc
