"""The migration record: where a canister's graph-copy migration stands, kept in its own row.

The record is the JSON text in ``canisters.migration``. graphcopy's driver (``migrate.graph_copy``)
writes it before each step and moves its ``phase``; the increments of Motoko's graph copy update
its counters in the same transaction as the state they produced (``persist.execution``
``migration_progress``), so after a crash the record and the canister agree. Keys:

* ``phase``: ``stabilizing`` -> ``stabilized`` -> ``upgrading`` -> ``upgraded`` ->
  ``destabilizing`` -> ``done``, or ``failed`` (then ``failed_in`` names the phase and ``error``
  says why; ``--resume`` retries that phase);
* ``mode`` (``graph-copy``), ``from_module_hash``, ``target_module_hash`` (None until known),
  ``arg`` (the post_upgrade argument, hex), ``performance_counter_scale`` (what the increments run
  with, whoever runs them: ``persist.execution.instances`` reads it for every message while the
  migration is unfinished);
* ``started_ns``, ``updated_ns``, ``finished_ns``;
* ``increments``, ``instructions`` (per step: ``stabilize`` / ``destabilize``), ``stable_bytes``,
  ``stable_written_bytes``, ``heap_bytes`` and ``stable_io`` (per step, the bytes read and written
  through ic0.stable*; all written with every increment, in ``persist.execution.commit``),
  ``estimated_image_bytes`` and ``heap_bytes_after_upgrade`` (what :func:`phase_progress` estimates from);
* ``upgrade_after_history_id``: the canister's last history row when the upgrade step began, so a
  resumed driver can tell whether the (one-transaction) upgrade committed before the crash;
* ``history``: a short list of ``{"phase", "at_ns", ...}`` entries, oldest first.

The record stays after ``done`` (``graphcopy status`` shows it) until the next migration replaces it.
Writing it does not bump the canister's version: it is metadata about the canister, not its state,
and a live instance cached at that version stays valid.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.execution.clock import now_ns
from persist.host.memory import PAGE
from persist.session import Store
from persist.store import db, schema
from persist.store import snapshots as snapshot_sql
from persist.store.canisters import canister_row

Record = dict[str, Any]

PHASES = ("stabilizing", "stabilized", "upgrading", "upgraded", "destabilizing", "done", "failed")
# A migration in one of these phases blocks the canister (Motoko refuses other messages) until it
# is driven to the end.
ACTIVE_PHASES = ("stabilizing", "stabilized", "upgrading", "upgraded", "destabilizing")
# Phases before the upgrade step committed: the target module may still change.
BEFORE_UPGRADE = ("stabilizing", "stabilized", "upgrading")
HISTORY_LIMIT = 24


def read(store: Store, name: str) -> Record | None:
    """The canister's migration record, or None if it never had one."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    return json.loads(row.migration) if row.migration else None


def unfinished(record: Record | None) -> bool:
    """Whether ``record`` describes a migration that still has to be driven to the end (including
    one that failed: the canister stays blocked until it is resumed)."""
    return record is not None and record.get("phase") in (*ACTIVE_PHASES, "failed")


def resume_phase(record: Record) -> str:
    """The phase a driver continues from: the current one, or the one that failed."""
    phase = str(record.get("phase"))
    return str(record.get("failed_in") or "stabilizing") if phase == "failed" else phase


def _write(conn: sa.Connection, canister_id: int, record: Record) -> None:
    c = schema.canisters.c
    conn.execute(schema.canisters.update().where(c.id == canister_id).values(migration=json.dumps(record)))


def _event(record: Record, phase: str, now: int, detail: dict[str, Any] | None) -> None:
    history = record.setdefault("history", [])
    entry: dict[str, Any] = {"phase": phase, "at_ns": now}
    entry.update(detail or {})
    history.append(entry)
    if len(history) > HISTORY_LIMIT:  # keep the start and the most recent entries
        del history[1 : len(history) - HISTORY_LIMIT + 1]


def begin(store: Store, name: str, *, target_module_hash: str | None, arg: bytes | None,
          performance_counter_scale: float, phase: str = "stabilizing",
          estimated_image_bytes: int | None = None, snapshot_id: int | None = None) -> Record:
    """Start a new migration record (replacing a finished one) in ``phase``. ``snapshot_id``, the
    snapshot taken before the migration, is marked committed in the same transaction: from here on
    the canister is on the migration's way, and loading that snapshot is the way back."""
    now = now_ns()
    with db.transaction(store.engine) as conn:
        if snapshot_id is not None:
            snapshot_sql.mark_committed(conn, snapshot_id)
        row = canister_row(conn, name)
        record: Record = {
            "mode": "graph-copy",
            "phase": phase,
            "from_module_hash": row.module_hash,
            "target_module_hash": target_module_hash,
            "arg": arg.hex() if arg is not None else None,
            "performance_counter_scale": performance_counter_scale,
            "started_ns": now,
            "updated_ns": now,
            "increments": {"stabilize": 0, "destabilize": 0},
            "instructions": {"stabilize": 0, "destabilize": 0},
            "stable_bytes": int(row.stable_pages) * PAGE,
            "estimated_image_bytes": estimated_image_bytes,
            "history": [],
        }
        _event(record, phase, now, None)
        _write(conn, row.id, record)
    return record


