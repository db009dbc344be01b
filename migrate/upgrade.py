"""Execute an upgrade the safe way: plan first, then keep, replace or graph copy; resumable.

``upgrade(store, name, wasm, ...)`` is what ``graphcopy upgrade`` runs. It plans
(``migrate.plan``), refuses what the plan refuses (UpgradeRefusedError, nothing changed), and then:

* ``keep`` / ``replace``: one ``install_code`` upgrade (``persist.execution.install_code.upgrade_code``): one
  transaction, so a crash or a trap leaves the old module, heap and stable memory;
* ``graph-copy``: ``migrate.graph_copy.run``: stabilize, upgrade with replace, destabilize, every
  increment committed with the migration record.

A canister with an unfinished graph-copy migration is never upgraded any other way: every call
(with ``resume=True``, or the same command again) continues that migration to its end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrate import graph_copy
from migrate import record as records
from migrate.descriptor import applied_migrations_from_canister
from migrate.errors import DescriptorError
from migrate.family import ChildReport, children_report, module_bytes
from migrate.graph_copy import MigrationStateError, ProgressFn
from migrate.plan import UpgradePlan, UpgradeRefusedError, plan_upgrade
from migrate.record import Record
from persist.api import EMPTY_ARGS, snapshots
from persist.errors import GraphcopyError
from persist.execution.install_code import upgrade_code
from persist.execution.scheduler import settle_canister
from persist.session import Store
from persist.store import db
from persist.store import snapshots as snapshot_sql
from persist.store.canisters import controller_row


@dataclass
class UpgradeOutcome:
    """What ``upgrade`` did. ``executed`` is False for a dry run or when there was nothing to do."""

    name: str
    path: str
    executed: bool
    dry_run: bool
    resumed: bool
    old_module_hash: str
    new_module_hash: str
    seconds: float
    instructions: int | None = None  # of the install_code upgrade step
    migration: Record | None = None  # the final record of a graph copy
    snapshot_id: int | None = None  # the snapshot taken before the upgrade (``graphcopy rollback`` loads it)
    # The chain migrations the upgrade ran, in order (read from the heap's list after it; None
    # when the new module has no migration chain).
    migrations_run: list[str] | None = None
    plan: UpgradePlan | None = field(default=None, repr=False)
    # The canisters this one created (actor classes) and whether the old/new module embeds theirs.
    children: list[ChildReport] = field(default_factory=list)

    def summary(self) -> str:
        """One line for people."""
        if self.dry_run:
            return f"{self.name}: dry run, nothing changed (path: {self.path})"
        if not self.executed:
            return (f"{self.name}: unchanged: it already runs module {self.new_module_hash[:16]}…, nothing to do "
                    "(--upgrade-unchanged upgrades it anyway)")
        what = {"keep": "upgraded, heap kept", "replace": "upgraded on a fresh heap",
                "graph-copy": "upgraded by graph copy"}.get(self.path, self.path)
        extra = ""
        if self.migration is not None:
            inc = self.migration.get("increments", {})
            extra = (f", {inc.get('stabilize', 0)} stabilization + {inc.get('destabilize', 0)} destabilization "
                     "increments")
        elif self.instructions is not None:
            extra = f", {self.instructions:,} instructions"
        if self.migrations_run is not None:
            n = len(self.migrations_run)
            extra += (f"; ran {n} migration{'s' if n != 1 else ''}: {', '.join(self.migrations_run)}" if n
                      else "; ran no migration")
        if self.snapshot_id is not None:
            extra += f"; snapshot {self.snapshot_id} taken before (`graphcopy rollback {self.name}` restores it)"
        return (f"{self.name}: {what}{' (resumed)' if self.resumed else ''}: module {self.old_module_hash[:16]}… -> "
                f"{self.new_module_hash[:16]}… in {self.seconds:.2f} s{extra}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with the plan)."""
        return {"name": self.name, "path": self.path, "executed": self.executed, "dry_run": self.dry_run,
                "resumed": self.resumed, "old_module_hash": self.old_module_hash,
                "new_module_hash": self.new_module_hash, "seconds": round(self.seconds, 3),
                "instructions": self.instructions, "migration": self.migration, "snapshot_id": self.snapshot_id,
                "migrations_run": self.migrations_run, "plan": self.plan.to_dict() if self.plan is not None else None,
                "children": [c.to_dict() for c in self.children]}


