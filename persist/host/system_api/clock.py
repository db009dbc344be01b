"""``ic0`` functions about time: the message's time, the global timer, the instruction counter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap

SPEC: dict[str, Ic0] = {
    "time": ic0("() -> i64", "*"),
    "global_timer_set": ic0("(timestamp : i64) -> i64", "I G U Ry Rt C T"),
    "performance_counter": ic0("(counter_type : i32) -> i64", "* s"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for = env.ctx_for
    live = env.canister

    def time_() -> int:
        return ctx_for("time").time_ns

    def global_timer_set(timestamp: int) -> int:
        ctx_for("global_timer_set")
        previous = live.timer_ns
        live.timer_ns = timestamp & 0xFFFF_FFFF_FFFF_FFFF
        return previous

    def performance_counter(counter_type: int) -> int:
        ctx = ctx_for("performance_counter")
        if counter_type not in (0, 1):
            raise HostTrap(f"ic0.performance_counter: unknown counter type {counter_type}")
        used = ctx.instruction_limit - live.fuel_left()
        return int(used * live.limits.performance_counter_scale)

    return {"time": time_, "global_timer_set": global_timer_set, "performance_counter": performance_counter}
