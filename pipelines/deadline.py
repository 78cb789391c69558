"""Per-stage time limits, enforced in the worker thread running the stage."""

import ctypes
import threading

from dramatiq.threading import raise_thread_exception


class StageTimeout(Exception):
    """The stage ran past its `timeout_s`."""


class StageDeadline:
    """Raise StageTimeout in the current thread if the block runs longer than `seconds`.

    Like Dramatiq's TimeLimit, it sets an asynchronous exception in the thread,
    which interrupts Python code (not a blocking system call) as soon as the
    thread runs again. A timer that fires just as the block ends has its
    pending exception withdrawn, so it never lands in the code after the block.
    """

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.lock = threading.Lock()
        self.done = False
        self.fired = False
        self.timer: threading.Timer | None = None

    def _fire(self):
        with self.lock:
            if not self.done:
                self.fired = True
                raise_thread_exception(self.thread_id, StageTimeout)

    def __enter__(self):
        if self.seconds:
            self.thread_id = threading.get_ident()
            self.timer = threading.Timer(self.seconds, self._fire)
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.timer is None:
            return False
        with self.lock:
            self.done = True
            self.timer.cancel()
            if self.fired and exc_type is None:
                # Finished in the instant the timer fired: withdraw the pending exception.
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)
        return False
