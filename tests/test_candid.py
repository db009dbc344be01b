"""Tests for persist.candid (Candid text, binary codec, dfx-style printing) and persist.principal."""

from __future__ import annotations

import hashlib
import json
import math
import time

import pytest

from persist.candid import (
    Field,
    Func,
    FuncRef,
    MethodSig,
    Opt,
    Prim,
    Record,
    Ref,
    Service,
    ServiceInterface,
    Some,
    Variant,
    Vec,
    decode_args,
    encode_args,
    encode_values,
    format_args,
    format_type,
    format_values,
    idl_hash,
    parse_service,
    parse_type,
    values_to_json,
)
from persist.errors import CandidError, GraphcopyError
from persist.principal import Principal

NAT, TEXT, INT = Prim("nat"), Prim("text"), Prim("int")


def T(text: str) -> list:
    """The single type ``text`` as an argument type list."""
    return [parse_type(text)]


def round_trip(text: str, types: list | None) -> tuple[bytes, str]:
    data = encode_args(text, types)
    printed = format_args(data, types)
    assert encode_args(printed, types) == data, printed
    assert format_args(encode_args(printed, types), types) == printed
    return data, printed


# ---------------------------------------------------------------------------------------------
# Principals


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("aaaaa-aa", b""),
        ("2vxsx-fae", b"\x04"),
        ("rwlgt-iiaaa-aaaaa-aaaaa-cai", bytes(8) + b"\x01\x01"),
        ("rrkah-fqaaa-aaaaa-aaaaq-cai", bytes(7) + b"\x01\x01\x01"),
        ("ryjl3-tyaaa-aaaaa-aaaba-cai", bytes(7) + b"\x02\x01\x01"),
        ("wy6px-tibai-bqi", bytes.fromhex("01020304")),
    ],
)
def test_principal_known_pairs(text: str, raw: bytes) -> None:
    assert Principal.from_text(text).raw == raw
    assert Principal(raw).to_text() == text
    assert str(Principal(raw)) == text


def test_principal_constructors() -> None:
    assert Principal.anonymous().to_text() == "2vxsx-fae"
    assert Principal.anonymous().is_anonymous
    assert Principal.management_canister().to_text() == "aaaaa-aa"
    assert Principal.from_canister_index(0).to_text() == "rwlgt-iiaaa-aaaaa-aaaaa-cai"
    assert Principal.from_canister_index(1).to_text() == "rrkah-fqaaa-aaaaa-aaaaq-cai"
    assert Principal.from_canister_index(2).to_text() == "ryjl3-tyaaa-aaaaa-aaaba-cai"
    assert Principal.from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").canister_index() == 2
    assert Principal.anonymous().canister_index() is None
    key = bytes(range(44))
    p = Principal.self_authenticating(key)
    assert p.raw == hashlib.sha224(key).digest() + b"\x02"
    assert len(p.raw) == 29
    assert Principal.from_text(p.to_text()) == p
    assert Principal.from_hex("0a").raw == b"\x0a"


def test_principal_text_is_case_insensitive_and_hashable() -> None:
    upper = Principal.from_text("RYJL3-TYAAA-AAAAA-AAABA-CAI")
    assert upper == Principal.from_text("ryjl3-tyaaa-aaaaa-aaaba-cai")
    assert len({upper, Principal.from_canister_index(2)}) == 1
    assert repr(upper) == "Principal('ryjl3-tyaaa-aaaaa-aaaba-cai')"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ryjl3-tyaaa-aaaaa-aaaba-cab", "checksum mismatch"),
        ("ryjl3tyaaa-aaaaa-aaaba-cai", "not in canonical form"),
        ("aaaaa-ab", "not in canonical form"),
        ("abc!", "not in the base32 alphabet"),
        ("", "empty"),
        ("aa", "too short"),
    ],
)
def test_principal_bad_text(text: str, message: str) -> None:
    with pytest.raises(CandidError, match=message) as info:
        Principal.from_text(text)
    assert "\n" not in str(info.value)


def test_principal_limits() -> None:
    with pytest.raises(CandidError, match="at most 29 bytes"):
        Principal(bytes(30))
    with pytest.raises(CandidError, match="canister index"):
        Principal.from_canister_index(-1)
    assert Principal(bytes(29)).to_text().count("-") == 62 // 6


# ---------------------------------------------------------------------------------------------
# Hashes and exact bytes


def test_idl_hash() -> None:
    assert idl_hash("id") == 23515
    assert idl_hash("name") == 1224700491
    assert idl_hash("foo") == 5097222
    assert idl_hash("bar") == 4895187
    assert idl_hash("") == 0


