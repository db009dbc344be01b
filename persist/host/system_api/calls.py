"""``ic0.call_*``: building and performing calls to other canisters (and to the canister itself).

A call is built with ``call_new``, then ``call_on_cleanup``, ``call_data_append``,
``call_cycles_add128`` and ``call_with_best_effort_response``, and queued by ``call_perform``. It
is sent only if the message that made it commits (``persist.execution`` routes it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import (
    MAX_PRINCIPAL_LEN,
    REJECT,
    REPLY,
    TIMER,
    UPDATE,
    Callback,
    OutgoingCall,
    SystemEnv,
)
from persist.host.traps import HostTrap

MAX_METHOD_NAME = 20_000

_CALLERS = frozenset({UPDATE, REPLY, REJECT, TIMER})
AVAILABLE: dict[str, frozenset[str]] = {
    "call_new": _CALLERS,
    "call_on_cleanup": _CALLERS,
    "call_data_append": _CALLERS,
    "call_cycles_add128": _CALLERS,
    "call_with_best_effort_response": _CALLERS,
    "call_perform": _CALLERS,
}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read = env.ctx_for, env.heap_read
    limits = env.canister.limits

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
        call.arg += heap_read(src, size)
        if len(call.arg) > limits.max_request_bytes:
            raise HostTrap(f"ic0.call_data_append: call payload larger than {limits.max_request_bytes} bytes")

    def call_cycles_add128(high: int, low: int) -> None:
        call = pending("call_cycles_add128")
        # Cycles are not metered by graphcopy: what is attached is refunded in full.
        call.cycles += ((high & 0xFFFF_FFFF_FFFF_FFFF) << 64) | (low & 0xFFFF_FFFF_FFFF_FFFF)

    def call_with_best_effort_response(timeout_seconds: int) -> None:
        call = pending("call_with_best_effort_response")
        if call.timeout_seconds is not None:
            raise HostTrap("ic0.call_with_best_effort_response: the timeout is already set")
        call.timeout_seconds = timeout_seconds

    def call_perform() -> int:
        ctx = ctx_for("call_perform")
        call = pending("call_perform")
        ctx.pending_call = None
        ctx.calls.append(call)
        return 0

    return {
        "call_new": call_new,
        "call_on_cleanup": call_on_cleanup,
        "call_data_append": call_data_append,
        "call_cycles_add128": call_cycles_add128,
        "call_with_best_effort_response": call_with_best_effort_response,
        "call_perform": call_perform,
    }
