"""Canister snapshots: take, list, load and delete them; roll back the last upgrade.

A snapshot holds a canister's module (by hash), its heap and stable pages, and its metadata
(memory sizes, globals, timer, certified data, controllers, status, version, migration record).
Pages are content-addressed: ``page_blobs`` keeps each distinct 64 KiB page once (keyed by its
sha256), and ``snapshot_pages`` maps every stored page of a snapshot to its blob. A snapshot
therefore costs storage only for the pages no other snapshot already holds (``bytes_new``), and
deleting one frees the blobs no other snapshot references. The live page tables are untouched:
taking a snapshot reads them, loading one rewrites them in the server (``INSERT ... SELECT``).

Only controllers may use snapshots. Taking or deleting one is refused while a graph-copy
migration is in progress; loading one is allowed then (it is the way back from a stuck migration).
Loading bumps the canister's version, so every cached live instance (in this process and others)
is dropped and reloaded from the restored state.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist import db, execution, pages, schema
from persist.api import _controller_row
from persist.errors import CanisterStateError, GraphcopyError
from persist.store import StaleStateError, Store, canister_row

__all__ = [
    "SnapshotInfo",
    "SnapshotNotFoundError",
    "NothingToRollBackError",
    "UPGRADE_PURPOSE",
    "take_snapshot",
    "list_snapshots",
    "load_snapshot",
    "delete_snapshot",
    "rollback",
    "blob_stats",
    "delete_all_snapshots",
    "canister_snapshot_ids",
]

#: ``metadata["purpose"]`` of the snapshot ``graphcopy upgrade`` takes before it changes anything.
UPGRADE_PURPOSE = "upgrade"
# Migration phases during which the canister is blocked (see migrate.record; persist does not import migrate).
_UNFINISHED_PHASES = ("stabilizing", "stabilized", "upgrading", "upgraded", "destabilizing", "failed")
_BATCH = pages.BATCH_PAGES


class SnapshotNotFoundError(GraphcopyError):
    """No snapshot of that id belongs to the canister."""

    exit_code = 2


class NothingToRollBackError(GraphcopyError):
    """``rollback`` found no upgrade snapshot to restore."""

    exit_code = 6


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


def _migration_in_progress(row: sa.Row[Any]) -> bool:
    if not row.migration:
        return False
    return json.loads(row.migration).get("phase") in _UNFINISHED_PHASES


def _refuse_during_migration(row: sa.Row[Any], what: str) -> None:
    if _migration_in_progress(row):
        raise CanisterStateError(
            f"cannot {what} canister {row.name!r}: a graph-copy migration is in progress "
            f"(finish it with `graphcopy upgrade {row.name} --resume`, or load a snapshot)")


def _info(conn: sa.Connection, name: str, snap: sa.Row[Any]) -> SnapshotInfo:
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
        rolled_back_at_ns=meta.get("rolled_back_at_ns"))


def _insert_ignore(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(schema.page_blobs).on_conflict_do_nothing(index_elements=["hash"])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(schema.page_blobs).on_conflict_do_nothing(index_elements=["hash"])


def _store_pages(conn: sa.Connection, snapshot_id: int, kind: str, canister_id: int) -> int:
    """Map the canister's stored pages of ``kind`` into the snapshot; returns the bytes of new blobs."""
    pb = schema.page_blobs
    insert_blob = _insert_ignore(conn)
    added = 0
    batch: list[tuple[int, str, bytes]] = []

    def flush() -> int:
        hashes = {h for _, h, _ in batch}
        present = set(conn.execute(sa.select(pb.c.hash).where(pb.c.hash.in_(hashes))).scalars())
        new: dict[str, bytes] = {h: d for _, h, d in batch if h not in present}
        if new:
            conn.execute(insert_blob, [{"hash": h, "data": d} for h, d in new.items()])
        conn.execute(schema.snapshot_pages.insert(), [
            {"snapshot_id": snapshot_id, "kind": kind, "page_no": no, "blob_hash": h} for no, h, _ in batch])
        batch.clear()
        return len(new) * pages.PAGE_SIZE

    # Read everything first (bounded per batch by read_pages), so no insert runs while its cursor is open.
    for page_no, data in list(pages.read_pages(conn, kind, canister_id)):
        data = bytes(data)
        batch.append((int(page_no), hashlib.sha256(data).hexdigest(), data))
        if len(batch) >= _BATCH:
            added += flush()
    if batch:
        added += flush()
    return added


