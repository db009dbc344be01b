"""Printing values like dfx (candid crate: ``IDLArgs`` Display): :func:`format_values`, :func:`format_args`.

Includes a tiny Wadler-style document model and the 80-column layout of the ``pretty`` crate.
"""

from __future__ import annotations

import math
import struct
import unicodedata
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, TypeAlias

from persist.candid.decode import decode
from persist.candid.limits import no_recursion_error
from persist.candid.quoting import escape_text, fmt_label, ident, pp_num
from persist.candid.types import (
    CType,
    Field,
    Func,
    Opt,
    Prim,
    Record,
    Service,
    Variant,
    Vec,
    format_type,
    is_prim,
    label_id,
    resolve,
)
from persist.candid.values import Some, py_describe
from persist.errors import CandidError

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
    r = resolve(t)
    return isinstance(r, Prim) and r.name in _ANNOTATED


def _fmt_number(name: str, v: Any) -> str:
    if name in ("float32", "float64"):
        return _fmt_float(float(v), 32 if name == "float32" else 64)
    if name in ("nat8", "int8"):
        return str(v)
    return pp_num(str(v))


def _fields_of(v: Any, r: Record) -> list[tuple[Field, Any]]:
    if isinstance(v, tuple | list):
        return list(zip(r.fields, v, strict=False))
    if isinstance(v, dict):
        by_id = {label_id(k): item for k, item in v.items()}
        return [(f, by_id.get(f.id)) for f in r.fields]
    raise CandidError(f"cannot print {py_describe(v)} as {format_type(r)}")


def _opt_inner(v: Any) -> Any:
    return v.value if isinstance(v, Some) else v


def _debug(v: Any, t: CType) -> str:
    """candid.rs ``impl Debug for IDLValue`` (used below depth 10 and for vecs of over 10 items)."""
    r = resolve(t)
    if isinstance(r, Prim):
        name = r.name
        if name == "null":
            return "null : null"
        if name == "reserved":
            return "null : reserved"
        if name == "bool":
            return "true" if v else "false"
        if name == "text":
            return '"' + escape_text(v, debug=True) + '"'
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
                parts.append(f" {fmt_label(f.label)} = {_debug(item, f.type)};")
        return "record {" + "".join(parts) + "}"
    if isinstance(r, Variant):
        f, item = _variant_of(v, r)
        if is_prim(f.type, "null"):
            return f"variant {{ {fmt_label(f.label)} }}"
        return f"variant {{ {fmt_label(f.label)} = {_debug(item, f.type)} }}"
    if isinstance(r, Func):
        return f'func "{v.principal}".{ident(v.method)}'
    if isinstance(r, Service):
        return f'service "{v}"'
    raise CandidError(f"cannot print a value of type {format_type(t)}")  # pragma: no cover


def _variant_of(v: Any, r: Variant) -> tuple[Field, Any]:
    if isinstance(v, dict) and len(v) == 1:
        ((key, item),) = v.items()
        kid = label_id(key)
        for f in r.fields:
            if f.id == kid:
                return f, item
    raise CandidError(f"cannot print {py_describe(v)} as {format_type(r)}")


def _pp_value(depth: int, v: Any, t: CType) -> _Doc:
    """candid.rs ``pp_value``."""
    if depth == 0:
        return _text(_debug(v, t))
    r = resolve(t)
    if isinstance(r, Prim) and r.name == "text":
        return _text('"' + escape_text(v, debug=False) + '"')
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
                _cat(_text(fmt_label(f.label)), _kwd(" ="), _pp_value(depth - 1, item, f.type))
                for f, item in pairs
            ]
        return _cat(_kwd("record"), _enclose("{", _concat(docs, ";"), "}", _LINE))
    if isinstance(r, Variant):
        f, item = _variant_of(v, r)
        if is_prim(f.type, "null"):
            body = _text(fmt_label(f.label))
        else:
            body = _cat(_text(fmt_label(f.label)), _kwd(" ="), _pp_value(depth - 1, item, f.type))
        return _cat(_kwd("variant"), _enclose("{", body, "}", _LINE))
    return _text(_debug(v, t))


@no_recursion_error
def format_values(values: Sequence[Any], types: Sequence[CType]) -> str:
    """Print Python values of the given types as Candid text, the way dfx prints replies."""
    if len(values) != len(types):
        raise CandidError(f"cannot print {len(values)} values with {len(types)} types")
    docs = [_pp_value(_MAX_ELEMENTS_FOR_PRETTY_PRINT, v, t) for v, t in zip(values, types, strict=True)]
    return _render(_enclose("(", _concat(docs, ","), ")", _LINE_))


@no_recursion_error
def format_args(data: bytes, types: Sequence[CType] | None) -> str:
    """Decode DIDL bytes and print them as dfx does, e.g. ``(42 : nat, "x")``.

    With ``types`` the values are read and printed as those types (field names, number types);
    without, the wire types are used (field names then show as numeric ids). The output parses back
    with :func:`encode_args` to the same bytes when the same ``types`` are given.
    """
    values, types_used = decode(data, types)
    return format_values(values, types_used)


@no_recursion_error
def format_args_idl(data: bytes, types: Sequence[CType] | None) -> str:
    """Decode DIDL bytes and print them on one line, as ``dfx canister call --output idl`` does
    (candid's ``Debug`` of ``IDLArgs``): ``(42 : nat)``, ``(1 : nat, "x")``, and an empty line for no values."""
    values, types_used = decode(data, types)
    parts = [_debug(v, t) for v, t in zip(values, types_used, strict=True)]
    if len(parts) == 1:
        return f"({parts[0]})"
    return f"({', '.join(parts)})" if parts else ""
