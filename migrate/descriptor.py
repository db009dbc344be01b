"""The binary stable type descriptor that a live EOP heap keeps in its persistent metadata.

An enhanced-orthogonal-persistence (EOP) Motoko canister registers the type of its stable state at
every install and upgrade (``register_stable_type`` in the RTS) and keeps it in its own heap, so the
*old* type of a canister can be read from the canister's state alone, without the module that wrote
it. This module reads it back:

* :func:`decode_descriptor` parses the descriptor's two blobs: ``candid_data``, a ``DIDL``-prefixed
  Candid-like type table with Motoko's extensions, and ``type_offsets``, the byte offset of every
  table entry as little-endian ``u64``s;
* :func:`read_persistent_descriptor` finds those two blobs in a heap image (or through a reader);
* :func:`descriptor_to_signature` turns the table into the typed stable-signature model of
  :mod:`migrate.stable_types`, and :func:`signature_from_canister` does all of it for a canister
  installed in a graphcopy store.

Table format (``Serialization.type_desc`` in moc's ``compile_enhanced.ml``, persistence mode)::

    "DIDL" count:LEB128 entry*count main_count:LEB128 main_ref:SLEB128*main_count

A *type reference* is an SLEB128 ``int32``: a non-negative table index, or a negative primitive
code. Entries start with an SLEB128 opcode:

===========  =====  ====================================================================
entry        code   body
===========  =====  ====================================================================
opt          -18    ref
vec          -19    ref (``[T]``; ``[var T]`` is an *alias* entry pointing at ``[T]``'s entry)
record       -20    n, n x (u32 label hash LEB128, ref), strictly ascending unsigned hashes
variant      -21    like record
func         -22    n, n x ref, m, m x ref, k, k annotation bytes (1 query, 2 oneway, 3 composite)
service      -23    n, n x (name length, UTF-8 name, ref), names ascending
tuple        -130   n, n x (component index 0..n-1 LEB128, ref)
weak         -131   ref
alias        +1     ref: a ``var`` field type, or ``[var T]`` (then the ref is the ``[T]`` vec entry)
===========  =====  ====================================================================

Primitive codes: Null and ``()`` -1, Bool -2, Nat -3, Int -4, Nat8 -5, Nat16 -6, Nat32 *and Char* -7,
Nat64 -8, Int8 -9, Int16 -10, Int32 -11, Int64 -12, Float -14, Text -15, Any -16, None -17,
Principal -24, Region -128, Blob -129.

Heap layout, verified empirically on moc 1.1 (npm ``motoko`` 4.10.0) modules hosted by graphcopy
(see ``tests/test_descriptor.py``):

* the persistent metadata sits at the fixed address ``METADATA_ADDRESS = 0x480000`` (4.5 MiB, heap
  page 72): 32 UTF-32LE characters ``"MOTOKO ORTHOGONAL PERSISTENCE 64"`` (128 bytes), then 64-bit
  little-endian words ``version`` (1) at +128, ``stable_actor`` at +136 (0 except around an
  upgrade), and the ``stable_type`` descriptor's two values ``candid_data`` at +144 and
  ``type_offsets`` at +152;
* those values are skewed pointers (object address - 1, so they end in binary ``111``) to Blob
  objects in the dynamic heap (>= 5 MiB): word 0 the tag (25, ``TAG_BLOB_B``), word 1 the
  incremental GC's forwarding pointer (skewed; equal to the object's own skewed address unless the
  GC has evacuated it), word 2 the payload length in bytes, then the payload;
* ``type_offsets`` holds byte offsets from the start of the candid data, ``DIDL`` included (the
  first entry of a table with fewer than 128 entries is at offset 5);
* the descriptor is present right after install: the runtime registers the stable type during
  init, before any message. Fresh, the two blobs sit in the first heap partition (about
  ``0x5007e0`` and ``0x500900`` for the example ledger). After about 30,000 ledger accounts, with the
  heap at 192 MiB, the incremental GC evacuated that partition and the blobs moved (to about
  ``0x4152750``/``0x4152880``, the second 64 MiB partition). The GC updated the metadata roots, and
  the bytes are unchanged. Between messages, a blob's forwarding word was always its own address.
  The reader still follows a forwarding word that differs, as the RTS does.

Which type is registered: on install, the program's *post* type (checked with a migration actor).
On an upgrade, the RTS registers the new program's *pre* type, and ``pre_upgrade`` later assigns
the *post* type again (read in ``compile_enhanced.ml``; graphcopy cannot upgrade yet, so this is
not checked here). A canister upgraded with a migration function therefore shows its pre type
until its next ``pre_upgrade``.

The table is not minimal. moc keys entries by its internal type identity, so distinct Motoko types
that encode alike get separate, identical entries (``?Char`` and ``?Nat32``; ``var f : [Int]`` and
``f : [var Int]``). Compare tables with :func:`descriptor_mismatch`, not byte for byte.

Errors (:class:`DescriptorError`, :class:`NoDescriptorError`) are defined in
:mod:`migrate.errors`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import leb128

from migrate.errors import DescriptorError, NoDescriptorError, StableTypeError
from migrate.stable_types import ANY as ANY_TYPE
from migrate.stable_types import NONE as NONE_TYPE
from migrate.stable_types import UNIT as UNIT
from migrate.stable_types import (
    ActorType,
    AnyType,
    ArrayType,
    ConType,
    Field,
    FuncSort,
    FuncType,
    NoneType,
    OptType,
    Prim,
    RecordType,
    StableField,
    StableSignature,
    StableType,
    Tag,
    TupleType,
    TypeDef,
    VariantType,
    WeakType,
    label_hash,
    unfold,
)

if TYPE_CHECKING:
    from persist.session import Store

__all__ = [
    "ALIAS",
    "ANNOTATIONS",
    "BLOB",
    "FUNC",
    "METADATA_ADDRESS",
    "OPT",
    "PERSISTENCE_FINGERPRINT",
    "PERSISTENCE_VERSION",
    "PRIMITIVE_NAMES",
    "RECORD",
    "REGION",
    "SERVICE",
    "TUPLE",
    "TypeRef",
    "VARIANT",
    "VEC",
    "WEAK",
    "AliasEntry",
    "DescriptorError",
    "DescriptorTable",
    "Entry",
    "FuncEntry",
    "HeapReader",
    "NoDescriptorError",
    "OptEntry",
    "RecordEntry",
    "ServiceEntry",
    "TupleEntry",
    "VariantEntry",
    "VecEntry",
    "WeakEntry",
    "decode_descriptor",
    "descriptor_mismatch",
    "descriptor_to_signature",
    "hashed_label",
    "read_persistent_descriptor",
    "signature_from_canister",
    "signature_to_descriptor",
]


# --------------------------------------------------------------------------- codes

NULL, BOOL, NAT, INT, NAT8, NAT16, NAT32, NAT64 = -1, -2, -3, -4, -5, -6, -7, -8
INT8, INT16, INT32, INT64, FLOAT, TEXT, ANY, NONE = -9, -10, -11, -12, -14, -15, -16, -17
OPT, VEC, RECORD, VARIANT, FUNC, SERVICE, PRINCIPAL = -18, -19, -20, -21, -22, -23, -24
REGION, BLOB, TUPLE, WEAK = -128, -129, -130, -131
ALIAS = 1

#: Primitive type codes and the Motoko type each stands for. Two codes are ambiguous, because moc
#: maps two Motoko types onto one Candid primitive (``to_idl_prim``): -1 is ``Null`` *or* ``()``,
#: and -7 is ``Nat32`` *or* ``Char``. The names here are the first of each pair.
PRIMITIVE_NAMES: dict[int, str] = {
    NULL: "Null",
    BOOL: "Bool",
    NAT: "Nat",
    INT: "Int",
    NAT8: "Nat8",
    NAT16: "Nat16",
    NAT32: "Nat32",
    NAT64: "Nat64",
    INT8: "Int8",
    INT16: "Int16",
    INT32: "Int32",
    INT64: "Int64",
    FLOAT: "Float",
    TEXT: "Text",
    ANY: "Any",
    NONE: "None",
    PRINCIPAL: "Principal",
    REGION: "Region",
    BLOB: "Blob",
}

#: Function annotation bytes (``type_desc``: 1 query, 2 oneway, 3 composite query).
ANNOTATIONS: dict[int, str] = {1: "query", 2: "oneway", 3: "composite_query"}

_MAGIC = b"DIDL"
_DESCRIBE_DEPTH = 12
_OPCODE_NAMES = {
    OPT: "opt",
    VEC: "vec",
    RECORD: "record",
    VARIANT: "variant",
    FUNC: "func",
    SERVICE: "service",
    TUPLE: "tuple",
    WEAK: "weak",
    ALIAS: "alias",
}

TypeRef: TypeAlias = int
"""A type reference: a table index (``>= 0``) or a negative primitive code."""


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True)
class OptEntry:
    """``?T``."""

    inner: TypeRef


@dataclass(frozen=True)
class VecEntry:
    """``[T]`` (an immutable array; ``[var T]`` is an :class:`AliasEntry` pointing at this)."""

    element: TypeRef


@dataclass(frozen=True)
class RecordEntry:
    """An object/record: ``(label hash, field type)`` pairs, ascending by unsigned hash.

    Field names are not in the descriptor, only their 32-bit Candid ``idl_hash``. A ``var`` field's
    type is an :class:`AliasEntry`.
    """

    fields: tuple[tuple[int, TypeRef], ...]


@dataclass(frozen=True)
class VariantEntry:
    """A variant: ``(tag hash, payload type)`` pairs, ascending by unsigned hash."""

    fields: tuple[tuple[int, TypeRef], ...]


@dataclass(frozen=True)
class FuncEntry:
    """A shared function type; ``annotations`` are the raw bytes (see :data:`ANNOTATIONS`)."""

    args: tuple[TypeRef, ...]
    results: tuple[TypeRef, ...]
    annotations: tuple[int, ...]

    @property
    def modes(self) -> tuple[str, ...]:
        """Candid mode names of the annotations (``()`` for a plain shared update function)."""
        return tuple(ANNOTATIONS[a] for a in self.annotations)


@dataclass(frozen=True)
class ServiceEntry:
    """An actor reference type: ``(method name, func type)`` pairs, ascending by name."""

    methods: tuple[tuple[str, TypeRef], ...]


@dataclass(frozen=True)
class TupleEntry:
    """A non-nullary tuple ``(T0, ..., Tn-1)`` (Motoko extension; never matches a record)."""

    components: tuple[TypeRef, ...]


@dataclass(frozen=True)
class WeakEntry:
    """``weak T`` (Motoko extension)."""

    inner: TypeRef


@dataclass(frozen=True)
class AliasEntry:
    """Motoko's mutability marker (code +1): a ``var`` field's type, or ``[var T]``.

    For ``[var T]`` the target is the :class:`VecEntry` of ``[T]``. A record field whose type is an
    alias of a vec entry is therefore ambiguous: ``var f : [T]`` and ``f : [var T]`` encode alike.
    """

    target: TypeRef


Entry: TypeAlias = (
    OptEntry | VecEntry | RecordEntry | VariantEntry | FuncEntry | ServiceEntry | TupleEntry | WeakEntry | AliasEntry
)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class DescriptorTable:
    """A decoded stable type descriptor.

    ``entries[i]`` is table entry ``i``; ``main_types`` are the table's main type references (for
    a persistence descriptor exactly ``(0,)``: the actor's stable memory record); ``offsets[i]`` is
    the byte offset of entry ``i`` in the candid data (what the ``type_offsets`` blob holds).
    """

    entries: tuple[Entry, ...]
    main_types: tuple[TypeRef, ...]
    offsets: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, ref: TypeRef) -> Entry:
        """The entry a non-negative type reference points at."""
        if not 0 <= ref < len(self.entries):
            raise DescriptorError(f"type reference {ref} is not a table entry (the table has {len(self.entries)})")
        return self.entries[ref]

    def encode(self) -> bytes:
        """The candid data bytes of this table, exactly as moc writes them."""
        out = bytearray(_MAGIC)
        _put_uleb(out, len(self.entries))
        for e in self.entries:
            _encode_entry(out, e)
        _put_uleb(out, len(self.main_types))
        for ref in self.main_types:
            _put_sleb(out, ref)
        return bytes(out)

    def encode_offsets(self) -> bytes:
        """The ``type_offsets`` blob payload of this table (little-endian ``u64`` per entry)."""
        return b"".join(struct.pack("<Q", o) for o in self.offsets)

    def describe(self, ref: TypeRef | None = None) -> str:
        """A readable rendering of a type reference (default: the first main type), for messages.

        Table entries print as ``#i`` after their first occurrence on a path, so recursive types end.
        """
        if ref is None:
            ref = self.main_types[0] if self.main_types else 0
        return _describe(self, ref, ())


def _describe(table: DescriptorTable, ref: TypeRef, path: tuple[int, ...]) -> str:
    if ref < 0:
        return PRIMITIVE_NAMES.get(ref, f"<code {ref}>")
    if ref in path:
        return f"#{ref}"
    if len(path) >= _DESCRIBE_DEPTH:  # messages stay short, and a corrupt deep chain cannot recurse away
        return "…"
    e = table.entry(ref)
    p = (*path, ref)

    def sub(r: TypeRef) -> str:
        return _describe(table, r, p)

    if isinstance(e, OptEntry):
        return f"?{sub(e.inner)}"
    if isinstance(e, VecEntry):
        return f"[{sub(e.element)}]"
    if isinstance(e, RecordEntry):
        fields = []
        for h, t in e.fields:
            target = table.entries[t] if 0 <= t < len(table.entries) else None
            if isinstance(target, AliasEntry) and t not in p:  # a var field
                fields.append(f"var {hashed_label(h)} : {_describe(table, target.target, (*p, t))}")
            else:
                fields.append(f"{hashed_label(h)} : {sub(t)}")
        return "{" + "; ".join(fields) + "}"
    if isinstance(e, VariantEntry):
        return "{" + "; ".join(f"#{hashed_label(h)} : {sub(t)}" for h, t in e.fields) + "}" if e.fields else "{#}"
    if isinstance(e, FuncEntry):
        modes = "".join(f" {m}" for m in e.modes)
        args = ", ".join(sub(a) for a in e.args)
        res = ", ".join(sub(r) for r in e.results)
        return f"shared{modes} ({args}) -> ({res})"
    if isinstance(e, ServiceEntry):
        return "actor {" + "; ".join(f"{n} : {sub(t)}" for n, t in e.methods) + "}"
    if isinstance(e, TupleEntry):
        return "(" + ", ".join(sub(t) for t in e.components) + ")"
    if isinstance(e, WeakEntry):
        return f"weak {sub(e.inner)}"
    target = table.entries[e.target] if 0 <= e.target < len(table.entries) else None
    if isinstance(target, VecEntry) and e.target not in p:
        return f"[var {_describe(table, target.element, (*p, e.target))}]"
    return f"var {sub(e.target)}"


# --------------------------------------------------------------------------- LEB128


class _Reader:
    """A cursor over the candid data; every failure is a :class:`DescriptorError` naming the offset."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, message: str, at: int | None = None) -> DescriptorError:
        return DescriptorError(f"corrupt stable type descriptor at byte {self.pos if at is None else at}: {message}")

    def uleb(self, what: str, limit: int = 0xFFFF_FFFF) -> int:
        start = self.pos
        value = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise self.fail(f"truncated {what} (LEB128 runs past the end)", start)
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= 35:
                raise self.fail(f"{what} LEB128 is longer than 5 bytes", start)
        if value > limit:
            raise self.fail(f"{what} {value} is out of range (at most {limit})", start)
        return value

    def sleb(self, what: str) -> int:
        start = self.pos
        value = shift = 0
        while True:
            if self.pos >= len(self.data):
                raise self.fail(f"truncated {what} (SLEB128 runs past the end)", start)
            b = self.data[self.pos]
            self.pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                if b & 0x40:
                    value -= 1 << shift
                break
            if shift >= 35:
                raise self.fail(f"{what} SLEB128 is longer than 5 bytes", start)
        if not -(2**31) <= value < 2**31:
            raise self.fail(f"{what} {value} does not fit in 32 bits", start)
        return value

    def count(self, what: str, min_bytes_each: int) -> int:
        """A length prefix, checked against the bytes left so a corrupt one cannot ask for gigabytes."""
        start = self.pos
        n = self.uleb(what)
        if n * min_bytes_each > len(self.data) - self.pos:
            raise self.fail(f"{what} {n} needs at least {n * min_bytes_each} more bytes, but "
                            f"{len(self.data) - self.pos} are left (truncated or corrupt)", start)
        return n

    def raw(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"truncated {what}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b


def _put_uleb(out: bytearray, value: int) -> None:
    out += leb128.u.encode(value)


def _put_sleb(out: bytearray, value: int) -> None:
    out += leb128.i.encode(value)


# --------------------------------------------------------------------------- decoding


def decode_descriptor(candid_data: bytes, type_offsets: bytes | None = None) -> DescriptorTable:
    """Parse a stable type descriptor's candid data, and check it against its offsets blob if given.

    Checks everything a well-formed moc descriptor satisfies: the ``DIDL`` magic, known opcodes and
    primitive codes, every reference inside the table, strictly ascending label hashes, tuple
    components numbered ``0..n-1``, service methods sorted by name with function types, known
    function annotations, no cycle of aliases only, no trailing bytes; and, with ``type_offsets``,
    one little-endian ``u64`` per entry equal to where that entry starts. Raises
    :class:`DescriptorError` with a one-line message on the first violation.
    """
    data = bytes(candid_data)
    r = _Reader(data)
    if data[:4] != _MAGIC:
        raise DescriptorError(
            f"not a stable type descriptor: candid data starts with {data[:4].hex() or 'nothing'}, expected 'DIDL'"
        )
    r.pos = 4
    n = r.count("type count", 2)
    entries: list[Entry] = []
    offsets: list[int] = []
    for i in range(n):
        offsets.append(r.pos)
        entries.append(_decode_entry(r, i))
    m = r.count("main type count", 1)
    main = tuple(r.sleb("main type") for _ in range(m))
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} trailing bytes after the main types")
    table = DescriptorTable(tuple(entries), main, tuple(offsets))
    _check_references(table)
    if type_offsets is not None:
        _check_offsets(table, bytes(type_offsets))
    return table


