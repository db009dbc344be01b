"""How an IC snapshot lists a module's globals, and how that maps onto graphcopy's stored globals.

The replica's instrumentation (dfinity/ic ``rs/embedders/src/wasm_utils/instrumentation.rs``,
``export_mutable_globals``) appends an export ``__persistent_mutable_global_<index>`` for every
mutable global the module does not export itself, in index order, *after* the module's own
exports; it then adds its own counters (``canister counter_instructions``, ``canister
counter_dirty_pages``, ``canister counter_accessed_pages``). The persisted globals are the
instance's exported globals in export order (``wasmtime_embedder.rs``, ``get_exported_globals``),
and a snapshot's metadata lists "values of Wasm globals that are either exported or mutable"
(interface spec, ``read_canister_snapshot_metadata``) without the replica's counters: the IC's
own round-trip tests (``rs/execution_environment/tests/canister_snapshots.rs``,
``take_download_upload_load_snapshot_roundtrip_*``) expect ``[]`` for a module without globals
and ``[I32(42)]`` for one global, exported or not, mutable or not (immutable *and* unexported:
``[]``). So the list is:

1. every global export of the module, in export-section order (mutable or not, as often as it is
   exported);
2. then every mutable global the module does not export, by ascending index.

On loading an uploaded snapshot the replica checks that the list has the module's length and types
(``globals_match`` in ``canister_manager.rs``: "Wasm exported globals of canister module and
snapshot metadata do not match") and sets the mutable ones; immutable values are skipped.

graphcopy's own instrumentation (``persist.host.instrument``) exports every mutable global as
``graphcopy:global:<index>`` and the store keeps them as ``{"<index>": value}`` in
``canisters.globals`` (``persist.host.globals``). Import takes the mutable entries of the list by
index; export writes the stored value of each mutable entry and the constant initializer of each
immutable one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persist.errors import SnapshotDirError
from persist.host.module import ModuleInfo
from persist.snapshot_dir.format import SnapshotGlobal

__all__ = ["REPLICA_EXPORT_PREFIX", "GlobalSlot", "globals_from_snapshot", "globals_to_snapshot", "snapshot_layout"]

REPLICA_EXPORT_PREFIX = "__persistent_mutable_global_"


@dataclass(frozen=True)
class GlobalSlot:
    """One entry of a snapshot's ``globals``: which global of the module it is, and why it is listed
    (``export`` is the module's own export name, or ``__persistent_mutable_global_<index>``)."""

    index: int
    valtype: str
    mutable: bool
    export: str
    init: int | float | None


def snapshot_layout(info: ModuleInfo) -> list[GlobalSlot]:
    """The globals an IC snapshot of a canister running this module lists, in order."""
    defs = {g.index: g for g in info.global_defs}
    exported = {index for _, index in info.global_exports}
    slots = [GlobalSlot(i, defs[i].valtype, defs[i].mutable, name, defs[i].init)
             for name, i in info.global_exports if i in defs]
    slots += [GlobalSlot(g.index, g.valtype, True, f"{REPLICA_EXPORT_PREFIX}{g.index}", g.init)
              for g in info.global_defs if g.mutable and g.index not in exported]
    return slots


def _describe(slots: list[GlobalSlot]) -> str:
    return "[" + ", ".join(s.valtype for s in slots) + "]"


def globals_from_snapshot(layout: list[GlobalSlot], values: list[SnapshotGlobal | None],
                          where: str) -> dict[int, Any]:
    """The mutable globals' values by index, from a snapshot's list; SnapshotDirError when the list
    does not fit the module (length, a type, a null entry, or a v128 graphcopy cannot host)."""
    if len(values) != len(layout):
        raise SnapshotDirError(
            f"{where}: `globals` has {len(values)} entries but the module has {len(layout)} exported or mutable "
            f"globals {_describe(layout)}: the globals do not fit the module")
    out: dict[int, Any] = {}
    for i, (slot, value) in enumerate(zip(layout, values, strict=True)):
        if value is None:
            raise SnapshotDirError(
                f"{where}: `globals[{i}]` is null (the tool that downloaded it could not decode it); "
                "it cannot be imported")
        if value.valtype != slot.valtype:
            raise SnapshotDirError(
                f"{where}: `globals[{i}]` is {value.valtype} but the module's global {slot.index} ({slot.export}) is "
                f"{slot.valtype}: the globals do not fit the module")
        if slot.valtype == "v128":
            raise SnapshotDirError(f"{where}: `globals[{i}]` is a v128 global; graphcopy cannot host v128 globals")
        if slot.mutable:
            out[slot.index] = value.value
    return out


def globals_to_snapshot(layout: list[GlobalSlot], stored: dict[int, Any]) -> list[SnapshotGlobal | None]:
    """A snapshot's ``globals`` for a canister whose stored mutable globals are ``stored``."""
    out: list[SnapshotGlobal | None] = []
    for slot in layout:
        value = stored.get(slot.index, slot.init) if slot.mutable else slot.init
        if value is None:
            raise SnapshotDirError(
                f"global {slot.index} ({slot.export}) has no constant initial value and no stored value; "
                "its value cannot be written")
        out.append(SnapshotGlobal(slot.valtype, float(value) if slot.valtype in ("f32", "f64") else int(value)))
    return out
