"""The model of Motoko stable types: type classes, ``TypeDef``, ``StableField``, ``StableSignature``.

Frozen dataclasses (values hash and compare structurally), the primitive constants (``NAT``,
``TEXT``, ``UNIT``, ...), and the helpers that walk and rewrite types: ``substitute``, ``unfold``,
``children`` and ``label_hash``. See :mod:`migrate.stable_types` for the overview.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from migrate.errors import StableTypeError

__all__ = [
    "ANY",
    "BLOB",
    "BOOL",
    "CHAR",
    "FLOAT",
    "INT",
    "NAT",
    "NONE",
    "NULL",
    "PRIM_NAMES",
    "PRINCIPAL",
    "REGION",
    "STABLE_PRIMS",
    "TEXT",
    "UNIT",
    "ActorType",
    "AnyType",
    "ArrayType",
    "ConType",
    "Field",
    "FuncSort",
    "FuncType",
    "Migration",
    "NamedType",
    "NoneType",
    "OptType",
    "Prim",
    "RecordType",
    "StableField",
    "StableSignature",
    "StableType",
    "Tag",
    "TupleType",
    "TypeDef",
    "TypeEnv",
    "VarType",
    "VariantType",
    "WeakType",
    "children",
    "label_hash",
    "migration_fields",
    "substitute",
    "unfold",
]

# ---------------------------------------------------------------------------------------------
# The model

#: Every primitive type name moc prints. ``Error`` is not stable (it only exists in async code)
#: but can be parsed so that a report can say so.
PRIM_NAMES: frozenset[str] = frozenset(
    {
        "Null", "Bool", "Nat", "Nat8", "Nat16", "Nat32", "Nat64", "Int", "Int8", "Int16", "Int32",
        "Int64", "Float", "Char", "Text", "Blob", "Error", "Principal", "Region",
    }
)  # fmt: skip
STABLE_PRIMS: frozenset[str] = PRIM_NAMES - {"Error"}

FuncSort = Literal["local", "shared", "query", "composite"]
_FUNC_SORTS: tuple[str, ...] = ("local", "shared", "query", "composite")


@dataclass(frozen=True)
class Prim:
    """A primitive type: ``Nat``, ``Int``, ``Nat8`` ... ``Int64``, ``Float``, ``Bool``, ``Char``,
    ``Text``, ``Blob``, ``Principal``, ``Region``, ``Null`` (and the non-stable ``Error``)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in PRIM_NAMES:
            raise ValueError(f"unknown primitive type {self.name!r}")


@dataclass(frozen=True)
class AnyType:
    """``Any``: the top type. Promoting a value to it loses the value's contents."""


@dataclass(frozen=True)
class NoneType:
    """``None``: the bottom type (no values)."""


@dataclass(frozen=True)
class OptType:
    """``?T``."""

    inner: StableType


@dataclass(frozen=True)
class ArrayType:
    """``[T]``, or ``[var T]`` when ``mutable``."""

    elem: StableType
    mutable: bool = False


@dataclass(frozen=True)
class TupleType:
    """``(T1, T2, ...)``; ``()`` (unit) is the empty tuple, ``(T,)`` the 1-tuple."""

    items: tuple[StableType, ...] = ()


@dataclass(frozen=True)
class Field:
    """A record field ``name : T`` (``var name : T`` when ``mutable``), or an actor method."""

    name: str
    typ: StableType
    mutable: bool = False


@dataclass(frozen=True)
class RecordType:
    """``{a : T; var b : U}``: an object type of sort Object. ``type_fields`` are type components
    (``{type T = ...; ...}``); they hold no data and are ignored by the compatibility check."""

    fields: tuple[Field, ...] = ()
    type_fields: tuple[TypeDef, ...] = ()

    def field_named(self, name: str) -> Field | None:
        """The field called ``name``, or None."""
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class Tag:
    """A variant case ``#name : T``; ``#name`` alone has ``typ == UNIT``."""

    name: str
    typ: StableType = field(default_factory=TupleType)


@dataclass(frozen=True)
class VariantType:
    """``{#a; #b : T}``; ``{#}`` is the empty variant."""

    tags: tuple[Tag, ...] = ()


