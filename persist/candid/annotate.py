"""Typing parsed text values (``IDLValue::annotate_type`` with ``from_parser = true``), and :func:`encode_args`.

The annotator checks a parsed value against its type and builds the Python value; without types, the types
come from the literals (as ``didc encode`` does). :func:`encode_args` ties text parsing, typing and the binary
encoder together.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from persist.candid.encode import encode_values
from persist.candid.limits import no_recursion_error
from persist.candid.quoting import escape_text, fmt_label, ident
from persist.candid.subtyping import defaults_to_null, needs_some
from persist.candid.text_parser import (
    Ast,
    Parser,
    TAnn,
    TBlob,
    TBool,
    TFloat,
    TFunc,
    TNull,
    TNum,
    TOpt,
    TPrincipal,
    TRecord,
    TService,
    TText,
    TVariant,
    TVec,
)
from persist.candid.types import (
    INT_RANGES,
    CType,
    Field,
    Func,
    Opt,
    Prim,
    Record,
    Ref,
    Service,
    Variant,
    Vec,
    format_type,
    is_prim,
    label_id,
    resolve,
    type_eq,
)
from persist.candid.values import FuncRef, Some
from persist.errors import CandidError


def _describe(ast: Ast) -> str:
    if isinstance(ast, TNum | TFloat):
        return ast.raw if len(ast.raw) <= 40 else ast.raw[:37] + "..."
    if isinstance(ast, TBool):
        return "true" if ast.value else "false"
    if isinstance(ast, TNull):
        return "null"
    if isinstance(ast, TText):
        s = ast.value if len(ast.value) <= 30 else ast.value[:27] + "..."
        return 'text "' + escape_text(s, debug=False) + '"'
    if isinstance(ast, TBlob):
        return f"blob ({len(ast.value)} bytes)"
    if isinstance(ast, TOpt):
        return "opt " + _describe(ast.value)
    if isinstance(ast, TVec):
        return f"vec ({len(ast.items)} elements)"
    if isinstance(ast, TRecord):
        return "record {" + "; ".join(fmt_label(label) for label, _ in ast.fields[:5]) + "}"
    if isinstance(ast, TVariant):
        return "variant { " + fmt_label(ast.label) + " }"
    if isinstance(ast, TPrincipal):
        return f'principal "{ast.value}"'
    if isinstance(ast, TService):
        return f'service "{ast.value}"'
    if isinstance(ast, TFunc):
        return f'func "{ast.principal}".{ident(ast.method)}'
    return _describe(ast.value) + " : " + format_type(ast.type)


class _Annotator:
    """Checks a parsed value against a type and builds the Python value (see the docstring of :mod:`persist.candid`)."""

    def __init__(self, arg_no: int) -> None:
        self.arg_no = arg_no
        self.path: list[str] = []

    def where(self) -> str:
        loc = f"argument {self.arg_no}"
        return loc + (f" (at {''.join(self.path)})" if self.path else "")

    def mismatch(self, t: CType, ast: Ast, note: str = "") -> CandidError:
        return CandidError(
            f"bad Candid argument: expected {format_type(t)} for {self.where()}, got {_describe(ast)}{note}"
        )

    def value(self, ast: Ast, t: CType) -> Any:
        r = resolve(t)
        if isinstance(ast, TAnn):
            ok = (
                type_eq(ast.type, t)
                or (is_prim(ast.type, "nat") and is_prim(r, "int"))
                or is_prim(r, "reserved")
            )
            if not ok:
                raise self.mismatch(t, ast)
            v = self.value(ast.value, ast.type)
            return None if is_prim(r, "reserved") else v
        if isinstance(r, Prim):
            return self.prim(ast, r)
        if isinstance(r, Opt):
            if isinstance(ast, TNull):
                return None
            if isinstance(ast, TOpt):
                v = self.value(ast.value, r.inner)
                return Some(v) if needs_some(r.inner) else v
            raise self.mismatch(t, ast, f" (write opt {_describe(ast)}, or null)")
        if isinstance(r, Vec):
            return self.vec(ast, r, t)
        if isinstance(r, Record):
            if not isinstance(ast, TRecord):
                raise self.mismatch(t, ast)
            return self.record(ast, r)
        if isinstance(r, Variant):
            if not isinstance(ast, TVariant):
                raise self.mismatch(t, ast)
            return self.variant(ast, r)
        if isinstance(r, Func):
            if not isinstance(ast, TFunc):
                raise self.mismatch(t, ast)
            return FuncRef(ast.principal, ast.method)
        if isinstance(r, Service):
            if not isinstance(ast, TService):
                raise self.mismatch(t, ast)
            return ast.value
        raise self.mismatch(t, ast)

    def prim(self, ast: Ast, t: Prim) -> Any:
        name = t.name
        if name == "reserved":
            return None
        if name in INT_RANGES:
            if not isinstance(ast, TNum):
                raise self.mismatch(t, ast)
            lo, hi = INT_RANGES[name]
            if (lo is not None and ast.value < lo) or (hi is not None and ast.value > hi):
                span = f"{lo}..{hi}" if hi is not None else "0 and up"
                raise self.mismatch(t, ast, f" (out of range {span})")
            return ast.value
        if name in ("float32", "float64"):
            if not isinstance(ast, TNum | TFloat):
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
        if name == "null" and isinstance(ast, TNull):
            return None
        if name == "bool" and isinstance(ast, TBool):
            return ast.value
        if name == "text" and isinstance(ast, TText):
            return ast.value
        if name == "principal" and isinstance(ast, TPrincipal):
            return ast.value
        if name == "empty":
            raise self.mismatch(t, ast, " (no value has type empty)")
        raise self.mismatch(t, ast)

    def vec(self, ast: Ast, r: Vec, t: CType) -> Any:
        if is_prim(r.inner, "nat8"):
            if isinstance(ast, TBlob):
                return ast.value
            if isinstance(ast, TVec):
                return bytes(self.items(ast.items, r.inner))
            raise self.mismatch(t, ast)
        if isinstance(ast, TVec):
            return self.items(ast.items, r.inner)
        raise self.mismatch(t, ast)

    def items(self, items: list[Ast], t: CType) -> list[Any]:
        out = []
        for i, item in enumerate(items):
            self.path.append(f"[{i}]")
            out.append(self.value(item, t))
            self.path.pop()
        return out

    def record(self, ast: TRecord, r: Record) -> Any:
        given = {label_id(label): (label, v) for label, v in ast.fields}
        known = {f.id for f in r.fields}
        for fid, (label, _) in given.items():
            if fid not in known:
                names = ", ".join(fmt_label(f.label) for f in r.fields) or "none"
                raise CandidError(
                    f"bad Candid argument: unknown field {fmt_label(label)} for {self.where()} "
                    f"(the record's fields: {names})"
                )
        out: dict[str | int, Any] = {}
        for f in r.fields:
            if f.id in given:
                self.path.append(f".{fmt_label(f.label)}")
                out[f.label] = self.value(given[f.id][1], f.type)
                self.path.pop()
            elif defaults_to_null(f.type):
                out[f.label] = None
            else:
                raise CandidError(
                    f"bad Candid argument: missing field {fmt_label(f.label)} : {format_type(f.type)} "
                    f"for {self.where()}"
                )
        return tuple(out.values()) if r.is_tuple else out

    def variant(self, ast: TVariant, r: Variant) -> dict[str | int, Any]:
        fid = label_id(ast.label)
        for f in r.fields:
            if f.id == fid:
                self.path.append(f".{fmt_label(f.label)}")
                value = self.value(ast.value if ast.value is not None else TNull(), f.type)
                self.path.pop()
                return {f.label: value}
        tags = ", ".join(fmt_label(f.label) for f in r.fields) or "none"
        raise CandidError(
            f"bad Candid argument: unknown variant tag {fmt_label(ast.label)} for {self.where()} "
            f"(expected one of: {tags})"
        )


def _infer(ast: Ast) -> CType:
    """The type of an unannotated value, as ``didc encode`` does without types (numbers are int)."""
    if isinstance(ast, TAnn):
        return ast.type
    if isinstance(ast, TNum):
        return Prim("int")
    if isinstance(ast, TFloat):
        return Prim("float64")
    if isinstance(ast, TBool):
        return Prim("bool")
    if isinstance(ast, TNull):
        return Prim("null")
    if isinstance(ast, TText):
        return Prim("text")
    if isinstance(ast, TBlob):
        return Vec(Prim("nat8"))
    if isinstance(ast, TOpt):
        return Opt(_infer(ast.value))
    if isinstance(ast, TVec):
        return Vec(_infer(ast.items[0]) if ast.items else Prim("empty"))
    if isinstance(ast, TRecord):
        return Record(tuple(Field(label, _infer(v)) for label, v in ast.fields))
    if isinstance(ast, TVariant):
        inner = _infer(ast.value) if ast.value is not None else Prim("null")
        return Variant((Field(ast.label, inner),))
    if isinstance(ast, TPrincipal):
        return Prim("principal")
    if isinstance(ast, TService):
        return Service(())
    return Func((), (), ())


def _env_of(types: Sequence[CType]) -> Mapping[str, CType] | None:
    for t in types:
        if isinstance(t, Ref) and not t.inline:
            return t.env
    return None


@no_recursion_error
def encode_args(text: str, types: Sequence[CType] | None) -> bytes:
    """Encode Candid text arguments, e.g. ``'(42 : nat, "x")'``, to DIDL bytes.

    With ``types`` (a method's argument types) every value is checked against its type; plain
    numbers take the expected number type, and omitted trailing ``opt``/``null``/``reserved``
    arguments are filled with ``null``. Type names of the service may be used in annotations. With
    ``types=None`` the types come from the literals and their annotations, as ``didc encode`` does
    (an unannotated number is an ``int``, a float a ``float64``). A single value may be written
    without parentheses; empty text means no arguments. Raises :class:`CandidError` (one line).
    """
    asts = Parser(text, _env_of(types or [])).parse_args()
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
        elif defaults_to_null(t):
            values.append(None)
        else:
            raise CandidError(
                f"bad Candid argument: missing argument {i + 1} of type {format_type(t)} "
                f"(got {len(asts)} of {len(types)})"
            )
    return encode_values(values, types)