def test_exact_bytes_of_simple_arguments() -> None:
    # DIDL, empty type table, 2 arguments: nat (0x7d) and text (0x71), then 42 and "x".
    assert encode_args('(42 : nat, "x")', None) == bytes.fromhex("4449444c00027d712a0178")
    assert encode_args("()", None) == b"DIDL\x00\x00"
    assert encode_args("", None) == b"DIDL\x00\x00"
    # A plain number without types is an int (sleb128): -1 is 0x7f.
    assert encode_args("(-1)", None) == b"DIDL\x00\x01\x7c\x7f"
    # nat 128 is leb128 80 01; typed by the method, a plain number takes the method's type.
    assert encode_args("(128)", [NAT]) == b"DIDL\x00\x01\x7d\x80\x01"
    assert encode_args("(300)", [Prim("nat16")]) == b"DIDL\x00\x01\x7a\x2c\x01"
    # opt nat: one table entry (6e 7d), argument type 0, value present (01) 3.
    assert encode_args("(opt 3)", T("opt nat")) == bytes.fromhex("4449444c016e7d01000103")
    # A record's fields go by field id: id (23515) before name (1224700491).
    assert encode_args('(record { name = "x"; id = 1 })', T("record { id : nat; name : text }")) == (
        bytes.fromhex("4449444c016c02dbb7017dcbe4fdc7047101000101") + b"x"
    )


def test_recursive_type_table() -> None:
    svc = parse_service("type List = opt record { head : int; tail : List }; service : { f : (List) -> () }")
    types = svc.methods["f"].args
    data = encode_args("(opt record { head = 1; tail = opt record { head = 2; tail = null } })", types)
    # Two entries: 0 = opt 1, 1 = record { head : int; tail : 0 } -- the recursion points back.
    assert data.startswith(bytes.fromhex("4449444c026e016c02a0d2aca8047c90eddae7040001"))
    assert decode_args(data, types) == [{"head": 1, "tail": {"head": 2, "tail": None}}]


# ---------------------------------------------------------------------------------------------
# Round trips for every kind of type, printed the way dfx prints them


ROUND_TRIPS = [
    ("null", "(null)", "(null : null)"),
    ("bool", "(true)", "(true)"),
    ("bool", "false", "(false)"),
    ("nat", "(0)", "(0 : nat)"),
    ("nat", "(1_000_000)", "(1_000_000 : nat)"),
    ("nat", "(0x10)", "(16 : nat)"),
    ("nat", "(340282366920938463463374607431768211456)",
     "(340_282_366_920_938_463_463_374_607_431_768_211_456 : nat)"),
    ("int", "(-1_000)", "(-1_000 : int)"),
    ("int", "(-123456789012345678901234567890)", "(-123_456_789_012_345_678_901_234_567_890 : int)"),
    ("nat8", "(255)", "(255 : nat8)"),
    ("nat16", "(65535)", "(65_535 : nat16)"),
    ("nat32", "(4294967295)", "(4_294_967_295 : nat32)"),
    ("nat64", "(18446744073709551615)", "(18_446_744_073_709_551_615 : nat64)"),
    ("int8", "(-128)", "(-128 : int8)"),
    ("int16", "(-32768)", "(-32_768 : int16)"),
    ("int32", "(-2147483648)", "(-2_147_483_648 : int32)"),
    ("int64", "(-9223372036854775808)", "(-9_223_372_036_854_775_808 : int64)"),
    ("float32", "(1.5)", "(1.5 : float32)"),
    ("float32", "(0.1)", "(0.1 : float32)"),
    ("float32", "(3)", "(3.0 : float32)"),
    ("float64", "(-0.000001)", "(-0.000001 : float64)"),
    ("float64", "(1e21)", "(1000000000000000000000.0 : float64)"),
    ("float64", "(2.5e-8)", "(0.000000025 : float64)"),
    ("float64", "(-inf)", "(-inf : float64)"),
    ("text", '("")', '("")'),
    ("text", '("a\\"b\\\\c\\n\\t\\u{e9}\\u{1F600}")', '("a\\"b\\\\c\\n\\té😀")'),
    ("text", '("it\'s")', '("it\\\'s")'),
    ("text", '("\\00\\7f")', '("\\00\\u{7f}")'),
    ("text", '("\\c3\\a9")', '("é")'),
    ("reserved", "(null)", "(null : reserved)"),
    ("reserved", '("anything")', "(null : reserved)"),
    ("empty", "", None),  # no value: only as an omitted argument it cannot be
    ("principal", '(principal "aaaaa-aa")', '(principal "aaaaa-aa")'),
    ("opt nat", "(null)", "(null)"),
    ("opt nat", "(opt 3)", "(opt (3 : nat))"),
    ("opt text", '(opt "x")', '(opt "x")'),
    ("opt opt nat", "(opt null)", "(opt null)"),
    ("opt opt nat", "(opt opt 5)", "(opt opt (5 : nat))"),
    ("opt null", "(opt null)", "(opt (null : null))"),
    ("vec nat", "(vec {})", "(vec {})"),
    ("vec nat", "(vec { 1; 2; 3 })", "(vec { 1 : nat; 2 : nat; 3 : nat })"),
    ("vec text", '(vec { "a"; "b"; })', '(vec { "a"; "b" })'),
    ("vec vec int8", "(vec { vec { -1 }; vec {} })", "(vec { vec { -1 : int8 }; vec {} })"),
    ("blob", '(blob "hello")', '(blob "hello")'),
    ("blob", '(blob "\\00\\ff")', '(blob "\\00\\ff")'),
    ("blob", "(vec { 104; 105 })", '(blob "hi")'),
    ("blob", '(blob "")', '(blob "")'),
    ("blob", '(blob "a\\tb\\"")', '(blob "a\\09b\\22")'),
    ("vec nat8", '(blob "\\01\\02")', '(blob "\\01\\02")'),
    ("record {}", "(record {})", "(record {})"),
    ("record { nat; text }", '(record { 1; "x" })', '(record { 1 : nat; "x" })'),
    ("record { nat; text }", '(record { 0 = 1; 1 = "x" })', '(record { 1 : nat; "x" })'),
    ("record { id : nat; name : text }", '(record { name = "x"; id = 1 })',
     '(record { id = 1 : nat; name = "x" })'),
    ("record { id : nat; 5 : bool }", "(record { id = 1; 5 = true })", "(record { 5 = true; id = 1 : nat })"),
    ("record { id : nat; 5 : bool }", "(record { 23515 = 1; 5 = true })",
     "(record { 5 = true; id = 1 : nat })"),
    ("record { 0 : nat; 2 : nat }", "(record { 0 = 1; 2 = 2 })", "(record { 0 = 1 : nat; 2 = 2 : nat })"),
    ('record { "first name" : text; nat : nat }', '(record { "first name" = "A"; nat = 1 })',
     '(record { "nat" = 1 : nat; "first name" = "A" })'),
    ("record { a : opt nat; b : null; c : reserved }", "(record {})",
     "(record { a = null; b = null : null; c = null : reserved })"),
    ("variant { ok : nat; err : text }", "(variant { ok = 5 })", "(variant { ok = 5 : nat })"),
    ("variant { ok : nat; err : text }", '(variant { err = "bad" })', '(variant { err = "bad" })'),
    ("variant { none; some : nat }", "(variant { none })", "(variant { none })"),
    ("variant { none; some : nat }", "(variant { none; })", "(variant { none })"),
    ("variant { 0 : nat; 1 }", "(variant { 1 })", "(variant { 1 })"),
    ("service { m : (nat) -> () }", '(service "aaaaa-aa")', '(service "aaaaa-aa")'),
    ("func (nat) -> (nat) query", '(func "2vxsx-fae".get)', '(func "2vxsx-fae".get)'),
    ("func () -> ()", '(func "aaaaa-aa"."a b")', '(func "aaaaa-aa"."a b")'),
]


