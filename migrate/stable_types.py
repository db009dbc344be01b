"""Stable types of Motoko canisters: a typed model, a parser and a printer for stable signatures.

A *stable signature* is what ``moc`` writes into the ``icp:private motoko:stable-types`` custom
section and into ``.most`` files: the type definitions the stable variables use, then the stable
variables of the actor. Three versions exist:

* ``// Version: 1.0.0``: one field list, ``actor { stable var x : Nat; stable y : Text };``
* ``// Version: 2.0.0`` and ``// Version: 3.0.0``: the canister has a migration function, so the
  signature has a *pre* list (what the upgrade reads: the migration function's inputs plus the
  untouched stable variables) and a *post* list (what the program keeps), printed
  ``actor ({ pre... }, { post... });`` (older moc: ``}) ;``). In 3.0.0 the migration inputs are
  printed with ``in`` instead of ``stable`` (``required=True`` here): an upgrade from a version
  that lacks them fails.

The model (frozen dataclasses, so values hash and compare structurally):

* types: ``Prim`` (``Nat``, ``Text``, ``Blob``, ``Principal``, ``Region``, ...), ``AnyType``,
  ``NoneType``, ``OptType`` (``?T``), ``ArrayType`` (``[T]``, ``[var T]`` with ``mutable=True``),
  ``TupleType`` (``()`` is the empty tuple), ``RecordType`` of ``Field``\\ s (``var`` fields have
  ``mutable=True``), ``VariantType`` of ``Tag``\\ s (a tag without payload has ``typ=UNIT``),
  ``FuncType`` (``sort`` is ``"shared"``, ``"query"``, ``"composite"`` or ``"local"``;
  ``is_async=False`` for a one-way ``shared T -> ()``), ``ActorType`` of ``Field``\\ s (the
  methods), ``WeakType`` (``weak T``), ``NamedType`` (a named tuple item ``(amount : Nat)``;
  transparent for typing), ``ConType`` (a reference ``List<Nat>`` to a ``TypeDef``) and
  ``VarType`` (a type parameter inside a ``TypeDef`` body);
* ``TypeDef(name, params, body)``: ``type List<T> = ?(T, List<T>)``; recursion goes through
  ``ConType`` references, so every value here is finite;
* ``StableField(name, typ, mutable, required)``: one stable variable;
* ``StableSignature(version, types, post, pre)``: ``pre is None`` for 1.0.0.

How to build a signature programmatically (e.g. from the binary EOP type descriptor, which
carries label *hashes* only: name such a label ``_<hash>_``, the Candid escape for a numeric
label, and ``label_hash`` gives the hash back, so comparisons by hash still line up)::

    from migrate.stable_types import *
    node = TypeDef("Node", (), RecordType((Field("value", NAT), Field("next", OptType(ConType("Node"))))))
    sig = StableSignature(
        version="1.0.0",
        types=(node,),
        post=(StableField("head", OptType(ConType("Node")), mutable=True),
              StableField("_4846783_", Prim("Text"))),
    )
    text = format_signature(sig)          # the .most text
    assert parse_signature(text) == sig

Field, tag and method lists are kept in the order given (moc prints them sorted by name);
``StableSignature.env`` resolves ``ConType`` references, ``unfold`` expands one.

Parsing follows moc's grammar for stable signatures (``parse_stab_sig``): comments (nested block
comments too), trailing ``;``, ``(T)`` vs the 1-tuple ``(T,)``, named items ``(x : T)``, type
components ``{type T = ...; ...}``. Identifiers may use Unicode letters (moc's are ASCII).
Printing re-implements the layout of OCaml's ``Format`` (margin 78) over the same box structure
moc uses, so ``format_signature(parse_signature(t)) == t`` for text the pinned moc wrote.

A signature decoded from the binary descriptor cannot tell ``Char`` from ``Nat32`` or ``()``
from ``Null`` (they share a descriptor code); prefer the old module's ``.most`` section for those.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
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
    "NamedType",
    "NoneType",
    "OptType",
    "Prim",
    "RecordType",
    "StableField",
    "StableSignature",
    "StableType",
    "StableTypeError",
    "Tag",
    "TupleType",
    "TypeDef",
    "TypeEnv",
    "VarType",
    "VariantType",
    "WeakType",
    "children",
    "format_signature",
    "format_type",
    "label_hash",
    "parse_signature",
    "parse_type",
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
class StableSignature:
    """A parsed ``.most`` stable signature.

    ``post`` is what this program version stores (for 1.0.0, its only field list); ``pre`` is what
    an upgrade *to* this version reads (2.0.0/3.0.0 only; ``None`` for 1.0.0). ``types`` are the
    type definitions, in the order given."""

    version: str
    types: tuple[TypeDef, ...]
    post: tuple[StableField, ...]
    pre: tuple[StableField, ...] | None = None

    @property
    def fields(self) -> tuple[StableField, ...]:
        """The stable variables this version keeps (``post``)."""
        return self.post

    @property
    def has_migration(self) -> bool:
        """True for the pre/post (2.0.0/3.0.0) form."""
        return self.pre is not None

    @property
    def upgrade_fields(self) -> tuple[StableField, ...]:
        """What an upgrade to this version reads, as moc's ``pre``: the ``pre`` list, or for 1.0.0
        every field, none required."""
        if self.pre is not None:
            return self.pre
        return tuple(StableField(f.name, f.typ, f.mutable, False) for f in self.post)

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



# ---------------------------------------------------------------------------------------------
# Parsing

# Motoko's reserved words: never identifiers (``type_`` is how a program spells the label ``type``).
_KEYWORDS = frozenset(
    """actor and async assert await break case catch class composite continue debug do else false
    finally flexible for func if ignore in implicit import include mixin module not null object or
    label let loop persistent private public query return shared stable switch system transient try
    throw true type var weak while with""".split()
)
_PUNCT = ("->", "<:", "{", "}", "(", ")", "[", "]", "<", ">", ",", ";", ":", "?", "#", "=", ".")
_VERSION_RE = re.compile(r"//\s*Version:\s*(\d+\.\d+\.\d+)")


@dataclass(frozen=True)
class _Tok:
    kind: str  # "id", "kw", "punct", "eof"
    text: str
    line: int
    col: int


def _is_id_start(c: str) -> bool:
    # moc's identifiers are ASCII; Unicode letters are accepted too so that labels that only a
    # descriptor or a hand-written signature can carry still parse.
    return c == "_" or c.isalpha()


def _is_id_char(c: str) -> bool:
    return c == "_" or c.isalnum()


def _tokenize(text: str) -> tuple[list[_Tok], str | None]:
    """Tokens of ``text`` and the version named by a ``// Version: x.y.z`` comment (if any)."""
    toks: list[_Tok] = []
    version: str | None = None
    i, line, col, n = 0, 1, 1, len(text)

    def advance(k: int) -> None:
        nonlocal i, line, col
        for _ in range(k):
            if text[i] == "\n":
                line, col = line + 1, 1
            else:
                col += 1
            i += 1

    while i < n:
        c = text[i]
        if c in " \t\r\n\ufeff":
            advance(1)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            m = _VERSION_RE.match(text, i, end)
            if m and version is None and not toks:
                version = m.group(1)
            advance(end - i)
        elif text.startswith("/*", i):
            # Motoko block comments nest.
            start_line, start_col, depth = line, col, 0
            while True:
                if i >= n:
                    raise StableTypeError("unclosed comment", line=start_line, column=start_col)
                if text.startswith("/*", i):
                    depth += 1
                    advance(2)
                elif text.startswith("*/", i):
                    depth -= 1
                    advance(2)
                    if depth == 0:
                        break
                else:
                    advance(1)
        elif _is_id_start(c):
            j = i + 1
            while j < n and _is_id_char(text[j]):
                j += 1
            word = text[i:j]
            toks.append(_Tok("kw" if word in _KEYWORDS else "id", word, line, col))
            advance(j - i)
        else:
            for p in _PUNCT:
                if text.startswith(p, i):
                    toks.append(_Tok("punct", p, line, col))
                    advance(len(p))
                    break
            else:
                raise StableTypeError(f"unexpected character {c!r}", line=line, column=col)
    toks.append(_Tok("eof", "", line, col))
    return toks, version


