"""Candid for graphcopy's CLI and API: interfaces, text values, the binary (DIDL) codec, dfx-style output.

What is used, and why
---------------------
* ``.did`` interface text (the ``candid:service`` custom section ``moc`` writes) is parsed by
  ``_ic_candid_core.parse_did``, which ships with icp-py-core (wheel ``ic_candid_parser``) and binds
  DFINITY's Rust ``candid_parser`` crate, the reference parser. It handles ``type`` definitions, recursive
  types, tuples, func/service types and ``service : (init args) -> {...}``. Its JSON is turned into the
  small type model of :mod:`persist.candid.types` (:data:`CType`). The binding only *parses*: it accepts
  unknown type names and alias cycles and loses a method declared by name (``m : F``), so
  :func:`parse_service` checks and repairs those cases.
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

Modules
-------
Each module imports only the ones listed before it (and, of graphcopy, only ``persist.errors`` and
``persist.principal``):

* ``limits``: bounds against hostile or runaway input, ``no_recursion_error``.
* ``quoting``: how identifiers, labels, numbers and text are spelled in Candid text.
* ``wire``: constants of the binary format (opcodes, fixed-width layouts, function modes).
* ``types``: the type model (:data:`CType`), :func:`idl_hash`, ``resolve``, type equality, :func:`format_type`.
* ``subtyping``: ``t1 <: t2`` and the opt/null/reserved rules.
* ``values``: :class:`Some` and :class:`FuncRef`.
* ``did``: ``.did`` interfaces, :func:`parse_service`.
* ``lexer``, ``text_parser``: Candid text to an untyped value tree; :func:`parse_type`.
* ``encode``: :func:`encode_values` (Python values to DIDL).
* ``decode``: :func:`decode_args` (DIDL to Python values, with subtyping).
* ``annotate``: typing text values; :func:`encode_args` (text to DIDL).
* ``printer``: :func:`format_values` and :func:`format_args` (dfx-style output), :func:`format_args_idl`
  (one line, ``--output idl``).
* ``to_json``: :func:`values_to_json`; :func:`values_to_dfx_json` and :func:`format_args_json` (dfx's
  ``--output json``: big numbers as strings, opt as arrays, blobs as arrays of numbers).
"""

from __future__ import annotations

from persist.candid.annotate import encode_args
from persist.candid.decode import decode_args
from persist.candid.did import MethodSig, ServiceInterface, parse_service
from persist.candid.encode import encode_values
from persist.candid.printer import format_args, format_args_idl, format_values
from persist.candid.text_parser import parse_type
from persist.candid.to_json import format_args_json, values_to_dfx_json, values_to_json
from persist.candid.types import (
    PRIMITIVES,
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
    idl_hash,
)
from persist.candid.values import FuncRef, Some

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
    "format_args_idl",
    "format_args_json",
    "format_type",
    "format_values",
    "idl_hash",
    "parse_service",
    "parse_type",
    "values_to_dfx_json",
    "values_to_json",
]
