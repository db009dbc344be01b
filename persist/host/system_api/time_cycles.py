"""``ic0`` functions about time, the global timer, the instruction counter and cycles.

graphcopy does not meter cycles: every canister reports a notional balance, attached cycles are
never deducted, and what a callee does not accept is refunded in full.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import (
    ALL_KINDS,
    CLEANUP,
    INIT,
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

NOTIONAL_CYCLE_BALANCE = 100_000_000_000_000

AVAILABLE: dict[str, frozenset[str]] = {
    "time": NOT_START,
    "global_timer_set": frozenset({INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, REPLY, REJECT, CLEANUP, TIMER}),
    "performance_counter": ALL_KINDS,
    "msg_cycles_available128": frozenset({UPDATE, QUERY}),
    "msg_cycles_accept128": frozenset({UPDATE, REPLY, REJECT}),
    "msg_cycles_refunded128": frozenset({REPLY, REJECT}),
    "canister_cycle_balance128": NOT_START,
}


def _u128(value: int) -> bytes:
    return value.to_bytes(16, "little")


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_write = env.ctx_for, env.heap_write
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

    def msg_cycles_available128(dst: int) -> None:
        ctx = ctx_for("msg_cycles_available128")
        heap_write(dst, _u128(ctx.cycles_available - ctx.cycles_accepted))

    def msg_cycles_accept128(max_high: int, max_low: int, dst: int) -> None:
        ctx = ctx_for("msg_cycles_accept128")
        wanted = (max_high << 64) | max_low
        got = min(wanted, ctx.cycles_available - ctx.cycles_accepted)
        ctx.cycles_accepted += got
        heap_write(dst, _u128(got))

    def msg_cycles_refunded128(dst: int) -> None:
        ctx = ctx_for("msg_cycles_refunded128")
        heap_write(dst, _u128(ctx.refunded_cycles))

    def canister_cycle_balance128(dst: int) -> None:
        ctx_for("canister_cycle_balance128")
        heap_write(dst, _u128(NOTIONAL_CYCLE_BALANCE))

    return {
        "time": time_,
        "global_timer_set": global_timer_set,
        "performance_counter": performance_counter,
        "msg_cycles_available128": msg_cycles_available128,
        "msg_cycles_accept128": msg_cycles_accept128,
        "msg_cycles_refunded128": msg_cycles_refunded128,
        "canister_cycle_balance128": canister_cycle_balance128,
    }
