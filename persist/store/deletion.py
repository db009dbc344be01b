"""Deleting a canister from the store: everything it holds, or all but one snapshot and a tombstone.

The management canister's ``delete_canister`` deletes everything, as on the IC. ``graphcopy
delete`` keeps the canister's last state as one snapshot by default: the row then stays as a
tombstone (status ``deleted``, renamed ``NAME#deleted-ID`` so the name is free again; lookups never
return it), holding that snapshot and the canister's history, and ``snapshot load`` brings it back.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from persist.store import events, pages, schema
from persist.store.canisters import DELETED, tombstone_name
from persist.store.snapshots import delete_snapshot_rows

__all__ = ["delete_canister"]


def delete_canister(conn: sa.Connection, row: sa.Row[Any], *, keep_snapshot: int | None = None) -> None:
    """Delete the canister ``row`` and what it holds (queue, logs, chunk store, pages, snapshots and
    the page blobs only they used). With ``keep_snapshot``, that snapshot and the history stay, on a
    tombstone row."""
    tables = [schema.messages, schema.call_contexts, schema.ingress, schema.logs, schema.wasm_chunks,
              schema.stop_waiters]
    if keep_snapshot is None:
        tables.append(schema.history)
    for table in tables:
        conn.execute(table.delete().where(table.c.canister_id == row.id))
    pages.delete_pages(conn, pages.HEAP, row.id)
    pages.delete_pages(conn, pages.STABLE, row.id)
    s = schema.snapshots
    others = [int(i) for i in conn.execute(sa.select(s.c.id).where(s.c.canister_id == row.id)).scalars()
              if int(i) != keep_snapshot]
    delete_snapshot_rows(conn, others)
    c = schema.canisters.c
    if keep_snapshot is None:
        conn.execute(schema.canisters.delete().where(c.id == row.id))
        return
    conn.execute(schema.canisters.update().where(c.id == row.id).values(
        name=tombstone_name(row.name, row.id), status=DELETED, module_hash=None, heap_pages=0,
        stable_pages=0, globals=None, timer_ns=0, migration=None, version=int(row.version) + 1,
        updated_at_ns=time.time_ns()))
    events.add_history(conn, row.id, "delete", row.module_hash, {"snapshot_id": keep_snapshot})