def _decode_entry(r: _Reader, i: int) -> Entry:
    start = r.pos
    op = r.sleb(f"opcode of entry {i}")
    what = f"entry {i}"
    if op in (OPT, VEC, WEAK, ALIAS):
        ref = r.sleb(f"{what} type")
        if op == OPT:
            return OptEntry(ref)
        if op == VEC:
            return VecEntry(ref)
        return WeakEntry(ref) if op == WEAK else AliasEntry(ref)
    if op in (RECORD, VARIANT):
        kind = _OPCODE_NAMES[op]
        fields: list[tuple[int, TypeRef]] = []
        for _ in range(r.count(f"{what} ({kind}) field count", 2)):
            at = r.pos
            h = r.uleb(f"{what} ({kind}) label hash")
            if fields and h <= fields[-1][0]:
                raise r.fail(
                    f"{what} ({kind}) label hash {h} does not follow {fields[-1][0]} in ascending order", at)
            fields.append((h, r.sleb(f"{what} ({kind}) field type")))
        return RecordEntry(tuple(fields)) if op == RECORD else VariantEntry(tuple(fields))
    if op == TUPLE:
        comps: list[TypeRef] = []
        for k in range(r.count(f"{what} (tuple) length", 2)):
            at = r.pos
            idx = r.uleb(f"{what} (tuple) component index")
            if idx != k:
                raise r.fail(f"{what} (tuple) component {k} is numbered {idx}", at)
            comps.append(r.sleb(f"{what} (tuple) component type"))
        return TupleEntry(tuple(comps))
    if op == FUNC:
        args = tuple(r.sleb(f"{what} (func) argument") for _ in range(r.count(f"{what} (func) argument count", 1)))
        res = tuple(r.sleb(f"{what} (func) result") for _ in range(r.count(f"{what} (func) result count", 1)))
        at = r.pos
        annotations = tuple(r.raw(r.count(f"{what} (func) annotation count", 1), f"{what} annotations"))
        for a in annotations:
            if a not in ANNOTATIONS:
                raise r.fail(f"{what} (func) has unknown annotation {a} (known: 1 query, 2 oneway, 3 composite)", at)
        if len(annotations) > 1:
            raise r.fail(f"{what} (func) has {len(annotations)} annotations; moc writes at most one", at)
        return FuncEntry(args, res, annotations)
    if op == SERVICE:
        methods: list[tuple[str, TypeRef]] = []
        for _ in range(r.count(f"{what} (service) method count", 2)):
            at = r.pos
            raw = r.raw(r.count(f"{what} (service) method name length", 1), f"{what} method name")
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise r.fail(f"{what} (service) method name {raw!r} is not UTF-8", at) from None
            if methods and raw <= methods[-1][0].encode("utf-8"):
                raise r.fail(f"{what} (service) method {name!r} does not follow {methods[-1][0]!r} in name order", at)
            methods.append((name, r.sleb(f"{what} (service) method type")))
        return ServiceEntry(tuple(methods))
    if op < 0 and op in PRIMITIVE_NAMES:
        raise r.fail(f"{what} is the primitive {PRIMITIVE_NAMES[op]} (code {op}); primitives are never table entries",
                     start)
    raise r.fail(f"{what} has unknown opcode {op}", start)


