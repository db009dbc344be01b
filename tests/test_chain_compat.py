"""Checking upgrades onto migration chains (``migrate.chain``, ``.most`` 4.0.0), against the pinned moc.

* ``.most`` 4.0.0 as the pinned moc writes it parses and prints back byte for byte (type
  definitions, long lines, a chain from a migrations directory, a long chain);
* every pair below is judged by graphcopy and by moc's ``stableCompatible`` on the same compiled
  signatures: the verdicts agree, except where graphcopy is stricter, and then the finding is one
  of the rules that say so (a migration that never runs, a field left uninitialized); those cases
  are also run on graphcopy with ``--force`` to show the runtime traps as the finding says;
* every chain rule id is exercised, with its path, migration and hint; the report's JSON;
* ``graphcopy check`` and ``graphcopy upgrade`` on the command line; parse errors name their source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from migrate import UpgradeRefusedError, plan_upgrade, upgrade
from migrate.check import check
from migrate.compat import check_compatibility
from migrate.errors import StableTypeError
from migrate.report import CHAIN_RULES
from migrate.stable_types import format_signature, parse_signature
from persist.errors import CanisterTrapError
from persist.session import Store, open_store
from tests.chain_helpers import (
    ADD_ACCOUNTS,
    CHAINS,
    COUNT_TO_INT,
    DROP_OWNER,
    FAILS,
    INIT,
    chain,
    inline,
    install_with_data,
    long_chain,
)
from tests.upgrade_helpers import call, install, with_section
from toolchain.moc import CompiledCanister, compile_motoko, stable_compatibility

runner = CliRunner()
Build = Callable[[], CompiledCanister]

BUILDS: dict[str, Build] = {
    "v1": lambda: chain("v1"),
    "v2": lambda: chain("v2"),
    "v3": lambda: chain("v3"),
    "v4": lambda: chain("v4"),
    "v4_fails": lambda: chain("v4_fails"),
    "inline_v1": lambda: inline("inline_v1"),
    "inline_v2_discard": lambda: inline("inline_v2_discard"),
    "inline_v2_trap": lambda: inline("inline_v2_trap"),
    # the head renamed: the same CountToInt module under a new name
    "v3_renamed": lambda: chain("v3", rename={COUNT_TO_INT: "20250302_000000_CountToInt"}),
    # AddAccounts backdated before Init: it sorts before everything the canister has applied
    "v2_backdated": lambda: chain("v2", drop=(ADD_ACCOUNTS,), extra={"20241201_000000_AddAccounts":
                                                                    f"migrations/{ADD_ACCOUNTS}"}),
    # CountToInt backdated before AddAccounts: harmless here, but it never runs
    "v3_backdated": lambda: chain("v3", drop=(COUNT_TO_INT,), extra={"20250115_000000_CountToInt":
                                                                    f"migrations/{COUNT_TO_INT}"}),
    # AddAccounts edited after it was applied
    "v3_edited": lambda: chain("v3", extra={ADD_ACCOUNTS: "variants/AddAccountsAndOwner"}),
    # CountToInt edited to keep a Nat, then a new step reads count as Nat
    "v2_reads_nat": lambda: chain("v3", actor="chain_v2", extra={
        COUNT_TO_INT: "variants/CountStaysNat", "20250601_000000_ReadCountAsNat": "variants/ReadCountAsNat"}),
    # Init left out of the chain (mops build-limit): trimmed
    "v4_trimmed": lambda: chain("v4", drop=(INIT,), flags=("-A", "M0254")),
    # AddAccounts deleted from the middle of the chain
    "v3_hole": lambda: chain("v3", drop=(ADD_ACCOUNTS,), flags=("-A", "M0254")),
    # a chain adopted by a canister that had none
    "adopt": lambda: chain("v1", drop=(INIT,), extra={"20250101_000000_Adopt": "variants/Adopt"}),
    "adopt_extra": lambda: chain("v1", drop=(INIT,), extra={"20250101_000000_Adopt": "variants/AdoptNeedsExtra"}),
}


def most(name: str) -> str:
    return BUILDS[name]().most


# (old, new, moc compatible?, our error rules, our warning rules, pending migrations)
PAIRS: list[tuple[str, str, bool, set[str], set[str], list[str] | None]] = [
    ("v1", "v2", True, set(), set(), [ADD_ACCOUNTS]),
    ("v2", "v3", True, set(), set(), [COUNT_TO_INT]),
    ("v3", "v4", True, set(), {"migration-discards-field"}, [DROP_OWNER]),
    ("v1", "v4", True, set(), {"migration-discards-field"}, [ADD_ACCOUNTS, COUNT_TO_INT, DROP_OWNER]),
    ("v4", "v4", True, set(), set(), []),
    ("v4", "v4_fails", True, set(), set(), [FAILS]),
    ("v3", "v2", False, {"applied-migration-missing", "migration-overwrites-field"}, set(), [INIT, ADD_ACCOUNTS]),
    ("v3", "v3_renamed", False, {"applied-migration-missing", "migration-overwrites-field"}, set(), None),
    ("v1", "v2_backdated", True, {"migration-never-runs", "actor-field-uninitialized"}, set(), []),
    ("v2", "v3_backdated", True, {"migration-never-runs"}, set(), []),
    ("v2", "v3_edited", True, set(), {"applied-migration-edited"}, [COUNT_TO_INT]),
    ("v3", "v2_reads_nat", False, {"type-mismatch"}, {"applied-migration-edited"}, ["20250601_000000_ReadCountAsNat"]),
    ("v4", "v4_trimmed", True, set(), set(), []),
    ("v3", "v3_hole", True, set(), {"applied-migration-removed"}, []),
    ("v2", "inline_v1", False, {"chain-abandoned"}, set(), None),
    ("inline_v1", "adopt", True, set(), set(), ["20250101_000000_Adopt"]),
    ("inline_v1", "v1", False, {"migration-overwrites-field"}, set(), [INIT]),
    ("inline_v1", "adopt_extra", False, {"migration-input-missing"}, set(), ["20250101_000000_Adopt"]),
    ("inline_v1", "inline_v2_discard", True, set(), {"migration-consumes-variable"}, None),
    ("inline_v1", "inline_v2_trap", True, set(), set(), None),
]
# Where graphcopy is stricter than moc's check (the runtime's answer; see test_stricter_findings_are_runtime_facts).
STRICTER = {"migration-never-runs", "actor-field-uninitialized"}


@pytest.fixture(scope="module")
def _need_moc() -> None:
    from toolchain.moc import require_moc

    require_moc()


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_moc_output_parses_and_prints_back_byte_for_byte(_need_moc: None, name: str) -> None:
    text = most(name)
    sig = parse_signature(text)
    assert format_signature(sig) == text
    assert sig.has_chain == text.startswith("// Version: 4.0.0")


def test_typed_and_long_chains_print_back(_need_moc: None) -> None:
    typed = compile_motoko(CHAINS / "typed.mo", migrations=CHAINS / "typed_migrations").most
    sig = parse_signature(typed)
    assert format_signature(sig) == typed and len(sig.types) == 6 and sig.last_migration == "20250201_000000_Tags"
    assert '"20250101_000000_Init" :\n    {} ->\n      {\n' in typed  # moc broke this entry over lines
    long = long_chain(60).most
    assert format_signature(parse_signature(long)) == long and len(parse_signature(long).chain or ()) == 61


@pytest.mark.parametrize(("old", "new", "moc_ok", "errors", "warnings", "pending"), PAIRS,
                         ids=[f"{o}->{n}" for o, n, *_ in PAIRS])
def test_verdicts_agree_with_moc(_need_moc: None, old: str, new: str, moc_ok: bool, errors: set[str],
                                 warnings: set[str], pending: list[str] | None) -> None:
    old_most, new_most = most(old), most(new)
    moc_errors = [d for d in stable_compatibility(old_most, new_most) if d.severity == "error"]
    assert (not moc_errors) == moc_ok, [d.message for d in moc_errors]
    report = check_compatibility(parse_signature(old_most), parse_signature(new_most))
    assert {i.rule for i in report.issues} == errors, report.format_text()
    assert {w.rule for w in report.warnings} == warnings, report.format_text()
    if report.compatible != moc_ok:  # only ever stricter, and only by the rules that say so
        assert moc_ok and not report.compatible and report.rules & STRICTER, report.format_text()
    if pending is None:
        assert report.chain is None or report.chain.last_applied is not None
    else:
        assert report.chain is not None and [p.name for p in report.chain.pending] == pending
    for issue in [*report.issues, *report.warnings]:
        assert issue.path and issue.hint and issue.message, issue
        if issue.rule in CHAIN_RULES - {"chain-abandoned", "actor-field-uninitialized", "drop-stable-variable"}:
            assert issue.migration, issue


def test_findings_name_the_migration_and_explain(_need_moc: None) -> None:
    renamed = check_compatibility(parse_signature(most("v3")), parse_signature(most("v3_renamed")))
    missing = next(i for i in renamed.issues if i.rule == "applied-migration-missing")
    assert missing.path == f"migrations/{COUNT_TO_INT}" and missing.migration == COUNT_TO_INT
    assert "looks renamed to `20250302_000000_CountToInt`" in missing.message
    assert f"restore the file `{COUNT_TO_INT}.mo`" in missing.hint
    # A domain mismatch is reported at the migration that reads the field.
    nat = check_compatibility(parse_signature(most("v3")), parse_signature(most("v2_reads_nat")))
    [mismatch] = nat.issues
    assert (mismatch.path, mismatch.old, mismatch.new) == ("count", "Int", "Nat")
    assert mismatch.migration == "20250601_000000_ReadCountAsNat" and "reads it" in mismatch.message
    # Trimmed applied migrations are no finding, but the summary says so.
    trimmed = check_compatibility(parse_signature(most("v4")), parse_signature(most("v4_trimmed")))
    assert trimmed.chain is not None and trimmed.chain.trimmed == (INIT,)
    assert "trimmed" in trimmed.format_text()
    dropped = check_compatibility(parse_signature(most("v3")), parse_signature(most("v4")))
    assert dropped.chain is not None and dropped.chain.pending[0].discards == ("owner",)
    assert "(discards owner)" in dropped.format_text()


def test_an_applied_migration_that_would_run_again(_need_moc: None) -> None:
    # A heap whose history ran AddAccounts twice (as after a chain restarted from its first step)
    # has AddAccounts as its newest entry, so the steps after it in the chain run again.
    v4 = parse_signature(most("v4"))
    applied = [INIT, ADD_ACCOUNTS, COUNT_TO_INT, DROP_OWNER, ADD_ACCOUNTS]
    report = check_compatibility(v4, v4, applied=applied)
    reruns = [i for i in report.issues if i.rule == "applied-migration-rerun"]
    assert [i.migration for i in reruns] == [COUNT_TO_INT, DROP_OWNER]
    assert report.chain is not None and report.chain.applied_source == "canister heap"


def test_every_chain_rule_is_exercised() -> None:
    seen = {r for _, _, _, errs, warns, _ in PAIRS for r in errs | warns} | {"applied-migration-rerun"}
    assert CHAIN_RULES <= seen | {"drop-stable-variable"}


def test_report_json(_need_moc: None) -> None:
    report = check_compatibility(parse_signature(most("v3")), parse_signature(most("v4")))
    doc = report.to_dict()
    assert doc["compatible"] is True and doc["chain"]["last_applied"] == COUNT_TO_INT
    assert doc["chain"]["applied"] == [INIT, ADD_ACCOUNTS, COUNT_TO_INT]
    assert doc["chain"]["applied_source"] == "old signature"
    assert doc["chain"]["pending"] == [{"name": DROP_OWNER, "reads": "{var owner : Text}", "writes": "{}",
                                        "discards": ["owner"]}]
    assert doc["warnings"][0]["migration"] == DROP_OWNER
    assert "migration" not in check_compatibility(parse_signature(most("inline_v1")), parse_signature(
        most("inline_v2_discard"))).to_dict()["warnings"][0]


# --------------------------------------------------------------------------- on a store


@pytest.fixture
def store(sqlite_url: str, moc: None) -> Iterator[Store]:
    with open_store(sqlite_url) as st:
        yield st


@pytest.mark.parametrize(("old", "new", "trap"), [
    ("v1", "v2_backdated", "stable variable `accounts` of type `[(Text, Nat)]` not found in persisted state"),
    ("v3", "v3_renamed", "Memory-incompatible program upgrade"),
    ("v3", "v2_reads_nat", "Memory-incompatible program upgrade"),
], ids=["never runs: uninitialized field", "head renamed", "domain mismatch"])
def test_stricter_findings_are_runtime_facts(store: Store, old: str, new: str, trap: str) -> None:
    install(store, "c", BUILDS[old]().wasm)
    with pytest.raises(UpgradeRefusedError):
        upgrade(store, "c", BUILDS[new]().wasm)
    with pytest.raises(CanisterTrapError, match=re.escape(trap)):  # forced, the canister's runtime decides
        upgrade(store, "c", BUILDS[new]().wasm, mode="keep", force=True)


def test_the_heap_list_decides_over_the_old_module(store: Store) -> None:
    install(store, "c", chain("v2").wasm)
    plan = plan_upgrade(store, "c", chain("v4").wasm)
    assert plan.old.applied_migrations == [INIT, ADD_ACCOUNTS]
    assert plan.report is not None and plan.report.chain is not None
    assert plan.report.chain.applied_source == "canister heap"
    assert [p.name for p in plan.report.chain.pending] == [COUNT_TO_INT, DROP_OWNER]
    assert plan.to_dict()["old"]["applied_migrations"] == [INIT, ADD_ACCOUNTS]
    result = check("c", str(_write(store, chain("v4"))), store=store)
    assert result.report.chain is not None and result.report.chain.applied_source == "canister heap"


def _write(store: Store, compiled: CompiledCanister) -> Path:
    path = Path(str(store.url).removeprefix("sqlite:///")).with_name(f"{compiled.cache_key[:12]}.wasm")
    path.write_bytes(compiled.wasm)
    return path


def test_inline_migration_that_discards_a_field_and_one_that_traps(store: Store) -> None:
    install_with_data(store, "i", inline("inline_v1"), incs=2, owner="ada")
    plan = plan_upgrade(store, "i", inline("inline_v2_trap").wasm)
    assert plan.report is not None and plan.report.compatible and plan.report.chain is None
    with pytest.raises(CanisterTrapError, match="inline migration: refusing to convert count"):
        upgrade(store, "i", inline("inline_v2_trap").wasm)
    assert call(store, "i", "state") == '("count=2 owner=ada")'  # nothing changed
    plan = plan_upgrade(store, "i", inline("inline_v2_discard").wasm)
    assert [(w.rule, w.path) for w in plan.report.warnings] == [("migration-consumes-variable", "owner")]
    upgrade(store, "i", inline("inline_v2_discard").wasm)
    assert call(store, "i", "state") == '("count=+2")' and call(store, "i", "dec") == "(1 : int)"


# --------------------------------------------------------------------------- the command line


def test_cli_check_and_upgrade(sqlite_url: str, moc: None, tmp_path: Path) -> None:
    paths = {}
    for name in ("v1", "v2", "v3"):
        paths[name] = tmp_path / f"{name}.wasm"
        paths[name].write_bytes(BUILDS[name]().wasm)
    db = ["--db", sqlite_url]
    assert runner.invoke(app, [*db, "install", "c", str(paths["v2"])]).exit_code == 0
    res = runner.invoke(app, [*db, "check", "c", str(paths["v3"])])
    assert res.exit_code == 0, res.output
    assert "this upgrade runs, in order:" in res.stdout and f"{COUNT_TO_INT} : {{var count : Nat}}" in res.stdout
    res = runner.invoke(app, [*db, "check", "c", str(paths["v1"]), "--json"])  # back to v1: AddAccounts is gone
    doc = json.loads(res.stdout)
    assert res.exit_code == 1 and doc["compatible"] is False and doc["chain"]["applied_source"] == "canister heap"
    assert {e["rule"] for e in doc["errors"]} == {"applied-migration-missing", "migration-overwrites-field",
                                                  "drop-stable-variable"}
    assert next(e for e in doc["errors"] if e["rule"] == "applied-migration-missing")["migration"] == ADD_ACCOUNTS
    res = runner.invoke(app, [*db, "upgrade", "c", str(paths["v3"])])
    assert res.exit_code == 0, res.output
    assert "migration chain: 3 migrations" in res.stdout and f"ran 1 migration: {COUNT_TO_INT}" in res.stdout
    res = runner.invoke(app, [*db, "upgrade", "c", str(paths["v3"]), "--json"])  # unchanged: skipped, as dfx does
    assert json.loads(res.stdout)["executed"] is False
    res = runner.invoke(app, [*db, "upgrade", "c", str(paths["v3"]), "--upgrade-unchanged", "--json"])
    assert json.loads(res.stdout)["migrations_run"] == []  # upgraded again: every migration applied already


def test_parse_errors_name_their_source(tmp_path: Path, sqlite_url: str, moc: None) -> None:
    bad = tmp_path / "bad.most"
    bad.write_text('// Version: 4.0.0\n{\n  "a" : {} -> {};\n  b : {} -> {}\n}\nactor  {\n};\n')
    with pytest.raises(StableTypeError, match=r"bad\.most: line 4, column 3: expected a migration name"):
        check(str(bad), str(bad))
    expected = "x.most: line 3, column 18: expected '}' to close the migration chain, found the string 'b'"
    with pytest.raises(StableTypeError, match=expected):
        parse_signature('// Version: 4.0.0\n{\n  "a" : {} -> {} "b"\n}\nactor {};\n', source="x.most")
    with pytest.raises(StableTypeError, match="migration 'a': a migration must be a function"):
        parse_signature('{ "a" : Nat } actor { };')
    with open_store(sqlite_url) as store:
        install(store, "c", chain("v1").wasm)
        broken = with_section(chain("v2").wasm, "icp:private motoko:stable-types", "// Version: 4.0.0\n{ oops")
        with pytest.raises(StableTypeError, match=r"the new module's motoko:stable-types section \("):
            plan_upgrade(store, "c", broken)
