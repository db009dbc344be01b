"""The ``ic0`` System API as host functions, with the IC's argument checks and traps.

Everything here is called from Wasm. The four ``stable64_*`` functions (and the deprecated 32-bit
ones) are not here: the Wasm helper in ``stable_helper`` serves them, because runtimes call them
once per word. What remains is called a few times per message, so Python is fast enough.

Availability follows the interface spec's table of which System API functions each kind of
message may use; a call from the wrong context traps with the function's name, as on the IC.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from persist.host import LiveCanister

MAX_PRINCIPAL_LEN = 29
MAX_METHOD_NAME = 20_000
CANISTER_STATUS_CODES = {"running": 1, "stopping": 2, "stopped": 3}

# Message kinds, named as in the interface spec's availability table.
START, INIT, PRE_UPGRADE, POST_UPGRADE = "start", "init", "pre_upgrade", "post_upgrade"
UPDATE, QUERY, REPLY, REJECT, CLEANUP, TIMER = "update", "query", "reply", "reject", "cleanup", "timer"
INSPECT = "inspect"

_ALL = {START, INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, QUERY, REPLY, REJECT, CLEANUP, TIMER, INSPECT}
_NOT_START = _ALL - {START}
AVAILABLE: dict[str, set[str]] = {
    "msg_arg_data_size": {INIT, POST_UPGRADE, UPDATE, QUERY, REPLY, INSPECT},
    "msg_arg_data_copy": {INIT, POST_UPGRADE, UPDATE, QUERY, REPLY, INSPECT},
    "msg_caller_size": {INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, QUERY, INSPECT},
    "msg_caller_copy": {INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, QUERY, INSPECT},
    "msg_method_name_size": {INSPECT},
    "msg_method_name_copy": {INSPECT},
    "accept_message": {INSPECT},
    "msg_cycles_available128": {UPDATE, QUERY},
    "msg_cycles_accept128": {UPDATE, REPLY, REJECT},
    "canister_cycle_balance128": _NOT_START,
    "canister_version": _NOT_START,
    "certified_data_set": {INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, REPLY, REJECT, CLEANUP, TIMER},
    "data_certificate_present": _NOT_START,
    "data_certificate_size": {QUERY},
    "data_certificate_copy": {QUERY},
    "in_replicated_execution": _NOT_START,
    "msg_deadline": {UPDATE, QUERY, REPLY, REJECT},
    "msg_reject_code": {REPLY, REJECT},
    "msg_reject_msg_size": {REJECT},
    "msg_reject_msg_copy": {REJECT},
    "msg_reply_data_append": {UPDATE, QUERY, REPLY, REJECT},
    "msg_reply": {UPDATE, QUERY, REPLY, REJECT},
    "msg_reject": {UPDATE, QUERY, REPLY, REJECT},
    "msg_cycles_refunded128": {REPLY, REJECT},
    "canister_self_size": _NOT_START,
    "canister_self_copy": _NOT_START,
    "canister_status": _NOT_START,
    "is_controller": _NOT_START,
    "call_new": {UPDATE, REPLY, REJECT, TIMER},
    "call_on_cleanup": {UPDATE, REPLY, REJECT, TIMER},
    "call_data_append": {UPDATE, REPLY, REJECT, TIMER},
    "call_cycles_add128": {UPDATE, REPLY, REJECT, TIMER},
    "call_with_best_effort_response": {UPDATE, REPLY, REJECT, TIMER},
    "call_perform": {UPDATE, REPLY, REJECT, TIMER},
    "global_timer_set": {INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, REPLY, REJECT, CLEANUP, TIMER},
    "time": _NOT_START,
    "performance_counter": _ALL,
    "debug_print": _ALL,
    "trap": _ALL,
}

REJECT_SYS_FATAL, REJECT_SYS_TRANSIENT, REJECT_DESTINATION_INVALID = 1, 2, 3
REJECT_CANISTER_REJECT, REJECT_CANISTER_ERROR = 4, 5
# graphcopy does not meter cycles: every canister reports this notional balance, attached cycles
# are never deducted, and what a callee does not accept is refunded in full.
NOTIONAL_CYCLE_BALANCE = 100_000_000_000_000
MAX_CERTIFIED_DATA = 32


class HostTrap(Exception):
    """Raised inside a host function to trap the running message with the IC's message text."""


@dataclass
class Callback:
    """Where a response to an outgoing call is delivered: functions in the caller's table."""

    reply_fun: int
    reply_env: int
    reject_fun: int
    reject_env: int
    cleanup_fun: int | None = None
    cleanup_env: int | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__.copy()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Callback:
        return cls(**d)


@dataclass
class OutgoingCall:
    """A call the running message made; it is sent only if the message commits."""

    callee: bytes
    method: str
    callback: Callback
    arg: bytearray = field(default_factory=bytearray)
    cycles: int = 0
    timeout_seconds: int | None = None


