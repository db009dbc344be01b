"""``ic0`` functions of certification: the certified data, data certificates, the IC's root key.

graphcopy runs no consensus and signs nothing: ``data_certificate_present`` is 0 everywhere (so
``data_certificate_size``/``copy`` trap, as the spec says they do without a certificate), and there
is no root key (``root_key_size`` is 0). The certified data is kept, committed and snapshotted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from persist.host.system_api.context import SystemEnv
from persist.host.system_api.spec import Ic0, ic0
from persist.host.traps import HostTrap

MAX_CERTIFIED_DATA = 32
#: graphcopy's root key: none (it issues no certificates to verify against one).
ROOT_KEY = b""

SPEC: dict[str, Ic0] = {
    "certified_data_set": ic0("(src : I, size : I) -> ()", "I G U Ry Rt T"),
    "data_certificate_present": ic0("() -> i32", "*"),
    "data_certificate_size": ic0("() -> I", "NRQ CQ"),
    "data_certificate_copy": ic0("(dst : I, offset : I, size : I) -> ()", "NRQ CQ"),
    "root_key_size": ic0("() -> I", "I G U RQ Ry Rt C T"),
    "root_key_copy": ic0("(dst : I, offset : I, size : I) -> ()", "I G U RQ Ry Rt C T"),
}
AVAILABLE: dict[str, frozenset[str]] = {name: fn.kinds for name, fn in SPEC.items()}


def functions(env: SystemEnv) -> dict[str, Callable[..., Any]]:
    """This area's ``ic0`` functions, closed over one canister's environment."""
    ctx_for, heap_read, copy_out = env.ctx_for, env.heap_read, env.copy_out
    live = env.canister

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

    def root_key_size() -> int:
        ctx_for("root_key_size")
        return len(ROOT_KEY)

    def root_key_copy(dst: int, offset: int, size: int) -> None:
        ctx_for("root_key_copy")
        copy_out("root_key_copy", ROOT_KEY, dst, offset, size)

    return {
        "certified_data_set": certified_data_set,
        "data_certificate_present": data_certificate_present,
        "data_certificate_size": no_certificate("data_certificate_size"),
        "data_certificate_copy": no_certificate("data_certificate_copy"),
        "root_key_size": root_key_size,
        "root_key_copy": root_key_copy,
    }
