"""The public functions over canisters: install, status, list, logs, stop, start, delete, tick.

Each takes a ``Store`` and plain values and returns plain dataclasses; the CLI and scripts call
exactly these. Arguments are Candid bytes here; ``persist.candid`` converts text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.errors import CandidError, CanisterStateError, GraphcopyError, InvalidNameError
from persist.execution import instances, routing, scheduler
from persist.execution.install_code import EMPTY_ARGS, InstallResult, install_module
from persist.execution.management.lifecycle import start_row
from persist.execution.scheduler import QueueEntry
from persist.host.dirty.select import mechanism as dirty_mechanism
from persist.host.memory import PAGE
from persist.host.module import parse_module
from persist.principal import Principal
from persist.session import Store
from persist.store import db, pages, schema
from persist.store import snapshots as snapshot_sql
from persist.store.canisters import DELETED, canister_row, controller_row, env_vars_of, is_text, settings_of
from persist.store.deletion import delete_canister

__all__ = [
    "CanisterStatus",
    "DeleteResult",
    "HistoryEntry",
    "InstallResult",
    "LogLine",
    "QueueEntry",
    "check_name",
    "delete",
    "install",
    "list_canisters",
    "logs",
    "queue",
    "run_pending",
    "start",
    "status",
    "stop",
]


@dataclass
class LogLine:
    seq: int
    time_ns: int
    kind: str
    message: str


@dataclass
class HistoryEntry:
    time_ns: int
    kind: str
    module_hash: str | None
    detail: dict[str, Any] | None


@dataclass
class DeleteResult:
    """What ``delete`` did: the snapshot it kept (``snapshot load NAME ID`` brings the canister back)."""

    name: str
    principal: str
    snapshot_id: int | None


@dataclass
class CanisterStatus:
    name: str
    principal: str
    status: str
    module_hash: str | None
    controllers: list[str]
    version: int
    heap_bytes: int
    stable_bytes: int
    stored_heap_pages: int
    stored_stable_pages: int
    timer_ns: int
    eop: bool | None
    methods: dict[str, str]
    pending_messages: int
    open_call_contexts: int
    log_lines: int
    migration: dict[str, Any] | None
    history: list[HistoryEntry]
    # The canister that created it (None when a user did), its (notional) cycle balance, its
    # environment variables and the settings that were set (the management canister's).
    parent: str | None = None
    cycles: int = 0
    environment_variables: dict[str, str] = dataclasses.field(default_factory=dict)
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    # How this process finds the heap pages a message wrote (``uffd`` or ``compare``; set by
    # ``status``, empty in ``list_canisters``), and what that means on this machine.
    dirty_tracking: str = ""
    dirty_tracking_detail: str = ""


# --------------------------------------------------------------------------- install


def check_name(name: str, *, principal: str | None = None) -> None:
    """InvalidNameError unless ``name`` may name a new canister: letters, digits, "-", "_" and ".",
    valid text (no undecodable bytes from a command line), and not a principal's text form (a
    canister is found by its name or its principal, so a name that reads as a principal would make
    that ambiguous), unless it is ``principal``, the principal the canister gets."""
    if not is_text(name):
        raise InvalidNameError(f"invalid canister name {name!r}: it is not valid text (undecodable bytes; "
                               "check the terminal's encoding)")
    ok = name and len(name) <= 128 and all(ch.isalnum() or ch in "-_." for ch in name)
    if not ok:
        raise InvalidNameError(f"invalid canister name {name!r}: use letters, digits, '-', '_' and '.'")
    try:
        as_principal = Principal.from_text(name).to_text()
    except CandidError:
        return
    if as_principal != principal:
        raise InvalidNameError(f"invalid canister name {name!r}: it is a principal's text form, and canisters are "
                               "found by name or principal; choose a name that is not a principal")


# --------------------------------------------------------------------------- inspection


def install(store: Store, name: str, wasm: bytes, *, arg: bytes = EMPTY_ARGS, mode: str = "install",
            snapshot: bool = True) -> InstallResult:
    """Install ``wasm`` on canister ``name`` (created if new): run its start function and
    ``canister_init(arg)`` within the install instruction limit, and commit everything at once.

    ``mode="reinstall"`` replaces the module and wipes heap, stable memory and logs; with
    ``snapshot`` (the default) a snapshot of the old state is taken first (``result.snapshot_id``;
    ``graphcopy rollback NAME`` or ``snapshot load NAME ID`` restores it). A trap or an invalid
    module changes nothing (a new canister is not even created, a reinstall's snapshot is dropped).
    """
    check_name(name)
    from persist.api import snapshots

    snap_id: int | None = None
    if mode == "reinstall" and snapshot:
        with db.read_transaction(store.engine) as conn:
            found = conn.execute(sa.select(schema.canisters.c.module_hash).where(
                schema.canisters.c.name == name, schema.canisters.c.status != DELETED)).first()
        if found is not None and found.module_hash is not None:
            snap_id = snapshots.take_snapshot(store, name, label="before reinstall",
                                              purpose=snapshot_sql.REINSTALL_PURPOSE).id
    try:
        # The reinstall's commit records that the change its snapshot was taken for happened.
        marks = (lambda conn: snapshot_sql.mark_committed(conn, snap_id)) if snap_id is not None else None
        res = install_module(store, name, wasm, arg=arg, mode=mode, on_commit=marks)
    except Exception:
        if snap_id is not None:  # nothing changed: the snapshot has nothing to undo
            with contextlib.suppress(GraphcopyError):
                snapshots.delete_snapshot(store, name, snap_id)
        raise
    res.snapshot_id = snap_id
    return res


# --------------------------------------------------------------------------- inspection


def _status_of(conn: sa.Connection, store: Store, row: sa.Row[Any], *, with_history: bool) -> CanisterStatus:
    cid = row.id
    count = sa.func.count()
    methods: dict[str, str] = {}
    eop = None
    if row.module_hash is not None:
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
        info = parse_module(bytes(wasm))  # the sections and exports are enough: no need to compile it
        eop = info.is_eop
        methods = {m: "update" for m in info.updates} | {m: "query" for m in info.queries}
    hist: list[HistoryEntry] = []
    if with_history:
        for h in conn.execute(sa.select(schema.history).where(schema.history.c.canister_id == cid)
                              .order_by(schema.history.c.id)):
            hist.append(HistoryEntry(int(h.time_ns), h.kind, h.module_hash, json.loads(h.detail) if h.detail else None))
    return CanisterStatus(
        name=row.name,
        principal=row.principal,
        status=row.status,
        module_hash=row.module_hash,
        controllers=json.loads(row.controllers),
        version=int(row.version),
        heap_bytes=int(row.heap_pages) * PAGE,
        stable_bytes=int(row.stable_pages) * PAGE,
        stored_heap_pages=pages.stored_page_count(conn, pages.HEAP, cid),
        stored_stable_pages=pages.stored_page_count(conn, pages.STABLE, cid),
        timer_ns=int(row.timer_ns),
        eop=eop,
        methods=methods,
        pending_messages=int(conn.execute(sa.select(count).select_from(schema.messages)
                                          .where(schema.messages.c.canister_id == cid)).scalar() or 0),
        open_call_contexts=int(conn.execute(sa.select(count).select_from(schema.call_contexts)
                                            .where(schema.call_contexts.c.canister_id == cid)).scalar() or 0),
        log_lines=int(conn.execute(sa.select(count).select_from(schema.logs)
                                   .where(schema.logs.c.canister_id == cid)).scalar() or 0),
        migration=json.loads(row.migration) if row.migration else None,
        history=hist,
        parent=row.parent,
        cycles=int(row.cycles),
        environment_variables=dict(env_vars_of(row)),
        settings=settings_of(row),
    )


def status(store: Store, name: str) -> CanisterStatus:
    """Everything graphcopy knows about one canister, including its install history."""
    mech = dirty_mechanism()
    with db.read_transaction(store.engine) as conn:
        st = _status_of(conn, store, canister_row(conn, name), with_history=True)
    return dataclasses.replace(st, dirty_tracking=mech.name, dirty_tracking_detail=mech.describe())


def list_canisters(store: Store, *, parent: str | None = None) -> list[CanisterStatus]:
    """All canisters of the store, by creation order; with ``parent`` (a name or principal), only
    the canisters that canister created."""
    with db.read_transaction(store.engine) as conn:
        q = sa.select(schema.canisters).where(schema.canisters.c.status != DELETED).order_by(schema.canisters.c.id)
        if parent is not None:
            q = q.where(schema.canisters.c.parent == canister_row(conn, parent).principal)
        rows = conn.execute(q).all()
        return [_status_of(conn, store, r, with_history=False) for r in rows]


def logs(store: Store, name: str, *, tail: int | None = None, since_ns: int | None = None,
         after_seq: int | None = None) -> list[LogLine]:
    """The canister's log: debug prints of committed messages, and the traps of failed ones, oldest
    first. ``tail`` keeps the last N lines, ``since_ns`` those newer than that time, ``after_seq``
    those after that sequence number (for following a log)."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        lg = schema.logs.c
        q = sa.select(schema.logs).where(lg.canister_id == row.id).order_by(lg.seq.desc())
        if since_ns is not None:
            q = q.where(lg.time_ns > since_ns)
        if after_seq is not None:
            q = q.where(lg.seq > after_seq)
        if tail is not None:
            q = q.limit(tail)
        out = [LogLine(int(r.seq), int(r.time_ns), r.kind, r.message) for r in conn.execute(q)]
    out.reverse()
    return out


# --------------------------------------------------------------------------- lifecycle


def _controller_row(conn: sa.Connection, store: Store, name: str, *, mutating: bool = True) -> sa.Row[Any]:
    return controller_row(conn, name, store.controller_identity(), store.lock_owner, mutating=mutating)


def stop(store: Store, name: str) -> str:
    """Stop a canister: it takes no new calls; responses to its open calls are still delivered.
    Returns the new status ("stopped", or "stopping" while call contexts are open)."""
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        if row.status == "running":
            conn.execute(schema.canisters.update().where(schema.canisters.c.id == row.id).values(status="stopping"))
            routing.settle_stopping(conn, row.id)
    scheduler.run_pending(store, focus=[row.id])  # its open call contexts may still finish
    with db.read_transaction(store.engine) as conn:
        return str(canister_row(conn, name).status)


def start(store: Store, name: str) -> str:
    """Start a stopped (or stopping) canister again."""
    with db.transaction(store.engine) as conn:
        start_row(conn, _controller_row(conn, store, name))
    return "running"


def delete(store: Store, name: str, *, snapshot: bool = True) -> DeleteResult:
    """Delete a stopped canister with all its state (pages, snapshots, logs, queued messages).

    With ``snapshot`` (the default) its last state is snapshotted first and that one snapshot is
    kept (``result.snapshot_id``): the canister's row stays as a tombstone under another name
    (``persist.store.canisters``), so the name is free again, and ``snapshot load NAME ID`` brings
    the canister back (same principal, stopped). Without it, or for an empty canister, nothing is kept.
    """
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        if row.status != "stopped":
            raise CanisterStateError(f"canister {name!r} is {row.status}; stop it first (`graphcopy stop {name}`)")
        kept = None
        if snapshot and row.module_hash is not None:
            kept = snapshot_sql.record_snapshot(conn, row, "before delete", purpose=snapshot_sql.DELETE_PURPOSE,
                                                upgrade_to=None).id
        delete_canister(conn, row, keep_snapshot=kept)
    instances.forget_live(store, row.id)
    return DeleteResult(name=row.name, principal=row.principal, snapshot_id=kept)


def run_pending(store: Store, *, max_messages: int | None = None) -> int:
    """Run queued messages and due timers, every canister in turn (what earlier commands left
    behind, for example), at most ``max_messages`` (default ``store.max_messages_per_command``)."""
    return scheduler.run_pending(store, max_messages=max_messages)


def queue(store: Store) -> list[QueueEntry]:
    """What is queued, per canister: messages by kind, and whether its timer is due."""
    with db.read_transaction(store.engine) as conn:
        return scheduler.queue_summary(conn)
