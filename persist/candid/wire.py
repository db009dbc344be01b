"""Constants of the binary (DIDL) format: type opcodes, fixed-width number layouts, function mode codes."""

from __future__ import annotations

FIXED_FORMATS = {
    "nat8": "<B", "nat16": "<H", "nat32": "<I", "nat64": "<Q",
    "int8": "<b", "int16": "<h", "int32": "<i", "int64": "<q",
    "float32": "<f", "float64": "<d",
}  # fmt: skip
OPCODES = {
    "null": -1, "bool": -2, "nat": -3, "int": -4, "nat8": -5, "nat16": -6, "nat32": -7, "nat64": -8,
    "int8": -9, "int16": -10, "int32": -11, "int64": -12, "float32": -13, "float64": -14,
    "text": -15, "reserved": -16, "empty": -17, "principal": -24,
}  # fmt: skip
PRIM_BY_OPCODE = {code: name for name, code in OPCODES.items()}
OP_OPT, OP_VEC, OP_RECORD, OP_VARIANT, OP_FUNC, OP_SERVICE = -18, -19, -20, -21, -22, -23
MODE_CODES = {"query": 1, "oneway": 2, "composite_query": 3}
MODE_NAMES = {code: name for name, code in MODE_CODES.items()}
#: The empty Candid argument list, ``()``.
EMPTY_ARGS = b"DIDL\x00\x00"
