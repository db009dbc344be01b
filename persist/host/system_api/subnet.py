"""``ic0.subnet_self_*``: the id of the subnet the canister runs on.

A graphcopy store is one subnet. Its id is fixed (:data:`SUBNET_ID`, a self-authenticating-form
principal like real subnet ids, derived from a constant), so it is the same for every canister and
across processes; the management canister's ``subnet_info`` answers for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.principal import Principal

#: The store's subnet.
SUBNET_ID = Principal(hashlib.sha224(b"graphcopy local subnet").digest() + b"\x02")

SPEC: dict[str, Ic0] = {
    "subnet_self_size": ic0("() -> I", "*"),
    "subnet_self_copy": ic0("(dst : I, offset : I, size : I) -> ()", "*"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, copy_out = env.ctx_for, env.copy_out

    def subnet_self_size() -> int:
        ctx_for("subnet_self_size")
        return len(SUBNET_ID.raw)

    def subnet_self_copy(dst: int, offset: int, size: int) -> None:
        ctx_for("subnet_self_copy")
        copy_out("subnet_self_copy", SUBNET_ID.raw, dst, offset, size)

    return {"subnet_self_size": subnet_self_size, "subnet_self_copy": subnet_self_copy}
