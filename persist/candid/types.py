"""The Candid type model: :data:`CType` and its parts, field ids, name resolution, type equality, type text.

``Prim``, ``Opt``, ``Vec``, ``Record``, ``Variant`` (with their :class:`Field`), ``Func``, ``Service`` and
``Ref`` (a named, possibly recursive type in an environment). :func:`format_type` lives here because every
type's ``str()`` is its Candid text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from persist.candid.limits import no_recursion_error
from persist.candid.quoting import fmt_label, ident
from persist.candid.wire import MODE_CODES
from persist.errors import CandidError

PRIMITIVES: tuple[str, ...] = (
    "null", "bool", "nat", "int", "nat8", "nat16", "nat32", "nat64", "int8", "int16", "int32",
    "int64", "float32", "float64", "text", "reserved", "empty", "principal",
)  # fmt: skip

INT_RANGES: dict[str, tuple[int | None, int | None]] = {
    "nat": (0, None),
    "int": (None, None),
    "nat8": (0, 2**8 - 1),
    "nat16": (0, 2**16 - 1),
    "nat32": (0, 2**32 - 1),
    "nat64": (0, 2**64 - 1),
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


def idl_hash(name: str) -> int:
    """The Candid field id of a field name: ``h = h * 223 + byte (mod 2^32)`` over its UTF-8 bytes."""
    h = 0
    for b in name.encode("utf-8"):
        h = (h * 223 + b) & 0xFFFFFFFF
    return h


def label_id(label: str | int) -> int:
    """The numeric id of a field label: the number itself, or the :func:`idl_hash` of a name."""
    if isinstance(label, int):
        return label
    return idl_hash(label)


@dataclass(frozen=True)
class Prim:
    """A primitive type: one of :data:`PRIMITIVES` (``nat``, ``text``, ``principal``, ...)."""

    name: str

    def __post_init__(self) -> None:
        if self.name not in PRIMITIVES:
            raise CandidError(f"unknown Candid primitive type {self.name!r}")

    def __str__(self) -> str:
        return format_type(self)


@dataclass(frozen=True)
class Opt:
    """``opt inner``."""

    inner: CType

    def __str__(self) -> str:
        return format_type(self)


@dataclass(frozen=True)
class Vec:
    """``vec inner`` (``blob`` is ``Vec(Prim("nat8"))``)."""

    inner: CType

    def __str__(self) -> str:
        return format_type(self)


@dataclass(frozen=True)
class Field:
    """A record or variant field: ``label`` is a name (``str``) or a numeric id (``int``)."""

    label: str | int
    type: CType

    def __post_init__(self) -> None:
        if isinstance(self.label, int) and not 0 <= self.label < 2**32:
            raise CandidError(f"field id {self.label} is out of the u32 range")

    @property
    def id(self) -> int:
        """The field's numeric id (the hash of its name, or its number)."""
        return label_id(self.label)


def _sorted_fields(fields: Iterable[Field], what: str) -> tuple[Field, ...]:
    fs = tuple(sorted(fields, key=lambda f: f.id))
    for a, b in zip(fs, fs[1:], strict=False):
        if a.id == b.id:
            raise CandidError(
                f"{what} fields {fmt_label(a.label)} and {fmt_label(b.label)} have the same id {a.id}"
            )
    return fs


@dataclass(frozen=True)
class Record:
    """``record { ... }``; fields are kept sorted by id (their wire order)."""

    fields: tuple[Field, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _sorted_fields(self.fields, "record"))

    @property
    def is_tuple(self) -> bool:
        """True for a non-empty record whose labels are exactly 0, 1, ..., n-1."""
        return bool(self.fields) and all(f.id == i for i, f in enumerate(self.fields))

    def __str__(self) -> str:
        return format_type(self)


@dataclass(frozen=True)
class Variant:
    """``variant { ... }``; fields are kept sorted by id (their wire order)."""

    fields: tuple[Field, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", _sorted_fields(self.fields, "variant"))

    def __str__(self) -> str:
        return format_type(self)


@dataclass(frozen=True)
class Func:
    """``func (args) -> (rets) modes``."""

    args: tuple[CType, ...] = ()
    rets: tuple[CType, ...] = ()
    modes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for m in self.modes:
            if m not in MODE_CODES:
                raise CandidError(f"unknown function mode {m!r} (expected query, composite_query, oneway)")

    def __str__(self) -> str:
        return format_type(self)


@dataclass(frozen=True)
class Service:
    """``service { name : functype; ... }``; methods are kept sorted by name."""

    methods: tuple[tuple[str, CType], ...] = ()

    def __post_init__(self) -> None:
        ms = tuple(sorted(self.methods, key=lambda m: m[0].encode("utf-8")))
        for a, b in zip(ms, ms[1:], strict=False):
            if a[0] == b[0]:
                raise CandidError(f"service has two methods named {a[0]!r}")
        object.__setattr__(self, "methods", ms)

    def __str__(self) -> str:
        return format_type(self)


class Ref:
    """A reference to a named type in ``env`` (how recursive types are expressed).

    Two references are equal when they name the same entry of the same environment. ``inline``
    marks references made for the anonymous entries of a wire type table; :func:`format_type`
    prints those expanded instead of by name.
    """

    __slots__ = ("name", "env", "inline")

    name: str
    env: Mapping[str, CType]
    inline: bool

    def __init__(self, name: str, env: Mapping[str, CType], inline: bool = False) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "env", env)
        object.__setattr__(self, "inline", inline)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError("Ref is immutable")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and self.name == other.name and self.env is other.env

    def __hash__(self) -> int:
        return hash((self.name, id(self.env)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.name, self.env, self.inline))

    def resolve(self) -> CType:
        """The structural type this name stands for (following aliases)."""
        return resolve(self)

    def __repr__(self) -> str:
        return f"Ref({self.name!r})"

    def __str__(self) -> str:
        return format_type(self)