@pytest.mark.parametrize(("type_text", "value_text", "printed"), ROUND_TRIPS)
def test_round_trip_every_type(type_text: str, value_text: str, printed: str | None) -> None:
    types = T(type_text)
    if printed is None:
        with pytest.raises(CandidError, match="missing argument 1 of type empty"):
            encode_args(value_text, types)
        return
    data, out = round_trip(value_text, types)
    assert out == printed
    # The untyped rendering re-encodes without error too (numbers carry annotations).
    encode_args(format_args(data, None), None)


def test_round_trip_nan() -> None:
    data, out = round_trip("(NaN)", T("float64"))
    assert out == "(NaN : float64)"
    assert math.isnan(decode_args(data, T("float64"))[0])


def test_untyped_encoding_infers_types_like_didc() -> None:
    data, out = round_trip('(42 : nat, "x", 1.5, -3, true, null, opt (5 : nat8), vec { 1; 2 })', None)
    assert out == (
        '(\n  42 : nat,\n  "x",\n  1.5 : float64,\n  -3 : int,\n  true,\n  null : null,\n'
        "  opt (5 : nat8),\n  vec { 1 : int; 2 : int },\n)"
    )
    assert decode_args(data, None) == [42, "x", 1.5, -3, True, None, 5, [1, 2]]
    _, out = round_trip('record { 1; "x" }', None)
    assert out == '(record { 1 : int; "x" })'
    _, out = round_trip('(principal "aaaaa-aa", service "2vxsx-fae", func "aaaaa-aa".foo)', None)
    assert out == '(principal "aaaaa-aa", service "2vxsx-fae", func "aaaaa-aa".foo)'
    _, out = round_trip("(variant { ok = (5 : nat) }, (3 : nat) : int, vec { (1 : nat); 2 })", None)
    assert out == "(variant { 24_860 = 5 : nat }, 3 : int, vec { 1 : nat; 2 : nat })"


def test_untyped_decode_shows_field_ids() -> None:
    data = encode_args('(record { id = 1; name = "x" })', T("record { id : nat; name : text }"))
    assert format_args(data, None) == '(record { 23_515 = 1 : nat; 1_224_700_491 = "x" })'
    assert decode_args(data, None) == [{23515: 1, 1224700491: "x"}]