def _check_references(table: DescriptorTable) -> None:
    """Every reference names a primitive or an entry; func/service shapes; no alias-only cycles."""
    n = len(table.entries)

    def check(ref: TypeRef, where: str) -> None:
        if ref >= n or (ref < 0 and ref not in PRIMITIVE_NAMES):
            what = f"entry {ref}, but the table has {n}" if ref >= 0 else f"unknown primitive code {ref}"
            raise DescriptorError(f"corrupt stable type descriptor: {where} refers to {what}")

    for i, e in enumerate(table.entries):
        where = f"entry {i}"
        for ref in _children(e):
            check(ref, where)
        if isinstance(e, ServiceEntry):
            for name, ref in e.methods:
                if ref < 0 or not isinstance(table.entries[ref], FuncEntry):
                    raise DescriptorError(
                        f"corrupt stable type descriptor: {where} (service) method {name!r} is not a function type")
    for k, ref in enumerate(table.main_types):
        check(ref, f"main type {k}")
    # An alias is a marker on another type; a cycle through aliases alone describes no type at all.
    ends: set[int] = set()  # entries whose alias chain is known to end (linear overall)
    for i, e in enumerate(table.entries):
        walk = {i}
        while isinstance(e, AliasEntry) and e.target >= 0 and e.target not in ends:
            if e.target in walk:
                raise DescriptorError(f"corrupt stable type descriptor: entry {i} is a cycle of aliases")
            walk.add(e.target)
            e = table.entries[e.target]
        ends.update(walk)


