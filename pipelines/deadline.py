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


class JobHandBack(BaseException):
    """The worker is shutting down: stop the stage and hand the job back to the queue.

    A BaseException, so that a stage's own `except Exception` does not swallow it.
    """


class InterruptibleStage:
    """Marks the current thread as running a stage that shutdown may interrupt.

    `hand_back_running_stages()` raises JobHandBack in every such thread. As
    with StageDeadline, an interruption that fires just as the stage returns is
    withdrawn, so it never lands in the code that records the stage's result.
    """

    _threads: dict[int, bool] = {}
    _lock = threading.Lock()

    def __enter__(self):
        self.ident = threading.get_ident()
        with self._lock:
            self._threads[self.ident] = False
        return self

    def __exit__(self, exc_type, exc, tb):
        with self._lock:
            fired = self._threads.pop(self.ident, False)
            if fired and exc_type is None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), None)
        return False

    @classmethod
    def hand_back_all(cls) -> int:
        """Interrupt every running stage; return how many were interrupted."""
        with cls._lock:
            pending = [ident for ident, fired in cls._threads.items() if not fired]
            for ident in pending:
                cls._threads[ident] = True
                raise_thread_exception(ident, JobHandBack)
        return len(pending)
