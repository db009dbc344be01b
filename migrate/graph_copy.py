"""Drive Motoko's graph-copy migration from outside: stabilize, upgrade, destabilize; resumable.

A Motoko EOP canister copies its whole object graph into stable memory when a controller calls
``__motoko_stabilize_before_upgrade``, one bounded *increment* per self-call; an upgrade with
``wasm_memory_persistence = replace`` finishes the copy (pre_upgrade), starts the new module on a
fresh heap and runs a first destabilization increment (post_upgrade); the rest is driven through
``__motoko_destabilize_after_upgrade``. From the first increment until the last, the canister
refuses every other message ("Messages are blocked during stabilization"), and there is no way
back: the only way forward is an upgrade (possibly to the same module).

graphcopy makes that safe to interrupt. Every increment is one committed message whose commit
also updates the migration record (``migrate.record``); the queue of self-calls is durable; both
endpoints are idempotent; the upgrade step is one transaction. So a process killed at any moment
leaves a state from which calling the same function again (``run`` for the whole migration)
finishes it, and nothing is done twice. The driver moves the record's phase between the steps and
reports progress through ``on_progress(record)`` after every message of the migration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from migrate import record as records
from migrate.record import Record
from persist import api
from persist.errors import (
    CanisterRejectError,
    CanisterStateError,
    CanisterTrapError,
    GraphcopyError,
    NotAuthorizedError,
    UpgradeOptionError,
)
from persist.execution.install_code import upgrade_code
from persist.host.memory import PAGE
from persist.host.module import ModuleInfo
from persist.session import Store
from persist.store import canisters, db, locks, schema
from persist.store import snapshots as snapshot_sql
from persist.store.canisters import canister_row, controllers_of

STABILIZE_METHOD = "__motoko_stabilize_before_upgrade"
RUNTIME_INFO_METHOD = "__motoko_runtime_information"
DESTABILIZE_METHOD = "__motoko_destabilize_after_upgrade"
BLOCKED_TRAP = "Messages are blocked during stabilization"
NOTHING_TO_DESTABILIZE = "No destabilization needed"

ProgressFn = Callable[[Record], None]


class MigrationStateError(CanisterStateError):
    """The canister's migration is not in a phase where this step can run (exit code 6)."""


def supports_graph_copy(info: ModuleInfo) -> bool:
    """Whether a module exports Motoko's graph-copy endpoints (moc with enhanced orthogonal persistence)."""
    return STABILIZE_METHOD in info.updates and DESTABILIZE_METHOD in info.updates


def _checked_module(store: Store, name: str) -> tuple[sa.Row[Any], ModuleInfo]:
    """The canister's row and module, after checking the caller is a controller and the module
    speaks the graph-copy protocol."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        caller = store.controller_identity()
        if caller.raw not in controllers_of(row):
            raise NotAuthorizedError(
                f"only a controller of {name!r} may drive its migration (caller {caller.to_text()})")
        if row.module_hash is None:
            raise CanisterStateError(f"canister {name!r} is empty: install a module first (`graphcopy install`)")
        if row.status != "running":
            # The graph-copy endpoints are update calls: a stopped canister cannot take them.
            raise CanisterStateError(f"canister {name!r} is {row.status}; run `graphcopy start {name}` first")
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
    info, _ = store.runtime.load_module(bytes(wasm))
    if not supports_graph_copy(info):
        raise CanisterStateError(
            f"canister {name!r} runs a module without Motoko's graph-copy endpoints ({STABILIZE_METHOD}); "
            "graph copy needs a Motoko canister with enhanced orthogonal persistence")
    return row, info


def stored_module(store: Store, module_hash: str) -> bytes:
    """A module kept in the store's ``modules`` table (the target of a migration, for resuming)."""
    with db.read_transaction(store.engine) as conn:
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == module_hash)).scalar()
    if wasm is None:
        raise GraphcopyError(f"module {module_hash[:16]}… is not in the store; give the WASM file again")
    return bytes(wasm)


