"""Is an upgrade from one stable signature to the next safe? Every incompatibility, explained.

``check_compatibility(old, new)`` aligns the stable variables the old version keeps (``old.post``)
with those the new version reads (``new.pre``; for a 1.0.0 signature, all of its variables), as
``moc --stable-compatible`` does, and relates each pair of types with Motoko's *stable subtyping*:
the old value must be a valid value of the new type without conversion and without losing data.
Unlike moc, which stops at the first problem of each variable, the walk continues and reports every
incompatibility with a path (``accounts[].balance``, ``log.#deposit``, ``owner?.name``,
``f.<arg 0>``, ``pair.1``, ``peer.notify``), both types in Motoko syntax, a rule id and a hint.

The relation is the conjunction of the runtime check (``rts/motoko-rts/src/idl.rs``
``memory_compatible``, run by the canister when it registers the new stable type) and the
compile-time check (``moc --stable-compatible``: ``stable.ml match_stab_sig`` and ``type.ml``
``rel_typ`` in stable mode). Where they disagree, the STRICTER answer is taken; each such case
has its own rule id (or is named here):

* ``char-nat32``: ``Char`` <-> ``Nat32``. The EOP type descriptor gives both the same code, so the
  runtime accepts the change, but their scalar tags differ in memory; moc rejects it.
* ``unit-null``: ``()`` <-> ``Null``: one descriptor code, different values; moc rejects it.
* ``null-option-invariant``: ``Null`` -> ``?T`` under ``var``/``[var]``: the runtime's null->opt
  rule ignores invariance, so an aliased ``Null`` location could later hold a non-null value; moc
  rejects it.
* ``actor-method-removed``: dropping methods from an actor reference type: the runtime allows it
  (covariant services), moc's stable subtyping does not.
* ``drop-stable-variable`` also covers the runtime's main-actor quirk (a dropped variable whose
  label hash is larger than every remaining new one passes the runtime check); moc rejects it.
* ``promote-to-any`` also covers ``None`` -> ``Any``, which moc 1.x accepts (its ``Non`` case
  fires before ``Any`` is unfolded) and the runtime rejects.
* ``type-component-mismatch``: type components of object/actor types (``actor { type T = ... }``)
  carry no data and are invisible to the runtime, but moc requires them to be equal.
* migration chains (4.0.0, ``migrate.chain``): ``migration-never-runs`` (a step sorted before the
  last applied one, which the runtime skips and moc accepts when nothing later needs it) and
  ``actor-field-uninitialized`` (moc misses it when no step is pending; the runtime traps).

Rule ids (``RULES`` in ``migrate.report`` maps each to its one-line description; the chain rules
are ``CHAIN_RULES``): ``drop-stable-variable``,
``required-migration-input-missing``, ``migration-consumes-variable`` (warning),
``type-mismatch``, ``char-nat32``, ``unit-null``, ``blob-array``, ``promote-to-any``,
``option-insertion``, ``option-removal``, ``mutability-changed``, ``mutable-invariant``,
``null-option-invariant``, ``record-field-added``, ``record-field-removed``,
``remove-variant-tag``, ``add-variant-tag``, ``tuple-arity``, ``func-arity``,
``func-annotation``, ``actor-method-removed``, ``actor-method-added``,
``type-component-mismatch``, ``non-stable-type``, ``too-deep``, ``report-truncated`` (warning).

Labels are matched by their Candid hash (``label_hash``), as the runtime does, so a signature
decoded from the binary descriptor (labels ``_<hash>_``) lines up with one parsed from ``.most``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from migrate.chain import check_chain
from migrate.report import RULES, ChainSummary, CompatReport, Issue, show_type
from migrate.stable_types import (
    ActorType,
    AnyType,
    ArrayType,
    ConType,
    Field,
    FuncType,
    NoneType,
    OptType,
    Prim,
    RecordType,
    StableField,
    StableSignature,
    StableType,
    Tag,
    TupleType,
    TypeDef,
    TypeEnv,
    VariantType,
    VarType,
    WeakType,
    children,
    label_hash,
    substitute,
    unfold,
)

__all__ = ["RULES", "CompatReport", "Issue", "check_compatibility", "check_types"]

_MIGRATION_HINT = "(with migration = func(old : {{{inputs}}}) : {{{outputs}}} = {{{body}}}) persistent actor {{ ... }}"
_MAX_DEPTH = 200  # nesting of the walk; Python frames, not recursion through memoized type names
_MAX_ISSUES = 1000


_show = show_type


# ---------------------------------------------------------------------------------------------
# The walk


@dataclass(frozen=True)
class _Problem:
    """An issue relative to the pair of types where it was found: ``segs`` from there on."""

    segs: tuple[str, ...]
    rule: str
    old: StableType | None
    new: StableType | None
    message: str
    hint: str


_IN_PROGRESS: list[_Problem] = []  # sentinel: a pair under check, assumed related (coinduction)


def _is_numeric_label(name: str) -> bool:
    return len(name) >= 3 and name[0] == "_" == name[-1] and name[1:-1].isdigit()


def same_label(a: str, b: str) -> bool:
    """Labels match by name, or by Candid hash when one side only knows the hash (``_123_``)."""
    if a == b:
        return True
    return (_is_numeric_label(a) or _is_numeric_label(b)) and label_hash(a) == label_hash(b)


_L = TypeVar("_L", Field, Tag, TypeDef, StableField)


def _align(xs: Sequence[_L], ys: Sequence[_L]) -> Iterator[tuple[_L | None, _L | None]]:
    """Pairs ``(x, y)`` of same-label items, then ``(x, None)`` and ``(None, y)`` for the rest, in
    the order of ``xs`` followed by the leftover ``ys``."""
    by_hash: dict[int, list[_L]] = {}
    for y in ys:
        by_hash.setdefault(label_hash(y.name), []).append(y)
    used: set[int] = set()
    for x in xs:
        match = next(
            (y for y in by_hash.get(label_hash(x.name), []) if id(y) not in used and same_label(x.name, y.name)),
            None,
        )
        if match is not None:
            used.add(id(match))
        yield x, match
    for y in ys:
        if id(y) not in used:
            yield None, y


class _Walker:
    """Relates ``t1 <= t2`` (``t1`` flows into ``t2``). ``flip`` says that ``t1`` is the NEW type
    (inside function parameters the relation is reversed), so reports can always say old/new."""

    def __init__(self, old_env: TypeEnv, new_env: TypeEnv) -> None:
        self.old_env = old_env
        self.new_env = new_env
        self.memo: dict[tuple[StableType, StableType, bool, bool], list[_Problem]] = {}
        self.depth = 0
        self.truncated = False
        self.same_defs = _same_definitions(old_env, new_env)

    def envs(self, flip: bool) -> tuple[TypeEnv, TypeEnv]:
        return (self.new_env, self.old_env) if flip else (self.old_env, self.new_env)

    def rel(self, t1: StableType, t2: StableType, inv: bool, flip: bool) -> list[_Problem]:
        """Problems of ``t1 <= t2`` (``inv``: the types must be equal, as under ``var``)."""
        if t1 is t2 and not isinstance(t1, ConType) and self.old_env is self.new_env:
            return []
        key: tuple[StableType, StableType, bool, bool] | None = None
        if isinstance(t1, ConType) or isinstance(t2, ConType):
            if _too_big(t1) or _too_big(t2):
                # Non-regular ("expansive") recursion, which moc rejects in programs: the type
                # arguments double at every unfolding, so hashing them would never finish.
                return [self.problem("too-deep", t1, t2, flip, "the type arguments grow without bound")]
            if t1 == t2 and _con_names(t1) <= self.same_defs:
                return []  # the same type over the same definitions: related in every variance
            key = (t1, t2, inv, flip)
            cached = self.memo.get(key)
            if cached is not None:
                return cached  # _IN_PROGRESS ([]) while the pair is being related: assume yes
            self.memo[key] = _IN_PROGRESS
        self.depth += 1
        try:
            if self.depth > _MAX_DEPTH:
                out = [self.problem("too-deep", t1, t2, flip, "the types nest too deeply to compare")]
            else:
                env1, env2 = self.envs(flip)
                out = self.rel_structural(unfold(t1, env1), unfold(t2, env2), t1, t2, inv, flip)
        finally:
            self.depth -= 1
        if len(out) > _MAX_ISSUES:
            # Shared type definitions multiply paths; keep the report (and memory) bounded.
            out = out[:_MAX_ISSUES]
            self.truncated = True
        if key is not None:
            self.memo[key] = out
        return out

    def problem(
        self, rule: str, t1: StableType | None, t2: StableType | None, flip: bool, message: str, hint: str = ""
    ) -> _Problem:
        old, new = (t2, t1) if flip else (t1, t2)
        if flip:
            # Inside a function parameter the relation runs backwards: a stored function only
            # accepts what the old parameter type allowed.
            message += " (in a function argument, the new type must fit into the old one)"
        return _Problem((), rule, old, new, message, hint or _HINTS.get(rule, ""))

    @staticmethod
    def under(seg: str, problems: list[_Problem]) -> list[_Problem]:
        return [_Problem((seg, *p.segs), p.rule, p.old, p.new, p.message, p.hint) for p in problems]

    def rel_structural(
        self, u1: StableType, u2: StableType, t1: StableType, t2: StableType, inv: bool, flip: bool
    ) -> list[_Problem]:
        """``u1``/``u2`` are ``t1``/``t2`` unfolded; ``t1``/``t2`` are kept for the report."""
        o, n = (u2, u1) if flip else (u1, u2)
        mismatch = self.problem
        if isinstance(u1, AnyType) and isinstance(u2, AnyType):
            return []
        if isinstance(u2, AnyType):
            # u1 flows into Any (for a flipped pair: the old argument type was Any, the new is narrower).
            return [mismatch("promote-to-any", t1, t2, flip, f"promoting {_show(u1)} to Any loses the data")]
        if isinstance(u1, AnyType):
            return [mismatch("type-mismatch", t1, t2, flip, f"Any cannot become {_show(u2)}")]
        if isinstance(u1, NoneType):
            if isinstance(u2, NoneType):
                return []
            if inv:
                return [mismatch("mutable-invariant", t1, t2, flip, "None cannot change under var/[var]")]
            return []
        if isinstance(u1, Prim) and isinstance(u2, Prim):
            return self.rel_prims(u1, u2, t1, t2, inv, flip)
        if isinstance(u1, Prim) and u1.name == "Null" and isinstance(u2, OptType):
            if inv:
                return [
                    mismatch(
                        "null-option-invariant", t1, t2, flip,
                        f"{_show(o)} -> {_show(n)} under var/[var]: an aliased location could later hold non-null",
                    )
                ]  # fmt: skip
            return []
        if isinstance(u1, OptType) and isinstance(u2, OptType):
            return self.under("?", self.rel(u1.inner, u2.inner, inv, flip))
        if isinstance(o, OptType) or isinstance(n, OptType):
            if isinstance(n, OptType):
                return [mismatch("option-insertion", t1, t2, flip, f"{_show(o)} cannot become an option {_show(n)}")]
            return [mismatch("option-removal", t1, t2, flip, f"the option {_show(o)} cannot lose its '?'")]
        if isinstance(u1, ArrayType) and isinstance(u2, ArrayType):
            if u1.mutable != u2.mutable:
                return [mismatch("mutability-changed", t1, t2, flip, "an array cannot change between [T] and [var T]")]
            return self.under("[]", self.rel(u1.elem, u2.elem, inv or u1.mutable, flip))
        if isinstance(u1, TupleType) and isinstance(u2, TupleType):
            if len(u1.items) != len(u2.items):
                k_old, k_new = (len(u2.items), len(u1.items)) if flip else (len(u1.items), len(u2.items))
                return [mismatch("tuple-arity", t1, t2, flip, f"a {k_old}-tuple cannot become a {k_new}-tuple")]
            out: list[_Problem] = []
            for k, (a, b) in enumerate(zip(u1.items, u2.items, strict=True)):
                out += self.under(str(k), self.rel(a, b, inv, flip))
            return out
        if isinstance(u1, RecordType) and isinstance(u2, RecordType):
            return self.rel_record(u1, u2, t1, t2, inv, flip)
        if isinstance(u1, VariantType) and isinstance(u2, VariantType):
            return self.rel_variant(u1, u2, inv, flip)
        if isinstance(u1, FuncType) and isinstance(u2, FuncType):
            return self.rel_func(u1, u2, t1, t2, inv, flip)
        if isinstance(u1, ActorType) and isinstance(u2, ActorType):
            return self.rel_actor(u1, u2, t1, t2, inv, flip)
        if isinstance(u1, WeakType) and isinstance(u2, WeakType):
            return self.under("<weak>", self.rel(u1.inner, u2.inner, inv, flip))
        if isinstance(u1, VarType) and isinstance(u2, VarType) and u1.name == u2.name:
            return []
        return [self.mismatch_of(o, n, t1, t2, flip)]

    def mismatch_of(self, o: StableType, n: StableType, t1: StableType, t2: StableType, flip: bool) -> _Problem:
        names = {type(o).__name__, type(n).__name__}
        if _is_prim(o, "Blob") and isinstance(n, ArrayType) or _is_prim(n, "Blob") and isinstance(o, ArrayType):
            return self.problem("blob-array", t1, t2, flip, "Blob and arrays have different representations")
        if _is_unit_null(o, n):
            return self.problem("unit-null", t1, t2, flip, "() and Null are different types")
        if names == {"RecordType", "TupleType"}:
            return self.problem("type-mismatch", t1, t2, flip, "a record cannot become a tuple or back")
        return self.problem("type-mismatch", t1, t2, flip, f"{_show(o)} cannot become {_show(n)}")

    def rel_prims(self, u1: Prim, u2: Prim, t1: StableType, t2: StableType, inv: bool, flip: bool) -> list[_Problem]:
        if u1.name == u2.name:
            return []
        if u1.name == "Nat" and u2.name == "Int":
            if inv:
                return [self.problem("mutable-invariant", t1, t2, flip, "Nat cannot widen to Int under var/[var]")]
            return []
        if {u1.name, u2.name} == {"Char", "Nat32"}:
            return [self.problem("char-nat32", t1, t2, flip, "Char and Nat32 are stored differently")]
        o, n = (u2, u1) if flip else (u1, u2)
        return [self.problem("type-mismatch", t1, t2, flip, f"{o.name} cannot become {n.name}")]

    def rel_record(
        self, u1: RecordType, u2: RecordType, t1: StableType, t2: StableType, inv: bool, flip: bool
    ) -> list[_Problem]:
        out: list[_Problem] = []
        for f1, f2 in _align(u1.fields, u2.fields):
            if f1 is None or f2 is None:
                present: Field = f1 if f1 is not None else f2  # type: ignore[assignment]
                removed = (f2 is None) != flip  # the OLD side has it
                rule = "record-field-removed" if removed else "record-field-added"
                what = "removed" if removed else "added"
                shown = f"{'var ' if present.mutable else ''}{present.name} : {_show(present.typ)}"
                old_f, new_f = (present.typ, None) if removed else (None, present.typ)
                out.append(
                    _Problem(
                        (present.name,), rule, old_f, new_f, f"field `{shown}` was {what}", _HINTS[rule]
                    )
                )
                continue
            if f1.mutable != f2.mutable:
                out.append(
                    _Problem(
                        (f2.name,), "mutability-changed", *((f2.typ, f1.typ) if flip else (f1.typ, f2.typ)),
                        f"field `{f2.name}` changed between `var` and immutable", _HINTS["mutability-changed"],
                    )
                )  # fmt: skip
                continue
            out += self.under(f2.name, self.rel(f1.typ, f2.typ, inv or f1.mutable, flip))
        out += self.rel_components(u1.type_fields, u2.type_fields, t1, t2, flip)
        return out

    def rel_components(
        self, d1: tuple[TypeDef, ...], d2: tuple[TypeDef, ...], t1: StableType, t2: StableType, flip: bool
    ) -> list[_Problem]:
        out: list[_Problem] = []
        for a, b in _align(d1, d2):
            if a is None or b is None or len(a.params) != len(b.params):
                name = a.name if a is not None else b.name if b is not None else ""
                out.append(
                    _Problem(
                        (f"type {name}",), "type-component-mismatch", *((t2, t1) if flip else (t1, t2)),
                        f"type component `{name}` differs", _HINTS["type-component-mismatch"],
                    )
                )  # fmt: skip
                continue
            vars_b = {p: VarType(q) for q, p in zip(a.params, b.params, strict=True)}
            problems = self.rel(a.body, substitute(b.body, vars_b), True, flip)
            if problems:
                out.append(
                    _Problem(
                        (f"type {a.name}",), "type-component-mismatch",
                        *((b.body, a.body) if flip else (a.body, b.body)),
                        f"type component `{a.name}` is defined differently", _HINTS["type-component-mismatch"],
                    )
                )  # fmt: skip
        return out

    def rel_variant(self, u1: VariantType, u2: VariantType, inv: bool, flip: bool) -> list[_Problem]:
        out: list[_Problem] = []
        for g1, g2 in _align(u1.tags, u2.tags):
            if g1 is not None and g2 is not None:
                out += self.under(f"#{g2.name}", self.rel(g1.typ, g2.typ, inv, flip))
                continue
            only1 = g1 is not None
            present: Tag = g1 if g1 is not None else g2  # type: ignore[assignment]
            if not only1 and not inv:
                continue  # a tag the target gained: fine where values only flow in
            removed = only1 != flip  # the OLD side has it
            seg = f"#{present.name}"
            if removed:
                out.append(
                    _Problem(
                        (seg,), "remove-variant-tag", present.typ, None,
                        f"tag #{present.name} was removed, but old values may carry it", _HINTS["remove-variant-tag"],
                    )
                )  # fmt: skip
            elif inv:
                out.append(
                    _Problem(
                        (seg,), "mutable-invariant", None, present.typ,
                        f"tag #{present.name} was added under var/[var], where the variant must stay the same",
                        _HINTS["mutable-invariant"],
                    )
                )  # fmt: skip
            else:
                out.append(
                    _Problem(
                        (seg,), "add-variant-tag", None, present.typ,
                        f"tag #{present.name} was added to a function argument: old functions cannot handle it",
                        _HINTS["add-variant-tag"],
                    )
                )  # fmt: skip
        return out

    def rel_func(
        self, u1: FuncType, u2: FuncType, t1: StableType, t2: StableType, inv: bool, flip: bool
    ) -> list[_Problem]:
        o, n = (u2, u1) if flip else (u1, u2)
        if u1.sort != u2.sort or u1.is_async != u2.is_async or len(u1.type_params) != len(u2.type_params):
            return [
                self.problem("func-annotation", t1, t2, flip, f"`{_func_kind(o)}` cannot become `{_func_kind(n)}`")
            ]
        out: list[_Problem] = []
        if len(u1.params) != len(u2.params):
            out.append(
                self.problem("func-arity", t1, t2, flip, f"{len(o.params)} parameter(s) cannot become {len(n.params)}")
            )
        if len(u1.results) != len(u2.results):
            out.append(
                self.problem("func-arity", t1, t2, flip, f"{len(o.results)} result(s) cannot become {len(n.results)}")
            )
        if out:
            return out
        # Binders are positional: rename the target's to the source's names.
        ren = {q: VarType(p) for p, q in zip(u1.type_params, u2.type_params, strict=True)}
        p2 = tuple(substitute(p, ren) for p in u2.params)
        r2 = tuple(substitute(r, ren) for r in u2.results)
        for k, (a, b) in enumerate(zip(u1.params, p2, strict=True)):
            # Contravariant: the new parameter must flow into the old one.
            out += self.under(f"<arg {k}>", self.rel(b, a, inv, not flip))
        for k, (a, b) in enumerate(zip(u1.results, r2, strict=True)):
            out += self.under(f"<result {k}>", self.rel(a, b, inv, flip))
        return out

    def rel_actor(
        self, u1: ActorType, u2: ActorType, t1: StableType, t2: StableType, inv: bool, flip: bool
    ) -> list[_Problem]:
        out: list[_Problem] = []
        for m1, m2 in _align(u1.methods, u2.methods):
            if m1 is not None and m2 is not None:
                out += self.under(m2.name, self.rel(m1.typ, m2.typ, inv, flip))
                continue
            present: Field = m1 if m1 is not None else m2  # type: ignore[assignment]
            removed = (m1 is not None) != flip
            if removed:
                out.append(
                    _Problem(
                        (present.name,), "actor-method-removed", present.typ, None,
                        f"method `{present.name}` was removed from the actor type", _HINTS["actor-method-removed"],
                    )
                )  # fmt: skip
            else:
                out.append(
                    _Problem(
                        (present.name,), "actor-method-added", None, present.typ,
                        f"method `{present.name}` was added: old references may not implement it",
                        _HINTS["actor-method-added"],
                    )
                )  # fmt: skip
        out += self.rel_components(u1.type_fields, u2.type_fields, t1, t2, flip)
        return out


_MAX_ARG_NODES = 5000


def _too_big(t: StableType) -> bool:
    """Whether a type reference's arguments, as a tree, exceed ``_MAX_ARG_NODES`` nodes. Counted
    over the shared object graph, so the count itself stays cheap."""
    if not isinstance(t, ConType) or not t.args:
        return False
    sizes: dict[int, int] = {}

    def size(u: StableType) -> int:
        k = id(u)
        if k not in sizes:
            sizes[k] = 1 + sum(min(size(c), _MAX_ARG_NODES) for c in children(u))
        return sizes[k]

    return sum(size(a) for a in t.args) > _MAX_ARG_NODES


def _con_names(t: StableType) -> set[str]:
    """Names of the type definitions ``t`` mentions directly."""
    out: set[str] = set()
    todo = [t]
    while todo:
        u = todo.pop()
        if isinstance(u, ConType):
            out.add(u.name)
        todo.extend(children(u))
        if isinstance(u, RecordType | ActorType):
            todo.extend(d.body for d in u.type_fields)
    return out


def _same_definitions(old_env: TypeEnv, new_env: TypeEnv) -> set[str]:
    """Names defined identically in both environments, all the way down (a greatest fixpoint:
    drop a name while its body mentions a name that is not in the set)."""
    same = {n for n, d in old_env.items() if new_env.get(n) == d}
    refs = {n: _con_names(old_env[n].body) for n in same}
    changed = True
    while changed:
        changed = False
        for n in list(same):
            if not refs[n] <= same:
                same.discard(n)
                changed = True
    return same


def _is_prim(t: StableType, name: str) -> bool:
    return isinstance(t, Prim) and t.name == name


def _is_unit_null(a: StableType, b: StableType) -> bool:
    unit = TupleType(())
    return (_is_prim(a, "Null") and b == unit) or (_is_prim(b, "Null") and a == unit)


def _func_kind(f: FuncType) -> str:
    sort = {"local": "", "shared": "shared", "query": "shared query", "composite": "shared composite query"}[f.sort]
    ctl = "async" if f.is_async else "one-way"
    binders = f"<{len(f.type_params)} type parameter(s)> " if f.type_params else ""
    return f"{binders}{sort} {ctl}".strip()


_HINTS: dict[str, str] = {
    "type-mismatch": "keep the old type, or convert the value in a migration function",
    "char-nat32": "keep the old type, or convert with Char.toNat32/Char.fromNat32 in a migration function",
    "unit-null": "keep the old type, or convert the value in a migration function",
    "blob-array": "keep the old type, or convert with Blob.toArray/Blob.fromArray in a migration function",
    "promote-to-any": "keep the old type; to discard the data on purpose, consume it in a migration function",
    "option-insertion": "keep the old type, or wrap the old value (?v) in a migration function",
    "option-removal": "keep the old type, or unwrap the old value (with a default for null) in a migration function",
    "mutability-changed": "keep the old mutability, or copy the data (Array.freeze/Array.thaw) in a migration function",
    "mutable-invariant": "types under var/[var] must stay exactly the same; convert in a migration function",
    "null-option-invariant": "types under var/[var] must stay exactly the same; convert in a migration function",
    "record-field-added": "records must keep exactly their fields; build the new records in a migration function",
    "record-field-removed": "records must keep exactly their fields; drop the field in a migration function",
    "remove-variant-tag": "keep the tag, or map it to another in a migration function",
    "add-variant-tag": "keep the argument type, or replace the function value in a migration function",
    "tuple-arity": "keep the old tuple, or rebuild the values in a migration function",
    "func-arity": "keep the old function type, or replace the stored function values in a migration function",
    "func-annotation": "keep the old function type, or replace the stored function values in a migration function",
    "actor-method-removed": "keep the method in the actor type, or retype the references in a migration function",
    "actor-method-added": "keep the old actor type, or retype the references in a migration function",
    "type-component-mismatch": "keep the type components of object/actor types as they were",
    "non-stable-type": "stable variables may only hold stable types: use shared functions, no closures or Error",
    "too-deep": "simplify the recursive type, or convert the data in a migration function",
}


def _join_path(root: str, segs: tuple[str, ...]) -> str:
    out = root
    for s in segs:
        out += s if s in ("?", "[]") else f".{s}"
    return out


# ---------------------------------------------------------------------------------------------
# Stability


def _non_stable(t: StableType, env: TypeEnv) -> Iterator[tuple[tuple[str, ...], StableType, str]]:
    """Where ``t`` is not a stable type: ``(path segments, type, reason)``."""
    seen: set[StableType] = set()

    def walk(t: StableType, segs: tuple[str, ...], depth: int) -> Iterator[tuple[tuple[str, ...], StableType, str]]:
        if isinstance(t, ConType):
            if depth > _MAX_DEPTH or _too_big(t) or t in seen:
                return
            seen.add(t)
        u = unfold(t, env)
        match u:
            case Prim("Error"):
                yield segs, t, "Error values are not stable"
            case FuncType() if u.sort == "local":
                yield segs, t, "local functions (closures) are not stable"
            case FuncType():
                for k, p in enumerate(u.params):
                    yield from walk(p, (*segs, f"<arg {k}>"), depth + 1)
                for k, r in enumerate(u.results):
                    yield from walk(r, (*segs, f"<result {k}>"), depth + 1)
            case ActorType():
                for m in u.methods:
                    if not (isinstance(unfold(m.typ, env), FuncType) and unfold(m.typ, env).sort != "local"):  # type: ignore[union-attr]
                        yield (*segs, m.name), m.typ, "actor methods must be shared functions"
                    else:
                        yield from walk(m.typ, (*segs, m.name), depth + 1)
            case OptType(inner):
                yield from walk(inner, (*segs, "?"), depth + 1)
            case ArrayType(elem, _):
                yield from walk(elem, (*segs, "[]"), depth + 1)
            case WeakType(inner):
                yield from walk(inner, (*segs, "<weak>"), depth + 1)
            case TupleType(items):
                for k, i in enumerate(items):
                    yield from walk(i, (*segs, str(k)), depth + 1)
            case RecordType(fields, _):
                for f in fields:
                    yield from walk(f.typ, (*segs, f.name), depth + 1)
            case VariantType(tags):
                for g in tags:
                    yield from walk(g.typ, (*segs, f"#{g.name}"), depth + 1)
            case _:
                return

    yield from walk(t, (), 0)


def _stability_issues(fields: Sequence[StableField], env: TypeEnv, which: str) -> list[Issue]:
    out: list[Issue] = []
    for f in fields:
        for segs, t, reason in _non_stable(f.typ, env):
            shown = _show(t)
            out.append(
                Issue(
                    path=_join_path(f.name, segs),
                    rule="non-stable-type",
                    old=shown if which == "old" else "",
                    new=shown if which == "new" else "",
                    message=f"the {which} version's stable variable `{f.name}` has a non-stable type: {reason}",
                    hint=_HINTS["non-stable-type"],
                )
            )
    return out


# ---------------------------------------------------------------------------------------------
# Public API


def check_types(old: StableType, new: StableType, old_types: TypeEnv, new_types: TypeEnv | None = None) -> list[Issue]:
    """Problems of storing a value of type ``old`` where ``new`` is expected (as at a stable
    variable: covariant, top-level mutability ignored); paths start at ``<value>``."""
    walker = _Walker(old_types, old_types if new_types is None else new_types)
    return [_to_issue("<value>", p) for p in walker.rel(old, new, False, False)]


def _to_issue(root: str, p: _Problem) -> Issue:
    return Issue(
        path=_join_path(root, p.segs),
        rule=p.rule,
        old=_show(p.old),
        new=_show(p.new),
        message=p.message,
        hint=p.hint,
    )


def check_compatibility(
    old: StableSignature, new: StableSignature, *, applied: Sequence[str] | None = None
) -> CompatReport:
    """Can a canister whose stable signature is ``old`` be upgraded to a module with ``new``?

    Compares ``old.post`` (what the old version stores) with ``new.pre`` (what the new one reads;
    all of its variables for 1.0.0), as ``moc --stable-compatible`` does, and returns every
    incompatibility (``issues``) and caution (``warnings``). When either side uses a migration
    chain (4.0.0), ``migrate.chain`` decides what the chain does (``report.chain``) from
    ``applied``, the migrations the canister has applied, oldest first, as its heap records them
    (``None``: unknown; the old version's chain is then taken as applied). Raises
    ``StableTypeError`` if a type refers to an undefined type name."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    errors += _stability_issues(old.post, old.env, "old")
    errors += _stability_issues(new.post if new.has_chain else new.upgrade_fields, new.env, "new")
    walker = _Walker(old.env, new.env)
    if old.has_chain or new.has_chain or applied:
        found, cautions, chain = check_chain(old, new, applied, lambda a, b, root: _relate(walker, a, b, root))
        return _finish(walker, errors + found, warnings + cautions, chain)
    new_pre = new.upgrade_fields
    post_names = {f.name for f in new.post}
    for f_old, f_new in _align(old.post, new_pre):
        if f_new is None:
            assert f_old is not None
            errors.append(_dropped(f_old))
            continue
        if f_old is None:
            if f_new.required:
                errors.append(
                    Issue(
                        path=f_new.name,
                        rule="required-migration-input-missing",
                        old="",
                        new=_show(f_new.typ),
                        message=f"the migration function requires `{f_new.name}`, which the old version does not have",
                        hint="remove the field from the migration function's parameter, "
                        "or deploy a version that declares the variable first",
                    )
                )
            continue
        problems = walker.rel(f_old.typ, f_new.typ, False, False)
        if len(errors) + len(problems) > _MAX_ISSUES:
            problems = problems[: max(1, _MAX_ISSUES - len(errors))]
            walker.truncated = True
        errors += [_to_issue(f_new.name, p) for p in problems]
        if f_new.required and f_new.name not in post_names and not problems:
            warnings.append(
                Issue(
                    path=f_new.name,
                    rule="migration-consumes-variable",
                    old=_show(f_old.typ),
                    new="",
                    message=f"the migration function consumes `{f_new.name}` and the new version does not keep it",
                    hint="make sure the migration moves what it needs into the new variables; the rest is dropped",
                    severity="warning",
                )
            )
    return _finish(walker, errors, warnings, None)


def _relate(walker: _Walker, old: StableType, new: StableType, root: str) -> list[Issue]:
    problems = walker.rel(old, new, False, False)
    if len(problems) > _MAX_ISSUES:
        problems = problems[:_MAX_ISSUES]
        walker.truncated = True
    return [_to_issue(root, p) for p in problems]


def _finish(walker: _Walker, errors: list[Issue], warnings: list[Issue], chain: ChainSummary | None) -> CompatReport:
    if len(errors) > _MAX_ISSUES:
        errors = errors[:_MAX_ISSUES]
        walker.truncated = True
    if walker.truncated:
        warnings.append(
            Issue(
                path="",
                rule="report-truncated",
                old="",
                new="",
                message=f"there are more than {_MAX_ISSUES} issues; only the first ones are listed",
                hint="fix the listed ones (shared type definitions repeat a problem at every use), then check again",
                severity="warning",
            )
        )
    return CompatReport(issues=errors, warnings=warnings, chain=chain)


def _dropped(f: StableField) -> Issue:
    shown = _show(f.typ)
    hint = "dropping a stable variable needs a migration function: " + _MIGRATION_HINT.format(
        inputs=f"{f.name} : {shown}", outputs="", body=""
    )
    return Issue(
        path=f.name,
        rule="drop-stable-variable",
        old=shown,
        new="",
        message=f"stable variable `{f.name}` is missing from the new version, so its data would be lost",
        hint=hint + f"; or keep `{f.name}` declared",
    )
