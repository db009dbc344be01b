"""The public functions of ``persist``: install, call, query, inspect and manage canisters.

Each takes a ``Store`` and plain values and returns plain dataclasses; the CLI and scripts call
exactly these. Arguments and replies are Candid bytes here; ``persist.candid`` converts text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from persist import execution
from persist.errors import (
    CanisterExistsError,
    CanisterRejectError,
    CanisterStateError,
    CanisterTrapError,
    GraphcopyError,
    MethodNotFoundError,
    NotAuthorizedError,
)
from persist.host.globals import encode_globals
from persist.host.live import LiveCanister
from persist.host.memory import PAGE
from persist.host.module import ModuleInfo, parse_module
from persist.host.system_api.context import INIT, REJECT_CANISTER_ERROR, REJECT_CANISTER_REJECT, MessageContext
from persist.principal import Principal
from persist.session import CachedCanister, Store
from persist.store import canisters, db, events, locks, pages, schema
from persist.store.canisters import StaleStateError, canister_row, controllers_of
from persist.store.snapshots import delete_all_snapshots

if TYPE_CHECKING:
    from persist.candid import ServiceInterface

EMPTY_ARGS = b"DIDL\x00\x00"
INSTALL_MODES = ("install", "reinstall")


@dataclass
class InstallResult:
    name: str
    principal: str
    mode: str
    module_hash: str
    created: bool
    instructions: int
    heap_bytes: int
    stable_bytes: int


@dataclass
class CallResult:
    """The reply of a call, and how it ran."""

    method: str
    kind: str  # "update" | "query"
    reply: bytes
    logs: list[str] = field(default_factory=list)
    instructions: int = 0


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


# --------------------------------------------------------------------------- install


def _check_name(name: str) -> None:
    ok = name and len(name) <= 128 and all(ch.isalnum() or ch in "-_." for ch in name)
    if not ok:
        raise GraphcopyError(f"invalid canister name {name!r}: use letters, digits, '-', '_' and '.'")


def install(store: Store, name: str, wasm: bytes, *, arg: bytes = EMPTY_ARGS, mode: str = "install") -> InstallResult:
    """Install ``wasm`` on canister ``name`` (created if new): run its start function and
    ``canister_init(arg)`` within the install instruction limit, and commit everything at once.

    ``mode="reinstall"`` replaces the module and wipes heap, stable memory and logs. A trap or an
    invalid module changes nothing (a new canister is not even created).
    """
    if mode not in INSTALL_MODES:
        raise GraphcopyError(f"unknown install mode {mode!r}: use install or reinstall (upgrades: graphcopy upgrade)")
    _check_name(name)
    info, module = store.runtime.load_module(wasm)
    with db.read_transaction(store.engine) as conn:
        row = conn.execute(sa.select(schema.canisters).where(schema.canisters.c.name == name)).first()
        locks.check_unlocked(conn, name, store.lock_owner)
    if row is not None:
        if mode == "install" and row.module_hash is not None:
            raise CanisterExistsError(
                f"canister {name!r} already has a module; use --mode reinstall to wipe it, or `graphcopy upgrade`")
        if store.identity.raw not in controllers_of(row):
            raise NotAuthorizedError(f"only a controller of {name!r} may install code on it")
        principal = Principal.from_text(row.principal)
        controllers = controllers_of(row)
    else:
        principal = Principal.from_canister_index(0)  # replaced by the real id when committing
        controllers = [store.identity.raw]

    def make_live(p: Principal) -> LiveCanister:
        return LiveCanister(
            store.runtime, info, module, principal=p.raw, controllers=controllers, status="running",
            limits=store.limits, heap_pages=0, heap_data=[], stable_pages=0, stable_source=lambda _: [],
            stable_stored=[], globals_=None, timer_ns=0, run_start=True)

    if row is None:
        with db.read_transaction(store.engine) as conn:
            principal = canisters.next_principal(conn)
    live = make_live(principal)
    budget = store.limits.install_instructions
    start = live.run_start(budget)
    used = start.instructions
    logs = execution.ctx_logs(start.ctx, start.trap)
    trap = start.trap
    if trap is None and "canister_init" in live.info.system:
        ctx = MessageContext(kind=INIT, caller=store.identity.raw, arg=arg, time_ns=execution.now_ns())
        res = live.run(ctx, budget - used, "canister_init")
        used += res.instructions
        logs += execution.ctx_logs(ctx, res.trap)
        trap = res.trap
    if trap is not None:
        if row is not None:
            with db.transaction(store.engine) as conn:
                events.append_logs(conn, row.id, logs)
        raise CanisterTrapError(f"install of {name!r} failed, nothing changed: {trap}", canister=name, method="init")

    now = execution.now_ns()
    heap_changed = live.changed_heap_pages()
    stable_dirty = live.dirty_stable_pages()
    state = {
        "module_hash": info.hash,
        "heap_pages": live.heap_pages,
        "stable_pages": live.stable_pages,
        "globals": json.dumps(encode_globals(live.get_globals())),
        "timer_ns": live.timer_ns,
        "certified_data": live.certified_data,
        "time_ns": now,
        "updated_at_ns": now,
        "status": "running",
    }
    with db.transaction(store.engine) as conn:
        canisters.store_module(conn, wasm, info.hash, info.custom_sections)
        if row is None:
            allocated = canisters.allocate_principal(conn)
            if allocated != principal:
                # Another process created a canister meanwhile: our instance saw the wrong id.
                raise StaleStateError("canister ids changed while installing; retry")
            created = conn.execute(schema.canisters.insert().values(
                name=name, principal=principal.to_text(),
                controllers=json.dumps([Principal(c).to_text() for c in controllers]),
                version=1, created_at_ns=now, **state))
            pk = created.inserted_primary_key
            assert pk is not None
            canister_id = int(pk[0])
            version = 1
            events.add_history(conn, canister_id, "create", None)
        else:
            canister_id = row.id
            c = schema.canisters.c
            upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version)
                               .values(version=row.version + 1, **state))
            if upd.rowcount != 1:
                raise StaleStateError(f"canister {name!r} was changed by another process; retry")
            version = int(row.version) + 1
            pages.delete_pages(conn, pages.HEAP, canister_id)
            pages.delete_pages(conn, pages.STABLE, canister_id)
            conn.execute(schema.logs.delete().where(schema.logs.c.canister_id == canister_id))
        pages.write_pages(conn, pages.HEAP, canister_id, live.heap_page_bytes(heap_changed))
        pages.write_pages(conn, pages.STABLE, canister_id, live.stable_page_bytes(stable_dirty))
        events.append_logs(conn, canister_id, logs)
        events.add_history(conn, canister_id, mode, info.hash, {"instructions": used})
    live.commit(heap_changed, stable_dirty)
    live.attach_stable_source(execution.stable_source(store, canister_id))
    live.version = version
    store.remember(canister_id, CachedCanister(live, version, info.hash))
    execution.run_pending(store)
    return InstallResult(name=name, principal=principal.to_text(), mode=mode, module_hash=info.hash,
                         created=row is None, instructions=used, heap_bytes=live.heap_pages * PAGE,
                         stable_bytes=live.stable_pages * PAGE)


# --------------------------------------------------------------------------- calls


def interface(store: Store, name: str) -> ServiceInterface | None:
    """The canister's Candid interface (from its module's custom sections), if it has one."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        if row.module_hash is None:
            return None
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
    return module_interface(parse_module(bytes(wasm)))


