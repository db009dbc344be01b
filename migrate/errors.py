"""Typed errors raised by ``migrate``: all derive from ``persist.errors.GraphcopyError``.

Each carries a one-line, actionable message; the CLI prints ``str(err)`` and exits with
``err.exit_code``.
"""

from __future__ import annotations

from persist.errors import GraphcopyError

__all__ = ["DescriptorError", "NoDescriptorError", "PipelineError", "StableTypeError"]


class PipelineError(GraphcopyError):
    """A pipeline file is invalid, or what it names cannot run (a module, a hook, a verify query)."""

    exit_code = 2


class StableTypeError(GraphcopyError):
    """A stable signature (``.most`` text or custom section) is malformed, or a type in it cannot be
    resolved (undefined name, wrong number of type arguments).

    ``line`` and ``column`` are 1-based positions in the text parsed (0 when unknown); ``source``
    names what was parsed (a file, a module's section). When known they are part of the message,
    as ``SOURCE: line L, column C: ...``; ``with_source`` adds the source to an error raised
    without one.
    """

    exit_code = 2

    def __init__(self, message: str, *, line: int = 0, column: int = 0, source: str = "") -> None:
        where = f"line {line}, column {column}: " if line else ""
        super().__init__(f"{source + ': ' if source else ''}{where}{message}")
        self.reason = message
        self.line = line
        self.column = column
        self.source = source

    def with_source(self, source: str) -> StableTypeError:
        """The same error, naming ``source`` (unless it already names one)."""
        if self.source:
            return self
        return StableTypeError(self.reason, line=self.line, column=self.column, source=source)


class DescriptorError(GraphcopyError):
    """A binary stable type descriptor (``migrate.descriptor``), or the EOP persistent metadata
    that holds it in a canister's heap, is corrupt or inconsistent."""

    exit_code = 2


class NoDescriptorError(DescriptorError):
    """The heap holds no stable type descriptor: the module does not use enhanced orthogonal
    persistence, or its persistent metadata is uninitialised or has no type registered."""
