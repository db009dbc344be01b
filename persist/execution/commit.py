"""Committing what a message changed: one compare-and-set on the canister's version, its pages and
metadata, and the migration progress record of a graph-copy increment."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.execution.clock import now_ns
from persist.host.globals import encode_globals
from persist.host.live import LiveCanister
from persist.host.memory import PAGE
from persist.host.system_api.context import MessageContext
from persist.session import CachedCanister, Store
from persist.store import locks, pages, schema
from persist.store.canisters import StaleStateError

__all__ = ["INCREMENT_METHODS", "Commit", "Guard", "ctx_logs", "finish_commit", "known_row_guard", "migration_progress",
           "write_state"]


@dataclass
class Commit:
    """What a successful message writes besides the canister's own state, and the canister row as
    the commit left it (what the process caches to run the next update without reading it)."""

    heap: list[int]
    stable: list[int]
    row: sa.Row[Any] | None = None
    #: The mutable globals as committed (read once: each read is a wasmtime call).
    globals: dict[int, Any] | None = None


# The messages in which Motoko's runtime copies its object graph to or from stable memory, one
# increment each (see migrate/graph_copy.py); their progress is recorded with their commit.

INCREMENT_METHODS = {
    "__motoko_stabilize_before_upgrade": "stabilize",
    "@motoko_async_stabilization": "stabilize",
    "__motoko_destabilize_after_upgrade": "destabilize",
    "@motoko_async_destabilization": "destabilize",
}

def migration_progress(row: sa.Row[Any], live: LiveCanister, ctx: MessageContext,
                       stable_dirty: list[int] | None = None) -> str | None:
    """The canister's migration record after this message, if a migration is in progress and the
    message was one of its increments (None: leave the record as it is).

    Besides the counters it keeps what progress displays estimate from: ``stable_written_bytes``, the
    high-water mark of the stable memory the increments wrote (the image's size once stabilized),
    ``heap_bytes``, the heap's size, and ``stable_io``, per step the bytes the increments read and wrote
    through ic0.stable* (both of Motoko's copies read the image front to back)."""
    if not row.migration or ctx.method not in INCREMENT_METHODS:
        return None
    record = json.loads(row.migration)
    if record.get("phase") in (None, "done", "failed"):
        return None
    step = INCREMENT_METHODS[ctx.method]
    counts = record.setdefault("increments", {})
    counts[step] = int(counts.get(step, 0)) + (1 if ctx.method.startswith("@") else 0)
    instr = record.setdefault("instructions", {})
    instr[step] = int(instr.get(step, 0)) + ctx.instructions_used
    record["stable_bytes"] = live.stable_pages * PAGE
    if stable_dirty:
        written = (max(stable_dirty) + 1) * PAGE
        record["stable_written_bytes"] = max(int(record.get("stable_written_bytes") or 0), written)
    record["heap_bytes"] = live.heap_pages * PAGE
    io = record.setdefault("stable_io", {}).setdefault(step, {"read": 0, "written": 0})
    io["read"] = int(io.get("read", 0)) + ctx.stable_bytes_read
    io["written"] = int(io.get("written", 0)) + ctx.stable_bytes_written
    record["updated_ns"] = now_ns()
    return json.dumps(record)

def write_state(conn: sa.Connection, row: sa.Row[Any], live: LiveCanister, *, time_ns: int,
                extra: dict[str, Any] | None = None, ctx: MessageContext | None = None,
                guard: Guard | None = None) -> Commit:
    """Write a live canister's changes since its last commit, guarded by the row's version (and by
    ``guard``, a further condition of the same ``UPDATE`` and its parameters; StaleStateError when
    either fails).

    With ``ctx``, a migration increment also updates the canister's progress record, in the same
    transaction as the state it produced. The updated row comes back from the ``UPDATE`` itself
    (``RETURNING``), in :attr:`Commit.row`."""
    heap_changed = live.changed_heap_pages()
    stable_dirty = live.dirty_stable_pages()
    globals_now = live.get_globals()
    values: dict[str, Any] = {
        "version": row.version + 1,
        "heap_pages": live.heap_pages,
        "stable_pages": live.stable_pages,
        "globals": json.dumps(encode_globals(globals_now)),
        "timer_ns": live.timer_ns,
        "certified_data": live.certified_data,
        "time_ns": max(int(row.time_ns), time_ns),
        "updated_at_ns": now_ns(),
    }
    values.update(extra or {})
    progress = migration_progress(row, live, ctx, stable_dirty) if ctx is not None else None
    if progress is not None:
        values["migration"] = progress
    new_row = _update_row(conn, row, values, guard)
    if new_row is None:
        raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
    if heap_changed:
        pages.write_pages(conn, pages.HEAP, row.id, live.heap_page_bytes(heap_changed))
    if stable_dirty:
        pages.write_pages(conn, pages.STABLE, row.id, live.stable_page_bytes(stable_dirty))
    return Commit(heap_changed, stable_dirty, new_row, globals_now)

Guard = tuple[sa.ColumnElement[bool], dict[str, Any]]

# The compare-and-set UPDATE ... RETURNING of write_state, compiled once per dialect, set of columns
# and guard: SQLAlchemy would otherwise rebuild it and compute its cache key on every commit (the
# largest part of graphcopy's own cost of a one-page update).
_COMPILED_UPDATES: dict[tuple[str, tuple[str, ...], int], tuple[str, list[str] | None, dict[str, Any]]] = {}


def _update_row(conn: sa.Connection, row: sa.Row[Any], values: dict[str, Any], guard: Guard | None
                ) -> sa.Row[Any] | None:
    """``UPDATE canisters SET values WHERE id, version (and guard) RETURNING *``: the new row, or None."""
    c = schema.canisters.c
    where = [c.id == row.id, c.version == row.version]
    if any(isinstance(v, sa.ClauseElement) for v in values.values()):  # an SQL expression (a cycles increment)
        params = guard[1] if guard is not None else {}
        if guard is not None:
            where.append(guard[0])
        return conn.execute(
            schema.canisters.update().where(*where).values(**values).returning(*schema.canisters.c), params).first()
    keys = tuple(sorted(values))
    key = (conn.dialect.name, keys, id(guard[0]) if guard is not None else 0)
    entry = _COMPILED_UPDATES.get(key)
    if entry is None:
        where = [c.id == sa.bindparam("w_id", type_=sa.Integer),
                 c.version == sa.bindparam("w_version", type_=sa.BigInteger)]
        if guard is not None:
            where.append(guard[0])
        stmt = schema.canisters.update().where(*where).values(
            {k: sa.bindparam(f"v_{k}", type_=c[k].type) for k in keys}).returning(*schema.canisters.c)
        compiled = stmt.compile(dialect=conn.dialect)
        literals = {name: b.value for name, b in compiled.binds.items() if not b.required}
        entry = _COMPILED_UPDATES[key] = (compiled.string, compiled.positiontup, literals)
    sql, order, literals = entry
    params = {**literals, "w_id": row.id, "w_version": row.version, **{f"v_{k}": v for k, v in values.items()}}
    if guard is not None:
        params.update(guard[1])
    args: Any = tuple(params[name] for name in order) if order is not None else params
    return conn.exec_driver_sql(sql, args).first()


def known_row_guard(row: sa.Row[Any], lock_owner: str | None) -> Guard:
    """The condition under which an update that ran on a cached ``row``, without reading anything
    first, may commit, and its parameters: the canister's row is still exactly ``row`` (every
    column: a stop, a deposit, a timer or settings change by any process shows), nothing is queued
    and no timer is due anywhere (an update runs queued work first), and no migration pipeline has
    a running claim on it other than ``lock_owner``'s. When it fails the caller undoes the message
    and takes the path that reads (and checks) all of it, where a dead claim is told from a live one.
    The expression is built once per process (bound parameters), so SQLAlchemy's compiled cache serves it."""
    expr = _KNOWN_GUARDS.get(lock_owner is not None)
    if expr is None:
        expr = _KNOWN_GUARDS[lock_owner is not None] = _build_known_guard(lock_owner is not None)
    params = {f"known_{k}": row._mapping[k] for k in _KNOWN_COLUMNS}
    params["known_now"] = now_ns()
    params["known_owner"] = lock_owner
    return expr, params


_KNOWN_GUARDS: dict[bool, sa.ColumnElement[bool]] = {}
# id and version are compared by write_state itself.
_KNOWN_COLUMNS = [col.name for col in schema.canisters.c if col.name not in ("id", "version")]


def _build_known_guard(with_owner: bool) -> sa.ColumnElement[bool]:
    c = schema.canisters.c
    same = [c[k].is_not_distinct_from(sa.bindparam(f"known_{k}", type_=c[k].type)) for k in _KNOWN_COLUMNS]
    due = schema.canisters.alias("due")
    no_due_timer = ~sa.select(due.c.id).where(
        due.c.timer_ns > 0, due.c.timer_ns <= sa.bindparam("known_now", type_=sa.BigInteger),
        due.c.status == "running", due.c.module_hash.is_not(None)).exists()
    pl = schema.pipeline_locks.c
    claim = [pl.canister == sa.bindparam("known_name", type_=sa.Text), pl.state == locks.RUNNING]
    if with_owner:
        claim.append(pl.owner.is_distinct_from(sa.bindparam("known_owner", type_=sa.Text)))
    return sa.and_(*same, ~sa.select(schema.messages.c.id).exists(), no_due_timer,
                   ~sa.select(pl.canister).where(*claim).exists())


def finish_commit(store: Store, row: sa.Row[Any], live: LiveCanister, commit: Commit,
                  module_hash: str | None = None) -> None:
    """After the transaction committed: the live instance's current state is the new baseline
    (``module_hash``: the module it now runs, if the commit installed another one)."""
    live.commit(commit.heap, commit.stable, commit.globals)
    live.version = int(row.version) + 1
    store.remember(row.id, CachedCanister(live, live.version, module_hash or row.module_hash, commit.row))

def ctx_logs(ctx: MessageContext, trap: str | None) -> list[tuple[int, str, str]]:
    """The log lines of a message: its debug prints, and its trap if it trapped."""
    lines = [(t, "print", text) for t, text in ctx.logs]
    if trap is not None:
        lines.append((ctx.time_ns, "trap", trap))
    return lines