def module_interface(info: ModuleInfo) -> ServiceInterface | None:
    """A module's Candid interface: ``candid:service``, with the init arguments from
    ``candid:args`` where moc keeps them (actor classes), or None if it declares no interface."""
    from persist.candid import parse_service

    text = info.candid_service
    if text is None:
        return None
    args = info.section_text(("icp:public candid:args", "icp:private candid:args"))
    if args and args.strip() not in ("", "()"):
        head, sep, rest = text.rpartition("service :")
        if sep and not rest.lstrip().startswith("("):
            text = f"{head}service : {args.strip()} ->{rest}"
    return parse_service(text)


def _kind_of(live: LiveCanister, name: str, method: str) -> str:
    if method in live.info.updates:
        return "update"
    if method in live.info.queries:
        return "query"
    known = ", ".join(sorted(m for m in live.info.updates + live.info.queries if not m.startswith(("__", "@"))))
    raise MethodNotFoundError(f"canister {name!r} has no method {method!r} (it has: {known or 'none'})")


def method_kind(store: Store, name: str, method: str) -> str:
    """"update" or "query", as the canister's module exports ``method``."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    return _kind_of(execution.live_canister(store, row), name, method)


def _raise_for(name: str, method: str, response: tuple[str, bytes, int, str] | None, principal: str) -> bytes:
    if response is None:
        raise CanisterRejectError(REJECT_CANISTER_ERROR, f"Canister {principal} did not reply to the call")
    kind, data, code, text = response
    if kind == "reply":
        return data
    if code == REJECT_CANISTER_ERROR and text.startswith("Error from Canister"):
        raise CanisterTrapError(f"{name}.{method} trapped: {text.split(': ', 1)[1]}", canister=name, method=method)
    raise CanisterRejectError(code, text)


def call(store: Store, name: str, method: str, arg: bytes = EMPTY_ARGS, *,
         on_message: Callable[[int], None] | None = None) -> CallResult:
    """Call ``method`` as the store's identity: an update commits, a query discards its changes.

    Raises CanisterTrapError (the canister's trap message; nothing changed) or CanisterRejectError.
    Queued messages the call causes (callbacks, self-calls, other canisters) run before it returns;
    ``on_message`` is called after each of them (see ``execution.run_pending``).
    """
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        pending = execution.has_pending_work(conn)
    if pending:  # what an earlier command left behind runs first
        execution.run_pending(store, on_message=on_message)
        with db.read_transaction(store.engine) as conn:
            row = canister_row(conn, name)
    if row.module_hash is None:
        raise CanisterStateError(f"canister {name!r} is empty: install a module first (`graphcopy install`)")
    live = execution.live_canister(store, row)
    kind = _kind_of(live, name, method)
    if row.status != "running":
        raise CanisterStateError(f"canister {name!r} is {row.status}; run `graphcopy start {name}` first")
    if kind == "query":
        res = execution.run_query(store, row, method, arg, store.identity.raw)
        logs = [text for _, text in res.ctx.logs]
        if res.trap is not None:
            raise CanisterTrapError(f"{name}.{method} trapped: {res.trap}", canister=name, method=method)
        reply = _raise_for(name, method, res.ctx.response, row.principal)
        return CallResult(method=method, kind=kind, reply=reply, logs=logs, instructions=res.instructions)

    with db.read_transaction(store.engine) as conn:
        locks.check_unlocked(conn, row.name, store.lock_owner)
    refused = execution.inspect_ingress(store, row, method, arg, store.identity)
    if refused is not None:
        raise CanisterRejectError(REJECT_CANISTER_REJECT, refused)
    response, ingress_id, ctx, trap = execution.execute_ingress(store, row, method, arg, store.identity)
    logs = [text for _, text in ctx.logs]
    if trap is not None:
        raise CanisterTrapError(f"{name}.{method} trapped: {trap}", canister=name, method=method)
    if ingress_id is not None:
        # The method awaits calls: run the queue until its call context answers the ingress.
        def answered() -> bool:
            with db.read_transaction(store.engine) as c:
                st = c.execute(sa.select(schema.ingress.c.status).where(schema.ingress.c.id == ingress_id)).scalar()
            return st != "pending"

        with db.read_transaction(store.engine) as conn:
            seq_before = events.last_log_seq(conn, row.id)
        execution.run_pending(store, until=answered, on_message=on_message)
        with db.transaction(store.engine) as conn:
            ing = conn.execute(sa.select(schema.ingress).where(schema.ingress.c.id == ingress_id)).one()
            logs += list(conn.execute(sa.select(schema.logs.c.message).where(
                schema.logs.c.canister_id == row.id, schema.logs.c.seq > seq_before,
                schema.logs.c.kind == "print").order_by(schema.logs.c.seq)).scalars())
            if ing.status != "pending":
                conn.execute(schema.ingress.delete().where(schema.ingress.c.id == ingress_id))
        if ing.status == "pending":
            raise CanisterStateError(
                f"{name}.{method} has not been answered yet; its messages stay queued and run with the next command")
        response = (("reply", bytes(ing.reply or b""), 0, "") if ing.status == "replied"
                    else ("reject", b"", int(ing.reject_code), str(ing.reject_message)))
    # Whatever the call set going (callbacks of others, timers) runs on before we return.
    execution.run_pending(store, on_message=on_message)
    reply = _raise_for(name, method, response, row.principal)
    return CallResult(method=method, kind=kind, reply=reply, logs=logs, instructions=0)


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
    )


def status(store: Store, name: str) -> CanisterStatus:
    """Everything graphcopy knows about one canister, including its install history."""
    with db.read_transaction(store.engine) as conn:
        return _status_of(conn, store, canister_row(conn, name), with_history=True)


def list_canisters(store: Store) -> list[CanisterStatus]:
    """All canisters of the store, by creation order."""
    with db.read_transaction(store.engine) as conn:
        rows = conn.execute(sa.select(schema.canisters).order_by(schema.canisters.c.id)).all()
        return [_status_of(conn, store, r, with_history=False) for r in rows]


def logs(store: Store, name: str, *, tail: int | None = None) -> list[LogLine]:
    """The canister's log: debug prints of committed messages, and the traps of failed ones."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        q = sa.select(schema.logs).where(schema.logs.c.canister_id == row.id).order_by(schema.logs.c.seq.desc())
        if tail is not None:
            q = q.limit(tail)
        out = [LogLine(int(r.seq), int(r.time_ns), r.kind, r.message) for r in conn.execute(q)]
    out.reverse()
    return out


# --------------------------------------------------------------------------- lifecycle


def _controller_row(conn: sa.Connection, store: Store, name: str, *, mutating: bool = True) -> sa.Row[Any]:
    return canisters.controller_row(conn, name, store.identity, store.lock_owner, mutating=mutating)


def stop(store: Store, name: str) -> str:
    """Stop a canister: it takes no new calls; responses to its open calls are still delivered.
    Returns the new status ("stopped", or "stopping" while call contexts are open)."""
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        if row.status == "running":
            conn.execute(schema.canisters.update().where(schema.canisters.c.id == row.id).values(status="stopping"))
            execution.settle_stopping(conn, row.id)
    execution.run_pending(store)
    with db.read_transaction(store.engine) as conn:
        return str(canister_row(conn, name).status)


def start(store: Store, name: str) -> str:
    """Start a stopped (or stopping) canister again."""
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        conn.execute(schema.canisters.update().where(schema.canisters.c.id == row.id).values(status="running"))
    return "running"


def delete(store: Store, name: str) -> None:
    """Delete a stopped canister with all its state (pages, snapshots, logs, history, queued messages)."""
    with db.transaction(store.engine) as conn:
        row = _controller_row(conn, store, name)
        if row.status != "stopped":
            raise CanisterStateError(f"canister {name!r} is {row.status}; stop it first (`graphcopy stop {name}`)")
        for table in (schema.messages, schema.call_contexts, schema.ingress, schema.logs, schema.history):
            conn.execute(table.delete().where(table.c.canister_id == row.id))
        pages.delete_pages(conn, pages.HEAP, row.id)
        pages.delete_pages(conn, pages.STABLE, row.id)
        delete_all_snapshots(conn, row.id)  # and the page blobs only they used
        conn.execute(schema.canisters.delete().where(schema.canisters.c.id == row.id))
    execution.forget_live(store, row.id)


def run_pending(store: Store, *, max_messages: int | None = None) -> int:
    """Run queued messages and due timers (what a killed command left behind, for example)."""
    return execution.run_pending(store, max_messages=max_messages)
