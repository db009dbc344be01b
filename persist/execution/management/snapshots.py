"""Management methods over canister snapshots: take, load, list, delete. They are the same
snapshots as ``graphcopy snapshot`` (``persist.store.snapshots``: content-addressed pages, the
chunk store included), named on the wire as the replica names them: a snapshot id is the 8-byte
big-endian number of the snapshot followed by the canister's principal.

Loading from the management canister follows the IC: the snapshot replaces the canister's code,
memories, globals, timer and certified data; controllers and status stay, and call contexts open at
the time stay open (their callbacks run on the restored state, so stop the canister first unless it
is loading its own snapshot from a one-way call).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from persist.errors import CanisterStateError
from persist.execution import installer, rejects
from persist.execution.installer import Requester
from persist.execution.instances import forget_live
from persist.execution.management.request import (
    Reply,
    Request,
    canister_arg,
    require_controller,
    require_visible,
    snapshot_not_found,
    target,
)
from persist.execution.rejects import IcError, doc_help
from persist.host.memory import PAGE
from persist.principal import Principal
from persist.session import Store
from persist.store import schema
from persist.store import snapshots as sql

__all__ = ["delete_canister_snapshot", "list_canister_snapshots", "load_canister_snapshot", "snapshot_blob",
           "take_canister_snapshot"]


def snapshot_blob(snapshot_id: int, canister: str) -> bytes:
    """The replica's snapshot id: the local number (8 bytes, big-endian) and the canister id."""
    return snapshot_id.to_bytes(8, "big") + Principal.from_text(canister).raw


def _snapshot_row(conn: sa.Connection, blob: bytes) -> tuple[sa.Row[Any] | None, Principal | None]:
    if len(blob) < 8:
        return None, None
    try:
        owner = Principal(blob[8:])
    except Exception:  # noqa: BLE001 - not a principal: no such snapshot
        return None, None
    snap = conn.execute(sa.select(schema.snapshots).where(schema.snapshots.c.id == int.from_bytes(blob[:8], "big"))
                        ).first()
    return snap, owner


def _source(conn: sa.Connection, row: sa.Row[Any], blob: bytes) -> tuple[sa.Row[Any], sa.Row[Any]]:
    """The snapshot ``blob`` names and the canister it is of; CanisterSnapshotNotFound otherwise."""
    snap, owner = _snapshot_row(conn, blob)
    source = (conn.execute(sa.select(schema.canisters).where(schema.canisters.c.id == snap.canister_id)).first()
              if snap is not None else None)
    if snap is None or owner is None or source is None or source.principal != owner.to_text():
        raise snapshot_not_found(row.principal, blob)
    return snap, source


def _owned(conn: sa.Connection, row: sa.Row[Any], blob: bytes) -> sa.Row[Any]:
    """The snapshot ``blob`` of canister ``row``, or the replica's error."""
    snap, owner = _source(conn, row, blob)
    if snap.canister_id != row.id:
        help_ = doc_help("Use the `list_canister_snapshot` API to see which snapshots are present.",
                         "canister-snapshot-invalid-ownership")
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE,
                      f"The snapshot {blob.hex()} does not belong to canister {row.principal}.\n{help_}")
    return snap


def _describe(conn: sa.Connection, row: sa.Row[Any], snap: sa.Row[Any]) -> dict[str, Any]:
    size = int(conn.execute(sa.select(schema.modules.c.size).where(schema.modules.c.hash == snap.module_hash))
               .scalar() or 0)
    return {"id": snapshot_blob(int(snap.id), row.principal), "taken_at_timestamp": int(snap.created_at_ns),
            "total_size": (int(snap.heap_pages) + int(snap.stable_pages)) * PAGE + size}


def take_canister_snapshot(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``take_canister_snapshot``: a snapshot of the committed state, replacing ``replace_snapshot``
    if given; with ``uninstall_code`` the canister is uninstalled once it is taken."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    if row.module_hash is None:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE, f"Failed to create snapshot for empty canister "
                                                         f"{row.principal}:")
    replace = req.arg.get("replace_snapshot")
    old = _owned(conn, row, replace) if replace is not None else None
    try:
        sql.refuse_during_migration(row, "snapshot")
    except CanisterStateError as exc:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE, str(exc)) from exc
    info = sql.record_snapshot(conn, row, None, purpose=None, upgrade_to=None)
    if old is not None:
        sql.delete_snapshot_rows(conn, [int(old.id)])
    snap = conn.execute(sa.select(schema.snapshots).where(schema.snapshots.c.id == info.id)).one()
    reply = _describe(conn, row, snap)
    if req.arg.get("uninstall_code"):
        fresh = conn.execute(sa.select(schema.canisters).where(schema.canisters.c.id == row.id)).one()
        installer.uninstall(store, conn, fresh, Requester(req.caller, req.origin))
    return Reply(reply)


def load_canister_snapshot(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``load_canister_snapshot``: the caller controls the canister and the one the snapshot is of."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    blob: bytes = req.arg["snapshot_id"]
    snap, source = _source(conn, row, blob)
    if source.id != row.id and req.caller.raw not in [Principal.from_text(p).raw for p in
                                                       json.loads(source.controllers)]:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE,
                      f"Only a controller of the canister that snapshot {blob.hex()} belongs to can load it on "
                      f"canister {row.principal}. Sender: {req.caller.to_text()}.")
    meta = json.loads(snap.metadata)
    sql.restore_snapshot(conn, row, snap, history_kind="snapshot-load", system_state=False, origin=req.origin,
                         history_detail={"snapshot_blob": blob.hex(), "snapshot_version": meta.get("version"),
                                         "taken_at_ns": int(snap.created_at_ns),
                                         "from_canister": source.principal if source.id != row.id else None})
    req.after_commit.append(lambda: forget_live(store, row.id))
    return Reply()


def list_canister_snapshots(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``list_canister_snapshots``: controllers, and whoever ``snapshot_visibility`` allows."""
    row = target(conn, canister_arg(req))
    require_visible(row, req, "snapshot_visibility")
    s = schema.snapshots
    snaps = conn.execute(sa.select(s).where(s.c.canister_id == row.id).order_by(s.c.id)).all()
    return Reply([_describe(conn, row, snap) for snap in snaps])


def delete_canister_snapshot(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``delete_canister_snapshot``: controllers only."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    snap = _owned(conn, row, req.arg["snapshot_id"])
    sql.delete_snapshot_rows(conn, [int(snap.id)])
    return Reply()
