"""Installing, upgrading and uninstalling code on a canister: the work of ``install_code`` and
``uninstall_code``, for whoever asks (a user through ``graphcopy install``/``upgrade``, or a
canister through the management canister).

Install runs the module's start function and ``canister_init(arg)`` within the install instruction
limit and commits everything at once; a trap or an invalid module changes nothing (a new canister
is not even created). ``reinstall`` replaces the module and wipes heap, stable memory and logs.

Upgrade: the old instance's ``canister_pre_upgrade`` (unless ``skip_pre_upgrade``), the new module's start
function and its ``canister_post_upgrade(arg)`` run as one transaction with one instruction budget
(the install limit, 300e9 on the IC): a trap or an exhausted budget anywhere leaves the old module,
heap and stable memory exactly as they were. ``wasm_memory_persistence = "keep"`` hands the old
heap to the new module before its start function runs (nothing is copied); ``"replace"`` gives it
a fresh heap. Stable memory is always kept. The checks and error texts are the IC's
(``determine_main_memory_handling`` in dfinity/ic): an EOP module needs the option, and ``keep``
needs an EOP new module.

These functions neither check who may do this nor drain the message queue: their callers do
(``persist.execution.install_code`` for users, ``persist.execution.management`` for canisters).
A trap raises :class:`CanisterTrapError` carrying the trap and the debug prints of the failed run,
and nothing is written; ``on_commit(conn)`` runs inside the committing transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.candid.wire import EMPTY_ARGS
from persist.errors import CanisterTrapError, UpgradeOptionError
from persist.execution.clock import message_time, now_ns
from persist.execution.commit import ctx_logs, finish_commit, write_state
from persist.execution.contexts import cycles_update, message_context
from persist.execution.instances import forget_live, heap_source, live_canister, stable_source, undo
from persist.execution.routing import deliver, settle_stopping
from persist.host.globals import encode_globals
from persist.host.live import LiveCanister
from persist.host.memory import PAGE
from persist.host.system_api.context import INIT, POST_UPGRADE, PRE_UPGRADE, REJECT_CANISTER_REJECT, MessageContext
from persist.principal import Principal
from persist.session import CachedCanister, Store
from persist.store import canisters, db, events, pages, schema
from persist.store.canisters import StaleStateError, controllers_of, store_module

__all__ = [
    "EMPTY_ARGS",
    "INVALID_KEEP",
    "MISSING_OPTION",
    "PERSISTENCE_OPTIONS",
    "InstallResult",
    "Requester",
    "UpgradeResult",
    "install",
    "uninstall",
    "upgrade",
]

MISSING_OPTION = ("Missing upgrade option: Enhanced orthogonal persistence requires the "
                  "`wasm_memory_persistence` upgrade option.")
INVALID_KEEP = ("Invalid upgrade option: The `wasm_memory_persistence: opt Keep` upgrade option requires that the "
                "new canister module supports enhanced orthogonal persistence.")
PERSISTENCE_OPTIONS = ("keep", "replace")

OnCommit = Callable[[sa.Connection], None]


@dataclass(frozen=True)
class Requester:
    """Who asks for a change: the principal the canister's hooks see as ``msg_caller``, and the
    origin the canister's history records (``{"user": text}`` or ``{"canister": text, "version": n}``)."""

    principal: Principal
    origin: dict[str, Any]

    @classmethod
    def user(cls, principal: Principal) -> Requester:
        return cls(principal, {"user": principal.to_text()})


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
    snapshot_id: int | None = None  # the snapshot a reinstall took first (``graphcopy snapshot load`` restores it)


@dataclass
class UpgradeResult:
    name: str
    old_module_hash: str
    new_module_hash: str
    wasm_memory_persistence: str | None
    skip_pre_upgrade: bool
    instructions: int
    heap_bytes: int
    stable_bytes: int
    seconds: float


def _trapped(what: str, name: str, method: str, trap: str, logs: list[tuple[int, str, str]]) -> CanisterTrapError:
    return CanisterTrapError(f"{what}: {trap}", canister=name, method=method, trap=trap, logs=logs)


