"""The stable type descriptor's table: type codes, entry classes, ``DescriptorTable`` and encoding.

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
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

import leb128

from migrate.errors import DescriptorError

__all__ = [
    "ALIAS",
    "ANNOTATIONS",
    "ANY",
    "BLOB",
    "BOOL",
    "FLOAT",
    "FUNC",
    "INT",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "MAGIC",
    "NAT",
    "NAT8",
    "NAT16",
    "NAT32",
    "NAT64",
    "NONE",
    "NULL",
    "OPT",
    "PRIMITIVE_NAMES",
    "PRINCIPAL",
    "RECORD",
    "REGION",
    "SERVICE",
    "TEXT",
    "TUPLE",
    "TypeRef",
    "VARIANT",
    "VEC",
    "WEAK",
    "AliasEntry",
    "DescriptorTable",
    "Entry",
    "FuncEntry",
    "OptEntry",
    "RecordEntry",
    "ServiceEntry",
    "TupleEntry",
    "VariantEntry",
    "VecEntry",
    "WeakEntry",
    "entry_children",
    "hashed_label",
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

MAGIC = b"DIDL"
"""The four bytes every candid data blob starts with."""
_DESCRIBE_DEPTH = 12

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


def entry_children(e: Entry) -> Iterable[TypeRef]:
    """The type references entry ``e`` holds, in the order it stores them."""
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
        out = bytearray(MAGIC)
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


def hashed_label(h: int) -> str:
    """The model's name for a label known only by its hash: ``_<hash>_``, the Candid escape for a
    numeric label, which :func:`migrate.stable_types.label_hash` maps back to ``h``."""
    return f"_{h}_"


# --------------------------------------------------------------------------- encoding


def _put_uleb(out: bytearray, value: int) -> None:
    out += leb128.u.encode(value)


def _put_sleb(out: bytearray, value: int) -> None:
    out += leb128.i.encode(value)


def _encode_entry(out: bytearray, e: Entry) -> None:
    if isinstance(e, OptEntry | VecEntry | WeakEntry | AliasEntry):
        op = {OptEntry: OPT, VecEntry: VEC, WeakEntry: WEAK, AliasEntry: ALIAS}[type(e)]
        _put_sleb(out, op)
        _put_sleb(out, next(iter(entry_children(e))))
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
