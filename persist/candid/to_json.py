"""JSON-ready data from decoded Candid values (:func:`values_to_json`, for ``--json`` output)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from persist.candid.limits import no_recursion_error
from persist.candid.types import CType
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