def upgrade(
    store: Store,
    name: str,
    wasm: bytes | None,
    *,
    arg: bytes | None = None,
    mode: str = "auto",
    skip_pre_upgrade: bool = False,
    dry_run: bool = False,
    resume: bool = False,
    force: bool = False,
    on_progress: ProgressFn | None = None,
    snapshot: bool = True,
    skip_unchanged: bool = False,
    on_plan: Callable[[UpgradePlan], None] | None = None,
    performance_counter_scale: float | None = None,
    snapshot_id: int | None = None,
) -> UpgradeOutcome:
    """Upgrade canister ``name`` to ``wasm`` along the path ``plan_upgrade`` picks for ``mode``.

    ``arg`` is the Candid-encoded argument of post_upgrade (default ``()``; a resumed migration
    reuses the recorded one). ``dry_run`` plans only. ``resume`` finishes an unfinished graph-copy
    migration (``wasm`` may then be None: the recorded target) and, when none is unfinished, does
    nothing if the canister already runs ``wasm``. ``force`` lets an incompatible keep through to
    the canister's own runtime check, and allows a replace that discards a heap of stable
    variables. ``on_progress(record)`` is called after every message of a graph copy.
    ``snapshot`` (default) takes a snapshot before anything changes (not when resuming a migration:
    that one was taken when it began); ``persist.api.snapshots.rollback`` restores it. Its id is in the
    outcome and in the upgrade's history entry. A keep/replace upgrade that fails changed nothing and
    drops its snapshot; a graph copy keeps it whatever happens (loading it is the way back).
    ``skip_unchanged`` does nothing (``executed`` False, path ``none``) when the canister already
    runs ``wasm`` and no migration is unfinished, as dfx skips an unchanged module unless
    ``--upgrade-unchanged``. ``on_plan(plan)`` is called with the plan before anything is done (a
    refused plan too). ``performance_counter_scale`` is the scale a graph copy's increments run
    with (default: the store's; a resumed migration keeps its own unless one is given).
    ``snapshot_id`` names a snapshot the caller took for this upgrade already (a pipeline's snapshot
    step; then ``snapshot`` takes none): like the upgrade's own, it is marked committed in the
    upgrade's commit transaction (graph copy: when the migration begins), so ``rollback`` never takes
    a snapshot whose upgrade did not happen for one that did.

    Raises UpgradeRefusedError (with ``.plan``; nothing changed), MigrationStateError,
    NotAuthorizedError (not a controller), UpgradeOptionError, CanisterTrapError (the canister
    trapped: a keep/replace upgrade is rolled back; a graph copy is marked failed and resumable).
    """
    t0 = time.perf_counter()
    planned_version: int | None = None
    if not dry_run:
        with db.read_transaction(store.engine) as conn:
            controller_row(conn, name, store.controller_identity(), store.lock_owner)  # a controller, and not locked
        # What is queued runs first, so the plan sees the state the upgrade will start from; the
        # version it sees is the one the upgrade must still find (else another process got there first).
        settle_canister(store, name)
        with db.read_transaction(store.engine) as conn:
            planned_version = int(controller_row(conn, name, store.controller_identity(), store.lock_owner).version)
    rec = records.read(store, name)
    unfinished = records.unfinished(rec)
    if wasm is None and not unfinished:
        raise MigrationStateError(
            f"canister {name!r} has no migration to resume; give the WASM to upgrade to" if resume
            else "give the WASM module to upgrade to")
    plan = plan_upgrade(store, name, wasm, mode, force=force, skip_pre_upgrade=skip_pre_upgrade)
    unchanged = not unfinished and plan.old.module_hash == plan.new.module_hash
    if unchanged and (resume or skip_unchanged):
        plan.path = "none"
        plan.reasons = ["the canister already runs this module and no migration is unfinished"]
    if on_plan is not None:
        on_plan(plan)

    old_wasm = module_bytes(store, plan.old.module_hash)

    def outcome(executed: bool, **kw: Any) -> UpgradeOutcome:
        return UpgradeOutcome(name=name, path=plan.path, executed=executed, dry_run=dry_run,
                              resumed=unfinished, old_module_hash=plan.old.module_hash,
                              new_module_hash=plan.new.module_hash, seconds=time.perf_counter() - t0,
                              plan=plan, children=children_report(store, name, old_wasm, wasm), **kw)

    if plan.path == "none":
        return outcome(False)
    if plan.path == "refuse":
        raise UpgradeRefusedError(plan)
    if dry_run:
        return outcome(False)
    snap_id: int | None = snapshot_id
    if snapshot and not unfinished and snap_id is None:
        snap_id = snapshots.take_snapshot(
            store, name, label=f"before upgrade to {plan.new.module_hash[:16]}", purpose=snapshots.UPGRADE_PURPOSE,
            upgrade_to=plan.new.module_hash).id
    if plan.path == "graph-copy":
        final = graph_copy.run(store, name, wasm, arg=arg, on_progress=on_progress,
                               performance_counter_scale=performance_counter_scale, snapshot_id=snap_id)
        return outcome(True, migration=final, snapshot_id=snap_id, migrations_run=_migrations_run(store, name, plan))
    assert wasm is not None
    try:
        res = upgrade_code(store, name, wasm, arg=arg if arg is not None else EMPTY_ARGS,
                           skip_pre_upgrade=skip_pre_upgrade, wasm_memory_persistence=plan.wasm_memory_persistence,
                           history_detail={"snapshot_id": snap_id} if snap_id is not None else None,
                           expected_version=planned_version, on_commit=_marks_committed(snap_id))
    except Exception:
        # The upgrade is one transaction: nothing changed, nothing to roll back to (a caller's own
        # snapshot is the caller's to keep).
        if snap_id is not None and snapshot_id is None:
            with contextlib.suppress(GraphcopyError):
                snapshots.delete_snapshot(store, name, snap_id)
        raise
    return outcome(True, instructions=res.instructions, snapshot_id=snap_id,
                   migrations_run=_migrations_run(store, name, plan))


def _marks_committed(snapshot_id: int | None) -> Callable[[Any], None] | None:
    """The upgrade's on_commit: its snapshot's change committed, in the same transaction."""
    if snapshot_id is None:
        return None
    return lambda conn: snapshot_sql.mark_committed(conn, snapshot_id)


def _migrations_run(store: Store, name: str, plan: UpgradePlan) -> list[str] | None:
    """The chain migrations the upgrade appended to the heap's list (None without a chain)."""
    if plan.new.signature is None or not plan.new.signature.has_chain:
        return None
    try:
        after = applied_migrations_from_canister(store, name)
    except DescriptorError:
        return None
    before = plan.old.applied_migrations or []
    return after[len(before):] if after[: len(before)] == before else after
