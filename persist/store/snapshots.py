"""Snapshot rows and their content-addressed pages, in SQL.

A snapshot holds a canister's module (by hash), its heap and stable pages, its Wasm chunk store
(kind ``chunk``), and its metadata (memory sizes, globals, timer, certified data, controllers,
status, version, migration record).
Pages are content-addressed: ``page_blobs`` keeps each distinct 64 KiB page once (keyed by its
sha256), and ``snapshot_pages`` maps every stored page of a snapshot to its blob. A snapshot
therefore costs storage only for the pages no other snapshot already holds (``bytes_new``), and
deleting one frees the blobs no other snapshot references. Taking a snapshot is by reference: the
live pages carry their hash (``persist.store.pages``), so the map is copied from the page tables'
hash index and only blobs the store lacks are copied in (``INSERT ... SELECT``, nothing is read or
hashed in Python); restoring one rewrites the live pages, with their hashes, in the server.

The public functions over an open store (controller checks, draining the queue, dropping cached
instances) are in :mod:`persist.api.snapshots`; this module is the SQL under them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from persist.errors import CanisterStateError, SnapshotNotFoundError
from persist.store import pages, schema
from persist.store.canisters import StaleStateError, insert_ignore, refuse_with_calls_in_flight
from persist.store.events import add_history

__all__ = [
    "CHUNK_KIND",
    "DELETE_PURPOSE",
    "REINSTALL_PURPOSE",
    "CHANGE_PURPOSES",
    "COMMITTED",
    "PENDING",
    "UPGRADE_PURPOSE",
    "SnapshotInfo",
    "mark_committed",
    "delete_snapshot_rows",
    "migration_in_progress",
    "record_snapshot",
    "refuse_during_migration",
    "restore_snapshot",
    "snapshot_chunks",
    "snapshot_info",
    "snapshot_row",
    "upgrade_snapshots",
]

#: ``snapshot_pages.kind`` of the chunks of a snapshot's Wasm chunk store.
CHUNK_KIND = "chunk"
#: ``metadata["purpose"]`` of the snapshot ``graphcopy upgrade`` takes before it changes anything.
UPGRADE_PURPOSE = "upgrade"
#: ... that a reinstall takes before it wipes the canister (``graphcopy rollback`` undoes a reinstall too).
REINSTALL_PURPOSE = "reinstall"
#: ... that a delete takes and keeps (with a tombstone row, see ``persist.store.canisters``).
DELETE_PURPOSE = "delete"
#: The purposes of snapshots taken before a change that ``rollback`` undoes; their ``outcome`` says
#: whether that change committed: ``PENDING`` from the snapshot on, ``COMMITTED`` set in the change's
#: own commit transaction (``mark_committed``). A process killed in between leaves ``PENDING``.
CHANGE_PURPOSES = (UPGRADE_PURPOSE, REINSTALL_PURPOSE)
PENDING = "pending"
COMMITTED = "committed"
# Migration phases during which the canister is blocked (see migrate.record; persist does not import migrate).
_UNFINISHED_PHASES = ("stabilizing", "stabilized", "upgrading", "upgraded", "destabilizing", "failed")
_BATCH = pages.BATCH_PAGES


@dataclass
class SnapshotInfo:
    id: int
    canister: str
    created_at_ns: int
    label: str | None
    module_hash: str | None
    version: int  # the canister's version when the snapshot was taken
    heap_pages: int  # memory sizes in 64 KiB pages
    stable_pages: int
    stored_heap_pages: int  # non-zero pages the snapshot maps
    stored_stable_pages: int
    bytes_new: int  # bytes of page blobs this snapshot added to the store
    purpose: str | None = None
    upgrade_to: str | None = None
    rolled_back_at_ns: int | None = None
    deleted_principal: str | None = None  # set when the snapshot belongs to a deleted canister of this name
    # For a snapshot taken before an upgrade or reinstall: "committed" once that change committed,
    # "pending" while it has not (or never will: the process was killed, the change failed).
    outcome: str | None = None
    # ``rollback`` only: newer change snapshots it passed over because their change never committed.
    skipped: list[int] = field(default_factory=list)


def migration_in_progress(row: sa.Row[Any]) -> bool:
    """Whether the canister row records an unfinished graph-copy migration."""
    if not row.migration:
        return False
    return json.loads(row.migration).get("phase") in _UNFINISHED_PHASES


def refuse_during_migration(row: sa.Row[Any], what: str) -> None:
    """CanisterStateError if a graph-copy migration of the canister is in progress."""
    if migration_in_progress(row):
        # A migration started by stabilize-before-upgrade has no target yet: the upgrade needs the module.
        target = json.loads(row.migration).get("target_module_hash")
        finish = f"graphcopy upgrade {row.name} --resume" if target else f"graphcopy upgrade {row.name} WASM"
        raise CanisterStateError(
            f"cannot {what} canister {row.name!r}: a graph-copy migration is in progress "
            f"(finish it with `{finish}`, or load a snapshot)")


def snapshot_info(conn: sa.Connection, name: str, snap: sa.Row[Any]) -> SnapshotInfo:
    """The public description of a snapshot row of canister ``name``."""
    sp = schema.snapshot_pages
    counts: dict[str, int] = dict(conn.execute(
        sa.select(sp.c.kind, sa.func.count()).where(sp.c.snapshot_id == snap.id).group_by(sp.c.kind)).all())
    meta = json.loads(snap.metadata)
    return SnapshotInfo(
        id=int(snap.id), canister=name, created_at_ns=int(snap.created_at_ns), label=snap.label,
        module_hash=snap.module_hash, version=int(meta.get("version", 0)), heap_pages=int(snap.heap_pages),
        stable_pages=int(snap.stable_pages), stored_heap_pages=int(counts.get(pages.HEAP, 0)),
        stored_stable_pages=int(counts.get(pages.STABLE, 0)), bytes_new=int(snap.bytes_new),
        purpose=meta.get("purpose"), upgrade_to=meta.get("upgrade_to"),
        rolled_back_at_ns=meta.get("rolled_back_at_ns"), outcome=snap.outcome)


def _store_pages(conn: sa.Connection, snapshot_id: int, kind: str, canister_id: int) -> int:
    """Map the canister's stored pages of ``kind`` into the snapshot; returns the bytes of new blobs.

    By reference: the live pages carry their hash, so the map is one ``INSERT ... SELECT`` from the
    covering index ``(canister_id, page_no, hash)``, and only the pages whose content no blob holds
    yet (those written since the last snapshot, typically) are copied into ``page_blobs``, inside the
    server. No page is read into Python or hashed here."""
    t, pb, sp = schema.page_table(kind), schema.page_blobs, schema.snapshot_pages
    absent = ~sa.select(sa.literal(1)).where(pb.c.hash == t.c.hash).exists()
    missing = [int(p) for p in conn.execute(
        sa.select(sa.func.min(t.c.page_no)).where(t.c.canister_id == canister_id, absent)
        .group_by(t.c.hash)).scalars()]
    insert_blob = insert_ignore(conn, pb, ["hash"])
    missing.sort()
    for i in range(0, len(missing), _BATCH):
        conn.execute(insert_blob.from_select(["hash", "data"], sa.select(t.c.hash, t.c.data).where(
            t.c.canister_id == canister_id, t.c.page_no.in_(missing[i:i + _BATCH]))))
    # The blobs exist now, so the map rows satisfy their foreign key as they are inserted. In hash
    # order: the ix_snapshot_pages_blob_hash index then grows leaf by leaf instead of at random
    # places (5x faster on SQLite's 64 KiB pages for a 583 MiB heap).
    conn.execute(sp.insert().from_select(
        ["snapshot_id", "kind", "page_no", "blob_hash"],
        sa.select(sa.literal(snapshot_id, sa.BigInteger), sa.literal(kind, sa.Text), t.c.page_no, t.c.hash)
        .where(t.c.canister_id == canister_id).order_by(t.c.hash)))
    return len(missing) * pages.PAGE_SIZE


def _store_chunks(conn: sa.Connection, snapshot_id: int, canister_id: int) -> int:
    """Map the canister's Wasm chunk store into the snapshot (kind ``chunk``; a chunk's blob is keyed
    by its sha256, the same key as in ``wasm_chunks``); returns the bytes of new blobs."""
    w, pb = schema.wasm_chunks, schema.page_blobs
    rows = conn.execute(sa.select(w.c.hash, w.c.data).where(w.c.canister_id == canister_id).order_by(w.c.hash)).all()
    if not rows:
        return 0
    present = set(conn.execute(sa.select(pb.c.hash).where(pb.c.hash.in_([r.hash for r in rows]))).scalars())
    new = [{"hash": r.hash, "data": bytes(r.data)} for r in rows if r.hash not in present]
    if new:
        conn.execute(insert_ignore(conn, pb, ["hash"]), new)
    conn.execute(schema.snapshot_pages.insert(), [
        {"snapshot_id": snapshot_id, "kind": CHUNK_KIND, "page_no": i, "blob_hash": r.hash}
        for i, r in enumerate(rows)])
    return sum(len(n["data"]) for n in new)


def snapshot_chunks(conn: sa.Connection, snapshot_id: int) -> list[tuple[bytes, bytes]]:
    """``(sha256, data)`` of every chunk of a snapshot's Wasm chunk store, in hash order."""
    sp, pb = schema.snapshot_pages, schema.page_blobs
    rows = conn.execute(sa.select(pb.c.hash, pb.c.data).join(sp, sp.c.blob_hash == pb.c.hash).where(
        sp.c.snapshot_id == snapshot_id, sp.c.kind == CHUNK_KIND).order_by(pb.c.hash))
    return [(bytes.fromhex(h), bytes(d)) for h, d in rows]