def move(store: Store, name: str, phase: str, *, event: str | None = None, **fields: Any) -> Record:
    """Move the record to ``phase`` (read-modify-write in one transaction), set ``fields`` and add a
    history entry (``event`` names it when it is not a phase change, e.g. ``resumed``)."""
    now = now_ns()
    with db.transaction(store.engine) as conn:
        row = canister_row(conn, name)
        record: Record = json.loads(row.migration) if row.migration else {}
        changed = record.get("phase") != phase
        record["phase"] = phase
        record.update(fields)
        if phase != "failed":
            record.pop("failed_in", None)
            record.pop("error", None)
        record["updated_ns"] = now
        if phase == "done":
            record["finished_ns"] = now
        if changed or event:
            detail = {"event": event} if event else {}
            if phase == "failed":
                detail["error"] = str(fields.get("error", ""))[:200]
            _event(record, phase, now, detail)
        _write(conn, row.id, record)
    return record


def fail(store: Store, name: str, failed_in: str, error: str) -> Record:
    """Mark the migration failed in ``failed_in`` with ``error`` (one line)."""
    return move(store, name, "failed", failed_in=failed_in, error=error)


def last_history_id(store: Store, name: str) -> int:
    """The id of the canister's latest install/upgrade history row (0 if none)."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        h = schema.history.c
        return int(conn.execute(sa.select(sa.func.max(h.id)).where(h.canister_id == row.id)).scalar() or 0)


def upgraded_since(store: Store, name: str, after_id: int, module_hash: str | None) -> bool:
    """Whether an upgrade (to ``module_hash``, if given) was committed after history row ``after_id``."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        h = schema.history.c
        q = sa.select(h.id).where(h.canister_id == row.id, h.id > after_id, h.kind == "upgrade")
        if module_hash is not None:
            q = q.where(h.module_hash == module_hash)
        return conn.execute(q.limit(1)).first() is not None


def resume_command(name: str, record: Record | None) -> str | None:
    """The command that takes the canister's unfinished migration forward (None when there is none).

    A migration started by ``upgrade`` knows its target module, so ``--resume`` finishes it; one
    started by ``stabilize-before-upgrade`` does not, so the upgrade needs the module."""
    if not unfinished(record):
        return None
    assert record is not None
    phase = resume_phase(record)
    if record.get("target_module_hash") is None and phase in BEFORE_UPGRADE:
        if phase == "stabilizing":
            return f"graphcopy stabilize-before-upgrade {name}"
        return f"graphcopy upgrade {name} WASM --mode graph-copy"
    return f"graphcopy upgrade {name} --resume"


# How much of the graph copy is done, for progress bars. Both of Motoko's copies are Cheney's
# algorithm over stable memory, reading it front to back (``stable_io``: the bytes each step's
# increments read and wrote through ic0.stable*, kept with every increment):
# * stabilizing: the scan reads the image as it is written, so the bytes read approach the image's
#   size; that size is estimated before the first increment (``estimated_image_bytes``, from the
#   heap the canister reports) and raised whenever the part read gets close to it, so the bar never
#   claims more than ESTIMATE_CEILING before the phase ends;
# * destabilizing: the image's size is known (``stable_written_bytes``), and rebuilding the heap
#   reads it about DESTABILIZE_READ_PER_IMAGE times over (measured: 1.2x-1.5x on the examples).
ESTIMATE_CEILING = 0.95
DESTABILIZE_READ_PER_IMAGE = 1.35


@dataclass
class PhaseProgress:
    """Bytes done and (estimated) bytes in all of the current phase of a migration."""

    phase: str
    done: int
    total: int
    estimated: bool

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


def phase_progress(record: Record) -> PhaseProgress | None:
    """The progress of the migration's current phase, or None for a phase without one (the upgrade
    step is a single transaction; a finished migration is done)."""
    phase = str(record.get("phase"))
    io = record.get("stable_io") or {}
    if phase == "stabilizing":
        done = int((io.get("stabilize") or {}).get("read", 0))
        estimate = int(record.get("estimated_image_bytes") or 0)
        total = max(estimate, int(done / ESTIMATE_CEILING) + 1)
        return PhaseProgress(phase, done, total, estimated=True)
    if phase == "destabilizing":
        done = int((io.get("destabilize") or {}).get("read", 0))
        image = int(record.get("stable_written_bytes") or 0) or int(record.get("stable_bytes") or 0)
        total = max(int(image * DESTABILIZE_READ_PER_IMAGE), int(done / ESTIMATE_CEILING) + 1)
        return PhaseProgress(phase, done, total, estimated=True)
    return None
