"""``metadata.json``: the serde JSON of ``ReadCanisterSnapshotMetadataResult``, parsed and written exactly.

dfx (``src/dfx/src/commands/canister/snapshot.rs``: ``save_json_file`` = ``serde_json::to_string_pretty``)
and icp-cli (``crates/icp-cli/src/operations/snapshot_transfer.rs``: ``save_metadata``, the same)
write the management canister's reply as serde derives it for the ``ic-management-canister-types``
crate (``packages/ic-management-canister-types/src/lib.rs`` in dfinity/ic, 0.5.0 and later):

* fields in declaration order: ``source``, ``taken_at_timestamp``, ``wasm_module_size``,
  ``globals``, ``wasm_memory_size``, ``stable_memory_size``, ``wasm_chunk_store``,
  ``canister_version``, ``certified_data``, ``global_timer``, ``on_low_wasm_memory_hook_status``;
* ``source: Option<SnapshotSource>``: ``null``, or an externally tagged newtype variant over
  ``candid::Reserved``, which serializes as ``none``: ``{"taken_from_canister": null}`` /
  ``{"metadata_upload": null}`` (any value is accepted back: ``Reserved`` ignores it);
* ``globals: Vec<Option<SnapshotMetadataGlobal>>``: ``null`` (a global the downloading tool could
  not decode) or ``{"i32": n}``, ``{"i64": n}``, ``{"f32": x}``, ``{"f64": x}``, ``{"v128": nat}``
  (``candid::Nat`` serializes as its little-endian base-2^32 digits, ``[]`` for 0);
* ``certified_data`` and ``wasm_chunk_store[].hash`` carry ``#[serde(with = "serde_bytes")]``,
  which serde_json writes as an array of byte values;
* ``global_timer: Option<CanisterTimer>``: ``null``, ``"inactive"`` or ``{"active": deadline_ns}``;
  ``on_low_wasm_memory_hook_status``: ``null``, ``"condition_not_satisfied"``, ``"ready"`` or
  ``"executed"``; an ``Option`` field may also be missing (serde reads it as ``None``);
* integers are JSON integers (u64 exact); floats are written by serde_json with ``ryu``'s
  shortest representation and layout (``1.0``, ``0.1``, ``1e21``, ``1.5e-7``).

``upload_canister_snapshot_metadata`` reads only the sizes, globals, certified data, timer and hook
status back (``UploadCanisterSnapshotMetadataArgs``), and refuses a ``null`` global.

Parsing is stricter than serde in two ways the issue asks for: an unknown field, or a field of the
upload arguments (``canister_id``, ``replace_snapshot``), is an error rather than ignored, and so
is a duplicate key (which serde rejects too). Every error is one line naming the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persist.errors import SnapshotDirError

__all__ = [
    "CHUNK_DIR",
    "FIELDS",
    "GLOBAL_TYPES",
    "HEAP_FILE",
    "HOOK_STATUSES",
    "MAX_CERTIFIED_DATA",
    "MAX_CHUNK_BYTES",
    "METADATA_FILE",
    "MODULE_FILE",
    "SOURCES",
    "STABLE_FILE",
    "UPLOAD_ONLY",
    "WASM_PAGE",
    "SnapshotGlobal",
    "SnapshotMetadata",
    "chunk_file_name",
    "parse_metadata",
    "serde_float",
]

METADATA_FILE = "metadata.json"
MODULE_FILE = "wasm_module.bin"
HEAP_FILE = "wasm_memory.bin"
STABLE_FILE = "stable_memory.bin"
CHUNK_DIR = "wasm_chunk_store"
#: Memories are whole Wasm pages.
WASM_PAGE = 65536
#: A chunk of the Wasm chunk store is at most 1 MiB (interface spec, ``upload_chunk``).
MAX_CHUNK_BYTES = 1 << 20
#: ``ic0.certified_data_set`` takes at most 32 bytes.
MAX_CERTIFIED_DATA = 32

FIELDS = ("source", "taken_at_timestamp", "wasm_module_size", "globals", "wasm_memory_size",
          "stable_memory_size", "wasm_chunk_store", "canister_version", "certified_data", "global_timer",
          "on_low_wasm_memory_hook_status")
_OPTIONAL = frozenset({"source", "global_timer", "on_low_wasm_memory_hook_status"})
#: Fields of ``UploadCanisterSnapshotMetadataArgs`` that a downloaded snapshot's metadata never has.
UPLOAD_ONLY = ("canister_id", "replace_snapshot")
SOURCES = ("taken_from_canister", "metadata_upload")
GLOBAL_TYPES = ("i32", "i64", "f32", "f64", "v128")
HOOK_STATUSES = ("condition_not_satisfied", "ready", "executed")
TIMER_INACTIVE, TIMER_ACTIVE = "inactive", "active"

_U64 = 1 << 64
_F32_MAX = float(np.finfo(np.float32).max)


def chunk_file_name(chunk_hash: bytes) -> str:
    """``<hex hash>.bin``, the chunk's file in ``wasm_chunk_store/`` (dfx: ``hex::encode`` lower case)."""
    return f"{chunk_hash.hex()}.bin"


