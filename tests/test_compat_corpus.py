"""The compatibility relation agrees with the real ``moc --stable-compatible`` (the pinned npm moc).

``tests/compat_corpus/`` holds signature pairs: ``<case>.old.most``/``<case>.new.most`` and, for
migrations and real programs, ``mo/<case>.old.mo``/``mo/<case>.new.mo`` compiled with moc. The first
line of each new file says what graphcopy expects (``// expect: compatible`` or the rule ids).
Every pair must (1) give graphcopy's expected rules, and (2) get the same verdict from moc, except
for the cases in ``STRICTER_THAN_MOC``, where graphcopy rejects what moc accepts, each with its
reason. moc's answers are cached on disk (``.cache/moc``): a cold run costs ~1-2 s per pair, run in
parallel here; a warm run takes a second or two.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from migrate.compat import RULES, check_compatibility
from migrate.stable_types import format_signature, parse_signature

CORPUS = Path(__file__).parent / "compat_corpus"
MO = CORPUS / "mo"
MOST_CASES = sorted(p.name[: -len(".old.most")] for p in CORPUS.glob("*.old.most"))
MO_CASES = sorted(p.name[: -len(".new.mo")] for p in MO.glob("*.new.mo"))

_NONE_TO_ANY = (
    "moc 1.x accepts None -> Any (its `Non <: _` case fires before the `Any` type constructor is "
    "unfolded); the runtime check rejects promotion to Any, None included, so graphcopy does too"
)

#: Pairs where graphcopy deliberately says "incompatible" and moc says "compatible".
STRICTER_THAN_MOC: dict[str, str] = {
    "none-to-any": _NONE_TO_ANY,
    "opt-none-to-opt-any": _NONE_TO_ANY,
    "field-none-to-any": _NONE_TO_ANY,
}


def _expected(new_text: str) -> set[str]:
    first = new_text.splitlines()[0]
    assert first.startswith("// expect:"), "the new file of a pair starts with `// expect: ...`"
    words = set(first.split(":", 1)[1].split())
    assert words == {"compatible"} or words <= set(RULES), words
    return set() if words == {"compatible"} else words


def _most_pair(case: str) -> tuple[str, str]:
    return (
        (CORPUS / f"{case}.old.most").read_text(encoding="utf-8"),
        (CORPUS / f"{case}.new.most").read_text(encoding="utf-8"),
    )


def test_corpus_is_big_enough() -> None:
    assert len(MOST_CASES) + len(MO_CASES) >= 100
    assert set(STRICTER_THAN_MOC) <= set(MOST_CASES) | set(MO_CASES)


@pytest.mark.parametrize("case", MOST_CASES)
def test_most_pair_gives_the_expected_rules(case: str) -> None:
    old, new = _most_pair(case)
    report = check_compatibility(parse_signature(old), parse_signature(new))
    assert report.rules == _expected(new), report.format_text()


# ---------------------------------------------------------------------------------------------
# moc


@pytest.fixture(scope="module")
def moc_errors(moc: None) -> dict[str, list[str]]:
    """moc's errors for every .most pair (empty list = compatible), fetched in parallel."""
    from toolchain.moc import stable_compatible

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = pool.map(lambda c: stable_compatible(*_most_pair(c)), MOST_CASES)
        return dict(zip(MOST_CASES, answers, strict=True))


@pytest.fixture(scope="module")
def compiled(moc: None) -> dict[str, tuple[str, str, list[str]]]:
    """For every .mo pair: (old .most, new .most, moc's errors), compiled in parallel."""
    from toolchain.moc import compile_motoko, stable_compatible

    def build(case: str) -> tuple[str, str, list[str]]:
        old = compile_motoko(MO / f"{case}.old.mo", name="old").most
        new = compile_motoko(MO / f"{case}.new.mo", name="new").most
        return old, new, stable_compatible(old, new)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(MO_CASES, pool.map(build, MO_CASES), strict=True))


def _agree(case: str, moc_errs: list[str], compatible: bool) -> None:
    moc_ok = not moc_errs
    if case in STRICTER_THAN_MOC:
        assert moc_ok and not compatible, f"{case} is listed as stricter than moc, but moc says {moc_errs or 'ok'}"
    else:
        assert moc_ok == compatible, f"{case}: moc says {moc_errs or 'compatible'}, graphcopy {compatible}"


@pytest.mark.parametrize("case", MOST_CASES)
def test_most_pair_agrees_with_moc(case: str, moc_errors: dict[str, list[str]]) -> None:
    old, new = _most_pair(case)
    report = check_compatibility(parse_signature(old), parse_signature(new))
    _agree(case, moc_errors[case], report.compatible)


@pytest.mark.parametrize("case", MO_CASES)
def test_mo_pair(case: str, compiled: dict[str, tuple[str, str, list[str]]]) -> None:
    old_text, new_text, moc_errs = compiled[case]
    old, new = parse_signature(old_text), parse_signature(new_text)
    # What moc printed, graphcopy prints back byte for byte.
    assert format_signature(old) == old_text
    assert format_signature(new) == new_text
    report = check_compatibility(old, new)
    assert report.rules == _expected((MO / f"{case}.new.mo").read_text(encoding="utf-8")), report.format_text()
    _agree(case, moc_errs, report.compatible)


def test_migration_output_is_version_3(compiled: dict[str, tuple[str, str, list[str]]]) -> None:
    _, new_text, _ = compiled["migrate-drop"]
    sig = parse_signature(new_text)
    assert sig.version == "3.0.0" and sig.pre is not None
    assert [(f.name, f.required) for f in sig.pre] == [("a", True), ("b", False)]
    report = check_compatibility(parse_signature(compiled["migrate-drop"][0]), sig)
    assert [w.rule for w in report.warnings] == ["migration-consumes-variable"]


def test_all_types_program_round_trips_and_is_self_compatible(moc: None) -> None:
    from toolchain.moc import compile_motoko, stable_compatible

    most = compile_motoko(MO / "all-types.mo", name="all").most
    sig = parse_signature(most)
    assert format_signature(sig) == most
    assert len(sig.fields) >= 25
    assert check_compatibility(sig, sig).compatible
    assert stable_compatible(most, most) == []
