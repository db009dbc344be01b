"""What every ``ic0`` function works with: the message being run, the canister it runs on, and the
helpers that check availability and move bytes between the heap and the host.

The message kinds are named as in the interface spec's availability table. A function called from
a kind of message that may not use it traps with the IC's text (``"ic0.X" cannot be executed in K
mode``). Heap access is bounds-checked and traps "heap out of bounds", as on the IC.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from persist.host.limits import Limits
from persist.host.traps import HostTrap

__all__ = [
    "ALL_KINDS",
    "CLEANUP",
    "COMPOSITE_CLEANUP",
    "COMPOSITE_QUERY",
    "COMPOSITE_REJECT",
    "COMPOSITE_REPLY",
    "INIT",
    "INSPECT",
    "MAX_PRINCIPAL_LEN",
    "NOT_START",
    "POST_UPGRADE",
    "PRE_UPGRADE",
    "QUERY",
    "REJECT",
    "REJECT_CANISTER_ERROR",
    "REJECT_CANISTER_REJECT",
    "REJECT_DESTINATION_INVALID",
    "REJECT_SYS_FATAL",
    "REJECT_SYS_TRANSIENT",
    "REJECT_SYS_UNKNOWN",
    "REPLICATED_QUERY",
    "REPLY",
    "START",
    "TIMER",
    "TRANSFORM_QUERY",
    "UPDATE",
    "Callback",
    "CanisterView",
    "MessageContext",
    "OutgoingCall",
    "SystemEnv",
]

# Message kinds, one for each letter of the interface spec's availability table ("Overview of
# imports"): s, I (init and post_upgrade), G, U, RQ, NRQ ("query": a query call, or a query run for
# its reply only), TQ, CQ, Ry, Rt, CRy, CRt, C, CC, F and T. graphcopy never runs TQ (no HTTP
# outcalls) nor the composite-query callbacks (composite queries make no calls here); they are
# named so that the tables say what the spec says.
START, INIT, PRE_UPGRADE, POST_UPGRADE = "start", "init", "pre_upgrade", "post_upgrade"
UPDATE, QUERY, REPLY, REJECT, CLEANUP, TIMER = "update", "query", "reply", "reject", "cleanup", "timer"
INSPECT = "inspect"
REPLICATED_QUERY, TRANSFORM_QUERY, COMPOSITE_QUERY = "replicated query", "transform query", "composite query"
COMPOSITE_REPLY, COMPOSITE_REJECT, COMPOSITE_CLEANUP = "composite reply", "composite reject", "composite cleanup"

ALL_KINDS = frozenset({START, INIT, PRE_UPGRADE, POST_UPGRADE, UPDATE, REPLICATED_QUERY, QUERY, TRANSFORM_QUERY,
                       COMPOSITE_QUERY, REPLY, REJECT, COMPOSITE_REPLY, COMPOSITE_REJECT, CLEANUP, COMPOSITE_CLEANUP,
                       TIMER, INSPECT})
NOT_START = ALL_KINDS - {START}

#: The longest principal the IC accepts (bytes).
MAX_PRINCIPAL_LEN = 29

REJECT_SYS_FATAL, REJECT_SYS_TRANSIENT, REJECT_DESTINATION_INVALID = 1, 2, 3
REJECT_CANISTER_REJECT, REJECT_CANISTER_ERROR, REJECT_SYS_UNKNOWN = 4, 5, 6


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
    log_bytes: int = 0  # what ``logs`` holds, as the replica counts it (``debug.py``)
    instruction_limit: int = 0
    instructions_used: int = 0
    # Bytes the message read from and wrote to stable memory through ic0.stable* (graph-copy progress).
    stable_bytes_read: int = 0
    stable_bytes_written: int = 0
    method: str = ""
    cycles_available: int = 0
    cycles_accepted: int = 0
    replicated: bool = True
    accepted_message: bool = False
    # What the canister's row says when the message starts: its environment variables (sorted by
    # name, as the IC keeps them) and its cycle balance (a callback's refund already added).
    env_vars: list[tuple[str, str]] = field(default_factory=list)
    cycles_balance: int = 0
    # Cycles attached to the calls performed so far, and burned with ic0.cycles_burn128.
    cycles_sent: int = 0
    cycles_burned: int = 0

    def cycle_balance(self) -> int:
        """The balance as the canister sees it now: accepted cycles in, sent and burned cycles out,
        and the cycles attached to the call under construction held back (the spec's
        ``canister_cycle_balance128``)."""
        pending = self.pending_call.cycles if self.pending_call is not None else 0
        return self.cycles_balance + self.cycles_accepted - self.cycles_sent - self.cycles_burned - pending

    def cycle_delta(self) -> int:
        """How much this message changes the canister's balance if it commits."""
        return self.cycles_accepted - self.cycles_sent - self.cycles_burned


class CanisterView(Protocol):
    """What the System API sees of the live canister it serves (``persist.host.live.LiveCanister``)."""

    ctx: MessageContext | None
    limits: Limits
    principal: bytes
    status: str
    controllers: set[bytes]
    timer_ns: int
    version: int
    certified_data: bytes

    def heap_span(self) -> tuple[int, int]: ...

    def fuel_left(self) -> int: ...


class SystemEnv:
    """The shared helpers of the ``ic0`` functions of one live canister."""

    def __init__(self, canister: CanisterView, available: Mapping[str, frozenset[str]]) -> None:
        self.canister = canister
        self.available = available

    def ctx_for(self, name: str) -> MessageContext:
        """The running message's context, if ``ic0.name`` may be used in it; else trap."""
        ctx = self.canister.ctx
        if ctx is None or ctx.kind not in self.available[name]:
            where = ctx.kind if ctx is not None else "no message"
            raise HostTrap(f'"ic0.{name}" cannot be executed in {where} mode')
        return ctx

    def heap_read(self, ptr: int, size: int) -> bytes:
        """``size`` bytes of the heap at ``ptr`` (bounds-checked)."""
        base, length = self.canister.heap_span()
        if ptr < 0 or size < 0 or ptr + size > length:
            raise HostTrap("heap out of bounds")
        return ctypes.string_at(base + ptr, size)

    def heap_write(self, ptr: int, data: bytes) -> None:
        """Write ``data`` into the heap at ``ptr`` (bounds-checked)."""
        base, length = self.canister.heap_span()
        if ptr < 0 or ptr + len(data) > length:
            raise HostTrap("heap out of bounds")
        ctypes.memmove(base + ptr, data, len(data))

    def copy_out(self, name: str, source: bytes, dst: int, offset: int, size: int) -> None:
        """The ``*_copy(dst, offset, size)`` convention: ``source[offset:offset+size]`` to the heap."""
        if offset + size > len(source):
            raise HostTrap(f"ic0.{name}: source out of bounds (offset {offset} + size {size} > {len(source)})")
        self.heap_write(dst, source[offset:offset + size])