@dataclass(frozen=True)
class SnapshotGlobal:
    """One global value: ``valtype`` is i32, i64, f32, f64 or v128 (then ``value`` is the 128-bit
    integer)."""

    valtype: str
    value: int | float


@dataclass
class SnapshotMetadata:
    """The content of ``metadata.json``. ``global_timer`` is None (null), ``"inactive"`` or
    ``"active"`` (deadline in ``global_timer_ns``); ``globals`` may hold None for a global the
    downloading tool could not decode."""

    taken_at_timestamp: int
    wasm_module_size: int
    wasm_memory_size: int
    stable_memory_size: int
    canister_version: int
    globals: list[SnapshotGlobal | None] = field(default_factory=list)
    wasm_chunk_store: list[bytes] = field(default_factory=list)
    certified_data: bytes = b""
    source: str | None = "taken_from_canister"
    global_timer: str | None = None
    global_timer_ns: int = 0
    on_low_wasm_memory_hook_status: str | None = None

    def to_json_text(self) -> str:
        """The file's text, as ``serde_json::to_string_pretty`` writes it (no trailing newline)."""
        doc: dict[str, Any] = {
            "source": {self.source: None} if self.source is not None else None,
            "taken_at_timestamp": self.taken_at_timestamp,
            "wasm_module_size": self.wasm_module_size,
            "globals": [_global_json(g) for g in self.globals],
            "wasm_memory_size": self.wasm_memory_size,
            "stable_memory_size": self.stable_memory_size,
            "wasm_chunk_store": [{"hash": list(h)} for h in self.wasm_chunk_store],
            "canister_version": self.canister_version,
            "certified_data": list(self.certified_data),
            "global_timer": (None if self.global_timer is None else TIMER_INACTIVE
                             if self.global_timer == TIMER_INACTIVE else {TIMER_ACTIVE: self.global_timer_ns}),
            "on_low_wasm_memory_hook_status": self.on_low_wasm_memory_hook_status,
        }
        return _pretty(doc, "")


# --------------------------------------------------------------------------------------- writing


class _Number(str):
    """A number already formatted (a float in serde_json's spelling)."""


def _global_json(g: SnapshotGlobal | None) -> dict[str, Any] | None:
    if g is None:
        return None
    if g.valtype in ("f32", "f64"):
        return {g.valtype: _Number(serde_float(float(g.value), 32 if g.valtype == "f32" else 64))}
    if g.valtype == "v128":
        value, digits = int(g.value), []
        while value:
            digits.append(value & 0xFFFF_FFFF)
            value >>= 32
        return {"v128": digits}
    return {g.valtype: int(g.value)}


