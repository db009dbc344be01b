"""Binary (DIDL) decoding with Candid subtyping: :func:`decode_args`.

Reads the type table and the values of the wire types as the expected types, applying Candid's coercions (an
``opt`` whose content does not fit becomes ``null``, extra fields and values are skipped, ...), within the
bounds of :mod:`persist.candid.limits`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from persist.candid.limits import DECODE_BUDGET_BASE, DECODE_BUDGET_PER_BYTE, MAX_DEPTH, no_recursion_error
from persist.candid.quoting import fmt_label
from persist.candid.subtyping import defaults_to_null, is_subtype, needs_some
from persist.candid.types import (
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
    resolve,
)
from persist.candid.values import FuncRef, Some
from persist.candid.wire import (
    FIXED_FORMATS,
    MODE_NAMES,
    OP_FUNC,
    OP_OPT,
    OP_RECORD,
    OP_SERVICE,
    OP_VARIANT,
    OP_VEC,
    PRIM_BY_OPCODE,
)
from persist.errors import CandidError
from persist.principal import MAX_PRINCIPAL_BYTES, Principal


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
        name = PRIM_BY_OPCODE.get(code)
        if name is None:
            raise _decode_error(f"{where} has an invalid type code {code}")
        return Prim(name)

    for i in range(count):
        where = f"type table entry {i}"
        op = r.sleb()
        t: CType
        if op == OP_OPT:
            t = Opt(typeref(where))
        elif op == OP_VEC:
            t = Vec(typeref(where))
        elif op in (OP_RECORD, OP_VARIANT):
            fields = []
            last = -1
            for _ in range(r.length()):
                fid = r.uleb()
                if fid <= last or fid >= 2**32:
                    raise _decode_error(f"{where} has field ids out of order or out of range")
                last = fid
                fields.append(Field(fid, typeref(where)))
            t = Record(tuple(fields)) if op == OP_RECORD else Variant(tuple(fields))
        elif op == OP_FUNC:
            args = tuple(typeref(where) for _ in range(r.length()))
            rets = tuple(typeref(where) for _ in range(r.length()))
            modes = []
            for _ in range(r.length()):
                code = r.byte()
                if code not in MODE_NAMES:
                    raise _decode_error(f"{where} has an invalid function mode {code}")
                modes.append(MODE_NAMES[code])
            t = Func(args, rets, tuple(modes))
        elif op == OP_SERVICE:
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
                if not isinstance(resolve(ft), Func):
                    raise _decode_error(f"type table entry {key}: method {method} is not a function type")
    return [typeref("argument type") for _ in range(r.length())]


def _min_size(t: CType, stack: frozenset[Ref] = frozenset()) -> int:
    """A lower bound on the bytes a value of wire type ``t`` occupies (0 if it may take none)."""
    if isinstance(t, Ref):
        if t in stack:
            return 0
        return _min_size(resolve(t), stack | {t})
    if isinstance(t, Prim):
        return 0 if t.name in ("null", "reserved", "empty") else 1
    if isinstance(t, Record):
        return sum(_min_size(f.type, stack) for f in t.fields)
    return 1


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.r = _Reader(data)
        self.depth = 0
        self.budget = DECODE_BUDGET_BASE + DECODE_BUDGET_PER_BYTE * len(data)

    def charge(self, cost: int) -> None:
        self.budget -= cost
        if self.budget < 0:
            raise _decode_error("the data takes too much work to decode (too many elements for its size)")

    def value(self, w: CType, e: CType) -> Any:
        """Decode a value of wire type ``w`` as expected type ``e`` (Candid's coercion rules)."""
        self.charge(1)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _decode_error(f"values nested more than {MAX_DEPTH} deep")
        try:
            return self._value(resolve(w), resolve(e), w, e)
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
            to_bytes = is_prim(e.inner, "nat8")
            if to_bytes and is_prim(w.inner, "nat8"):
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
            raise _Mismatch(f"variant tag {fmt_label(wf.label)} is not in {format_type(e0)}")
        if isinstance(e, Func) and isinstance(w, Func):
            if not is_subtype(w0, e0):
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
            if not is_subtype(w0, e0):
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
        return Some(v) if needs_some(e.inner) else v

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
            elif defaults_to_null(f.type):
                out[f.label] = None
            else:
                raise _Mismatch(f"record field {fmt_label(f.label)} : {format_type(f.type)} is missing")
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
        if name in FIXED_FORMATS:
            fmt = FIXED_FORMATS[name]
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


def decode(data: bytes, types: Sequence[CType] | None) -> tuple[list[Any], list[CType]]:
    """Decode DIDL bytes; return the values and the types they were read as (``types`` or the wire's)."""
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
            elif defaults_to_null(e):
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


@no_recursion_error
def decode_args(data: bytes, types: Sequence[CType] | None) -> list[Any]:
    """Decode DIDL bytes to Python values (see the docstring of :mod:`persist.candid` for the mapping).

    With ``types`` the values are read as those types, following Candid subtyping: extra record
    fields and extra values are ignored, absent ``opt`` fields and trailing ``opt`` values become
    ``None``, an ``opt`` whose content does not fit becomes ``None``, a ``nat`` is read as an
    ``int``. With ``types=None`` the wire types are used. Raises :class:`CandidError`.
    """
    return decode(data, types)[0]
