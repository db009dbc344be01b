"""Canister snapshots: take, list, load and delete them; roll back the last upgrade.

The SQL (content-addressed pages shared between snapshots) is in :mod:`persist.store.snapshots`;
these are the public functions over an open store. Only controllers may use snapshots. Taking or
deleting one is refused while a graph-copy migration is in progress; loading one is allowed then
(it is the way back from a stuck migration). Loading bumps the canister's version, so every cached
live instance (in this process and others) is dropped and reloaded from the restored state.

The snapshot a delete kept belongs to the deleted canister's tombstone (``persist.store.canisters``):
it is listed under the old name, loading it brings the canister back under that name (if the name
is free), and deleting it forgets the deleted canister for good.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from persist.errors import (
    CanisterExistsError,
    CanisterNotFoundError,
    CanisterStateError,
    NotAuthorizedError,
    NothingToRollBackError,
    SnapshotNotFoundError,
)
from persist.execution import instances, scheduler
from persist.session import Store
from persist.store import db, pages, schema
from persist.store import snapshots as sql
from persist.store.canisters import canister_row, controller_row, controllers_of, original_name, tombstones
from persist.store.snapshots import REINSTALL_PURPOSE, UPGRADE_PURPOSE, SnapshotInfo

__all__ = [
    "REINSTALL_PURPOSE",
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
        row = controller_row(conn, name, store.controller_identity(), store.lock_owner)
        sql.refuse_during_migration(row, "snapshot")
        if row.module_hash is None:
            raise CanisterStateError(f"canister {name!r} is empty: there is nothing to snapshot")
        return sql.record_snapshot(conn, row, label, purpose=purpose, upgrade_to=upgrade_to)


def _own_tombstones(conn: sa.Connection, store: Store, name: str) -> list[sa.Row[Any]]:
    """The tombstones of deleted canisters once called ``name`` that the caller controlled."""
    return [t for t in tombstones(conn, name) if store.controller_identity().raw in controllers_of(t)]


def _tombstone_of(conn: sa.Connection, store: Store, name: str, snapshot_id: int) -> sa.Row[Any] | None:
    """The tombstone of a deleted canister ``name`` that holds snapshot ``snapshot_id``, if any
    (NotAuthorizedError if the caller did not control it)."""
    s = schema.snapshots
    for t in tombstones(conn, name):
        if conn.execute(sa.select(s.c.id).where(s.c.id == snapshot_id, s.c.canister_id == t.id)).first():
            if store.controller_identity().raw not in controllers_of(t):
                raise NotAuthorizedError(f"only a controller of the deleted canister {name!r} may do this "
                                         f"(caller {store.controller_identity().to_text()})")
            return t
    return None


def list_snapshots(store: Store, name: str) -> list[SnapshotInfo]:
    """The canister's snapshots, oldest first, then those kept from deleted canisters of that name
    (``deleted_principal`` set). Controller-only."""
    s = schema.snapshots
    with db.read_transaction(store.engine) as conn:
        try:
            row: sa.Row[Any] | None = controller_row(conn, name, store.controller_identity(), store.lock_owner,
                                                     mutating=False)
            missing: CanisterNotFoundError | None = None
        except CanisterNotFoundError as exc:
            row, missing = None, exc
        dead = _own_tombstones(conn, store, name)
        if missing is not None and not dead:
            raise missing
        out: list[SnapshotInfo] = []
        for owner in ([row] if row is not None else []) + dead[::-1]:
            for snap in conn.execute(sa.select(s).where(s.c.canister_id == owner.id).order_by(s.c.id)).all():
                info = sql.snapshot_info(conn, original_name(owner.name), snap)
                if owner is not row:
                    info.deleted_principal = owner.principal
                out.append(info)
        return out


def _load(store: Store, name: str, snapshot_id: int, *, history_kind: str,
          mark_rolled_back: bool = False) -> SnapshotInfo:
    # Messages queued for the canister would run against the restored state: run them first.
    scheduler.settle_canister(store, name)
    with db.transaction(store.engine) as conn:
        row = controller_row(conn, name, store.controller_identity(), store.lock_owner)
        snap = sql.snapshot_row(conn, row, snapshot_id)
        info = sql.restore_snapshot(conn, row, snap, history_kind=history_kind, mark_rolled_back=mark_rolled_back)
    instances.forget_live(store, row.id)
    return info


def _revive(store: Store, name: str, snapshot_id: int) -> SnapshotInfo | None:
    """Bring a deleted canister back from the snapshot its delete kept (None: the snapshot is not one)."""
    with db.transaction(store.engine) as conn:
        dead = _tombstone_of(conn, store, name, snapshot_id)
        if dead is None:
            return None
        c = schema.canisters.c
        if conn.execute(sa.select(c.id).where(c.name == name)).first() is not None:
            raise CanisterExistsError(
                f"snapshot {snapshot_id} belongs to the deleted canister {name!r} ({dead.principal}), and a new "
                f"canister {name!r} exists now; delete that one first to bring the old one back")
        conn.execute(schema.canisters.update().where(c.id == dead.id).values(name=name))
        row = conn.execute(sa.select(schema.canisters).where(c.id == dead.id)).one()
        snap = sql.snapshot_row(conn, row, snapshot_id)
        return sql.restore_snapshot(conn, row, snap, history_kind="snapshot-load")


def load_snapshot(store: Store, name: str, snapshot_id: int) -> SnapshotInfo:
    """Restore exactly the state the snapshot holds (module, pages, metadata), in one transaction.
    Allowed during a graph-copy migration (it is the way back). The snapshot a delete kept brings
    the deleted canister back (same principal, stopped), if no other canister took its name.
    Controller-only."""
    with db.read_transaction(store.engine) as conn:
        try:
            row = canister_row(conn, name)
            own = conn.execute(sa.select(schema.snapshots.c.id).where(
                schema.snapshots.c.id == snapshot_id, schema.snapshots.c.canister_id == row.id)).first()
        except CanisterNotFoundError:
            own = None
    if own is None:
        revived = _revive(store, name, snapshot_id)
        if revived is not None:
            return revived
    return _load(store, name, snapshot_id, history_kind="snapshot-load")


def delete_snapshot(store: Store, name: str, snapshot_id: int) -> None:
    """Delete a snapshot and every page blob no other snapshot references. Controller-only. The
    snapshot a delete kept is the deleted canister's last trace: its tombstone goes with it."""
    with db.transaction(store.engine) as conn:
        dead = _tombstone_of(conn, store, name, snapshot_id)
        if dead is not None:
            sql.delete_snapshot_rows(conn, [snapshot_id])
            conn.execute(schema.history.delete().where(schema.history.c.canister_id == dead.id))
            conn.execute(schema.canisters.delete().where(schema.canisters.c.id == dead.id))
            return
        row = controller_row(conn, name, store.controller_identity(), store.lock_owner)
        sql.refuse_during_migration(row, "delete a snapshot of")
        snap = sql.snapshot_row(conn, row, snapshot_id)
        sql.delete_snapshot_rows(conn, [int(snap.id)])


