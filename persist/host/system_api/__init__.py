"""The ``ic0`` System API: the host functions a canister imports, grouped by area.

Each area module holds its functions and its own ``AVAILABLE`` table (which message kinds may call
each function, from the interface spec's table), so adding an ``ic0`` function touches one small
module: :mod:`.messages` (argument, caller, reply, reject), :mod:`.calls` (``call_*``),
:mod:`.canister` (id, status, version, controllers, certified data), :mod:`.time_cycles` (time,
timer, performance counter, cycles), :mod:`.debug` (``debug_print``, ``trap``) and :mod:`.stable`
(``stable*``, served by the Wasm helper). :mod:`.context` holds the per-message state and the
shared helpers. The System API sees the live canister only through
:class:`~persist.host.system_api.context.CanisterView`, so it imports nothing of the rest of the
host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api import calls, canister, debug, messages, stable, time_cycles
from persist.host.system_api.context import CanisterView, SystemEnv

__all__ = ["AVAILABLE", "PROVIDED", "build_system_api"]

_AREAS = (messages, calls, canister, time_cycles, debug)

#: Every Python-served ``ic0`` function and the message kinds that may call it.
AVAILABLE: dict[str, frozenset[str]] = {name: kinds for area in _AREAS for name, kinds in area.AVAILABLE.items()}
#: Every ``ic0`` function graphcopy provides (a module importing another one is refused).
PROVIDED: frozenset[str] = frozenset(AVAILABLE) | frozenset(stable.NAMES)


def build_system_api(live: CanisterView) -> dict[str, Callable[..., Any]]:
    """The ``ic0`` functions other than stable memory, closed over one live canister."""
    env = SystemEnv(live, AVAILABLE)
    api: dict[str, Callable[..., Any]] = {}
    for area in _AREAS:
        api.update(area.functions(env))
    return api
