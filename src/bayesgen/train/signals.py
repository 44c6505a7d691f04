"""Stopping training cleanly on Ctrl-C (SIGINT) or SIGTERM.

Inside :func:`graceful_stop` the first such signal only records a request: the epoch that is
running finishes (an epoch is one compiled call and cannot be cut short), its checkpoint is
written, and :func:`~bayesgen.train.driver.fit` returns with ``stop_reason="interrupted"``. A
second signal aborts at once with :class:`~bayesgen.TrainingInterrupted` (files are written
atomically, so the previous checkpoint stays valid). The previous handlers come back on exit.

Example:
    >>> with graceful_stop() as stop:
    ...     result = fit(model, x, key=key, should_stop=stop)
    >>> result.stop_reason, stop.signum
    ('interrupted', 15)
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bayesgen._errors import TrainingInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
