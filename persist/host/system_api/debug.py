"""``ic0.debug_print`` and ``ic0.trap``: the canister's log and its own traps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.limits import LOG_RECORD_OVERHEAD
from persist.host.system_api.context import MessageContext, SystemEnv
from persist.host.system_api.messages import ellipsize
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
    cap = env.canister.limits.log_message_limit

    def debug_print(src: int, size: int) -> None:
        ctx = ctx_for("debug_print")
        # A record is cut to what fits in one message's log; only the newest records that fit
        # are kept (the replica's delta log: truncate_content, make_free_space_within_limit).
        keep = max(0, min(size, cap - LOG_RECORD_OVERHEAD))
        if size > keep:
            heap_read(src + size - 1, 1)  # the whole range must still be in the heap
        text = heap_read(src, keep).decode("utf-8", errors="replace")
        ctx.logs.append((ctx.time_ns, text))
        ctx.log_bytes += LOG_RECORD_OVERHEAD + len(text.encode())
        if ctx.log_bytes > 2 * cap:
            _drop_oldest(ctx, cap)

    def trap(src: int, size: int) -> None:
        ctx_for("trap")
        # The reject a caller receives keeps at most 8 KiB of it (MAX_REJECT_MESSAGE_LEN_BYTES).
        text = ellipsize(heap_read(src, size).decode("utf-8", errors="replace"))
        raise HostTrap(f"Canister called `ic0.trap` with message: '{text}'", TrapKind.CALLED_TRAP)

    return {"debug_print": debug_print, "trap": trap}


def _drop_oldest(ctx: MessageContext, cap: int) -> None:
    """Drop the oldest prints of the message until the rest fit in ``cap`` (done only when twice
    that is held, so that a loop of prints costs amortised constant time)."""
    total, cut = ctx.log_bytes, 0
    while total > cap and cut < len(ctx.logs):
        total -= LOG_RECORD_OVERHEAD + len(ctx.logs[cut][1].encode())
        cut += 1
    del ctx.logs[:cut]
    ctx.log_bytes = total