def _children(e: Entry) -> Iterable[TypeRef]:
    if isinstance(e, OptEntry | WeakEntry):
        return (e.inner,)
    if isinstance(e, VecEntry):
        return (e.element,)
    if isinstance(e, AliasEntry):
        return (e.target,)
    if isinstance(e, RecordEntry | VariantEntry):
        return tuple(t for _, t in e.fields)
    if isinstance(e, FuncEntry):
        return e.args + e.results
    if isinstance(e, ServiceEntry):
        return tuple(t for _, t in e.methods)
    return e.components


def _check_offsets(table: DescriptorTable, type_offsets: bytes) -> None:
    if len(type_offsets) % 8:
        raise DescriptorError(
            f"corrupt stable type descriptor: type offsets blob has {len(type_offsets)} bytes, not a multiple of 8")
    got = struct.unpack(f"<{len(type_offsets) // 8}Q", type_offsets)
    if len(got) != len(table.entries):
        raise DescriptorError(
            f"corrupt stable type descriptor: {len(got)} type offsets for {len(table.entries)} table entries")
    for i, (have, want) in enumerate(zip(got, table.offsets, strict=True)):
        if have != want:
            raise DescriptorError(
                f"corrupt stable type descriptor: type offset {i} is {have}, but entry {i} starts at byte {want}")


def _encode_entry(out: bytearray, e: Entry) -> None:
    if isinstance(e, OptEntry | VecEntry | WeakEntry | AliasEntry):
        op = {OptEntry: OPT, VecEntry: VEC, WeakEntry: WEAK, AliasEntry: ALIAS}[type(e)]
        _put_sleb(out, op)
        _put_sleb(out, next(iter(_children(e))))
    elif isinstance(e, RecordEntry | VariantEntry):
        _put_sleb(out, RECORD if isinstance(e, RecordEntry) else VARIANT)
        _put_uleb(out, len(e.fields))
        for h, t in e.fields:
            _put_uleb(out, h)
            _put_sleb(out, t)
    elif isinstance(e, TupleEntry):
        _put_sleb(out, TUPLE)
        _put_uleb(out, len(e.components))
        for k, t in enumerate(e.components):
            _put_uleb(out, k)
            _put_sleb(out, t)
    elif isinstance(e, FuncEntry):
        _put_sleb(out, FUNC)
        for refs in (e.args, e.results):
            _put_uleb(out, len(refs))
            for t in refs:
                _put_sleb(out, t)
        _put_uleb(out, len(e.annotations))
        out.extend(e.annotations)
    else:
        _put_sleb(out, SERVICE)
        _put_uleb(out, len(e.methods))
        for name, t in e.methods:
            raw = name.encode("utf-8")
            _put_uleb(out, len(raw))
            out.extend(raw)
            _put_sleb(out, t)


# --------------------------------------------------------------------------- the heap

#: Where the RTS keeps its persistent metadata (``persistence.rs``; its "6MB" comment is stale).
METADATA_ADDRESS = 4 * 1024 * 1024 + 512 * 1024
#: ``[char; 32]`` in Rust: 4 bytes (UTF-32LE) per character.
PERSISTENCE_FINGERPRINT = "MOTOKO ORTHOGONAL PERSISTENCE 64"
PERSISTENCE_VERSION = 1
_FINGERPRINT_BYTES = PERSISTENCE_FINGERPRINT.encode("utf-32-le")
_VERSION_OFFSET = 128
_CANDID_DATA_OFFSET = 144  # after version (+128) and stable_actor (+136); type_offsets follows at +152
_METADATA_PREFIX = 160
_HEAP_START = METADATA_ADDRESS + 512 * 1024  # first address of the dynamic heap
_TAG_BLOB_B = 25
_BLOB_HEADER = 24  # tag, forwarding pointer, length
_MAX_FORWARDS = 4  # an evacuated object forwards once; a chain longer than this is corruption

HeapReader: TypeAlias = Callable[[int, int], bytes]
"""Reads ``n`` bytes at heap address ``addr``: ``reader(addr, n) -> bytes``."""


