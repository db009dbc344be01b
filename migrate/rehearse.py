"""Rehearse an upgrade on production state: a downloaded IC snapshot, offline, in one call.

``rehearse(directory, new_wasm)`` imports the snapshot directory (``dfx canister snapshot download``)
into a scratch store, runs the verify queries, plans the upgrade with the full compatibility report,
upgrades (keep, or Motoko's graph copy at the IC's budgets, resumable as always when the store is
kept), runs the queries again, compares the instructions used with the IC's limits, and with
``out`` exports the migrated state as a directory ``dfx canister snapshot upload --dir`` takes.

The IC's limits are the defaults of ``persist.host.limits.Limits`` (``install_code`` 300e9
instructions, an update message 40e9). graphcopy counts wasmtime fuel, about one unit per Wasm
instruction; the IC weighs instructions (memory accesses, calls and system API calls cost more),
so the figures are estimates to keep a margin from, not the IC's own count.

Loading an uploaded snapshot on the IC runs no canister code at all: no pre_upgrade or
post_upgrade hook, no migration function and no stable-type compatibility check. The check and the
migration a rehearsal runs are the only ones the exported state ever went through.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from migrate.graph_copy import ProgressFn
from migrate.plan import UpgradePlan, plan_upgrade
from migrate.upgrade import UpgradeOutcome, upgrade
from migrate.verify import VerifyQuery, query_reply
from persist.api.snapshot_transfer import (
    ExportResult,
    ImportResult,
    export_snapshot,
    import_snapshot,
    imported_from,
)
from persist.api.snapshot_transfer import ProgressFn as TransferProgressFn
from persist.errors import (
    CanisterExistsError,
    CanisterNotFoundError,
    CanisterRejectError,
    CanisterTrapError,
    GraphcopyError,
    UpgradeOptionError,
)
from persist.host.limits import Limits
from persist.session import Store, open_store
from persist.snapshot_dir.reader import open_snapshot_dir

__all__ = ["LOAD_NOTE", "Rehearsal", "VerifyResult", "rehearse"]

LOAD_NOTE = ("Loading an uploaded snapshot on the IC (load_canister_snapshot) runs no canister code: no pre_upgrade "
             "or post_upgrade hook, no migration function and no stable-type compatibility check. The check and the "
             "migration of this rehearsal are the only ones the exported state went through.")
ESTIMATE_NOTE = ("Instructions are wasmtime fuel (about one per Wasm instruction); the IC weighs instructions "
                 "(memory accesses, calls, system API calls cost more): read them as estimates and keep a margin.")


@dataclass
class VerifyResult:
    query: str
    before: str | None
    after: str | None
    equal: bool
    error: str | None = None


@dataclass
class Rehearsal:
    """The report of one rehearsal. ``ok``: the upgrade ran and every verify query replied the same."""

    directory: str
    canister: str
    store_url: str | None  # None: a scratch store, gone with the rehearsal
    new_module_hash: str
    plan: UpgradePlan
    imported: ImportResult | None  # None: the canister was imported into the kept store by an earlier run
    outcome: UpgradeOutcome | None  # None: the plan refused, or the upgrade failed (``error``)
    error: str | None = None  # why the upgrade failed (it trapped, ran out of instructions, ...)
    verify: list[VerifyResult] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)
    exported: ExportResult | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def refused(self) -> bool:
        return self.plan.path == "refuse"

    @property
    def ok(self) -> bool:
        return self.outcome is not None and all(v.equal for v in self.verify)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the plan and the upgrade outcome in full)."""
        return {
            "ok": self.ok, "refused": self.refused, "error": self.error, "directory": self.directory,
            "canister": self.canister, "store_url": self.store_url, "new_module_hash": self.new_module_hash,
            "plan": self.plan.to_dict(), "imported": asdict(self.imported) if self.imported is not None else None,
            "upgrade": self.outcome.to_dict() | {"plan": None} if self.outcome is not None else None,
            "verify": [asdict(v) for v in self.verify], "budget": self.budget,
            "exported": asdict(self.exported) if self.exported is not None else None, "notes": self.notes,
            "seconds": round(self.seconds, 3)}

    def format_text(self) -> str:
        """The report for people: the plan, what the upgrade did, the queries, the budget, the notes."""
        lines = [self.plan.format_text()]
        if self.refused:
            lines.append("rehearsal: the upgrade was refused; nothing was upgraded or exported")
        elif self.outcome is None:
            lines.append(f"rehearsal: the upgrade FAILED; nothing was exported: {self.error}")
        else:
            lines.append(self.outcome.summary())
        for v in self.verify:
            mark = "same" if v.equal else "DIFFERENT"
            if v.error:
                lines.append(f"verify {v.query}: {v.error}")
            elif self.outcome is None:
                lines.append(f"verify {v.query}: {v.before}")
            else:
                lines.append(f"verify {v.query}: {mark}: {v.before}" + ("" if v.equal else f" -> {v.after}"))
        lines += [f"budget: {line}" for line in self.budget.get("lines", [])]
        if self.exported is not None:
            lines.append(f"exported to {self.exported.directory}: upload it with `dfx canister snapshot upload "
                         f"<canister> --dir {self.exported.directory}`, then stop, `dfx canister snapshot load`, start")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _pct(used: int, limit: int) -> str:
    share = 100 * used / limit
    return f"{used:,} instructions, {'under 0.01' if 0 < share < 0.01 else f'{share:.2f}'}% of {limit / 1e9:g}e9"


