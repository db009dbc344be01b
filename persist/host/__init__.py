"""The Wasm host: canister modules on wasmtime, and nothing that touches SQL.

* :mod:`persist.host.wasm_binary` -- the Wasm binary format at the level graphcopy reads it;
* :mod:`persist.host.module` -- :func:`parse_module`: what a canister module imports, exports, declares;
* :mod:`persist.host.instrument` -- the rewrite that lets the host own heap, start function and globals;
* :mod:`persist.host.runtime` -- the wasmtime engine and its compiled-module caches;
* :mod:`persist.host.limits` -- instruction and size limits (the IC's by default);
* :mod:`persist.host.memory` -- the heap and the stable memory with their change tracking;
* :mod:`persist.host.stable_helper` -- the Wasm helper that serves ``ic0.stable*``;
* :mod:`persist.host.live` -- :class:`LiveCanister`: one loaded canister, one message at a time;
* :mod:`persist.host.system_api` -- the ``ic0`` functions, grouped by area, with their availability;
* :mod:`persist.host.traps`, :mod:`persist.host.globals` -- trap texts; globals as canister state.

The host imports nothing of graphcopy but ``persist.errors`` and ``persist.principal``: never the
store (``persist.store``), execution, Candid, ``migrate`` or ``cli``. What a message changed is
committed by :mod:`persist.execution`, which reads and writes SQL.
"""