def _as_reader(heap: Any) -> tuple[HeapReader, int | None]:
    """A reader over a bytes-like heap image (with its size), or the caller's reader as is."""
    if callable(heap):
        return heap, None
    view = memoryview(heap)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    size = view.nbytes

    def read(addr: int, n: int) -> bytes:
        return bytes(view[addr : addr + n])

    return read, size


def read_persistent_descriptor(heap: Any) -> tuple[bytes, bytes]:
    """The ``(candid_data, type_offsets)`` payloads of the stable type registered in an EOP heap.

    ``heap`` is the canister's main memory: a bytes-like image (``bytes``, ``bytearray``,
    ``memoryview``, a numpy array, a ctypes array) indexed by address, or a reader callable
    ``(addr, n) -> bytes``. Checks the fingerprint and version of the persistent metadata at
    :data:`METADATA_ADDRESS`, follows the two skewed pointers of its ``stable_type`` (and the
    incremental GC's forwarding pointers, if the blobs were evacuated) to their Blob objects.

    Raises :class:`NoDescriptorError` when the heap has no EOP metadata or no registered type, and
    :class:`DescriptorError` when what is there is inconsistent.
    """
    read, size = _as_reader(heap)
    return _descriptor_blobs(read, size)


def _descriptor_blobs(read: HeapReader, size: int | None) -> tuple[bytes, bytes]:
    if size is not None and size < METADATA_ADDRESS + _METADATA_PREFIX:
        raise NoDescriptorError(
            f"no EOP persistent metadata: the heap has {size} bytes, and the metadata lives at "
            f"{METADATA_ADDRESS:#x} (4.5 MiB)")
    meta = _read_exact(read, METADATA_ADDRESS, _METADATA_PREFIX, "the persistent metadata")
    fingerprint = meta[:_VERSION_OFFSET]
    (version,) = struct.unpack_from("<Q", meta, _VERSION_OFFSET)
    if version == 0 and not any(fingerprint):
        raise NoDescriptorError(
            f"no EOP persistent metadata at {METADATA_ADDRESS:#x}: it is uninitialised (all zero); "
            "the module does not use enhanced orthogonal persistence or was never initialised")
    if fingerprint != _FINGERPRINT_BYTES:
        shown = fingerprint.decode("utf-32-le", errors="replace").rstrip("\x00")[:40]
        raise NoDescriptorError(
            f"no EOP persistent metadata at {METADATA_ADDRESS:#x}: fingerprint is {shown!r}, "
            f"expected {PERSISTENCE_FINGERPRINT!r}")
    if version != PERSISTENCE_VERSION:
        raise DescriptorError(
            f"unsupported persistent memory version {version} (this reader knows version {PERSISTENCE_VERSION})")
    candid_value, offsets_value = struct.unpack_from("<2Q", meta, _CANDID_DATA_OFFSET)
    if candid_value == 0 and offsets_value == 0:
        raise NoDescriptorError("the persistent metadata holds no stable type descriptor (none registered yet)")
    candid = _read_blob(read, size, candid_value, "candid data")
    offsets = _read_blob(read, size, offsets_value, "type offsets")
    return candid, offsets


def _read_exact(read: HeapReader, addr: int, n: int, what: str) -> bytes:
    data = read(addr, n)
    if len(data) != n:
        raise DescriptorError(f"cannot read {what}: {n} bytes at {addr:#x} reach past the end of the heap")
    return bytes(data)


def _read_blob(read: HeapReader, size: int | None, value: int, what: str) -> bytes:
    """The payload of the Blob a skewed pointer refers to, following GC forwarding pointers."""
    for _ in range(_MAX_FORWARDS):
        if value & 7 != 7:
            raise DescriptorError(
                f"stable type {what} is {value:#x} in the persistent metadata, not a pointer "
                "(skewed pointers end in binary 111)")
        addr = (value + 1) & 0xFFFF_FFFF_FFFF_FFFF
        if addr < _HEAP_START or (size is not None and addr + _BLOB_HEADER > size):
            limit = f" of {size:#x}" if size is not None else ""
            raise DescriptorError(
                f"stable type {what} points to {addr:#x}, outside the dynamic heap [{_HEAP_START:#x}, end{limit})")
        tag, forward, length = struct.unpack("<3Q", _read_exact(read, addr, _BLOB_HEADER, f"the {what} blob header"))
        if tag != _TAG_BLOB_B:
            raise DescriptorError(
                f"stable type {what} at {addr:#x} is not a Blob: object tag {tag}, expected {_TAG_BLOB_B}")
        if forward != value:
            value = forward  # evacuated by the incremental GC: the current copy is elsewhere
            continue
        if size is not None and addr + _BLOB_HEADER + length > size:
            raise DescriptorError(
                f"stable type {what} blob at {addr:#x} claims {length} bytes, past the end of the heap ({size:#x})")
        return _read_exact(read, addr + _BLOB_HEADER, length, f"the {what} blob")
    raise DescriptorError(f"stable type {what}: more than {_MAX_FORWARDS} forwarding pointers in a row")



# --------------------------------------------------------------------------- to the signature model

#: How a descriptor primitive code reads back as a model type. Ambiguous codes read as the first
#: of their pair: -7 as ``Nat32`` (never ``Char``) and -1 as ``Null`` -- except as a variant
#: payload, where it reads as ``()`` (``#tag`` is ``#tag : ()``, by far the common case).
_MODEL_PRIMS: dict[int, StableType] = {code: Prim(name) for code, name in PRIMITIVE_NAMES.items()
                                       if name not in ("Any", "None")}
_MODEL_PRIMS[ANY] = ANY_TYPE
_MODEL_PRIMS[NONE] = NONE_TYPE
#: Above this many type nodes, an entry that is used more than once becomes a named ``TypeDef``
#: instead of being written out at every use (a DAG of tuples can otherwise expand exponentially).
_INLINE_LIMIT = 64
#: Types nested deeper than this are cut into ``TypeDef`` s, so converting (and printing) a deep
#: chain such as ``?????...Nat`` from a corrupt or odd descriptor cannot exhaust Python's stack.
_DEPTH_LIMIT = 32


def hashed_label(h: int) -> str:
    """The model's name for a label known only by its hash: ``_<hash>_``, the Candid escape for a
    numeric label, which :func:`migrate.stable_types.label_hash` maps back to ``h``."""
    return f"_{h}_"