def _drive(store: Store, name: str, canister_id: int, method: str, phase: str,
           on_progress: ProgressFn | None) -> None:
    """Call a graph-copy endpoint as the store's identity and run the queue until it answers,
    reporting the record after every message on this canister. A trap or reject marks the
    migration failed (resumable); other errors (a locked database, a kill) leave it as it is."""

    def on_message(cid: int) -> None:
        if on_progress is not None and cid == canister_id:
            rec = records.read(store, name)
            if rec is not None:
                on_progress(rec)

    try:
        api.call(store, name, method, on_message=on_message)
    except (CanisterTrapError, CanisterRejectError) as exc:
        if method == DESTABILIZE_METHOD and NOTHING_TO_DESTABILIZE in str(exc):
            return  # the upgrade's own destabilization step finished the job
        records.fail(store, name, phase, str(exc))
        raise


# The stable image against the heap Motoko reports: the image holds only what the stable variables
# reach, without the collector's forwarding words, while the heap also holds garbage and transient
# data. Measured on the examples: 0.23 (the ledger, freshly bulk-loaded) to 0.25 (the graph test
# canister); a heap that has been collected holds less garbage. Half the heap is the starting
# guess, and the progress display raises it as the copy proceeds (``record.phase_progress``).
IMAGE_PER_HEAP = 0.5


def estimate_image_bytes(store: Store, name: str) -> int:
    """How large the stable image of the canister's graph copy will be, before it starts: a share
    (:data:`IMAGE_PER_HEAP`) of the heap size Motoko's ``__motoko_runtime_information`` (a
    controller-only query) reports, or of the committed heap for a canister that does not answer."""
    from persist.candid import decode_args, idl_hash

    try:
        reply = api.call(store, name, RUNTIME_INFO_METHOD).reply
        (info,) = decode_args(reply, None)[:1]
        heap = int(info.get(idl_hash("heapSize")) or 0)
    except (GraphcopyError, ValueError, TypeError, AttributeError):
        heap = 0  # not a Motoko runtime that answers: take the committed heap's size
    if heap <= 0:
        with db.read_transaction(store.engine) as conn:
            heap = int(canister_row(conn, name).heap_pages) * PAGE
    return int(heap * IMAGE_PER_HEAP)


def _apply_scale(store: Store, name: str, rec: Record, scale: float | None) -> Record:
    """A resumed migration keeps the scale it started with, unless the driver is given another."""
    if scale is None or rec.get("performance_counter_scale") == scale:
        return rec
    return records.move(store, name, str(rec.get("phase")), performance_counter_scale=scale)


def _report(store: Store, name: str, on_progress: ProgressFn | None) -> Record | None:
    rec = records.read(store, name)
    if on_progress is not None and rec is not None:
        on_progress(rec)
    return rec


# --------------------------------------------------------------------------- the three steps


def _stabilize_step(store: Store, name: str, canister_id: int, on_progress: ProgressFn | None) -> Record:
    _report(store, name, on_progress)
    _drive(store, name, canister_id, STABILIZE_METHOD, "stabilizing", on_progress)
    rec = records.move(store, name, "stabilized")
    _report(store, name, on_progress)
    return rec


def _upgrade_step(store: Store, name: str, wasm: bytes, arg: bytes, on_progress: ProgressFn | None) -> Record:
    rec = records.read(store, name) or {}
    target = rec.get("target_module_hash")
    after = rec.get("upgrade_after_history_id")
    if (records.resume_phase(rec) == "upgrading" and after is not None
            and records.upgraded_since(store, name, int(after), target)):
        # The upgrade committed just before the previous driver died: do not run it twice.
        return records.move(store, name, "upgraded", event="recovered")
    records.move(store, name, "upgrading", upgrade_after_history_id=records.last_history_id(store, name))
    _report(store, name, on_progress)
    try:
        res = upgrade_code(store, name, wasm, arg=arg, wasm_memory_persistence="replace")
    except (CanisterTrapError, UpgradeOptionError) as exc:
        records.fail(store, name, "upgrading", str(exc))
        raise
    rec = records.move(store, name, "upgraded", upgrade_instructions=res.instructions,
                       upgrade_seconds=round(res.seconds, 3), heap_bytes_after_upgrade=res.heap_bytes)
    _report(store, name, on_progress)
    return rec


