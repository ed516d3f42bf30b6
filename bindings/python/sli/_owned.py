"""_owned.py — a libsli object that close() frees while other threads may be using it: each call
marks itself in flight around its use of the handle, and the free waits for the last of them
(close() from one thread while another sealed was a use-after-free: a segfault).

The marks are a list's append and pop, each one step under the GIL (CPython 3's), and the handle
to free is taken by one dict.pop, so exactly one thread frees it — cheaper per call than a lock."""
import contextlib


class Owned:
    """Base of the objects whose close() frees a C handle (`_free` is the C free function)."""
    _h = None
    _free = None
    _what = "object"

    def _own(self, handle) -> None:
        self._inflight = []
        self._h = handle

    def _use(self):
        """The handle, marked in flight until _done(); ValueError once closed."""
        self._inflight.append(None)  # first the mark, then the look: close() sees one or the other
        h = self._h
        if h is None:
            self._done()
            raise ValueError("the %s was closed" % self._what)
        return h

    @contextlib.contextmanager
    def _held(self):
        """`with obj._held() as h:` — _use() and _done() around a block (seal and open, the hot
        paths, call the two directly)."""
        h = self._use()
        try:
            yield h
        finally:
            self._done()

    def _done(self) -> None:
        self._inflight.pop()
        if self._h is None and not self._inflight:
            self._release()

    def _release(self) -> None:
        h = self.__dict__.pop("_freeing", None)  # one taker
        if h is not None:
            type(self)._free(h)

    def close(self) -> None:
        """Lets the C object go: now, or when the last call still using it returns."""
        h = self._h
        if h is None:
            return
        self._freeing = h  # before the handle goes: a call that finishes meanwhile may free it
        self._h = None
        if not self._inflight:
            self._release()

    def __del__(self):
        if "_inflight" in self.__dict__:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
