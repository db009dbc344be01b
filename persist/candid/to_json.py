"""JSON-ready data from decoded Candid values: :func:`values_to_json` (graphcopy's ``--json``) and
:func:`values_to_dfx_json` / :func:`format_args_json` (``--output json``, as dfx prints replies)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from persist.candid.decode import decode
from persist.candid.limits import no_recursion_error
from persist.candid.quoting import pp_num
from persist.candid.types import CType, Field, Func, Opt, Prim, Record, Service, Variant, Vec, label_id, resolve
from persist.candid.values import FuncRef, Some, py_describe
from persist.errors import CandidError
from persist.principal import Principal


@no_recursion_error
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
    raise CandidError(f"cannot turn {py_describe(v)} into JSON")


# dfx prints replies as JSON through the idl2json crate (dfinity/idl2json, untyped conversion, default
# options), each value of the reply pretty-printed on its own (serde_json, keys in sorted order):
# nat, int, nat64 and int64 are strings (they do not fit a double); the smaller integers are numbers;
# a float that is not finite is "NaN"; an opt is an array of zero or one element; a blob (and any vec
# nat8) is an array of numbers; a record is an object keyed by its labels (numbers grouped like
# 1_000); a variant is a one-entry object; null is null; reserved is "reserved"; principals and
# services are their text; a func is {"principal", "code"}.
_AS_STRING = frozenset(["nat", "int", "nat64", "int64"])


@no_recursion_error
def values_to_dfx_json(values: Sequence[Any], types: Sequence[CType]) -> list[Any]:
    """Decoded values (of ``types``) as the JSON values ``dfx canister call --output json`` prints."""
    return [_dfx(v, t) for v, t in zip(values, types, strict=True)]


def _label(f: Field) -> str:
    return pp_num(str(f.label)) if isinstance(f.label, int) else f.label


def _dfx(v: Any, t: CType) -> Any:
    r = resolve(t)
    if isinstance(r, Prim):
        name = r.name
        if name in ("null", "empty"):
            return None
        if name == "reserved":
            return "reserved"
        if name in _AS_STRING:
            return str(int(v))
        if name in ("float32", "float64"):
            f = float(v)
            return f if math.isfinite(f) else "NaN"
        if name == "principal":
            return v.to_text() if isinstance(v, Principal) else str(v)
        return v
    if isinstance(r, Opt):
        if v is None:
            return []
        return [_dfx(v.value if isinstance(v, Some) else v, r.inner)]
    if isinstance(r, Vec):
        if isinstance(v, bytes | bytearray | memoryview):
            return list(bytes(v))
        return [_dfx(x, r.inner) for x in v]
    if isinstance(r, Record):
        if isinstance(v, tuple | list):
            pairs = list(zip(r.fields, v, strict=False))
        else:
            by_id = {label_id(k): x for k, x in v.items()}
            pairs = [(f, by_id.get(f.id)) for f in r.fields]
        return {_label(f): _dfx(x, f.type) for f, x in pairs}
    if isinstance(r, Variant):
        ((key, item),) = v.items()
        kid = label_id(key)
        field = next(f for f in r.fields if f.id == kid)
        return {_label(field): _dfx(item, field.type)}
    if isinstance(r, Func):
        return {"principal": v.principal.to_text(), "code": v.method}
    if isinstance(r, Service):
        return v.to_text() if isinstance(v, Principal) else str(v)
    raise CandidError(f"cannot turn {py_describe(v)} into JSON")


@no_recursion_error
def format_args_json(data: bytes, types: Sequence[CType] | None) -> str:
    """Decode DIDL bytes and print them as ``dfx canister call --output json`` does: each value as
    indented JSON (see :func:`values_to_dfx_json`), one after the other."""
    values, types_used = decode(data, types)
    docs = values_to_dfx_json(values, types_used)
    return "\n".join(json.dumps(d, indent=2, ensure_ascii=False, sort_keys=True) for d in docs)
