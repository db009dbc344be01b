"""``ic0.call_*``: building and performing calls to other canisters (and to the canister itself).

A call is built with ``call_new``, then ``call_on_cleanup``, ``call_data_append``,
``call_cycles_add128`` and ``call_with_best_effort_response``, and queued by ``call_perform``. It
is sent only if the message that made it commits (``persist.execution`` routes it).

Attached cycles leave the canister's (notional) balance; attaching more than it holds traps with
the replica's out-of-cycles text. A composite query may build calls, but graphcopy does not run
composite-query calls: ``call_perform`` answers ``SYS_TRANSIENT`` (2), which the caller sees as a
failed call, never as a trap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import (
    COMPOSITE_QUERY,
    COMPOSITE_REJECT,
    COMPOSITE_REPLY,
    MAX_PRINCIPAL_LEN,
    REJECT_SYS_TRANSIENT,
    Callback,
    OutgoingCall,
    SystemEnv,
)
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap, TrapKind
from persist.principal import Principal

MAX_METHOD_NAME = 20_000
# The replica's suggestion and documentation anchor for a call with too large a payload
# (rs/embedders/src/wasmtime_embedder/system_api/request_in_prep.rs).
PAYLOAD_TOO_LARGE = ("Check the canister for errors or redesign the target API to allow shorter messages",
                     "canister-made-a-call-with-too-large-payload")
U64_MASK = 0xFFFF_FFFF_FFFF_FFFF

CALLERS = "U CQ Ry Rt CRy CRt T"
SPEC: dict[str, Ic0] = {
    "call_new": ic0("(callee_src : I, callee_size : I, name_src : I, name_size : I, reply_fun : I, "
                    "reply_env : I, reject_fun : I, reject_env : I) -> ()", CALLERS),
    "call_on_cleanup": ic0("(fun : I, env : I) -> ()", CALLERS),
    "call_data_append": ic0("(src : I, size : I) -> ()", CALLERS),
    "call_with_best_effort_response": ic0("(timeout_seconds : i32) -> ()", CALLERS),
    "call_cycles_add128": ic0("(amount_high : i64, amount_low : i64) -> ()", "U Ry Rt T"),
    "call_perform": ic0("() -> i32", CALLERS),
    "call_cycles_add": ic0("(amount : i64) -> ()", "U Ry Rt T", i32_only=True),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}
_COMPOSITE = frozenset({COMPOSITE_QUERY, COMPOSITE_REPLY, COMPOSITE_REJECT})


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read = env.ctx_for, env.heap_read
    live = env.canister
    limits = live.limits

    def call_new(callee_src: int, callee_size: int, name_src: int, name_size: int,
                 reply_fun: int, reply_env: int, reject_fun: int, reject_env: int) -> None:
        ctx = ctx_for("call_new")
        if callee_size > MAX_PRINCIPAL_LEN:
            raise HostTrap(f"ic0.call_new: invalid callee principal of {callee_size} bytes")
        if name_size > MAX_METHOD_NAME:
            raise HostTrap("ic0.call_new: method name too long")
        callee = heap_read(callee_src, callee_size)
        method = heap_read(name_src, name_size).decode("utf-8", errors="replace")
        # Starting a new call discards one under construction (spec: "call_new ... discards").
        ctx.pending_call = OutgoingCall(callee, method, Callback(reply_fun, reply_env, reject_fun, reject_env))

    def pending(name: str) -> OutgoingCall:
        ctx = ctx_for(name)
        if ctx.pending_call is None:
            raise HostTrap(f"ic0.{name}: no call is under construction (call ic0.call_new first)")
        return ctx.pending_call

    def call_on_cleanup(fun: int, env_: int) -> None:
        call = pending("call_on_cleanup")
        if call.callback.cleanup_fun is not None:
            raise HostTrap("ic0.call_on_cleanup: the cleanup callback is already set")
        call.callback.cleanup_fun, call.callback.cleanup_env = fun, env_

    def call_data_append(src: int, size: int) -> None:
        call = pending("call_data_append")
        # The replica counts the method name and the argument (RequestInPrep::extend_method_payload).
        total = len(call.method.encode()) + len(call.arg) + size
        if total > limits.max_request_bytes:
            raise HostTrap(f"Request to {Principal(call.callee).to_text()}:{call.method} has a payload size of "
                           f"{total}, which exceeds the allowed limit of {limits.max_request_bytes}.",
                           TrapKind.USER_CONTRACT_VIOLATION, help=PAYLOAD_TOO_LARGE)
        call.arg += heap_read(src, size)

    def add_cycles(name: str, amount: int) -> None:
        ctx = ctx_for(name)
        call = pending(name)
        available = ctx.cycle_balance()
        if amount > available:
            who = Principal(live.principal).to_text()
            text = (f"Canister {who} is out of cycles: please top up the canister with at least "
                    f"{amount - available} additional cycles" if ctx.caller in live.controllers
                    else f"Canister {who} is out of cycles")
            raise HostTrap(text, TrapKind.OUT_OF_CYCLES)
        call.cycles += amount

    def call_cycles_add128(high: int, low: int) -> None:
        add_cycles("call_cycles_add128", ((high & U64_MASK) << 64) | (low & U64_MASK))

    def call_cycles_add(amount: int) -> None:
        add_cycles("call_cycles_add", amount & U64_MASK)

    def call_with_best_effort_response(timeout_seconds: int) -> None:
        call = pending("call_with_best_effort_response")
        if call.timeout_seconds is not None:
            raise HostTrap("ic0.call_with_best_effort_response: the timeout is already set")
        call.timeout_seconds = timeout_seconds

    def call_perform() -> int:
        ctx = ctx_for("call_perform")
        call = pending("call_perform")
        ctx.pending_call = None
        if ctx.kind in _COMPOSITE:
            return REJECT_SYS_TRANSIENT  # not sent; the attached cycles stay with the canister
        ctx.calls.append(call)
        ctx.cycles_sent += call.cycles
        return 0

    return {
        "call_new": call_new,
        "call_on_cleanup": call_on_cleanup,
        "call_data_append": call_data_append,
        "call_cycles_add128": call_cycles_add128,
        "call_with_best_effort_response": call_with_best_effort_response,
        "call_perform": call_perform,
        "call_cycles_add": call_cycles_add,
    }
