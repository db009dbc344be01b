"""The public functions of ``persist``, over an open ``Store``; the CLI and scripts call exactly these.

* :mod:`persist.api.canisters` -- install, status, list, logs, stop, start, delete, run_pending, queue;
* :mod:`persist.api.calls` -- call (an update commits, a query discards its changes), interface, method_kind;
* :mod:`persist.api.snapshots` -- take, list, load and delete snapshots; roll back the last upgrade;
* :mod:`persist.api.snapshot_transfer` -- import and export IC snapshot directories (dfx / icp-cli).

``from persist import api`` then ``api.install(...)``, ``api.call(...)``; the most used names are
also at ``persist`` itself (``from persist import install, call``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as they are, for type checkers; at run time they load on first use
    from persist.api.calls import CALL_KINDS, CallResult, call, interface, method_kind, module_interface
    from persist.api.canisters import (
        CanisterStatus,
        DeleteResult,
        HistoryEntry,
        InstallResult,
        LogLine,
        QueueEntry,
        delete,
        install,
        list_canisters,
        logs,
        queue,
        run_pending,
        start,
        status,
        stop,
    )
    from persist.candid.wire import EMPTY_ARGS

# Loaded on first use (PEP 562): `graphcopy call` needs only `calls`, not the install machinery.
_EXPORTS = {
    **dict.fromkeys(["CALL_KINDS", "CallResult", "call", "interface", "method_kind", "module_interface"],
                    "persist.api.calls"),
    **dict.fromkeys(["CanisterStatus", "DeleteResult", "HistoryEntry", "InstallResult", "LogLine", "QueueEntry",
                     "delete", "install", "list_canisters", "logs", "queue", "run_pending", "start", "status",
                     "stop"], "persist.api.canisters"),
    "EMPTY_ARGS": "persist.candid.wire",
}

__all__ = [
    "CALL_KINDS",
    "EMPTY_ARGS",
    "CallResult",
    "CanisterStatus",
    "DeleteResult",
    "HistoryEntry",
    "InstallResult",
    "LogLine",
    "QueueEntry",
    "call",
    "delete",
    "install",
    "interface",
    "list_canisters",
    "logs",
    "method_kind",
    "module_interface",
    "queue",
    "run_pending",
    "start",
    "status",
    "stop",
]


assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'persist.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value