def descriptor_to_signature(table: DescriptorTable) -> StableSignature:
    """The stable signature a persistence descriptor describes, in the :mod:`migrate.stable_types` model.

    Entry 0 is the actor's stable *memory record*; each of its fields is ``?T`` for a stable
    variable of type ``T`` (moc wraps every one in an option), and the ``?`` is removed here. What the
    descriptor does not carry comes back as follows:

    * labels (stable variables, record fields, variant tags) are hashes only: they are named
      ``_<hash>_`` (:func:`hashed_label`), so ``label_hash`` of the name is the hash; actor
      reference methods keep their real names;
    * whether a stable variable was declared ``var`` is erased: every field has ``mutable=False``;
    * type names and type parameters are gone: types are structural. Only entries that are
      recursive, large and shared, or nested very deep become ``TypeDef`` s, named ``T<entry index>``;
    * code -7 is ``Nat32`` or ``Char``, and code -1 is ``Null`` or ``()``. They read as ``Nat32``
      and ``Null``, except that -1 reads as ``()`` as a variant payload. A decoded ``Nat32`` or
      ``Null`` therefore means "either of the two". Compare with :func:`descriptor_mismatch`
      (after :func:`signature_to_descriptor`), which treats each pair as one type, as the RTS does;
    * a record field that is an alias entry reads as a ``var`` field of the alias's target, so
      ``f : [var T]`` (encoded exactly like ``var f : [T]``) reads as ``var f : [T]``.

    The signature has version ``1.0.0`` and no pre list. Raises :class:`DescriptorError` when the
    table is not a persistence descriptor (main type not entry 0, entry 0 not a record of options,
    an alias that marks neither a field nor a mutable array).
    """
    if table.main_types != (0,):
        raise DescriptorError(
            f"not a persistence descriptor: main types are {list(table.main_types)}, expected [0] (the actor record)")
    actor = table.entry(0)
    if not isinstance(actor, RecordEntry):
        raise DescriptorError("not a persistence descriptor: entry 0 (the actor's stable record) is not a record")
    fields: list[tuple[int, TypeRef]] = []
    for h, ref in actor.fields:
        inner = table.entries[ref] if ref >= 0 else None
        if not isinstance(inner, OptEntry):
            raise DescriptorError(
                f"not a persistence descriptor: stable variable {hashed_label(h)} has type "
                f"{table.describe(ref)}, but moc wraps every stable variable in an option")
        fields.append((h, inner.inner))
    named = _named_entries(table, [t for _, t in fields])
    conv = _Converter(table, named)
    post = tuple(StableField(hashed_label(h), conv.type(t)) for h, t in fields)
    return StableSignature(version="1.0.0", types=conv.typedefs(), post=post)


def _type_children(table: DescriptorTable, i: int) -> list[TypeRef]:
    """The references entry ``i`` depends on when read as a type (field aliases see through)."""
    e = table.entries[i]
    if isinstance(e, RecordEntry):
        out = []
        for _, t in e.fields:
            target = table.entries[t] if t >= 0 else None
            out.append(target.target if isinstance(target, AliasEntry) else t)
        return out
    if isinstance(e, AliasEntry):
        return [_mutable_array_element(table, i)]
    if isinstance(e, ServiceEntry | FuncEntry | TupleEntry | VariantEntry | OptEntry | VecEntry | WeakEntry):
        return list(_children(e))
    raise AssertionError(e)  # pragma: no cover - Entry is closed


def _mutable_array_element(table: DescriptorTable, i: int) -> TypeRef:
    """The element type of ``[var T]``, which moc writes as an alias of the ``[T]`` vec entry."""
    e = table.entries[i]
    assert isinstance(e, AliasEntry)
    target = table.entries[e.target] if e.target >= 0 else None
    if not isinstance(target, VecEntry):
        raise DescriptorError(
            f"corrupt stable type descriptor: entry {i} is an alias outside a record field, so it must mark "
            f"a mutable array, but it points at {table.describe(e.target)}")
    return target.element


