"""Stopping a run on a signal without losing what it finished: Ctrl-C (SIGINT), SIGTERM and SIGHUP.

While nets train, the first signal raises Interrupted (a KeyboardInterrupt), which the runner turns into an
`interrupted` row; once training is over, a signal only sets the exit code, so the finished rows are always
printed and written. A second signal is acknowledged on stderr; a third exits at once (128 + signal number).
While Keras and TensorFlow import or run (signals_deferred), the first signal waits for the import to finish,
or for the next batch (stop_if_signalled, called by the Keras twin before each batch).

Not for: what is printed or written (outcome.py).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_active: SignalGuard | None = None  # the guard whose handler is installed
_deferring = 0  # how many signals_deferred() blocks are open


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread by the first signal while nets train; `signum` names the signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """Within its `with` block, one handler for HANDLED_SIGNALS that remembers the first signal received."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self.training = True
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        global _active
        self.previous = {signum: signal.signal(signum, self.handle) for signum in HANDLED_SIGNALS}
        _active = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Put back the handlers that were there before (for a caller that goes on running, e.g. a test)."""
        global _active
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        _active = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.signum = self.signum or signum
        if self.count >= 3:
            os._exit(self.exit_code())
        if self.count == 2:
            os.write(2, b"Stopping: writing the finished rows (signal again to quit at once without them)\n")
        elif self.training and not _deferring:
            raise Interrupted(signum)

    def check(self) -> None:
        """Raise Interrupted if a signal came while training and was swallowed on its way (a library's bare
        `except:` while TensorFlow imports, say): called at every epoch's end and before every run."""
        if self.training and self.signum is not None:
            raise Interrupted(self.signum)

    def watching(self, callback: Callable[[int, dict], None]) -> Callable[[int, dict], None]:
        """callback, preceded by check()."""
        def checked(epoch: int, logs: dict) -> None:
            self.check()
            callback(epoch, logs)
        return checked

    def training_done(self) -> None:
        """From now on a signal no longer interrupts: the results are being printed and written."""
        self.training = False

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def exit_code(self) -> int:
        """128 + the first signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP)."""
        return 128 + (self.signum or signal.SIGINT)


def ignore_stop_signals() -> None:
    """For a process whose results are all printed and written: a late signal must not kill the
    interpreter's clean-up (TensorFlow's takes a few hundred ms) and turn the exit code into a death by
    signal. Python leaves ignored signals ignored while it shuts down."""
    for signum in HANDLED_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Within the block a signal is only recorded; Interrupted is raised when the block ends, or earlier by
    stop_if_signalled. For C extensions that call back into Python: raised inside TensorFlow's
    initialisation, it left TensorFlow half-made (measured, SIGTERM 2 s after my_net finished: an ImportError
    "initialization failed" in 1 of 12 runs, a segfault in 1 of 10); raised inside a training step, TensorFlow's
    C++ went on with the failed call's NULL ("SystemError: Objects/listobject.c:338: bad argument to internal
    function", Ctrl-C during keras_net's fit)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    if not _deferring:
        stop_if_signalled()


def stop_if_signalled() -> None:
    """Raise Interrupted if a signal came while nets train: a safe point inside a signals_deferred block
    (between two Keras steps, where only Python runs)."""
    if _active is not None:
        _active.check()
