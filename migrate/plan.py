"""Plan an upgrade before touching the canister: which path keeps the data, or why none does.

``plan_upgrade(store, name, wasm, mode)`` reads

* the old stable type: the descriptor the canister's heap holds (what the data really is; see
  ``migrate.descriptor``), else the old module's ``icp:private motoko:stable-types`` section;
* the new stable type: the new module's section;
* both layout versions: the text of the ``icp:private enhanced-orthogonal-persistence`` section
  (e.g. "64-bit, layout version 1"),

checks compatibility (``migrate.compat``) and picks the path. With ``mode="auto"``:

* compatible and the same layout: ``keep`` (the heap is handed over; cost independent of its size);
* compatible, different layouts: ``graph-copy`` (stabilize, upgrade with replace, destabilize);
* incompatible: ``refuse``, with every issue in the report.

Modules without a stable signature (not Motoko: hand-written WAT, other languages) cannot be
checked: the plan says so, and takes ``keep`` when both modules are marked EOP, else ``replace``.
Explicit modes: ``keep`` (an incompatible or layout-changing plan only with ``force``: the
canister's own runtime check then decides, and traps); ``replace`` (discards the heap: refused
without ``force`` when the old canister keeps stable variables in it); ``graph-copy`` (never for an
incompatible plan: a stabilized canister cannot be taken back). An unfinished graph-copy migration
is always continued, never replaced by another path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from migrate import record as records
from migrate.compat import CompatReport, check_compatibility
from migrate.descriptor import (
    applied_migrations_from_canister,
    descriptor_mismatch,
    signature_from_canister,
    signature_to_descriptor,
)
from migrate.errors import DescriptorError
from migrate.graph_copy import STABILIZE_METHOD, stored_module, supports_graph_copy
from migrate.stable_types import (
    ActorType,
    ArrayType,
    ConType,
    Field,
    FuncType,
    OptType,
    RecordType,
    StableField,
    StableSignature,
    StableType,
    Tag,
    TupleType,
    TypeDef,
    VariantType,
    WeakType,
    children,
    format_signature,
    label_hash,
    parse_signature,
)
from persist.errors import CanisterStateError, GraphcopyError, UpgradeOptionError
from persist.host.module import EOP_SECTION, ModuleInfo, parse_module
from persist.session import Store
from persist.store import db, schema
from persist.store.canisters import canister_row

MODES = ("auto", "keep", "replace", "graph-copy")
PATHS = ("keep", "replace", "graph-copy", "refuse", "none")
NO_SIGNATURE = "no stable signature: replace (or keep for EOP-marked modules)"


class UpgradeRefusedError(GraphcopyError):
    """The planner refused the upgrade; ``plan`` holds the full report. Nothing was changed."""

    exit_code = 1

    def __init__(self, plan: UpgradePlan) -> None:
        super().__init__(f"upgrade of {plan.name!r} refused: {plan.reasons[0] if plan.reasons else 'see the plan'}")
        self.plan = plan


@dataclass
class ModuleSide:
    """One side of an upgrade: a module, its persistence layout and its stable signature."""

    module_hash: str
    eop: bool
    layout: str | None  # the EOP section's text; None for a module without the section
    graph_copy: bool  # exports Motoko's graph-copy endpoints
    signature: StableSignature | None = field(default=None, repr=False)
    signature_text: str | None = None  # for people: the .most text (with names where known)
    signature_source: str = "none"  # "persisted descriptor" | "old module" | "new module" | "none"
    # The chain migrations the canister's heap records as applied, oldest first (old side of an EOP
    # canister; None where unknown).
    applied_migrations: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"module_hash": self.module_hash, "eop": self.eop, "layout": self.layout,
                "graph_copy": self.graph_copy, "stable_types": self.signature_text,
                "stable_types_source": self.signature_source, "applied_migrations": self.applied_migrations}


@dataclass
class UpgradePlan:
    """What ``upgrade`` will do, and why. ``path`` is keep, replace, graph-copy, refuse or none
    (nothing to do); ``reasons`` explain it, ``warnings`` are cautions that do not stop it."""

    name: str
    mode: str
    old: ModuleSide
    new: ModuleSide
    report: CompatReport | None
    path: str
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    force: bool = False
    resume_from: str | None = None  # the phase an unfinished migration continues from

    @property
    def verdict(self) -> str:
        """compatible, incompatible, or unchecked (a side has no stable signature)."""
        if self.report is None:
            return "unchecked"
        return "compatible" if self.report.compatible else "incompatible"

    @property
    def wasm_memory_persistence(self) -> str | None:
        """The install_code option the chosen path uses (the upgrade step's, for a graph copy)."""
        return {"keep": "keep", "replace": "replace", "graph-copy": "replace"}.get(self.path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name, "mode": self.mode, "path": self.path, "verdict": self.verdict,
            "wasm_memory_persistence": self.wasm_memory_persistence, "force": self.force,
            "resume_from": self.resume_from, "reasons": self.reasons, "warnings": self.warnings,
            "old": self.old.to_dict(), "new": self.new.to_dict(),
            "compatibility": self.report.to_dict() if self.report is not None else None,
        }

    def format_text(self) -> str:
        """The plan for people: both modules, both stable types, the verdict and the path."""

        def side(label: str, s: ModuleSide) -> list[str]:
            kind = f"EOP, {s.layout}" if s.eop and s.layout else ("EOP" if s.eop else "classical (no EOP section)")
            lines = [f"{label} module {s.module_hash[:16]}…  {kind}"]
            if s.signature_text is None:
                lines.append(f"  {label} stable types: none (not a Motoko module)")
            else:
                lines.append(f"  {label} stable types (from the {s.signature_source}):")
                lines += [f"    {line}" for line in s.signature_text.strip().splitlines() if line.strip()]
            return lines

        out = [f"upgrade plan for {self.name!r} (mode {self.mode}{', forced' if self.force else ''})"]
        out += side("old", self.old) + side("new", self.new)
        if self.report is None:
            out.append(f"compatibility: unchecked ({NO_SIGNATURE})")
        else:
            body = self.report.format_text().splitlines()
            out.append(f"compatibility: {body[0]}")
            out += [f"  {line}" for line in body[1:]]
        if self.resume_from:
            out.append(f"migration in progress: continuing from phase {self.resume_from}")
        out += [f"warning: {w}" for w in self.warnings]
        out.append(f"path: {self.path}" + (f" - {self.reasons[0]}" if self.reasons else ""))
        out += [f"  {r}" for r in self.reasons[1:]]
        return "\n".join(out)


# --------------------------------------------------------------------------- reading both sides


def _side(info: ModuleInfo, signature: StableSignature | None, text: str | None, source: str) -> ModuleSide:
    return ModuleSide(module_hash=info.hash, eop=info.is_eop,
                      layout=info.section_text((EOP_SECTION,)) if info.is_eop else None,
                      graph_copy=supports_graph_copy(info), signature=signature, signature_text=text,
                      signature_source=source)


def _module_signature(info: ModuleInfo, which: str) -> StableSignature | None:
    text = info.stable_types
    if text is None:
        return None
    return parse_signature(text, source=f"the {which} module's motoko:stable-types section ({info.hash[:16]}…)")


def _labels(sigs: list[StableSignature | None]) -> dict[int, str]:
    """Label hash -> name, for every variable, field, tag and method the signatures name."""
    names: dict[int, str] = {}

    def walk(t: StableType) -> None:
        labelled: tuple[Field | Tag, ...] = ()
        if isinstance(t, RecordType):
            labelled = t.fields
        elif isinstance(t, VariantType):
            labelled = t.tags
        elif isinstance(t, ActorType):
            labelled = t.methods
        for item in labelled:
            names.setdefault(label_hash(item.name), item.name)
        for child in children(t):
            walk(child)

    for sig in sigs:
        if sig is None:
            continue
        for f in (*sig.post, *(sig.pre or ())):
            names.setdefault(label_hash(f.name), f.name)
            walk(f.typ)
        for d in sig.types:
            walk(d.body)
    return names


def _renamed(sig: StableSignature, names: dict[int, str]) -> StableSignature:
    """``sig`` (decoded from a descriptor: labels ``_<hash>_``) with the labels whose names are known
    put back, so reports speak of ``count``, not ``_1248019663_``. Hashes are unchanged."""

    def label(name: str) -> str:
        return names.get(label_hash(name), name)

    def ty(t: StableType) -> StableType:
        match t:
            case OptType(inner):
                return OptType(ty(inner))
            case WeakType(inner):
                return WeakType(ty(inner))
            case ArrayType(elem, mutable):
                return ArrayType(ty(elem), mutable)
            case TupleType(items):
                return TupleType(tuple(ty(i) for i in items))
            case RecordType(fields, type_fields):
                return RecordType(tuple(Field(label(f.name), ty(f.typ), f.mutable) for f in fields), type_fields)
            case VariantType(tags):
                return VariantType(tuple(Tag(label(g.name), ty(g.typ)) for g in tags))
            case ActorType(methods, type_fields):
                return ActorType(tuple(Field(label(m.name), ty(m.typ), m.mutable) for m in methods), type_fields)
            case FuncType(sort, params, results, is_async, type_params):
                return FuncType(sort, tuple(ty(x) for x in params), tuple(ty(x) for x in results), is_async,
                                type_params)
            case ConType(cname, args):
                return ConType(cname, tuple(ty(a) for a in args))
            case _:
                return t

    def fields(fs: tuple[StableField, ...]) -> tuple[StableField, ...]:
        return tuple(StableField(label(f.name), ty(f.typ), f.mutable, f.required) for f in fs)

    return StableSignature(version=sig.version, types=tuple(TypeDef(d.name, d.params, ty(d.body)) for d in sig.types),
                           post=fields(sig.post), pre=fields(sig.pre) if sig.pre is not None else None,
                           chain=sig.chain)


def _old_side(store: Store, name: str, info: ModuleInfo, new_info: ModuleInfo, warnings: list[str]) -> ModuleSide:
    """The old module and the stable type of the data its heap holds.

    The descriptor the heap registered is the truth about the data, but it is lossy: labels are
    hashes, and ``var f : [T]`` and ``f : [var T]`` encode alike. So when the old module's section
    encodes to the same descriptor (the normal case), the section's exact, named signature is
    used, confirmed by the heap; when they differ (the heap holds another type than its module
    declares), the descriptor is used, with names put back from both modules, and a warning."""
    text = info.stable_types
    from_module = _module_signature(info, "old")
    if not info.is_eop:
        return _side(info, from_module, text, "old module" if text is not None else "none")
    try:
        persisted = signature_from_canister(store, name)
        applied: list[str] | None = applied_migrations_from_canister(store, name)
    except DescriptorError:
        return _side(info, from_module, text, "old module" if text is not None else "none")
    if from_module is not None:
        stored = signature_to_descriptor(persisted)
        differences = [descriptor_mismatch(stored, signature_to_descriptor(from_module, pre=pre))
                       for pre in (False, True)]
        if None in differences:
            side = _side(info, from_module, text, "old module, confirmed by the persisted descriptor")
            side.applied_migrations = applied
            return side
        warnings.append(f"the heap's persisted stable type differs from the old module's section "
                        f"({differences[0]}); the persisted one is checked")
    named = _renamed(persisted, _labels([from_module, _module_signature(new_info, "new")]))
    side = _side(info, named, format_signature(named), "persisted descriptor")
    side.applied_migrations = applied
    return side


def canister_side(store: Store, name: str, warnings: list[str]) -> ModuleSide:
    """The stable type of the data an installed canister holds: its persisted descriptor, checked
    against (and named by) its module's section, as the planner's old side uses it."""
    _, wasm = _current_module(store, name)
    info = parse_module(wasm)
    return _old_side(store, name, info, info, warnings)


def _current_module(store: Store, name: str) -> tuple[str, bytes]:
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        if row.module_hash is None:
            raise CanisterStateError(f"canister {name!r} is empty: use `graphcopy install` for its first module")
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
    return str(row.module_hash), bytes(wasm)


# --------------------------------------------------------------------------- deciding


def plan_upgrade(store: Store, name: str, wasm: bytes | None, mode: str = "auto", *, force: bool = False,
                 skip_pre_upgrade: bool = False) -> UpgradePlan:
    """Plan the upgrade of canister ``name`` to ``wasm`` in ``mode`` (auto, keep, replace,
    graph-copy); changes nothing. ``wasm=None`` plans the resumption of an unfinished migration
    (its recorded target). Raises UpgradeOptionError for an unknown mode, CanisterStateError for an
    empty canister, StableTypeError for a malformed stable-types section."""
    if mode not in MODES:
        raise UpgradeOptionError(f"unknown upgrade mode {mode!r}: use one of {', '.join(MODES)}")
    rec = records.read(store, name)
    unfinished = records.unfinished(rec)
    if wasm is None:
        target = rec.get("target_module_hash") if rec is not None and unfinished else None
        if target is None:
            raise CanisterStateError(f"canister {name!r} has no migration with a known target to resume; "
                                     "give the WASM to upgrade to")
        wasm = stored_module(store, str(target))
    new_info, _ = store.runtime.load_module(wasm)
    if unfinished:
        assert rec is not None
        return _plan_resume(store, name, rec, new_info, mode)
    _, old_wasm = _current_module(store, name)
    old_info, _ = store.runtime.load_module(old_wasm, validate=False)  # the installed module
    warnings: list[str] = []
    old = _old_side(store, name, old_info, new_info, warnings)
    new = _side(new_info, _module_signature(new_info, "new"), new_info.stable_types,
                "new module" if new_info.stable_types is not None else "none")
    report = (check_compatibility(old.signature, new.signature, applied=old.applied_migrations)
              if old.signature and new.signature else None)
    plan = UpgradePlan(name=name, mode=mode, old=old, new=new, report=report, path="refuse", force=force,
                       warnings=warnings)
    _decide(plan, skip_pre_upgrade)
    return plan


def _plan_resume(store: Store, name: str, rec: records.Record, new_info: ModuleInfo, mode: str) -> UpgradePlan:
    phase = records.resume_phase(rec)
    old_hash = str(rec.get("from_module_hash") or "")
    if phase in records.BEFORE_UPGRADE:
        _, old_wasm = _current_module(store, name)
        old_info, _ = store.runtime.load_module(old_wasm, validate=False)
    else:
        old_info, _ = store.runtime.load_module(stored_module(store, old_hash), validate=False)
    warnings: list[str] = []
    old = _old_side(store, name, old_info, new_info, warnings) if phase in records.BEFORE_UPGRADE else _side(
        old_info, _module_signature(old_info, "old"), old_info.stable_types, "old module")
    new = _side(new_info, _module_signature(new_info, "new"), new_info.stable_types, "new module")
    report = (check_compatibility(old.signature, new.signature, applied=old.applied_migrations)
              if old.signature and new.signature else None)
    plan = UpgradePlan(name=name, mode=mode, old=old, new=new, report=report, path="graph-copy", resume_from=phase,
                       warnings=warnings)
    if mode in ("keep", "replace"):
        plan.path = "refuse"
        plan.reasons.append(f"a graph-copy migration is in progress ({phase}): it can only be finished "
                            f"(`graphcopy upgrade {name} --resume`)")
    elif phase in records.BEFORE_UPGRADE and report is not None and not report.compatible:
        plan.path = "refuse"
        plan.reasons.append("the stabilized data is incompatible with this module; upgrade to a compatible one "
                            "(the old module is always one)")
    elif not new.graph_copy:
        plan.path = "refuse"
        plan.reasons.append(f"the new module has no graph-copy endpoints ({STABILIZE_METHOD})")
    else:
        plan.reasons.append(f"finishing the migration left in phase {phase}")
    return plan


def _decide(plan: UpgradePlan, skip_pre_upgrade: bool) -> None:
    old, new, report, mode = plan.old, plan.new, plan.report, plan.mode
    same_layout = old.eop and new.eop and old.layout == new.layout
    incompatible = report is not None and not report.compatible
    n_issues = len(report.issues) if report is not None else 0
    holds_data = old.eop and old.signature is not None and bool(old.signature.fields)

    def refuse(reason: str) -> None:
        plan.path = "refuse"
        plan.reasons.insert(0, reason)

    if report is None:
        plan.warnings.append(NO_SIGNATURE + ": the stable data cannot be checked")
    if mode == "auto":
        if incompatible:
            refuse(f"the new stable types are incompatible with the old ones ({n_issues} issue"
                   f"{'s' if n_issues != 1 else ''}); nothing was changed")
        elif report is None:
            plan.path = "keep" if old.eop and new.eop else "replace"
            if plan.path == "replace" and holds_data and not plan.force:
                assert old.signature is not None
                refuse(f"the new module has no EOP section, so its heap would be replaced and the "
                       f"{len(old.signature.fields)} stable variable(s) kept there lost; use --force to accept that")
            else:
                plan.reasons.append(NO_SIGNATURE)
        elif same_layout:
            plan.path = "keep"
            plan.reasons.append("compatible and the same layout: the heap is kept as it is "
                                "(cost independent of its size)")
        elif old.graph_copy and new.graph_copy:
            plan.path = "graph-copy"
            plan.reasons.append(f"compatible, but the layout changes ({old.layout!r} -> {new.layout!r}): "
                                "stabilize, upgrade, destabilize")
        else:
            refuse("the layout changes and a module lacks Motoko's graph-copy endpoints")
    elif mode == "keep":
        plan.path = "keep"
        if not new.eop:
            refuse("keep needs a new module with enhanced orthogonal persistence "
                   f"(the '{EOP_SECTION}' section); use --mode replace")
        elif incompatible and not plan.force:
            refuse(f"the new stable types are incompatible ({n_issues} issue{'s' if n_issues != 1 else ''}); "
                   "--force leaves the decision to the canister's own runtime check (it traps and rolls back)")
        elif old.eop and not same_layout and not plan.force:
            refuse(f"the layout changes ({old.layout!r} -> {new.layout!r}); use --mode graph-copy (or --force)")
        else:
            plan.reasons.append("the heap is handed to the new module" + (
                "; forced: the canister's runtime check decides" if plan.force and incompatible else ""))
    elif mode == "replace":
        plan.path = "replace"
        if holds_data and not plan.force:
            assert old.signature is not None
            refuse(f"replace discards the heap and with it the {len(old.signature.fields)} stable variable(s) "
                   "this EOP canister keeps there; use --mode graph-copy, or --force")
        else:
            plan.reasons.append("the new module starts on a fresh heap; stable memory is kept")
    else:  # graph-copy
        plan.path = "graph-copy"
        if incompatible:
            refuse(f"the new stable types are incompatible ({n_issues} issue{'s' if n_issues != 1 else ''}); "
                   "a stabilized canister can only go forward, so graph copy is never forced")
        elif not old.graph_copy or not new.graph_copy:
            refuse(f"graph copy needs Motoko EOP modules on both sides ({STABILIZE_METHOD} and its counterpart)")
        else:
            plan.reasons.append("stabilize into stable memory, upgrade with replace, destabilize")
    if skip_pre_upgrade and plan.path == "graph-copy":
        refuse("--skip-pre-upgrade cannot be combined with a graph copy (pre_upgrade finishes the copy)")
    if skip_pre_upgrade and plan.path in ("keep", "replace"):
        if holds_data and old.graph_copy and not plan.force:
            # Verified on moc 1.1: Motoko's pre_upgrade is what hands the stable variables to the
            # next version (EnhancedOrthogonalPersistence.save); without it they start afresh.
            refuse("--skip-pre-upgrade resets every stable variable of a Motoko EOP canister to its initial "
                   "value (its pre_upgrade hands them over); add --force to accept that")
        else:
            plan.warnings.append("skip_pre_upgrade: the old module's pre_upgrade hook does not run "
                                 "(a last resort for a hook that always traps; Motoko loses its stable variables)")
