"""The binary stable type descriptor of EOP heaps (``migrate.descriptor``).

Two kinds of tests:

* byte-level ones that need no compiler: the worked example of the EOP report (§3.4), corrupt
  descriptors and corrupt persistent metadata, synthetic heaps (including a GC forwarding pointer);
* real canisters compiled by the pinned moc and installed on graphcopy: the descriptor their
  runtime registered is read back from the live heap (wasmtime memory through ctypes) and from the
  pages stored in SQL, decoded, turned into a signature, and compared with the module's own stable
  signature (``.most``) up to label hashing -- including after the incremental GC has moved the
  descriptor blobs (a ledger loaded with tens of thousands of accounts). The moc-compiled cases
  use the ``moc`` fixture; the ledger's GC test uses the committed ``examples/ledger`` build.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wasmtime

from migrate import descriptor as d
from migrate.descriptor import (
    AliasEntry,
    DescriptorError,
    DescriptorTable,
    FuncEntry,
    NoDescriptorError,
    OptEntry,
    RecordEntry,
    ServiceEntry,
    TupleEntry,
    VariantEntry,
    VecEntry,
    WeakEntry,
    decode_descriptor,
    descriptor_mismatch,
    descriptor_to_signature,
    read_persistent_descriptor,
    signature_from_canister,
    signature_to_descriptor,
)
from migrate.stable_types import (
    BLOB,
    INT,
    NAT,
    NULL,
    TEXT,
    UNIT,
    ActorType,
    ArrayType,
    ConType,
    Field,
    FuncType,
    OptType,
    Prim,
    RecordType,
    StableField,
    StableSignature,
    Tag,
    TupleType,
    TypeDef,
    VariantType,
    VarType,
    format_signature,
    label_hash,
    parse_signature,
)
from persist import api
from persist.candid import encode_args, idl_hash
from persist.errors import CanisterNotFoundError, GraphcopyError
from persist.execution import instances
from persist.session import Store, open_store
from persist.store import db
from persist.store.canisters import canister_row
from toolchain.moc import compile_motoko

EXAMPLES = Path(__file__).parent.parent / "examples"
CANISTERS = Path(__file__).parent / "canisters"

# --------------------------------------------------------------------------- the worked example (report §3.4)

#: ``persistent actor { var x : Nat; let t : (Nat, Text); var b : Blob; var v : {#a; #b : Int};
#: var r : {f : Nat; var g : [var Int]}; var o : ?Char }``, as moc 1.1 registers it.
WORKED_SOURCE = """persistent actor {
  var x : Nat = 1;
  let t : (Nat, Text) = (1, "a");
  var b : Blob = "";
  var v : {#a; #b : Int} = #a;
  var r : {f : Nat; var g : [var Int]} = {f = 1; var g = [var 1]};
  var o : ?Char = null;
};
"""
WORKED = bytes.fromhex(
    "4449444c0e"  # DIDL, 14 entries
    "6c06" "62016f0272047409760b780d"  # 0: record {b->1; o->2; r->4; t->9; v->11; x->13}
    "6eff7e"  # 1: opt Blob (-129)
    "6e03" "6e79"  # 2: opt 3; 3: opt Nat32/Char
    "6e05" "6c02667d6706"  # 4: opt 5; 5: record {f : Nat; g -> 6}
    "0107" "0108" "6d7c"  # 6: alias 7 (var field); 7: alias 8 ([var ..]); 8: vec Int
    "6e0a" "fe7e02007d0171"  # 9: opt 10; 10: tuple (Nat, Text)
    "6e0c" "6b02617f627c"  # 11: opt 12; 12: variant {a : Null; b : Int}
    "6e7d"  # 13: opt Nat
    "0100"  # main types: [0]
)
WORKED_OFFSETS = (5, 19, 22, 24, 26, 28, 34, 36, 38, 40, 42, 49, 51, 57)


def _offsets_blob(offsets: tuple[int, ...]) -> bytes:
    return b"".join(struct.pack("<Q", o) for o in offsets)


def test_worked_example_decodes_exactly() -> None:
    h = idl_hash
    table = decode_descriptor(WORKED, _offsets_blob(WORKED_OFFSETS))
    assert table.entries == (
        RecordEntry(((h("b"), 1), (h("o"), 2), (h("r"), 4), (h("t"), 9), (h("v"), 11), (h("x"), 13))),
        OptEntry(d.BLOB),
        OptEntry(3),
        OptEntry(d.NAT32),
        OptEntry(5),
        RecordEntry(((h("f"), d.NAT), (h("g"), 6))),
        AliasEntry(7),
        AliasEntry(8),
        VecEntry(d.INT),
        OptEntry(10),
        TupleEntry((d.NAT, d.TEXT)),
        OptEntry(12),
        VariantEntry(((h("a"), d.NULL), (h("b"), d.INT))),
        OptEntry(d.NAT),
    )
    assert table.main_types == (0,)
    assert table.offsets == WORKED_OFFSETS
    assert table.encode() == WORKED and table.encode_offsets() == _offsets_blob(WORKED_OFFSETS)
    assert table.describe(5) == "{_102_ : Nat; var _103_ : [var Int]}"


def test_worked_example_signature() -> None:
    sig = descriptor_to_signature(decode_descriptor(WORKED))
    n = d.hashed_label
    assert sig == StableSignature(
        version="1.0.0",
        types=(),
        post=(
            StableField(n(idl_hash("b")), BLOB),
            StableField(n(idl_hash("o")), OptType(Prim("Nat32"))),  # ?Char: Char reads as Nat32
            StableField(n(idl_hash("r")), RecordType((
                Field(n(idl_hash("f")), NAT),
                Field(n(idl_hash("g")), ArrayType(INT, mutable=True), mutable=True),
            ))),
            StableField(n(idl_hash("t")), TupleType((NAT, TEXT))),
            StableField(n(idl_hash("v")), VariantType((Tag(n(idl_hash("a")), UNIT), Tag(n(idl_hash("b")), INT)))),
            StableField(n(idl_hash("x")), NAT),
        ),
    )
    # The hashed names give their hashes back, and the signature prints and parses as moc's text does.
    assert [label_hash(f.name) for f in sig.post] == [idl_hash(c) for c in "bortvx"]
    assert parse_signature(format_signature(sig)) == sig
    # The module's own signature describes the same type (Char = Nat32, names only as hashes).
    most = parse_signature(
        "// Version: 1.0.0\nactor {\n  stable var b : Blob;\n  stable var o : ?Char;\n"
        "  stable var r : {f : Nat; var g : [var Int]};\n  stable t : (Nat, Text);\n"
        "  stable var v : {#a; #b : Int};\n  stable var x : Nat\n};\n")
    assert signature_to_descriptor(most).encode() == WORKED
    assert descriptor_mismatch(decode_descriptor(WORKED), signature_to_descriptor(sig)) is None


# --------------------------------------------------------------------------- every code, byte level

#: A table using every entry kind and every primitive code, built by hand.
ALL_CODES = DescriptorTable(
    entries=(
        RecordEntry(tuple((k, i + 1) for k, i in enumerate(range(11)))),
        OptEntry(12),  # 1
        OptEntry(13),  # 2
        OptEntry(14),  # 3
        OptEntry(15),  # 4
        OptEntry(16),  # 5
        OptEntry(17),  # 6
        OptEntry(19),  # 7
        OptEntry(20),  # 8
        OptEntry(23),  # 9
        OptEntry(24),  # 10
        OptEntry(25),  # 11
        TupleEntry(tuple(sorted(d.PRIMITIVE_NAMES))),  # 12: every primitive
        VecEntry(12),  # 13
        AliasEntry(13),  # 14: [var (...)]
        RecordEntry(((7, 14), (9, 18))),  # 15: {var _7_ : [(...)], _9_ : ...}
        VariantEntry(((1, d.NULL), (2, 15))),  # 16
        ServiceEntry((("a", 19), ("b", 20), ("c", 21), ("d", 22))),  # 17
        AliasEntry(d.NAT),  # 18: a var field of type Nat
        FuncEntry((d.NAT,), (d.TEXT,), ()),  # 19: update
        FuncEntry((), (d.NAT,), (1,)),  # 20: query
        FuncEntry((d.BLOB,), (), (2,)),  # 21: oneway
        FuncEntry((d.TEXT,), (d.TEXT, d.NAT), (3,)),  # 22: composite query
        WeakEntry(14),  # 23
        OptEntry(24),  # 24: ?(?(?...)): productive recursion through opt
        TupleEntry((25, d.INT)),  # 25: recursion through a tuple
    ),
    main_types=(0,),
    offsets=(),
)


def test_every_code_round_trips() -> None:
    data = ALL_CODES.encode()
    table = decode_descriptor(data)
    assert table.entries == ALL_CODES.entries
    assert decode_descriptor(data, table.encode_offsets()).offsets == table.offsets
    # Extended codes are two-byte SLEB128: Region -128, Blob -129, tuple -130, weak -131.
    assert bytes.fromhex("807f") in data and bytes.fromhex("ff7e") in data
    assert bytes.fromhex("fe7e") in data and bytes.fromhex("fd7e") in data
    sig = descriptor_to_signature(table)
    assert {t.name for t in sig.types} == {"T24", "T25"}  # only the recursive entries are named
    assert parse_signature(format_signature(sig)) == sig
    again = signature_to_descriptor(sig)
    assert descriptor_mismatch(table, again) is None
    assert descriptor_mismatch(again, table) is None
    funcs = [f.typ for f in sig.post if isinstance(f.typ, FuncType)]
    assert [(f.sort, f.is_async) for f in funcs] == [("shared", True), ("query", True)]
    (service,) = [f.typ for f in sig.post if isinstance(f.typ, ActorType)]
    methods = [(m.name, m.typ) for m in service.methods if isinstance(m.typ, FuncType)]
    assert [(name, f.sort, f.is_async) for name, f in methods] == [
        ("a", "shared", True), ("b", "query", True), ("c", "shared", False), ("d", "composite", True)]


def test_big_shared_dag_is_named_not_expanded() -> None:
    # type P0 = Nat; type Pi = (P(i-1), P(i-1)): written out, P40 would have 2^40 nodes.
    entries: list[Any] = [RecordEntry(((1, 1),)), OptEntry(2)]
    for i in range(2, 42):
        nxt = i + 1 if i < 41 else d.NAT
        entries.append(TupleEntry((nxt, nxt)))
    table = decode_descriptor(DescriptorTable(tuple(entries), (0,), ()).encode())
    sig = descriptor_to_signature(table)
    # Every few levels a shared entry becomes a TypeDef (at most ~64 nodes are written out per use).
    assert 4 <= len(sig.types) <= 10
    assert len(format_signature(sig)) < 20_000
    assert descriptor_mismatch(table, signature_to_descriptor(sig)) is None


def test_mismatch_is_structural_and_coinductive() -> None:
    # ?(Nat, L) with L = ?(Nat, L), once as a 2-entry cycle and once unrolled into 4 entries.
    a = DescriptorTable((RecordEntry(((5, 1),)), OptEntry(2), TupleEntry((d.NAT, 1))), (0,), ())
    b = DescriptorTable((RecordEntry(((5, 1),)), OptEntry(2), TupleEntry((d.NAT, 3)), OptEntry(4),
                         TupleEntry((d.NAT, 1))), (0,), ())
    assert descriptor_mismatch(a, b) is None
    c = DescriptorTable((RecordEntry(((5, 1),)), OptEntry(2), TupleEntry((d.NAT, 3)), OptEntry(4),
                         TupleEntry((d.INT, 1))), (0,), ())
    msg = descriptor_mismatch(a, c)
    assert msg == "field _5_ component 1 component 0: different types (Nat vs Int)"
    e = DescriptorTable((RecordEntry(((6, 1),)), OptEntry(2), TupleEntry((d.NAT, 1))), (0,), ())
    assert "labels differ (_5_, _6_)" in (descriptor_mismatch(a, e) or "")


def test_ambiguous_codes_are_read_one_way() -> None:
    # Char and Nat32 share -7, () and Null share -1: the signature says Nat32 and Null (() as a
    # variant payload), and encoding either reading gives the same bytes back.
    sig_char = StableSignature("1.0.0", (), (StableField("c", Prim("Char")), StableField("u", UNIT),
                                             StableField("v", VariantType((Tag("a", NULL),)))))
    sig_nat32 = StableSignature("1.0.0", (), (StableField("c", Prim("Nat32")), StableField("u", NULL),
                                              StableField("v", VariantType((Tag("a", UNIT),)))))
    t1, t2 = signature_to_descriptor(sig_char), signature_to_descriptor(sig_nat32)
    assert t1.encode() == t2.encode()
    back = descriptor_to_signature(t1)
    assert [f.typ for f in back.post] == [Prim("Nat32"), NULL, VariantType((Tag(d.hashed_label(idl_hash("a")), UNIT),))]


def test_var_field_of_array_and_field_of_mutable_array_encode_alike() -> None:
    h = d.hashed_label(idl_hash("f"))
    var_of_immutable = RecordType((Field("f", ArrayType(INT), mutable=True),))
    mutable_array = RecordType((Field("f", ArrayType(INT, mutable=True)),))
    t1 = signature_to_descriptor(StableSignature("1.0.0", (), (StableField("r", var_of_immutable),)))
    t2 = signature_to_descriptor(StableSignature("1.0.0", (), (StableField("r", mutable_array),)))
    assert t1.encode() == t2.encode()
    # Read back as the var field: the descriptor cannot tell which one it was.
    assert descriptor_to_signature(t1).post[0].typ == RecordType((Field(h, ArrayType(INT), mutable=True),))


def test_signature_to_descriptor_rejects_unstable_types() -> None:
    local = StableSignature("1.0.0", (), (StableField("f", FuncType("local", (), ())),))
    with pytest.raises(DescriptorError, match="not stable"):
        signature_to_descriptor(local)
    generic = StableSignature("1.0.0", (TypeDef("G", ("T",), OptType(VarType("T"))),),
                              (StableField("g", OptType(VarType("T"))),))
    with pytest.raises(DescriptorError, match="not a stable type"):
        signature_to_descriptor(generic)
    undefined = StableSignature("1.0.0", (), (StableField("u", ConType("Missing")),))
    with pytest.raises(DescriptorError, match="undefined type Missing"):
        signature_to_descriptor(undefined)


# --------------------------------------------------------------------------- corrupt descriptors


def _patch(data: bytes, old: str, new: str) -> bytes:
    o, n = bytes.fromhex(old), bytes.fromhex(new)
    assert data.count(o) == 1, old
    return data.replace(o, n)


CORRUPT: list[tuple[str, bytes, str]] = [
    ("magic", b"DIDX" + WORKED[4:], "not a stable type descriptor: candid data starts with 44494458"),
    ("empty", b"", "candid data starts with nothing"),
    ("truncated", WORKED[:43], "at byte 42: truncated opcode of entry 10 (SLEB128 runs past the end)"),
    ("short count", WORKED[:30], "type count 14 needs at least 28 more bytes, but 25 are left"),
    ("trailing", WORKED + b"\x00", "1 trailing bytes after the main types"),
    ("huge count", b"DIDL\xff\xff\xff\xff\x0f", "type count 4294967295 needs at least"),
    ("long leb", b"DIDL\x80\x80\x80\x80\x80\x01", "longer than 5 bytes"),
    ("unknown opcode", _patch(WORKED, "6d7c", "637c"), "entry 8 has unknown opcode -29"),
    ("primitive entry", _patch(WORKED, "6d7c", "7d7c"), "entry 8 is the primitive Nat (code -3)"),
    ("reference past table", _patch(WORKED, "6e0a", "6e3f"), "entry 9 refers to entry 63, but the table has 14"),
    ("unknown primitive", _patch(WORKED, "6e7d", "6e73"), "entry 13 refers to unknown primitive code -13"),
    ("unsorted labels", _patch(WORKED, "6c02667d6706", "6c02677d6606"), "label hash 102 does not follow 103"),
    ("duplicate label", _patch(WORKED, "6c02667d6706", "6c02667d6606"), "label hash 102 does not follow 102"),
    ("tuple numbering", _patch(WORKED, "fe7e02007d0171", "fe7e02007d0271"), "component 1 is numbered 2"),
    ("alias cycle", _patch(WORKED, "0107", "0106"), "entry 6 is a cycle of aliases"),
    ("bad main type", WORKED[:-1] + b"\x20", "main type 0 refers to entry 32"),
]


@pytest.mark.parametrize(("data", "message"), [(c[1], c[2]) for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_corrupt_descriptor_gives_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(DescriptorError) as err:
        decode_descriptor(data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, GraphcopyError) and err.value.exit_code == 2


def _service_table(methods: bytes, extra: bytes = b"") -> bytes:
    # entry 0: record {_1_ -> 1}; 1: opt 2; 2: service ...; 3: func () -> ()
    head = b"DIDL\x04" + bytes.fromhex("6c0101016e02") + b"\x69"
    return head + methods + bytes.fromhex("6a000000") + extra + b"\x01\x00"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_service_table(b"\x02\x01b\x03\x01a\x03"), "method 'a' does not follow 'b' in name order"),
        (_service_table(b"\x01\x02\xff\xfe\x03"), "method name b'\\xff\\xfe' is not UTF-8"),
        (_service_table(b"\x01\x01a\x01"), "method 'a' is not a function type"),
        (b"DIDL\x01" + bytes.fromhex("6a0000010401") + b"\x00", "unknown annotation 4"),
        (b"DIDL\x01" + bytes.fromhex("6a000002010201") + b"\x00", "2 annotations; moc writes at most one"),
    ],
    ids=["unsorted methods", "non-utf8 name", "method not a func", "unknown annotation", "two annotations"],
)
def test_corrupt_services_and_functions(data: bytes, message: str) -> None:
    with pytest.raises(DescriptorError, match="corrupt stable type descriptor") as err:
        decode_descriptor(data)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("offsets", "message"),
    [
        (_offsets_blob(WORKED_OFFSETS)[:-1], "has 111 bytes, not a multiple of 8"),
        (_offsets_blob(WORKED_OFFSETS[:-1]), "13 type offsets for 14 table entries"),
        (_offsets_blob((5, 19, 22, 24, 26, 28, 34, 36, 38, 40, 42, 49, 51, 56)),
         "type offset 13 is 56, but entry 13 starts at byte 57"),
    ],
    ids=["ragged", "too few", "wrong"],
)
def test_offsets_are_checked(offsets: bytes, message: str) -> None:
    with pytest.raises(DescriptorError) as err:
        decode_descriptor(WORKED, offsets)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (DescriptorTable((RecordEntry(()),), (), ()), "main types are [], expected [0]"),
        (DescriptorTable((OptEntry(d.NAT),), (0,), ()), "entry 0 (the actor's stable record) is not a record"),
        (DescriptorTable((RecordEntry(((1, d.NAT),)),), (0,), ()),
         "stable variable _1_ has type Nat, but moc wraps every stable variable in an option"),
        (DescriptorTable((RecordEntry(((1, 1),)), OptEntry(2), AliasEntry(d.NAT)), (0,), ()),
         "entry 2 is an alias outside a record field, so it must mark a mutable array"),
        (DescriptorTable((RecordEntry(((1, 1),)), OptEntry(0)), (0,), ()), "refers back to the actor's stable record"),
    ],
    ids=["no main type", "main not a record", "field not an option", "stray alias", "actor record reused"],
)
def test_not_a_persistence_descriptor(table: DescriptorTable, message: str) -> None:
    with pytest.raises(DescriptorError) as err:
        descriptor_to_signature(decode_descriptor(table.encode()))
    assert message in str(err.value)


# --------------------------------------------------------------------------- synthetic heaps

M = d.METADATA_ADDRESS
CANDID_AT = 0x500000
OFFSETS_AT = 0x500100


def _blob(value_at: int, payload: bytes, *, tag: int = 25, forward: int | None = None) -> tuple[int, bytes]:
    skewed = value_at - 1
    header = struct.pack("<3Q", tag, skewed if forward is None else forward, len(payload))
    return value_at, header + payload


def _heap(*, fingerprint: str = d.PERSISTENCE_FINGERPRINT, version: int = 1, candid: int | None = None,
          offsets: int | None = None, objects: tuple[tuple[int, bytes], ...] | None = None,
          size: int = 0x510000) -> bytearray:
    heap = bytearray(size)
    heap[M : M + 128] = fingerprint.encode("utf-32-le").ljust(128, b"\x00")[:128]
    candid = CANDID_AT - 1 if candid is None else candid
    offsets = OFFSETS_AT - 1 if offsets is None else offsets
    struct.pack_into("<4Q", heap, M + 128, version, 0, candid, offsets)
    if objects is None:
        objects = (_blob(CANDID_AT, WORKED), _blob(OFFSETS_AT, _offsets_blob(WORKED_OFFSETS)))
    for at, data in objects:
        heap[at : at + len(data)] = data
    return heap


def test_reads_every_kind_of_heap() -> None:
    heap = _heap()
    expected = (WORKED, _offsets_blob(WORKED_OFFSETS))
    assert read_persistent_descriptor(heap) == expected
    assert read_persistent_descriptor(bytes(heap)) == expected
    assert read_persistent_descriptor(memoryview(heap)) == expected
    assert read_persistent_descriptor(np.frombuffer(heap, dtype=np.uint8)) == expected
    assert read_persistent_descriptor(np.frombuffer(heap, dtype=np.uint64)) == expected  # cast to bytes
    assert read_persistent_descriptor((ctypes.c_ubyte * len(heap)).from_buffer(heap)) == expected
    calls: list[tuple[int, int]] = []

    def reader(addr: int, n: int) -> bytes:
        calls.append((addr, n))
        return bytes(heap[addr : addr + n])

    assert read_persistent_descriptor(reader) == expected
    assert calls[0] == (M, 160) and len(calls) == 5  # metadata, then header + payload of each blob


def test_follows_a_gc_forwarding_pointer() -> None:
    moved = 0x508000
    heap = _heap(objects=(
        _blob(CANDID_AT, b"stale copy", forward=moved - 1),  # evacuated: the header forwards
        _blob(moved, WORKED),
        _blob(OFFSETS_AT, _offsets_blob(WORKED_OFFSETS)),
    ))
    assert read_persistent_descriptor(heap)[0] == WORKED


@pytest.mark.parametrize(
    ("heap", "error", "message"),
    [
        (bytearray(0x100000), NoDescriptorError, "the heap has 1048576 bytes"),
        (bytearray(0x490000), NoDescriptorError, "it is uninitialised (all zero)"),
        (_heap(fingerprint="MOTOKO ORTHOGONAL PERSISTENCE 32"), NoDescriptorError,
         "fingerprint is 'MOTOKO ORTHOGONAL PERSISTENCE 32'"),
        (_heap(version=2), DescriptorError, "unsupported persistent memory version 2"),
        (_heap(candid=0, offsets=0), NoDescriptorError, "holds no stable type descriptor"),
        (_heap(candid=0x500002), DescriptorError, "candid data is 0x500002 in the persistent metadata, not a pointer"),
        (_heap(candid=0x1000 - 1), DescriptorError, "points to 0x1000, outside the dynamic heap"),
        (_heap(offsets=0x600000 - 1), DescriptorError, "type offsets points to 0x600000, outside the dynamic heap"),
        (_heap(objects=(_blob(CANDID_AT, WORKED, tag=27),)), DescriptorError,
         "candid data at 0x500000 is not a Blob: object tag 27, expected 25"),
        (_heap(objects=(_blob(CANDID_AT, WORKED, forward=CANDID_AT - 1 + 0x100),
                        _blob(OFFSETS_AT, b"", forward=CANDID_AT - 1))), DescriptorError,
         "more than 4 forwarding pointers in a row"),
        (_heap(objects=((CANDID_AT, struct.pack("<3Q", 25, CANDID_AT - 1, 1 << 40)),)), DescriptorError,
         "claims 1099511627776 bytes, past the end of the heap"),
    ],
    ids=["too small", "zero", "fingerprint", "version", "none registered", "not a pointer", "below heap",
         "past end", "wrong tag", "forwarding loop", "huge length"],
)
def test_bad_metadata_gives_a_clear_error(heap: bytearray, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as err:
        read_persistent_descriptor(heap)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- real canisters

#: Stable variables of every kind moc can register: together they use every entry kind, every
#: primitive code and every function annotation (checked by test_real_actors_cover_every_code).
MUTABILITY_SOURCE = """import Prim "mo:prim";
persistent actor {
  var a : {var f : [Int]} = {var f = []};
  var b : {f : [var Int]} = {f = [var]};
  var c : {var f : [var Int]} = {var f = [var]};
  let d : [var Int] = [var 1, 2];
  var e : ?Char = ?'x';
  var e2 : ?Nat32 = null;
  var u : () = ();
  var n : Null = null;
  var oo : ???Nat = ??null;
  var p : Principal = Prim.principalOfBlob("\\01");
  var any : Any = ();
  var w : weak [var Nat64] = Prim.allocWeakRef(Prim.Array_init<Nat64>(3, 1));
  var vt : {#x; #y : (); #z : Null} = #x;
  var blobs : [Blob] = ["\\00\\01"];
};
"""

TYPES_SOURCE = """import Prim "mo:prim";
persistent actor Self {
  type List<T> = ?(T, List<T>);
  type Tree = {#leaf; #node : (Tree, Nat, Tree)};
  type Node = {key : Nat; var next : ?Node; var arr : [var ?Node]};
  type Svc = actor {
    get : shared query () -> async Nat;
    put : shared Nat -> ();
    cq : shared composite query Text -> async (Text, Nat);
    upd : shared (Nat, Text) -> async ();
    again : shared Svc -> async ?Svc;
  };
  var l : List<Text> = ?("a", null);
  var t : Tree = #node(#leaf, 1, #leaf);
  var n : ?Node = null;
  var s : ?Svc = null;
  var f : ?(shared query () -> async Nat) = null;
  public func keep() : async () { f := ?count };
  var g : ?(shared Blob -> ()) = null;
  var r : ?Region = null;
  var tup : (Nat, Text, (Int8, Int16, Int32, Int64), (Nat8, Nat16, Nat32, Nat64), Float, Bool) =
    (0, "", (0, 0, 0, 0), (0, 0, 0, 0), 0.5, false);
  var none : ?None = null;
  var nested : ?(?{a : ?[?Text]; b : [(Nat, ?Blob)]}) = null;
  public query func count() : async Nat { 42 };
};
"""


def _big_source() -> str:
    """Many stable variables, wide records and a DAG whose written-out form has 2^16 nodes."""
    lines = ["persistent actor {", "  type P0 = Nat;"]
    lines += [f"  type P{i} = (P{i - 1}, P{i - 1});" for i in range(1, 17)]
    lines.append("  var dag : ?P16 = null;")
    for i in range(60):
        lines.append(f"  var v{i} : {{a{i} : Nat; b : [?Text]; var c : {{#x{i}; #y : Int{8 * 2 ** (i % 4)}}}}} ="
                     f" {{a{i} = {i}; b = []; var c = #x{i}}};")
    fields = "; ".join(f"f{k} : ?Nat{8 * 2 ** (k % 4)}" for k in range(120))
    lines.append(f"  var wide : ?{{{fields}}} = null;")
    lines.append("};")
    return "\n".join(lines) + "\n"


ACTORS: dict[str, Any] = {
    "worked": WORKED_SOURCE,
    "mutability": MUTABILITY_SOURCE,
    "types": TYPES_SOURCE,
    "big": _big_source,
    "ledger": EXAMPLES / "ledger" / "ledger.mo",
}


def _compile(name: str) -> Any:
    src = ACTORS[name]
    if callable(src):
        src = src()
    return compile_motoko(src, name=name) if isinstance(src, str) else compile_motoko(src)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Store]:
    with open_store(sqlite_url) as st:
        yield st


def _live_heap(store: Store, name: str) -> Any:
    """The canister's wasmtime memory as a ctypes byte array (valid until the next message)."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    base, length = instances.live_canister(store, row).heap_span()
    return (ctypes.c_ubyte * length).from_address(base)


def _metadata_pointers(heap: Any) -> tuple[int, int]:
    return struct.unpack("<2Q", bytes(heap[M + 144 : M + 160]))


def _check_against_module(table: DescriptorTable, most_text: str, *, exact: bool) -> None:
    most = parse_signature(most_text)
    from_most = signature_to_descriptor(most)
    assert descriptor_mismatch(table, from_most) is None
    assert descriptor_mismatch(from_most, table) is None
    if exact:  # moc's memo keys are internal type identities; .most text usually reproduces them
        assert from_most.encode() == table.encode()
    decoded = descriptor_to_signature(table)
    assert sorted(label_hash(f.name) for f in decoded.post) == sorted(label_hash(f.name) for f in most.post)
    assert sorted(label_hash(f.name) for f in most.post) == sorted(
        idl_hash(f.name) for f in most.post if not f.name.endswith("_"))
    assert descriptor_mismatch(table, signature_to_descriptor(decoded)) is None
    assert parse_signature(format_signature(decoded)) == decoded


@pytest.mark.parametrize("actor", list(ACTORS))
def test_real_actor_descriptor_round_trips(actor: str, store: Store, moc: None) -> None:
    compiled = _compile(actor)
    api.install(store, actor, compiled.wasm)
    heap = _live_heap(store, actor)
    candid, offsets = read_persistent_descriptor(heap)  # present right after install
    table = decode_descriptor(candid, offsets)
    assert table.encode() == candid and table.encode_offsets() == offsets
    candid_ptr, offsets_ptr = _metadata_pointers(heap)
    assert candid_ptr & 7 == 7 and candid_ptr + 1 >= 5 * 2**20  # skewed, in the dynamic heap
    assert struct.unpack("<2Q", bytes(heap[candid_ptr + 1 : candid_ptr + 17])) == (25, candid_ptr)
    _check_against_module(table, compiled.most, exact=actor != "ledger")
    # The stored pages say the same as the live heap, without instantiating the canister.
    assert signature_from_canister(store, actor) == descriptor_to_signature(table)


def test_real_actors_cover_every_code(store: Store, moc: None) -> None:
    codes: set[int] = set()
    annotations: set[tuple[int, ...]] = set()
    for actor in ("mutability", "types"):
        compiled = _compile(actor)
        api.install(store, actor, compiled.wasm)
        table = decode_descriptor(*read_persistent_descriptor(_live_heap(store, actor)))
        for e in table.entries:
            codes.add({OptEntry: d.OPT, VecEntry: d.VEC, RecordEntry: d.RECORD, VariantEntry: d.VARIANT,
                       FuncEntry: d.FUNC, ServiceEntry: d.SERVICE, TupleEntry: d.TUPLE, WeakEntry: d.WEAK,
                       AliasEntry: d.ALIAS}[type(e)])
            codes.update(r for r in d.entry_children(e) if r < 0)
            if isinstance(e, FuncEntry):
                annotations.add(e.annotations)
    assert codes >= set(d.PRIMITIVE_NAMES) | {d.OPT, d.VEC, d.RECORD, d.VARIANT, d.FUNC, d.SERVICE, d.TUPLE,
                                              d.WEAK, d.ALIAS}
    assert annotations == {(), (1,), (2,), (3,)}


def test_char_and_nat32_unit_and_null_are_one_code(store: Store, moc: None) -> None:
    one = compile_motoko("persistent actor { var c : Char = 'a'; var u : () = () };", name="one")
    two = compile_motoko("persistent actor { var c : Nat32 = 1; var u : Null = null };", name="two")
    api.install(store, "one", one.wasm)
    first = read_persistent_descriptor(_live_heap(store, "one"))
    api.install(store, "two", two.wasm)
    assert read_persistent_descriptor(_live_heap(store, "two")) == first
    sig = signature_from_canister(store, "one")
    assert [f.typ for f in sig.post] == [Prim("Nat32"), NULL]


def test_migration_actor_registers_its_post_type_on_install(store: Store, moc: None) -> None:
    src = """(with migration = func (old : { var a : Nat; b : Text }) : { var c : Int } = { var c = old.a })
persistent actor { var c : Int = 0; var d : ?Char = null };
"""
    compiled = compile_motoko(src, name="mig")
    api.install(store, "mig", compiled.wasm)
    table = decode_descriptor(*read_persistent_descriptor(_live_heap(store, "mig")))
    most = parse_signature(compiled.most)
    assert most.pre is not None
    assert descriptor_mismatch(table, signature_to_descriptor(most)) is None
    assert descriptor_mismatch(table, signature_to_descriptor(most, pre=True)) is not None


def test_descriptor_survives_gc_moving_it(db_url: str) -> None:
    # The ledger (committed .wasm/.most: no compiler needed) allocates ~7 KiB per account; after a
    # few tens of thousands the incremental GC evacuates the first partition, descriptor included.
    wasm = (EXAMPLES / "ledger" / "ledger.wasm").read_bytes()
    most = (EXAMPLES / "ledger" / "ledger.most").read_text()
    with open_store(db_url) as st:
        api.install(st, "ledger", wasm)
        heap = _live_heap(st, "ledger")
        before = read_persistent_descriptor(heap)
        pointers = _metadata_pointers(heap)
        load = encode_args("(2000 : nat, 7 : nat)", None)
        for _ in range(40):
            api.call(st, "ledger", "load", load)
            if _metadata_pointers(_live_heap(st, "ledger")) != pointers:
                break
        heap = _live_heap(st, "ledger")
        moved = _metadata_pointers(heap)
        assert moved[0] != pointers[0] and moved[1] != pointers[1], "the GC never moved the descriptor blobs"
        assert read_persistent_descriptor(heap) == before
        table = decode_descriptor(*before)
        _check_against_module(table, most, exact=False)
    with open_store(db_url) as st:  # a new store: pages from SQL only
        assert signature_from_canister(st, "ledger") == descriptor_to_signature(table)


def _with_custom_section(wasm: bytes, name: str) -> bytes:
    raw = name.encode()
    body = bytes([len(raw)]) + raw
    return wasm + bytes([0, len(body)]) + body


def test_signature_from_canister_errors(store: Store) -> None:
    plain = bytes(wasmtime.wat2wasm((CANISTERS / "system_api.wat").read_text()))
    api.install(store, "plain", plain)
    with pytest.raises(NoDescriptorError, match="'plain' runs a module without enhanced orthogonal persistence"):
        signature_from_canister(store, "plain")
    # Claims EOP but its heap has no Motoko runtime metadata.
    api.install(store, "fake", _with_custom_section(plain, "icp:private enhanced-orthogonal-persistence"))
    with pytest.raises(NoDescriptorError, match="canister 'fake': no EOP persistent metadata"):
        signature_from_canister(store, "fake")
    with pytest.raises(CanisterNotFoundError):
        signature_from_canister(store, "nobody")


def test_deep_and_long_tables_stay_linear() -> None:
    # A 5000-deep ?...?Nat and a 5000-long alias chain: no recursion limit, no quadratic walk.
    deep = DescriptorTable((RecordEntry(((1, 1),)), *(OptEntry(k + 1) for k in range(1, 5000)), OptEntry(d.NAT)),
                           (0,), ())
    table = decode_descriptor(deep.encode())
    sig = descriptor_to_signature(table)
    assert len(sig.types) > 100  # cut every few dozen levels into named types
    assert descriptor_mismatch(table, signature_to_descriptor(sig)) is None
    assert table.describe().endswith("…}")
    chain = DescriptorTable((RecordEntry(((1, 1),)), OptEntry(2), *(AliasEntry(i + 3) for i in range(5000)),
                             VecEntry(d.NAT)), (0,), ())
    assert len(decode_descriptor(chain.encode())) == 5003
    looped = DescriptorTable((*chain.entries[:-1], AliasEntry(2)), (0,), ())
    with pytest.raises(DescriptorError, match="entry 2 is a cycle of aliases"):
        decode_descriptor(looped.encode())
