"""``ic0`` functions about the message itself: its argument, caller, method name, and its answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import (
    COMPOSITE_QUERY,
    QUERY,
    REJECT_CANISTER_REJECT,
    MessageContext,
    SystemEnv,
)
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap, TrapKind

#: The longest reject message the replica passes on (``MAX_REJECT_MESSAGE_LEN_BYTES``, 8 KiB, in
#: dfinity/ic ``rs/types/types/src/messages/inter_canister.rs``); longer ones are shortened in the
#: middle, keeping the first 75 % (``RejectContext::new``, ``ellipsize``).
MAX_REJECT_MESSAGE_LEN = 8 * 1024
_ELLIPSIS = "..."

COPY = "(dst : I, offset : I, size : I) -> ()"
SPEC: dict[str, Ic0] = {
    "msg_arg_data_size": ic0("() -> I", "I U RQ NRQ TQ CQ Ry CRy F"),
    "msg_arg_data_copy": ic0(COPY, "I U RQ NRQ TQ CQ Ry CRy F"),
    "msg_caller_size": ic0("() -> I", "*"),
    "msg_caller_copy": ic0(COPY, "*"),
    "msg_reject_code": ic0("() -> i32", "Ry Rt CRy CRt C"),
    "msg_reject_msg_size": ic0("() -> I", "Rt CRt"),
    "msg_reject_msg_copy": ic0(COPY, "Rt CRt"),
    "msg_deadline": ic0("() -> i64", "U Q CQ Ry Rt CRy CRt"),
    "msg_reply_data_append": ic0("(src : I, size : I) -> ()", "U RQ NRQ TQ CQ Ry Rt CRy CRt"),
    "msg_reply": ic0("() -> ()", "U RQ NRQ TQ CQ Ry Rt CRy CRt"),
    "msg_reject": ic0("(src : I, size : I) -> ()", "U RQ NRQ TQ CQ Ry Rt CRy CRt"),
    "msg_method_name_size": ic0("() -> I", "F"),
    "msg_method_name_copy": ic0(COPY, "F"),
    "accept_message": ic0("() -> ()", "F"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def ellipsize(text: str, max_len: int = MAX_REJECT_MESSAGE_LEN, prefix_percent: int = 75) -> str:
    """``text`` shortened to ``max_len`` UTF-8 bytes with ``...`` in the middle, as the replica does
    (``StrEllipsize::ellipsize`` in ``rs/utils/src/str.rs``)."""
    raw = text.encode()
    if len(raw) <= max_len:
        return text
    budget = max_len - len(_ELLIPSIS)
    head = raw[:budget * prefix_percent // 100].decode("utf-8", errors="ignore")
    tail_len = budget - len(head.encode())
    tail = raw[len(raw) - tail_len:].decode("utf-8", errors="ignore") if tail_len else ""
    return head + _ELLIPSIS + tail


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read, copy_out = env.ctx_for, env.heap_read, env.copy_out
    limits = env.canister.limits

    def msg_arg_data_size() -> int:
        return len(ctx_for("msg_arg_data_size").arg)

    def msg_arg_data_copy(dst: int, offset: int, size: int) -> None:
        copy_out("msg_arg_data_copy", ctx_for("msg_arg_data_copy").arg, dst, offset, size)

    def msg_caller_size() -> int:
        return len(ctx_for("msg_caller_size").caller)

    def msg_caller_copy(dst: int, offset: int, size: int) -> None:
        copy_out("msg_caller_copy", ctx_for("msg_caller_copy").caller, dst, offset, size)

    def msg_reject_code() -> int:
        # 0 ("no error") in a reply callback; a cleanup callback sees the code of the response
        # whose callback trapped.
        return ctx_for("msg_reject_code").reject_code

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
        # A query call's reply may be larger than a replicated one (system_api.rs, max_reply_size).
        cap = limits.max_query_response_bytes if ctx.kind in (QUERY, COMPOSITE_QUERY) else limits.max_response_bytes
        total = len(ctx.reply_buffer) + size
        if total > cap:
            raise HostTrap(f"ic0.msg_reply_data_append: application payload size ({total}) cannot be larger than "
                           f"{cap}.", TrapKind.USER_CONTRACT_VIOLATION)
        ctx.reply_buffer += heap_read(src, size)

    def msg_reply() -> None:
        ctx = answerable("msg_reply")
        ctx.response = ("reply", bytes(ctx.reply_buffer), 0, "")

    def msg_reject(src: int, size: int) -> None:
        ctx = answerable("msg_reject")
        text = heap_read(src, size).decode("utf-8", errors="replace")
        ctx.response = ("reject", b"", REJECT_CANISTER_REJECT, ellipsize(text))

    def msg_method_name_size() -> int:
        return len(ctx_for("msg_method_name_size").method.encode())

    def msg_method_name_copy(dst: int, offset: int, size: int) -> None:
        copy_out("msg_method_name_copy", ctx_for("msg_method_name_copy").method.encode(), dst, offset, size)

    def accept_message() -> None:
        ctx = ctx_for("accept_message")
        if ctx.accepted_message:
            raise HostTrap("ic0.accept_message: the message was already accepted")
        ctx.accepted_message = True

    def msg_deadline() -> int:
        ctx_for("msg_deadline")
        return 0  # every call has a guaranteed response here

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
        "msg_method_name_size": msg_method_name_size,
        "msg_method_name_copy": msg_method_name_copy,
        "accept_message": accept_message,
        "msg_deadline": msg_deadline,
    }