def _destabilize_step(store: Store, name: str, canister_id: int, on_progress: ProgressFn | None) -> Record:
    records.move(store, name, "destabilizing")
    _report(store, name, on_progress)
    _drive(store, name, canister_id, DESTABILIZE_METHOD, "destabilizing", on_progress)
    rec = records.move(store, name, "done")
    _report(store, name, on_progress)
    return rec


# --------------------------------------------------------------------------- public entry points


def stabilize(store: Store, name: str, on_progress: ProgressFn | None = None, *,
              performance_counter_scale: float | None = None, snapshot_id: int | None = None) -> Record:
    """Copy the canister's object graph into stable memory (``__motoko_stabilize_before_upgrade``),
    driving every increment to the end; returns the migration record (phase ``stabilized``).

    Starts a migration record (target module unknown until the upgrade), or resumes the one a
    killed process left in ``stabilizing``; a canister already stabilized is left as it is. From
    here on the canister refuses other messages until it is upgraded (``graphcopy upgrade NAME WASM``)
    and destabilized. Only controllers may (NotAuthorizedError). Raises MigrationStateError if the
    migration is past this step, CanisterTrapError/CanisterRejectError if an increment fails (the
    record is marked failed; calling again retries). ``performance_counter_scale`` (default: the
    store's for a new migration, the recorded one for a resumed one) is what its increments run with.
    ``snapshot_id`` (a snapshot taken before, for the upgrade) is marked committed when the migration begins.
    """
    row, _ = _checked_module(store, name)
    with db.read_transaction(store.engine) as conn:
        locks.check_unlocked(conn, row.name, store.lock_owner)
    rec = records.read(store, name)
    if records.unfinished(rec):
        assert rec is not None
        phase = records.resume_phase(rec)
        if phase in ("stabilized", "upgrading"):
            return rec
        if phase in ("upgraded", "destabilizing"):
            raise MigrationStateError(
                f"canister {name!r} is already upgraded ({phase}); run `graphcopy destabilize-after-upgrade {name}`")
        rec = _apply_scale(store, name, rec, performance_counter_scale)
        records.move(store, name, "stabilizing", event="resumed")
    else:
        estimate = estimate_image_bytes(store, name)
        records.begin(store, name, target_module_hash=None, arg=None, estimated_image_bytes=estimate,
                      performance_counter_scale=performance_counter_scale or store.limits.performance_counter_scale,
                      snapshot_id=snapshot_id)
    return _stabilize_step(store, name, row.id, on_progress)


def destabilize(store: Store, name: str, on_progress: ProgressFn | None = None, *,
                performance_counter_scale: float | None = None) -> Record:
    """Rebuild the heap from stable memory after a graph-copy upgrade
    (``__motoko_destabilize_after_upgrade``), driving every increment to the end; returns the
    migration record (phase ``done``).

    Needs a migration that has been upgraded (MigrationStateError otherwise); resumes one a killed
    process left in ``destabilizing``. Only controllers may (NotAuthorizedError). It runs with the
    migration's recorded scale unless ``performance_counter_scale`` is given.
    """
    row, _ = _checked_module(store, name)
    with db.read_transaction(store.engine) as conn:
        locks.check_unlocked(conn, row.name, store.lock_owner)
    rec = records.read(store, name)
    if not records.unfinished(rec):
        raise MigrationStateError(f"canister {name!r} has no graph-copy migration in progress: nothing to destabilize")
    assert rec is not None
    phase = records.resume_phase(rec)
    if phase in records.BEFORE_UPGRADE:
        raise MigrationStateError(
            f"canister {name!r} is not upgraded yet ({phase}); run `graphcopy upgrade {name} WASM --mode graph-copy`")
    rec = _apply_scale(store, name, rec, performance_counter_scale)
    if rec.get("phase") == "destabilizing" or rec.get("phase") == "failed":
        records.move(store, name, "destabilizing", event="resumed")
    return _destabilize_step(store, name, row.id, on_progress)


