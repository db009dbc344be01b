"""The SQL of snapshot import and export: canister rows made from a snapshot, a snapshot's pages.

An imported canister is created (or an existing one overwritten) with the state a snapshot
directory describes; the pages themselves go through ``persist.store.pages`` and the chunks
through ``persist.store.chunks``. ``snapshot_pages`` streams the pages of a graphcopy snapshot
in page order for export. The public functions over an open store are in
``persist.api.snapshot_transfer``; everything here works in the caller's transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.errors import CanisterExistsError
from persist.principal import Principal
from persist.store import canisters, pages, schema
from persist.store.canisters import StaleStateError
from persist.store.events import add_history

__all__ = ["IMPORT_HISTORY_KIND", "ImportedState", "create_canister", "overwrite_canister", "principal_owner",
           "snapshot_pages"]

#: The history entry an import adds; its detail names the directory and the metadata's sha256.
IMPORT_HISTORY_KIND = "snapshot-import"


@dataclass
class ImportedState:
    """The canister-row part of an imported snapshot (the pages and chunks are written apart)."""

    module_hash: str
    heap_pages: int
    stable_pages: int
    globals: str  # JSON, as persist.host.globals encodes it
    timer_ns: int
    certified_data: bytes
    time_ns: int  # the snapshot's timestamp: the time of the state
    version: int  # ic0.canister_version
    hook_status: str | None

    def values(self) -> dict[str, Any]:
        return {"module_hash": self.module_hash, "heap_pages": self.heap_pages, "stable_pages": self.stable_pages,
                "globals": self.globals, "timer_ns": self.timer_ns, "certified_data": self.certified_data,
                "time_ns": self.time_ns, "on_low_wasm_memory_hook_status": self.hook_status,
                "updated_at_ns": time.time_ns()}


def principal_owner(conn: sa.Connection, principal: Principal) -> str | None:
    """The name of the canister with this principal, if there is one."""
    c = schema.canisters.c
    return conn.execute(sa.select(c.name).where(c.principal == principal.to_text())).scalar()


def create_canister(conn: sa.Connection, name: str, principal: Principal | None, controllers: list[str],
                    state: ImportedState, detail: dict[str, Any]) -> tuple[int, Principal]:
    """Insert a new, running canister holding ``state`` (no pages yet); ``principal`` None allocates
    the next free id. CanisterExistsError if the name or the principal is taken."""
    c = schema.canisters.c
    if conn.execute(sa.select(c.id).where(c.name == name)).first() is not None:
        raise CanisterExistsError(f"canister {name!r} exists already; choose another name, or --into to load the "
                                  "snapshot onto it")
    if principal is not None:
        owner = principal_owner(conn, principal)
        if owner is not None:
            raise CanisterExistsError(f"canister id {principal.to_text()} is canister {owner!r} of this store already")
    else:
        principal = canisters.allocate_principal(conn)
    now = time.time_ns()
    res = conn.execute(schema.canisters.insert().values(
        name=name, principal=principal.to_text(), status="running", controllers=json.dumps(controllers),
        version=state.version, created_at_ns=now, **state.values()))
    pk = res.inserted_primary_key
    assert pk is not None
    canister_id = int(pk[0])
    add_history(conn, canister_id, "create", None)
    add_history(conn, canister_id, IMPORT_HISTORY_KIND, state.module_hash, detail)
    return canister_id, principal


def overwrite_canister(conn: sa.Connection, row: sa.Row[Any], state: ImportedState, detail: dict[str, Any]) -> None:
    """Replace an existing canister's state with ``state`` (its pages are deleted; the caller writes
    the new ones), guarded by its version, which is bumped. Refused while it has open call contexts
    or queued messages (they belong to the state being replaced)."""
    canisters.refuse_with_calls_in_flight(conn, row, "loading a snapshot")
    c = schema.canisters.c
    values = state.values()
    upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version).values(
        version=int(row.version) + 1, migration=None, **values))
    if upd.rowcount != 1:
        raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
    pages.delete_pages(conn, pages.HEAP, row.id)
    pages.delete_pages(conn, pages.STABLE, row.id)
    add_history(conn, row.id, IMPORT_HISTORY_KIND, state.module_hash, {**detail, "from": row.module_hash})


def snapshot_pages(conn: sa.Connection, snapshot_id: int, kind: str) -> Iterator[tuple[int, bytes]]:
    """``(page_no, data)`` of a graphcopy snapshot's stored pages of ``kind``, in page order, fetched
    in batches (bounded memory, one index range per batch)."""
    sp, pb = schema.snapshot_pages, schema.page_blobs
    last = -1
    while True:
        rows = conn.execute(
            sa.select(sp.c.page_no, pb.c.data).join(pb, pb.c.hash == sp.c.blob_hash)
            .where(sp.c.snapshot_id == snapshot_id, sp.c.kind == kind, sp.c.page_no > last)
            .order_by(sp.c.page_no).limit(pages.BATCH_PAGES)).all()
        for page_no, data in rows:
            yield int(page_no), bytes(data)
        if len(rows) < pages.BATCH_PAGES:
            return
        last = int(rows[-1][0])
