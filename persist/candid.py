"""Candid for graphcopy's CLI and API: interfaces, text values, the binary (DIDL) codec, dfx-style output.

What is used, and why
---------------------
* ``.did`` interface text (the ``candid:service`` custom section ``moc`` writes) is parsed by
  ``_ic_candid_core.parse_did``, which ships with icp-py-core (wheel ``ic_candid_parser``) and binds
  DFINITY's Rust ``candid_parser`` crate, the reference parser. It handles ``type`` definitions, recursive
  types, tuples, func/service types and ``service : (init args) -> {...}``. Its JSON is turned into the
  small type model below (:data:`CType`). The binding only *parses*: it accepts unknown type names and
  alias cycles and loses a method declared by name (``m : F``), so :func:`parse_service` checks and
  repairs those cases.
* The binary codec is written here. ``icp_candid`` 2.3.1 (``encode``/``decode``) was tested and turned
  down. On decode it does not apply Candid subtyping: a wire ``null`` or a plain value where an ``opt`` is
  expected raises, so does an ``opt`` whose content does not match (it should give ``null``) and a
  missing trailing ``opt`` argument. It also ignores trailing bytes, raises ``struct.error`` or
  ``AttributeError`` for out-of-range or ill-typed values, and returns untyped Python values, so a
  printer could not tell ``nat`` from ``nat8``.
* No Python library parses Candid *text values* (``(42 : nat, "x")``). The parser here follows the
  grammar of ``candid_parser`` (``grammar.lalrpop``, ``token.rs``), and typing follows
  ``IDLValue::annotate_type``. It is stricter in one place: a record field the type does not have is an
  error, where didc would drop it without a word.
* :func:`format_args` reproduces the ``Display`` of ``IDLArgs`` from the ``candid`` crate
  (``rust/candid/src/pretty/candid.rs`` ``mod value``, ``pretty/utils.rs``, ``utils.rs::pp_num_str``,
  ``types/number.rs``), including the 80-column layout of the ``pretty`` crate (``render.rs``
  ``best``/``fitting``), which dfx uses to print replies.

Python values
-------------
:func:`decode_args` returns, and :func:`encode_values` takes, these Python values:

========================  ================================================================
Candid                    Python
========================  ================================================================
null, reserved            ``None``
bool                      ``bool``
nat, int, nat8 .. int64   ``int``
float32, float64          ``float``
text                      ``str``
blob (``vec nat8``)       ``bytes``
vec t                     ``list``
opt t                     ``None`` when absent, else the value. When ``t`` is itself ``null``,
                          ``reserved`` or ``opt`` a present value is wrapped in :class:`Some`,
                          so ``opt opt nat`` keeps ``null`` and ``opt null`` apart.
record                    ``dict`` keyed by field name (``str``), or by ``int`` for numeric
                          labels. A tuple record (labels 0..n-1) becomes a ``tuple``.
variant                   a one-entry ``dict`` ``{tag: value}``; value ``None`` for null payloads
principal, service        :class:`persist.principal.Principal`
func                      :class:`FuncRef`
========================  ================================================================
"""

from __future__ import annotations

import functools
import math
import re
import struct
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias, TypeVar, cast

import leb128

from persist.errors import CandidError
from persist.principal import MAX_PRINCIPAL_BYTES, Principal

__all__ = [
    "CType",
    "Field",
    "Func",
    "FuncRef",
    "MethodSig",
    "Opt",
    "PRIMITIVES",
    "Prim",
    "Record",
    "Ref",
    "Service",
    "ServiceInterface",
    "Some",
    "Variant",
    "Vec",
    "decode_args",
    "encode_args",
    "encode_values",
    "format_args",
    "format_type",
    "format_values",
    "idl_hash",
    "parse_service",
    "parse_type",
    "values_to_json",
]

# Guards against hostile or runaway input (a canister's reply is not trusted).
_MAX_DEPTH = 200  # nesting of decoded or encoded values
_MAX_TEXT_DEPTH = 100  # nesting of values and types in Candid text
# Decoding work allowed (values visited plus vec elements announced): a reply of a few bytes can
# announce a billion `null`s, so the budget grows with the size of the data, not with what it claims.
_DECODE_BUDGET_BASE = 1_000_000
_DECODE_BUDGET_PER_BYTE = 40

# =============================================================================================
# Type model
# =============================================================================================

PRIMITIVES: tuple[str, ...] = (
    "null", "bool", "nat", "int", "nat8", "nat16", "nat32", "nat64", "int8", "int16", "int32",
    "int64", "float32", "float64", "text", "reserved", "empty", "principal",
)  # fmt: skip