def record_snapshot(conn: sa.Connection, row: sa.Row[Any], label: str | None, *, purpose: str | None,
                    upgrade_to: str | None) -> SnapshotInfo:
    """Snapshot the committed state of the canister ``row`` describes, in the caller's transaction."""
    meta: dict[str, Any] = {
        "heap_pages": int(row.heap_pages), "stable_pages": int(row.stable_pages), "globals": row.globals,
        "timer_ns": int(row.timer_ns),
        "certified_data": bytes(row.certified_data).hex() if row.certified_data is not None else None,
        "controllers": json.loads(row.controllers), "status": row.status, "version": int(row.version),
        "migration": row.migration, "purpose": purpose, "upgrade_to": upgrade_to,
    }
    res = conn.execute(schema.snapshots.insert().values(
        canister_id=row.id, created_at_ns=time.time_ns(), label=label, module_hash=row.module_hash,
        metadata=json.dumps(meta), heap_pages=int(row.heap_pages), stable_pages=int(row.stable_pages),
        bytes_new=0, outcome=PENDING if purpose in CHANGE_PURPOSES else None))
    pk = res.inserted_primary_key
    assert pk is not None
    snapshot_id = int(pk[0])
    added = _store_pages(conn, snapshot_id, pages.HEAP, row.id)
    added += _store_pages(conn, snapshot_id, pages.STABLE, row.id)
    added += _store_chunks(conn, snapshot_id, row.id)
    s = schema.snapshots
    conn.execute(s.update().where(s.c.id == snapshot_id).values(bytes_new=added))
    snap = conn.execute(sa.select(s).where(s.c.id == snapshot_id)).one()
    return snapshot_info(conn, row.name, snap)


