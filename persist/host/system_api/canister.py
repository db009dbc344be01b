"""``ic0`` functions about the canister itself: its id, status, version, controllers, execution mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import MAX_PRINCIPAL_LEN, SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap

CANISTER_STATUS_CODES = {"running": 1, "stopping": 2, "stopped": 3}

SPEC: dict[str, Ic0] = {
    "canister_self_size": ic0("() -> I", "*"),
    "canister_self_copy": ic0("(dst : I, offset : I, size : I) -> ()", "*"),
    "canister_status": ic0("() -> i32", "*"),
    "canister_version": ic0("() -> i64", "*"),
    "is_controller": ic0("(src : I, size : I) -> i32", "* s"),
    "in_replicated_execution": ic0("() -> i32", "* s"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read, copy_out = env.ctx_for, env.heap_read, env.copy_out
    live = env.canister

    def canister_self_size() -> int:
        ctx_for("canister_self_size")
        return len(live.principal)

    def canister_self_copy(dst: int, offset: int, size: int) -> None:
        ctx_for("canister_self_copy")
        copy_out("canister_self_copy", live.principal, dst, offset, size)

    def canister_status() -> int:
        ctx_for("canister_status")
        return CANISTER_STATUS_CODES[live.status]

    def canister_version() -> int:
        ctx_for("canister_version")
        return live.version

    def is_controller(src: int, size: int) -> int:
        ctx_for("is_controller")
        if size > MAX_PRINCIPAL_LEN:
            raise HostTrap(f"ic0.is_controller: invalid principal of {size} bytes (at most {MAX_PRINCIPAL_LEN})")
        return 1 if heap_read(src, size) in live.controllers else 0

    def in_replicated_execution() -> int:
        return 1 if ctx_for("in_replicated_execution").replicated else 0

    return {
        "canister_self_size": canister_self_size,
        "canister_self_copy": canister_self_copy,
        "canister_status": canister_status,
        "canister_version": canister_version,
        "is_controller": is_controller,
        "in_replicated_execution": in_replicated_execution,
    }