def rollback(store: Store, name: str) -> SnapshotInfo:
    """Restore the state from before the canister's last upgrade or reinstall: the snapshot it took.

    Only a snapshot whose change committed counts: one taken before an upgrade that never committed
    (its process was killed in between, or it failed) is passed over (``info.skipped``), since the
    canister still holds the state it holds. NothingToRollBackError if no committed change took one
    (saying what was found instead), or if the last one was rolled back already.
    """
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.controller_identity(), store.lock_owner)
        candidates = sql.upgrade_snapshots(conn, row.id, sql.CHANGE_PURPOSES)
    skipped = [int(s.id) for s in candidates if s.outcome == sql.PENDING]
    committed = [s for s in candidates if s.outcome != sql.PENDING]  # NULL: a purpose snapshot of old
    last = committed[0] if committed else None
    newer = [i for i in skipped if last is None or i > int(last.id)]
    if last is None:
        if skipped:
            raise NothingToRollBackError(
                f"nothing to roll back: snapshot {', '.join(map(str, skipped))} of canister {row.name} was taken "
                "before an upgrade that never committed (its process was killed or the upgrade failed), so the "
                f"canister still holds that state; `graphcopy snapshot load {row.name} {skipped[0]}` loads it anyway")
        raise NothingToRollBackError(
            f"nothing to roll back: no upgrade of canister {row.name} took a snapshot "
            "(an upgrade that failed changed nothing; `--no-snapshot` upgrades cannot be rolled back)")
    meta = json.loads(last.metadata)
    if meta.get("rolled_back_at_ns"):
        raise NothingToRollBackError(
            f"nothing to roll back: the last upgrade of canister {row.name} was rolled back already "
            f"(snapshot {last.id}; `graphcopy snapshot load {row.name} {last.id}` loads it again)")
    info = _load(store, name, int(last.id), history_kind="rollback", mark_rolled_back=True)
    info.skipped = newer
    return info


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