def _budget(outcome: UpgradeOutcome, limits: Limits) -> dict[str, Any]:
    """Instructions used against the IC's limits: would the upgrade fit in one message, and how many
    graph-copy increments did it take at these budgets."""
    install, update = limits.install_instructions, limits.update_instructions
    scale = limits.performance_counter_scale
    out: dict[str, Any] = {"install_code_limit": install, "update_message_limit": update,
                           "performance_counter_scale": scale}
    lines: list[str] = []
    if outcome.path in ("keep", "replace"):
        used = int(outcome.instructions or 0)
        out |= {"instructions": used, "fits_one_message": used <= install}
        lines.append(f"the upgrade (pre_upgrade, start, post_upgrade) took {_pct(used, install)} (install_code): "
                     + ("it fits in one message" if used <= install else "it does NOT fit in one message"))
    elif outcome.path == "graph-copy" and outcome.migration is not None:
        rec = outcome.migration
        ins, inc = rec.get("instructions") or {}, rec.get("increments") or {}
        stab, destab = int(ins.get("stabilize", 0)), int(ins.get("destabilize", 0))
        step = int(rec.get("upgrade_instructions") or 0)
        total = stab + step + destab
        out |= {"stabilize_instructions": stab, "upgrade_instructions": step, "destabilize_instructions": destab,
                "instructions": total, "stabilize_increments": int(inc.get("stabilize", 0)),
                "destabilize_increments": int(inc.get("destabilize", 0)), "fits_one_message": total <= install,
                "upgrade_step_fits": step <= install}
        budgets = "the IC's budgets" if scale == 1 else f"performance counter scale {scale:g} (not the IC's budgets)"
        lines.append(f"graph copy at {budgets}: {out['stabilize_increments']} stabilization + "
                     f"{out['destabilize_increments']} destabilization increments (each an update message, "
                     f"at most {update / 1e9:g}e9)")
        lines.append(f"stabilize {stab:,} + upgrade step {step:,} + destabilize {destab:,} = {_pct(total, install)}: "
                     + ("a plain upgrade doing the whole copy in pre_upgrade/post_upgrade would fit in one "
                        "install_code message" if total <= install else
                        "too much for one install_code message: stabilize explicitly "
                        "(__motoko_stabilize_before_upgrade), upgrade, then destabilize"))
        if step > install:
            lines.append("the upgrade step alone exceeds the install_code limit")
    out["lines"] = lines
    return out


def _replies(store: Store, name: str, queries: Sequence[VerifyQuery]) -> dict[str, str | Exception]:
    out: dict[str, str | Exception] = {}
    for q in queries:
        try:
            out[q.label()] = query_reply(store, name, q.method, q.args)
        except GraphcopyError as exc:
            out[q.label()] = exc
    return out


def _reuse(store: Store, name: str, metadata_sha256: str, directory: Path) -> bool:
    """Whether canister ``name`` of a kept store is this directory's import (then it is continued)."""
    try:
        detail = imported_from(store, name)
    except CanisterNotFoundError:
        return False
    if detail is None or detail.get("metadata_sha256") != metadata_sha256:
        raise CanisterExistsError(f"canister {name!r} of this store was not imported from {directory}; "
                                  "choose another --name or another store")
    return True


