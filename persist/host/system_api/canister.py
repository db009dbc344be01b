"""``ic0`` functions about the canister itself: its id, status, version, controllers, certified data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import (
    CLEANUP,
    INIT,
    MAX_PRINCIPAL_LEN,
    NOT_START,
    POST_UPGRADE,
    PRE_UPGRADE,
    QUERY,
    REJECT,
    REPLY,
    TIMER,
    UPDATE,
    SystemEnv,
)
from persist.host.traps import HostTrap

CANISTER_STATUS_CODES = {"running": 1, "stopping": 2, "stopped": 3}
MAX_CERTIFIED_DATA = 32

AVAILABLE: dict[str, frozenset[str]] = {
    "canister_self_size": NOT_START,
    "canister_self_copy": NOT_START,
    "canister_status": NOT_START,
    "canister_version": NOT_START,
    "is_controller": NOT_START,
    "in_replicated_execution": NOT_START,
    "certified_data_set": frozenset({INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, REPLY, REJECT, CLEANUP, TIMER}),
    "data_certificate_present": NOT_START,
    "data_certificate_size": frozenset({QUERY}),
    "data_certificate_copy": frozenset({QUERY}),
}


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

    def certified_data_set(src: int, size: int) -> None:
        ctx_for("certified_data_set")
        if size > MAX_CERTIFIED_DATA:
            raise HostTrap(f"ic0.certified_data_set: certified data of {size} bytes is more than {MAX_CERTIFIED_DATA}")
        live.certified_data = heap_read(src, size)

    def data_certificate_present() -> int:
        ctx_for("data_certificate_present")
        return 0  # graphcopy issues no certificates

    def no_certificate(name: str) -> Callable[..., Any]:
        def f(*_: int) -> Any:
            ctx_for(name)
            raise HostTrap(f"ic0.{name}: no data certificate is present")
        return f

    return {
        "canister_self_size": canister_self_size,
        "canister_self_copy": canister_self_copy,
        "canister_status": canister_status,
        "canister_version": canister_version,
        "is_controller": is_controller,
        "in_replicated_execution": in_replicated_execution,
        "certified_data_set": certified_data_set,
        "data_certificate_present": data_certificate_present,
        "data_certificate_size": no_certificate("data_certificate_size"),
        "data_certificate_copy": no_certificate("data_certificate_copy"),
    }
