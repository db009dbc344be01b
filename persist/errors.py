"""Typed errors raised by graphcopy's public functions.

Every error carries a one-line, actionable message; the CLI prints ``str(err)`` and exits with
``err.exit_code``. Nothing is changed in the store when one of these is raised.
"""

from __future__ import annotations


class GraphcopyError(Exception):
    """Base class of all errors graphcopy reports to its users."""

    exit_code: int = 1


class StoreError(GraphcopyError):
    """The SQL store could not be opened, migrated or written."""

    exit_code = 3


class ConflictError(GraphcopyError):
    """Another process holds or changed what this command needs, so it did nothing: retry (exit 4).

    The one family of concurrency conflicts: a database another process holds
    (:class:`StoreLockedError`), a canister a pipeline worker has claimed
    (``persist.store.locks.CanisterLockedError``), and a canister another process committed to first
    (:class:`StaleStateError`, the loser of a compare-and-set)."""

    exit_code = 4


class StoreLockedError(StoreError, ConflictError):
    """Another process holds the database (SQLite lock, PostgreSQL lock timeout)."""

    exit_code = 4


class StaleStateError(ConflictError):
    """Another process committed to this canister (or took this message) first; nothing was changed: retry."""


class InvalidArgumentError(GraphcopyError):
    """An argument or option has a value the operation does not accept (a missing file, an unknown mode)."""

    exit_code = 2


class CanisterNotFoundError(GraphcopyError):
    """No canister of that name (or principal) exists in the store."""

    exit_code = 2


class CanisterExistsError(GraphcopyError):
    """A canister of that name exists already and the operation needs a new one."""

    exit_code = 2


class InvalidNameError(GraphcopyError):
    """A name is not one a canister may have (characters, undecodable bytes, a principal's text)."""

    exit_code = 2


class InvalidModuleError(GraphcopyError):
    """The bytes given are not a Wasm module graphcopy can host (corrupt, or not a canister)."""

    exit_code = 2


class CandidError(GraphcopyError):
    """Candid text or bytes could not be parsed, encoded or decoded against the expected types."""

    exit_code = 2


class MessageTooLargeError(GraphcopyError):
    """A message is larger than the IC accepts (an ingress argument over 2 MiB, by default)."""

    exit_code = 2


class NotAuthorizedError(GraphcopyError):
    """The caller is not allowed to do this (for example, not a controller)."""

    exit_code = 5


class CanisterStateError(GraphcopyError):
    """The canister is in the wrong state for this operation (stopped, empty, ...)."""

    exit_code = 6


class MethodNotFoundError(GraphcopyError):
    """The canister's module exports no update or query of that name."""

    exit_code = 2


class CanisterTrapError(GraphcopyError):
    """The canister trapped (or ran out of instructions); its state is unchanged.

    ``trap`` is the trap's text; ``logs`` are the ``(time_ns, kind, text)`` log lines of the failed
    run (its debug prints and the trap), kept here too because a failed first install leaves no
    canister whose log could hold them."""

    exit_code = 7

    def __init__(self, message: str, *, canister: str = "", method: str = "", trap: str | None = None,
                 logs: list[tuple[int, str, str]] | None = None) -> None:
        super().__init__(message)
        self.canister = canister
        self.method = method
        self.trap = trap
        self.logs = list(logs or [])

    @property
    def prints(self) -> list[str]:
        """The debug prints of the failed run."""
        return [text for _, kind, text in self.logs if kind == "print"]


class CanisterRejectError(GraphcopyError):
    """The canister rejected the call (``msg_reject``), or the call could not be delivered."""

    exit_code = 8

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"call rejected (code {code}): {message}")
        self.code = code
        self.reject_message = message


class UpgradeOptionError(GraphcopyError):
    """The upgrade options do not fit the modules (the IC's CanisterContractViolation texts)."""

    exit_code = 2


class SnapshotNotFoundError(GraphcopyError):
    """No snapshot of that id belongs to the canister."""

    exit_code = 2


class SnapshotDirError(GraphcopyError):
    """A directory is not a valid canister snapshot (the dfx / icp-cli layout), or cannot be written."""

    exit_code = 2


class NothingToRollBackError(GraphcopyError):
    """``rollback`` found no upgrade snapshot to restore."""

    exit_code = 6


class DirtyTrackingError(InvalidArgumentError):
    """``GRAPHCOPY_DIRTY_TRACKING`` names a mechanism this process cannot use."""