@dataclass(frozen=True)
class FuncType:
    """A function type. Stable ones are shared: ``shared T -> async U`` (``sort="shared"``),
    ``shared query ...``, ``shared composite query ...``, or one-way ``shared T -> ()``
    (``is_async=False``: no ``async``, results empty). ``sort="local"`` (a closure type such as
    ``() -> ()``) is parsed but is not stable. ``type_params`` are explicit binders ``<T>``, which
    stable types never have (moc hides the implicit scope binder of shared functions)."""

    sort: FuncSort
    params: tuple[StableType, ...]
    results: tuple[StableType, ...]
    is_async: bool = True
    type_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sort not in _FUNC_SORTS:
            raise ValueError(f"unknown function sort {self.sort!r}")


@dataclass(frozen=True)
class ActorType:
    """``actor { m : shared T -> async U; ... }``: an actor reference; ``methods`` are fields.
    ``type_fields`` are type components (``actor { type T = ...; ... }``), kept for printing only."""

    methods: tuple[Field, ...] = ()
    type_fields: tuple[TypeDef, ...] = ()


@dataclass(frozen=True)
class WeakType:
    """``weak T``: a weak reference."""

    inner: StableType


@dataclass(frozen=True)
class NamedType:
    """``(name : T)``: a named tuple item or parameter, as moc prints them in function types.
    The name is documentation only: for typing, a ``NamedType`` is its ``inner`` type."""

    name: str
    inner: StableType


@dataclass(frozen=True)
class ConType:
    """A reference ``Name`` or ``Name<T1, ...>`` to a ``TypeDef`` of the signature."""

    name: str
    args: tuple[StableType, ...] = ()


@dataclass(frozen=True)
class VarType:
    """A type parameter ``T`` inside the body of a generic ``TypeDef`` (or a function binder)."""

    name: str


StableType = (
    Prim | AnyType | NoneType | OptType | ArrayType | TupleType | RecordType | VariantType
    | FuncType | ActorType | WeakType | NamedType | ConType | VarType
)  # fmt: skip

NAT = Prim("Nat")
INT = Prim("Int")
TEXT = Prim("Text")
BOOL = Prim("Bool")
CHAR = Prim("Char")
FLOAT = Prim("Float")
BLOB = Prim("Blob")
NULL = Prim("Null")
PRINCIPAL = Prim("Principal")
REGION = Prim("Region")
ANY = AnyType()
NONE = NoneType()
UNIT = TupleType(())


@dataclass(frozen=True)
class TypeDef:
    """``type Name<P1, ...> = body``: a (possibly generic, possibly recursive) type definition."""

    name: str
    params: tuple[str, ...]
    body: StableType


TypeEnv = Mapping[str, TypeDef]


@dataclass(frozen=True)
class StableField:
    """One stable variable: ``stable var name : T`` (``mutable``) or ``stable name : T``.

    ``required`` is only meaningful in a pre list of a 3.0.0 signature: the variable is an input
    of the migration function (printed ``in``), so the previous version must have it."""

    name: str
    typ: StableType
    mutable: bool = False
    required: bool = False


@dataclass(frozen=True)
class Migration:
    """One step of an enhanced migration chain (``.most`` 4.0.0, moc ``--enhanced-migration``):
    ``name`` is the module's file name without ``.mo`` (``20250101_000000_Init``; the runtime
    records it when the step has run), ``typ`` the type of its ``migration`` function, a local
    function from a record (the fields it reads) to a record (the fields it writes), e.g.
    ``(old : {var count : Nat}) -> {var count : Int}``; ``migration_fields`` splits it."""

    name: str
    typ: StableType


