"""``ic0`` functions about cycles: the balance, cycles attached to the message, accepting, burning.

graphcopy does not meter cycles: executing costs nothing and no fee is charged, but the balance is
kept per canister and moves as the IC moves it (attached cycles leave the caller, accepted ones
reach the callee, the rest comes back as the refund, burned ones are gone). A canister starts with
the notional :data:`NOTIONAL_CYCLE_BALANCE` unless its creator attached cycles. There is no
freezing threshold and no reserve, so the liquid balance is the balance. The 64-bit variants exist
for 32-bit modules only, as in the spec, and trap like the replica when an amount needs more than
64 bits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import MessageContext, SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import TRAPPED_PREFIX, HostTrap

#: The balance of a canister nobody attached cycles to (and of every canister created before cycles
#: were tracked).
NOTIONAL_CYCLE_BALANCE = 100_000_000_000_000
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

SPEC: dict[str, Ic0] = {
    "msg_cycles_available128": ic0("(dst : I) -> ()", "U RQ Rt Ry"),
    "msg_cycles_refunded128": ic0("(dst : I) -> ()", "Rt Ry"),
    "msg_cycles_accept128": ic0("(max_amount_high : i64, max_amount_low : i64, dst : I) -> ()", "U RQ Rt Ry"),
    "cycles_burn128": ic0("(amount_high : i64, amount_low : i64, dst : I) -> ()", "I G U RQ Ry Rt C T"),
    "canister_cycle_balance128": ic0("(dst : I) -> ()", "*"),
    "canister_liquid_cycle_balance128": ic0("(dst : I) -> ()", "*"),
    "msg_cycles_available": ic0("() -> i64", "U RQ Rt Ry", i32_only=True),
    "msg_cycles_refunded": ic0("() -> i64", "Rt Ry", i32_only=True),
    "msg_cycles_accept": ic0("(max_amount : i64) -> i64", "U RQ Rt Ry", i32_only=True),
    "canister_cycle_balance": ic0("() -> i64", "*", i32_only=True),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def _u128(value: int) -> bytes:
    return value.to_bytes(16, "little")


def _u64(value: int) -> int:
    if value > U64_MAX:
        raise HostTrap(TRAPPED_PREFIX + "cycles amount exceeds 64-bit representation")
    return value


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_write = env.ctx_for, env.heap_write

    def available(ctx: MessageContext) -> int:
        return ctx.cycles_available - ctx.cycles_accepted

    def accept(ctx: MessageContext, wanted: int) -> int:
        got = min(wanted, available(ctx))
        ctx.cycles_accepted += got
        return got

    def msg_cycles_available128(dst: int) -> None:
        heap_write(dst, _u128(available(ctx_for("msg_cycles_available128"))))

    def msg_cycles_accept128(max_high: int, max_low: int, dst: int) -> None:
        got = accept(ctx_for("msg_cycles_accept128"), (max_high << 64) | max_low)
        heap_write(dst, _u128(got))

    def msg_cycles_refunded128(dst: int) -> None:
        heap_write(dst, _u128(ctx_for("msg_cycles_refunded128").refunded_cycles))

    def cycles_burn128(high: int, low: int, dst: int) -> None:
        ctx = ctx_for("cycles_burn128")
        burned = max(0, min((high << 64) | low, ctx.cycle_balance()))
        ctx.cycles_burned += burned
        heap_write(dst, _u128(burned))

    def canister_cycle_balance128(dst: int) -> None:
        heap_write(dst, _u128(max(0, ctx_for("canister_cycle_balance128").cycle_balance())))

    def canister_liquid_cycle_balance128(dst: int) -> None:
        heap_write(dst, _u128(max(0, ctx_for("canister_liquid_cycle_balance128").cycle_balance())))

    def msg_cycles_available() -> int:
        return _u64(available(ctx_for("msg_cycles_available")))

    def msg_cycles_refunded() -> int:
        return _u64(ctx_for("msg_cycles_refunded").refunded_cycles)

    def msg_cycles_accept(max_amount: int) -> int:
        return accept(ctx_for("msg_cycles_accept"), max_amount)

    def canister_cycle_balance() -> int:
        return _u64(max(0, ctx_for("canister_cycle_balance").cycle_balance()))

    return {
        "msg_cycles_available128": msg_cycles_available128,
        "msg_cycles_accept128": msg_cycles_accept128,
        "msg_cycles_refunded128": msg_cycles_refunded128,
        "cycles_burn128": cycles_burn128,
        "canister_cycle_balance128": canister_cycle_balance128,
        "canister_liquid_cycle_balance128": canister_liquid_cycle_balance128,
        "msg_cycles_available": msg_cycles_available,
        "msg_cycles_refunded": msg_cycles_refunded,
        "msg_cycles_accept": msg_cycles_accept,
        "canister_cycle_balance": canister_cycle_balance,
    }