def run(store: Store, name: str, wasm: bytes | None, *, arg: bytes | None = None,
        on_progress: ProgressFn | None = None, performance_counter_scale: float | None = None,
        snapshot_id: int | None = None) -> Record:
    """The whole graph-copy upgrade to ``wasm``: stabilize, upgrade (replace), destabilize.

    Starts a migration (the target module is kept in the store first, so a resume needs no file),
    or continues the unfinished one from its phase: ``wasm=None`` means the recorded target, and a
    different ``wasm`` is accepted only before the upgrade step has committed. ``arg`` (Candid
    bytes for post_upgrade) defaults to the recorded one, or to ``()``. Returns the final record.
    The increments run with ``performance_counter_scale`` if given, else with the recorded scale (a
    resumed migration) or the store's (a new one). ``snapshot_id``, the snapshot taken before, is
    marked committed in the transaction that begins the migration (or now, for one under way).
    """
    row, _ = _checked_module(store, name)
    with db.read_transaction(store.engine) as conn:
        locks.check_unlocked(conn, row.name, store.lock_owner)
    rec = records.read(store, name)
    info: ModuleInfo | None = None
    if wasm is not None:
        info, _ = store.runtime.load_module(wasm)
        if not supports_graph_copy(info):
            raise CanisterStateError(
                f"the new module has no graph-copy endpoints ({DESTABILIZE_METHOD}): it cannot rebuild the heap")
        with db.transaction(store.engine) as conn:
            canisters.store_module(conn, wasm, info.hash, info.custom_sections)
    if records.unfinished(rec):
        assert rec is not None
        phase = records.resume_phase(rec)
        target = rec.get("target_module_hash")
        fields: dict[str, Any] = {}
        if info is not None and info.hash != target:
            if phase not in records.BEFORE_UPGRADE:
                raise MigrationStateError(
                    f"canister {name!r} was already upgraded to {str(target)[:16]}… in this migration; "
                    f"finish it with `{records.resume_command(name, rec)}`")
            fields["target_module_hash"] = info.hash
        if arg is not None:
            fields["arg"] = arg.hex()
        if performance_counter_scale is not None:
            fields["performance_counter_scale"] = performance_counter_scale
        rec = records.move(store, name, phase, event="resumed", **fields)
        if snapshot_id is not None:  # the migration under way has changed the canister since that snapshot
            with db.transaction(store.engine) as conn:
                snapshot_sql.mark_committed(conn, snapshot_id)
    else:
        if info is None:
            raise MigrationStateError(f"canister {name!r} has no migration to resume; give the WASM to upgrade to")
        scale = performance_counter_scale or store.limits.performance_counter_scale
        rec = records.begin(store, name, target_module_hash=info.hash, arg=arg if arg is not None else api.EMPTY_ARGS,
                            estimated_image_bytes=estimate_image_bytes(store, name), performance_counter_scale=scale,
                            snapshot_id=snapshot_id)
    target = rec.get("target_module_hash")
    phase = records.resume_phase(rec)
    if phase == "stabilizing":
        rec = _stabilize_step(store, name, row.id, on_progress)
        phase = "stabilized"
    if phase in ("stabilized", "upgrading"):
        if target is None:
            raise MigrationStateError(f"canister {name!r} is stabilized; give the WASM to upgrade to")
        module = wasm if wasm is not None and info is not None and info.hash == target else stored_module(store, target)
        upgrade_arg = bytes.fromhex(rec["arg"]) if rec.get("arg") else api.EMPTY_ARGS
        rec = _upgrade_step(store, name, module, upgrade_arg, on_progress)
        phase = "upgraded"
    if phase in ("upgraded", "destabilizing"):
        rec = _destabilize_step(store, name, row.id, on_progress)
    return rec