@dataclass(frozen=True)
class StableSignature:
    """A parsed ``.most`` stable signature.

    ``post`` is what this program version stores (for 1.0.0 and 4.0.0, its only field list);
    ``pre`` is what an upgrade *to* this version reads (2.0.0/3.0.0 only; ``None`` otherwise).
    ``chain`` is the migration chain of a 4.0.0 signature, in the order the runtime runs it (name
    order; ``None`` for the other versions). ``types`` are the type definitions, in the order given."""

    version: str
    types: tuple[TypeDef, ...]
    post: tuple[StableField, ...]
    pre: tuple[StableField, ...] | None = None
    chain: tuple[Migration, ...] | None = None

    @property
    def fields(self) -> tuple[StableField, ...]:
        """The stable variables this version keeps (``post``)."""
        return self.post

    @property
    def has_migration(self) -> bool:
        """True for the pre/post (2.0.0/3.0.0) form."""
        return self.pre is not None

    @property
    def has_chain(self) -> bool:
        """True for the migration-chain (4.0.0) form."""
        return self.chain is not None

    @property
    def last_migration(self) -> str | None:
        """The name of the chain's last migration (what a canister running this version has
        applied last), or None without a chain."""
        return self.chain[-1].name if self.chain else None

    @property
    def upgrade_fields(self) -> tuple[StableField, ...]:
        """What an upgrade to this version reads, as moc's ``pre``: the ``pre`` list; for 1.0.0
        every field, none required; for a chain, what its first migration needs (an upgrade from a
        version without the chain runs all of it)."""
        if self.pre is not None:
            return self.pre
        if self.chain is not None:
            return self.chain_boundaries()[0]
        return tuple(StableField(f.name, f.typ, f.mutable, False) for f in self.post)

    def upgrade_fields_after(self, last_applied: str | None) -> tuple[StableField, ...]:
        """What an upgrade to this version reads from a canister whose last applied migration is
        ``last_applied`` (moc's ``pre`` for a chain): the state right after that migration, when the
        chain has it; else (or without a chain) ``upgrade_fields``."""
        if self.chain is None or last_applied is None:
            return self.upgrade_fields
        names = [m.name for m in self.chain]
        if last_applied not in names:
            return self.upgrade_fields
        return self.chain_boundaries()[names.index(last_applied) + 1]

    def chain_boundaries(self) -> list[tuple[StableField, ...]]:
        """The state the chain expects before each of its migrations and after the last one
        (moc's ``pres``), computed backwards from ``post``: ``[0]`` is what the first migration
        needs, ``[-1]`` is ``post`` (nothing required). Before migration k it is the fields k reads
        (required) plus what is needed after k that k neither reads nor writes (required too: a
        chain has no initializers). Sorted by name. Empty for a signature without a chain."""
        if self.chain is None:
            return []
        current = tuple(StableField(f.name, f.typ, f.mutable, False) for f in self.post)
        out = [current]
        for m in reversed(self.chain):
            reads, writes = migration_fields(m.typ, self.env)
            touched = {f.name for f in reads} | {f.name for f in writes}
            before = [StableField(f.name, f.typ, f.mutable, True) for f in reads]
            before += [StableField(f.name, f.typ, f.mutable, True) for f in current if f.name not in touched]
            current = tuple(sorted(before, key=lambda f: f.name))
            out.append(current)
        out.reverse()
        return out

    @cached_property
    def env(self) -> dict[str, TypeDef]:
        """The type definitions by name."""
        return {d.name: d for d in self.types}


# ---------------------------------------------------------------------------------------------
# Type helpers


def substitute(t: StableType, subst: Mapping[str, StableType]) -> StableType:
    """``t`` with every ``VarType`` named in ``subst`` replaced (definitions are closed, so no
    capture can occur; function binders shadow)."""
    if not subst:
        return t
    match t:
        case VarType(name):
            return subst.get(name, t)
        case Prim() | AnyType() | NoneType():
            return t
        case OptType(inner):
            return OptType(substitute(inner, subst))
        case WeakType(inner):
            return WeakType(substitute(inner, subst))
        case ArrayType(elem, mut):
            return ArrayType(substitute(elem, subst), mut)
        case TupleType(items):
            return TupleType(tuple(substitute(i, subst) for i in items))
        case NamedType(name, inner):
            return NamedType(name, substitute(inner, subst))
        case RecordType(fields, tfs):
            return RecordType(
                tuple(Field(f.name, substitute(f.typ, subst), f.mutable) for f in fields), _subst_defs(tfs, subst)
            )
        case ActorType(methods, tfs):
            return ActorType(
                tuple(Field(f.name, substitute(f.typ, subst), f.mutable) for f in methods), _subst_defs(tfs, subst)
            )
        case VariantType(tags):
            return VariantType(tuple(Tag(g.name, substitute(g.typ, subst)) for g in tags))
        case ConType(name, args):
            return ConType(name, tuple(substitute(a, subst) for a in args))
        case FuncType(sort, params, results, is_async, tps):
            inner_subst = {k: v for k, v in subst.items() if k not in tps}
            return FuncType(
                sort,
                tuple(substitute(p, inner_subst) for p in params),
                tuple(substitute(r, inner_subst) for r in results),
                is_async,
                tps,
            )
    raise TypeError(f"not a stable type: {t!r}")


