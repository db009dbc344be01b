"""The compatibility relation and its reports (``migrate.compat``), without moc.

The core of it is a table of type changes, each with its verdict in both directions, put into
covariant, contravariant (function arguments) and invariant (``var``/``[var]``) contexts; the
expected answer in each context follows from the table (contravariant: the reverse verdict;
invariant: both directions must hold). Then: paths and report texts, migrations, and properties
(reflexivity, reordering, renaming, transitivity)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from itertools import product
from pathlib import Path

import pytest

from migrate.compat import RULES, CompatReport, Issue, check_compatibility, check_types
from migrate.report import CHAIN_RULES
from migrate.stable_types import (
    ActorType,
    ConType,
    Field,
    FuncType,
    NamedType,
    OptType,
    RecordType,
    StableField,
    StableSignature,
    StableType,
    Tag,
    TupleType,
    TypeDef,
    VariantType,
    VarType,
    WeakType,
    parse_signature,
    parse_type,
)

CORPUS = Path(__file__).parent / "compat_corpus"
DEFS = "type List<T> = ?(T, List<T>); type Seq<X> = ?(X, Seq<X>); type Box<T> = {v : T};"


def sig(body: str, defs: str = DEFS) -> StableSignature:
    return parse_signature(f"{defs}\nactor {{ {body} }}")


def check(old: str, new: str, defs: str = DEFS) -> CompatReport:
    """Compare one stable variable ``x`` of type ``old`` with ``x : new``."""
    return check_compatibility(sig(f"stable var x : {old}", defs), sig(f"stable var x : {new}", defs))


# ---------------------------------------------------------------------------------------------
# The table: (old, new, rule forward, rule backward); None = compatible.

BASE: list[tuple[str, str, str | None, str | None]] = [
    ("Nat", "Nat", None, None),
    ("Nat", "Int", None, "type-mismatch"),
    ("Nat8", "Nat16", "type-mismatch", "type-mismatch"),
    ("Nat64", "Int64", "type-mismatch", "type-mismatch"),
    ("Float", "Int", "type-mismatch", "type-mismatch"),
    ("Bool", "Nat", "type-mismatch", "type-mismatch"),
    ("Text", "Blob", "type-mismatch", "type-mismatch"),
    ("Principal", "Blob", "type-mismatch", "type-mismatch"),
    ("Region", "Region", None, None),
    ("Char", "Nat32", "char-nat32", "char-nat32"),
    ("()", "Null", "unit-null", "unit-null"),
    ("Blob", "[Nat8]", "blob-array", "blob-array"),
    ("Nat", "Any", "promote-to-any", "type-mismatch"),
    ("{a : Nat}", "Any", "promote-to-any", "type-mismatch"),
    ("Any", "Any", None, None),
    ("None", "Nat", None, "type-mismatch"),
    ("None", "Any", "promote-to-any", "type-mismatch"),
    ("None", "None", None, None),
    ("Null", "?Nat", None, "option-removal"),
    ("Null", "??Text", None, "option-removal"),
    ("Nat", "?Nat", "option-insertion", "option-removal"),
    ("?Nat", "??Nat", "option-insertion", "option-removal"),
    ("?Nat", "?Int", None, "type-mismatch"),
    ("?None", "?Text", None, "type-mismatch"),
    ("[Nat]", "[Int]", None, "type-mismatch"),
    ("[Nat]", "[var Nat]", "mutability-changed", "mutability-changed"),
    ("[[Nat]]", "[Nat]", "type-mismatch", "type-mismatch"),
    ("[var Nat]", "[var Int]", "mutable-invariant", "type-mismatch"),
    ("[var Null]", "[var ?Nat]", "null-option-invariant", "option-removal"),
    ("[var None]", "[var Nat]", "mutable-invariant", "type-mismatch"),
    ("[var {#a}]", "[var {#a; #b}]", "mutable-invariant", "remove-variant-tag"),
    ("{a : Nat}", "{a : Nat; b : Nat}", "record-field-added", "record-field-removed"),
    ("{a : Nat}", "{a : Nat; b : ?Nat}", "record-field-added", "record-field-removed"),
    ("{a : Nat}", "{a : Int}", None, "type-mismatch"),
    ("{a : Nat; b : Text}", "{b : Text; a : Nat}", None, None),
    ("{a : Nat}", "{var a : Nat}", "mutability-changed", "mutability-changed"),
    ("{a : {b : Nat}}", "{a : {b : Nat; c : Nat}}", "record-field-added", "record-field-removed"),
    ("{}", "{}", None, None),
    ("{#a}", "{#a; #b}", None, "remove-variant-tag"),
    ("{#a : Nat}", "{#a : Int}", None, "type-mismatch"),
    ("{#a; #b}", "{#b; #a}", None, None),
    ("{#}", "{#a}", None, "remove-variant-tag"),
    ("{#a}", "{#a : Nat}", "type-mismatch", "type-mismatch"),
    ("{#a : Nat}", "{a : Nat}", "type-mismatch", "type-mismatch"),
    ("(Nat, Text)", "(Nat, Text, Bool)", "tuple-arity", "tuple-arity"),
    ("(Nat, Text)", "(Text, Nat)", "type-mismatch", "type-mismatch"),
    ("(Nat, ?Text)", "(Int, ?Text)", None, "type-mismatch"),
    ("(Nat,)", "Nat", "type-mismatch", "type-mismatch"),
    ("{_0_ : Nat}", "(Nat,)", "type-mismatch", "type-mismatch"),
    ("shared Int -> async Nat", "shared Nat -> async Int", None, "type-mismatch"),
    ("shared Nat -> async ()", "shared (Nat, Nat) -> async ()", "func-arity", "func-arity"),
    ("shared () -> async Nat", "shared () -> async (Nat, Nat)", "func-arity", "func-arity"),
    ("shared () -> async Nat", "shared query () -> async Nat", "func-annotation", "func-annotation"),
    ("shared query () -> async Nat", "shared composite query () -> async Nat", "func-annotation", "func-annotation"),
    ("shared () -> ()", "shared () -> async ()", "func-annotation", "func-annotation"),
    ("shared {#a; #b} -> async ()", "shared {#a} -> async ()", None, "add-variant-tag"),
    ("shared {a : Nat} -> ()", "shared {a : Nat; b : Nat} -> ()", "record-field-added", "record-field-removed"),
    ("shared Any -> ()", "shared Nat -> ()", "promote-to-any", "type-mismatch"),
    ("shared (amount : Nat) -> async (ok : Bool)", "shared Nat -> async Bool", None, None),
    ("?(shared Nat -> ())", "?(shared Int -> ())", "type-mismatch", None),
    (
        "actor {f : shared () -> ()}",
        "actor {f : shared () -> (); g : shared () -> ()}",
        "actor-method-added",
        "actor-method-removed",
    ),
    ("actor {f : shared () -> async Nat}", "actor {f : shared () -> async Int}", None, "type-mismatch"),
    ("actor {}", "Principal", "type-mismatch", "type-mismatch"),
    ("weak Nat", "weak Int", None, "type-mismatch"),
    ("weak Nat", "Nat", "type-mismatch", "type-mismatch"),
    ("weak [var Nat64]", "weak Any", "promote-to-any", "type-mismatch"),
    ("List<Nat>", "List<Int>", None, "type-mismatch"),
    ("List<Nat>", "Seq<Nat>", None, None),
    ("List<Nat>", "?(Nat, List<Nat>)", None, None),
    ("Box<Nat>", "{v : Int}", None, "type-mismatch"),
    ("Box<[var Nat]>", "Box<[Nat]>", "mutability-changed", "mutability-changed"),
]

# Contexts: "@" is replaced by the type (in parentheses, so that it is always ONE component).
COVARIANT = [
    "@",
    "{f : @}",
    "[@]",
    "?@",
    "{#t : @}",
    "(@, Nat)",
    "(Nat, @)",
    "shared () -> async @",
    "shared () -> async (Nat, @)",
    "weak @",
    "Box<@>",
    "actor {m : shared () -> async @}",
    "shared (shared @ -> ()) -> ()",  # an argument of an argument: covariant again
    "List<@>",
]
CONTRAVARIANT = [
    "shared @ -> ()",
    "shared (Nat, @) -> async ()",
    "?(shared @ -> async Nat)",
    "actor {m : shared @ -> ()}",
    "shared () -> async (shared @ -> ())",
    "Box<shared @ -> ()>",
]
INVARIANT = [
    "[var @]",
    "{var f : @}",
    "?[var @]",
    "[var (Nat, @)]",
    "{var f : {g : @}}",
    "[var ?(shared @ -> ())]",
    "[var (shared () -> async @)]",
]


def _put(context: str, t: str) -> str:
    return context.replace("@", f"({t})")


def _cases() -> list[tuple[str, str, str, str | None, str]]:
    out = []
    for old, new, fwd, rev in BASE:
        for kind, contexts in (("co", COVARIANT), ("contra", CONTRAVARIANT), ("inv", INVARIANT)):
            for c in contexts:
                out.append((_put(c, old), _put(c, new), kind, fwd, rev))
    return out


CASES = _cases()


@pytest.mark.parametrize(("old", "new", "kind", "fwd", "rev"), CASES, ids=[f"{c[0]} => {c[1]}" for c in CASES])
def test_relation_in_context(old: str, new: str, kind: str, fwd: str | None, rev: str | None) -> None:
    report = check(old, new)
    if kind == "co":
        assert report.compatible == (fwd is None), report.format_text()
        if fwd is not None:
            assert fwd in report.rules, report.format_text()
    elif kind == "contra":
        assert report.compatible == (rev is None), report.format_text()
    else:
        # Under var/[var] the types must be equivalent: both directions must hold.
        assert report.compatible == (fwd is None and rev is None), report.format_text()
    assert all(i.severity == "error" and i.rule in RULES for i in report.issues)
    assert all(i.path.startswith("x") for i in report.issues)


@pytest.mark.parametrize(("old", "new", "fwd", "rev"), BASE, ids=[f"{b[0]} <= {b[1]}" for b in BASE])
def test_reverse_direction(old: str, new: str, fwd: str | None, rev: str | None) -> None:
    report = check(new, old)
    assert report.compatible == (rev is None), report.format_text()
    if rev is not None:
        assert rev in report.rules, report.format_text()


def test_every_rule_is_exercised_by_the_table_or_below() -> None:
    table = {r for _, _, f, b in BASE for r in (f, b) if r}
    elsewhere = {
        "drop-stable-variable", "required-migration-input-missing", "migration-consumes-variable",
        "remove-variant-tag", "add-variant-tag", "type-component-mismatch", "non-stable-type", "too-deep",
        "report-truncated",
    }  # fmt: skip
    assert set(RULES) - CHAIN_RULES == table | elsewhere  # the chain rules: tests/test_chain_compat.py
    assert CHAIN_RULES <= set(RULES)


# ---------------------------------------------------------------------------------------------
# Paths and texts


@pytest.mark.parametrize(
    ("old", "new", "path", "rule"),
    [
        ("stable var accounts : [{balance : Nat}]", "stable var accounts : [{balance : Text}]", "accounts[].balance",
         "type-mismatch"),
        ("stable var log : [{#deposit : Nat; #fee}]", "stable var log : [{#fee}]", "log[].#deposit",
         "remove-variant-tag"),
        ("stable var log : {#deposit : Nat}", "stable var log : {#deposit : Int; #w}", None, None),
        ("stable var log : {#deposit : Int}", "stable var log : {#deposit : Nat}", "log.#deposit", "type-mismatch"),
        ("stable var f : shared Nat -> ()", "stable var f : shared Int -> ()", "f.<arg 0>", "type-mismatch"),
        ("stable var f : shared () -> async Int", "stable var f : shared () -> async Nat", "f.<result 0>",
         "type-mismatch"),
        ("stable var owner : ?{name : Text}", "stable var owner : ?{name : Blob}", "owner?.name", "type-mismatch"),
        ("stable var o : ??Nat", "stable var o : ??Text", "o??", "type-mismatch"),
        ("stable var pair : (Nat, Text)", "stable var pair : (Nat, Blob)", "pair.1", "type-mismatch"),
        ("stable var peer : actor {notify : shared Nat -> ()}", "stable var peer : actor {notify : shared Text -> ()}",
         "peer.notify.<arg 0>", "type-mismatch"),
        ("stable var w : weak Nat", "stable var w : weak Text", "w.<weak>", "type-mismatch"),
        ("stable var l : List<Int>", "stable var l : List<Nat>", "l?.0", "type-mismatch"),
        ("stable var m : [var {var b : Nat}]", "stable var m : [var {var b : Int}]", "m[].b", "mutable-invariant"),
        ("stable var r : {a : Nat}", "stable var r : {}", "r.a", "record-field-removed"),
        ("stable var r : {}", "stable var r : {a : Nat}", "r.a", "record-field-added"),
    ],
)  # fmt: skip
def test_paths(old: str, new: str, path: str | None, rule: str | None) -> None:
    report = check_compatibility(sig(old), sig(new))
    if path is None:
        assert report.compatible
        return
    assert [(i.path, i.rule) for i in report.issues] == [(path, rule)], report.format_text()


def test_all_problems_of_one_variable_are_reported() -> None:
    report = check_compatibility(
        sig("stable var accounts : [{balance : Int; owner : Principal; memo : Text}]"),
        sig("stable var accounts : [{balance : Nat; owner : Blob; note : Text}]"),
    )
    assert sorted((i.path, i.rule) for i in report.issues) == [
        ("accounts[].balance", "type-mismatch"),
        ("accounts[].memo", "record-field-removed"),
        ("accounts[].note", "record-field-added"),
        ("accounts[].owner", "type-mismatch"),
    ]
    by_path = {i.path: i for i in report.issues}
    assert by_path["accounts[].balance"].old == "Int" and by_path["accounts[].balance"].new == "Nat"
    assert by_path["accounts[].memo"].old == "Text" and by_path["accounts[].memo"].new == ""
    assert by_path["accounts[].note"].new == "Text" and by_path["accounts[].note"].old == ""


def test_all_variables_are_reported() -> None:
    report = check_compatibility(
        sig("stable var a : Nat; stable var b : Text; stable var c : [var Nat]; stable var gone : Nat"),
        sig("stable var a : Int; stable var b : Nat; stable var c : [Nat]; stable var d : Bool"),
    )
    assert [(i.path, i.rule) for i in report.issues] == [
        ("b", "type-mismatch"),
        ("c", "mutability-changed"),
        ("gone", "drop-stable-variable"),
    ]


def test_same_incompatibility_reported_at_each_use() -> None:
    report = check_compatibility(
        sig("stable var a : Box<Int>; stable var b : [Box<Int>]"),
        sig("stable var a : Box<Nat>; stable var b : [Box<Nat>]"),
    )
    assert [i.path for i in report.issues] == ["a.v", "b[].v"]


def test_recursive_type_problem_reported_once_per_path() -> None:
    defs = "type T = {#leaf; #node : (T, Nat, T)};"
    report = check_compatibility(
        sig("stable var t : T", defs), sig("stable var t : T", "type T = {#leaf; #node : (T, Text, T)};")
    )
    assert [i.path for i in report.issues] == ["t.#node.1"]


def test_report_texts_and_dicts() -> None:
    report = check_compatibility(
        sig("stable var x : Nat; stable var log : {#deposit : Nat; #w}"), sig("stable var log : {#w}")
    )
    assert not report.compatible
    text = report.format_text()
    assert text.splitlines()[0] == "incompatible: 2 errors"
    assert "error [remove-variant-tag] log.#deposit:" in text
    assert "error [drop-stable-variable] x:" in text
    assert "(with migration = func(old : {x : Nat}) : {} = {}) persistent actor" in text
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["compatible"] is False and len(d["errors"]) == 2 and d["warnings"] == []
    assert set(d["errors"][0]) == {"path", "rule", "severity", "old", "new", "message", "hint"}
    ok = check_compatibility(sig("stable var x : Nat"), sig("stable var x : Int"))
    assert ok.compatible and ok.format_text() == "compatible" and ok.to_dict()["errors"] == []


def test_issue_format_text() -> None:
    i = Issue("a.b", "type-mismatch", "Int", "Nat", "Int cannot become Nat", "convert it")
    assert i.format_text() == (
        "error [type-mismatch] a.b: Int cannot become Nat\n    old: Int\n    new: Nat\n    hint: convert it"
    )
    long = Issue("p", "r", "X" * 500, "", "m", "")
    assert "..." in long.format_text() and "(absent)" in long.format_text()


def test_types_are_shown_without_moc_hash_suffixes() -> None:
    defs = "type Account__123456 = {balance : Nat};"
    report = check_compatibility(
        sig("stable var a : [Account__123456]; stable var b : Nat", defs), sig("stable var a : [Account__123456]", defs)
    )
    assert report.compatible is False
    report = check_compatibility(sig("stable var a : Account__123456", defs), sig("stable var a : Text", defs))
    assert report.issues[0].old == "Account"


def test_argument_messages_explain_direction() -> None:
    report = check("shared Nat -> ()", "shared Int -> ()")
    assert "in a function argument" in report.issues[0].message
    assert report.issues[0].old == "Nat" and report.issues[0].new == "Int"


# ---------------------------------------------------------------------------------------------
# Stable variables and migrations


def test_top_level_mutability_may_change() -> None:
    assert check_compatibility(sig("stable var x : Nat"), sig("stable x : Nat")).compatible
    assert check_compatibility(sig("stable x : [var Nat]"), sig("stable var x : [var Nat]")).compatible


def test_new_variables_and_reordering() -> None:
    old = sig("stable var a : Nat; stable var b : Text")
    assert check_compatibility(old, sig("stable var c : Int; stable var b : Text; stable var a : Int")).compatible
    assert check_compatibility(sig(""), old).compatible


def test_drop_is_rejected_even_where_the_runtime_check_accepts_it() -> None:
    # The runtime accepts y -> x (hash 121 dropped when the new list is exhausted): moc does not.
    report = check_compatibility(sig("stable var y : Nat"), sig("stable var x : Nat"))
    assert report.rules == {"drop-stable-variable"}


V3_OLD = "actor { stable var a : Nat; stable var b : Text }"
V3_NEW = "actor ({ in var a : Nat; stable var b : Text }, { stable var b : Text; stable var c : Int })"


def test_migration_consumes_a_variable() -> None:
    report = check_compatibility(parse_signature(V3_OLD), parse_signature(V3_NEW))
    assert report.compatible
    assert [(w.path, w.rule, w.severity) for w in report.warnings] == [("a", "migration-consumes-variable", "warning")]
    assert report.format_text().startswith("compatible (1 warning)")


def test_migration_requires_a_missing_input() -> None:
    report = check_compatibility(parse_signature("actor { stable var b : Text }"), parse_signature(V3_NEW))
    assert [(i.path, i.rule) for i in report.issues] == [("a", "required-migration-input-missing")]


def test_migration_input_types_are_checked() -> None:
    report = check_compatibility(
        parse_signature("actor { stable var a : Int }"), parse_signature("actor ({ in a : Nat }, { stable c : Int })")
    )
    assert report.rules == {"type-mismatch"}
    report = check_compatibility(
        parse_signature("actor { stable var a : Int }"), parse_signature("actor ({ in a : Any }, { stable c : Int })")
    )
    assert report.rules == {"promote-to-any"}


def test_old_migration_signature_uses_post() -> None:
    old = parse_signature("actor ({ in var one : [var Nat] }, { stable var three : [var (Nat, Text)] })")
    assert check_compatibility(old, parse_signature("actor { stable var three : [var (Nat, Text)] }")).compatible
    report = check_compatibility(old, parse_signature("actor { stable var one : [var Nat] }"))
    assert report.rules == {"drop-stable-variable"}


def test_version_2_pre_fields_are_optional() -> None:
    old = parse_signature("actor { stable var zero : Nat }")
    new = parse_signature(
        "// Version: 2.0.0\nactor ({ stable var four : Nat; stable var zero : Nat }, { stable var zero : Nat })"
    )
    assert check_compatibility(old, new).compatible


def test_descriptor_labels_match_names_by_hash() -> None:
    # A signature decoded from the binary descriptor knows only label hashes (x = 120, y = 121).
    old = StableSignature("1.0.0", (), (StableField("_120_", RecordType((Field("_97_", ConType("N")),))),))
    old = replace(old, types=(TypeDef("N", (), parse_type("Nat")),))
    assert check_compatibility(old, sig("stable var x : {a : Int}")).compatible
    report = check_compatibility(old, sig("stable var y : {a : Int}"))
    assert report.rules == {"drop-stable-variable"}
    assert check_compatibility(sig("stable var x : {a : Nat}"), replace(old, post=old.post)).compatible


def test_equal_names_only_match_when_one_side_is_a_hash() -> None:
    # Different real names never match, even if their hashes collided.
    from migrate.compat import same_label

    assert same_label("x", "x") and same_label("_120_", "x") and not same_label("x", "y")


# ---------------------------------------------------------------------------------------------
# Stability, type components, depth


@pytest.mark.parametrize(
    ("t", "path"),
    [
        ("?(() -> ())", "x?"),
        ("{f : Nat -> Nat}", "x.f"),
        ("[?Error]", "x[]?"),
        ("shared (() -> ()) -> ()", "x.<arg 0>"),
        ("actor {m : () -> ()}", "x.m"),
    ],
)
def test_non_stable_types(t: str, path: str) -> None:
    report = check(t, t)
    assert [(i.path, i.rule) for i in report.issues] == [(path, "non-stable-type"), (path, "non-stable-type")]


def test_non_stable_type_only_in_the_new_version() -> None:
    report = check_compatibility(sig("stable var x : Nat"), sig("stable var x : Nat; stable var f : ?(() -> ())"))
    assert [(i.path, i.rule, i.new) for i in report.issues] == [("f?", "non-stable-type", "() -> ()")]


def test_type_components() -> None:
    a = "actor {type T = Nat; f : shared Nat -> async ()}"
    assert check(a, a).compatible
    assert check(a, a.replace("Nat;", "Int;")).rules == {"type-component-mismatch"}
    assert check(a, "actor {f : shared Nat -> async ()}").rules == {"type-component-mismatch"}
    generic = "{type P<A> = (A, Nat); v : Nat}"
    assert check(generic, "{type P<B> = (B, Nat); v : Int}").compatible


def test_non_regular_recursion_is_too_deep_but_reflexive() -> None:
    defs = "type T<A> = ?T<(A, A)>;"
    report = check("T<Nat>", "T<Int>", defs)
    assert report.rules == {"too-deep"}
    assert check("T<Nat>", "T<Nat>", defs).compatible


def test_deep_recursive_types_are_decided() -> None:
    defs = "type A = {#a : B; #z}; type B = {#b : C}; type C = {#c : A; #y : (A, B, C)};"
    report = check("A", "A", defs)
    assert report.compatible
    other = "type A = {#a : B; #z}; type B = {#b : C}; type C = {#c : A; #y : (A, B, Nat)};"
    assert check_compatibility(sig("stable var x : A", defs), sig("stable var x : A", other)).rules == {
        "type-mismatch"
    }


def test_huge_reports_are_truncated() -> None:
    # 2**12 paths lead to the one changed leaf: the report stays bounded and says so.
    defs = "".join(f"type T{k} = (T{k + 1}, T{k + 1});" for k in range(12))
    report = check_compatibility(
        sig("stable var x : T0", defs + "type T12 = Nat;"), sig("stable var x : T0", defs + "type T12 = Text;")
    )
    assert len(report.issues) == 1000 and report.rules == {"type-mismatch"}
    assert [w.rule for w in report.warnings] == ["report-truncated"]


def test_check_types() -> None:
    env = sig("").env
    assert check_types(parse_type("Nat"), parse_type("Int"), env) == []
    [issue] = check_types(parse_type("{a : Nat}"), parse_type("{}"), env)
    assert issue.path == "<value>.a" and issue.rule == "record-field-removed"


# ---------------------------------------------------------------------------------------------
# Properties


def _corpus_signatures() -> list[tuple[str, StableSignature]]:
    return [(p.name, parse_signature(p.read_text(encoding="utf-8"))) for p in sorted(CORPUS.glob("*.most"))]


CORPUS_SIGS = _corpus_signatures()


@pytest.mark.parametrize(("name", "s"), CORPUS_SIGS, ids=[n for n, _ in CORPUS_SIGS])
def test_reflexive_on_every_corpus_signature(name: str, s: StableSignature) -> None:
    same = replace(s, pre=None)  # upgrading a version to itself: its post against its post
    report = check_compatibility(s, same)
    assert {i.rule for i in report.issues} <= {"non-stable-type"}, report.format_text()


def _shuffled(t: StableType, rng: random.Random) -> StableType:
    def shuffle(xs: tuple) -> tuple:  # type: ignore[type-arg]
        items = list(xs)
        rng.shuffle(items)
        return tuple(items)

    match t:
        case RecordType(fields, tfs):
            return RecordType(shuffle(tuple(Field(f.name, _shuffled(f.typ, rng), f.mutable) for f in fields)), tfs)
        case VariantType(tags):
            return VariantType(shuffle(tuple(Tag(g.name, _shuffled(g.typ, rng)) for g in tags)))
        case ActorType(methods, tfs):
            return ActorType(shuffle(tuple(Field(m.name, _shuffled(m.typ, rng)) for m in methods)), tfs)
        case OptType(inner):
            return OptType(_shuffled(inner, rng))
        case WeakType(inner):
            return WeakType(_shuffled(inner, rng))
        case TupleType(items):
            return TupleType(tuple(_shuffled(i, rng) for i in items))
        case FuncType(sort, params, results, is_async, tps):
            return FuncType(
                sort, tuple(_shuffled(p, rng) for p in params), tuple(_shuffled(r, rng) for r in results), is_async, tps
            )
        case ConType(name, args):
            return ConType(name, tuple(_shuffled(a, rng) for a in args))
        case NamedType(n, inner):
            return NamedType(n, _shuffled(inner, rng))
        case _:
            if hasattr(t, "elem"):
                return replace(t, elem=_shuffled(t.elem, rng))  # type: ignore[call-arg, arg-type]
            return t


def _shuffle_sig(s: StableSignature, seed: int) -> StableSignature:
    rng = random.Random(seed)
    types = tuple(TypeDef(d.name, d.params, _shuffled(d.body, rng)) for d in s.types)
    post = [StableField(f.name, _shuffled(f.typ, rng), f.mutable, f.required) for f in s.post]
    rng.shuffle(post)
    pre = None
    if s.pre is not None:
        pre_l = [StableField(f.name, _shuffled(f.typ, rng), f.mutable, f.required) for f in s.pre]
        rng.shuffle(pre_l)
        pre = tuple(pre_l)
    return StableSignature(s.version, types[::-1], tuple(post), pre)


def _corpus_pairs() -> list[tuple[str, StableSignature, StableSignature]]:
    out = []
    for p in sorted(CORPUS.glob("*.old.most")):
        name = p.name[: -len(".old.most")]
        new = p.with_name(f"{name}.new.most")
        out.append((name, parse_signature(p.read_text(encoding="utf-8")), parse_signature(new.read_text("utf-8"))))
    return out


PAIRS = _corpus_pairs()


@pytest.mark.parametrize(("name", "old", "new"), PAIRS, ids=[n for n, _, _ in PAIRS])
def test_reordering_changes_nothing(name: str, old: StableSignature, new: StableSignature) -> None:
    expected = check_compatibility(old, new)
    for seed in (1, 2):
        got = check_compatibility(_shuffle_sig(old, seed), _shuffle_sig(new, seed + 10))
        assert got.compatible == expected.compatible
        assert sorted((i.path, i.rule) for i in got.issues) == sorted((i.path, i.rule) for i in expected.issues)
    shuffled = _shuffle_sig(replace(old, pre=None), 3)
    assert {i.rule for i in check_compatibility(old, shuffled).issues} <= {"non-stable-type"}


def _rename_defs(s: StableSignature, suffix: str) -> StableSignature:
    """Every type definition renamed: structure, not names, decides."""
    names = {d.name: d.name + suffix for d in s.types}

    def ren(t: StableType) -> StableType:
        match t:
            case ConType(n, args):
                return ConType(names.get(n, n), tuple(ren(a) for a in args))
            case _:
                return _map_children(t, ren)

    return StableSignature(
        s.version,
        tuple(TypeDef(names[d.name], d.params, ren(d.body)) for d in s.types),
        tuple(replace(f, typ=ren(f.typ)) for f in s.post),
        None if s.pre is None else tuple(replace(f, typ=ren(f.typ)) for f in s.pre),
    )


def _map_children(t: StableType, fn: object) -> StableType:
    f = fn  # callable StableType -> StableType
    match t:
        case RecordType(fields, tfs):
            return RecordType(tuple(Field(x.name, f(x.typ), x.mutable) for x in fields), tfs)  # type: ignore[operator]
        case VariantType(tags):
            return VariantType(tuple(Tag(g.name, f(g.typ)) for g in tags))  # type: ignore[operator]
        case ActorType(methods, tfs):
            return ActorType(tuple(Field(m.name, f(m.typ)) for m in methods), tfs)  # type: ignore[operator]
        case OptType(inner):
            return OptType(f(inner))  # type: ignore[operator]
        case WeakType(inner):
            return WeakType(f(inner))  # type: ignore[operator]
        case NamedType(n, inner):
            return NamedType(n, f(inner))  # type: ignore[operator]
        case TupleType(items):
            return TupleType(tuple(f(i) for i in items))  # type: ignore[operator]
        case FuncType(sort, ps, rs, a, tps):
            return FuncType(sort, tuple(f(p) for p in ps), tuple(f(r) for r in rs), a, tps)  # type: ignore[operator]
        case _:
            if hasattr(t, "elem"):
                return replace(t, elem=f(t.elem))  # type: ignore[operator, call-arg, arg-type]
            return t


@pytest.mark.parametrize(("name", "old", "new"), PAIRS, ids=[n for n, _, _ in PAIRS])
def test_renaming_type_definitions_changes_nothing(name: str, old: StableSignature, new: StableSignature) -> None:
    expected = check_compatibility(old, new)
    got = check_compatibility(_rename_defs(old, "__1"), _rename_defs(new, "__2"))
    assert got.compatible == expected.compatible
    assert sorted((i.path, i.rule) for i in got.issues) == sorted((i.path, i.rule) for i in expected.issues)


POOL = [
    "Nat", "Int", "Null", "None", "Any", "?Nat", "?Int", "??Nat", "[Nat]", "[Int]", "[var Nat]", "[var Int]",
    "{#a}", "{#a; #b}", "{#a : Nat}", "{#a : Int; #b}", "{a : Nat}", "{a : Int}", "(Nat, Nat)", "(Nat, Int)",
    "shared Nat -> async Int", "shared Int -> async Nat", "shared Int -> async Int", "shared Nat -> async Nat",
    "List<Nat>", "List<Int>", "Box<Nat>", "?None", "Char", "Nat32",
]  # fmt: skip


def test_transitivity_and_antisymmetry_on_a_pool() -> None:
    env = sig("").env
    types = [parse_type(t, list(env.values())) for t in POOL]
    ok = {(i, j): not check_types(a, b, env) for (i, a), (j, b) in product(enumerate(types), repeat=2)}
    assert all(ok[(i, i)] for i in range(len(types)))
    for i, j, k in product(range(len(types)), repeat=3):
        if ok[(i, j)] and ok[(j, k)]:
            assert ok[(i, k)], (POOL[i], POOL[j], POOL[k])
    # Mutually related types are interchangeable everywhere, also under var.
    for i, j in product(range(len(types)), repeat=2):
        if i != j and ok[(i, j)] and ok[(j, i)]:
            assert not check_types(parse_type(f"[var ({POOL[i]})]", list(env.values())),
                                   parse_type(f"[var ({POOL[j]})]", list(env.values())), env)  # fmt: skip


def test_variance_of_function_types() -> None:
    env = sig("").env
    narrow, wide = "Nat", "Int"
    cases = {
        f"shared ({narrow}) -> ()": f"shared ({wide}) -> ()",  # argument widened: rejected
        f"shared () -> async ({wide})": f"shared () -> async ({narrow})",  # result narrowed: rejected
    }
    for old, new in cases.items():
        assert check_types(parse_type(old), parse_type(new), env)
        assert not check_types(parse_type(new), parse_type(old), env)
    # Two levels of arguments cancel out.
    assert not check_types(
        parse_type("shared (shared Nat -> ()) -> ()"), parse_type("shared (shared Int -> ()) -> ()"), env
    )
    wide_inner = parse_type("shared (shared Int -> ()) -> ()")
    assert check_types(wide_inner, parse_type("shared (shared Nat -> ()) -> ()"), env)


def test_generic_function_binders_are_positional() -> None:
    f = FuncType("local", (VarType("A"),), (VarType("A"),), False, ("A",))
    g = FuncType("local", (VarType("B"),), (VarType("B"),), False, ("B",))
    assert [i.rule for i in check_types(f, g, {})] == []