CType: TypeAlias = Prim | Opt | Vec | Record | Variant | Func | Service | Ref


def resolve(t: CType) -> CType:
    """The structural type ``t`` stands for, following :class:`Ref` names (and aliases) in their env."""
    hops = 0
    while isinstance(t, Ref):
        target = t.env.get(t.name)
        if target is None:
            raise CandidError(f"unknown Candid type name {t.name!r}")
        t = target
        hops += 1
        if hops > 10_000:
            raise CandidError("Candid type aliases form a cycle")
    return t


def is_prim(t: CType, *names: str) -> bool:
    """Whether ``t`` resolves to one of the primitive types ``names``."""
    r = resolve(t)
    return isinstance(r, Prim) and r.name in names


def type_eq(a: CType, b: CType, seen: set[tuple[CType, CType]] | None = None) -> bool:
    """Structural equality of two types, coinductive over named (recursive) types."""
    if a == b:
        return True
    if seen is None:
        seen = set()
    if isinstance(a, Ref) or isinstance(b, Ref):
        if (a, b) in seen:
            return True
        seen.add((a, b))
        return type_eq(resolve(a), resolve(b), seen)
    if type(a) is not type(b):
        return False
    if isinstance(a, Opt | Vec):
        assert isinstance(b, Opt | Vec)
        return type_eq(a.inner, b.inner, seen)
    if isinstance(a, Record | Variant):
        assert isinstance(b, Record | Variant)
        return len(a.fields) == len(b.fields) and all(
            x.id == y.id and type_eq(x.type, y.type, seen) for x, y in zip(a.fields, b.fields, strict=True)
        )
    if isinstance(a, Func):
        assert isinstance(b, Func)
        return (
            a.modes == b.modes
            and len(a.args) == len(b.args)
            and len(a.rets) == len(b.rets)
            and all(type_eq(x, y, seen) for x, y in zip(a.args + a.rets, b.args + b.rets, strict=True))
        )
    if isinstance(a, Service):
        assert isinstance(b, Service)
        return len(a.methods) == len(b.methods) and all(
            x[0] == y[0] and type_eq(x[1], y[1], seen) for x, y in zip(a.methods, b.methods, strict=True)
        )
    return False


# Printing types (every type's str() is its Candid text)


@no_recursion_error
def format_type(t: CType) -> str:
    """Candid text of a type on one line, e.g. ``record { id : nat; name : text }``.

    Named types print as their name; the anonymous entries of a wire type table print expanded.
    """
    return _fmt_type(t, frozenset())


def _fmt_type(t: CType, stack: frozenset[Ref]) -> str:
    if isinstance(t, Ref):
        if not t.inline:
            return ident(t.name)
        if t in stack:
            return "<recursive>"
        return _fmt_type(resolve(t), stack | {t})
    if isinstance(t, Prim):
        return t.name
    if isinstance(t, Opt):
        return "opt " + _fmt_type(t.inner, stack)
    if isinstance(t, Vec):
        if isinstance(t.inner, Prim) and t.inner.name == "nat8":
            return "blob"
        return "vec " + _fmt_type(t.inner, stack)
    if isinstance(t, Record):
        if not t.fields:
            return "record {}"
        if t.is_tuple:
            return "record { " + "; ".join(_fmt_type(f.type, stack) for f in t.fields) + " }"
        body = "; ".join(f"{fmt_label(f.label)} : {_fmt_type(f.type, stack)}" for f in t.fields)
        return "record { " + body + " }"
    if isinstance(t, Variant):
        if not t.fields:
            return "variant {}"
        parts = [
            fmt_label(f.label)
            if isinstance(f.type, Prim) and f.type.name == "null"
            else f"{fmt_label(f.label)} : {_fmt_type(f.type, stack)}"
            for f in t.fields
        ]
        return "variant { " + "; ".join(parts) + " }"
    if isinstance(t, Func):
        return "func " + fmt_functype(t, stack)
    if isinstance(t, Service):
        if not t.methods:
            return "service {}"
        parts = []
        for name, ft in t.methods:
            sig = fmt_functype(ft, stack) if isinstance(ft, Func) else _fmt_type(ft, stack)
            parts.append(f"{ident(name)} : {sig}")
        return "service { " + "; ".join(parts) + " }"
    raise CandidError(f"not a Candid type: {t!r}")


def fmt_functype(f: Func, stack: frozenset[Ref]) -> str:
    """Candid text of a function signature, ``(args) -> (rets) modes`` (``stack``: Refs being expanded)."""
    args = ", ".join(_fmt_type(a, stack) for a in f.args)
    rets = ", ".join(_fmt_type(r, stack) for r in f.rets)
    return f"({args}) -> ({rets})" + "".join(" " + m for m in f.modes)
