"""Ctrl-C at safe points: between messages, never inside one.

Python raises ``KeyboardInterrupt`` between any two bytecodes. Inside a message that can be in
the middle of a wasmtime host call (where wasmtime-py's trampoline has not yet installed its own
handler: ctypes drops the exception and wasmtime then reads a result that was never written, which
aborts the process), in the middle of SQLAlchemy's connection-pool bookkeeping (the pool is left
half-reset), or between a message's Wasm run and its commit. None of that loses committed data
(every change is one transaction), but the command ends with an internal error or a crash instead
of "interrupted", and a library caller's store can be left unusable.

``deferred()`` turns the first Ctrl-C into a request: it is recorded (and ``notice`` tells the user),
and :func:`checkpoint` raises ``KeyboardInterrupt`` at the next place that is safe to stop at: the
scheduler between two messages (so a graph copy stops after its last committed increment), the
start of every public call, and every progress report. A second Ctrl-C raises at once, as Python
does by default, for a user who does not want to wait for a long message to end. Code that waits
for the user (a y/N question) runs under :func:`immediate`, where Ctrl-C raises at once too.

The CLI runs every command under ``deferred()``; a script can do the same. Outside ``deferred()``
(or outside the main thread, where Python delivers no signals) nothing changes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["checkpoint", "deferred", "immediate", "pending"]


class _State:
    """The one process-wide record of a deferred Ctrl-C (signals are process-wide too)."""

    def __init__(self) -> None:
        self.active = False  # inside deferred()
        self.pending = False  # a Ctrl-C arrived and has not been acted on yet
        self.immediate = 0  # nesting depth of immediate()
        self.notice: Callable[[], None] | None = None


_STATE = _State()


def _handler(signum: int, frame: FrameType | None) -> None:
    if _STATE.pending or _STATE.immediate:
        _STATE.pending = False
        raise KeyboardInterrupt
    _STATE.pending = True
    if _STATE.notice is not None:
        try:
            _STATE.notice()
        except Exception:  # noqa: BLE001 - a handler runs anywhere: it must not raise (a closed stderr)
            pass


@contextmanager
def deferred(notice: Callable[[], None] | None = None) -> Iterator[None]:
    """Within the block, a first Ctrl-C stops the work at the next :func:`checkpoint` (``notice`` is
    called when it arrives, to tell the user); a second one raises at once. A Ctrl-C that no
    checkpoint acted on is raised when the block ends. Nested blocks and blocks outside the main
    thread, or where SIGINT does not have Python's default handler, change nothing."""
    if (_STATE.active or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    _STATE.active, _STATE.pending, _STATE.notice = True, False, notice
    previous = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        asked, _STATE.active, _STATE.pending, _STATE.notice = _STATE.pending, False, False, None
    if asked:  # reached only when the block ended normally: the user still asked to stop
        raise KeyboardInterrupt


def checkpoint() -> None:
    """A place that is safe to stop at: raise ``KeyboardInterrupt`` if a deferred Ctrl-C is pending.

    Call it only where nothing is half-done: outside transactions that have begun writing state the
    exception would not roll back, between messages, at the start of a public operation, or in a
    progress report. Any thread may call it (the flag is process-wide)."""
    if _STATE.pending:
        _STATE.pending = False
        raise KeyboardInterrupt


def pending() -> bool:
    """Whether a deferred Ctrl-C is waiting for the next :func:`checkpoint`."""
    return _STATE.pending


@contextmanager
def immediate() -> Iterator[None]:
    """Within the block (waiting for the user: a prompt), Ctrl-C raises at once even under
    :func:`deferred`; a Ctrl-C already pending is raised on entry."""
    checkpoint()
    _STATE.immediate += 1
    try:
        yield
    finally:
        _STATE.immediate -= 1
