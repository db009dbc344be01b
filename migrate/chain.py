"""What an upgrade onto an enhanced migration chain (moc ``--enhanced-migration``, ``.most`` 4.0.0) does.

A chain canister's module carries its chain: migration modules by name, each a function from the
fields it reads to the fields it writes. The runtime (moc's desugaring of ``--enhanced-migration``,
verified on the pinned moc in ``tests/test_chains.py``) keeps the names of the migrations it has
run in the heap (``migrate.descriptor.applied_migrations_from_canister``) and, on an upgrade,
compares only the newest of them, *H*, with the new chain:

* H in the new chain at position k: the state is read as the chain's state after k (moc's ``pres``,
  ``StableSignature.chain_boundaries``), checked by the RTS against what the heap holds, and the
  migrations after k run in order, each reading its fields (a missing one traps: "migration M:
  field `f` expected but not found in state") and merging what it writes;
* H not in the new chain (renamed, deleted), or no chain yet: the state is read as the chain's
  initial state and *every* migration runs again on it;
* a new module without a chain traps ("cannot upgrade from an actor using enhanced migration to an
  actor not using enhanced migration"); a fresh install runs the whole chain from ``{}``.

``check_chain`` turns that into findings, with the same ``Issue`` shape as every other check: the
chain-level ones (an applied migration missing, moved or edited, a new one that sorts before H and
so never runs) and, by walking the migrations that will run forward from the fields the canister
holds, the field-level ones: a field a migration reads that will not be there, a field it
overwrites, one it discards, a type that does not fit (related by ``migrate.compat``'s walker),
a field of the new actor left without a value, a field dropped without a migration. The verdict
agrees with moc's ``stableCompatible`` (the field walk covers moc's check of the canister's fields
against the state after H) and is stricter where the runtime is: a migration that never runs, an
actor field left uninitialized when nothing is pending, an applied migration that would run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from migrate.report import ChainSummary, Issue, PendingMigration, show_type
from migrate.stable_types import Migration, RecordType, StableSignature, StableType, label_hash, migration_fields

__all__ = ["Relate", "check_chain"]

Relate = Callable[[StableType, StableType, str], list[Issue]]
"""``relate(old_type, new_type, path)``: every problem of storing an old value where the new type is
expected (types in the old and the new signature's environments)."""

_RESTORE_HINT = ("an applied migration must stay in the chain under its name and unchanged (mops build-limit "
                 "may leave out only the oldest ones); restore the file `{name}.mo` (to undo the upgrade that ran "
                 "it, `graphcopy rollback`)")
_NEW_MIGRATION_HINT = ("give it a timestamp later than `{last}` (`mops migrate new <Name>` does), so that it runs "
                       "after the migrations the canister has applied")


@dataclass
class _Slot:
    """A field of the state while the pending migrations run: its type, and where its value comes
    from (``""``: the canister's heap, else the migration that wrote it)."""

    name: str
    typ: StableType
    origin: str
    checked: bool = False  # a canister value already related to the type a migration or the actor reads
    consumed_by: str = ""  # the migration that read it without writing it back


def check_chain(
    old: StableSignature, new: StableSignature, applied: Sequence[str] | None, relate: Relate
) -> tuple[list[Issue], list[Issue], ChainSummary | None]:
    """Errors, warnings and the chain summary for upgrading a canister whose stable signature is
    ``old`` to ``new`` when either uses a migration chain. ``applied`` is the list of migrations the
    canister has applied, oldest first, from its heap (``None``: unknown, so the old signature's
    chain is taken as applied)."""
    if new.chain is None:
        return [_abandoned(old, applied)], [], None
    errors: list[Issue] = []
    warnings: list[Issue] = []
    if applied is not None:
        done, source = list(applied), "canister heap"
    elif old.chain is not None:
        done, source = [m.name for m in old.chain], "old signature"
    else:
        done, source = [], "none"
    names = [m.name for m in new.chain]
    last = done[-1] if done else None
    start = names.index(last) + 1 if last in names else 0
    trimmed: list[str] = []
    if last is not None and last not in names:
        errors.append(_missing(old, new, last, done))
    elif last is not None:
        trimmed = _positions(names, done, start, errors, warnings)
    warnings += _edited(old, new, done)
    pending = new.chain[start:]
    found_errors, found_warnings, discards = _walk(old, new, pending, relate)
    errors += found_errors
    warnings += found_warnings
    summary = ChainSummary(
        chain=tuple(names), applied=tuple(done), applied_source=source, last_applied=last,
        pending=tuple(_pending(m, new, discards.get(m.name, ())) for m in pending), trimmed=tuple(trimmed))
    return errors, warnings, summary


def _abandoned(old: StableSignature, applied: Sequence[str] | None) -> Issue:
    last = applied[-1] if applied else old.last_migration
    return Issue(
        path="migrations", rule="chain-abandoned", old=f"chain up to {last}" if last else "a migration chain",
        new="no migration chain",
        message="the canister runs a migration chain and the new version is compiled without --enhanced-migration: "
                "the runtime traps (\"cannot upgrade from an actor using enhanced migration to an actor not using "
                "enhanced migration\"; moc: M0255)",
        hint="keep compiling with --enhanced-migration (mops: [canisters.<name>.migrations]) and express the change "
             "as a new migration in the chain")


def _missing(old: StableSignature, new: StableSignature, last: str, done: list[str]) -> Issue:
    """The canister's last applied migration is not in the new chain."""
    assert new.chain is not None
    renamed = ""
    old_typ = next((m.typ for m in old.chain or () if m.name == last), None)
    if old_typ is not None:
        same = [m.name for m in new.chain if m.name not in done and show_type(m.typ) == show_type(old_typ)]
        if same:
            renamed = f"; it looks renamed to `{same[0]}` (the same type)"
    return Issue(
        path=f"migrations/{last}", rule="applied-migration-missing", old=last, new="(absent)", migration=last,
        message=f"the canister's last applied migration `{last}` is not in the new chain{renamed}: the runtime "
                f"would start over and run all {len(new.chain)} migrations again on the data the canister holds",
        hint=_RESTORE_HINT.format(name=last))


def _positions(names: list[str], done: list[str], start: int, errors: list[Issue], warnings: list[Issue]) -> list[str]:
    """Findings about where the applied migrations and the new ones sit in the new chain, given
    that the last applied one is ``names[start - 1]``. Returns the applied migrations the chain
    leaves out at its start (trimmed)."""
    last = names[start - 1]
    applied = set(done)
    position = {n: i for i, n in enumerate(names)}
    for name in done[:-1]:
        if name in position and position[name] >= start:
            errors.append(Issue(
                path=f"migrations/{name}", rule="applied-migration-rerun", old=name, new=name, migration=name,
                message=f"`{name}` has been applied, but the new chain puts it after the last applied migration "
                        f"`{last}`: the runtime would run it again",
                hint=_RESTORE_HINT.format(name=name) + " in its place (migration files are run in name order)"))
    for name in names[: start - 1]:
        if name not in applied:
            errors.append(Issue(
                path=f"migrations/{name}", rule="migration-never-runs", old="", new=name, migration=name,
                message=f"`{name}` has not been applied and sorts before the canister's last applied migration "
                        f"`{last}`: the runtime skips it, so its changes never happen on this canister",
                hint=_NEW_MIGRATION_HINT.format(last=last)))
    first = names[0]
    trimmed = [n for n in done if n not in position and n < first]
    for name in done[:-1]:
        if name not in position and name not in trimmed:
            warnings.append(Issue(
                path=f"migrations/{name}", rule="applied-migration-removed", old=name, new="(absent)", migration=name,
                severity="warning",
                message=f"`{name}` has been applied and is no longer in the chain; the runtime compares only the "
                        f"last applied one (`{last}`), so this upgrade is not affected, but the chain's history "
                        "changed",
                hint="keep applied migrations in the chain (a fresh install replays it, and moc checks it against "
                     "the deployed version with --stable-baseline)"))
    return trimmed


def _edited(old: StableSignature, new: StableSignature, done: list[str]) -> list[Issue]:
    """Applied migrations whose type differs between the old and the new chain."""
    assert new.chain is not None
    before = {m.name: m.typ for m in old.chain or ()}
    out = []
    for m in new.chain:
        was = before.get(m.name)
        if m.name in done and was is not None and show_type(was) != show_type(m.typ):
            out.append(Issue(
                path=f"migrations/{m.name}", rule="applied-migration-edited", old=show_type(was),
                new=show_type(m.typ), migration=m.name, severity="warning",
                message=f"`{m.name}` has been applied, and its type changed: it does not run again, so the change "
                        "has no effect on this canister (a fresh install runs the new version)",
                hint="leave applied migrations as they are; put the change in a new migration"))
    return out


def _walk(
    old: StableSignature, new: StableSignature, pending: Sequence[Migration], relate: Relate
) -> tuple[list[Issue], list[Issue], dict[str, tuple[str, ...]]]:
    """Run the pending migrations over the fields the canister holds, as the runtime does, and
    report what does not fit. Returns errors, warnings and, per migration, the canister fields it
    discards."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    state: dict[int, _Slot] = {label_hash(f.name): _Slot(f.name, f.typ, "") for f in old.post}
    post = {label_hash(f.name): f for f in new.post}
    for m in pending:
        reads, writes = migration_fields(m.typ, new.env)
        written = {label_hash(f.name) for f in writes}
        for f in reads:
            slot = state.get(label_hash(f.name))
            if slot is None:
                errors.append(Issue(
                    path=f.name, rule="migration-input-missing", old="", new=show_type(f.typ), migration=m.name,
                    message=f"migration `{m.name}` reads `{f.name}`, which the canister will not have at that point: "
                            f"the upgrade traps (\"migration {m.name}: field `{f.name}` expected but not found\")",
                    hint=f"let an earlier migration write `{f.name}`, or take it out of `{m.name}`'s parameter"))
                continue
            if slot.origin == "" and not slot.checked:
                slot.checked = True
                errors += [_in_migration(i, m.name) for i in relate(slot.typ, f.typ, f.name)]
            if label_hash(f.name) not in written and slot.origin == "":
                slot.consumed_by = m.name
        for f in writes:
            key = label_hash(f.name)
            slot = state.get(key)
            if slot is not None and slot.origin == "" and not slot.consumed_by and key not in {
                label_hash(r.name) for r in reads
            }:
                errors.append(Issue(
                    path=f.name, rule="migration-overwrites-field", old=show_type(slot.typ), new=show_type(f.typ),
                    migration=m.name,
                    message=f"migration `{m.name}` writes `{f.name}` without reading it, but the canister holds "
                            f"`{f.name}`: its value would be discarded (moc: M0169)",
                    hint=f"read it in the parameter (`old : {{{f.name} : {show_type(slot.typ)}}}`) to keep or convert "
                         "it; a migration that introduces a field must not find it already there"))
            state[key] = _Slot(f.name, f.typ, m.name)
    discards: dict[str, list[str]] = {}
    for key, slot in state.items():
        if key in post:
            continue
        if slot.consumed_by:
            discards.setdefault(slot.consumed_by, []).append(slot.name)
            warnings.append(Issue(
                path=slot.name, rule="migration-discards-field", old=show_type(slot.typ), new="",
                migration=slot.consumed_by, severity="warning",
                message=f"migration `{slot.consumed_by}` reads `{slot.name}` and the new version does not keep it: "
                        "its data is dropped",
                hint="make sure the migration moves what it needs into the fields it writes; the rest is gone"))
        elif slot.origin == "":
            errors.append(_dropped(slot))
    for key, var in post.items():
        slot = state.get(key)
        if slot is None:
            errors.append(Issue(
                path=var.name, rule="actor-field-uninitialized", old="", new=show_type(var.typ),
                message=f"after the migrations this upgrade runs, the new actor's stable field `{var.name}` has no "
                        f"value: the upgrade traps (\"stable variable `{var.name}` ... not found in persisted "
                        "state\")",
                hint=f"add a migration after the last applied one that writes `{var.name}` "
                     f"(`public func migration(_ : {{}}) : {{{var.name} : {show_type(var.typ)}}}`)"))
        elif slot.origin == "" and not slot.checked:
            errors += relate(slot.typ, var.typ, var.name)
    return errors, warnings, {k: tuple(v) for k, v in discards.items()}


def _in_migration(issue: Issue, migration: str) -> Issue:
    return Issue(path=issue.path, rule=issue.rule, old=issue.old, new=issue.new,
                 message=f"{issue.message} (migration `{migration}` reads it)", hint=issue.hint,
                 severity=issue.severity, migration=migration)


def _dropped(slot: _Slot) -> Issue:
    shown = show_type(slot.typ)
    return Issue(
        path=slot.name, rule="drop-stable-variable", old=shown, new="",
        message=f"stable variable `{slot.name}` is missing from the new version and no migration reads it, so its "
                "data would be lost (moc: M0169)",
        hint=f"to drop it on purpose, add a migration that reads it and writes nothing back (`mops migrate new "
             f"Drop`: `public func migration(_ : {{{slot.name} : {shown}}}) : {{}} {{ {{}} }}`); or keep "
             f"`{slot.name}` declared")


def _pending(m: Migration, new: StableSignature, discards: tuple[str, ...]) -> PendingMigration:
    reads, writes = migration_fields(m.typ, new.env)
    return PendingMigration(name=m.name, reads=show_type(RecordType(reads)), writes=show_type(RecordType(writes)),
                            discards=discards)

