"""Canister snapshots: take, list, load and delete them; roll back the last upgrade.

The SQL (content-addressed pages shared between snapshots) is in :mod:`persist.store.snapshots`;
these are the public functions over an open store. Only controllers may use snapshots. Taking or
deleting one is refused while a graph-copy migration is in progress; loading one is allowed then
(it is the way back from a stuck migration). Loading bumps the canister's version, so every cached
live instance (in this process and others) is dropped and reloaded from the restored state.
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from persist.errors import CanisterStateError, NothingToRollBackError, SnapshotNotFoundError
from persist.execution import instances, scheduler
from persist.session import Store
from persist.store import db, pages, schema
from persist.store import snapshots as sql
from persist.store.canisters import canister_row, controller_row
from persist.store.snapshots import UPGRADE_PURPOSE, SnapshotInfo

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
    "canister_snapshot_ids",
]


def take_snapshot(store: Store, name: str, label: str | None = None, *, purpose: str | None = None,
                  upgrade_to: str | None = None) -> SnapshotInfo:
    """Snapshot the canister's committed state (one transaction). Controller-only; refused during a
    graph-copy migration and for an empty canister. Only pages no snapshot holds yet are stored."""
    with db.transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner)
        sql.refuse_during_migration(row, "snapshot")
        if row.module_hash is None:
            raise CanisterStateError(f"canister {name!r} is empty: there is nothing to snapshot")
        return sql.record_snapshot(conn, row, label, purpose=purpose, upgrade_to=upgrade_to)


def list_snapshots(store: Store, name: str) -> list[SnapshotInfo]:
    """The canister's snapshots, oldest first. Controller-only."""
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner, mutating=False)
        s = schema.snapshots
        snaps = conn.execute(sa.select(s).where(s.c.canister_id == row.id).order_by(s.c.id)).all()
        return [sql.snapshot_info(conn, row.name, snap) for snap in snaps]


def _load(store: Store, name: str, snapshot_id: int, *, history_kind: str,
          mark_rolled_back: bool = False) -> SnapshotInfo:
    # Messages queued for the canister would run against the restored state: run them first.
    scheduler.settle_canister(store, name)
    with db.transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner)
        snap = sql.snapshot_row(conn, row, snapshot_id)
        info = sql.restore_snapshot(conn, row, snap, history_kind=history_kind, mark_rolled_back=mark_rolled_back)
    instances.forget_live(store, row.id)
    return info


def load_snapshot(store: Store, name: str, snapshot_id: int) -> SnapshotInfo:
    """Restore exactly the state the snapshot holds (module, pages, metadata), in one transaction.
    Allowed during a graph-copy migration (it is the way back). Controller-only."""
    return _load(store, name, snapshot_id, history_kind="snapshot-load")


def delete_snapshot(store: Store, name: str, snapshot_id: int) -> None:
    """Delete a snapshot and every page blob no other snapshot references. Controller-only."""
    with db.transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner)
        sql.refuse_during_migration(row, "delete a snapshot of")
        snap = sql.snapshot_row(conn, row, snapshot_id)
        sql.delete_snapshot_rows(conn, [int(snap.id)])


def rollback(store: Store, name: str) -> SnapshotInfo:
    """Restore the state from before the canister's last upgrade: the snapshot that upgrade took.

    NothingToRollBackError if no upgrade took one (an upgrade that trapped changed nothing, and its
    snapshot is dropped), or if the last one was rolled back already.
    """
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner)
        candidates = sql.upgrade_snapshots(conn, row.id)
    last = candidates[0] if candidates else None
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
