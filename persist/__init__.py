"""Durable canister state and its execution.

The public API is a set of plain functions over a ``Store``::

    from persist import open_store, install, call
    with open_store("sqlite:///graphcopy.db") as store:
        install(store, "counter", wasm_bytes)
        reply = call(store, "counter", "inc")

Names are imported lazily (PEP 562), so ``import persist.errors`` stays cheap for the CLI.
Nothing in ``persist`` imports ``migrate`` or ``cli``. The parts (see ARCHITECTURE.md): ``store`` (SQL),
``host`` (wasmtime), ``candid``, ``session`` (the open ``Store``), ``execution`` (running messages:
store and host together) and ``api`` (the public functions).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EMPTY_ARGS": "persist.api",
    "CallResult": "persist.api",
    "CanisterStatus": "persist.api",
    "HistoryEntry": "persist.api",
    "InstallResult": "persist.api",
    "LogLine": "persist.api",
    "call": "persist.api",
    "delete": "persist.api",
    "install": "persist.api",
    "interface": "persist.api",
    "list_canisters": "persist.api",
    "logs": "persist.api",
    "method_kind": "persist.api",
    "queue": "persist.api",
    "run_pending": "persist.api",
    "start": "persist.api",
    "status": "persist.api",
    "stop": "persist.api",
    "Limits": "persist.host.limits",
    "clear_module_cache": "persist.host.module_cache",
    "module_cache_info": "persist.host.module_cache",
    "Store": "persist.session",
    "open_store": "persist.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'persist' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
