"""Typed errors raised by ``migrate``: all derive from ``persist.errors.GraphcopyError``.

Each carries a one-line, actionable message; the CLI prints ``str(err)`` and exits with
``err.exit_code``.
"""

from __future__ import annotations

from persist.errors import GraphcopyError

__all__ = ["DescriptorError", "NoDescriptorError", "StableTypeError"]


class StableTypeError(GraphcopyError):
    """A stable signature (``.most`` text or custom section) is malformed, or a type in it cannot be
    resolved (undefined name, wrong number of type arguments).

    ``line`` and ``column`` are 1-based positions in the text parsed (0 when unknown); when known
    they are also part of the message, as ``line L, column C: ...``.
    """

    exit_code = 2

    def __init__(self, message: str, *, line: int = 0, column: int = 0) -> None:
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{where}{message}")
        self.reason = message
        self.line = line
        self.column = column


class DescriptorError(GraphcopyError):
    """A binary stable type descriptor (``migrate.descriptor``), or the EOP persistent metadata
    that holds it in a canister's heap, is corrupt or inconsistent."""

    exit_code = 2


class NoDescriptorError(DescriptorError):
    """The heap holds no stable type descriptor: the module does not use enhanced orthogonal
    persistence, or its persistent metadata is uninitialised or has no type registered."""