def rehearse(directory: str | Path, new_wasm: bytes, *, out: str | Path | None = None,
             verify: Sequence[VerifyQuery] = (), mode: str = "auto", arg: bytes | None = None, force: bool = False,
             name: str | None = None, store_url: str | None = None, performance_counter_scale: float | None = None,
             on_transfer: TransferProgressFn | None = None, on_migration: ProgressFn | None = None,
             on_phase: Callable[[str], None] | None = None) -> Rehearsal:
    """Rehearse upgrading the canister of a snapshot directory to ``new_wasm``; see the module docstring.

    ``store_url`` keeps the store (and lets a killed rehearsal continue its graph copy when run
    again); by default a scratch SQLite store in a temporary directory is used and removed.
    ``name`` is the canister's name in it (default: the directory's name). ``performance_counter_scale``
    defaults to 1, the IC's budgets, whatever the environment says. Raises what import and upgrade
    raise for bad input (SnapshotDirError, InvalidModuleError, UpgradeOptionError, CanisterTrapError);
    a refused plan is a report (``refused``), not an error.
    """
    t0 = time.perf_counter()
    phase = on_phase or (lambda _p: None)
    path = Path(directory)
    snap = open_snapshot_dir(path)
    name = name or _canister_name(path)
    limits = Limits(performance_counter_scale=performance_counter_scale or 1.0)
    with tempfile.TemporaryDirectory(prefix="graphcopy-rehearsal-") as scratch:
        url = store_url or f"sqlite:///{Path(scratch) / 'rehearsal.db'}"
        with open_store(url, limits=limits) as store:
            imported: ImportResult | None = None
            if store_url is not None and _reuse(store, name, snap.metadata_sha256, path):
                phase("continuing the rehearsal kept in the store")
                before = _before_from_copy(path, name, verify, limits, Path(scratch))
            else:
                phase("importing")
                imported = import_snapshot(store, name, path, on_progress=on_transfer)
                before = _replies(store, name, verify)
            phase("planning")
            plan = plan_upgrade(store, name, new_wasm, mode, force=force)
            info, _ = store.runtime.load_module(new_wasm)
            report = Rehearsal(directory=str(path), canister=name, store_url=store_url, new_module_hash=info.hash,
                               plan=plan, imported=imported, outcome=None, notes=[LOAD_NOTE, ESTIMATE_NOTE])
            if plan.path == "refuse":
                report.verify = [VerifyResult(q, _text(r), None, False, _error(r)) for q, r in before.items()]
                report.seconds = time.perf_counter() - t0
                return report
            phase("upgrading")
            try:
                report.outcome = upgrade(store, name, new_wasm, arg=arg, mode=mode, force=force,
                                         on_progress=on_migration, snapshot=False)
            except (CanisterTrapError, CanisterRejectError, UpgradeOptionError) as exc:
                report.error = str(exc)
                report.verify = [VerifyResult(q, _text(r), None, False, _error(r)) for q, r in before.items()]
                report.seconds = time.perf_counter() - t0
                return report
            after = _replies(store, name, verify)
            report.verify = [VerifyResult(q, _text(b), _text(after[q]), _error(b) is None and _error(after[q]) is None
                                          and b == after[q], _error(b) or _error(after[q])) for q, b in before.items()]
            report.budget = _budget(report.outcome, store.limits)
            if out is not None:
                phase("exporting")
                report.exported = export_snapshot(store, name, out, on_progress=on_transfer)
    report.seconds = time.perf_counter() - t0
    return report


def _text(value: str | Exception) -> str | None:
    return value if isinstance(value, str) else None


def _error(value: str | Exception) -> str | None:
    return str(value) if isinstance(value, Exception) else None


def _canister_name(path: Path) -> str:
    stem = path.resolve().name
    cleaned = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem).strip("-.") or "rehearsal"
    return cleaned[:128]


def _before_from_copy(path: Path, name: str, verify: Sequence[VerifyQuery], limits: Limits,
                      scratch: Path) -> dict[str, str | Exception]:
    """The verify replies of the snapshot's own state, from a throwaway import (the kept canister may
    be mid-migration, when Motoko answers no query)."""
    with open_store(f"sqlite:///{scratch / 'before.db'}", limits=limits) as other:
        import_snapshot(other, name, path)
        return _replies(other, name, verify)

