"""``ic0.msg_caller_info_*``: what the canister that signed the caller's identity says about it.

Only callers authenticated by a canister signature carry such information (the ``sender_info`` of
an HTTP request); graphcopy's callers are its store identity, a principal given with ``--caller``,
or canisters, so the data and the signer are always empty, as the spec says they are for any other
caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import SystemEnv
from persist.host.system_api.spec import Ic0, ic0

WHERE = "U RQ NRQ CQ Ry Rt CRy CRt C CC F"
SPEC: dict[str, Ic0] = {
    "msg_caller_info_data_size": ic0("() -> I", WHERE),
    "msg_caller_info_data_copy": ic0("(dst : I, offset : I, size : I) -> ()", WHERE),
    "msg_caller_info_signer_size": ic0("() -> I", WHERE),
    "msg_caller_info_signer_copy": ic0("(dst : I, offset : I, size : I) -> ()", WHERE),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, copy_out = env.ctx_for, env.copy_out

    def size(name: str) -> Callable[[], int]:
        def f() -> int:
            ctx_for(name)
            return 0
        return f

    def copy(name: str) -> Callable[[int, int, int], None]:
        def f(dst: int, offset: int, size_: int) -> None:
            ctx_for(name)
            copy_out(name, b"", dst, offset, size_)
        return f

    return {
        "msg_caller_info_data_size": size("msg_caller_info_data_size"),
        "msg_caller_info_data_copy": copy("msg_caller_info_data_copy"),
        "msg_caller_info_signer_size": size("msg_caller_info_signer_size"),
        "msg_caller_info_signer_copy": copy("msg_caller_info_signer_copy"),
    }
