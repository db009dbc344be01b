"""Binary (DIDL) encoding of Python values: the type table and :func:`encode_values`."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import leb128

from persist.candid.limits import MAX_DEPTH, no_recursion_error
from persist.candid.quoting import fmt_label
from persist.candid.subtyping import defaults_to_null, needs_some
from persist.candid.types import (
    INT_RANGES,
    CType,
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
from persist.candid.values import FuncRef, Some, py_describe
from persist.candid.wire import (
    FIXED_FORMATS,
    MODE_CODES,
    OP_FUNC,
    OP_OPT,
    OP_RECORD,
    OP_SERVICE,
    OP_VARIANT,
    OP_VEC,
    OPCODES,
)
from persist.errors import CandidError
from persist.principal import Principal


# LEB128 encoding comes from the `leb128` package; decoding stays in `_Reader` of `decode.py`, which needs
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
            return _sleb(OPCODES[t.name])
        if t in self.index:
            return _sleb(self.index[t])
        target = resolve(t)
        if isinstance(target, Prim):
            return _sleb(OPCODES[target.name])
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
            return _sleb(OP_OPT) + self.ref(t.inner)
        if isinstance(t, Vec):
            return _sleb(OP_VEC) + self.ref(t.inner)
        if isinstance(t, Record | Variant):
            op = OP_RECORD if isinstance(t, Record) else OP_VARIANT
            parts = [_sleb(op), _uleb(len(t.fields))]
            for f in t.fields:
                parts += [_uleb(f.id), self.ref(f.type)]
            return b"".join(parts)
        if isinstance(t, Func):
            parts = [_sleb(OP_FUNC), _uleb(len(t.args))]
            parts += [self.ref(a) for a in t.args]
            parts.append(_uleb(len(t.rets)))
            parts += [self.ref(r) for r in t.rets]
            parts += [_uleb(len(t.modes)), bytes(MODE_CODES[m] for m in t.modes)]
            return b"".join(parts)
        if isinstance(t, Service):
            parts = [_sleb(OP_SERVICE), _uleb(len(t.methods))]
            for name, ft in t.methods:
                if not isinstance(resolve(ft), Func):
                    raise CandidError(f"service method {name!r} is not a function type")
                raw = name.encode("utf-8")
                parts += [_uleb(len(raw)), raw, self.ref(ft)]
            return b"".join(parts)
        raise CandidError(f"not a Candid type: {t!r}")


class _Encoder:
    def __init__(self, table: _TypeTable) -> None:
        self.table = table
        self.out = bytearray()
        self.arg_no = 0
        self.path: list[str] = []
        self.depth = 0

    def fail(self, t: CType, v: Any, note: str = "") -> CandidError:
        loc = f"value {self.arg_no}" + (f" (at {''.join(self.path)})" if self.path else "")
        got = py_describe(v)
        return CandidError(f"bad Candid value: expected {format_type(t)} for {loc}, got {got}{note}")

    def value(self, v: Any, t: CType) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise CandidError(f"bad Candid value: nested more than {MAX_DEPTH} deep")
        try:
            self._value(v, t)
        finally:
            self.depth -= 1

    def _value(self, v: Any, t: CType) -> None:
        r = resolve(t)
        out = self.out
        if isinstance(r, Prim):
            self.prim(v, r)
        elif isinstance(r, Opt):
            if v is None:
                out.append(0)
                return
            if needs_some(r.inner):
                if not isinstance(v, Some):
                    raise self.fail(t, v, " (a present value of this opt is written Some(...))")
                v = v.value
            elif isinstance(v, Some):
                v = v.value
            out.append(1)
            self.value(v, r.inner)
        elif isinstance(r, Vec):
            if is_prim(r.inner, "nat8") and isinstance(v, bytes | bytearray | memoryview):
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
            kid = label_id(key)
            for idx, f in enumerate(r.fields):
                if f.id == kid:
                    out += _uleb(idx)
                    self.path.append(f".{fmt_label(f.label)}")
                    self.value(inner, f.type)
                    self.path.pop()
                    return
            raise self.fail(t, v, f" (unknown variant tag {fmt_label(key)})")
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
        elif name in INT_RANGES:
            if not isinstance(v, int) or isinstance(v, bool):
                raise self.fail(t, v)
            lo, hi = INT_RANGES[name]
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise self.fail(t, v, " (out of range)")
            if name == "nat":
                out += _uleb(v)
            elif name == "int":
                out += _sleb(v)
            else:
                out += struct.pack(FIXED_FORMATS[name], v)
        elif name in ("float32", "float64"):
            if not isinstance(v, float | int) or isinstance(v, bool):
                raise self.fail(t, v)
            try:
                out += struct.pack(FIXED_FORMATS[name], float(v))
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
                if not isinstance(key, str | int) or label_id(key) not in known:
                    raise self.fail(t, v, f" (unknown field {key!r})")
                given[label_id(key)] = item
        else:
            raise self.fail(t, v)
        for f in r.fields:
            if f.id in given:
                self.path.append(f".{fmt_label(f.label)}")
                self.value(given[f.id], f.type)
                self.path.pop()
            elif defaults_to_null(f.type):
                self.value(None, f.type)
            else:
                raise self.fail(t, v, f" (missing field {fmt_label(f.label)})")


@no_recursion_error
def encode_values(values: Sequence[Any], types: Sequence[CType]) -> bytes:
    """Encode Python values (see the docstring of :mod:`persist.candid` for the mapping) with the given types."""
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
