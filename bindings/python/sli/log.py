"""log.py — libsli's notices and warnings (a generated default identity, verification turned off,
a weakened policy, a trusted CA about to expire…) handed to the program: the library itself never
writes to the process's descriptors, and drops them while no handler is set.

    sli.log.set_handler(lambda level, message: print(level, message), level="info")
    sli.log.to_logging()                      # or into the `logging` module, logger "sli"
"""
import logging
import threading
from typing import Callable, Optional

from . import _lib

LEVELS = {"error": 1, "warn": 2, "notice": 3, "info": 4, "debug": 5}
_NAMES = {v: k for k, v in LEVELS.items()}
_PY = {1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO, 4: logging.INFO, 5: logging.DEBUG}
_lock = threading.Lock()
_kept = []  # every C callback handed to libsli: a thread may still be inside an old one, so none
#            is ever let go (a program sets a handler once or a few times)


def set_handler(fn: Optional[Callable[[str, str], None]], level: str = "notice") -> None:
    """Routes libsli's messages at `level` or more severe ("error", "warn", "notice", "info",
    "debug") to `fn(level, message)`, called from whichever thread called into libsli; None stops
    them. An exception in `fn` is dropped: logging never fails a call of libsli's."""
    if level not in LEVELS:
        raise ValueError("level: one of %s" % ", ".join(LEVELS))

    def each(lv, msg, _arg):
        try:
            fn(_NAMES.get(lv, str(lv)), msg.decode("utf-8", "replace"))
        except BaseException:  # noqa: B902 — nothing may unwind through C
            pass
    with _lock:
        c = _lib.LOG_FN(each) if fn else _lib.LOG_FN()  # LOG_FN(): NULL, no handler
        if fn:
            _kept.append(c)
        _lib.sli_set_log_callback(c, LEVELS[level], None)


def to_logging(logger: Optional[logging.Logger] = None, level: str = "notice") -> None:
    """Sends libsli's messages to `logger` (default: logging.getLogger("sli"))."""
    log = logger or logging.getLogger("sli")
    set_handler(lambda lv, msg: log.log(_PY[LEVELS[lv]], "%s", msg), level)