def test_text_syntax_details() -> None:
    types = [NAT, TEXT]
    expected = encode_args('(42, "x")', types)
    for text in [
        '(42, "x",)',
        '( 42 , "x" )',
        '(42 /* the answer */, // comment\n "x")',
        '((42), ("x"))',
        '(4_2 : nat, "x" : text)',
        '(0x2a, "\\78")',
        '(0X2A, "\\u{78}")',
        '(+42, "x")',
    ]:
        assert encode_args(text, types) == expected, text
    assert encode_args("42", [NAT]) == encode_args("(42)", [NAT])
    f64 = Prim("float64")
    data = encode_args("(-0x10, .5, 1., 2e3)", [INT, f64, f64, f64])
    assert decode_args(data, None) == [-16, 0.5, 1.0, 2000.0]


def test_omitted_trailing_optional_arguments() -> None:
    types = [NAT, parse_type("opt text"), Prim("null"), Prim("reserved")]
    assert decode_args(encode_args("(1)", types), types) == [1, None, None, None]


def test_type_names_in_annotations() -> None:
    svc = parse_service("type Id = nat; type R = record { id : Id }; service : { f : (R) -> () }")
    types = svc.methods["f"].args
    assert encode_args("(record { id = 7 } : R)", types) == encode_args("(record { id = 7 })", types)
    assert encode_args("(record { id = (7 : Id) })", types) == encode_args("(record { id = 7 })", types)


# ---------------------------------------------------------------------------------------------
# Layout: multi-line values and long vectors, as candid's pretty printer lays them out


def test_long_values_break_over_lines() -> None:
    types = T("record { id : nat; owner : opt principal; name : text; tags : vec text }")
    _, out = round_trip(
        '(record { id = 1; name = "x"; tags = vec { "a"; "b" }; owner = opt principal "aaaaa-aa" })', types
    )
    assert out == (
        "(\n"
        "  record {\n"
        "    id = 1 : nat;\n"
        '    owner = opt principal "aaaaa-aa";\n'
        '    name = "x";\n'
        '    tags = vec { "a"; "b" };\n'
        "  },\n"
        ")"
    )


def test_nested_layout_keeps_short_groups_flat() -> None:
    svc = parse_service(
        "type Tree = variant { leaf; node : record { Tree; nat; Tree } }; service : { f : (Tree) -> () }"
    )
    types = svc.methods["f"].args
    _, out = round_trip(
        "(variant { node = record { variant { leaf }; 5; variant { node = record { variant { leaf }; 6; "
        "variant { leaf } } } } })",
        types,
    )
    assert out == (
        "(\n"
        "  variant {\n"
        "    node = record {\n"
        "      variant { leaf };\n"
        "      5 : nat;\n"
        "      variant { node = record { variant { leaf }; 6 : nat; variant { leaf } } };\n"
        "    }\n"
        "  },\n"
        ")"
    )


def test_vec_of_more_than_ten_elements_prints_on_one_line() -> None:
    _, out = round_trip("(vec { 1; 2; 3; 4; 5; 6; 7; 8; 9; 10; 11 })", T("vec nat"))
    assert out == (
        "(\n  vec { 1 : nat; 2 : nat; 3 : nat; 4 : nat; 5 : nat; 6 : nat; 7 : nat; 8 : nat; 9 : nat; "
        "10 : nat; 11 : nat;},\n)"
    )
    _, out = round_trip("(vec { 1; 2; 3; 4; 5; 6; 7; 8; 9; 10; 11 })", T("vec nat8"))
    assert out == '(blob "\\01\\02\\03\\04\\05\\06\\07\\08\\09\\0a\\0b")'


def test_deeply_nested_values_round_trip() -> None:
    types = T("opt opt opt opt opt opt opt opt opt opt opt opt nat")
    _, out = round_trip("(opt opt opt opt opt opt opt opt opt opt opt opt 1)", types)
    assert out == "(opt opt opt opt opt opt opt opt opt opt opt opt (1 : nat))"
    svc = parse_service("type L = opt record { int; L }; service : { f : (L) -> () }")
    text = "(" + "opt record { 1; " * 15 + "null" + " }" * 15 + ")"
    data, out = round_trip(text, svc.methods["f"].args)
    assert "record { 1 : int; opt record { 1 : int;" in out  # past depth 10: candid's compact form


# ---------------------------------------------------------------------------------------------
# Errors for bad input: one line, saying what and where