def install(store: Store, row: sa.Row[Any] | None, wasm: bytes, *, name: str, arg: bytes, mode: str,
            requester: Requester, on_commit: OnCommit | None = None) -> InstallResult:
    """Install ``wasm`` (modes install and reinstall) on the canister ``row``, or on a new canister
    ``name`` controlled by the requester when ``row`` is None. Raises CanisterTrapError (with the
    trap and the run's log lines; nothing written) if the start function or ``canister_init`` traps."""
    info, module = store.runtime.load_module(wasm)
    if row is not None:
        principal = Principal.from_text(row.principal)
        controllers = controllers_of(row)
    else:
        with db.read_transaction(store.engine) as conn:
            principal = canisters.next_principal(conn)
        controllers = [requester.principal.raw]
    live = LiveCanister(
        store.runtime, info, module, principal=principal.raw, controllers=controllers, status="running",
        limits=store.limits, heap_pages=0, heap_data=[], stable_pages=0, stable_source=lambda _: [],
        stable_stored=[], globals_=None, timer_ns=0, run_start=True)
    if row is not None:
        live.status = row.status
    budget = store.limits.install_instructions
    start = live.run_start(budget)
    used = start.instructions
    logs = ctx_logs(start.ctx, start.trap)
    trap = start.trap
    if trap is None and "canister_init" in live.info.system:
        if row is not None:
            ctx = message_context(row, INIT, caller=requester.principal.raw, arg=arg, time_ns=now_ns())
        else:
            ctx = MessageContext(kind=INIT, caller=requester.principal.raw, arg=arg, time_ns=now_ns(),
                                 cycles_balance=schema.DEFAULT_CYCLES)
        res = live.run(ctx, budget - used, "canister_init")
        used += res.instructions
        logs += ctx_logs(ctx, res.trap)
        trap = res.trap
        burned = ctx.cycles_burned
    else:
        burned = 0
    if trap is not None:
        raise _trapped(f"install of {name!r} failed, nothing changed", name, "init", trap, logs)

    now = now_ns()
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
    }
    with db.transaction(store.engine) as conn:
        store_module(conn, wasm, info.hash, info.custom_sections)
        if row is None:
            allocated = canisters.allocate_principal(conn)
            if allocated != principal:
                # Another process created a canister meanwhile: our instance saw the wrong id.
                raise StaleStateError("canister ids changed while installing; retry")
            created = conn.execute(schema.canisters.insert().values(
                name=name, principal=principal.to_text(), status="running",
                controllers=json.dumps([Principal(c).to_text() for c in controllers]),
                version=1, created_at_ns=now, **state, **cycles_update(-burned)))
            pk = created.inserted_primary_key
            assert pk is not None
            canister_id = int(pk[0])
            version = 1
            events.add_history(conn, canister_id, "create", None,
                               {"controllers": [Principal(c).to_text() for c in controllers]},
                               origin=requester.origin, canister_version=0)
        else:
            canister_id = row.id
            c = schema.canisters.c
            upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version)
                               .values(version=row.version + 1, **state, **cycles_update(-burned)))
            if upd.rowcount != 1:
                raise StaleStateError(f"canister {name!r} was changed by another process; retry")
            version = int(row.version) + 1
            pages.delete_pages(conn, pages.HEAP, canister_id)
            pages.delete_pages(conn, pages.STABLE, canister_id)
            conn.execute(schema.logs.delete().where(schema.logs.c.canister_id == canister_id))
        pages.write_pages(conn, pages.HEAP, canister_id, live.heap_page_bytes(heap_changed))
        pages.write_pages(conn, pages.STABLE, canister_id, live.stable_page_bytes(stable_dirty))
        events.append_logs(conn, canister_id, logs, capacity=store.limits.log_memory_limit)
        events.add_history(conn, canister_id, mode, info.hash, {"instructions": used},
                           origin=requester.origin, canister_version=version)
        if on_commit is not None:
            on_commit(conn)
    live.commit(heap_changed, stable_dirty)
    live.attach_stable_source(stable_source(store, canister_id))
    live.version = version
    live.attach_heap_source(heap_source(store, canister_id, live))
    store.remember(canister_id, CachedCanister(live, version, info.hash))
    return InstallResult(name=name, principal=principal.to_text(), mode=mode, module_hash=info.hash,
                         created=row is None, instructions=used, heap_bytes=live.heap_pages * PAGE,
                         stable_bytes=live.stable_pages * PAGE)