class _Parser:
    """Recursive descent over moc's grammar of stable signatures (``parse_stab_sig``)."""

    def __init__(self, text: str) -> None:
        self.toks, self.version = _tokenize(text)
        self.pos = 0
        # Every ``type Name`` at the top level, collected up front so that bodies may refer to
        # definitions that come later (moc sorts them by name, not by dependency).
        self.def_names = {
            self.toks[k + 1].text
            for k in range(len(self.toks) - 1)
            if self.toks[k].text == "type" and self.toks[k].kind == "kw" and self.toks[k + 1].kind == "id"
        }
        self.params: list[tuple[str, ...]] = []
        self.con_uses: list[tuple[ConType, _Tok]] = []

    # -- token helpers

    @property
    def tok(self) -> _Tok:
        return self.toks[self.pos]

    def peek(self, k: int = 1) -> _Tok:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def at(self, text: str) -> bool:
        t = self.tok
        return t.text == text and t.kind in ("kw", "punct")

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.pos += 1
            return True
        return False

    def error(self, message: str, tok: _Tok | None = None) -> StableTypeError:
        t = tok or self.tok
        return StableTypeError(message, line=t.line, column=t.col)

    def describe(self, t: _Tok) -> str:
        return "end of input" if t.kind == "eof" else f"{t.text!r}"

    def expect(self, text: str, what: str = "") -> _Tok:
        t = self.tok
        if not self.accept(text):
            ctx = f" {what}" if what else ""
            raise self.error(f"expected {text!r}{ctx}, found {self.describe(t)}")
        return t

    def ident(self, what: str) -> _Tok:
        t = self.tok
        if t.kind != "id":
            if t.kind == "kw":
                raise self.error(f"expected {what}, found the keyword {t.text!r} (write {t.text}_)")
            raise self.error(f"expected {what}, found {self.describe(t)}")
        self.pos += 1
        return t

    # -- signature

    def signature(self) -> StableSignature:
        defs: list[TypeDef] = []
        def_toks: dict[str, _Tok] = {}
        while self.at("type"):
            t = self.tok
            d = self.typedef()
            if d.name in def_toks:
                raise self.error(f"duplicate type definition {d.name}", t)
            def_toks[d.name] = t
            defs.append(d)
            if not self.accept(";"):
                break
        t = self.tok
        if not self.accept("actor"):
            raise self.error(f"expected 'type' or 'actor', found {self.describe(t)}")
        pre: tuple[StableField, ...] | None
        if self.accept("("):
            self.expect("{", "to open the pre-upgrade fields")
            pre = self.stable_fields(allow_in=True)
            self.expect("}", "after the pre-upgrade fields")
            self.expect(",", "between the pre- and post-upgrade fields")
            self.expect("{", "to open the post-upgrade fields")
            post = self.stable_fields(allow_in=False)
            self.expect("}", "after the post-upgrade fields")
            self.expect(")", "to close the actor's field lists")
        else:
            self.expect("{", "after 'actor'")
            post = self.stable_fields(allow_in=False)
            self.expect("}", "after the stable fields")
            pre = None
        self.accept(";")
        if self.tok.kind != "eof":
            raise self.error(f"unexpected {self.describe(self.tok)} after the actor")
        version = self.version or ("1.0.0" if pre is None else "3.0.0")
        sig = StableSignature(version, tuple(defs), post, pre)
        self.check_cons(sig.env)
        for d in defs:
            try:
                unfold(ConType(d.name, tuple(VarType(p) for p in d.params)), sig.env)
            except StableTypeError as e:
                raise self.error(e.reason, def_toks[d.name]) from None
        return sig

    def check_cons(self, env: TypeEnv) -> None:
        for con, t in self.con_uses:
            d = env.get(con.name)
            if d is None:
                raise self.error(f"undefined type {con.name}", t)
            if len(d.params) != len(con.args):
                raise self.error(
                    f"type {con.name} expects {len(d.params)} type argument(s), got {len(con.args)}", t
                )

    def typedef(self) -> TypeDef:
        self.expect("type")
        name = self.ident("a type name").text
        params: list[str] = []
        if self.accept("<"):
            while not self.at(">"):
                params.append(self.ident("a type parameter").text)
                if self.at("<:"):
                    raise self.error("type parameter bounds are not supported in stable signatures")
                if not self.accept(","):
                    break
            self.expect(">", "after the type parameters")
        if self.at("<:"):
            raise self.error("abstract type definitions ('<:') are not supported in stable signatures")
        self.expect("=", f"in the definition of type {name}")
        self.params.append(tuple(params))
        body = self.typ()
        self.params.pop()
        return TypeDef(name, tuple(params), body)

    def stable_fields(self, *, allow_in: bool) -> tuple[StableField, ...]:
        out: list[StableField] = []
        seen: set[str] = set()
        while not self.at("}"):
            t = self.tok
            if self.accept("stable"):
                required = False
            elif allow_in and self.accept("in"):
                required = True
            else:
                want = "'stable' or 'in'" if allow_in else "'stable'"
                raise self.error(f"expected {want} or '}}', found {self.describe(t)}")
            mutable = self.accept("var")
            nt = self.ident("a stable variable name")
            if nt.text in seen:
                raise self.error(f"duplicate stable variable {nt.text}", nt)
            seen.add(nt.text)
            self.expect(":", f"after stable variable {nt.text}")
            out.append(StableField(nt.text, self.typ(), mutable, required))
            if not self.accept(";"):
                break
        return tuple(out)

    # -- types

    def typ(self) -> StableType:
        t = self.typ_nobin()
        if self.at("and") or self.at("or"):
            raise self.error("type intersections and unions ('and'/'or') do not occur in stable signatures")
        return t

    def typ_nobin(self) -> StableType:
        t = self.tok
        sort = self.func_sort()
        if sort is not None or self.at("<"):
            binders = self.binders() if self.at("<") else ()
            self.params.append(binders)
            dom, dom_items = self.typ_un()
            self.expect("->", "in the function type")
            func = self.codomain(sort or "local", dom, dom_items, binders)
            self.params.pop()
            return func
        first, first_items = self.typ_pre()
        if isinstance(first, _AsyncMarker):
            raise self.error("'async' types only occur as function results", t)
        if self.accept("->"):
            if first_items is _NOT_UN:
                raise self.error("a function's parameter type must be parenthesized here", t)
            return self.codomain("local", first, first_items, ())
        return first

    def func_sort(self) -> FuncSort | None:
        if self.accept("shared"):
            if self.accept("composite"):
                self.expect("query", "after 'composite'")
                return "composite"
            return "query" if self.accept("query") else "shared"
        if self.accept("composite"):
            self.expect("query", "after 'composite'")
            return "composite"
        if self.accept("query"):
            return "query"
        return None

    def binders(self) -> tuple[str, ...]:
        self.expect("<")
        names: list[str] = []
        while not self.at(">"):
            names.append(self.ident("a type parameter").text)
            if self.at("<:"):
                raise self.error("type parameter bounds are not supported in stable signatures")
            if not self.accept(","):
                break
        self.expect(">", "after the type parameters")
        return tuple(names)

    def codomain(
        self, sort: FuncSort, dom: StableType, dom_items: object, binders: tuple[str, ...]
    ) -> FuncType:
        """What follows ``->``: ``async T`` (a future), ``()``/a tuple, or any type (local only)."""
        params = dom_items if isinstance(dom_items, tuple) else (dom,)
        t = self.tok
        if self.func_sort_ahead():
            results: tuple[StableType, ...] = (self.typ_nobin(),)
            is_async = False
        else:
            res, res_items = self.typ_pre()
            if isinstance(res, _AsyncMarker):
                return FuncType(sort, params, res.items, True, binders)
            if self.accept("->"):
                if res_items is _NOT_UN:
                    raise self.error("a function's parameter type must be parenthesized here", t)
                results = (self.codomain("local", res, res_items, ()),)
            else:
                results = res_items if isinstance(res_items, tuple) else (res,)
            is_async = False
        if sort != "local" and results:
            raise self.error("a shared function must return '()' or 'async ...'", t)
        return FuncType(sort, params, results, is_async, binders)

    def func_sort_ahead(self) -> bool:
        return self.tok.kind == "kw" and self.tok.text in ("shared", "query", "composite") or self.at("<")

    def typ_pre(self) -> tuple[StableType | _AsyncMarker, object]:
        """``async T``, ``actor {...}`` or a ``typ_un``; the second value is the tuple items when the
        syntax was a tuple ``(A, B)``, ``_NOT_UN`` for async/actor, else None."""
        if self.accept("async"):
            inner, items = self.typ_pre()
            if isinstance(inner, _AsyncMarker):
                raise self.error("nested 'async' types are not stable")
            results = items if isinstance(items, tuple) else (inner,)
            return _AsyncMarker(results), _NOT_UN
        if self.at("actor") or self.at("module") or self.at("object"):
            kw = self.tok
            self.pos += 1
            if kw.text == "module":
                raise self.error("module types are not stable", kw)
            fields, tfs = self.record_fields(kw.text)
            if kw.text == "actor":
                return ActorType(fields, tfs), _NOT_UN
            return RecordType(fields, tfs), _NOT_UN
        return self.typ_un()

    def typ_un(self) -> tuple[StableType, object]:
        if self.accept("?"):
            inner, _ = self.typ_un()
            return OptType(inner), None
        if self.accept("weak"):
            inner, _ = self.typ_un()
            return WeakType(inner), None
        return self.typ_nullary()

    def typ_nullary(self) -> tuple[StableType, object]:
        t = self.tok
        if self.accept("("):
            items: list[StableType] = []
            trailing = False
            while not self.at(")"):
                items.append(self.typ_item())
                trailing = False
                if not self.accept(","):
                    break
                trailing = True
            self.expect(")", "to close the parenthesized type")
            if len(items) == 1 and not trailing:
                # ``(T)`` is T itself (``(x : T)`` a named one); only ``(T,)`` is a 1-tuple.
                return items[0], None
            tup = tuple(items)
            return TupleType(tup), tup
        if self.accept("["):
            mutable = self.accept("var")
            elem = self.typ()
            self.expect("]", "to close the array type")
            return ArrayType(elem, mutable), None
        if self.at("{"):
            if self.peek().text == "#":
                return VariantType(self.variant_tags()), None
            fields, tfs = self.record_fields("")
            return RecordType(fields, tfs), None
        if t.kind == "id":
            return self.path(), None
        raise self.error(f"expected a type, found {self.describe(t)}")

    def typ_item(self) -> StableType:
        if self.tok.kind == "id" and self.peek().text == ":" and self.peek().kind == "punct":
            name = self.ident("a name").text
            self.expect(":")
            return NamedType(name, self.typ())
        return self.typ()

    def path(self) -> StableType:
        t = self.ident("a type")
        if self.at("."):
            raise self.error("qualified type paths (M.T) do not occur in stable signatures")
        args: list[StableType] = []
        has_args = False
        if self.accept("<"):
            has_args = True
            while not self.at(">"):
                args.append(self.typ())
                if not self.accept(","):
                    break
            self.expect(">", "to close the type arguments")
        name = t.text
        if any(name in ps for ps in self.params):
            if has_args:
                raise self.error(f"type parameter {name} takes no type arguments", t)
            return VarType(name)
        if name in self.def_names:
            con = ConType(name, tuple(args))
            self.con_uses.append((con, t))
            return con
        if has_args:
            raise self.error(f"undefined type {name}", t)
        if name in PRIM_NAMES:
            return Prim(name)
        if name == "Any":
            return ANY
        if name == "None":
            return NONE
        raise self.error(f"undefined type {name}", t)

    def record_fields(self, sort: str) -> tuple[tuple[Field, ...], tuple[TypeDef, ...]]:
        self.expect("{", f"to open the {sort or 'record'} type")
        out: list[Field] = []
        tfs: list[TypeDef] = []
        seen: set[str] = set()
        while not self.at("}"):
            if self.at("type"):
                tfs.append(self.typedef())
                if not self.accept(";"):
                    break
                continue
            mutable = self.accept("var")
            nt = self.ident("a field name")
            if nt.text in seen:
                raise self.error(f"duplicate field {nt.text}", nt)
            seen.add(nt.text)
            if self.at("<") or self.at("("):
                raise self.error("method shorthand types do not occur in stable signatures")
            self.expect(":", f"after field {nt.text}")
            out.append(Field(nt.text, self.typ(), mutable))
            if not self.accept(";"):
                break
        self.expect("}", f"to close the {sort or 'record'} type")
        return tuple(out), tuple(tfs)

    def variant_tags(self) -> tuple[Tag, ...]:
        self.expect("{")
        out: list[Tag] = []
        seen: set[str] = set()
        if self.at("#") and self.peek().text == "}":
            self.pos += 2
            return ()
        while not self.at("}"):
            self.expect("#", "before a variant tag")
            nt = self.ident("a variant tag")
            if nt.text in seen:
                raise self.error(f"duplicate variant tag #{nt.text}", nt)
            seen.add(nt.text)
            typ: StableType = UNIT
            if self.accept(":"):
                typ = self.typ()
            out.append(Tag(nt.text, typ))
            if not self.accept(";"):
                break
        self.expect("}", "to close the variant type")
        return tuple(out)