_INT_RANGES: dict[str, tuple[int | None, int | None]] = {
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
_FIXED_FORMATS = {
    "nat8": "<B", "nat16": "<H", "nat32": "<I", "nat64": "<Q",
    "int8": "<b", "int16": "<h", "int32": "<i", "int64": "<q",
    "float32": "<f", "float64": "<d",
}  # fmt: skip
_OPCODES = {
    "null": -1, "bool": -2, "nat": -3, "int": -4, "nat8": -5, "nat16": -6, "nat32": -7, "nat64": -8,
    "int8": -9, "int16": -10, "int32": -11, "int64": -12, "float32": -13, "float64": -14,
    "text": -15, "reserved": -16, "empty": -17, "principal": -24,
}  # fmt: skip
_PRIM_BY_OPCODE = {code: name for name, code in _OPCODES.items()}
_OP_OPT, _OP_VEC, _OP_RECORD, _OP_VARIANT, _OP_FUNC, _OP_SERVICE = -18, -19, -20, -21, -22, -23
_MODE_CODES = {"query": 1, "oneway": 2, "composite_query": 3}
_MODE_NAMES = {code: name for name, code in _MODE_CODES.items()}


_F = TypeVar("_F", bound=Callable[..., Any])


def _no_recursion_error(fn: _F) -> _F:
    """Report Python's recursion limit (a pathologically nested type) as a one-line CandidError."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise CandidError(f"Candid value or type nested too deeply ({fn.__name__})") from None

    return cast(_F, wrapper)


def idl_hash(name: str) -> int:
    """The Candid field id of a field name: ``h = h * 223 + byte (mod 2^32)`` over its UTF-8 bytes."""
    h = 0
    for b in name.encode("utf-8"):
        h = (h * 223 + b) & 0xFFFFFFFF
    return h


def _label_id(label: str | int) -> int:
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
        return _label_id(self.label)


def _sorted_fields(fields: Iterable[Field], what: str) -> tuple[Field, ...]:
    fs = tuple(sorted(fields, key=lambda f: f.id))
    for a, b in zip(fs, fs[1:], strict=False):
        if a.id == b.id:
            raise CandidError(
                f"{what} fields {_fmt_label(a.label)} and {_fmt_label(b.label)} have the same id {a.id}"
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
            if m not in _MODE_CODES:
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
        return _resolve(self)

    def __repr__(self) -> str:
        return f"Ref({self.name!r})"

    def __str__(self) -> str:
        return format_type(self)


CType: TypeAlias = Prim | Opt | Vec | Record | Variant | Func | Service | Ref


def _resolve(t: CType) -> CType:
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


def _is_prim(t: CType, *names: str) -> bool:
    r = _resolve(t)
    return isinstance(r, Prim) and r.name in names


def _needs_some(inner: CType) -> bool:
    """Whether a present ``opt inner`` value is wrapped in :class:`Some` (see module docstring)."""
    r = _resolve(inner)
    return isinstance(r, Opt) or (isinstance(r, Prim) and r.name in ("null", "reserved"))


def _defaults_to_null(t: CType) -> bool:
    """Types whose value may be omitted (a missing record field or trailing argument)."""
    r = _resolve(t)
    return isinstance(r, Opt) or (isinstance(r, Prim) and r.name in ("null", "reserved"))


def _type_eq(a: CType, b: CType, seen: set[tuple[CType, CType]] | None = None) -> bool:
    """Structural equality of two types, coinductive over named (recursive) types."""
    if a == b:
        return True
    if seen is None:
        seen = set()
    if isinstance(a, Ref) or isinstance(b, Ref):
        if (a, b) in seen:
            return True
        seen.add((a, b))
        return _type_eq(_resolve(a), _resolve(b), seen)
    if type(a) is not type(b):
        return False
    if isinstance(a, Opt | Vec):
        assert isinstance(b, Opt | Vec)
        return _type_eq(a.inner, b.inner, seen)
    if isinstance(a, Record | Variant):
        assert isinstance(b, Record | Variant)
        return len(a.fields) == len(b.fields) and all(
            x.id == y.id and _type_eq(x.type, y.type, seen) for x, y in zip(a.fields, b.fields, strict=True)
        )
    if isinstance(a, Func):
        assert isinstance(b, Func)
        return (
            a.modes == b.modes
            and len(a.args) == len(b.args)
            and len(a.rets) == len(b.rets)
            and all(_type_eq(x, y, seen) for x, y in zip(a.args + a.rets, b.args + b.rets, strict=True))
        )
    if isinstance(a, Service):
        assert isinstance(b, Service)
        return len(a.methods) == len(b.methods) and all(
            x[0] == y[0] and _type_eq(x[1], y[1], seen) for x, y in zip(a.methods, b.methods, strict=True)
        )
    return False


def _is_subtype(t1: CType, t2: CType, gamma: set[tuple[CType, CType]] | None = None) -> bool:
    """Candid subtyping ``t1 <: t2`` (spec "Upgrading and subtyping"; candid ``types/subtype.rs``).

    Used where decoding needs a type-level answer: for func and service references.
    """
    if t1 == t2:
        return True
    if gamma is None:
        gamma = set()
    if isinstance(t1, Ref) or isinstance(t2, Ref):
        if (t1, t2) in gamma:
            return True
        gamma.add((t1, t2))
        ok = _is_subtype(_resolve(t1), _resolve(t2), gamma)
        if not ok:
            gamma.discard((t1, t2))
        return ok
    if isinstance(t2, Prim) and t2.name == "reserved":
        return True
    if isinstance(t1, Prim) and t1.name == "empty":
        return True
    if isinstance(t1, Prim) and isinstance(t2, Prim):
        return t1.name == t2.name or (t1.name, t2.name) == ("nat", "int")
    if isinstance(t1, Service) and isinstance(t2, Prim):
        return t2.name == "principal"
    if isinstance(t2, Opt):
        return True  # null, opt and the "special opt rule": every type is a subtype of an opt
    if isinstance(t1, Vec) and isinstance(t2, Vec):
        return _is_subtype(t1.inner, t2.inner, gamma)
    if isinstance(t1, Record) and isinstance(t2, Record):
        have = {f.id: f.type for f in t1.fields}
        for f in t2.fields:
            if f.id in have:
                if not _is_subtype(have[f.id], f.type, gamma):
                    return False
            elif not _defaults_to_null(f.type):
                return False
        return True
    if isinstance(t1, Variant) and isinstance(t2, Variant):
        accept = {f.id: f.type for f in t2.fields}
        return all(f.id in accept and _is_subtype(f.type, accept[f.id], gamma) for f in t1.fields)
    if isinstance(t1, Service) and isinstance(t2, Service):
        have_m = dict(t1.methods)
        return all(name in have_m and _is_subtype(have_m[name], ft, gamma) for name, ft in t2.methods)
    if isinstance(t1, Func) and isinstance(t2, Func):
        def tup(ts: tuple[CType, ...]) -> Record:
            return Record(tuple(Field(i, t) for i, t in enumerate(ts)))

        return (
            t1.modes == t2.modes
            and _is_subtype(tup(t2.args), tup(t1.args), gamma)
            and _is_subtype(tup(t1.rets), tup(t2.rets), gamma)
        )
    return False


# =============================================================================================
# Values that have no plain Python counterpart
# =============================================================================================


@dataclass(frozen=True)
class Some:
    """A present ``opt`` value whose content type is ``null``, ``reserved`` or another ``opt``."""

    value: Any


@dataclass(frozen=True)
class FuncRef:
    """A Candid ``func`` value: a method of a service."""

    principal: Principal
    method: str


# =============================================================================================
# Printing types and identifiers
# =============================================================================================

# candid/src/pretty/candid.rs: KEYWORDS, is_valid_as_id, ident_string
_KEYWORDS = frozenset(
    "import service func type opt vec record variant blob principal nat nat8 nat16 nat32 nat64 int "
    "int8 int16 int32 int64 float32 float64 bool text null reserved empty oneway query "
    "composite_query".split()
)
_ID_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _ident(name: str) -> str:
    if _ID_RE.match(name) and name not in _KEYWORDS:
        return name
    return '"' + _escape_text(name, debug=False) + '"'


def _pp_num(digits: str) -> str:
    """candid utils.rs ``pp_num_str``: group decimal digits by three with ``_``."""
    sign = "-" if digits.startswith("-") else ""
    body = digits[len(sign) :]
    groups = []
    while len(body) > 3:
        groups.append(body[-3:])
        body = body[:-3]
    groups.append(body)
    return sign + "_".join(reversed(groups))


def _fmt_label(label: str | int) -> str:
    return _pp_num(str(label)) if isinstance(label, int) else _ident(label)


@_no_recursion_error
def format_type(t: CType) -> str:
    """Candid text of a type on one line, e.g. ``record { id : nat; name : text }``.

    Named types print as their name; the anonymous entries of a wire type table print expanded.
    """
    return _fmt_type(t, frozenset())


def _fmt_type(t: CType, stack: frozenset[Ref]) -> str:
    if isinstance(t, Ref):
        if not t.inline:
            return _ident(t.name)
        if t in stack:
            return "<recursive>"
        return _fmt_type(_resolve(t), stack | {t})
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
        body = "; ".join(f"{_fmt_label(f.label)} : {_fmt_type(f.type, stack)}" for f in t.fields)
        return "record { " + body + " }"
    if isinstance(t, Variant):
        if not t.fields:
            return "variant {}"
        parts = [
            _fmt_label(f.label)
            if isinstance(f.type, Prim) and f.type.name == "null"
            else f"{_fmt_label(f.label)} : {_fmt_type(f.type, stack)}"
            for f in t.fields
        ]
        return "variant { " + "; ".join(parts) + " }"
    if isinstance(t, Func):
        return "func " + _fmt_functype(t, stack)
    if isinstance(t, Service):
        if not t.methods:
            return "service {}"
        parts = []
        for name, ft in t.methods:
            sig = _fmt_functype(ft, stack) if isinstance(ft, Func) else _fmt_type(ft, stack)
            parts.append(f"{_ident(name)} : {sig}")
        return "service { " + "; ".join(parts) + " }"
    raise CandidError(f"not a Candid type: {t!r}")


def _fmt_functype(f: Func, stack: frozenset[Ref]) -> str:
    args = ", ".join(_fmt_type(a, stack) for a in f.args)
    rets = ", ".join(_fmt_type(r, stack) for r in f.rets)
    return f"({args}) -> ({rets})" + "".join(" " + m for m in f.modes)


# =============================================================================================
# Service interfaces (.did text) via the Rust candid_parser binding
# =============================================================================================


@dataclass(frozen=True)
class MethodSig:
    """One method of a service: argument and result types, and modes such as ``("query",)``."""

    name: str
    args: list[CType]
    rets: list[CType]
    modes: tuple[str, ...]

    @property
    def is_query(self) -> bool:
        """True for ``query`` and ``composite_query`` methods."""
        return "query" in self.modes or "composite_query" in self.modes

    def __str__(self) -> str:
        return f"{_ident(self.name)} : " + _fmt_functype(
            Func(tuple(self.args), tuple(self.rets), self.modes), frozenset()
        )


@dataclass(frozen=True)
class ServiceInterface:
    """A parsed ``.did`` service: its methods by name, its init arguments, and its named types."""

    methods: dict[str, MethodSig]
    init_args: list[CType]
    types: dict[str, CType] = field(default_factory=dict)


@_no_recursion_error
def parse_service(did_text: str | bytes) -> ServiceInterface:
    """Parse ``.did`` text (e.g. a module's ``candid:service`` section) into a :class:`ServiceInterface`.

    Accepts ``service : { ... }``, ``service : (init args) -> { ... }``, ``service : S`` and
    ``type`` definitions, recursive ones included. Text with no ``service`` yields no methods. The
    raw bytes of the custom section may be passed as they are (UTF-8). Raises :class:`CandidError`
    for syntax errors, unknown type names and alias cycles.
    """
    import json

    if isinstance(did_text, bytes | bytearray | memoryview):
        try:
            did_text = bytes(did_text).decode("utf-8")
        except UnicodeDecodeError:
            raise CandidError("bad Candid interface: the text is not valid UTF-8") from None
    if not isinstance(did_text, str):
        raise CandidError(f"bad Candid interface: expected text, got {type(did_text).__name__}")

    try:
        from _ic_candid_core import parse_did
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency of icp-py-core
        raise CandidError(f"the Candid interface parser is not installed ({exc})") from None
    try:
        doc = json.loads(parse_did(did_text))
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        msg = msg.removeprefix("Candid Syntax Error: ")
        raise CandidError(f"bad Candid interface: {msg}") from None

    env: dict[str, CType] = {}
    conv = _JsonTypes(env)
    for entry in doc.get("env") or []:
        name = entry["name"]
        if name in env:
            raise CandidError(f"bad Candid interface: type {name} is defined twice")
        env[name] = conv.type(entry["datatype"])
    actor = doc.get("actor") or {}
    methods: dict[str, MethodSig] = {}
    for m in actor.get("methods") or []:
        sig = MethodSig(
            name=m["name"],
            args=[conv.type(a) for a in m["args"]],
            rets=[conv.type(r) for r in m["rets"]],
            modes=tuple(m["modes"]),
        )
        methods[sig.name] = sig
    init_args = [conv.type(a) for a in actor.get("init") or []]
    _check_env(env, list(methods.values()), init_args)
    _repair_method_refs(did_text, env, methods)
    return ServiceInterface(methods=methods, init_args=init_args, types=env)


class _JsonTypes:
    """Converts the JSON of ``parse_did`` into :data:`CType` values."""

    def __init__(self, env: dict[str, CType]) -> None:
        self.env = env

    def type(self, j: Mapping[str, Any]) -> CType:
        kind: Any = j.get("type")
        value: Any = j.get("value")
        if kind == "Prim":
            return Prim(value)
        if kind == "Principal":
            return Prim("principal")
        if kind == "Id":
            return Ref(value, self.env)
        if kind == "Opt":
            return Opt(self.type(value))
        if kind == "Vec":
            return Vec(self.type(value))
        if kind in ("Record", "Variant"):
            fields = [Field(self.label(label), self.type(t)) for label, t in value]
            return Record(tuple(fields)) if kind == "Record" else Variant(tuple(fields))
        if kind == "Func":
            return self.func(value)
        if kind == "Service":
            return Service(tuple((m["name"], self.func(m)) for m in value))
        raise CandidError(f"bad Candid interface: unsupported type {kind!r}")

    def func(self, j: Mapping[str, Any]) -> Func:
        return Func(
            tuple(self.type(a) for a in j["args"]),
            tuple(self.type(r) for r in j["rets"]),
            tuple(j["modes"]),
        )

    @staticmethod
    def label(text: str) -> str | int:
        # Numeric labels come back printed like candid's Label Display, e.g. "4_294_967_295".
        if re.fullmatch(r"[0-9][0-9_]*", text):
            return int(text.replace("_", ""))
        return text


def _repair_method_refs(did_text: str, env: dict[str, CType], methods: dict[str, MethodSig]) -> None:
    """Restore methods declared by type name (``m : F``), which the binding reports as ``() -> ()``."""
    suspects = [m for m in methods.values() if not m.args and not m.rets and not m.modes]
    if not suspects:
        return
    text = re.sub(r"//[^\n]*", "", did_text)
    actor = list(re.finditer(r"\bservice\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*)?:", text))
    if not actor:
        return
    tail = text[actor[-1].end() :]
    named = re.match(r"\s*(?:\([^)]*\)\s*->\s*)?([A-Za-z_][A-Za-z0-9_]*)\s*;?\s*\Z", tail)
    if named:  # `service : S` - the methods are in `type S = service { ... }`
        decl = re.search(rf"\btype\s+{re.escape(named.group(1))}\s*=\s*service\b", text)
        if decl is None:
            return
        tail = text[decl.end() :]
    for m in suspects:
        name_re = re.escape(m.name) if _ID_RE.match(m.name) else '"' + re.escape(m.name) + '"'
        hit = re.search(rf"(?:^|[{{;\s]){name_re}\s*:\s*([A-Za-z_][A-Za-z0-9_]*)\s*[;}}]", tail)
        if hit is None or hit.group(1) not in env:
            continue
        target = _resolve(Ref(hit.group(1), env))
        if isinstance(target, Func):
            methods[m.name] = MethodSig(m.name, list(target.args), list(target.rets), target.modes)


def _check_env(env: Mapping[str, CType], methods: list[MethodSig], init_args: list[CType]) -> None:
    def walk(t: CType, seen: set[int]) -> None:
        if isinstance(t, Ref):
            if t.name not in t.env:
                raise CandidError(f"bad Candid interface: unknown type name {t.name}")
            return
        if id(t) in seen:
            return
        seen.add(id(t))
        if isinstance(t, Opt | Vec):
            walk(t.inner, seen)
        elif isinstance(t, Record | Variant):
            for f in t.fields:
                walk(f.type, seen)
        elif isinstance(t, Func):
            for x in t.args + t.rets:
                walk(x, seen)
        elif isinstance(t, Service):
            for _, ft in t.methods:
                walk(ft, seen)

    seen: set[int] = set()
    for name, t in env.items():
        walk(t, seen)
        try:
            _resolve(Ref(name, env))
        except CandidError:
            raise CandidError(f"bad Candid interface: type {name} is defined in terms of itself") from None
    for m in methods:
        for t in m.args + m.rets:
            walk(t, seen)
    for t in init_args:
        walk(t, seen)


# =============================================================================================
# Candid text: lexer
# =============================================================================================

_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_ID_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_ID_CHARS = _ID_START | _DIGITS
_SIMPLE_ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'"}
# Words the candid_parser lexer turns into keyword tokens (they cannot be unquoted labels).
_LEX_KEYWORDS = frozenset(
    "null vec record variant func service oneway query composite_query blob type import opt "
    "principal true false".split()
)


@dataclass
class _Tok:
    kind: str  # "id", "text", "num", "float", "sign", "eof", or the punctuation itself
    value: Any
    pos: int
    raw: str


def _syntax_error(msg: str, pos: int | None) -> CandidError:
    where = "" if pos is None else f" at position {pos + 1}"
    return CandidError(f"bad Candid text: {msg}{where}")


def _tokenize(src: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(src)
    while True:
        while i < n:  # whitespace and comments
            c = src[i]
            if c in " \t\r\n":
                i += 1
            elif src.startswith("//", i):
                j = src.find("\n", i)
                i = n if j < 0 else j + 1
            elif src.startswith("/*", i):
                depth, j = 1, i + 2
                while depth and j < n:
                    if src.startswith("/*", j):
                        depth, j = depth + 1, j + 2
                    elif src.startswith("*/", j):
                        depth, j = depth - 1, j + 2
                    else:
                        j += 1
                if depth:
                    raise _syntax_error("unclosed comment", i)
                i = j
            else:
                break
        if i >= n:
            toks.append(_Tok("eof", None, n, ""))
            return toks
        c, start = src[i], i
        if src.startswith("->", i):
            toks.append(_Tok("->", None, i, "->"))
            i += 2
        elif c == "." and i + 1 < n and src[i + 1] in _DIGITS:
            i = _lex_number(src, i, toks)
        elif c in "(){};,.:=":
            toks.append(_Tok(c, None, i, c))
            i += 1
        elif c in "+-":
            toks.append(_Tok("sign", c, i, c))
            i += 1
        elif c in _DIGITS:
            i = _lex_number(src, i, toks)
        elif c == '"':
            i = _lex_text(src, i, toks)
        elif c in _ID_START:
            j = i + 1
            while j < n and src[j] in _ID_CHARS:
                j += 1
            toks.append(_Tok("id", src[i:j], start, src[i:j]))
            i = j
        else:
            raise _syntax_error(f"unexpected character {c!r}", i)


def _lex_number(src: str, i: int, toks: list[_Tok]) -> int:
    n, start = len(src), i
    if src.startswith(("0x", "0X"), i) and i + 2 < n and src[i + 2] in _HEX:
        j = i + 2
        while j < n and (src[j] in _HEX or src[j] == "_"):
            j += 1
        raw = src[i:j]
        tok = _Tok("num", int(raw[2:].replace("_", ""), 16), start, raw)
    else:
        j = i
        while j < n and (src[j] in _DIGITS or src[j] == "_"):
            j += 1
        is_float = False
        if j < n and src[j] == ".":
            is_float = True
            j += 1
            while j < n and (src[j] in _DIGITS or src[j] == "_"):
                j += 1
        if j < n and src[j] in "eE":
            k = j + 1
            if k < n and src[k] in "+-":
                k += 1
            if k < n and src[k] in _DIGITS:
                while k < n and src[k] in _DIGITS:
                    k += 1
                is_float, j = True, k
        raw = src[i:j]
        if is_float:
            tok = _Tok("float", float(raw.replace("_", "")), start, raw)
        else:
            tok = _Tok("num", int(raw.replace("_", "")), start, raw)
    if j < n and src[j] in _ID_CHARS:
        k = j
        while k < n and src[k] in _ID_CHARS:
            k += 1
        raise _syntax_error(f"invalid number {src[start:k]!r}", start)
    toks.append(tok)
    return j


def _lex_text(src: str, i: int, toks: list[_Tok]) -> int:
    n, start = len(src), i
    buf = bytearray()
    j = i + 1
    while True:
        if j >= n:
            raise _syntax_error("unclosed string (missing '\"')", start)
        c = src[j]
        if c == '"':
            j += 1
            break
        if c == "\\":
            d = src[j + 1] if j + 1 < n else ""
            if d in _HEX and d and j + 2 < n and src[j + 2] in _HEX:
                buf.append(int(src[j + 1 : j + 3], 16))
                j += 3
            elif d == "u" and src.startswith("{", j + 2):
                k = src.find("}", j + 3)
                digits = src[j + 3 : k].replace("_", "") if k > 0 else ""
                if not digits or any(ch not in _HEX for ch in digits):
                    raise _syntax_error("bad unicode escape (expected \\u{hex})", j)
                cp = int(digits, 16)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    raise _syntax_error(f"unicode escape \\u{{{digits}}} is not a character", j)
                buf += chr(cp).encode("utf-8")
                j = k + 1
            elif d in _SIMPLE_ESCAPES:
                buf += _SIMPLE_ESCAPES[d]
                j += 2
            else:
                shown = d or "end of input"
                raise _syntax_error(f"unknown escape \\{shown} in string", j)
        else:
            k = j
            while k < n and src[k] not in '"\\':
                k += 1
            try:
                buf += src[j:k].encode("utf-8")
            except UnicodeEncodeError:
                raise _syntax_error("string holds characters that are not valid Unicode", j) from None
            j = k
    toks.append(_Tok("text", bytes(buf), start, src[start:j]))
    return j


# =============================================================================================
# Candid text: parser (values and type annotations)
# =============================================================================================


@dataclass
class _TNum:
    value: int
    raw: str


@dataclass
class _TFloat:
    value: float
    raw: str


@dataclass
class _TBool:
    value: bool


@dataclass
class _TNull:
    pass


@dataclass
class _TText:
    value: str


@dataclass
class _TBlob:
    value: bytes


@dataclass
class _TOpt:
    value: _Ast


@dataclass
class _TVec:
    items: list[_Ast]


@dataclass
class _TRecord:
    fields: list[tuple[str | int, _Ast]]


@dataclass
class _TVariant:
    label: str | int
    value: _Ast | None


@dataclass
class _TPrincipal:
    value: Principal


@dataclass
class _TService:
    value: Principal


@dataclass
class _TFunc:
    principal: Principal
    method: str


@dataclass
class _TAnn:
    value: _Ast
    type: CType


_Ast: TypeAlias = (
    _TNum | _TFloat | _TBool | _TNull | _TText | _TBlob | _TOpt | _TVec | _TRecord | _TVariant
    | _TPrincipal | _TService | _TFunc | _TAnn
)  # fmt: skip


class _Parser:
    def __init__(self, src: str, env: Mapping[str, CType] | None = None) -> None:
        if not isinstance(src, str):
            raise CandidError(f"bad Candid text: expected a string, got {type(src).__name__}")
        self.toks = _tokenize(src)
        self.i = 0
        self.env = env
        self.depth = 0

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "eof":
            self.i += 1
        return tok

    @staticmethod
    def describe(tok: _Tok) -> str:
        if tok.kind == "eof":
            return "end of input"
        raw = tok.raw if len(tok.raw) <= 30 else tok.raw[:27] + "..."
        return f"{raw!r}" if tok.kind != "text" else raw

    def fail(self, expected: str, tok: _Tok | None = None) -> CandidError:
        tok = tok or self.peek()
        if tok.kind == "eof":
            unbalanced = expected.startswith(("')'", "'}'", "','"))
            hint = " (unbalanced parentheses or braces?)" if unbalanced else ""
            return _syntax_error(f"expected {expected} but the text ended{hint}", None)
        return _syntax_error(f"expected {expected}, found {self.describe(tok)}", tok.pos)

    def expect(self, kind: str) -> _Tok:
        if self.peek().kind != kind:
            raise self.fail(f"'{kind}'")
        return self.next()

    def is_word(self, word: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok.kind == "id" and tok.value == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > _MAX_TEXT_DEPTH:
            raise _syntax_error(f"values nested more than {_MAX_TEXT_DEPTH} deep", self.peek().pos)

    def sep_by(self, item: Callable[[], Any], sep: str, close: str) -> list[Any]:
        out = []
        while self.peek().kind != close:
            out.append(item())
            if self.peek().kind == sep:
                self.next()
            elif self.peek().kind != close:
                raise self.fail(f"'{sep}' or '{close}'")
        self.next()
        return out

    def text_value(self, tok: _Tok) -> str:
        try:
            return bytes(tok.value).decode("utf-8")
        except UnicodeDecodeError:
            raise _syntax_error("text is not valid UTF-8 (use blob \"...\" for bytes)", tok.pos) from None

    def principal(self, tok: _Tok) -> Principal:
        if tok.kind != "text":
            raise self.fail("a quoted principal", tok)
        text = self.text_value(tok)
        try:
            return Principal.from_text(text)
        except CandidError as exc:
            raise _syntax_error(str(exc), tok.pos) from None

    # -- values ---------------------------------------------------------------------------------

    def parse_args(self) -> list[_Ast]:
        if self.peek().kind == "eof":
            return []
        if self.peek().kind == "(":
            self.next()
            args: list[_Ast] = self.sep_by(self.annval, ",", ")")
        else:
            args = [self.annval()]
        if self.peek().kind != "eof":
            tok = self.peek()
            raise _syntax_error(
                f"unexpected {self.describe(tok)} after the arguments "
                "(write several arguments as a tuple: (a, b))",
                tok.pos,
            )
        return args

    def annval(self) -> _Ast:
        value = self.arg()
        if self.peek().kind == ":":
            self.next()
            return _TAnn(value, self.typ())
        return value

    def arg(self) -> _Ast:
        self.enter()
        try:
            return self._arg()
        finally:
            self.depth -= 1

    def _arg(self) -> _Ast:
        tok = self.peek()
        if tok.kind == "(":
            self.next()
            value = self.annval()
            self.expect(")")
            return value
        if tok.kind in ("sign", "num", "float"):
            return self.number()
        if tok.kind == "text":
            self.next()
            return _TText(self.text_value(tok))
        if tok.kind != "id":
            raise self.fail("a value")
        word = tok.value
        if word in ("NaN", "nan", "inf", "infinity"):
            return self.number()
        self.next()
        if word in ("true", "false"):
            return _TBool(word == "true")
        if word == "null":
            return _TNull()
        if word == "opt":
            return _TOpt(self.arg())
        if word == "vec":
            self.expect("{")
            return _TVec(self.sep_by(self.annval, ";", "}"))
        if word == "blob":
            t = self.next()
            if t.kind != "text":
                raise self.fail('a quoted string after blob, like blob "\\00\\ff"', t)
            return _TBlob(bytes(t.value))
        if word == "record":
            return self.record()
        if word == "variant":
            return self.variant()
        if word == "principal":
            return _TPrincipal(self.principal(self.next()))
        if word == "service":
            return _TService(self.principal(self.next()))
        if word == "func":
            p = self.principal(self.next())
            self.expect(".")
            name = self.next()
            if name.kind == "id" and name.value not in _LEX_KEYWORDS:
                return _TFunc(p, name.value)
            if name.kind == "text":
                return _TFunc(p, self.text_value(name))
            raise self.fail("a method name", name)
        raise _syntax_error(
            f"unexpected word {word!r} (text values are written in double quotes)", tok.pos
        )

    def number(self) -> _Ast:
        sign = ""
        if self.peek().kind == "sign":
            sign = self.next().value
        tok = self.next()
        if tok.kind == "num":
            value = -tok.value if sign == "-" else tok.value
            return _TNum(value, sign + tok.raw)
        if tok.kind == "float":
            return _TFloat(-tok.value if sign == "-" else tok.value, sign + tok.raw)
        if tok.kind == "id" and tok.value in ("NaN", "nan", "inf", "infinity"):
            f = math.nan if tok.value.lower() == "nan" else math.inf
            return _TFloat(-f if sign == "-" else f, sign + tok.raw)
        raise self.fail("a number", tok)

    def label_ahead(self, follow: str) -> bool:
        tok = self.peek()
        is_label = tok.kind in ("text", "num") or (tok.kind == "id" and tok.value not in _LEX_KEYWORDS)
        return is_label and self.peek(1).kind == follow

    def label(self) -> str | int:
        tok = self.next()
        if tok.kind == "num":
            if not 0 <= tok.value < 2**32:
                raise _syntax_error("field id out of the u32 range", tok.pos)
            return int(tok.value)
        if tok.kind == "text":
            return self.text_value(tok)
        if tok.kind == "id" and tok.value not in _LEX_KEYWORDS:
            return str(tok.value)
        raise self.fail("a field name", tok)

    def record(self) -> _TRecord:
        open_tok = self.expect("{")
        fields: list[tuple[str | int, _Ast]] = []
        next_id = 0

        def item() -> None:
            nonlocal next_id
            if self.label_ahead("="):
                label = self.label()
                self.next()
                value = self.annval()
            else:
                label, value = next_id, self.annval()
            next_id = _label_id(label) + 1
            fields.append((label, value))

        self.sep_by(item, ";", "}")
        ids: dict[int, str | int] = {}
        for label, _ in fields:
            lid = _label_id(label)
            if lid in ids:
                raise _syntax_error(
                    f"record field {_fmt_label(label)} given twice"
                    + ("" if ids[lid] == label else f" (same id as {_fmt_label(ids[lid])})"),
                    open_tok.pos,
                )
            ids[lid] = label
        return _TRecord(fields)

    def variant(self) -> _TVariant:
        self.expect("{")
        if self.label_ahead("="):
            label = self.label()
            self.next()
            value: _Ast | None = self.annval()
        else:
            label, value = self.label(), None
        if self.peek().kind == ";":
            self.next()
        if self.peek().kind != "}":
            raise self.fail("'}' (a variant value has exactly one field)")
        self.next()
        return _TVariant(label, value)

    # -- types ----------------------------------------------------------------------------------

    def typ(self) -> CType:
        self.enter()
        try:
            return self._typ()
        finally:
            self.depth -= 1

    def _typ(self) -> CType:
        tok = self.next()
        if tok.kind != "id":
            raise self.fail("a type", tok)
        word = tok.value
        if word in PRIMITIVES:
            return Prim(word)
        if word == "opt":
            return Opt(self.typ())
        if word == "vec":
            return Vec(self.typ())
        if word == "blob":
            return Vec(Prim("nat8"))
        if word in ("record", "variant"):
            return self.fields_type(word)
        if word == "func":
            return self.functype()
        if word == "service":
            return self.service_type()
        if word in _LEX_KEYWORDS:
            raise self.fail("a type", tok)
        if self.env is not None and word in self.env:
            return Ref(word, self.env)
        raise _syntax_error(f"unknown type {word!r}", tok.pos)

    def fields_type(self, kind: str) -> CType:
        self.expect("{")
        fields: list[Field] = []
        next_id = 0

        def item() -> None:
            nonlocal next_id
            if self.label_ahead(":"):
                label = self.label()
                self.next()
                fields.append(Field(label, self.typ()))
            elif kind == "variant":
                label = self.label()
                fields.append(Field(label, Prim("null")))
            else:
                label = next_id
                fields.append(Field(label, self.typ()))
            next_id = _label_id(label) + 1

        self.sep_by(item, ";", "}")
        try:
            return Record(tuple(fields)) if kind == "record" else Variant(tuple(fields))
        except CandidError as exc:
            raise _syntax_error(str(exc), self.peek().pos) from None

    def functype(self) -> Func:
        def params() -> tuple[CType, ...]:
            self.expect("(")

            def param() -> CType:
                if self.label_ahead(":"):
                    self.label()
                    self.next()
                return self.typ()

            return tuple(self.sep_by(param, ",", ")"))

        args = params()
        self.expect("->")
        rets = params()
        modes = []
        while self.peek().kind == "id" and self.peek().value in _MODE_CODES:
            modes.append(self.next().value)
        return Func(args, rets, tuple(modes))

    def service_type(self) -> Service:
        self.expect("{")
        methods: list[tuple[str, CType]] = []

        def item() -> None:
            name = self.label()
            if isinstance(name, int):
                raise self.fail("a method name")
            self.expect(":")
            if self.peek().kind == "(":
                methods.append((name, self.functype()))
            else:
                methods.append((name, self.typ()))

        self.sep_by(item, ";", "}")
        try:
            return Service(tuple(methods))
        except CandidError as exc:
            raise _syntax_error(str(exc), self.peek().pos) from None


@_no_recursion_error
def parse_type(text: str, env: Mapping[str, CType] | None = None) -> CType:
    """Parse one Candid type, e.g. ``"record { id : nat; tags : vec text }"``.

    Type names are looked up in ``env`` (for example ``ServiceInterface.types``).
    """
    p = _Parser(text, env)
    t = p.typ()
    if p.peek().kind != "eof":
        raise p.fail("end of the type")
    return t


# =============================================================================================
# Typing parsed text values (IDLValue::annotate_type with from_parser = true)
# =============================================================================================


def _describe(ast: _Ast) -> str:
    if isinstance(ast, _TNum | _TFloat):
        return ast.raw if len(ast.raw) <= 40 else ast.raw[:37] + "..."
    if isinstance(ast, _TBool):
        return "true" if ast.value else "false"
    if isinstance(ast, _TNull):
        return "null"
    if isinstance(ast, _TText):
        s = ast.value if len(ast.value) <= 30 else ast.value[:27] + "..."
        return 'text "' + _escape_text(s, debug=False) + '"'
    if isinstance(ast, _TBlob):
        return f"blob ({len(ast.value)} bytes)"
    if isinstance(ast, _TOpt):
        return "opt " + _describe(ast.value)
    if isinstance(ast, _TVec):
        return f"vec ({len(ast.items)} elements)"
    if isinstance(ast, _TRecord):
        return "record {" + "; ".join(_fmt_label(label) for label, _ in ast.fields[:5]) + "}"
    if isinstance(ast, _TVariant):
        return "variant { " + _fmt_label(ast.label) + " }"
    if isinstance(ast, _TPrincipal):
        return f'principal "{ast.value}"'
    if isinstance(ast, _TService):
        return f'service "{ast.value}"'
    if isinstance(ast, _TFunc):
        return f'func "{ast.principal}".{_ident(ast.method)}'
    return _describe(ast.value) + " : " + format_type(ast.type)


class _Annotator:
    """Checks a parsed value against a type and builds the Python value (see module docstring)."""

    def __init__(self, arg_no: int) -> None:
        self.arg_no = arg_no
        self.path: list[str] = []

    def where(self) -> str:
        loc = f"argument {self.arg_no}"
        return loc + (f" (at {''.join(self.path)})" if self.path else "")

    def mismatch(self, t: CType, ast: _Ast, note: str = "") -> CandidError:
        return CandidError(
            f"bad Candid argument: expected {format_type(t)} for {self.where()}, got {_describe(ast)}{note}"
        )

    def value(self, ast: _Ast, t: CType) -> Any:
        r = _resolve(t)
        if isinstance(ast, _TAnn):
            ok = (
                _type_eq(ast.type, t)
                or (_is_prim(ast.type, "nat") and _is_prim(r, "int"))
                or _is_prim(r, "reserved")
            )
            if not ok:
                raise self.mismatch(t, ast)
            v = self.value(ast.value, ast.type)
            return None if _is_prim(r, "reserved") else v
        if isinstance(r, Prim):
            return self.prim(ast, r)
        if isinstance(r, Opt):
            if isinstance(ast, _TNull):
                return None
            if isinstance(ast, _TOpt):
                v = self.value(ast.value, r.inner)
                return Some(v) if _needs_some(r.inner) else v
            raise self.mismatch(t, ast, f" (write opt {_describe(ast)}, or null)")
        if isinstance(r, Vec):
            return self.vec(ast, r, t)
        if isinstance(r, Record):
            if not isinstance(ast, _TRecord):
                raise self.mismatch(t, ast)
            return self.record(ast, r)
        if isinstance(r, Variant):
            if not isinstance(ast, _TVariant):
                raise self.mismatch(t, ast)
            return self.variant(ast, r)
        if isinstance(r, Func):
            if not isinstance(ast, _TFunc):
                raise self.mismatch(t, ast)
            return FuncRef(ast.principal, ast.method)
        if isinstance(r, Service):
            if not isinstance(ast, _TService):
                raise self.mismatch(t, ast)
            return ast.value
        raise self.mismatch(t, ast)

    def prim(self, ast: _Ast, t: Prim) -> Any:
        name = t.name
        if name == "reserved":
            return None
        if name in _INT_RANGES:
            if not isinstance(ast, _TNum):
                raise self.mismatch(t, ast)
            lo, hi = _INT_RANGES[name]
            if (lo is not None and ast.value < lo) or (hi is not None and ast.value > hi):
                span = f"{lo}..{hi}" if hi is not None else "0 and up"
                raise self.mismatch(t, ast, f" (out of range {span})")
            return ast.value
        if name in ("float32", "float64"):
            if not isinstance(ast, _TNum | _TFloat):
                raise self.mismatch(t, ast)
            try:
                f = float(ast.value)
            except OverflowError:
                raise self.mismatch(t, ast, " (out of range)") from None
            if name == "float32":
                try:
                    f = struct.unpack("<f", struct.pack("<f", f))[0]
                except OverflowError:
                    raise self.mismatch(t, ast, " (out of range for float32)") from None
            return f
        if name == "null" and isinstance(ast, _TNull):
            return None
        if name == "bool" and isinstance(ast, _TBool):
            return ast.value
        if name == "text" and isinstance(ast, _TText):
            return ast.value
        if name == "principal" and isinstance(ast, _TPrincipal):
            return ast.value
        if name == "empty":
            raise self.mismatch(t, ast, " (no value has type empty)")
        raise self.mismatch(t, ast)

    def vec(self, ast: _Ast, r: Vec, t: CType) -> Any:
        if _is_prim(r.inner, "nat8"):
            if isinstance(ast, _TBlob):
                return ast.value
            if isinstance(ast, _TVec):
                return bytes(self.items(ast.items, r.inner))
            raise self.mismatch(t, ast)
        if isinstance(ast, _TVec):
            return self.items(ast.items, r.inner)
        raise self.mismatch(t, ast)

    def items(self, items: list[_Ast], t: CType) -> list[Any]:
        out = []
        for i, item in enumerate(items):
            self.path.append(f"[{i}]")
            out.append(self.value(item, t))
            self.path.pop()
        return out

    def record(self, ast: _TRecord, r: Record) -> Any:
        given = {_label_id(label): (label, v) for label, v in ast.fields}
        known = {f.id for f in r.fields}
        for fid, (label, _) in given.items():
            if fid not in known:
                names = ", ".join(_fmt_label(f.label) for f in r.fields) or "none"
                raise CandidError(
                    f"bad Candid argument: unknown field {_fmt_label(label)} for {self.where()} "
                    f"(the record's fields: {names})"
                )
        out: dict[str | int, Any] = {}
        for f in r.fields:
            if f.id in given:
                self.path.append(f".{_fmt_label(f.label)}")
                out[f.label] = self.value(given[f.id][1], f.type)
                self.path.pop()
            elif _defaults_to_null(f.type):
                out[f.label] = None
            else:
                raise CandidError(
                    f"bad Candid argument: missing field {_fmt_label(f.label)} : {format_type(f.type)} "
                    f"for {self.where()}"
                )
        return tuple(out.values()) if r.is_tuple else out

    def variant(self, ast: _TVariant, r: Variant) -> dict[str | int, Any]:
        fid = _label_id(ast.label)
        for f in r.fields:
            if f.id == fid:
                self.path.append(f".{_fmt_label(f.label)}")
                value = self.value(ast.value if ast.value is not None else _TNull(), f.type)
                self.path.pop()
                return {f.label: value}
        tags = ", ".join(_fmt_label(f.label) for f in r.fields) or "none"
        raise CandidError(
            f"bad Candid argument: unknown variant tag {_fmt_label(ast.label)} for {self.where()} "
            f"(expected one of: {tags})"
        )


def _infer(ast: _Ast) -> CType:
    """The type of an unannotated value, as ``didc encode`` does without types (numbers are int)."""
    if isinstance(ast, _TAnn):
        return ast.type
    if isinstance(ast, _TNum):
        return Prim("int")
    if isinstance(ast, _TFloat):
        return Prim("float64")
    if isinstance(ast, _TBool):
        return Prim("bool")
    if isinstance(ast, _TNull):
        return Prim("null")
    if isinstance(ast, _TText):
        return Prim("text")
    if isinstance(ast, _TBlob):
        return Vec(Prim("nat8"))
    if isinstance(ast, _TOpt):
        return Opt(_infer(ast.value))
    if isinstance(ast, _TVec):
        return Vec(_infer(ast.items[0]) if ast.items else Prim("empty"))
    if isinstance(ast, _TRecord):
        return Record(tuple(Field(label, _infer(v)) for label, v in ast.fields))
    if isinstance(ast, _TVariant):
        inner = _infer(ast.value) if ast.value is not None else Prim("null")
        return Variant((Field(ast.label, inner),))
    if isinstance(ast, _TPrincipal):
        return Prim("principal")
    if isinstance(ast, _TService):
        return Service(())
    return Func((), (), ())


def _env_of(types: Sequence[CType]) -> Mapping[str, CType] | None:
    for t in types:
        if isinstance(t, Ref) and not t.inline:
            return t.env
    return None


@_no_recursion_error
def encode_args(text: str, types: Sequence[CType] | None) -> bytes:
    """Encode Candid text arguments, e.g. ``'(42 : nat, "x")'``, to DIDL bytes.

    With ``types`` (a method's argument types) every value is checked against its type; plain
    numbers take the expected number type, and omitted trailing ``opt``/``null``/``reserved``
    arguments are filled with ``null``. Type names of the service may be used in annotations. With
    ``types=None`` the types come from the literals and their annotations, as ``didc encode`` does
    (an unannotated number is an ``int``, a float a ``float64``). A single value may be written
    without parentheses; empty text means no arguments. Raises :class:`CandidError` (one line).
    """
    asts = _Parser(text, _env_of(types or [])).parse_args()
    if types is None:
        types = [_infer(a) for a in asts]
    if len(asts) > len(types):
        raise CandidError(
            f"bad Candid argument: got {len(asts)} arguments, but the method takes {len(types)}"
        )
    values = []
    for i, t in enumerate(types):
        if i < len(asts):
            values.append(_Annotator(i + 1).value(asts[i], t))
        elif _defaults_to_null(t):
            values.append(None)
        else:
            raise CandidError(
                f"bad Candid argument: missing argument {i + 1} of type {format_type(t)} "
                f"(got {len(asts)} of {len(types)})"
            )
    return encode_values(values, types)


# =============================================================================================
# Binary encoding
# =============================================================================================


# LEB128 encoding comes from the `leb128` package; decoding stays in `_Reader` below, which needs
# position tracking, size bounds against hostile input and CandidError messages.
def _uleb(n: int) -> bytes:
    return bytes(leb128.u.encode(n))


def _sleb(n: int) -> bytes:
    return bytes(leb128.i.encode(n))


class _TypeTable:
    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.index: dict[CType, int] = {}

    def ref(self, t: CType) -> bytes:
        if isinstance(t, Prim):
            return _sleb(_OPCODES[t.name])
        if t in self.index:
            return _sleb(self.index[t])
        target = _resolve(t)
        if isinstance(target, Prim):
            return _sleb(_OPCODES[target.name])
        if target in self.index:
            self.index[t] = self.index[target]
            return _sleb(self.index[target])
        idx = len(self.entries)
        self.entries.append(b"")
        self.index[t] = idx
        self.index[target] = idx
        self.entries[idx] = self.body(target)
        return _sleb(idx)

    def body(self, t: CType) -> bytes:
        if isinstance(t, Opt):
            return _sleb(_OP_OPT) + self.ref(t.inner)
        if isinstance(t, Vec):
            return _sleb(_OP_VEC) + self.ref(t.inner)
        if isinstance(t, Record | Variant):
            op = _OP_RECORD if isinstance(t, Record) else _OP_VARIANT
            parts = [_sleb(op), _uleb(len(t.fields))]
            for f in t.fields:
                parts += [_uleb(f.id), self.ref(f.type)]
            return b"".join(parts)
        if isinstance(t, Func):
            parts = [_sleb(_OP_FUNC), _uleb(len(t.args))]
            parts += [self.ref(a) for a in t.args]
            parts.append(_uleb(len(t.rets)))
            parts += [self.ref(r) for r in t.rets]
            parts += [_uleb(len(t.modes)), bytes(_MODE_CODES[m] for m in t.modes)]
            return b"".join(parts)
        if isinstance(t, Service):
            parts = [_sleb(_OP_SERVICE), _uleb(len(t.methods))]
            for name, ft in t.methods:
                if not isinstance(_resolve(ft), Func):
                    raise CandidError(f"service method {name!r} is not a function type")
                raw = name.encode("utf-8")
                parts += [_uleb(len(raw)), raw, self.ref(ft)]
            return b"".join(parts)
        raise CandidError(f"not a Candid type: {t!r}")


def _py_describe(v: Any) -> str:
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


class _Encoder:
    def __init__(self, table: _TypeTable) -> None:
        self.table = table
        self.out = bytearray()
        self.arg_no = 0
        self.path: list[str] = []
        self.depth = 0

    def fail(self, t: CType, v: Any, note: str = "") -> CandidError:
        loc = f"value {self.arg_no}" + (f" (at {''.join(self.path)})" if self.path else "")
        got = _py_describe(v)
        return CandidError(f"bad Candid value: expected {format_type(t)} for {loc}, got {got}{note}")

    def value(self, v: Any, t: CType) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise CandidError(f"bad Candid value: nested more than {_MAX_DEPTH} deep")
        try:
            self._value(v, t)
        finally:
            self.depth -= 1

    def _value(self, v: Any, t: CType) -> None:
        r = _resolve(t)
        out = self.out
        if isinstance(r, Prim):
            self.prim(v, r)
        elif isinstance(r, Opt):
            if v is None:
                out.append(0)
                return
            if _needs_some(r.inner):
                if not isinstance(v, Some):
                    raise self.fail(t, v, " (a present value of this opt is written Some(...))")
                v = v.value
            elif isinstance(v, Some):
                v = v.value
            out.append(1)
            self.value(v, r.inner)
        elif isinstance(r, Vec):
            if _is_prim(r.inner, "nat8") and isinstance(v, bytes | bytearray | memoryview):
                data = bytes(v)
                out += _uleb(len(data)) + data
                return
            if not isinstance(v, list | tuple):
                raise self.fail(t, v)
            out += _uleb(len(v))
            for i, item in enumerate(v):
                self.path.append(f"[{i}]")
                self.value(item, r.inner)
                self.path.pop()
        elif isinstance(r, Record):
            self.record(v, r, t)
        elif isinstance(r, Variant):
            if not isinstance(v, dict) or len(v) != 1:
                raise self.fail(t, v, " (a variant value is a one-entry dict {tag: value})")
            ((key, inner),) = v.items()
            if not isinstance(key, str | int):
                raise self.fail(t, v)
            kid = _label_id(key)
            for idx, f in enumerate(r.fields):
                if f.id == kid:
                    out += _uleb(idx)
                    self.path.append(f".{_fmt_label(f.label)}")
                    self.value(inner, f.type)
                    self.path.pop()
                    return
            raise self.fail(t, v, f" (unknown variant tag {_fmt_label(key)})")
        elif isinstance(r, Func):
            if isinstance(v, FuncRef):
                p, method = v.principal, v.method
            elif isinstance(v, tuple) and len(v) == 2:
                p, method = self.principal(v[0], t), v[1]
            else:
                raise self.fail(t, v)
            if not isinstance(method, str):
                raise self.fail(t, v)
            raw = method.encode("utf-8")
            out += b"\x01\x01" + _uleb(len(p.raw)) + p.raw + _uleb(len(raw)) + raw
        elif isinstance(r, Service):
            p = self.principal(v, t)
            out += b"\x01" + _uleb(len(p.raw)) + p.raw
        else:
            raise CandidError(f"not a Candid type: {t!r}")

    def principal(self, v: Any, t: CType) -> Principal:
        if isinstance(v, Principal):
            return v
        if isinstance(v, str):
            return Principal.from_text(v)
        raise self.fail(t, v)

    def prim(self, v: Any, t: Prim) -> None:
        name, out = t.name, self.out
        if name in ("null", "reserved"):
            if name == "null" and v is not None:
                raise self.fail(t, v)
        elif name == "bool":
            if not isinstance(v, bool):
                raise self.fail(t, v)
            out.append(1 if v else 0)
        elif name in _INT_RANGES:
            if not isinstance(v, int) or isinstance(v, bool):
                raise self.fail(t, v)
            lo, hi = _INT_RANGES[name]
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise self.fail(t, v, " (out of range)")
            if name == "nat":
                out += _uleb(v)
            elif name == "int":
                out += _sleb(v)
            else:
                out += struct.pack(_FIXED_FORMATS[name], v)
        elif name in ("float32", "float64"):
            if not isinstance(v, float | int) or isinstance(v, bool):
                raise self.fail(t, v)
            try:
                out += struct.pack(_FIXED_FORMATS[name], float(v))
            except OverflowError:
                raise self.fail(t, v, " (out of range)") from None
        elif name == "text":
            if not isinstance(v, str):
                raise self.fail(t, v)
            try:
                raw = v.encode("utf-8")
            except UnicodeEncodeError:
                raise self.fail(t, v, " (not valid Unicode)") from None
            out += _uleb(len(raw)) + raw
        elif name == "principal":
            p = self.principal(v, t)
            out += b"\x01" + _uleb(len(p.raw)) + p.raw
        else:  # empty
            raise self.fail(t, v, " (no value has type empty)")

    def record(self, v: Any, r: Record, t: CType) -> None:
        if isinstance(v, tuple | list):
            if len(v) != len(r.fields):
                raise self.fail(t, v, f" ({len(r.fields)} fields expected)")
            given = {f.id: item for f, item in zip(r.fields, v, strict=True)}
        elif isinstance(v, dict):
            given = {}
            known = {f.id for f in r.fields}
            for key, item in v.items():
                if not isinstance(key, str | int) or _label_id(key) not in known:
                    raise self.fail(t, v, f" (unknown field {key!r})")
                given[_label_id(key)] = item
        else:
            raise self.fail(t, v)
        for f in r.fields:
            if f.id in given:
                self.path.append(f".{_fmt_label(f.label)}")
                self.value(given[f.id], f.type)
                self.path.pop()
            elif _defaults_to_null(f.type):
                self.value(None, f.type)
            else:
                raise self.fail(t, v, f" (missing field {_fmt_label(f.label)})")


@_no_recursion_error
def encode_values(values: Sequence[Any], types: Sequence[CType]) -> bytes:
    """Encode Python values (see the module docstring for the mapping) with the given types."""
    if len(values) != len(types):
        raise CandidError(f"bad Candid value: {len(values)} values for {len(types)} types")
    table = _TypeTable()
    refs = [table.ref(t) for t in types]
    enc = _Encoder(table)
    for i, (v, t) in enumerate(zip(values, types, strict=True)):
        enc.arg_no = i + 1
        enc.value(v, t)
    return b"".join(
        [b"DIDL", _uleb(len(table.entries)), *table.entries, _uleb(len(types)), *refs, bytes(enc.out)]
    )


# =============================================================================================
# Binary decoding, with Candid subtyping
# =============================================================================================


class _Mismatch(Exception):
    """The wire type does not fit the expected type (a "subtype error": an enclosing opt turns it
    into null; at the top it becomes a CandidError)."""


def _decode_error(msg: str) -> CandidError:
    return CandidError(f"cannot decode Candid: {msg}")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _decode_error("the data ends too early")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n > self.remaining():
            raise _decode_error(f"the data ends too early (wanted {n} bytes, {self.remaining()} left)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    def sleb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result

    def length(self) -> int:
        n = self.uleb()
        if n > len(self.data):
            raise _decode_error(f"length {n} is larger than the data")
        return n


def _read_header(r: _Reader) -> list[CType]:
    if len(r.data) < 4 or r.take(4) != b"DIDL":
        raise _decode_error("the data does not start with the magic bytes DIDL")
    count = r.length()
    env: dict[str, CType] = {}

    def typeref(where: str) -> CType:
        code = r.sleb()
        if code >= 0:
            if code >= count:
                raise _decode_error(f"{where} refers to type table entry {code}, but there are {count}")
            return Ref(str(code), env, inline=True)
        name = _PRIM_BY_OPCODE.get(code)
        if name is None:
            raise _decode_error(f"{where} has an invalid type code {code}")
        return Prim(name)

    for i in range(count):
        where = f"type table entry {i}"
        op = r.sleb()
        t: CType
        if op == _OP_OPT:
            t = Opt(typeref(where))
        elif op == _OP_VEC:
            t = Vec(typeref(where))
        elif op in (_OP_RECORD, _OP_VARIANT):
            fields = []
            last = -1
            for _ in range(r.length()):
                fid = r.uleb()
                if fid <= last or fid >= 2**32:
                    raise _decode_error(f"{where} has field ids out of order or out of range")
                last = fid
                fields.append(Field(fid, typeref(where)))
            t = Record(tuple(fields)) if op == _OP_RECORD else Variant(tuple(fields))
        elif op == _OP_FUNC:
            args = tuple(typeref(where) for _ in range(r.length()))
            rets = tuple(typeref(where) for _ in range(r.length()))
            modes = []
            for _ in range(r.length()):
                code = r.byte()
                if code not in _MODE_NAMES:
                    raise _decode_error(f"{where} has an invalid function mode {code}")
                modes.append(_MODE_NAMES[code])
            t = Func(args, rets, tuple(modes))
        elif op == _OP_SERVICE:
            methods = []
            last_name: bytes | None = None
            for _ in range(r.length()):
                raw = r.take(r.length())
                if last_name is not None and raw <= last_name:
                    raise _decode_error(f"{where} has method names out of order")
                last_name = raw
                try:
                    name = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise _decode_error(f"{where} has a method name that is not UTF-8") from None
                methods.append((name, typeref(where)))
            t = Service(tuple(methods))
        else:
            raise _decode_error(f"{where} has an invalid type code {op}")
        env[str(i)] = t
    for key, entry in env.items():
        if isinstance(entry, Service):
            for method, ft in entry.methods:
                if not isinstance(_resolve(ft), Func):
                    raise _decode_error(f"type table entry {key}: method {method} is not a function type")
    return [typeref("argument type") for _ in range(r.length())]


def _min_size(t: CType, stack: frozenset[Ref] = frozenset()) -> int:
    """A lower bound on the bytes a value of wire type ``t`` occupies (0 if it may take none)."""
    if isinstance(t, Ref):
        if t in stack:
            return 0
        return _min_size(_resolve(t), stack | {t})
    if isinstance(t, Prim):
        return 0 if t.name in ("null", "reserved", "empty") else 1
    if isinstance(t, Record):
        return sum(_min_size(f.type, stack) for f in t.fields)
    return 1


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.r = _Reader(data)
        self.depth = 0
        self.budget = _DECODE_BUDGET_BASE + _DECODE_BUDGET_PER_BYTE * len(data)

    def charge(self, cost: int) -> None:
        self.budget -= cost
        if self.budget < 0:
            raise _decode_error("the data takes too much work to decode (too many elements for its size)")

    def value(self, w: CType, e: CType) -> Any:
        """Decode a value of wire type ``w`` as expected type ``e`` (Candid's coercion rules)."""
        self.charge(1)
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _decode_error(f"values nested more than {_MAX_DEPTH} deep")
        try:
            return self._value(_resolve(w), _resolve(e), w, e)
        finally:
            self.depth -= 1

    def skip(self, w: CType) -> None:
        self.value(w, w)

    def _value(self, w: CType, e: CType, w0: CType, e0: CType) -> Any:
        r = self.r
        if isinstance(e, Prim) and e.name == "reserved":
            if not (isinstance(w, Prim) and w.name == "reserved"):
                self.skip(w0)
            return None
        if isinstance(w, Prim) and w.name == "empty":
            raise _decode_error("a value of type empty cannot be decoded")
        if isinstance(e, Opt):
            return self.opt(w, e, w0)
        if isinstance(e, Prim):
            if isinstance(w, Prim):
                if w.name == e.name:
                    return self.prim(e.name)
                if e.name == "int" and w.name == "nat":
                    return r.uleb()
            if e.name == "principal" and isinstance(w, Service):
                return self.principal()
            raise _Mismatch(f"{format_type(w0)} on the wire does not fit {format_type(e0)}")
        if isinstance(e, Vec) and isinstance(w, Vec):
            n = r.uleb()
            size = _min_size(w.inner)
            if n * size > r.remaining():
                raise _decode_error(f"vec of {n} elements is longer than the data")
            to_bytes = _is_prim(e.inner, "nat8")
            if to_bytes and _is_prim(w.inner, "nat8"):
                return r.take(n)
            self.charge(n)
            items = [self.value(w.inner, e.inner) for _ in range(n)]
            return bytes(items) if to_bytes else items
        if isinstance(e, Record) and isinstance(w, Record):
            return self.record(w, e)
        if isinstance(e, Variant) and isinstance(w, Variant):
            idx = r.uleb()
            if idx >= len(w.fields):
                raise _decode_error(f"variant index {idx} is out of range ({len(w.fields)} tags)")
            wf = w.fields[idx]
            for ef in e.fields:
                if ef.id == wf.id:
                    return {ef.label: self.value(wf.type, ef.type)}
            raise _Mismatch(f"variant tag {_fmt_label(wf.label)} is not in {format_type(e0)}")
        if isinstance(e, Func) and isinstance(w, Func):
            if not _is_subtype(w0, e0):
                raise _Mismatch(f"function type {format_type(w0)} does not fit {format_type(e0)}")
            if r.byte() != 1:
                raise _decode_error("opaque function references are not supported")
            p = self.principal()
            raw = r.take(r.length())
            try:
                return FuncRef(p, raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise _decode_error("a function's method name is not UTF-8") from None
        if isinstance(e, Service) and isinstance(w, Service):
            if not _is_subtype(w0, e0):
                raise _Mismatch(f"service type {format_type(w0)} does not fit {format_type(e0)}")
            return self.principal()
        raise _Mismatch(f"{format_type(w0)} on the wire does not fit {format_type(e0)}")

    def opt(self, w: CType, e: Opt, w0: CType) -> Any:
        r = self.r
        if isinstance(w, Prim) and w.name in ("null", "reserved"):
            return None
        if isinstance(w, Opt):
            flag = r.byte()
            if flag == 0:
                return None
            if flag != 1:
                raise _decode_error(f"invalid opt tag {flag}")
            inner_w: CType = w.inner
        else:  # spec: t <: opt t' for a wire type t that is not null, reserved or opt
            inner_w = w0
        start = r.pos
        try:
            v = self.value(inner_w, e.inner)
        except _Mismatch:
            r.pos = start
            self.skip(inner_w)
            return None
        return Some(v) if _needs_some(e.inner) else v

    def record(self, w: Record, e: Record) -> Any:
        expected = {f.id: f for f in e.fields}
        got: dict[int, Any] = {}
        for wf in w.fields:
            ef = expected.get(wf.id)
            if ef is None:
                self.skip(wf.type)
            else:
                got[wf.id] = self.value(wf.type, ef.type)
        out: dict[str | int, Any] = {}
        for f in e.fields:
            if f.id in got:
                out[f.label] = got[f.id]
            elif _defaults_to_null(f.type):
                out[f.label] = None
            else:
                raise _Mismatch(f"record field {_fmt_label(f.label)} : {format_type(f.type)} is missing")
        return tuple(out.values()) if e.is_tuple else out

    def prim(self, name: str) -> Any:
        r = self.r
        if name == "null":
            return None
        if name == "bool":
            b = r.byte()
            if b > 1:
                raise _decode_error(f"invalid bool byte {b}")
            return b == 1
        if name == "nat":
            return r.uleb()
        if name == "int":
            return r.sleb()
        if name in _FIXED_FORMATS:
            fmt = _FIXED_FORMATS[name]
            return struct.unpack(fmt, r.take(struct.calcsize(fmt)))[0]
        if name == "text":
            raw = r.take(r.length())
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise _decode_error("text is not valid UTF-8") from None
        if name == "principal":
            return self.principal()
        raise _decode_error(f"cannot decode a value of type {name}")  # pragma: no cover

    def principal(self) -> Principal:
        flag = self.r.byte()
        if flag != 1:
            raise _decode_error("opaque principal references are not supported")
        n = self.r.length()
        if n > MAX_PRINCIPAL_BYTES:
            raise _decode_error(f"a principal of {n} bytes is longer than {MAX_PRINCIPAL_BYTES}")
        return Principal(self.r.take(n))


def _decode(data: bytes, types: Sequence[CType] | None) -> tuple[list[Any], list[CType]]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise _decode_error(f"expected bytes, got {type(data).__name__}")
    dec = _Decoder(bytes(data))
    wire = _read_header(dec.r)
    expected = list(wire) if types is None else list(types)
    values: list[Any] = []
    try:
        for i, e in enumerate(expected):
            if i < len(wire):
                try:
                    values.append(dec.value(wire[i], e))
                except _Mismatch as exc:
                    raise _decode_error(f"value {i + 1}: {exc}") from None
            elif _defaults_to_null(e):
                values.append(None)
            else:
                raise _decode_error(
                    f"got {len(wire)} values but {len(expected)} were expected "
                    f"(value {i + 1} should be {format_type(e)})"
                )
        for w in wire[len(expected) :]:  # extra values are allowed and ignored
            dec.skip(w)
    except RecursionError:
        raise _decode_error("values nested too deeply") from None
    if dec.r.remaining():
        raise _decode_error(f"{dec.r.remaining()} bytes left over after the values")
    return values, expected


@_no_recursion_error
def decode_args(data: bytes, types: Sequence[CType] | None) -> list[Any]:
    """Decode DIDL bytes to Python values (see the module docstring for the mapping).

    With ``types`` the values are read as those types, following Candid subtyping: extra record
    fields and extra values are ignored, absent ``opt`` fields and trailing ``opt`` values become
    ``None``, an ``opt`` whose content does not fit becomes ``None``, a ``nat`` is read as an
    ``int``. With ``types=None`` the wire types are used. Raises :class:`CandidError`.
    """
    return _decode(data, types)[0]


# =============================================================================================
# Printing values like dfx (candid crate: IDLArgs Display)
# =============================================================================================

# A tiny Wadler-style document model mirroring the `pretty` crate (0.12) used by candid.
_Doc: TypeAlias = tuple[Any, ...]
_NIL: _Doc = ("cat", ())
_HARDLINE: _Doc = ("line",)
_LINE: _Doc = ("alt", _HARDLINE, ("text", " "))  # RcDoc::line(): newline, or a space when flat
_LINE_: _Doc = ("alt", _HARDLINE, _NIL)  # RcDoc::line_(): newline, or nothing when flat
_WIDTH = 80
_INDENT = 2
_MAX_ELEMENTS_FOR_PRETTY_PRINT = 10  # candid.rs: also the depth up to which values are laid out


def _text(s: str) -> _Doc:
    return ("text", s)


def _cat(*docs: _Doc) -> _Doc:
    return ("cat", docs)


def _kwd(s: str) -> _Doc:
    return _cat(_text(s), _text(" "))


def _enclose(left: str, doc: _Doc, right: str, line: _Doc) -> _Doc:
    if doc is _NIL:
        return _text(left + right)
    return ("group", _cat(("nest", _INDENT, _cat(_text(left), line, doc)), line, _text(right)))


def _concat(docs: list[_Doc], sep: str) -> _Doc:
    """pretty/utils.rs ``concat``: separators between items, plus a trailing one when broken."""
    if not docs:
        return _NIL
    parts: list[_Doc] = []
    for i, d in enumerate(docs):
        if i:
            parts += [_text(sep), _LINE]
        parts.append(d)
    single = _cat(*parts)
    return ("alt", _cat(single, _text(sep)), single)


def _display_width(s: str) -> int:
    """Columns a text takes, as the ``pretty`` crate counts them (``unicode_width`` for non-ASCII)."""
    if s.isascii():
        return len(s)
    width = 0
    for ch in s:
        if unicodedata.category(ch) in ("Mn", "Me", "Cf") or ch == "\u200b":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width


def _render(doc: _Doc, width: int = _WIDTH) -> str:
    """The ``pretty`` crate's (0.12.3, render.rs) ``best`` layout: a group is laid out flat when it,
    and the text after it up to the next possible line break, fits in ``width`` columns."""
    out: list[str] = []
    pos = 0
    cmds: list[tuple[int, bool, _Doc]] = [(0, False, doc)]  # (indent, flat?, doc)
    while cmds:
        ind, flat, d = cmds.pop()
        kind = d[0]
        if kind == "cat":
            cmds.extend((ind, flat, x) for x in reversed(d[1]))
        elif kind == "text":
            out.append(d[1])
            pos += _display_width(d[1])
        elif kind == "alt":
            cmds.append((ind, flat, d[2] if flat else d[1]))
        elif kind == "nest":
            cmds.append((ind + d[1], flat, d[2]))
        elif kind == "group":
            cmds.append((ind, flat or _fits(d[1], pos, width, cmds), d[1]))
        else:  # hard line: indented like the document that follows it, as the crate does
            ind = cmds[-1][0] if cmds else ind
            out.append("\n" + " " * ind)
            pos = ind
    return "".join(out)


def _fits(doc: _Doc, pos: int, width: int, rest: list[tuple[int, bool, _Doc]]) -> bool:
    stack: list[_Doc] = [doc]
    flat = True
    idx = len(rest)
    while True:
        if stack:
            d = stack.pop()
        elif idx == 0:
            return True
        else:
            idx -= 1
            flat = False  # the rest is measured as laid out in break mode, up to its first newline
            d = rest[idx][2]
        kind = d[0]
        if kind == "cat":
            stack.extend(reversed(d[1]))
        elif kind == "text":
            pos += _display_width(d[1])
            if pos > width:
                return False
        elif kind == "alt":
            stack.append(d[2] if flat else d[1])
        elif kind == "nest":
            stack.append(d[2])
        elif kind == "group":
            stack.append(d[1])
        else:
            return not flat


def _is_grapheme_extend(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


def _escape_text(s: str, *, debug: bool) -> str:
    """Rust's ``str::escape_debug`` (``debug=False``) or ``{:?}`` of a str (``debug=True``).

    One deliberate difference: NUL is written ``\\00`` (Rust writes ``\\0``, which the Candid
    parser rejects), so printed text always parses back.
    """
    out = []
    for i, ch in enumerate(s):
        if ch == "\0":
            out.append("\\00")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "'" and not debug:
            out.append("\\'")
        elif ((debug or i == 0) and _is_grapheme_extend(ch)) or not ch.isprintable():
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return "".join(out)


def _pp_char(b: int) -> str:
    if 0x20 <= b <= 0x7E and b not in (0x22, 0x27, 0x60, 0x5C):
        return chr(b)
    return f"\\{b:02x}"


def _fmt_blob(data: bytes) -> str:
    if all(0x20 <= b <= 0x7E or b in (0x09, 0x0A, 0x0D) for b in data):
        return 'blob "' + "".join(_pp_char(b) for b in data) + '"'
    return 'blob "' + "".join(f"\\{b:02x}" for b in data) + '"'


def _fmt_float(f: float, bits: int) -> str:
    """Rust's ``Display`` of f32/f64 (shortest round-trip digits, never an exponent), plus ``.0``
    for whole numbers as candid's ``number_to_string`` does."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    if bits == 32:
        shortest = repr(f)
        for digits in range(1, 10):
            candidate = f"{f:.{digits - 1}e}"
            if struct.unpack("<f", struct.pack("<f", float(candidate)))[0] == f:
                shortest = candidate
                break
    else:
        shortest = repr(f)
    text = format(Decimal(shortest), "f")
    if "." not in text:
        text += ".0"
    return text


_ANNOTATED = frozenset(
    ["null", "reserved", "int", "nat", "nat8", "nat16", "nat32", "nat64", "int8", "int16", "int32",
     "int64", "float32", "float64"]
)  # fmt: skip


def _has_annotation(t: CType) -> bool:
    """candid.rs ``has_type_annotation`` (an absent opt, printed ``null``, has none)."""
    r = _resolve(t)
    return isinstance(r, Prim) and r.name in _ANNOTATED


def _fmt_number(name: str, v: Any) -> str:
    if name in ("float32", "float64"):
        return _fmt_float(float(v), 32 if name == "float32" else 64)
    if name in ("nat8", "int8"):
        return str(v)
    return _pp_num(str(v))


def _fields_of(v: Any, r: Record) -> list[tuple[Field, Any]]:
    if isinstance(v, tuple | list):
        return list(zip(r.fields, v, strict=False))
    if isinstance(v, dict):
        by_id = {_label_id(k): item for k, item in v.items()}
        return [(f, by_id.get(f.id)) for f in r.fields]
    raise CandidError(f"cannot print {_py_describe(v)} as {format_type(r)}")


def _opt_inner(v: Any) -> Any:
    return v.value if isinstance(v, Some) else v


def _debug(v: Any, t: CType) -> str:
    """candid.rs ``impl Debug for IDLValue`` (used below depth 10 and for vecs of over 10 items)."""
    r = _resolve(t)
    if isinstance(r, Prim):
        name = r.name
        if name == "null":
            return "null : null"
        if name == "reserved":
            return "null : reserved"
        if name == "bool":
            return "true" if v else "false"
        if name == "text":
            return '"' + _escape_text(v, debug=True) + '"'
        if name == "principal":
            return f'principal "{v}"'
        return f"{_fmt_number(name, v)} : {name}"
    if isinstance(r, Opt):
        if v is None:
            return "null"
        inner = _opt_inner(v)
        if _has_annotation(r.inner):
            return f"opt ({_debug(inner, r.inner)})"
        return "opt " + _debug(inner, r.inner)
    if isinstance(r, Vec):
        if isinstance(v, bytes | bytearray):
            return _fmt_blob(bytes(v))
        return "vec {" + "".join(f" {_debug(x, r.inner)};" for x in v) + "}"
    if isinstance(r, Record):
        parts = []
        for i, (f, item) in enumerate(_fields_of(v, r)):
            if f.id == i:
                parts.append(f" {_debug(item, f.type)};")
            else:
                parts.append(f" {_fmt_label(f.label)} = {_debug(item, f.type)};")
        return "record {" + "".join(parts) + "}"
    if isinstance(r, Variant):
        f, item = _variant_of(v, r)
        if _is_prim(f.type, "null"):
            return f"variant {{ {_fmt_label(f.label)} }}"
        return f"variant {{ {_fmt_label(f.label)} = {_debug(item, f.type)} }}"
    if isinstance(r, Func):
        return f'func "{v.principal}".{_ident(v.method)}'
    if isinstance(r, Service):
        return f'service "{v}"'
    raise CandidError(f"cannot print a value of type {format_type(t)}")  # pragma: no cover


def _variant_of(v: Any, r: Variant) -> tuple[Field, Any]:
    if isinstance(v, dict) and len(v) == 1:
        ((key, item),) = v.items()
        kid = _label_id(key)
        for f in r.fields:
            if f.id == kid:
                return f, item
    raise CandidError(f"cannot print {_py_describe(v)} as {format_type(r)}")


def _pp_value(depth: int, v: Any, t: CType) -> _Doc:
    """candid.rs ``pp_value``."""
    if depth == 0:
        return _text(_debug(v, t))
    r = _resolve(t)
    if isinstance(r, Prim) and r.name == "text":
        return _text('"' + _escape_text(v, debug=False) + '"')
    if isinstance(r, Opt) and v is not None:
        inner = _opt_inner(v)
        if _has_annotation(r.inner):
            return _cat(_kwd("opt"), _enclose("(", _pp_value(depth - 1, inner, r.inner), ")", _LINE_))
        return _cat(_kwd("opt"), _pp_value(depth - 1, inner, r.inner))
    if isinstance(r, Vec) and not isinstance(v, bytes | bytearray):
        if len(v) > _MAX_ELEMENTS_FOR_PRETTY_PRINT:
            return _text(_debug(v, t))
        items = [_pp_value(depth - 1, x, r.inner) for x in v]
        return _cat(_kwd("vec"), _enclose("{", _concat(items, ";"), "}", _LINE))
    if isinstance(r, Record):
        pairs = _fields_of(v, r)
        if all(f.id == i for i, (f, _) in enumerate(pairs)):
            docs = [_pp_value(depth - 1, item, f.type) for f, item in pairs]
        else:
            docs = [
                _cat(_text(_fmt_label(f.label)), _kwd(" ="), _pp_value(depth - 1, item, f.type))
                for f, item in pairs
            ]
        return _cat(_kwd("record"), _enclose("{", _concat(docs, ";"), "}", _LINE))
    if isinstance(r, Variant):
        f, item = _variant_of(v, r)
        if _is_prim(f.type, "null"):
            body = _text(_fmt_label(f.label))
        else:
            body = _cat(_text(_fmt_label(f.label)), _kwd(" ="), _pp_value(depth - 1, item, f.type))
        return _cat(_kwd("variant"), _enclose("{", body, "}", _LINE))
    return _text(_debug(v, t))


@_no_recursion_error
def format_values(values: Sequence[Any], types: Sequence[CType]) -> str:
    """Print Python values of the given types as Candid text, the way dfx prints replies."""
    if len(values) != len(types):
        raise CandidError(f"cannot print {len(values)} values with {len(types)} types")
    docs = [_pp_value(_MAX_ELEMENTS_FOR_PRETTY_PRINT, v, t) for v, t in zip(values, types, strict=True)]
    return _render(_enclose("(", _concat(docs, ","), ")", _LINE_))


@_no_recursion_error
def format_args(data: bytes, types: Sequence[CType] | None) -> str:
    """Decode DIDL bytes and print them as dfx does, e.g. ``(42 : nat, "x")``.

    With ``types`` the values are read and printed as those types (field names, number types);
    without, the wire types are used (field names then show as numeric ids). The output parses back
    with :func:`encode_args` to the same bytes when the same ``types`` are given.
    """
    values, types_used = _decode(data, types)
    return format_values(values, types_used)


# =============================================================================================
# JSON
# =============================================================================================


@_no_recursion_error
def values_to_json(values: Sequence[Any], types: Sequence[CType] | None = None) -> list[Any]:
    """Turn decoded values (from :func:`decode_args`) into JSON-ready data for ``--json`` output.

    ``types`` (the types the values were decoded with) may be passed, but the rendering does not
    depend on them: the Python values already tell every case apart.

    All numbers stay JSON numbers, integers exactly as Python's ``json`` writes them (a big ``nat``
    may lose precision in a reader that parses numbers as doubles). ``NaN``/``inf`` floats become
    the strings ``"NaN"``, ``"inf"``, ``"-inf"``. A blob becomes a lowercase hex string, a principal
    its text form, a func ``{"principal": ..., "method": ...}``. ``null`` and ``reserved`` and an
    absent ``opt`` become ``null``. A present ``opt`` of null/reserved/opt (a :class:`Some`)
    becomes a one-element list. A tuple record becomes an array, other records an object (numeric
    labels as decimal strings), and a variant ``{"tag": value}``.
    """
    return [_json(v) for v in values]


def _json(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return bytes(v).hex()
    if isinstance(v, Principal):
        return v.to_text()
    if isinstance(v, FuncRef):
        return {"principal": v.principal.to_text(), "method": v.method}
    if isinstance(v, Some):
        return [_json(v.value)]
    if isinstance(v, list | tuple):
        return [_json(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json(x) for k, x in v.items()}
    raise CandidError(f"cannot turn {_py_describe(v)} into JSON")
