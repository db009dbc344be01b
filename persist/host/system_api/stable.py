"""``ic0.stable*``: stable memory. Served by Wasm, not Python (see :mod:`persist.host.stable_helper`).

Runtimes call these once per word (Motoko's graph copy streams its whole heap through them), so
they are the exports of a small Wasm helper module doing ``memory.copy`` between the heap and the
host-owned 64-bit stable memory; a Python host function would cost microseconds a call. This area
only declares them (their signatures and where they may be called, ``* s``: everywhere, the start
function included), so that the System API knows every function it provides. The 32-bit API is
deprecated and, as in the spec, offered only to modules with a 32-bit memory.
"""

from __future__ import annotations

from persist.host.stable_helper import STABLE_IMPORTS
from persist.host.system_api.spec import Ic0, ic0

SPEC: dict[str, Ic0] = {
    "stable64_size": ic0("() -> i64", "* s"),
    "stable64_grow": ic0("(new_pages : i64) -> i64", "* s"),
    "stable64_write": ic0("(offset : i64, src : i64, size : i64) -> ()", "* s"),
    "stable64_read": ic0("(dst : i64, offset : i64, size : i64) -> ()", "* s"),
    "stable_size": ic0("() -> i32", "* s", i32_only=True),
    "stable_grow": ic0("(new_pages : i32) -> i32", "* s", i32_only=True),
    "stable_write": ic0("(offset : i32, src : i32, size : i32) -> ()", "* s", i32_only=True),
    "stable_read": ic0("(dst : i32, offset : i32, size : i32) -> ()", "* s", i32_only=True),
}
assert set(SPEC) == set(STABLE_IMPORTS)

#: The stable-memory functions the helper exports, linked straight into the canister.
NAMES: tuple[str, ...] = STABLE_IMPORTS
