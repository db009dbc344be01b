"""The compatibility report: its issues (rule id, path, old/new type, message, hint) and, for an
upgrade onto a migration chain, what the chain will do.

``migrate.compat`` fills it in (``check_compatibility``); this module only holds and presents it:
``Issue``, ``CompatReport``, ``ChainSummary`` and ``PendingMigration``, each with ``to_dict`` (for
``--json``) and a text form, and ``RULES``, every rule id with a one-line description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from migrate.stable_types import StableType, format_type

__all__ = ["CHAIN_RULES", "RULES", "ChainSummary", "CompatReport", "Issue", "PendingMigration", "Severity", "show_type"]

Severity = Literal["error", "warning"]

#: Every rule id with a one-line description.
RULES: dict[str, str] = {
    "drop-stable-variable": "a stable variable of the old version is missing from the new one",
    "required-migration-input-missing": "the new migration function requires (`in`) a variable the old version lacks",
    "migration-consumes-variable": "warning: the migration consumes a variable the new version does not keep",
    "type-mismatch": "the types are unrelated (different constructors or primitives, Int -> Nat, record vs tuple...)",
    "char-nat32": "Char <-> Nat32 (the runtime check cannot tell them apart; moc rejects; so do we)",
    "unit-null": "() <-> Null (the runtime check cannot tell them apart; moc rejects; so do we)",
    "blob-array": "Blob <-> [Nat8]: different representations",
    "promote-to-any": "a value becomes Any and its content is lost (None -> Any too, which moc accepts)",
    "option-insertion": "T -> ?T: options are unboxed, an old value is not a valid ?T",
    "option-removal": "?T -> T",
    "mutability-changed": "var <-> immutable inside a type (record field or array), not at the top level",
    "mutable-invariant": "a widening (Nat -> Int, a new tag, None -> T) under var/[var], where types must be equal",
    "null-option-invariant": "Null -> ?T under var/[var] (the runtime accepts it; moc rejects; so do we)",
    "record-field-added": "a record field was added (even an optional one)",
    "record-field-removed": "a record field was removed",
    "remove-variant-tag": "a variant tag that old values may carry was removed",
    "add-variant-tag": "a variant tag was added where values flow back (function argument)",
    "tuple-arity": "the tuple has a different number of components",
    "func-arity": "the shared function has a different number of parameters or results",
    "func-annotation": "the shared function's kind changed (shared/query/composite query, async/one-way)",
    "actor-method-removed": "an actor reference type lost a method (the runtime accepts it; moc rejects; so do we)",
    "actor-method-added": "an actor reference type gained a method old references may not implement",
    "type-component-mismatch": "type components of an object/actor type differ (moc requires them equal)",
    "non-stable-type": "the type is not stable (local function, Error, async, module)",
    "too-deep": "the types nest too deeply to decide (non-regular recursion); treated as incompatible",
    "report-truncated": "warning: more issues than a report lists (the first ones are kept)",
    # Enhanced migration chains (moc --enhanced-migration, .most 4.0.0).
    "chain-abandoned": "the canister uses a migration chain and the new version does not (the runtime traps)",
    "applied-migration-missing": "the canister's last applied migration is not in the new chain, so the runtime "
                                 "would run the whole chain again on the existing state (moc: dropped variables)",
    "applied-migration-rerun": "a migration the canister has applied sorts after its last applied one in the new "
                               "chain, so it would run again (moc does not check this)",
    "migration-never-runs": "a new migration sorts before the canister's last applied one: the runtime never runs "
                            "it (moc accepts such a chain when nothing later needs the step; so we are stricter)",
    "migration-input-missing": "a migration that will run reads a field the canister will not have at that point "
                               "(the upgrade traps)",
    "migration-overwrites-field": "a migration that will run writes a field the canister holds without reading it: "
                                  "the old value would be discarded (moc: a dropped variable)",
    "actor-field-uninitialized": "after the migrations that will run, a stable field of the new actor has no value "
                                 "(the upgrade traps; moc misses it when no migration is pending)",
    "migration-discards-field": "warning: a migration that will run reads a field and the new version does not keep "
                                "it: its data is dropped",
    "applied-migration-removed": "warning: a migration the canister has applied is no longer in the chain (only the "
                                 "last applied one matters to the runtime)",
    "applied-migration-edited": "warning: the type of a migration the canister has applied changed; it does not run "
                                "again, so the change has no effect on this canister",
}

#: The rule ids about migration chains (``.most`` 4.0.0).
CHAIN_RULES: frozenset[str] = frozenset({
    "chain-abandoned", "applied-migration-missing", "applied-migration-rerun", "migration-never-runs",
    "migration-input-missing", "migration-overwrites-field", "actor-field-uninitialized", "migration-discards-field",
    "applied-migration-removed", "applied-migration-edited",
})

_HASH_SUFFIX = re.compile(r"__\d+(?=\b|<)")


def show_type(t: StableType | None) -> str:
    """One-line Motoko syntax; moc's ``__<hash>`` suffixes of type names are elided, as in moc's
    own messages."""
    if t is None:
        return ""
    return _HASH_SUFFIX.sub("", format_type(t, margin=1_000_000))


@dataclass(frozen=True)
class Issue:
    """One incompatibility (``severity="error"``) or caution (``"warning"``).

    ``path`` locates it from a stable variable (``accounts[].balance``; for a finding about a
    migration chain as a whole, ``migrations/<name>``); ``old``/``new`` are the two types there in
    Motoko syntax (``""`` where one side is absent); ``rule`` is a stable id (see ``RULES``);
    ``message`` says what is wrong, ``hint`` what to do; ``migration`` names the chain migration
    the finding is about (``""`` for none)."""

    path: str
    rule: str
    old: str
    new: str
    message: str
    hint: str
    severity: Severity = "error"
    migration: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form (``migration`` only when the finding is about one)."""
        out = {
            "path": self.path,
            "rule": self.rule,
            "severity": self.severity,
            "old": self.old,
            "new": self.new,
            "message": self.message,
            "hint": self.hint,
        }
        if self.migration:
            out["migration"] = self.migration
        return out

    def format_text(self) -> str:
        """Several lines: the headline, both types, the hint."""
        lines = [f"{self.severity} [{self.rule}] {self.path}: {self.message}"]
        if self.old or self.new:
            lines.append(f"    old: {_clip(self.old) or '(absent)'}")
            lines.append(f"    new: {_clip(self.new) or '(absent)'}")
        if self.hint:
            lines.append(f"    hint: {self.hint}")
        return "\n".join(lines)


