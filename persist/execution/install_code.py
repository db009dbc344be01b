"""``install_code``: installing a module (modes install and reinstall) and upgrading one, with the
IC's options, checks and atomicity.

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
needs an EOP new module."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.errors import (
    CanisterExistsError,
    CanisterStateError,
    CanisterTrapError,
    InvalidArgumentError,
    NotAuthorizedError,
    UpgradeOptionError,
)
from persist.execution.clock import message_time, now_ns
from persist.execution.commit import ctx_logs, finish_commit, write_state
from persist.execution.instances import live_canister, stable_source, undo
from persist.execution.scheduler import run_pending
from persist.host.globals import encode_globals
from persist.host.live import LiveCanister
from persist.host.memory import PAGE
from persist.host.system_api.context import INIT, POST_UPGRADE, PRE_UPGRADE, MessageContext
from persist.principal import Principal
from persist.session import CachedCanister, Store
from persist.store import canisters, db, events, locks, pages, schema
from persist.store.canisters import StaleStateError, controller_row, controllers_of, store_module

MISSING_OPTION = ("Missing upgrade option: Enhanced orthogonal persistence requires the "
                  "`wasm_memory_persistence` upgrade option.")
INVALID_KEEP = ("Invalid upgrade option: The `wasm_memory_persistence: opt Keep` upgrade option requires that the "
                "new canister module supports enhanced orthogonal persistence.")
PERSISTENCE_OPTIONS = ("keep", "replace")
INSTALL_MODES = ("install", "reinstall")
#: The empty Candid argument list, ``()``.
EMPTY_ARGS = b"DIDL\x00\x00"


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


def install_module(store: Store, name: str, wasm: bytes, *, arg: bytes = EMPTY_ARGS,
                   mode: str = "install") -> InstallResult:
    """Install ``wasm`` on canister ``name`` (created if new): run its start function and
    ``canister_init(arg)`` within the install instruction limit, and commit everything at once.

    ``mode="reinstall"`` replaces the module and wipes heap, stable memory and logs. A trap or an
    invalid module changes nothing (a new canister is not even created).
    """
    if mode not in INSTALL_MODES:
        raise InvalidArgumentError(
            f"unknown install mode {mode!r}: use install or reinstall (upgrades: graphcopy upgrade)")
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
    logs = ctx_logs(start.ctx, start.trap)
    trap = start.trap
    if trap is None and "canister_init" in live.info.system:
        ctx = MessageContext(kind=INIT, caller=store.identity.raw, arg=arg, time_ns=now_ns())
        res = live.run(ctx, budget - used, "canister_init")
        used += res.instructions
        logs += ctx_logs(ctx, res.trap)
        trap = res.trap
    if trap is not None:
        if row is not None:
            with db.transaction(store.engine) as conn:
                events.append_logs(conn, row.id, logs)
        raise CanisterTrapError(f"install of {name!r} failed, nothing changed: {trap}", canister=name, method="init")

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
    live.attach_stable_source(stable_source(store, canister_id))
    live.version = version
    store.remember(canister_id, CachedCanister(live, version, info.hash))
    run_pending(store)
    return InstallResult(name=name, principal=principal.to_text(), mode=mode, module_hash=info.hash,
                         created=row is None, instructions=used, heap_bytes=live.heap_pages * PAGE,
                         stable_bytes=live.stable_pages * PAGE)


def upgrade_code(
    store: Store,
    name: str,
    wasm: bytes,
    *,
    arg: bytes = EMPTY_ARGS,
    skip_pre_upgrade: bool = False,
    wasm_memory_persistence: str | None = None,
    history_detail: dict[str, Any] | None = None,
) -> UpgradeResult:
    """Upgrade canister ``name`` to ``wasm`` (``install_code`` mode upgrade). Only controllers may.

    Raises UpgradeOptionError for options the modules do not allow, CanisterTrapError if any stage
    traps or runs out of instructions (everything is rolled back), CanisterStateError for an empty
    canister. Queued messages run first. ``history_detail`` is added to the upgrade's history entry.
    """
    t0 = time.perf_counter()
    if wasm_memory_persistence not in (None, *PERSISTENCE_OPTIONS):
        raise UpgradeOptionError(f"unknown wasm_memory_persistence {wasm_memory_persistence!r}: use keep or replace")
    info, module = store.runtime.load_module(wasm)
    run_pending(store)
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner)
    if row.module_hash is None:
        raise CanisterStateError(f"canister {name!r} is empty: use `graphcopy install` for its first module")
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
    if not skip_pre_upgrade and "canister_pre_upgrade" in old.info.system:
        ctx = MessageContext(kind=PRE_UPGRADE, caller=store.identity.raw, time_ns=now)
        trap = old.run(ctx, None, "canister_pre_upgrade").trap
        logs += ctx_logs(ctx, trap)
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
        start = new.run_start(None)
        trap = start.trap
        logs += ctx_logs(start.ctx, trap)
    if trap is None and new is not None and "canister_post_upgrade" in info.system:
        ctx = MessageContext(kind=POST_UPGRADE, caller=store.identity.raw, arg=arg, time_ns=now)
        trap = new.run(ctx, None, "canister_post_upgrade").trap
        logs += ctx_logs(ctx, trap)
    used = budget - old.store.get_fuel()
    if trap is not None or new is None:
        undo(store, row.id, old)
        with db.transaction(store.engine) as conn:
            events.append_logs(conn, row.id, logs)
        raise CanisterTrapError(f"upgrade of {name!r} failed and was rolled back: {trap}", canister=name,
                                method="upgrade")

    try:
        with db.transaction(store.engine) as conn:
            store_module(conn, wasm, info.hash, info.custom_sections)
            if not keep:
                pages.delete_pages(conn, pages.HEAP, row.id)  # the new heap replaces the old one entirely
            commit = write_state(conn, row, new, time_ns=now, extra={"module_hash": info.hash})
            events.append_logs(conn, row.id, logs)
            events.add_history(conn, row.id, "upgrade", info.hash, {
                "from": row.module_hash, "wasm_memory_persistence": wasm_memory_persistence,
                "skip_pre_upgrade": skip_pre_upgrade, "instructions": used, **(history_detail or {})})
    except BaseException:
        undo(store, row.id, old)
        raise
    finish_commit(store, row, new, commit, module_hash=info.hash)
    return UpgradeResult(name=name, old_module_hash=row.module_hash, new_module_hash=info.hash,
                         wasm_memory_persistence=wasm_memory_persistence, skip_pre_upgrade=skip_pre_upgrade,
                         instructions=used, heap_bytes=new.heap_pages * PAGE, stable_bytes=new.stable_pages * PAGE,
                         seconds=time.perf_counter() - t0)