@dataclass(frozen=True)
class _AsyncMarker:
    """``async T`` while parsing: only valid as a function codomain."""

    items: tuple[StableType, ...]


_NOT_UN = object()  # "this type was not a typ_un" (async or an actor/object type)


def parse_signature(text: str | bytes) -> StableSignature:
    """Parse a stable signature as moc writes it: ``.most`` text, or the bytes of the
    ``icp:private motoko:stable-types`` custom section (UTF-8).

    Accepts versions 1.0.0 (``actor { ... }``) and 2.0.0/3.0.0 (``actor ({ pre }, { post })``).
    Raises ``StableTypeError`` (with ``line``/``column``) for malformed text, undefined type names,
    wrong numbers of type arguments and duplicate names.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise StableTypeError(f"the stable signature is not UTF-8 (byte {e.start})") from None
    return _Parser(text).signature()


def parse_type(text: str, types: Sequence[TypeDef] = ()) -> StableType:
    """Parse one type, e.g. ``"?[var (Nat, Text)]"``; names may refer to ``types``."""
    p = _Parser(text)
    p.def_names |= {d.name for d in types}
    t = p.typ()
    if p.tok.kind != "eof":
        raise p.error(f"unexpected {p.describe(p.tok)} after the type")
    p.check_cons({d.name: d for d in types})
    return t


# ---------------------------------------------------------------------------------------------
# Printing: moc lays out signatures with OCaml's Format module (margin 78); a small re-implementation
# of that layout algorithm (boxes, break hints, the scan queue) gives byte-identical text.

_MARGIN = 78
_MAX_INDENT = 68  # margin - min_space_left (10)
_INFINITY = 1_000_000_010


class _Layout:
    """OCaml ``Format`` semantics: ``open_box(kind, indent)`` with kind ``"b"`` (structural),
    ``"hov"``, ``"hv"``, ``"v"``, ``"h"``; ``brk(width, offset)``; ``text``; ``newline``."""

    def __init__(self, margin: int = _MARGIN) -> None:
        self.margin = margin
        self.max_indent = margin - (_MARGIN - _MAX_INDENT)
        self.out: list[str] = []
        self.queue: list[list] = []  # [size, kind, payload, length]
        self.qhead = 0
        self.scan: list[tuple[int, list]] = []
        self.fmt: list[tuple[str, int]] = []  # (box kind, width)
        self.space_left = margin
        self.current_indent = 0
        self.is_new_line = True
        self.left_total = 1
        self.right_total = 1
        self.depth = 1
        sys_tok = [-1, "begin", (0, "hov"), 0]
        self.queue.append(sys_tok)
        self._init_scan()
        self.scan.append((1, sys_tok))

    def _init_scan(self) -> None:
        self.scan = [(-1, [-1, "text", "", 0])]

    def _enqueue(self, tok: list) -> None:
        self.right_total += tok[3]
        self.queue.append(tok)

    def _set_size(self, is_break: bool) -> None:
        if not self.scan:
            return
        left_total, tok = self.scan[-1]
        if left_total < self.left_total:
            self._init_scan()
            return
        if tok[1] == "break" and is_break:
            tok[0] = self.right_total + tok[0]
            self.scan.pop()
        elif tok[1] == "begin" and not is_break:
            tok[0] = self.right_total + tok[0]
            self.scan.pop()

    def _scan_push(self, is_break: bool, tok: list) -> None:
        self._enqueue(tok)
        if is_break:
            self._set_size(True)
        self.scan.append((self.right_total, tok))

    def _advance(self) -> None:
        while self.qhead < len(self.queue):
            size, kind, payload, length = self.queue[self.qhead]
            pending = self.right_total - self.left_total
            if not (size >= 0 or pending >= self.space_left):
                return
            self.qhead += 1
            self._format(size if size >= 0 else _INFINITY, kind, payload)
            self.left_total += length

    def _newline_indent(self, width: int, offset: int) -> None:
        self.out.append("\n")
        self.is_new_line = True
        indent = min(self.max_indent, self.margin - width + offset)
        self.current_indent = indent
        self.space_left = self.margin - indent
        self.out.append(" " * indent)

    def _format(self, size: int, kind: str, payload: object) -> None:
        if kind == "text":
            assert isinstance(payload, str)
            self.space_left -= size
            self.out.append(payload)
            self.is_new_line = False
        elif kind == "begin":
            assert isinstance(payload, tuple)
            off, ty = payload
            if self.margin - self.space_left > self.max_indent:
                self._force_break()
            width = self.space_left - off
            box = ty if ty == "v" or size > self.space_left else "fits"
            self.fmt.append((box, width))
        elif kind == "end":
            if self.fmt:
                self.fmt.pop()
        elif kind == "newline":
            if self.fmt:
                self._newline_indent(self.fmt[-1][1], 0)
            else:
                self.out.append("\n")
        elif kind == "break":
            assert isinstance(payload, tuple)
            fits_w, off = payload
            if not self.fmt:
                return
            box, width = self.fmt[-1]
            if box in ("hv", "v"):
                self._newline_indent(width, off)
            elif box in ("fits", "h"):
                self._same_line(fits_w)
            elif box == "hov":
                if size > self.space_left:
                    self._newline_indent(width, off)
                else:
                    self._same_line(fits_w)
            else:  # "b": structural box
                if self.is_new_line:
                    self._same_line(fits_w)
                elif size > self.space_left or self.current_indent > self.margin - width + off:
                    self._newline_indent(width, off)
                else:
                    self._same_line(fits_w)

    def _same_line(self, width: int) -> None:
        self.space_left -= width
        self.out.append(" " * width)

    def _force_break(self) -> None:
        if not self.fmt:
            self.out.append("\n")
            return
        box, width = self.fmt[-1]
        if width > self.space_left and box not in ("fits", "h"):
            self._newline_indent(width, 0)

    # -- the public operations

    def open(self, kind: str, indent: int = 0) -> None:
        self.depth += 1
        self._scan_push(False, [-self.right_total, "begin", (indent, kind), 0])

    def close(self) -> None:
        if self.depth > 1:
            self._enqueue([0, "end", None, 0])
            self._set_size(True)
            self._set_size(False)
            self.depth -= 1

    def text(self, s: str) -> None:
        # OCaml measures strings in bytes; so does the layout.
        n = len(s.encode("utf-8"))
        self._enqueue([n, "text", s, n])
        self._advance()

    def brk(self, width: int = 1, offset: int = 0) -> None:
        self._scan_push(True, [-self.right_total, "break", (width, offset), width])

    def newline(self) -> None:
        self._enqueue([0, "newline", None, 0])
        self._advance()

    def flush(self) -> str:
        while self.depth > 1:
            self.close()
        self.right_total = _INFINITY
        self._advance()
        return "".join(self.out)


class _Printer:
    """Emits moc's box structure for types and signatures into a ``_Layout``."""

    def __init__(self, lay: _Layout) -> None:
        self.lay = lay

    # small combinators
    def boxed(self, kind: str, indent: int, *parts: object) -> None:
        self.lay.open(kind, indent)
        self.seq(*parts)
        self.lay.close()

    def seq(self, *parts: object) -> None:
        for p in parts:
            if isinstance(p, str):
                self.lay.text(p)
            elif isinstance(p, tuple):
                self.lay.brk(*p)
            else:
                assert callable(p)
                p()

    def sep_list(self, items: Sequence[object], emit: object, sep: str) -> None:
        assert callable(emit)
        for k, item in enumerate(items):
            if k:
                self.lay.text(sep)
                self.lay.brk(1, 0)
            emit(item)

    def block(self, kind: str, opener: str, items: Sequence[object], emit: object) -> None:
        """``opener`` then items separated by ``;`` inside a ``{ }`` box that breaks consistently."""
        self.lay.open(kind, 2)
        self.lay.text(opener)
        self.lay.brk(0, 0)
        self.sep_list(items, emit, ";")
        self.lay.brk(0, -2)
        self.lay.text("}")
        self.lay.close()

    # types, by precedence level (moc: typ', typ_nobin, typ_pre, typ_un, typ_nullary)

    def typ(self, t: StableType) -> None:
        self.nobin(t)

    def nobin(self, t: StableType) -> None:
        if isinstance(t, FuncType):
            self.func(t)
        else:
            self.pre(t)

    def pre(self, t: StableType) -> None:
        if isinstance(t, ActorType):
            self.block("hv", "actor {", (*t.type_fields, *t.methods), self.member)
        else:
            self.un(t)

    def un(self, t: StableType) -> None:
        if isinstance(t, OptType):
            self.boxed("b", 1, "?", lambda: self.un(t.inner))
        elif isinstance(t, WeakType):
            self.boxed("b", 1, "weak ", lambda: self.un(t.inner))
        else:
            self.nullary(t)

    def nullary(self, t: StableType) -> None:
        lay = self.lay
        match t:
            case NamedType(name, inner):
                self.boxed("b", 1, f"({name} : ", lambda: self.typ(inner), ")")
            case TupleType(items):
                lay.open("b", 1)
                lay.text("(")
                self.sep_list(items, self.item, ",")
                lay.text(",)" if len(items) == 1 else ")")
                lay.close()
            case Prim(name):
                lay.text(name)
            case AnyType():
                lay.text("Any")
            case NoneType():
                lay.text("None")
            case VarType(name):
                lay.text(name)
            case ConType(name, ()):
                lay.text(name)
            case ConType(name, args):
                lay.open("b", 0)
                lay.text(name + "<")
                lay.open("b", 1)
                self.sep_list(args, self.typ, ",")
                lay.close()
                lay.text(">")
                lay.close()
            case ArrayType(elem, mutable):
                self.boxed("b", 1, "[var " if mutable else "[", lambda: self.typ(elem), "]")
            case RecordType(fields, tfs):
                self.block("hv", "{", (*tfs, *fields), self.member)
            case VariantType(()):
                lay.text("{#}")
            case VariantType(tags):
                self.block("hv", "{", tags, self.tag)
            case _:
                self.boxed("b", 1, "(", lambda: self.typ(t), ")")

    def item(self, t: StableType) -> None:
        if isinstance(t, NamedType):
            self.boxed("b", 1, f"{t.name} : ", lambda: self.typ(t.inner))
        else:
            self.typ(t)

    def sequence(self, ts: tuple[StableType, ...], emit: object) -> None:
        assert callable(emit)
        if len(ts) == 1 and isinstance(ts[0], TupleType):
            self.boxed("b", 1, "(", lambda: emit(ts[0]), ")")
        else:
            emit(ts[0] if len(ts) == 1 else TupleType(ts))

    def func(self, t: FuncType) -> None:
        lay = self.lay
        lay.open("b", 2)
        lay.text({"local": "", "shared": "shared ", "query": "shared query ",
                  "composite": "shared composite query "}[t.sort])  # fmt: skip
        if t.type_params:
            lay.open("b", 1)
            lay.text("<")
            self.sep_list(t.type_params, lay.text, ",")
            lay.text(">")
            lay.close()
        self.sequence(t.params, self.un)
        lay.text(" ->")
        lay.brk(1, 0)
        if t.is_async:
            self.boxed("b", 2, "async", (1, 0), lambda: self.sequence(t.results, self.pre))
        else:
            self.sequence(t.results, self.nobin)
        lay.close()

    def field(self, f: Field) -> None:
        self.boxed("b", 2, f"{'var ' if f.mutable else ''}{f.name} :", (1, 0), lambda: self.typ(f.typ))

    def member(self, m: Field | TypeDef) -> None:
        if isinstance(m, TypeDef):
            self.typedef(m)
        else:
            self.field(m)

    def tag(self, g: Tag) -> None:
        if g.typ == UNIT:
            self.lay.text(f"#{g.name}")
        else:
            self.boxed("b", 2, f"#{g.name} :", (1, 0), lambda: self.typ(g.typ))

    def typedef(self, d: TypeDef) -> None:
        lay = self.lay
        lay.open("b", 2)
        lay.text(f"type {d.name}")
        if d.params:
            lay.open("b", 1)
            lay.text("<")
            self.sep_list(d.params, lay.text, ",")
            lay.text(">")
            lay.close()
        lay.text(" =")
        lay.brk(1, 0)
        self.typ(d.body)
        lay.close()

    def stable_field(self, f: StableField, in_pre: bool) -> None:
        kw = "in" if in_pre and f.required else "stable"
        var = "var " if f.mutable else ""
        self.boxed("b", 2, f"{kw} {var}{f.name} :", (1, 0), lambda: self.typ(f.typ))

    def signature(self, sig: StableSignature) -> None:
        lay = self.lay
        lay.open("v", 0)
        lay.open("v", 0)
        self.sep_list(sig.types, self.typedef, ";")
        if sig.types:
            lay.text(";")
            lay.brk(1, 0)
        lay.open("v", 2)
        if sig.pre is None:
            lay.text("actor {")
            lay.brk(0, 0)
            self.sep_list(sig.post, lambda f: self.stable_field(f, False), ";")
            lay.brk(0, -2)
            lay.text("}")
        else:
            lay.text("actor ({")
            lay.brk(0, 0)
            self.sep_list(sig.pre, lambda f: self.stable_field(f, True), ";")
            lay.brk(0, -2)
            lay.text("}, {")
            lay.brk(0, 0)
            self.sep_list(sig.post, lambda f: self.stable_field(f, False), ";")
            lay.brk(0, -2)
            lay.text("})")
        lay.close()
        lay.text(";")
        lay.close()
        lay.close()
        lay.newline()


def format_type(t: StableType, *, margin: int = _MARGIN) -> str:
    """Motoko syntax for ``t``, laid out as moc does: lines break at ``margin`` columns (moc's 78;
    pass a huge margin for one line)."""
    lay = _Layout(margin)
    _Printer(lay).typ(t)
    return lay.flush()


def format_signature(sig: StableSignature) -> str:
    """The ``.most`` text of ``sig``: for signatures moc produced, the same bytes moc writes."""
    lay = _Layout()
    _Printer(lay).signature(sig)
    return f"// Version: {sig.version}\n" + lay.flush()
