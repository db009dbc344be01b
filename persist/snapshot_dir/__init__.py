"""The canister snapshot directory of ``dfx canister snapshot download/upload`` and icp-cli.

A directory holds ``metadata.json`` (the serde JSON of the management canister's
``read_canister_snapshot_metadata`` result), ``wasm_module.bin`` (possibly gzipped),
``wasm_memory.bin`` (the heap), ``stable_memory.bin`` (absent, or empty with icp-cli, when there is
none) and ``wasm_chunk_store/<hex sha256>.bin``. This package knows that format and nothing of the
store: :mod:`~persist.snapshot_dir.format` (the metadata model, parsed and written in exactly the
spelling dfx and icp-cli use), :mod:`~persist.snapshot_dir.globals` (how the IC lists a module's
globals), :mod:`~persist.snapshot_dir.reader` (validating a directory, streaming its memories page
by page) and :mod:`~persist.snapshot_dir.writer` (writing one, memories sparse, metadata last).
``persist.api.snapshot_transfer`` moves directories in and out of a store.

May import ``persist.errors`` and the module parser (``persist.host.module``, no wasmtime); never
the store, execution, the API or the session.
"""