def _pretty(value: Any, indent: str) -> str:
    """serde_json's PrettyFormatter: two spaces, one element per line, ``[]``/``{}`` when empty."""
    inner = indent + "  "
    if isinstance(value, _Number):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(f"{inner}{_pretty(v, inner)}" for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _shortest_digits(value: float, bits: int) -> tuple[str, int]:
    """(digits, exponent) of the shortest decimal that reads back as ``value`` at ``bits`` precision:
    ``value == int(digits) * 10**exponent``, ``digits`` without leading or trailing zeros."""
    text = repr(value) if bits == 64 else np.format_float_scientific(np.float32(value), unique=True, trim="-")
    mantissa, _, exp_text = text.partition("e")
    exponent = int(exp_text) if exp_text else 0
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    exponent -= len(frac)
    stripped = digits.rstrip("0")
    return stripped, exponent + len(digits) - len(stripped)


def serde_float(value: float, bits: int) -> str:
    """``value`` as serde_json writes an f64 (``bits=64``) or f32 (``bits=32``) with ryu: the
    shortest round-trip digits, positional for 10^-5 (f32: 10^-6) < |x| < 10^16 (f32: 10^13),
    else ``d.ddde<exp>`` with no ``+`` and no leading zeros. Non-finite values have no JSON form
    (serde_json writes ``null``, which nothing reads back): ValueError."""
    if not math.isfinite(value):
        raise ValueError(f"{value} has no JSON representation")
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    digits, k = _shortest_digits(abs(value), bits)
    length = len(digits)
    kk = length + k  # 10^(kk-1) <= |value| < 10^kk
    big, small = (16, -5) if bits == 64 else (13, -6)
    if 0 <= k and kk <= big:
        return f"{sign}{digits}{'0' * k}.0"
    if 0 < kk <= big:
        return f"{sign}{digits[:kk]}.{digits[kk:]}"
    if small < kk <= 0:
        return f"{sign}0.{'0' * -kk}{digits}"
    body = digits if length == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{sign}{body}e{kk - 1}"


# --------------------------------------------------------------------------------------- parsing


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SnapshotDirError(f"duplicate field `{k}`")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise SnapshotDirError(f"{name} is not a JSON number")


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Fields:
    """Typed access to one JSON object's fields, with errors that name the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, name: str, what: str, value: Any) -> SnapshotDirError:
        return SnapshotDirError(f"{self.where}: `{name}` must be {what}, not {_show(value)}")

    def u64(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _U64:
            raise self.fail(name, "an unsigned 64-bit integer", value)
        return value

    def blob(self, name: str, value: Any, limit: int | None = None) -> bytes:
        # serde_bytes from serde_json: an array of byte values (what serde_json itself writes).
        if not isinstance(value, list) or not all(
                isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value):
            raise self.fail(name, "an array of byte values (0-255)", value)
        if limit is not None and len(value) > limit:
            raise SnapshotDirError(f"{self.where}: `{name}` has {len(value)} bytes; at most {limit} are allowed")
        return bytes(value)

    def variant(self, name: str, value: Any, cases: tuple[str, ...]) -> tuple[str, Any]:
        """An externally tagged enum: ``"case"`` (unit variant) or ``{"case": payload}``."""
        if isinstance(value, str) and value in cases:
            return value, None
        if isinstance(value, dict) and len(value) == 1:
            (case, payload), = value.items()
            if case in cases:
                return case, payload
        raise self.fail(name, "one of " + ", ".join(f'"{c}"' for c in cases), value)


def _nat(fields: _Fields, name: str, value: Any) -> int:
    """candid::Nat as serde reads it: an integer, a decimal string, or base-2^32 digits (LE)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, list) and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 32
                                       for d in value):
        return sum(d << (32 * i) for i, d in enumerate(value))
    raise fields.fail(name, "a natural number", value)