@pytest.mark.parametrize(
    ("text", "types", "message"),
    [
        ('(42, "x"', [NAT, TEXT], r"expected ',' or '\)' but the text ended \(unbalanced parentheses"),
        ('(42, "x"))', [NAT, TEXT], r"unexpected '\)' after the arguments"),
        ("(record { a = 1 )", None, "expected ';' or '}', found '\\)'"),
        ('("x", "y")', [NAT, TEXT], 'bad Candid argument: expected nat for argument 1, got text "x"'),
        ("(300)", [Prim("nat8")], r"expected nat8 for argument 1, got 300 \(out of range 0..255\)"),
        ("(-1)", [NAT], r"expected nat for argument 1, got -1 \(out of range 0 and up\)"),
        ("(128)", [Prim("int8")], r"expected int8 for argument 1, got 128 \(out of range -128..127\)"),
        ("(1.5)", [NAT], "expected nat for argument 1, got 1.5"),
        ("(5 : nat8)", [NAT], "expected nat for argument 1, got 5 : nat8"),
        ("(record { id = 1; bogus = 2 })", T("record { id : nat }"),
         r"unknown field bogus for argument 1 \(the record's fields: id\)"),
        ("(record { name = \"x\" })", T("record { id : nat; name : text }"),
         "missing field id : nat for argument 1"),
        ("(variant { nope = 1 })", T("variant { ok : nat; err : text }"),
         r"unknown variant tag nope for argument 1 \(expected one of: ok, err\)"),
        ("(variant { ok = 1; err = 2 })", None, "a variant value has exactly one field"),
        ("(vec { record { id = 1; name = 2 } })", T("vec record { id : nat; name : text }"),
         r"expected text for argument 1 \(at \[0\].name\), got 2"),
        ("(5)", T("opt nat"), r"expected opt nat for argument 1, got 5 \(write opt 5, or null\)"),
        ("(1, 2, 3)", [NAT, NAT], "got 3 arguments, but the method takes 2"),
        ("(1)", [NAT, TEXT], r"missing argument 2 of type text \(got 1 of 2\)"),
        ("(vec { 1; \"x\" })", None, r"expected int for argument 1 \(at \[1\]\), got text \"x\""),
        ("(foo)", None, "unexpected word 'foo' \\(text values are written in double quotes\\)"),
        ('("abc)', None, "unclosed string"),
        ('("\\q")', None, r"unknown escape \\q"),
        ('("\\ff")', None, "text is not valid UTF-8"),
        ("(12abc)", None, "invalid number '12abc'"),
        ("(record { a = 1; a = 2 })", None, "record field a given twice"),
        ('(principal "abc-def")', None, "invalid principal"),
        ("(5 : Foo)", None, "unknown type 'Foo'"),
        ("(1 : nat8 : nat)", None, "expected ',' or '\\)', found ':'"),
        ("/* never closed", None, "unclosed comment"),
        ("(record { 4294967296 = 1 })", None, "field id out of the u32 range"),
        ("(blob 5)", None, "a quoted string after blob"),
        ('(service "aaaaa-aa")', [Prim("principal")],
         'expected principal for argument 1, got service "aaaaa-aa"'),
    ],
)
def test_bad_arguments(text: str, types: list | None, message: str) -> None:
    with pytest.raises(CandidError, match=message) as info:
        encode_args(text, types)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, GraphcopyError)
    assert info.value.exit_code == 2


def test_float32_overflow() -> None:
    with pytest.raises(CandidError, match="out of range for float32"):
        encode_args("(1e300)", [Prim("float32")])


# ---------------------------------------------------------------------------------------------
# Decoding with Candid subtyping


def test_decode_ignores_extra_record_fields_and_fills_absent_opt_fields() -> None:
    wire = encode_args('(record { id = 1; name = "x"; extra = vec { 1; 2 } })',
                       T("record { id : nat; name : text; extra : vec nat }"))
    expected = T("record { id : nat; note : opt text; gone : null; r : reserved }")
    assert decode_args(wire, expected) == [{"id": 1, "note": None, "gone": None, "r": None}]
    assert format_args(wire, expected) == (
        "(record { r = null : reserved; id = 1 : nat; gone = null : null; note = null })"
    )


def test_decode_missing_required_field_fails() -> None:
    wire = encode_args("(record { id = 1 })", T("record { id : nat }"))
    with pytest.raises(CandidError, match="record field name : text is missing"):
        decode_args(wire, T("record { id : nat; name : text }"))


def test_decode_nat_as_int_and_wire_values_into_opt() -> None:
    assert decode_args(encode_args("(5 : nat)", None), [INT]) == [5]
    # null on the wire, or nothing at all, is null for an opt.
    assert decode_args(encode_args("(null)", None), T("opt nat")) == [None]
    assert decode_args(b"DIDL\x00\x00", T("opt nat")) == [None]
    # A plain value becomes a present opt; one that does not fit becomes null.
    assert decode_args(encode_args("(5 : nat)", None), T("opt nat")) == [5]
    assert decode_args(encode_args('("x")', None), T("opt nat")) == [None]
    assert decode_args(encode_args('(opt "x")', None), T("opt nat")) == [None]
    assert decode_args(encode_args("(opt (5 : nat))", None), T("opt opt nat")) == [Some(5)]
    assert decode_args(encode_args("(5 : nat)", None), T("opt opt nat")) == [Some(5)]
    assert decode_args(encode_args("(opt null)", T("opt opt nat")), T("opt opt nat")) == [Some(None)]
    assert decode_args(encode_args("(null)", None), [Prim("reserved")]) == [None]