def mark_committed(conn: sa.Connection, snapshot_id: int) -> None:
    """Record, in the caller's transaction (the change's own commit), that the change the snapshot
    ``snapshot_id`` was taken before has committed."""
    s = schema.snapshots
    conn.execute(s.update().where(s.c.id == snapshot_id).values(outcome=COMMITTED))


def snapshot_row(conn: sa.Connection, row: sa.Row[Any], snapshot_id: int) -> sa.Row[Any]:
    """The snapshot ``snapshot_id`` of the canister ``row``; SnapshotNotFoundError if it has none such."""
    s = schema.snapshots
    snap = conn.execute(sa.select(s).where(s.c.id == snapshot_id, s.c.canister_id == row.id)).first()
    if snap is None:
        raise SnapshotNotFoundError(f"no snapshot {snapshot_id} for canister {row.name}")
    return snap


def restore_snapshot(conn: sa.Connection, row: sa.Row[Any], snap: sa.Row[Any], *, history_kind: str,
                     mark_rolled_back: bool = False, system_state: bool = True,
                     origin: dict[str, Any] | None = None, history_detail: dict[str, Any] | None = None
                     ) -> SnapshotInfo:
    """Make the canister exactly the state ``snap`` holds (module, pages, metadata), bumping its
    version; refused while it has open call contexts or queued messages.

    ``system_state=False`` is the management canister's ``load_canister_snapshot``: as on the IC
    the snapshot replaces the canister's code and memories only (controllers, status and the
    migration record stay; open call contexts are allowed, their callbacks run on the restored
    state). ``origin`` and ``history_detail`` go into the history entry."""
    if system_state:
        refuse_with_calls_in_flight(conn, row, "loading a snapshot")
    meta = json.loads(snap.metadata)
    values: dict[str, Any] = {
        "module_hash": snap.module_hash, "heap_pages": int(snap.heap_pages), "stable_pages": int(snap.stable_pages),
        "globals": meta["globals"], "timer_ns": int(meta["timer_ns"]),
        "certified_data": bytes.fromhex(meta["certified_data"]) if meta["certified_data"] is not None else None,
        "version": int(row.version) + 1, "updated_at_ns": time.time_ns()}
    if system_state:
        values.update(controllers=json.dumps(meta["controllers"]), status=meta["status"], migration=meta["migration"])
    c = schema.canisters.c
    upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version).values(**values))
    if upd.rowcount != 1:
        raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
    w, sp, pb = schema.wasm_chunks, schema.snapshot_pages, schema.page_blobs
    conn.execute(w.delete().where(w.c.canister_id == row.id))
    conn.execute(w.insert().from_select(
        ["canister_id", "hash", "data", "created_at_ns"],
        sa.select(sa.literal(row.id, sa.Integer), pb.c.hash, pb.c.data, sa.literal(time.time_ns(), sa.BigInteger))
        .join(pb, pb.c.hash == sp.c.blob_hash).where(sp.c.snapshot_id == snap.id, sp.c.kind == CHUNK_KIND)))
    for kind in (pages.HEAP, pages.STABLE):
        pages.delete_pages(conn, kind, row.id)
        table = schema.page_table(kind)
        sp, pb = schema.snapshot_pages, schema.page_blobs
        conn.execute(table.insert().from_select(
            ["canister_id", "page_no", "data", "hash"],
            sa.select(sa.literal(row.id, sa.Integer), sp.c.page_no, pb.c.data, pb.c.hash)
            .join(pb, pb.c.hash == sp.c.blob_hash)
            .where(sp.c.snapshot_id == snap.id, sp.c.kind == kind)))
    add_history(conn, row.id, history_kind, snap.module_hash,
                {"snapshot_id": int(snap.id), "from": row.module_hash, **(history_detail or {})},
                origin=origin, canister_version=int(row.version) + 1)
    if mark_rolled_back:
        meta["rolled_back_at_ns"] = time.time_ns()
        s = schema.snapshots
        conn.execute(s.update().where(s.c.id == snap.id).values(metadata=json.dumps(meta)))
        snap = conn.execute(sa.select(s).where(s.c.id == snap.id)).one()
    return snapshot_info(conn, row.name, snap)