def take_snapshot(store: Store, name: str, label: str | None = None, *, purpose: str | None = None,
                  upgrade_to: str | None = None) -> SnapshotInfo:
    """Snapshot the canister's committed state (one transaction). Controller-only; refused during a
    graph-copy migration and for an empty canister. Only pages no snapshot holds yet are stored."""
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        _refuse_during_migration(row, "snapshot")
        if row.module_hash is None:
            raise CanisterStateError(f"canister {name!r} is empty: there is nothing to snapshot")
        meta: dict[str, Any] = {
            "heap_pages": int(row.heap_pages), "stable_pages": int(row.stable_pages), "globals": row.globals,
            "timer_ns": int(row.timer_ns),
            "certified_data": bytes(row.certified_data).hex() if row.certified_data is not None else None,
            "controllers": json.loads(row.controllers), "status": row.status, "version": int(row.version),
            "migration": row.migration, "purpose": purpose, "upgrade_to": upgrade_to,
        }
        res = conn.execute(schema.snapshots.insert().values(
            canister_id=row.id, created_at_ns=execution.now_ns(), label=label, module_hash=row.module_hash,
            metadata=json.dumps(meta), heap_pages=int(row.heap_pages), stable_pages=int(row.stable_pages),
            bytes_new=0))
        pk = res.inserted_primary_key
        assert pk is not None
        snapshot_id = int(pk[0])
        added = _store_pages(conn, snapshot_id, pages.HEAP, row.id)
        added += _store_pages(conn, snapshot_id, pages.STABLE, row.id)
        s = schema.snapshots
        conn.execute(s.update().where(s.c.id == snapshot_id).values(bytes_new=added))
        snap = conn.execute(sa.select(s).where(s.c.id == snapshot_id)).one()
        return _info(conn, row.name, snap)


def list_snapshots(store: Store, name: str) -> list[SnapshotInfo]:
    """The canister's snapshots, oldest first. Controller-only."""
    with db.read_transaction(store.engine) as conn:
        row = _controller_row(conn, store, name, mutating=False)
        s = schema.snapshots
        snaps = conn.execute(sa.select(s).where(s.c.canister_id == row.id).order_by(s.c.id)).all()
        return [_info(conn, row.name, snap) for snap in snaps]


def _snapshot_row(conn: sa.Connection, row: sa.Row[Any], snapshot_id: int) -> sa.Row[Any]:
    s = schema.snapshots
    snap = conn.execute(sa.select(s).where(s.c.id == snapshot_id, s.c.canister_id == row.id)).first()
    if snap is None:
        raise SnapshotNotFoundError(f"no snapshot {snapshot_id} for canister {row.name}")
    return snap


def _load(store: Store, name: str, snapshot_id: int, *, history_kind: str,
          mark_rolled_back: bool = False) -> SnapshotInfo:
    # Messages queued for the canister would run against the restored state: drain them first.
    execution.run_pending(store)
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        snap = _snapshot_row(conn, row, snapshot_id)
        open_contexts = conn.execute(sa.select(sa.func.count()).select_from(schema.call_contexts).where(
            schema.call_contexts.c.canister_id == row.id)).scalar() or 0
        queued = conn.execute(sa.select(sa.func.count()).select_from(schema.messages).where(
            schema.messages.c.canister_id == row.id)).scalar() or 0
        if open_contexts or queued:
            raise CanisterStateError(
                f"canister {name!r} has {open_contexts} open call context(s) and {queued} queued message(s); "
                f"run `graphcopy tick` (or stop it and let them finish) before loading a snapshot")
        meta = json.loads(snap.metadata)
        c = schema.canisters.c
        upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version).values(
            module_hash=snap.module_hash, heap_pages=int(snap.heap_pages), stable_pages=int(snap.stable_pages),
            globals=meta["globals"], timer_ns=int(meta["timer_ns"]),
            certified_data=bytes.fromhex(meta["certified_data"]) if meta["certified_data"] is not None else None,
            controllers=json.dumps(meta["controllers"]), status=meta["status"], migration=meta["migration"],
            version=int(row.version) + 1, updated_at_ns=execution.now_ns()))
        if upd.rowcount != 1:
            raise StaleStateError(f"canister {name!r} was changed by another process; retry")
        for kind in (pages.HEAP, pages.STABLE):
            pages.delete_pages(conn, kind, row.id)
            table = schema.page_table(kind)
            sp, pb = schema.snapshot_pages, schema.page_blobs
            conn.execute(table.insert().from_select(
                ["canister_id", "page_no", "data"],
                sa.select(sa.literal(row.id, sa.Integer), sp.c.page_no, pb.c.data)
                .join(pb, pb.c.hash == sp.c.blob_hash)
                .where(sp.c.snapshot_id == snap.id, sp.c.kind == kind)))
        execution.add_history(conn, row.id, history_kind, snap.module_hash,
                              {"snapshot_id": int(snap.id), "from": row.module_hash})
        if mark_rolled_back:
            meta["rolled_back_at_ns"] = execution.now_ns()
            s = schema.snapshots
            conn.execute(s.update().where(s.c.id == snap.id).values(metadata=json.dumps(meta)))
            snap = conn.execute(sa.select(s).where(s.c.id == snap.id)).one()
        info = _info(conn, row.name, snap)
    execution.forget_live(store, row.id)
    return info