def test_decode_variant_subtyping() -> None:
    wire = encode_args("(variant { new = 1 })", T("variant { ok : nat; new : nat }"))
    # the wire carries only the tag's hash
    assert idl_hash("new") == 5492832
    message = r"value 1: variant tag 5_492_832 is not in variant \{ ok : nat; err : text \}"
    with pytest.raises(CandidError, match=message):
        decode_args(wire, T("variant { ok : nat; err : text }"))
    # ... but under an opt an unknown tag is just null.
    wire = encode_args("(opt variant { new = 1 })", T("opt variant { ok : nat; new : nat }"))
    assert decode_args(wire, T("opt variant { ok : nat; err : text }")) == [None]
    wire = encode_args("(variant { ok = 1 })", T("variant { ok : nat; new : nat }"))
    assert decode_args(wire, T("variant { ok : int; err : text }")) == [{"ok": 1}]


def test_decode_extra_values_ignored_missing_values_fail() -> None:
    wire = encode_args('(1 : nat, "extra", vec { 1 })', None)
    assert decode_args(wire, [NAT]) == [1]
    assert format_args(wire, [NAT]) == "(1 : nat)"
    with pytest.raises(CandidError, match=r"got 1 values but 2 were expected \(value 2 should be text\)"):
        decode_args(encode_args("(1 : nat)", None), [NAT, TEXT])


def test_decode_wrong_type() -> None:
    with pytest.raises(CandidError, match="cannot decode Candid: value 1: text on the wire does not fit nat"):
        decode_args(encode_args('("x")', None), [NAT])
    with pytest.raises(CandidError, match="int on the wire does not fit nat"):
        decode_args(encode_args("(1)", None), [NAT])


def test_decode_references_check_subtyping() -> None:
    wire = encode_args('(func "aaaaa-aa".m)', T("func (nat) -> (nat) query"))
    assert decode_args(wire, T("func (nat) -> (int) query")) == [FuncRef(Principal(b""), "m")]
    with pytest.raises(CandidError, match="function type"):
        decode_args(wire, T("func (nat) -> (nat)"))
    assert decode_args(wire, T("opt func (text) -> (nat) query")) == [None]
    wire = encode_args('(service "aaaaa-aa")', T("service { a : () -> (); b : () -> () }"))
    assert decode_args(wire, T("service { a : () -> () }")) == [Principal(b"")]
    assert decode_args(wire, [Prim("principal")]) == [Principal(b"")]
    with pytest.raises(CandidError, match="service type"):
        decode_args(wire, T("service { c : () -> () }"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "does not start with the magic bytes DIDL"),
        (b"DADL\x00\x00", "does not start with the magic bytes DIDL"),
        (b"DIDL\x00\x01\x7d", "the data ends too early"),
        (b"DIDL\x00\x01\x7d\x05\x00", "1 bytes left over"),
        (b"DIDL\x00\x01\x7e\x02", "invalid bool byte 2"),
        (b"DIDL\x00\x01\x6e", "invalid type code -18"),
        (b"DIDL\x01\x6e\x05\x01\x00\x00", "refers to type table entry 5"),
        (b"DIDL\x00\x01\x71\x02\xff\xfe", "text is not valid UTF-8"),
        (b"DIDL\x00\x01\x68\x00", "opaque principal references are not supported"),
        (b"DIDL\x00\x01\x68\x01\x1e" + bytes(30), "longer than 29"),
        (b"DIDL\x01\x6c\x02\x05\x7d\x01\x7d\x01\x00\x00\x00", "field ids out of order"),
        (b"DIDL\x01\x6b\x01\x00\x7f\x01\x00\x03", "variant index 3 is out of range"),
        (b"DIDL\x00\x01\x6f", "empty cannot be decoded"),
        (b"DIDL\x01\x6d\x7d\x01\x00\x80\x94\xeb\xdc\x03", "longer than the data"),
    ],
)
def test_decode_bad_data(data: bytes, message: str) -> None:
    with pytest.raises(CandidError, match=message) as info:
        decode_args(data, None)
    assert "\n" not in str(info.value)


def test_decode_rejects_space_bombs_quickly() -> None:
    start = time.monotonic()
    # a billion nulls announced in a few bytes, and a vec of 5 vecs of 2^20 - 1 nulls each
    for data in (
        b"DIDL\x01\x6d\x7f\x01\x00\x80\x94\xeb\xdc\x03",
        b"DIDL\x02\x6d\x01\x6d\x7f\x01\x00\x05" + b"\xff\xff\x3f" * 5,
    ):
        with pytest.raises(CandidError, match="too much work"):
            decode_args(data, None)
    assert time.monotonic() - start < 30
    # a type nested deeper than the limit
    deep = b"DIDL\x01\x6e\x00\x01\x00" + b"\x01" * 300 + b"\x00"
    with pytest.raises(CandidError, match="nested more than"):
        decode_args(deep, None)


# ---------------------------------------------------------------------------------------------
# Service interfaces