def _parse_global(fields: _Fields, i: int, raw: Any) -> SnapshotGlobal | None:
    name = f"globals[{i}]"
    if raw is None:
        return None
    valtype, value = fields.variant(name, raw, GLOBAL_TYPES)
    if valtype in ("i32", "i64"):
        bound = 1 << (31 if valtype == "i32" else 63)
        if isinstance(value, bool) or not isinstance(value, int) or not -bound <= value < bound:
            raise fields.fail(name, f"an {valtype} value", value)
        return SnapshotGlobal(valtype, value)
    if valtype in ("f32", "f64"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fields.fail(name, f"an {valtype} value", value)
        number = float(value)
        if valtype == "f32" and abs(number) > _F32_MAX:
            raise fields.fail(name, "an f32 value", value)
        return SnapshotGlobal(valtype, float(np.float32(number)) if valtype == "f32" else number)
    number = _nat(fields, name, value)
    if number >= 1 << 128:
        raise fields.fail(name, "a v128 value", value)
    return SnapshotGlobal("v128", number)


def parse_metadata(text: str | bytes, where: str = METADATA_FILE) -> SnapshotMetadata:
    """Parse ``metadata.json``; SnapshotDirError (one line, naming ``where`` and the field) if it is
    not JSON, misses a required field, has an unknown or upload-only field, or a value of the
    wrong type."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except SnapshotDirError as exc:
        raise SnapshotDirError(f"{where}: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotDirError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SnapshotDirError(f"{where} must hold a JSON object (the snapshot's metadata), not {_show(doc)}")
    upload = [k for k in doc if k in UPLOAD_ONLY]
    if upload:
        raise SnapshotDirError(
            f"{where}: `{upload[0]}` is an argument of upload_canister_snapshot_metadata, not part of a "
            "downloaded snapshot's metadata (read_canister_snapshot_metadata); remove it")
    unknown = [k for k in doc if k not in FIELDS]
    if unknown:
        raise SnapshotDirError(f"{where}: unknown field `{unknown[0]}` (known: {', '.join(FIELDS)})")
    missing = [k for k in FIELDS if k not in doc and k not in _OPTIONAL]
    if missing:
        raise SnapshotDirError(f"{where}: missing field `{missing[0]}`")
    f = _Fields(where)
    source = None
    if doc.get("source") is not None:
        case, _ = f.variant("source", doc["source"], SOURCES)
        if isinstance(doc["source"], str):  # a newtype variant (over Reserved) has the map form only
            raise f.fail("source", '{"taken_from_canister": null} or {"metadata_upload": null}', doc["source"])
        source = case
    if not isinstance(doc["globals"], list):
        raise f.fail("globals", "an array", doc["globals"])
    globals_ = [_parse_global(f, i, g) for i, g in enumerate(doc["globals"])]
    if not isinstance(doc["wasm_chunk_store"], list):
        raise f.fail("wasm_chunk_store", "an array of {\"hash\": [...]}", doc["wasm_chunk_store"])
    chunks: list[bytes] = []
    for i, entry in enumerate(doc["wasm_chunk_store"]):
        if not isinstance(entry, dict) or set(entry) != {"hash"}:
            raise f.fail(f"wasm_chunk_store[{i}]", "{\"hash\": [...]}", entry)
        digest = f.blob(f"wasm_chunk_store[{i}].hash", entry["hash"])
        if len(digest) != 32:
            raise SnapshotDirError(f"{where}: `wasm_chunk_store[{i}].hash` has {len(digest)} bytes; "
                                   "a chunk hash is a 32-byte sha256")
        chunks.append(digest)
    timer, timer_ns = None, 0
    if doc.get("global_timer") is not None:
        case, payload = f.variant("global_timer", doc["global_timer"], (TIMER_INACTIVE, TIMER_ACTIVE))
        if case == TIMER_ACTIVE:
            timer_ns = f.u64("global_timer.active", payload)
        elif payload is not None:
            raise f.fail("global_timer", '"inactive"', doc["global_timer"])
        timer = case
    hook = None
    if doc.get("on_low_wasm_memory_hook_status") is not None:
        hook, payload = f.variant("on_low_wasm_memory_hook_status", doc["on_low_wasm_memory_hook_status"],
                                  HOOK_STATUSES)
        if payload is not None:
            raise f.fail("on_low_wasm_memory_hook_status", "a unit variant", doc["on_low_wasm_memory_hook_status"])
    return SnapshotMetadata(
        taken_at_timestamp=f.u64("taken_at_timestamp", doc["taken_at_timestamp"]),
        wasm_module_size=f.u64("wasm_module_size", doc["wasm_module_size"]),
        wasm_memory_size=f.u64("wasm_memory_size", doc["wasm_memory_size"]),
        stable_memory_size=f.u64("stable_memory_size", doc["stable_memory_size"]),
        canister_version=f.u64("canister_version", doc["canister_version"]),
        globals=globals_, wasm_chunk_store=chunks,
        certified_data=f.blob("certified_data", doc["certified_data"], MAX_CERTIFIED_DATA),
        source=source, global_timer=timer, global_timer_ns=timer_ns, on_low_wasm_memory_hook_status=hook)