def upgrade(store: Store, row: sa.Row[Any], wasm: bytes, *, arg: bytes, skip_pre_upgrade: bool,
            wasm_memory_persistence: str | None, requester: Requester,
            history_detail: dict[str, Any] | None = None, on_commit: OnCommit | None = None) -> UpgradeResult:
    """Upgrade the (non-empty) canister ``row`` to ``wasm`` (``install_code`` mode upgrade).

    Raises UpgradeOptionError for options the modules do not allow (the replica's texts) and
    CanisterTrapError if any stage traps or runs out of instructions (everything is rolled back,
    nothing written). ``history_detail`` is added to the upgrade's history entry."""
    t0 = time.perf_counter()
    name = row.name
    if wasm_memory_persistence not in (None, *PERSISTENCE_OPTIONS):
        raise UpgradeOptionError(f"unknown wasm_memory_persistence {wasm_memory_persistence!r}: use keep or replace")
    info, module = store.runtime.load_module(wasm)
    old = live_canister(store, row)
    if old.info.is_eop and wasm_memory_persistence is None:
        raise UpgradeOptionError(MISSING_OPTION)
    keep = wasm_memory_persistence == "keep"
    if keep and not info.is_eop:
        raise UpgradeOptionError(INVALID_KEEP)

    budget = store.limits.install_instructions
    old.store.set_fuel(budget)
    now = message_time(row)
    logs: list[tuple[int, str, str]] = []
    trap: str | None = None
    new: LiveCanister | None = None
    burned = 0
    if not skip_pre_upgrade and "canister_pre_upgrade" in old.info.system:
        ctx = message_context(row, PRE_UPGRADE, caller=requester.principal.raw, time_ns=now)
        trap = old.run(ctx, None, "canister_pre_upgrade").trap
        logs += ctx_logs(ctx, trap)
        burned += ctx.cycles_burned
    if trap is None:
        try:
            new = LiveCanister(
                store.runtime, info, module, principal=old.principal, controllers=old.controllers,
                status=row.status, limits=old.limits, heap_pages=0, heap_data=[],
                stable_pages=old.stable_pages, stable_source=stable_source(store, row.id),
                stable_stored=None, globals_=None, timer_ns=0, run_start=True, predecessor=old, keep_heap=keep)
        except BaseException:
            undo(store, row.id, old)
            raise
        # Until it commits, the new instance has the old one's version, so a kept heap undone
        # for the old instance reads the same committed pages.
        new.attach_heap_source(heap_source(store, row.id, new))
        start = new.run_start(None)
        trap = start.trap
        logs += ctx_logs(start.ctx, trap)
    if trap is None and new is not None and "canister_post_upgrade" in info.system:
        ctx = message_context(row, POST_UPGRADE, caller=requester.principal.raw, arg=arg, time_ns=now)
        trap = new.run(ctx, None, "canister_post_upgrade").trap
        logs += ctx_logs(ctx, trap)
        burned += ctx.cycles_burned
    used = budget - old.store.get_fuel()
    if trap is not None or new is None:
        _undo_upgrade(store, row, old)
        raise _trapped(f"upgrade of {name!r} failed and was rolled back", name, "upgrade", trap or "failed", logs)

    try:
        with db.transaction(store.engine) as conn:
            store_module(conn, wasm, info.hash, info.custom_sections)
            if not keep:
                pages.delete_pages(conn, pages.HEAP, row.id)  # the new heap replaces the old one entirely
            extra: dict[str, Any] = {"module_hash": info.hash, **cycles_update(-burned)}
            commit = write_state(conn, row, new, time_ns=now, extra=extra)
            events.append_logs(conn, row.id, logs, capacity=store.limits.log_memory_limit)
            events.add_history(conn, row.id, "upgrade", info.hash, {
                "from": row.module_hash, "wasm_memory_persistence": wasm_memory_persistence,
                "skip_pre_upgrade": skip_pre_upgrade, "instructions": used, **(history_detail or {})},
                origin=requester.origin, canister_version=int(row.version) + 1)
            if on_commit is not None:
                on_commit(conn)
    except BaseException:
        _undo_upgrade(store, row, old)
        raise
    finish_commit(store, row, new, commit, module_hash=info.hash)
    return UpgradeResult(name=name, old_module_hash=row.module_hash, new_module_hash=info.hash,
                         wasm_memory_persistence=wasm_memory_persistence, skip_pre_upgrade=skip_pre_upgrade,
                         instructions=used, heap_bytes=new.heap_pages * PAGE, stable_bytes=new.stable_pages * PAGE,
                         seconds=time.perf_counter() - t0)


def _undo_upgrade(store: Store, row: sa.Row[Any], old: LiveCanister) -> None:
    """Put the old instance back after a failed upgrade (a kept heap reads its pages for it again)."""
    old.attach_heap_source(heap_source(store, row.id, old))
    undo(store, row.id, old)


def uninstall(store: Store, conn: sa.Connection, row: sa.Row[Any], requester: Requester) -> int:
    """``uninstall_code`` in the caller's transaction: the canister becomes empty (no module, heap,
    stable memory, globals, timer, certified data, logs); it keeps its controllers, settings, cycles,
    history, status, snapshots and chunk store. Its open call contexts end: their callers get the
    replica's "Canister has been uninstalled." and responses to its own calls only return refunds.
    Returns the new version (the cached instance is dropped)."""
    c = schema.canisters.c
    upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version).values(
        module_hash=None, heap_pages=0, stable_pages=0, globals=None, timer_ns=0, certified_data=None,
        version=row.version + 1, updated_at_ns=now_ns()))
    if upd.rowcount != 1:
        raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
    pages.delete_pages(conn, pages.HEAP, row.id)
    pages.delete_pages(conn, pages.STABLE, row.id)
    conn.execute(schema.logs.delete().where(schema.logs.c.canister_id == row.id))
    _reject_open_contexts(conn, row.id)
    events.add_history(conn, row.id, "uninstall", None, None, origin=requester.origin,
                       canister_version=int(row.version) + 1)
    forget_live(store, row.id)
    return int(row.version) + 1


def _reject_open_contexts(conn: sa.Connection, canister_id: int) -> None:
    cc = schema.call_contexts
    for cctx in conn.execute(sa.select(cc).where(cc.c.canister_id == canister_id)).all():
        if not cctx.replied:
            origin = json.loads(cctx.origin)
            if "system" not in origin:
                deliver(conn, origin, ("reject", b"", REJECT_CANISTER_REJECT, "Canister has been uninstalled."))
    conn.execute(cc.delete().where(cc.c.canister_id == canister_id))
    settle_stopping(conn, canister_id)  # a stopping canister has nothing left to wait for
