"""``install_code`` in upgrade mode, with the IC's options, checks and atomicity.

The old instance's ``canister_pre_upgrade`` (unless ``skip_pre_upgrade``), the new module's start
function and its ``canister_post_upgrade(arg)`` run as one transaction with one instruction budget
(the install limit, 300e9 on the IC): a trap or an exhausted budget anywhere leaves the old module,
heap and stable memory exactly as they were. ``wasm_memory_persistence = "keep"`` hands the old
heap to the new module before its start function runs (nothing is copied); ``"replace"`` gives it
a fresh heap. Stable memory is always kept. The checks and error texts are the IC's
(``determine_main_memory_handling`` in dfinity/ic): an EOP module needs the option, and ``keep``
needs an EOP new module.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from persist import execution
from persist.api import EMPTY_ARGS
from persist.errors import CanisterStateError, CanisterTrapError, UpgradeOptionError
from persist.host.live import LiveCanister
from persist.host.memory import PAGE
from persist.host.system_api.context import POST_UPGRADE, PRE_UPGRADE, MessageContext
from persist.session import Store
from persist.store import db, events, pages
from persist.store.canisters import controller_row, store_module

MISSING_OPTION = ("Missing upgrade option: Enhanced orthogonal persistence requires the "
                  "`wasm_memory_persistence` upgrade option.")
INVALID_KEEP = ("Invalid upgrade option: The `wasm_memory_persistence: opt Keep` upgrade option requires that the "
                "new canister module supports enhanced orthogonal persistence.")
PERSISTENCE_OPTIONS = ("keep", "replace")


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
    execution.run_pending(store)
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.identity, store.lock_owner)
    if row.module_hash is None:
        raise CanisterStateError(f"canister {name!r} is empty: use `graphcopy install` for its first module")
    old = execution.live_canister(store, row)
    if old.info.is_eop and wasm_memory_persistence is None:
        raise UpgradeOptionError(MISSING_OPTION)
    keep = wasm_memory_persistence == "keep"
    if keep and not info.is_eop:
        raise UpgradeOptionError(INVALID_KEEP)

    budget = store.limits.install_instructions
    old.store.set_fuel(budget)
    now = execution.message_time(row)
    logs: list[tuple[int, str, str]] = []
    trap: str | None = None
    new: LiveCanister | None = None
    if not skip_pre_upgrade and "canister_pre_upgrade" in old.info.system:
        ctx = MessageContext(kind=PRE_UPGRADE, caller=store.identity.raw, time_ns=now)
        trap = old.run(ctx, None, "canister_pre_upgrade").trap
        logs += execution.ctx_logs(ctx, trap)
    if trap is None:
        try:
            new = LiveCanister(
                store.runtime, info, module, principal=old.principal, controllers=old.controllers,
                status=row.status, limits=store.limits, heap_pages=0, heap_data=[],
                stable_pages=old.stable_pages, stable_source=execution.stable_source(store, row.id),
                stable_stored=None, globals_=None, timer_ns=0, run_start=True, predecessor=old, keep_heap=keep)
        except BaseException:
            execution.undo(store, row.id, old)
            raise
        start = new.run_start(None)
        trap = start.trap
        logs += execution.ctx_logs(start.ctx, trap)
    if trap is None and new is not None and "canister_post_upgrade" in info.system:
        ctx = MessageContext(kind=POST_UPGRADE, caller=store.identity.raw, arg=arg, time_ns=now)
        trap = new.run(ctx, None, "canister_post_upgrade").trap
        logs += execution.ctx_logs(ctx, trap)
    used = budget - old.store.get_fuel()
    if trap is not None or new is None:
        execution.undo(store, row.id, old)
        with db.transaction(store.engine) as conn:
            events.append_logs(conn, row.id, logs)
        raise CanisterTrapError(f"upgrade of {name!r} failed and was rolled back: {trap}", canister=name,
                                method="upgrade")

    try:
        with db.transaction(store.engine) as conn:
            store_module(conn, wasm, info.hash, info.custom_sections)
            if not keep:
                pages.delete_pages(conn, pages.HEAP, row.id)  # the new heap replaces the old one entirely
            commit = execution.write_state(conn, row, new, time_ns=now, extra={"module_hash": info.hash})
            events.append_logs(conn, row.id, logs)
            events.add_history(conn, row.id, "upgrade", info.hash, {
                "from": row.module_hash, "wasm_memory_persistence": wasm_memory_persistence,
                "skip_pre_upgrade": skip_pre_upgrade, "instructions": used, **(history_detail or {})})
    except BaseException:
        execution.undo(store, row.id, old)
        raise
    execution.finish_commit(store, row, new, commit, module_hash=info.hash)
    return UpgradeResult(name=name, old_module_hash=row.module_hash, new_module_hash=info.hash,
                         wasm_memory_persistence=wasm_memory_persistence, skip_pre_upgrade=skip_pre_upgrade,
                         instructions=used, heap_bytes=new.heap_pages * PAGE, stable_bytes=new.stable_pages * PAGE,
                         seconds=time.perf_counter() - t0)