def _named_entries(table: DescriptorTable, roots: Sequence[TypeRef]) -> set[int]:
    """Entries to turn into ``TypeDef`` s: targets of back edges (recursion), and big shared ones.

    A depth-first walk from the stable variables' types; an entry reached again while it is still
    on the walk's stack is recursive. Entry 0, the actor record, must not be reachable at all.
    """
    named: set[int] = set()
    state: dict[int, int] = {}  # 1 = on the stack, 2 = done
    order: list[int] = []  # post-order
    uses: dict[int, int] = {}
    for root in roots:
        if root < 0:
            continue
        uses[root] = uses.get(root, 0) + 1
        if root in state:
            continue
        stack: list[tuple[int, Iterator[TypeRef]]] = [(root, iter(_type_children(table, root)))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                state[node] = 2
                order.append(node)
                continue
            if child < 0:
                continue
            if child == 0:
                raise DescriptorError("corrupt stable type descriptor: a type refers back to the actor's stable record")
            uses[child] = uses.get(child, 0) + 1
            seen = state.get(child)
            if seen == 1:
                named.add(child)
            elif seen is None:
                state[child] = 1
                stack.append((child, iter(_type_children(table, child))))
    # Post-order: children are sized before their parents (back edges are named, so count 1).
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    for node in order:
        kids = [c for c in _type_children(table, node) if c >= 0 and c not in named]
        total = 1 + sum(size.get(c, 1) for c in kids) + sum(1 for c in _type_children(table, node) if c not in kids)
        deepest = 1 + max((depth.get(c, 1) for c in kids), default=0)
        if (total > _INLINE_LIMIT and uses.get(node, 0) > 1) or deepest > _DEPTH_LIMIT:
            named.add(node)
            total = deepest = 1
        size[node] = total
        depth[node] = deepest
    return named


class _Converter:
    """Builds model types from table entries, with ``ConType`` references for named entries."""

    def __init__(self, table: DescriptorTable, named: set[int]) -> None:
        self.table = table
        self.named = named
        self.defs: dict[int, TypeDef] = {}
        self.memo: dict[int, StableType] = {}

    def typedefs(self) -> tuple[TypeDef, ...]:
        # Bodies may name further entries; convert until every named entry has its definition.
        while missing := sorted(self.named - set(self.defs)):
            for i in missing:
                self.defs[i] = TypeDef(self.name(i), (), self.body(i))
        return tuple(self.defs[i] for i in sorted(self.defs))

    @staticmethod
    def name(i: int) -> str:
        return f"T{i}"

    def type(self, ref: TypeRef, *, variant_payload: bool = False) -> StableType:
        if ref < 0:
            if ref == NULL and variant_payload:
                return UNIT
            return _MODEL_PRIMS[ref]
        if ref in self.named:
            return ConType(self.name(ref))
        t = self.memo.get(ref)
        if t is None:
            t = self.memo[ref] = self.body(ref)
        return t

    def body(self, i: int) -> StableType:
        table = self.table
        e = table.entries[i]
        if isinstance(e, OptEntry):
            return OptType(self.type(e.inner))
        if isinstance(e, VecEntry):
            return ArrayType(self.type(e.element))
        if isinstance(e, WeakEntry):
            return WeakType(self.type(e.inner))
        if isinstance(e, TupleEntry):
            return TupleType(tuple(self.type(t) for t in e.components))
        if isinstance(e, AliasEntry):
            return ArrayType(self.type(_mutable_array_element(table, i)), mutable=True)
        if isinstance(e, VariantEntry):
            return VariantType(tuple(Tag(hashed_label(h), self.type(t, variant_payload=True)) for h, t in e.fields))
        if isinstance(e, RecordEntry):
            fields = []
            for h, t in e.fields:
                target = table.entries[t] if t >= 0 else None
                if isinstance(target, AliasEntry):
                    fields.append(Field(hashed_label(h), self.type(target.target), mutable=True))
                else:
                    fields.append(Field(hashed_label(h), self.type(t)))
            return RecordType(tuple(fields))
        if isinstance(e, FuncEntry):
            sort: FuncSort = "shared"
            if 1 in e.annotations:
                sort = "query"
            elif 3 in e.annotations:
                sort = "composite"
            return FuncType(sort, tuple(self.type(t) for t in e.args), tuple(self.type(t) for t in e.results),
                            is_async=2 not in e.annotations)
        assert isinstance(e, ServiceEntry)
        return ActorType(tuple(Field(name, self.type(t)) for name, t in e.methods))


# --------------------------------------------------------------------------- from the signature model

_PRIM_CODES: dict[str, int] = {name: code for code, name in PRIMITIVE_NAMES.items() if name not in ("Any", "None")}
_PRIM_CODES["Char"] = NAT32  # moc's to_idl_prim: Char shares Nat32's code


@dataclass(frozen=True)
class _Mut:
    """The type of a ``var`` field, ``Mut T`` in moc: its own table entry (an alias)."""

    inner: StableType


def signature_to_descriptor(sig: StableSignature, *, pre: bool = False) -> DescriptorTable:
    """The persistence descriptor moc registers for a signature's stable variables.

    A re-implementation of ``Serialization.type_desc`` (persistence mode) over the model: the
    memory record of the ``post`` fields (``pre=True``: the ``upgrade_fields`` a migration reads),
    each wrapped in ``?``, then entries numbered in depth-first pre-order, one per distinct type
    after expanding type definitions at the head. On a signature moc printed, the result is usually
    byte-identical to the descriptor in the canister's heap; it is always equivalent under
    :func:`descriptor_mismatch`. Raises :class:`DescriptorError` for a type that is not stable (a
    local function, an unbound type parameter, ``Error``).
    """
    fields = sig.upgrade_fields if pre else sig.post
    env = sig.env
    index: dict[object, int] = {}
    types: list[object] = []

    def norm(t: StableType) -> StableType:
        try:
            return unfold(t, env)
        except StableTypeError as exc:
            raise DescriptorError(f"cannot encode the signature: {exc}") from None

    def prim_code(t: StableType) -> int | None:
        if isinstance(t, Prim):
            code = _PRIM_CODES.get(t.name)
            if code is None:
                raise DescriptorError(f"cannot encode the signature: {t.name} is not a stable type")
            return code
        if isinstance(t, TupleType) and not t.items:
            return NULL
        if isinstance(t, AnyType):
            return ANY
        if isinstance(t, NoneType):
            return NONE
        return None

    def visit(t: object) -> None:
        # Iterative pre-order numbering: each new type gets the next index, then its children.
        work: list[object] = [t]
        while work:
            cur = work.pop()
            if not isinstance(cur, _Mut | _MemoryRecord):
                cur = norm(cur)  # type: ignore[arg-type]
                if prim_code(cur) is not None or cur in index:
                    continue
            elif cur in index:
                continue
            index[cur] = len(types)
            types.append(cur)
            work.extend(reversed(_encode_children(cur)))

    memory = _MemoryRecord(tuple(sorted(((f.name, OptType(f.typ)) for f in fields), key=lambda f: f[0].encode())))
    visit(memory)

    def ref(t: object) -> TypeRef:
        if not isinstance(t, _Mut | _MemoryRecord):
            t = norm(t)  # type: ignore[arg-type]
            code = prim_code(t)
            if code is not None:
                return code
        return index[t]

    entries = [_encode_model_entry(t, ref) for t in types]
    out = DescriptorTable(tuple(entries), (0,), ())
    data = out.encode()
    return decode_descriptor(data)  # computes the offsets, and checks what was built


@dataclass(frozen=True)
class _MemoryRecord:
    """moc's ``Obj(Memory, ...)``: the actor's stable variables as ``?T`` fields, sorted by name."""

    fields: tuple[tuple[str, StableType], ...]


def _encode_children(t: object) -> list[object]:
    """The component types moc's ``type_desc`` walks, in its order."""
    if isinstance(t, _MemoryRecord):
        return [typ for _, typ in t.fields]
    if isinstance(t, _Mut):
        return [t.inner]
    if isinstance(t, ArrayType):
        return [ArrayType(t.elem)] if t.mutable else [t.elem]
    if isinstance(t, RecordType):
        return [_Mut(f.typ) if f.mutable else f.typ for f in t.fields]
    if isinstance(t, VariantType):
        return [g.typ for g in t.tags]
    if isinstance(t, FuncType):
        return [*t.params, *t.results]
    if isinstance(t, ActorType):
        return [m.typ for m in t.methods]
    if isinstance(t, TupleType):
        return list(t.items)
    if isinstance(t, OptType | WeakType):
        return [t.inner]
    raise DescriptorError(f"cannot encode the signature: {type(t).__name__} is not a stable type")


def _encode_model_entry(t: object, ref: Callable[[object], TypeRef]) -> Entry:
    if isinstance(t, _MemoryRecord):
        return RecordEntry(tuple(sorted((label_hash(name), ref(typ)) for name, typ in t.fields)))
    if isinstance(t, _Mut):
        return AliasEntry(ref(t.inner))
    if isinstance(t, ArrayType):
        return AliasEntry(ref(ArrayType(t.elem))) if t.mutable else VecEntry(ref(t.elem))
    if isinstance(t, RecordType):
        return RecordEntry(tuple(sorted((label_hash(f.name), ref(_Mut(f.typ) if f.mutable else f.typ))
                                        for f in t.fields)))
    if isinstance(t, VariantType):
        return VariantEntry(tuple(sorted((label_hash(g.name), ref(g.typ)) for g in t.tags)))
    if isinstance(t, FuncType):
        if t.sort == "local" or t.type_params:
            raise DescriptorError("cannot encode the signature: a local or generic function type is not stable")
        # moc tests one-way first: a `shared T -> ()` is annotated oneway whatever its sort.
        annotations = (2,) if not t.is_async else {"shared": (), "query": (1,), "composite": (3,)}[t.sort]
        return FuncEntry(tuple(ref(p) for p in t.params), tuple(ref(r) for r in t.results), annotations)
    if isinstance(t, ActorType):
        return ServiceEntry(tuple(sorted(((m.name, ref(m.typ)) for m in t.methods), key=lambda m: m[0].encode())))
    if isinstance(t, TupleType):
        return TupleEntry(tuple(ref(i) for i in t.items))
    if isinstance(t, OptType):
        return OptEntry(ref(t.inner))
    if isinstance(t, WeakType):
        return WeakEntry(ref(t.inner))
    raise DescriptorError(f"cannot encode the signature: {type(t).__name__} is not a stable type")


# --------------------------------------------------------------------------- equivalence


def descriptor_mismatch(
    a: DescriptorTable, b: DescriptorTable, ref_a: TypeRef | None = None, ref_b: TypeRef | None = None
) -> str | None:
    """Where two descriptors describe different types, or None if they describe the same one.

    Compares the types at ``ref_a``/``ref_b`` (default: each table's first main type) structurally
    and coinductively (recursive types are equal if no finite path tells them apart), so the table
    layout (entry order, duplicated entries) does not matter. This is equality *as the descriptor
    sees it*: labels by hash, Char = Nat32, () = Null, ``var f : [T]`` = ``f : [var T]``. The
    answer is a one-line path to the first difference, e.g. ``field _120_: ?Nat vs Int``.
    """
    ra = ref_a if ref_a is not None else (a.main_types[0] if a.main_types else 0)
    rb = ref_b if ref_b is not None else (b.main_types[0] if b.main_types else 0)
    seen: set[tuple[int, int]] = set()
    work: list[tuple[TypeRef, TypeRef, str]] = [(ra, rb, "")]
    while work:
        x, y, path = work.pop()
        if (x, y) in seen:
            continue
        if x >= 0 and y >= 0:
            seen.add((x, y))
        where = path or "the type"

        def differ(what: str, where: str = where, x: TypeRef = x, y: TypeRef = y) -> str:
            return f"{where}: {what} ({a.describe(x)} vs {b.describe(y)})"

        if x < 0 or y < 0:
            if x != y:
                return differ("different types")
            continue
        ex, ey = a.entries[x], b.entries[y]
        if type(ex) is not type(ey):
            return differ("different kinds of type")
        pairs: list[tuple[TypeRef, TypeRef, str]]
        if isinstance(ex, RecordEntry | VariantEntry):
            assert isinstance(ey, RecordEntry | VariantEntry)
            la, lb = [h for h, _ in ex.fields], [h for h, _ in ey.fields]
            if la != lb:
                only = sorted(set(la) ^ set(lb))
                return differ(f"labels differ ({', '.join(hashed_label(h) for h in only[:3])})")
            kind = "field" if isinstance(ex, RecordEntry) else "tag"
            pairs = [(ta, tb, f"{path} {kind} {hashed_label(h)}".strip())
                     for (h, ta), (_, tb) in zip(ex.fields, ey.fields, strict=True)]
        elif isinstance(ex, ServiceEntry):
            assert isinstance(ey, ServiceEntry)
            if [n for n, _ in ex.methods] != [n for n, _ in ey.methods]:
                return differ("methods differ")
            pairs = [(ta, tb, f"{path} method {n}".strip())
                     for (n, ta), (_, tb) in zip(ex.methods, ey.methods, strict=True)]
        elif isinstance(ex, FuncEntry):
            assert isinstance(ey, FuncEntry)
            if ex.annotations != ey.annotations:
                return differ("function modes differ")
            if len(ex.args) != len(ey.args) or len(ex.results) != len(ey.results):
                return differ("function arities differ")
            pairs = [(ta, tb, f"{path} argument {k}".strip())
                     for k, (ta, tb) in enumerate(zip(ex.args, ey.args, strict=True))]
            pairs += [(ta, tb, f"{path} result {k}".strip())
                      for k, (ta, tb) in enumerate(zip(ex.results, ey.results, strict=True))]
        elif isinstance(ex, TupleEntry):
            assert isinstance(ey, TupleEntry)
            if len(ex.components) != len(ey.components):
                return differ("tuple lengths differ")
            pairs = [(ta, tb, f"{path} component {k}".strip())
                     for k, (ta, tb) in enumerate(zip(ex.components, ey.components, strict=True))]
        else:
            pairs = [(next(iter(_children(ex))), next(iter(_children(ey))), path)]
        work.extend(reversed(pairs))
    return None


# --------------------------------------------------------------------------- installed canisters


def signature_from_canister(store: Store, name: str) -> StableSignature:
    """The stable signature an installed canister registered, read from its committed heap.

    Reads only the heap pages that hold the persistent metadata and the two descriptor blobs,
    straight from the store's page tables (a page that is not stored is zero), so the canister is
    not instantiated and may be stopped. Raises ``CanisterNotFoundError``, ``CanisterStateError``
    for an empty canister, :class:`NoDescriptorError` for a module without enhanced orthogonal
    persistence or a heap without a registered type, and :class:`DescriptorError` when the
    metadata or the descriptor is corrupt.
    """
    candid, offsets = _canister_descriptor_blobs(store, name)
    return descriptor_to_signature(decode_descriptor(candid, offsets))


def _canister_descriptor_blobs(store: Store, name: str) -> tuple[bytes, bytes]:
    import sqlalchemy as sa

    from persist.errors import CanisterStateError
    from persist.host.module import EOP_SECTION
    from persist.store import db, pages, schema
    from persist.store.canisters import canister_row

    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        if row.module_hash is None:
            raise CanisterStateError(f"canister {row.name!r} is empty: install a module first (`graphcopy install`)")
        ms = schema.module_sections.c
        has_eop = conn.execute(
            sa.select(ms.name).where(ms.module_hash == row.module_hash, ms.name == EOP_SECTION)).first()
        if has_eop is None:
            raise NoDescriptorError(
                f"canister {row.name!r} runs a module without enhanced orthogonal persistence (no "
                f"'{EOP_SECTION}' section), so its heap holds no stable type descriptor")
        size = int(row.heap_pages) * pages.PAGE_SIZE
        cache: dict[int, bytes] = {}

        def read(addr: int, n: int) -> bytes:
            end = min(addr + n, size)
            if addr >= end:
                return b""
            first, last = addr // pages.PAGE_SIZE, (end - 1) // pages.PAGE_SIZE
            wanted = [p for p in range(first, last + 1) if p not in cache]
            if wanted:
                for p in wanted:
                    cache[p] = pages.ZERO_PAGE  # not stored means all zero
                cache.update(pages.read_pages(conn, pages.HEAP, row.id, wanted))
            chunk = b"".join(cache[p] for p in range(first, last + 1))
            return chunk[addr - first * pages.PAGE_SIZE : end - first * pages.PAGE_SIZE]

        try:
            return _descriptor_blobs(read, size)
        except DescriptorError as exc:
            raise type(exc)(f"canister {row.name!r}: {exc}") from None
