"""Stable signatures: the model, the parser (moc's grammar) and the printer (moc's layout)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.errors import StableTypeError
from migrate.stable_types import (
    ANY,
    BLOB,
    BOOL,
    CHAR,
    INT,
    NAT,
    NONE,
    NULL,
    PRINCIPAL,
    REGION,
    TEXT,
    UNIT,
    ActorType,
    ArrayType,
    ConType,
    Field,
    FuncType,
    NamedType,
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
    WeakType,
    children,
    format_signature,
    format_type,
    label_hash,
    parse_signature,
    parse_type,
    substitute,
    unfold,
)
from persist.errors import GraphcopyError

CORPUS = Path(__file__).parent / "compat_corpus"
CORPUS_FILES = sorted(CORPUS.glob("*.most"))

# ---------------------------------------------------------------------------------------------
# Types: text <-> model

TYPES: list[tuple[str, object]] = [
    ("Nat", NAT),
    ("Int", INT),
    ("Text", TEXT),
    ("Blob", BLOB),
    ("Principal", PRINCIPAL),
    ("Region", REGION),
    ("Char", CHAR),
    ("Null", NULL),
    ("Bool", BOOL),
    ("Float", Prim("Float")),
    *((n, Prim(n)) for n in ("Nat8", "Nat16", "Nat32", "Nat64", "Int8", "Int16", "Int32", "Int64")),
    ("Error", Prim("Error")),
    ("Any", ANY),
    ("None", NONE),
    ("()", UNIT),
    ("(Nat,)", TupleType((NAT,))),
    ("(Nat, Text)", TupleType((NAT, TEXT))),
    ("?Nat", OptType(NAT)),
    ("??Nat", OptType(OptType(NAT))),
    ("[Nat]", ArrayType(NAT)),
    ("[var Nat]", ArrayType(NAT, mutable=True)),
    ("[var [Text]]", ArrayType(ArrayType(TEXT), mutable=True)),
    ("?[var ?Nat]", OptType(ArrayType(OptType(NAT), True))),
    ("{}", RecordType(())),
    ("{a : Nat; var b : Text}", RecordType((Field("a", NAT), Field("b", TEXT, True)))),
    ("{_123_ : Nat; type_ : Int}", RecordType((Field("_123_", NAT), Field("type_", INT)))),
    ("{#}", VariantType(())),
    ("{#a; #b : Nat}", VariantType((Tag("a"), Tag("b", NAT)))),
    ("weak [var Nat64]", WeakType(ArrayType(Prim("Nat64"), True))),
    ("?weak Text", OptType(WeakType(TEXT))),
    ("shared Nat -> async Text", FuncType("shared", (NAT,), (TEXT,))),
    ("shared () -> async ()", FuncType("shared", (), ())),
    ("shared (Nat, Text) -> async (Int, Bool)", FuncType("shared", (NAT, TEXT), (INT, BOOL))),
    (
        "shared ((Nat, Text)) -> async ((Int, Bool))",
        FuncType("shared", (TupleType((NAT, TEXT)),), (TupleType((INT, BOOL)),)),
    ),
    ("shared Nat -> ()", FuncType("shared", (NAT,), (), is_async=False)),
    ("shared query () -> async Nat", FuncType("query", (), (NAT,))),
    ("shared composite query () -> async Nat", FuncType("composite", (), (NAT,))),
    ("() -> ()", FuncType("local", (), (), is_async=False)),
    ("Nat -> Nat", FuncType("local", (NAT,), (NAT,), is_async=False)),
    ("Nat -> Nat -> Text", FuncType("local", (NAT,), (FuncType("local", (NAT,), (TEXT,), False),), False)),
    ("<T>T -> T", FuncType("local", (VarType("T"),), (VarType("T"),), False, ("T",))),
    (
        "shared (amount : Nat, to : Principal) -> async (ok : Bool)",
        FuncType("shared", (NamedType("amount", NAT), NamedType("to", PRINCIPAL)), (NamedType("ok", BOOL),)),
    ),
    ("shared (x : Nat) -> ()", FuncType("shared", (NamedType("x", NAT),), (), False)),
    ("?(shared () -> ())", OptType(FuncType("shared", (), (), False))),
    ("shared () -> async ?(shared () -> ())", FuncType("shared", (), (OptType(FuncType("shared", (), (), False)),))),
    ("actor {}", ActorType(())),
    (
        "actor {bar : shared query () -> async Text; foo : shared Nat -> async ()}",
        ActorType((Field("bar", FuncType("query", (), (TEXT,))), Field("foo", FuncType("shared", (NAT,), ())))),
    ),
    ("?(actor {f : shared () -> ()})", OptType(ActorType((Field("f", FuncType("shared", (), (), False)),)))),
    ("{type T = Nat; a : Nat}", RecordType((Field("a", NAT),), (TypeDef("T", (), NAT),))),
    ("{ünï : Nat; 名前 : Text}", RecordType((Field("ünï", NAT), Field("名前", TEXT)))),
]


@pytest.mark.parametrize(("text", "typ"), TYPES, ids=[t for t, _ in TYPES])
def test_parse_type(text: str, typ: object) -> None:
    assert parse_type(text) == typ


@pytest.mark.parametrize(("text", "typ"), TYPES, ids=[t for t, _ in TYPES])
def test_format_type_is_moc_syntax(text: str, typ: object) -> None:
    assert format_type(typ) == text  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("(Nat)", "Nat"),
        ("((Nat))", "Nat"),
        ("( Nat , Text )", "(Nat, Text)"),
        ("{a:Nat;b:Text;}", "{a : Nat; b : Text}"),
        ("{#a;#b:Nat;}", "{#a; #b : Nat}"),
        ("shared (Nat,) -> async Nat", "shared Nat -> async Nat"),
        ("shared Nat -> async (Nat)", "shared Nat -> async Nat"),
        ("query () -> async Nat", "shared query () -> async Nat"),
        ("composite query () -> async Nat", "shared composite query () -> async Nat"),
        ("object {a : Nat}", "{a : Nat}"),
        ("? Nat", "?Nat"),
        ("{#a : ()}", "{#a}"),
        ("/* c /* nested */ */ Nat // trailing", "Nat"),
        ("(x : Nat)", "Nat"),
    ],
)
def test_parse_type_normalizes(text: str, canonical: str) -> None:
    t = parse_type(text)
    assert parse_type(format_type(t)) == t
    if text != "(x : Nat)":
        assert format_type(t) == canonical
    else:
        assert t == NamedType("x", NAT) and unfold(t, {}) == NAT


def test_parse_type_with_definitions() -> None:
    lst = TypeDef("List", ("T",), OptType(TupleType((VarType("T"), ConType("List", (VarType("T"),))))))
    t = parse_type("List<Nat>", [lst])
    assert t == ConType("List", (NAT,))
    assert unfold(t, {"List": lst}) == OptType(TupleType((NAT, ConType("List", (NAT,)))))
    with pytest.raises(StableTypeError, match="expects 1 type argument"):
        parse_type("List", [lst])
    with pytest.raises(StableTypeError, match="undefined type Foo"):
        parse_type("Foo")


def test_long_types_break_like_moc() -> None:
    t = parse_type(
        "{aaaaaaaaaaaaa : Nat; bbbbbbbbbbbbbbbb : [var Text]; ccccccccccccccccc : (Nat, Int, Text, Nat, Int, Text)}"
    )
    assert format_type(t) == (
        "{\n  aaaaaaaaaaaaa : Nat;\n  bbbbbbbbbbbbbbbb : [var Text];\n"
        "  ccccccccccccccccc : (Nat, Int, Text, Nat, Int, Text)\n}"
    )
    assert "\n" not in format_type(t, margin=10_000)


# ---------------------------------------------------------------------------------------------
# Signatures

V1 = """// Version: 1.0.0
type List__668462761<T> = ?(T, List__668462761<T>);
type Tree__510040400 =
  {#leaf; #node : (Tree__510040400, Nat, Tree__510040400)};
actor {
  stable var a :
    ?(actor {
        bar : shared query () -> async Text;
        foo : shared Nat -> async ()
      });
  stable var an : Any;
  stable var b : Blob;
  stable var c : Char;
  stable var cq : ?(shared composite query () -> async (Nat, Int));
  stable var emptyrec : {};
  stable var f : ?(shared (Nat, Text) -> async Nat);
  stable var l : ?(Nat, List__668462761<Nat>);
  stable var n : Null;
  stable var no : ?None;
  stable var o : ?(shared Nat -> ());
  stable var p : ?Principal;
  stable var q : ?(shared query Nat -> async ());
  stable var r : {var x : Nat; y : [var Int]; z : [Text]};
  stable var reg : ?Region;
  stable var single : Nat;
  stable t : {#leaf; #node : (Tree__510040400, Nat, Tree__510040400)};
  stable var tup :
    (Nat8, Nat16, Nat32, Nat64, Int8, Int16, Int32, Int64, Float, Bool);
  stable var u : ();
  stable var uni : {_123_ : Nat; type_ : Nat};
  stable var v : {#a; #b : Int; #c : {x : Nat}};
  stable var w : ?weak [var Nat]
};
"""

V3 = """// Version: 3.0.0
actor ({
  in var a : Nat;
  in b : Text;
  stable var d : Nat
}, {
  stable var c : Int;
  stable var d : Nat
});
"""

EMPTY = "// Version: 1.0.0\nactor {\n  \n};\n"

NESTED = """// Version: 1.0.0
type Map__1020643053<K, V> =
  {#leaf; #node : (Map__1020643053<K, V>, K, V, Map__1020643053<K, V>)};
actor {
  stable var ff :
    ?(shared ({aaaaaaaaaaaaaaaaaa : Nat; bbbbbbbbbbbbbbbbbbbbbb : Text}, Nat) ->
        async ?{cccccccccccccccc : Nat; dddddddddddddd : Int});
  stable var m :
    {
      #leaf;
      #node :
        (Map__1020643053<Text,
                          {
                            #aaaaaaaaaaaaaaaa;
                            #bbbbbbbbbbbbbbbbbbbbb : Nat;
                            #ccccccccccccccccccccccc : ?Text;
                            #ddddddddddd
                          }>,
         Text,
         {
           #aaaaaaaaaaaaaaaa;
           #bbbbbbbbbbbbbbbbbbbbb : Nat;
           #ccccccccccccccccccccccc : ?Text;
           #ddddddddddd
         },
         Map__1020643053<Text,
                          {
                            #aaaaaaaaaaaaaaaa;
                            #bbbbbbbbbbbbbbbbbbbbb : Nat;
                            #ccccccccccccccccccccccc : ?Text;
                            #ddddddddddd
                          }>)
    }
};
"""

# Texts exactly as the pinned moc printed them: the printer must give the same bytes back.
MOC_TEXTS = {"v1": V1, "v3": V3, "empty": EMPTY, "nested": NESTED}


@pytest.mark.parametrize("name", sorted(MOC_TEXTS))
def test_moc_texts_round_trip_byte_identical(name: str) -> None:
    text = MOC_TEXTS[name]
    sig = parse_signature(text)
    assert format_signature(sig) == text
    assert parse_signature(format_signature(sig)) == sig


def test_v1_model() -> None:
    sig = parse_signature(V1)
    assert sig.version == "1.0.0" and sig.pre is None and not sig.has_migration
    assert [d.name for d in sig.types] == ["List__668462761", "Tree__510040400"]
    assert sig.env["List__668462761"].params == ("T",)
    by = {f.name: f for f in sig.fields}
    assert by["t"].mutable is False and by["an"].mutable is True
    assert by["single"].typ == NAT
    assert by["uni"].typ == RecordType((Field("_123_", NAT), Field("type_", NAT)))
    assert by["o"].typ == OptType(FuncType("shared", (NAT,), (), is_async=False))
    assert by["w"].typ == OptType(WeakType(ArrayType(NAT, True)))
    assert by["l"].typ == OptType(TupleType((NAT, ConType("List__668462761", (NAT,)))))
    assert all(not f.required for f in sig.upgrade_fields)


def test_v3_model() -> None:
    sig = parse_signature(V3)
    assert sig.version == "3.0.0" and sig.has_migration
    assert sig.pre == (
        StableField("a", NAT, mutable=True, required=True),
        StableField("b", TEXT, mutable=False, required=True),
        StableField("d", NAT, mutable=True, required=False),
    )
    assert sig.post == (StableField("c", INT, True), StableField("d", NAT, True))
    assert sig.upgrade_fields == sig.pre


def test_v2_and_old_spacing() -> None:
    # 2.0.0 has no `in` fields; older moc printed `}) ;`.
    text = (
        "// Version: 2.0.0\nactor ({\n  stable var four : [var (Nat, Text)];\n  stable var zero : Nat\n}, {\n"
        "  stable var four : [var (Text, Nat)];\n  stable var zero : Nat\n}) ;\n"
    )
    sig = parse_signature(text)
    assert sig.version == "2.0.0" and sig.pre is not None
    assert not any(f.required for f in sig.pre)
    assert parse_signature(format_signature(sig)) == sig
    assert format_signature(sig).endswith("});\n")


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("actor { stable x : Nat }", "1.0.0"),
        ("actor ({ in x : Nat }, { stable y : Nat })", "3.0.0"),
        ("// Version: 1.0.0\nactor {}", "1.0.0"),
        ("// Version: 9.9.9\nactor {}", "9.9.9"),
        ("actor {};", "1.0.0"),
        ("actor { stable x : Nat; };", "1.0.0"),
        ("type T = Nat; actor { stable x : T }", "1.0.0"),
        ("type T = Nat; type U = T; actor { stable x : U; }", "1.0.0"),
    ],
)
def test_signature_variants(text: str, version: str) -> None:
    sig = parse_signature(text)
    assert sig.version == version
    assert parse_signature(format_signature(sig)) == sig


def test_custom_section_bytes_and_crlf() -> None:
    assert parse_signature(V3.encode()) == parse_signature(V3)
    assert parse_signature(V1.replace("\n", "\r\n")) == parse_signature(V1)
    assert parse_signature("\ufeff" + EMPTY) == parse_signature(EMPTY)
    with pytest.raises(StableTypeError, match="not UTF-8"):
        parse_signature(b"actor { stable x : \xff }")


def test_programmatic_signature_example() -> None:
    node = TypeDef("Node", (), RecordType((Field("value", NAT), Field("next", OptType(ConType("Node"))))))
    sig = StableSignature(
        version="1.0.0",
        types=(node,),
        post=(StableField("head", OptType(ConType("Node")), mutable=True), StableField("_4846783_", TEXT)),
    )
    text = format_signature(sig)
    assert parse_signature(text) == sig
    assert "stable var head : ?Node" in text
    assert label_hash("_4846783_") == 4846783


def test_recursive_and_generic_definitions() -> None:
    sig = parse_signature(
        "type Tree<K, V> = {#leaf; #node : (Tree<K, V>, K, V, Tree<K, V>)};\n"
        "type Even = ?(Nat, Odd); type Odd = (Nat, Even);\n"
        "actor { stable var t : Tree<Text, [Nat]>; stable e : Even }"
    )
    t = unfold(sig.fields[0].typ, sig.env)
    assert isinstance(t, VariantType)
    assert t.tags[1].typ == TupleType(
        (ConType("Tree", (TEXT, ArrayType(NAT))), TEXT, ArrayType(NAT), ConType("Tree", (TEXT, ArrayType(NAT))))
    )
    assert unfold(ConType("Odd"), sig.env) == TupleType((NAT, ConType("Even")))


def test_substitute_respects_binders() -> None:
    f = FuncType("local", (VarType("T"),), (VarType("U"),), False, ("T",))
    assert substitute(f, {"T": NAT, "U": TEXT}) == FuncType("local", (VarType("T"),), (TEXT,), False, ("T",))
    assert list(children(TupleType((NAT, TEXT)))) == [NAT, TEXT]
    assert list(children(NAT)) == []


def test_unicode_labels_round_trip() -> None:
    sig = parse_signature("actor { stable var café : {ünï : Nat; #x : Nat} }".replace("; #x : Nat", ""))
    assert sig.fields[0].name == "café"
    assert parse_signature(format_signature(sig)) == sig
    assert label_hash("ünï") == _idl_hash("ünï".encode())


def _idl_hash(b: bytes) -> int:
    h = 0
    for x in b:
        h = (h * 223 + x) % 2**32
    return h


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("x", 120),
        ("y", 121),
        ("foo", 5097222),
        ("_0_", 0),
        ("_123_", 123),
        ("_4294967295_", 4294967295),
        ("type_", _idl_hash(b"type")),
        ("actor_", _idl_hash(b"actor")),
        ("_", _idl_hash(b"_")),
        ("__", _idl_hash(b"_")),
        ("a_b", _idl_hash(b"a_b")),
        ("balance", _idl_hash(b"balance")),
    ],
)
def test_label_hash(label: str, expected: int) -> None:
    assert label_hash(label) == expected


# ---------------------------------------------------------------------------------------------
# Errors: one line, with line and column


ERRORS = [
    ("", "expected 'type', '{' (a migration chain) or 'actor', found end of input", 1, 1),
    ("actor {", "found end of input", 1, 8),
    ("actor { stable x : Nat", "expected '}'", 1, 23),
    ("actor { x : Nat }", "expected 'stable' or '}'", 1, 9),
    ("actor { in x : Nat }", "expected 'stable' or '}'", 1, 9),
    ("actor { stable x Nat }", "expected ':' after stable variable x", 1, 18),
    ("actor { stable x : Foo }", "undefined type Foo", 1, 20),
    ("actor {\n  stable x : Nat;\n  stable x : Int\n}", "duplicate stable variable x", 3, 10),
    ("actor { stable type : Nat }", "found the keyword 'type'", 1, 16),
    ("actor { stable x : {a : Nat; a : Int} }", "duplicate field a", 1, 30),
    ("actor { stable x : {#a; #a} }", "duplicate variant tag #a", 1, 26),
    ("type T<A> = A; actor { stable x : T }", "expects 1 type argument(s), got 0", 1, 35),
    ("type T = Nat; type T = Int; actor {}", "duplicate type definition T", 1, 15),
    ("type T = T; actor {}", "defined in terms of itself", 1, 1),
    ("actor { stable x : Nat } extra", "unexpected 'extra' after the actor", 1, 26),
    ("actor { stable x : $ }", "unexpected character '$'", 1, 20),
    ("actor { stable x : Nat /* open", "unclosed comment", 1, 24),
    ("actor { stable x : shared Nat -> Nat }", "must return '()' or 'async", 1, 34),
    ("actor { stable x : async Nat }", "'async' types only occur as function results", 1, 20),
    ("actor { stable x : module {} }", "module types are not stable", 1, 20),
    ("actor { stable x : M.T }", "qualified type paths", 1, 21),
    ("type T<A <: Nat> = A; actor {}", "bounds are not supported", 1, 10),
    ("actor ({ stable x : Nat } { stable y : Nat })", "expected ','", 1, 27),
    ("actor ({ stable x : Nat }, { in y : Nat })", "expected 'stable' or '}'", 1, 30),
    ("actor { stable x : [var Nat }", "expected ']'", 1, 29),
    ("actor { stable x : (Nat, Text }", "expected ')'", 1, 31),
    ("actor { stable x : Nat and Text }", "'and'/'or'", 1, 24),
    ("actor { stable x : T<Nat> }", "undefined type T", 1, 20),
    ("type T<A> = A<Nat>; actor {}", "type parameter A takes no type arguments", 1, 13),
]


@pytest.mark.parametrize(("text", "message", "line", "column"), ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_malformed_signatures(text: str, message: str, line: int, column: int) -> None:
    with pytest.raises(StableTypeError) as info:
        parse_signature(text)
    err = info.value
    assert message in str(err)
    assert (err.line, err.column) == (line, column)
    assert str(err).startswith(f"line {line}, column {column}: ")
    assert "\n" not in str(err)
    assert isinstance(err, GraphcopyError) and err.exit_code == 2


def test_unfold_errors() -> None:
    with pytest.raises(StableTypeError, match="undefined type X"):
        unfold(ConType("X"), {})
    with pytest.raises(StableTypeError, match="expects 0 type argument"):
        unfold(ConType("T", (NAT,)), {"T": TypeDef("T", (), NAT)})
    with pytest.raises(ValueError):
        Prim("Nat128")
    with pytest.raises(ValueError):
        FuncType("async", (), ())  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The corpus: every .most file parses and round-trips (the generated ones byte for byte)


def _strip_comments(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and (lines[0].startswith("// expect") or lines[0].startswith("// note")):
        lines.pop(0)
    return "".join(lines)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_round_trip(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    sig = parse_signature(text)
    again = parse_signature(format_signature(sig))
    assert again == sig
    assert format_signature(sig) == _strip_comments(text)
