"""Import and export IC canister snapshots: the directory ``dfx canister snapshot download`` writes.

``import_snapshot(store, name, dir)`` creates canister ``name`` from a snapshot directory (or,
with ``into=True``, loads it onto an existing canister after taking a graphcopy snapshot of it):
the module (kept as the file holds it, gzipped or not), the heap at its own addresses (Motoko's
64-bit EOP heap is ``wasm_memory.bin``), stable memory, the globals (mapped as
``persist.snapshot_dir.globals`` explains), certified data, the global timer, the canister
version, the hook status and the Wasm chunk store. Everything is validated before anything is
written, and the writing is one transaction: bad input, a crash or an interrupt leaves the store
as it was. ``export_snapshot(store, name, dir, snapshot_id=None)`` writes the canister's current
state, or a graphcopy snapshot of it, in the same layout, with a ``metadata.json`` that
``dfx canister snapshot upload --dir`` accepts. Memories move page by page (64 KiB, zero pages
never stored nor written), so their size is bounded by disk, not by memory.

Loading an uploaded snapshot on the IC (``load_canister_snapshot``) runs no canister code: no
pre/post-upgrade hooks and no stable-type compatibility check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from persist.api.canisters import check_name
from persist.api.snapshots import delete_snapshot, take_snapshot
from persist.errors import CanisterStateError, GraphcopyError, InvalidModuleError, SnapshotDirError
from persist.execution import instances, scheduler
from persist.host.globals import decode_globals, encode_globals
from persist.host.memory import PAGE
from persist.host.module import ModuleInfo, parse_module
from persist.interrupts import checkpoint
from persist.principal import Principal
from persist.session import Store
from persist.snapshot_dir.format import HEAP_FILE, METADATA_FILE, STABLE_FILE, SnapshotMetadata
from persist.snapshot_dir.globals import globals_from_snapshot, globals_to_snapshot, snapshot_layout
from persist.snapshot_dir.reader import SnapshotDir, memory_pages, open_snapshot_dir
from persist.snapshot_dir.writer import SnapshotDirWriter
from persist.store import chunks, db, pages, schema, transfer
from persist.store.canisters import canister_row, controller_row, store_module
from persist.store.snapshots import migration_in_progress, snapshot_chunks, snapshot_row

__all__ = ["ExportResult", "ImportResult", "ProgressFn", "export_snapshot", "import_snapshot", "imported_from"]

#: ``on_progress(file, bytes done, bytes in all)``, called as a memory file is read or written.
ProgressFn = Callable[[str, int, int], None]
_MAX_32BIT_PAGES = 65536


@dataclass
class ImportResult:
    """What ``import_snapshot`` did."""

    name: str
    principal: str
    created: bool  # False: loaded onto an existing canister (``into``)
    directory: str
    module_hash: str
    source: str | None
    taken_at_timestamp: int
    canister_version: int
    heap_bytes: int
    stable_bytes: int
    stored_heap_pages: int  # non-zero pages written
    stored_stable_pages: int
    chunks: int
    globals: int  # entries of the snapshot's globals list
    timer_ns: int
    hook_status: str | None
    metadata_sha256: str
    snapshot_id: int | None = None  # the graphcopy snapshot taken of the target first (``into``)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExportResult:
    """What ``export_snapshot`` wrote."""

    name: str
    directory: str
    snapshot_id: int | None  # None: the current state
    module_hash: str
    files: dict[str, int]  # file (relative to the directory) -> size in bytes
    stored_heap_pages: int
    stored_stable_pages: int
    chunks: int
    taken_at_timestamp: int
    canister_version: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)


def _reporter(on_progress: ProgressFn | None, file: str, total: int) -> Callable[[int], None]:
    """What a memory file's reader or writer calls per block: the progress report, and a place a
    deferred Ctrl-C stops the transfer at (its transaction, or the unfinished directory, is undone)."""
    done = 0
    if on_progress is not None:
        on_progress(file, 0, total)

    def report(n: int) -> None:
        nonlocal done
        checkpoint()
        done += n
        if on_progress is not None:
            on_progress(file, done, total)

    return report


def _check_memories(snap: SnapshotDir, info: ModuleInfo, store: Store) -> None:
    """The memories must fit the module (its memory's index type and limits) and the store's limits."""
    meta, where = snap.metadata, snap.path / METADATA_FILE
    heap_pages = meta.wasm_memory_size // PAGE
    mem = info.memory
    if mem is None:
        if heap_pages:
            raise SnapshotDirError(f"{where}: the module declares no memory but the snapshot has a "
                                   f"{meta.wasm_memory_size:,}-byte heap")
        return
    if heap_pages < mem.min_pages:
        raise SnapshotDirError(f"{where}: the heap has {heap_pages} pages but the module's memory starts at "
                               f"{mem.min_pages}: the heap does not belong to this module")
    if mem.max_pages is not None and heap_pages > mem.max_pages:
        raise SnapshotDirError(f"{where}: the heap has {heap_pages} pages, more than the module's maximum of "
                               f"{mem.max_pages}")
    if not mem.is_64 and heap_pages > _MAX_32BIT_PAGES:
        raise SnapshotDirError(f"{where}: the heap has {heap_pages} pages, more than a 32-bit memory can hold")
    if meta.stable_memory_size > store.limits.stable_memory_max_bytes:
        raise SnapshotDirError(f"{where}: the stable memory has {meta.stable_memory_size:,} bytes, more than this "
                               f"store's limit of {store.limits.stable_memory_max_bytes:,}")


def _load_module(store: Store, snap: SnapshotDir) -> tuple[bytes, ModuleInfo]:
    wasm = snap.read_module()
    try:
        info, _ = store.runtime.load_module(wasm)
    except InvalidModuleError as exc:
        raise InvalidModuleError(f"{snap.module_path}: {exc}") from None
    return wasm, info


def import_snapshot(store: Store, name: str, directory: str | Path, *, into: bool = False,
                    canister_id: str | None = None, on_progress: ProgressFn | None = None) -> ImportResult:
    """Create canister ``name`` from the snapshot directory (dfx / icp-cli layout), or with ``into``
    load it onto the existing canister ``name`` after taking a graphcopy snapshot of it.

    ``canister_id`` gives a new canister that principal (its id on the IC, so ``ic0.canister_self``
    answers the same); by default the next free id. With ``into`` the canister keeps its id,
    controllers and status, and a ``null`` global timer or hook status in the metadata leaves its
    own (as on the IC). Raises SnapshotDirError (exit 2) for a directory that is not a valid
    snapshot, InvalidModuleError for a module that is not a canister, CanisterExistsError,
    NotAuthorizedError (``into``, not a controller), CanisterStateError (open call contexts or a
    migration in progress on the target). Nothing is changed when it raises.
    """
    t0 = time.perf_counter()
    if not into:
        check_name(name, principal=canister_id and Principal.from_text(canister_id).to_text())
    snap = open_snapshot_dir(directory)
    meta = snap.metadata
    wasm, info = _load_module(store, snap)
    _check_memories(snap, info, store)
    mutable = globals_from_snapshot(snapshot_layout(info), meta.globals, str(snap.path / METADATA_FILE))
    if into and canister_id is not None:
        raise GraphcopyError("--canister-id is for a new canister; with --into the canister keeps its own id")
    principal = Principal.from_text(canister_id) if canister_id is not None else None
    warnings = list(snap.warnings)
    state = transfer.ImportedState(
        module_hash=info.hash, heap_pages=meta.wasm_memory_size // PAGE, stable_pages=meta.stable_memory_size // PAGE,
        globals=json.dumps(encode_globals(mutable)),
        timer_ns=meta.global_timer_ns if meta.global_timer == "active" else 0,
        certified_data=meta.certified_data, time_ns=meta.taken_at_timestamp, version=meta.canister_version,
        hook_status=meta.on_low_wasm_memory_hook_status)
    detail = {"directory": str(snap.path.resolve()), "metadata_sha256": snap.metadata_sha256, "source": meta.source,
              "taken_at_timestamp": meta.taken_at_timestamp, "canister_version": meta.canister_version}
    snapshot_id: int | None = None
    row = None
    if into:
        scheduler.settle_canister(store, name)  # queued messages belong to the state being replaced
        with db.read_transaction(store.engine) as conn:
            row = controller_row(conn, name, store.controller_identity(), store.lock_owner)
        if meta.global_timer is None:
            state.timer_ns = int(row.timer_ns)
        if meta.on_low_wasm_memory_hook_status is None:
            state.hook_status = row.on_low_wasm_memory_hook_status
        state.time_ns = max(int(row.time_ns), meta.taken_at_timestamp)
        if row.module_hash is not None:
            snapshot_id = take_snapshot(store, name, label=f"before snapshot import from {snap.path.name}").id
    try:
        with db.transaction(store.engine) as conn:
            existing = conn.execute(sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == info.hash)).scalar()
            if existing is not None and bytes(existing) != wasm:
                warnings.append("this store already holds the module as other bytes (compressed differently); "
                                "an export writes those bytes")
            store_module(conn, wasm, info.hash, info.custom_sections)
            if row is None:
                cid, principal = transfer.create_canister(
                    conn, name, principal, [store.controller_identity().to_text()], state, detail)
            else:
                cid, principal = int(row.id), Principal.from_text(row.principal)
                transfer.overwrite_canister(conn, row, state, detail)
                chunks.clear_chunks(conn, cid)
            heap = pages.write_pages(conn, pages.HEAP, cid, memory_pages(
                snap.heap_path, meta.wasm_memory_size, _reporter(on_progress, HEAP_FILE, meta.wasm_memory_size)))
            stable = pages.write_pages(conn, pages.STABLE, cid, memory_pages(
                snap.stable_path, meta.stable_memory_size,
                _reporter(on_progress, STABLE_FILE, meta.stable_memory_size)))
            chunk_hashes = chunks.put_chunks(conn, cid, (data for _, data in snap.read_chunks()))
    except BaseException:
        if snapshot_id is not None:  # nothing was loaded: the safety snapshot is not needed
            try:
                delete_snapshot(store, name, snapshot_id)
            except GraphcopyError:
                pass
        raise
    if row is not None:
        instances.forget_live(store, int(row.id))
    return ImportResult(
        name=name, principal=principal.to_text(), created=row is None, directory=str(snap.path),
        module_hash=info.hash, source=meta.source, taken_at_timestamp=meta.taken_at_timestamp,
        canister_version=meta.canister_version if row is None else int(row.version) + 1,
        heap_bytes=meta.wasm_memory_size, stable_bytes=meta.stable_memory_size, stored_heap_pages=heap // PAGE,
        stored_stable_pages=stable // PAGE, chunks=len(chunk_hashes), globals=len(meta.globals),
        timer_ns=state.timer_ns, hook_status=state.hook_status, metadata_sha256=snap.metadata_sha256,
        snapshot_id=snapshot_id, seconds=time.perf_counter() - t0, warnings=warnings)


def imported_from(store: Store, name: str) -> dict[str, Any] | None:
    """The detail of the canister's last snapshot import (directory, metadata sha256, ...), if any."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        h = schema.history
        detail = conn.execute(sa.select(h.c.detail).where(h.c.canister_id == row.id,
                                                          h.c.kind == transfer.IMPORT_HISTORY_KIND)
                              .order_by(h.c.id.desc()).limit(1)).scalar()
    return json.loads(detail) if detail else None


def export_snapshot(store: Store, name: str, directory: str | Path, snapshot_id: int | None = None, *,
                    on_progress: ProgressFn | None = None) -> ExportResult:
    """Write the canister's current state (or its graphcopy snapshot ``snapshot_id``) as a snapshot
    directory that ``dfx canister snapshot upload --dir`` takes, byte-exact for module, memories
    and chunks. ``directory`` must be new or empty; if the export fails, what it wrote is removed.

    ``taken_at_timestamp`` is the time of the state: the graphcopy snapshot's, or the canister's
    last committed message (an imported canister keeps the imported timestamp until it runs one).
    Controller-only. Raises SnapshotDirError, SnapshotNotFoundError, CanisterStateError (empty).
    """
    t0 = time.perf_counter()
    if snapshot_id is None:
        scheduler.settle_canister(store, name)  # the state a snapshot holds is the one between messages
    warnings: list[str] = []
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.controller_identity(), store.lock_owner, mutating=False)
        if row.module_hash is None:
            raise CanisterStateError(f"canister {name!r} is empty: there is nothing to export")
        if snapshot_id is None:
            module_hash, heap_pages, stable_pages = row.module_hash, int(row.heap_pages), int(row.stable_pages)
            stored_globals, timer_ns, certified = row.globals, int(row.timer_ns), row.certified_data
            version, taken_at = int(row.version), int(row.time_ns) or int(row.updated_at_ns)
            in_flight = conn.execute(sa.select(sa.func.count()).select_from(schema.call_contexts).where(
                schema.call_contexts.c.canister_id == row.id)).scalar() or 0
            if in_flight:
                warnings.append(f"the canister has {in_flight} open call context(s): calls in flight are not part of "
                                "a snapshot (stop the canister first, as dfx asks)")
            if migration_in_progress(row):
                warnings.append("a graph-copy migration is in progress: the exported state is mid-migration, and "
                                "Motoko refuses messages in it until the migration is finished")
        else:
            snap = snapshot_row(conn, row, snapshot_id)
            meta_json = json.loads(snap.metadata)
            module_hash, heap_pages, stable_pages = snap.module_hash, int(snap.heap_pages), int(snap.stable_pages)
            stored_globals, timer_ns = meta_json["globals"], int(meta_json["timer_ns"])
            certified = bytes.fromhex(meta_json["certified_data"]) if meta_json["certified_data"] is not None else None
            version, taken_at = int(meta_json.get("version", 0)), int(snap.created_at_ns)
        wasm = bytes(conn.execute(sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == module_hash))
                     .scalar_one())
        info = parse_module(wasm)
        values = decode_globals(json.loads(stored_globals)) if stored_globals else {}
        chunk_list = (chunks.all_chunks(conn, row.id) if snapshot_id is None
                      else snapshot_chunks(conn, snapshot_id))
        metadata = SnapshotMetadata(
            taken_at_timestamp=taken_at, wasm_module_size=len(wasm), wasm_memory_size=heap_pages * PAGE,
            stable_memory_size=stable_pages * PAGE, canister_version=version,
            globals=list(globals_to_snapshot(snapshot_layout(info), values)),
            wasm_chunk_store=[h for h, _ in chunk_list], certified_data=bytes(certified or b""),
            source="taken_from_canister", global_timer="active" if timer_ns else "inactive", global_timer_ns=timer_ns,
            on_low_wasm_memory_hook_status=row.on_low_wasm_memory_hook_status)
        try:
            metadata.to_json_text()
        except ValueError as exc:  # a NaN or infinite float global
            raise SnapshotDirError(f"canister {name!r} cannot be exported: a global is {exc}") from None

        def heap_source() -> Any:
            if snapshot_id is None:
                return pages.read_pages(conn, pages.HEAP, row.id)
            return transfer.snapshot_pages(conn, snapshot_id, pages.HEAP)

        def stable_source() -> Any:
            if snapshot_id is None:
                return pages.read_pages(conn, pages.STABLE, row.id)
            return transfer.snapshot_pages(conn, snapshot_id, pages.STABLE)

        with SnapshotDirWriter(directory) as writer:
            writer.write_module(wasm)
            heap_written = writer.write_memory(False, metadata.wasm_memory_size, heap_source(),
                                               _reporter(on_progress, HEAP_FILE, metadata.wasm_memory_size))
            stable_written = writer.write_memory(True, metadata.stable_memory_size, stable_source(),
                                                 _reporter(on_progress, STABLE_FILE, metadata.stable_memory_size))
            for digest, data in chunk_list:
                writer.write_chunk(digest, data)
            writer.finish(metadata)
    return ExportResult(
        name=row.name, directory=str(directory), snapshot_id=snapshot_id, module_hash=str(module_hash),
        files=dict(writer.sizes), stored_heap_pages=heap_written, stored_stable_pages=stable_written,
        chunks=len(chunk_list), taken_at_timestamp=taken_at, canister_version=version,
        seconds=time.perf_counter() - t0, warnings=warnings)