@dataclass(frozen=True)
class PendingMigration:
    """A chain migration this upgrade will run: its name, what it reads and writes (record types in
    Motoko syntax), and the canister fields it discards (reads and the new version does not keep)."""

    name: str
    reads: str
    writes: str
    discards: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "reads": self.reads, "writes": self.writes, "discards": list(self.discards)}

    def format_text(self) -> str:
        """``name : {reads} -> {writes}`` (and what it discards)."""
        dropped = f"  (discards {', '.join(self.discards)})" if self.discards else ""
        return f"{self.name} : {_clip(self.reads, 120)} -> {_clip(self.writes, 120)}{dropped}"


@dataclass(frozen=True)
class ChainSummary:
    """What the new version's migration chain does to this canister.

    ``chain`` names the new chain's migrations in the order the runtime runs them; ``applied`` the
    migrations the canister has applied, oldest first, and ``applied_source`` where that list came
    from (``"canister heap"``, ``"old signature"`` when only the old version's chain is known, or
    ``"none"`` for a canister without a chain yet); ``last_applied`` is the one the runtime compares
    (``None``: none); ``pending`` the migrations this upgrade runs, in order; ``trimmed`` the applied
    migrations older than the new chain's first one (mops ``build-limit`` leaves them out; harmless)."""

    chain: tuple[str, ...]
    applied: tuple[str, ...]
    applied_source: str
    last_applied: str | None
    pending: tuple[PendingMigration, ...]
    trimmed: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"chain": list(self.chain), "applied": list(self.applied), "applied_source": self.applied_source,
                "last_applied": self.last_applied, "pending": [p.to_dict() for p in self.pending],
                "trimmed": list(self.trimmed)}

    def format_lines(self) -> list[str]:
        """For people: the chain, what the canister has applied, what this upgrade will run."""
        n = len(self.chain)
        lines = [f"migration chain: {n} migration{'s' if n != 1 else ''}"]
        if self.last_applied is None:
            lines.append("  the canister has applied none" + (
                " (it has no chain yet): all of them run, the first one on its current stable variables"
                if self.applied_source == "none" else ""))
        else:
            where = {"canister heap": "as its heap records", "old signature": "the old version's whole chain"}.get(
                self.applied_source, self.applied_source)
            lines.append(f"  the canister has applied {len(self.applied)} ({where}), last {self.last_applied}")
        if self.trimmed:
            lines.append(f"  {len(self.trimmed)} applied migration(s) older than the chain's first are left out of it "
                         f"(trimmed): {', '.join(self.trimmed)}")
        if self.pending:
            lines.append("  this upgrade runs, in order:")
            lines += [f"    {p.format_text()}" for p in self.pending]
        else:
            lines.append("  this upgrade runs no migration")
        return lines


@dataclass(frozen=True)
class CompatReport:
    """The verdict: ``compatible`` is True iff ``issues`` (the errors) is empty. ``chain`` says what
    the new version's migration chain will do (``None`` when neither side has a chain)."""

    issues: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    chain: ChainSummary | None = None

    @property
    def compatible(self) -> bool:
        return not self.issues

    @property
    def rules(self) -> set[str]:
        """The rule ids of the errors."""
        return {i.rule for i in self.issues}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"compatible", "errors", "warnings"}`` (and ``"chain"`` with a chain)."""
        out: dict[str, Any] = {
            "compatible": self.compatible,
            "errors": [i.to_dict() for i in self.issues],
            "warnings": [w.to_dict() for w in self.warnings],
        }
        if self.chain is not None:
            out["chain"] = self.chain.to_dict()
        return out

    def format_text(self) -> str:
        """A human report: a verdict line, then what the chain does, then every error and warning."""
        n, w = len(self.issues), len(self.warnings)
        warned = f"{w} warning{'s' if w != 1 else ''}"
        if self.compatible:
            head = f"compatible ({warned})" if w else "compatible"
        else:
            head = f"incompatible: {n} error{'s' if n != 1 else ''}" + (f", {warned}" if w else "")
        chain = self.chain.format_lines() if self.chain is not None else []
        return "\n".join([head, *chain, *(i.format_text() for i in [*self.issues, *self.warnings])])


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
