"""Decoding a stable type descriptor: ``decode_descriptor`` and the checks a well-formed one passes."""

from __future__ import annotations

import struct

from migrate.descriptor.format import (
    ALIAS,
    ANNOTATIONS,
    FUNC,
    MAGIC,
    OPT,
    PRIMITIVE_NAMES,
    RECORD,
    SERVICE,
    TUPLE,
    VARIANT,
    VEC,
    WEAK,
    AliasEntry,
    DescriptorTable,
    Entry,
    FuncEntry,
    OptEntry,
    RecordEntry,
    ServiceEntry,
    TupleEntry,
    TypeRef,
    VariantEntry,
    VecEntry,
    WeakEntry,
    entry_children,
)
from migrate.errors import DescriptorError

__all__ = ["decode_descriptor"]

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
    if data[:4] != MAGIC:
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
        for ref in entry_children(e):
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
