"""Stopping training cleanly on Ctrl-C (SIGINT) or SIGTERM.

Inside :func:`graceful_stop` the first such signal only records a request: the epoch that is
running finishes (an epoch is one compiled call and cannot be cut short), its checkpoint is
written, and :func:`~bayesgen.train.driver.fit` returns with ``stop_reason="interrupted"``. A
second signal aborts at once with :class:`~bayesgen.TrainingInterrupted` (files are written
atomically, so the previous checkpoint stays valid). The previous handlers come back on exit.

Outside training, :func:`signals_raise` (the command line's) turns SIGINT and SIGTERM into a
:class:`SignalReceived` exception wherever the program is, so that any command unwinds, closing
its files, and says in one line what stopped it; a second signal while it unwinds ends the
process at once (exit ``128 + signum``).

Example:
    >>> with graceful_stop() as stop:
    ...     result = fit(model, x, key=key, should_stop=stop)
    >>> result.stop_reason, stop.signum
    ('interrupted', 15)
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bayesgen._errors import TrainingInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalReceived(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived inside :func:`signals_raise`; ``signum`` says which. A
    ``KeyboardInterrupt``, so ``except Exception`` blocks do not swallow it."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


RESEND_SECONDS = 0.05  # a signal that lands inside an import comes again this much later


def _importing(frame) -> bool:
    """Whether ``frame`` runs inside an import (importlib's frames are on the stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _raise(signum, frame) -> None:
    if _importing(frame):
        # An exception raised while a C extension initialises (jaxlib's nanobind module imports
        # Python modules) aborts the process ("terminate called after throwing an instance of
        # 'nanobind::python_error'", exit 134, or a segfault): found by the hostile signals target.
        # The signal is sent again from a timer thread until it lands outside every import.
        threading.Timer(RESEND_SECONDS, os.kill, (os.getpid(), signum)).start()
        return
    for s in SIGNALS:  # a second signal while unwinding: stop now (files are written atomically)
        signal.signal(s, _exit_now)
    raise SignalReceived(signum)


def _exit_now(signum, frame) -> None:
    sys.stderr.flush()
    os._exit(128 + signum)


@contextmanager
def signals_raise(signals=SIGNALS) -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM raise :class:`SignalReceived` in the main thread (the
    default SIGTERM would end the process without a word). Previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in signals}
    previous_hook = sys.unraisablehook

    def swallowed(unraisable):
        # The signal came while Python ran a finaliser (a weakref callback, __del__), where an
        # exception is printed as "Exception ignored" and dropped: send it again, to land outside.
        if isinstance(unraisable.exc_value, SignalReceived):
            for s in signals:
                signal.signal(s, _raise)
            # from another thread a moment later: sent from here it would be raised in this hook
            threading.Timer(0.01, os.kill, (os.getpid(), unraisable.exc_value.signum)).start()
            return
        previous_hook(unraisable)

    try:
        sys.unraisablehook = swallowed
        for s in signals:
            signal.signal(s, _raise)
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sys.unraisablehook = previous_hook


class StopRequest:
    """Callable ``should_stop()`` for :func:`fit`; ``signum`` is the first signal received, if any."""

    def __init__(self):
        self.signum: int | None = None

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(f"aborted by a second {signal.Signals(signum).name}; the checkpoint of the last "
                                      "finished epoch is kept", signum)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after this epoch and saving a checkpoint "
              "(send it again to abort now)", file=sys.stderr, flush=True)


@contextmanager
def graceful_stop(signals=SIGNALS) -> Iterator[StopRequest]:
    """Catch ``signals`` as stop requests for the duration of the block.

    Signal handlers can only be installed from the main thread; elsewhere the request object
    is still returned but never set (the default handlers stay in place).
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in signals}
    try:
        for s in signals:
            signal.signal(s, request._handle)
        yield request
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