def _subst_defs(defs: tuple[TypeDef, ...], subst: Mapping[str, StableType]) -> tuple[TypeDef, ...]:
    out = []
    for d in defs:
        inner = {k: v for k, v in subst.items() if k not in d.params}
        out.append(TypeDef(d.name, d.params, substitute(d.body, inner)))
    return tuple(out)


def unfold(t: StableType, env: TypeEnv) -> StableType:
    """Expand ``ConType`` references and strip ``NamedType`` wrappers at the top of ``t`` until a
    structural type remains. Raises ``StableTypeError`` on an undefined name, a wrong number of
    type arguments, or a definition that only refers to itself (``type T = T``)."""
    seen: set[ConType] = set()
    while True:
        if isinstance(t, NamedType):
            t = t.inner
            continue
        if not isinstance(t, ConType):
            return t
        if t in seen:
            raise StableTypeError(f"type {t.name} is defined in terms of itself only")
        seen.add(t)
        d = env.get(t.name)
        if d is None:
            raise StableTypeError(f"undefined type {t.name}")
        if len(d.params) != len(t.args):
            raise StableTypeError(
                f"type {t.name} expects {len(d.params)} type argument(s), got {len(t.args)}"
            )
        t = substitute(d.body, dict(zip(d.params, t.args, strict=True)))


def children(t: StableType) -> Iterator[StableType]:
    """The direct component types of ``t`` (for walks)."""
    match t:
        case OptType(inner) | WeakType(inner) | NamedType(_, inner):
            yield inner
        case ArrayType(elem, _):
            yield elem
        case TupleType(items):
            yield from items
        case RecordType(fields, _):
            yield from (f.typ for f in fields)
        case ActorType(methods, _):
            yield from (f.typ for f in methods)
        case VariantType(tags):
            yield from (g.typ for g in tags)
        case FuncType(_, params, results, _, _):
            yield from params
            yield from results
        case ConType(_, args):
            yield from args
        case _:
            return


def label_hash(label: str) -> int:
    """The 32-bit Candid ``idl_hash`` of a Motoko label, the key the EOP type descriptor and the
    runtime check compare: ``_123_`` is the numeric label 123, a keyword-escaping trailing ``_``
    (``type_``) is dropped first, as moc's Candid export does."""
    core = label
    if len(core) >= 3 and core[0] == "_" and core[-1] == "_" and core[1:-1].isdigit() and core[1:-1].isascii():
        n = int(core[1:-1])
        if n < 2**32:
            return n
    if core.endswith("_") and len(core) > 1:
        core = core[:-1]
    h = 0
    for b in core.encode("utf-8"):
        h = (h * 223 + b) & 0xFFFFFFFF
    return h


def migration_fields(typ: StableType, env: TypeEnv) -> tuple[tuple[Field, ...], tuple[Field, ...]]:
    """The fields a chain migration of type ``typ`` reads (its parameter record) and writes (its
    result record). Raises ``StableTypeError`` when ``typ`` is not a function from one record to
    one record."""
    u = unfold(typ, env)
    if not isinstance(u, FuncType) or len(u.params) != 1 or len(u.results) != 1:
        raise StableTypeError("a migration must be a function from one record to one record")
    dom, rng = unfold(u.params[0], env), unfold(u.results[0], env)
    if not isinstance(dom, RecordType) or not isinstance(rng, RecordType):
        raise StableTypeError("a migration must be a function from one record to one record")
    return dom.fields, rng.fields