MOC_DID = """type Tree =
 variant {
   leaf;
   node: record {
           Tree;
           nat;
           Tree;
         };
 };
type Result =
 variant {
   err: text;
   ok: Item;
 };
type Main =
 service {
   add: (x: nat, s: text) -> (nat, text);
   cq: () -> () composite_query;
   get: () -> (nat) query;
   item: (i: Item) -> (Result);
   list: (l: List) -> (List);
   mixed: (a: vec record {
                    nat;
                    text;
                  }, b: opt vec opt nat, c: variant {
                                              a;
                                              b: int8;
                                            }) -> (bool) query;
   ow: () -> () oneway;
   tree: (t: Tree) -> (Tree) query;
   whoami: () -> (principal);
 };
type List =
 opt record {
       head: int;
       tail: List;
     };
type Item =
 record {
   big: int64;
   data: blob;
   id: nat;
   name: text;
   owner: opt principal;
   score: float64;
   small: nat8;
   tags: vec text;
 };
service : (initial: nat, owner: opt text) -> Main
"""


def test_parse_service_moc_output() -> None:
    svc = parse_service(MOC_DID)
    assert isinstance(svc, ServiceInterface)
    assert sorted(svc.methods) == ["add", "cq", "get", "item", "list", "mixed", "ow", "tree", "whoami"]
    assert [format_type(t) for t in svc.init_args] == ["nat", "opt text"]
    get = svc.methods["get"]
    assert isinstance(get, MethodSig)
    assert get.args == [] and get.rets == [NAT] and get.modes == ("query",) and get.is_query
    assert svc.methods["cq"].modes == ("composite_query",) and svc.methods["cq"].is_query
    assert svc.methods["ow"].modes == ("oneway",) and not svc.methods["ow"].is_query
    assert svc.methods["add"].modes == () and not svc.methods["add"].is_query
    assert str(svc.methods["add"]) == "add : (nat, text) -> (nat, text)"
    assert str(svc.methods["mixed"]) == (
        "mixed : (vec record { nat; text }, opt vec opt nat, variant { a; b : int8 }) -> (bool) query"
    )
    assert format_type(svc.types["List"]) == "opt record { head : int; tail : List }"
    assert format_type(svc.types["Tree"]) == "variant { leaf; node : record { Tree; nat; Tree } }"
    assert isinstance(svc.methods["tree"].args[0], Ref)

    add = svc.methods["add"]
    data = encode_args('(42, "x")', add.args)
    assert format_args(data, add.args) == '(42 : nat, "x")'
    data = encode_args('(vec { record { 1; "x" } }, opt vec { opt 1; null }, variant { b = -3 })',
                       svc.methods["mixed"].args)
    assert decode_args(data, svc.methods["mixed"].args) == [[(1, "x")], [1, None], {"b": -3}]
    item = svc.methods["item"]
    data = encode_args(
        '(record { big = -5; data = blob "hi"; id = 7; name = "n"; owner = opt principal "2vxsx-fae"; '
        "score = 2.5; small = 255; tags = vec { \"a\" } })",
        item.args,
    )
    assert decode_args(data, item.args) == [{
        "id": 7, "big": -5, "owner": Principal.anonymous(), "data": b"hi", "name": "n", "tags": ["a"],
        "score": 2.5, "small": 255,
    }]
    reply = encode_args("(variant { err = \"no\" })", item.rets)
    assert format_args(reply, item.rets) == '(variant { err = "no" })'
    lst = svc.methods["list"]
    _, out = round_trip("(opt record { head = 1; tail = opt record { head = -2; tail = null } })", lst.args)
    assert out == (
        "(\n  opt record {\n    head = 1 : int;\n"
        "    tail = opt record { head = -2 : int; tail = null };\n  },\n)"
    )


def test_parse_service_forms() -> None:
    plain = parse_service("service : { get : () -> (nat) query; add : (nat, text) -> (nat, text) }")
    assert plain.init_args == [] and plain.methods["add"].rets == [NAT, TEXT]
    assert parse_service("").methods == {}
    assert parse_service("type X = nat;").types == {"X": NAT}
    # numeric and quoted labels; methods declared by a func type's name
    svc = parse_service(
        'type R = record { 4294967295 : nat; "a b" : text; _5_ : bool }; type F = func (nat) -> (text) query;'
        ' service : { m : F; "quoted m" : (R) -> () }'
    )
    rec = svc.types["R"]
    assert isinstance(rec, Record)
    assert {f.label for f in rec.fields} == {4294967295, "a b", "_5_"}
    assert [f.id for f in rec.fields] == sorted([4294967295, idl_hash("a b"), idl_hash("_5_")])
    assert str(svc.methods["m"]) == "m : (nat) -> (text) query"
    assert str(svc.methods["quoted m"]) == '"quoted m" : (R) -> ()'


