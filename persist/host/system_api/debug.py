"""``ic0.debug_print`` and ``ic0.trap``: the canister's log and its own traps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap, TrapKind

SPEC: dict[str, Ic0] = {
    "debug_print": ic0("(src : I, size : I) -> ()", "* s"),
    "trap": ic0("(src : I, size : I) -> ()", "* s"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read = env.ctx_for, env.heap_read

    def debug_print(src: int, size: int) -> None:
        ctx = ctx_for("debug_print")
        ctx.logs.append((ctx.time_ns, heap_read(src, size).decode("utf-8", errors="replace")))

    def trap(src: int, size: int) -> None:
        ctx_for("trap")
        text = heap_read(src, size).decode("utf-8", errors="replace")
        raise HostTrap(f"Canister called `ic0.trap` with message: '{text}'", TrapKind.CALLED_TRAP)

    return {"debug_print": debug_print, "trap": trap}
