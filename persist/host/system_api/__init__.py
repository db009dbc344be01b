"""The ``ic0`` System API: the host functions a canister imports, grouped by area.

Every function of the current interface spec is here, each declared in its area module in the
spec's notation (:func:`~persist.host.system_api.spec.ic0`: signature and availability letters),
which gives the module's ``SPEC`` and ``AVAILABLE`` tables (the message kinds that may call each
function). The areas: :mod:`.messages` (argument, caller, reply, reject), :mod:`.caller_info`
(``msg_caller_info_*``), :mod:`.calls` (``call_*``), :mod:`.cycles` (balance, accepting,
burning), :mod:`.canister` (id, status, version, controllers), :mod:`.certification` (certified
data, certificates, root key), :mod:`.subnet` (``subnet_self_*``), :mod:`.env_vars`
(``env_var_*``), :mod:`.costs` (``cost_*``), :mod:`.clock` (time, timer, instruction counter),
:mod:`.debug` (``debug_print``, ``trap``) and :mod:`.stable` (``stable*``, served by the Wasm
helper). :mod:`.context` holds the per-message state and the shared helpers, :mod:`.spec` the
notation, the import check and the README table (``python -m persist.host.system_api``). The
System API sees the live canister only through
:class:`~persist.host.system_api.context.CanisterView`, so it imports nothing of the rest of the
host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api import (
    caller_info,
    calls,
    canister,
    certification,
    clock,
    costs,
    cycles,
    debug,
    env_vars,
    messages,
    stable,
    subnet,
)
from persist.host.system_api.context import CanisterView, SystemEnv
from persist.host.system_api.spec import Ic0, check_imports

__all__ = ["AREA_OF", "AVAILABLE", "PROVIDED", "SPEC", "build_system_api", "import_problem"]

_AREAS = (messages, caller_info, calls, cycles, canister, certification, subnet, env_vars, costs, clock, debug)

#: Every ``ic0`` function of the interface spec, as its area declares it.
SPEC: dict[str, Ic0] = {name: fn for area in (*_AREAS, stable) for name, fn in area.SPEC.items()}
#: The module (under ``persist/host/system_api/``) that holds each function.
AREA_OF: dict[str, str] = {name: area.__name__.rsplit(".", 1)[1] + ".py"
                           for area in (*_AREAS, stable) for name in area.SPEC}
#: Every Python-served ``ic0`` function and the message kinds that may call it.
AVAILABLE: dict[str, frozenset[str]] = {name: kinds for area in _AREAS for name, kinds in area.AVAILABLE.items()}
#: Every ``ic0`` function graphcopy provides.
PROVIDED: frozenset[str] = frozenset(SPEC)


def import_problem(imports: list[tuple[str, list[str], list[str]]], memory_is_64: bool) -> str | None:
    """Why a module with these ``ic0`` imports (name, parameter and result types) is not a canister
    the IC would accept, or None."""
    return check_imports(SPEC, imports, memory_is_64)


def build_system_api(live: CanisterView) -> dict[str, Callable[..., Any]]:
    """The ``ic0`` functions other than stable memory, closed over one live canister."""
    env = SystemEnv(live, AVAILABLE)
    api: dict[str, Callable[..., Any]] = {}
    for area in _AREAS:
        api.update(area.functions(env))
    return api