def load_snapshot(store: Store, name: str, snapshot_id: int) -> SnapshotInfo:
    """Restore exactly the state the snapshot holds (module, pages, metadata), in one transaction.
    Allowed during a graph-copy migration (it is the way back). Controller-only."""
    return _load(store, name, snapshot_id, history_kind="snapshot-load")


def delete_snapshot(store: Store, name: str, snapshot_id: int) -> None:
    """Delete a snapshot and every page blob no other snapshot references. Controller-only."""
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        _refuse_during_migration(row, "delete a snapshot of")
        snap = _snapshot_row(conn, row, snapshot_id)
        _delete_snapshot_rows(conn, [int(snap.id)])


def _delete_snapshot_rows(conn: sa.Connection, snapshot_ids: list[int]) -> None:
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


def delete_all_snapshots(conn: sa.Connection, canister_id: int) -> None:
    """Delete every snapshot of a canister and the blobs only they used (for ``persist.api.delete``)."""
    s = schema.snapshots
    ids = [int(i) for i in conn.execute(sa.select(s.c.id).where(s.c.canister_id == canister_id)).scalars()]
    _delete_snapshot_rows(conn, ids)


def rollback(store: Store, name: str) -> SnapshotInfo:
    """Restore the state from before the canister's last upgrade: the snapshot that upgrade took.

    NothingToRollBackError if no upgrade took one (an upgrade that trapped changed nothing, and its
    snapshot is dropped), or if the last one was rolled back already.
    """
    with db.read_transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        s = schema.snapshots
        candidates = conn.execute(sa.select(s).where(s.c.canister_id == row.id).order_by(s.c.id.desc())).all()
    last = next((snap for snap in candidates if json.loads(snap.metadata).get("purpose") == UPGRADE_PURPOSE), None)
    if last is None:
        raise NothingToRollBackError(
            f"nothing to roll back: no upgrade of canister {row.name} took a snapshot "
            "(an upgrade that failed changed nothing; `--no-snapshot` upgrades cannot be rolled back)")
    meta = json.loads(last.metadata)
    if meta.get("rolled_back_at_ns"):
        raise NothingToRollBackError(
            f"nothing to roll back: the last upgrade of canister {row.name} was rolled back already "
            f"(snapshot {last.id}; `graphcopy snapshot load {row.name} {last.id}` loads it again)")
    return _load(store, name, int(last.id), history_kind="rollback", mark_rolled_back=True)


def blob_stats(store: Store) -> tuple[int, int]:
    """``(count, bytes)`` of the page blobs in the store (all canisters)."""
    with db.read_transaction(store.engine) as conn:
        pb = schema.page_blobs
        n = conn.execute(sa.select(sa.func.count()).select_from(pb)).scalar() or 0
    return int(n), int(n) * pages.PAGE_SIZE


def canister_snapshot_ids(store: Store, name: str) -> list[int]:
    """Ids of the canister's snapshots, oldest first (no controller check; for tests and status)."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        s = schema.snapshots
        return [int(i) for i in conn.execute(sa.select(s.c.id).where(s.c.canister_id == row.id)
                                             .order_by(s.c.id)).scalars()]