def delete_snapshot_rows(conn: sa.Connection, snapshot_ids: list[int]) -> None:
    """Delete these snapshots and every page blob no other snapshot references."""
    if not snapshot_ids:
        return
    sp, pb, s = schema.snapshot_pages, schema.page_blobs, schema.snapshots
    # Collect the candidate blobs before the map rows go, then drop those nobody else maps.
    candidates = list(conn.execute(sa.select(sp.c.blob_hash).where(sp.c.snapshot_id.in_(snapshot_ids))
                                   .distinct()).scalars())
    conn.execute(sp.delete().where(sp.c.snapshot_id.in_(snapshot_ids)))
    conn.execute(s.delete().where(s.c.id.in_(snapshot_ids)))
    other = sa.select(sa.literal(1)).where(sp.c.blob_hash == pb.c.hash).exists()
    for i in range(0, len(candidates), 500):
        chunk = candidates[i:i + 500]
        conn.execute(pb.delete().where(pb.c.hash.in_(chunk), ~other))


def upgrade_snapshots(conn: sa.Connection, canister_id: int,
                      purposes: tuple[str, ...] = (UPGRADE_PURPOSE,)) -> list[sa.Row[Any]]:
    """The canister's snapshots that an upgrade (or another of ``purposes``) took before it changed
    anything, newest first."""
    s = schema.snapshots
    rows = conn.execute(sa.select(s).where(s.c.canister_id == canister_id).order_by(s.c.id.desc())).all()
    return [snap for snap in rows if json.loads(snap.metadata).get("purpose") in purposes]