@pytest.mark.parametrize(
    ("did", "message"),
    [
        ("service : { m : (Undefined) -> () }", "unknown type name Undefined"),
        ("type A = B; type B = A; service : {}", "type A is defined in terms of itself"),
        ("type T = nat; type T = text; service : {}", "type T is defined twice"),
        ("service : { m : (nat) -> ( }", "bad Candid interface: "),
    ],
)
def test_parse_service_errors(did: str, message: str) -> None:
    with pytest.raises(CandidError, match=message) as info:
        parse_service(did)
    assert "\n" not in str(info.value)


def test_parse_type_and_format_type() -> None:
    assert parse_type("blob") == Vec(Prim("nat8"))
    assert parse_type("record { nat; text }") == Record((Field(0, NAT), Field(1, TEXT)))
    assert parse_type("variant { a; b : nat }") == Variant((Field("a", Prim("null")), Field("b", NAT)))
    assert parse_type("func (x : nat) -> () query") == Func((NAT,), (), ("query",))
    assert parse_type("service { m : (nat) -> () }") == Service((("m", Func((NAT,), (), ())),))
    for text in [
        "opt vec record { id : nat; 5 : text }",
        "variant { ok : nat; err : text; none }",
        "func (nat, text) -> (opt nat) composite_query",
        "service { a : () -> (); b : (blob) -> (principal) query }",
        "record {}",
        "vec blob",
    ]:
        assert parse_type(format_type(parse_type(text))) == parse_type(text)
    with pytest.raises(CandidError, match="same id"):
        Record((Field("id", NAT), Field(23515, TEXT)))
    with pytest.raises(CandidError, match="unknown Candid primitive"):
        Prim("natural")


# ---------------------------------------------------------------------------------------------
# Python values and JSON


def test_encode_values_from_python() -> None:
    types = T("record { id : nat; tags : vec text; owner : opt principal; v : variant { a; b : nat } }")
    data = encode_values([{"id": 1, "tags": ["x"], "owner": "aaaaa-aa", "v": {"b": 2}}], types)
    assert decode_args(data, types) == [{"id": 1, "tags": ["x"], "owner": Principal(b""), "v": {"b": 2}}]
    assert encode_values([(1, "x")], T("record { nat; text }")) == encode_args('(record { 1; "x" })',
                                                                                T("record { nat; text }"))
    assert encode_values([Some(None)], T("opt null")) == encode_args("(opt null)", T("opt null"))
    assert encode_values([b"\x00\x01"], T("blob")) == encode_args('(blob "\\00\\01")', T("blob"))
    assert format_values([Some(None), 5], [parse_type("opt opt nat"), NAT]) == "(opt null, 5 : nat)"
    message = r"expected nat8 for value 1 \(at \[1\]\), got int 256 \(out of range\)"
    with pytest.raises(CandidError, match=message):
        encode_values([[1, 256]], T("vec nat8"))
    with pytest.raises(CandidError, match="expected bool for value 1, got int 1"):
        encode_values([1], [Prim("bool")])
    with pytest.raises(CandidError, match="unknown field 'zz'"):
        encode_values([{"zz": 1}], T("record { id : nat }"))
    with pytest.raises(CandidError, match="missing field id"):
        encode_values([{}], T("record { id : nat }"))
    with pytest.raises(CandidError, match="written Some"):
        encode_values([None or 5], T("opt opt nat"))


def test_values_to_json() -> None:
    types = T(
        "record { n : nat; big : int; f : float64; t : text; b : blob; p : principal; o : opt nat; "
        "oo : opt opt nat; v : vec variant { a; b : nat }; tup : record { nat; text }; r : reserved }"
    )
    data = encode_args(
        '(record { n = 1; big = -340282366920938463463374607431768211456; f = 1.5; t = "é"; '
        'b = blob "\\00\\ff"; '
        'p = principal "aaaaa-aa"; o = null; oo = opt null; v = vec { variant { a }; variant { b = 2 } }; '
        'tup = record { 1; "x" } })',
        types,
    )
    out = values_to_json(decode_args(data, types), types)
    assert out == values_to_json(decode_args(data, types))
    assert out == [{
        "n": 1, "big": -340282366920938463463374607431768211456, "f": 1.5, "t": "é", "b": "00ff",
        "p": "aaaaa-aa", "o": None, "oo": [None], "v": [{"a": None}, {"b": 2}], "tup": [1, "x"], "r": None,
    }]
    assert json.loads(json.dumps(out)) == out
    assert values_to_json([math.nan, math.inf, FuncRef(Principal(b""), "m"), {5: True}]) == [
        "NaN", "inf", {"principal": "aaaaa-aa", "method": "m"}, {"5": True}
    ]


def test_opt_representation_in_python() -> None:
    t = T("opt opt nat")
    assert decode_args(encode_args("(null)", t), t) == [None]
    assert decode_args(encode_args("(opt null)", t), t) == [Some(None)]
    assert decode_args(encode_args("(opt opt 3)", t), t) == [Some(3)]
    t = [Opt(NAT)]
    assert decode_args(encode_args("(opt 3)", t), t) == [3]
