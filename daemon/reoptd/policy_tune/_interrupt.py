"""Ctrl-C during the search: at once while the tuner waits for backtests, held back while it
writes to the study, so an interrupt never lands between Optuna creating a trial and the tuner
knowing of it (which would leave the trial RUNNING until a resume closes it)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class HeldInterrupts:
    """Install with ``held_interrupts``; ``waiting`` lets Ctrl-C through at once, ``check``
    raises one that arrived while it was held."""

    def __init__(self) -> None:
        self.pending = False
        self._open = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._open:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextmanager
    def waiting(self) -> Iterator[None]:
        self.check()
        self._open = True
        try:
            yield
        finally:
            self._open = False


@contextmanager
def held_interrupts() -> Iterator[HeldInterrupts]:
    """SIGINT handled by a ``HeldInterrupts`` for the block (only the main thread can install
    a handler: elsewhere Ctrl-C reaches the main thread anyway, and nothing is held)."""
    held = HeldInterrupts()
    if threading.current_thread() is not threading.main_thread():
        held._open = True
        yield held
        return
    before = signal.signal(signal.SIGINT, held._handle)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, before)
