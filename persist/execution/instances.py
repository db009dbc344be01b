"""Live instances: a canister in memory at exactly its committed state, cached per store."""

from __future__ import annotations

import dataclasses
import json
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from persist.errors import CanisterStateError
from persist.host.globals import decode_globals
from persist.host.limits import Limits
from persist.host.live import LiveCanister
from persist.host.memory import PageSource, StaleSourceError
from persist.principal import Principal
from persist.session import CachedCanister, Store
from persist.store import db, pages, schema
from persist.store.canisters import controllers_of

__all__ = ["forget_live", "heap_source", "limits_for", "live_canister", "migration_scale", "stable_source", "undo"]


def migration_scale(row: sa.Row[Any]) -> float | None:
    """The ``ic0.performance_counter`` scale of the canister's unfinished graph-copy migration, if any.

    The migration record (``canisters.migration``, written by ``migrate``) keeps the scale its
    driver started with; every increment of that migration must run with it, whichever command
    happens to run it (the driver, a resumed driver, or any later command that drains the queue a
    killed driver left), or a drained increment would take the IC's budget instead of the migration's.
    """
    if not row.migration:
        return None
    record = json.loads(row.migration)
    scale = record.get("performance_counter_scale")
    if record.get("phase") in (None, "done") or not scale:
        return None
    return float(scale)


def limits_for(store: Store, row: sa.Row[Any]) -> Limits:
    """The limits the canister's messages run with: the store's, with the scale of its unfinished
    migration (:func:`migration_scale`) when it has one."""
    scale = migration_scale(row)
    if scale is None or scale == store.limits.performance_counter_scale:
        return store.limits
    return dataclasses.replace(store.limits, performance_counter_scale=scale)


def live_canister(store: Store, row: sa.Row[Any]) -> LiveCanister:
    """The in-memory instance of a canister at exactly the committed state ``row`` describes."""
    cached = store.live.get(row.id)
    if cached is not None and cached.version == row.version and cached.module_hash == row.module_hash:
        store.live.move_to_end(row.id)
        cached.live.status = row.status
        cached.live.controllers = set(controllers_of(row))
        cached.live.version = int(row.version)
        cached.live.limits = limits_for(store, row)
        return cached.live
    store.live.pop(row.id, None)
    if row.module_hash is None:
        raise CanisterStateError(f"canister {row.name!r} is empty: install a module first (`graphcopy install`)")
    with db.read_transaction(store.engine) as conn:
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
        info, module = store.runtime.load_module(wasm, validate=False)  # installed: validated then
        stored = [int(p) for p in conn.execute(
            sa.select(schema.stable_pages.c.page_no).where(schema.stable_pages.c.canister_id == row.id))
            .scalars()]
        # The heap pages go from the cursor straight into the heap, one row at a time.
        live = LiveCanister(
            store.runtime, info, module,
            principal=Principal.from_text(row.principal).raw,
            controllers=controllers_of(row),
            status=row.status,
            limits=limits_for(store, row),
            heap_pages=int(row.heap_pages),
            heap_data=pages.read_pages(conn, pages.HEAP, row.id),
            stable_pages=int(row.stable_pages),
            stable_source=stable_source(store, row.id),
            stable_stored=stored,
            globals_=decode_globals(json.loads(row.globals)) if row.globals else None,
            timer_ns=int(row.timer_ns),
            run_start=False,
        )
    live.version = int(row.version)
    live.certified_data = bytes(row.certified_data or b"")
    live.attach_heap_source(heap_source(store, row.id, live))
    live.commit([], [])  # the certified data and version just set are the committed baseline
    store.remember(row.id, CachedCanister(live, int(row.version), row.module_hash))
    return live

def stable_source(store: Store, canister_id: int) -> Callable[[list[int]], list[tuple[int, bytes]]]:
    """Reads committed stable pages of one canister, for loading them on first access."""

    def read(wanted: list[int]) -> list[tuple[int, bytes]]:
        with db.read_transaction(store.engine) as conn:
            return list(pages.read_pages(conn, pages.STABLE, canister_id, wanted))

    return read

def heap_source(store: Store, canister_id: int, live: LiveCanister) -> PageSource:
    """Reads committed heap pages of one canister, to undo a message that wrote pages the live
    instance's cache of committed images does not hold. Raises StaleSourceError when the stored
    version is no longer the instance's (another process committed since): the pages read would
    not be the ones the instance was committed at."""
    owner = weakref.ref(live)

    def read(wanted: list[int]) -> Iterator[tuple[int, bytes]]:
        with db.read_transaction(store.engine) as conn:
            version = conn.execute(
                sa.select(schema.canisters.c.version).where(schema.canisters.c.id == canister_id)).scalar()
            inst = owner()
            if inst is None or version is None or int(version) != inst.version:
                raise StaleSourceError(f"canister {canister_id} is at version {version} in the store")
            yield from pages.read_pages(conn, pages.HEAP, canister_id, wanted)

    return read

def forget_live(store: Store, canister_id: int) -> None:
    """Drop the cached instance (the next message reloads it from SQL)."""
    store.live.pop(canister_id, None)

def undo(store: Store, canister_id: int, live: LiveCanister) -> None:
    """Put a live canister back at its committed state (or drop it if that cannot be done in place)."""
    if not live.rollback():
        forget_live(store, canister_id)
