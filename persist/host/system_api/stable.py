"""``ic0.stable*``: stable memory. Served by Wasm, not Python (see :mod:`persist.host.stable_helper`).

Runtimes call these once per word (Motoko's graph copy streams its whole heap through them), so
they are the exports of a small Wasm helper module doing ``memory.copy`` between the heap and the
host-owned 64-bit stable memory; a Python host function would cost microseconds a call. This area
only names them, so that the System API knows every function it provides.
"""

from __future__ import annotations

from persist.host.stable_helper import STABLE_IMPORTS

#: The stable-memory functions the helper exports, linked straight into the canister.
NAMES: tuple[str, ...] = STABLE_IMPORTS