@dataclass
class MessageContext:
    """The per-message state the System API reads and writes."""

    kind: str
    caller: bytes = b""
    arg: bytes = b""
    time_ns: int = 0
    # The call context can still be answered (False once replied, or for timers and callbacks of
    # a context that has been answered already).
    can_respond: bool = False
    reject_code: int = 0
    reject_message: str = ""
    refunded_cycles: int = 0
    reply_buffer: bytearray = field(default_factory=bytearray)
    response: tuple[str, bytes, int, str] | None = None  # ("reply", data, 0, "") / ("reject", b"", code, msg)
    pending_call: OutgoingCall | None = None
    calls: list[OutgoingCall] = field(default_factory=list)
    logs: list[tuple[int, str]] = field(default_factory=list)
    instruction_limit: int = 0
    instructions_used: int = 0
    method: str = ""
    cycles_available: int = 0
    cycles_accepted: int = 0
    replicated: bool = True
    accepted_message: bool = False


def build_system_api(live: LiveCanister) -> dict[str, Callable[..., Any]]:
    """The ``ic0`` functions other than stable memory, closed over one live canister."""

    def ctx_for(name: str) -> MessageContext:
        ctx = live.ctx
        if ctx is None or ctx.kind not in AVAILABLE[name]:
            where = ctx.kind if ctx is not None else "no message"
            raise HostTrap(f'"ic0.{name}" cannot be executed in {where} mode')
        return ctx

    def heap_read(ptr: int, size: int) -> bytes:
        base, length = live.heap_span()
        if ptr < 0 or size < 0 or ptr + size > length:
            raise HostTrap("heap out of bounds")
        return ctypes.string_at(base + ptr, size)

    def heap_write(ptr: int, data: bytes) -> None:
        base, length = live.heap_span()
        if ptr < 0 or ptr + len(data) > length:
            raise HostTrap("heap out of bounds")
        ctypes.memmove(base + ptr, data, len(data))

    def copy_out(name: str, source: bytes, dst: int, offset: int, size: int) -> None:
        if offset + size > len(source):
            raise HostTrap(f"ic0.{name}: source out of bounds (offset {offset} + size {size} > {len(source)})")
        heap_write(dst, source[offset:offset + size])

    def msg_arg_data_size() -> int:
        return len(ctx_for("msg_arg_data_size").arg)

    def msg_arg_data_copy(dst: int, offset: int, size: int) -> None:
        copy_out("msg_arg_data_copy", ctx_for("msg_arg_data_copy").arg, dst, offset, size)

    def msg_caller_size() -> int:
        return len(ctx_for("msg_caller_size").caller)

    def msg_caller_copy(dst: int, offset: int, size: int) -> None:
        copy_out("msg_caller_copy", ctx_for("msg_caller_copy").caller, dst, offset, size)

    def msg_reject_code() -> int:
        ctx = ctx_for("msg_reject_code")
        return ctx.reject_code if ctx.kind == REJECT else 0

    def msg_reject_msg_size() -> int:
        return len(ctx_for("msg_reject_msg_size").reject_message.encode())

    def msg_reject_msg_copy(dst: int, offset: int, size: int) -> None:
        msg = ctx_for("msg_reject_msg_copy").reject_message.encode()
        copy_out("msg_reject_msg_copy", msg, dst, offset, size)

    def answerable(name: str) -> MessageContext:
        ctx = ctx_for(name)
        if not ctx.can_respond or ctx.response is not None:
            raise HostTrap(f"ic0.{name}: the call is already replied")
        return ctx

    def msg_reply_data_append(src: int, size: int) -> None:
        ctx = answerable("msg_reply_data_append")
        ctx.reply_buffer += heap_read(src, size)
        if len(ctx.reply_buffer) > live.limits.max_response_bytes:
            raise HostTrap("ic0.msg_reply_data_append: application payload size "
                           f"({len(ctx.reply_buffer)}) cannot be larger than {live.limits.max_response_bytes}")

    def msg_reply() -> None:
        ctx = answerable("msg_reply")
        ctx.response = ("reply", bytes(ctx.reply_buffer), 0, "")

    def msg_reject(src: int, size: int) -> None:
        ctx = answerable("msg_reject")
        text = heap_read(src, size).decode("utf-8", errors="replace")
        ctx.response = ("reject", b"", REJECT_CANISTER_REJECT, text)

    def msg_cycles_refunded128(dst: int) -> None:
        ctx = ctx_for("msg_cycles_refunded128")
        heap_write(dst, ctx.refunded_cycles.to_bytes(16, "little"))

    def canister_self_size() -> int:
        ctx_for("canister_self_size")
        return len(live.principal)

    def canister_self_copy(dst: int, offset: int, size: int) -> None:
        ctx_for("canister_self_copy")
        copy_out("canister_self_copy", live.principal, dst, offset, size)

    def canister_status() -> int:
        ctx_for("canister_status")
        return CANISTER_STATUS_CODES[live.status]

    def is_controller(src: int, size: int) -> int:
        ctx_for("is_controller")
        if size > MAX_PRINCIPAL_LEN:
            raise HostTrap(f"ic0.is_controller: invalid principal of {size} bytes (at most {MAX_PRINCIPAL_LEN})")
        return 1 if heap_read(src, size) in live.controllers else 0

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

    def call_on_cleanup(fun: int, env: int) -> None:
        call = pending("call_on_cleanup")
        if call.callback.cleanup_fun is not None:
            raise HostTrap("ic0.call_on_cleanup: the cleanup callback is already set")
        call.callback.cleanup_fun, call.callback.cleanup_env = fun, env

    def call_data_append(src: int, size: int) -> None:
        call = pending("call_data_append")
        call.arg += heap_read(src, size)
        if len(call.arg) > live.limits.max_request_bytes:
            raise HostTrap(f"ic0.call_data_append: call payload larger than {live.limits.max_request_bytes} bytes")

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

    def global_timer_set(timestamp: int) -> int:
        ctx_for("global_timer_set")
        previous = live.timer_ns
        live.timer_ns = timestamp & 0xFFFF_FFFF_FFFF_FFFF
        return previous

    def time_() -> int:
        return ctx_for("time").time_ns

    def performance_counter(counter_type: int) -> int:
        ctx = ctx_for("performance_counter")
        if counter_type not in (0, 1):
            raise HostTrap(f"ic0.performance_counter: unknown counter type {counter_type}")
        used = ctx.instruction_limit - live.store.get_fuel()
        return int(used * live.limits.performance_counter_scale)

    def debug_print(src: int, size: int) -> None:
        ctx = ctx_for("debug_print")
        ctx.logs.append((ctx.time_ns, heap_read(src, size).decode("utf-8", errors="replace")))

    def msg_method_name_size() -> int:
        return len(ctx_for("msg_method_name_size").method.encode())

    def msg_method_name_copy(dst: int, offset: int, size: int) -> None:
        copy_out("msg_method_name_copy", ctx_for("msg_method_name_copy").method.encode(), dst, offset, size)

    def accept_message() -> None:
        ctx = ctx_for("accept_message")
        if ctx.accepted_message:
            raise HostTrap("ic0.accept_message: the message was already accepted")
        ctx.accepted_message = True

    def u128(value: int) -> bytes:
        return value.to_bytes(16, "little")

    def msg_cycles_available128(dst: int) -> None:
        ctx = ctx_for("msg_cycles_available128")
        heap_write(dst, u128(ctx.cycles_available - ctx.cycles_accepted))

    def msg_cycles_accept128(max_high: int, max_low: int, dst: int) -> None:
        ctx = ctx_for("msg_cycles_accept128")
        wanted = (max_high << 64) | max_low
        got = min(wanted, ctx.cycles_available - ctx.cycles_accepted)
        ctx.cycles_accepted += got
        heap_write(dst, u128(got))

    def canister_cycle_balance128(dst: int) -> None:
        ctx_for("canister_cycle_balance128")
        heap_write(dst, u128(NOTIONAL_CYCLE_BALANCE))

    def canister_version() -> int:
        ctx_for("canister_version")
        return live.version

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

    def in_replicated_execution() -> int:
        return 1 if ctx_for("in_replicated_execution").replicated else 0

    def msg_deadline() -> int:
        ctx_for("msg_deadline")
        return 0  # every call has a guaranteed response here

    def trap(src: int, size: int) -> None:
        ctx_for("trap")
        text = heap_read(src, size).decode("utf-8", errors="replace")
        raise HostTrap(f"Canister called `ic0.trap` with message: '{text}'")

    return {
        "msg_arg_data_size": msg_arg_data_size,
        "msg_arg_data_copy": msg_arg_data_copy,
        "msg_caller_size": msg_caller_size,
        "msg_caller_copy": msg_caller_copy,
        "msg_reject_code": msg_reject_code,
        "msg_reject_msg_size": msg_reject_msg_size,
        "msg_reject_msg_copy": msg_reject_msg_copy,
        "msg_reply_data_append": msg_reply_data_append,
        "msg_reply": msg_reply,
        "msg_reject": msg_reject,
        "msg_cycles_refunded128": msg_cycles_refunded128,
        "canister_self_size": canister_self_size,
        "canister_self_copy": canister_self_copy,
        "canister_status": canister_status,
        "is_controller": is_controller,
        "call_new": call_new,
        "call_on_cleanup": call_on_cleanup,
        "call_data_append": call_data_append,
        "call_cycles_add128": call_cycles_add128,
        "call_with_best_effort_response": call_with_best_effort_response,
        "call_perform": call_perform,
        "global_timer_set": global_timer_set,
        "time": time_,
        "performance_counter": performance_counter,
        "debug_print": debug_print,
        "trap": trap,
        "msg_method_name_size": msg_method_name_size,
        "msg_method_name_copy": msg_method_name_copy,
        "accept_message": accept_message,
        "msg_cycles_available128": msg_cycles_available128,
        "msg_cycles_accept128": msg_cycles_accept128,
        "canister_cycle_balance128": canister_cycle_balance128,
        "canister_version": canister_version,
        "certified_data_set": certified_data_set,
        "data_certificate_present": data_certificate_present,
        "data_certificate_size": no_certificate("data_certificate_size"),
        "data_certificate_copy": no_certificate("data_certificate_copy"),
        "in_replicated_execution": in_replicated_execution,
        "msg_deadline": msg_deadline,
    }
