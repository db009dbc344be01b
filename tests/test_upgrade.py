"""Upgrades: install_code semantics, the planner, and keep/replace upgrades of real moc canisters.

* ``persist.execution.install_code.upgrade_code``: the IC's option checks and their texts, and atomicity: a
  trap in pre_upgrade, start or post_upgrade, or an exhausted budget, leaves the old module, heap
  and stable memory byte for byte (compared in SQL, and through queries in a fresh store);
  ``skip_pre_upgrade``.
* ``migrate.upgrade`` / ``migrate.plan``: keep-upgrades that add a stable variable, widen Nat to
  Int and add a variant tag keep the data; an incompatible upgrade is refused with every issue
  and nothing changes; forced, the canister's own check refuses it; non-Motoko modules.
* ``graphcopy upgrade`` on the command line: the plan first, exit codes, --json, --caller.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from migrate import UpgradeRefusedError, plan_upgrade, upgrade
from persist.errors import CanisterTrapError, NotAuthorizedError, UpgradeOptionError
from persist.execution.install_code import INVALID_KEEP, MISSING_OPTION, upgrade_code
from persist.host.limits import Limits
from persist.session import Store, open_store
from tests.upgrade_helpers import (
    call,
    history_kinds,
    install,
    motoko,
    plain_get,
    plain_set,
    plain_wat,
    snapshot,
    with_eop_section,
)

# The host and durability suites run under both heap dirty-tracking mechanisms (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("dirty_tracking")

runner = CliRunner()


@pytest.fixture
def store(sqlite_url: str, moc: None) -> Iterator[Store]:
    with open_store(sqlite_url) as st:
        yield st


def shapes(store: Store, name: str = "s", module: str = "shapes_v1") -> None:
    install(store, name, motoko(module))
    call(store, name, "add", '("tri", variant { red }, 3 : nat)')
    call(store, name, "add", '("square", variant { green }, 4 : nat)')
    call(store, name, "setOwner", '("ada")')


V1_DUMP = '("count=7 owner=ada tri:#red:3 square:#green:4")'


# --------------------------------------------------------------------------- install_code semantics


def test_eop_module_needs_the_option_and_keep_needs_an_eop_module(store: Store) -> None:
    shapes(store)
    before = snapshot(store, "s")
    with pytest.raises(UpgradeOptionError) as exc:
        upgrade_code(store, "s", motoko("shapes_v2_extra_var"))
    assert str(exc.value) == MISSING_OPTION
    with pytest.raises(UpgradeOptionError) as exc:
        upgrade_code(store, "s", plain_wat(version=2), wasm_memory_persistence="keep")
    assert str(exc.value) == INVALID_KEEP
    assert snapshot(store, "s") == before
    assert call(store, "s", "dump") == V1_DUMP


@pytest.mark.parametrize("failure", ["pre_upgrade", "start", "post_upgrade", "budget"])
def test_a_failing_upgrade_restores_module_heap_and_stable_memory(sqlite_url: str, failure: str) -> None:
    limits = Limits(install_instructions=2_000_000) if failure == "budget" else None
    with open_store(sqlite_url, limits=limits) as st:
        install(st, "w", plain_wat(version=1, eop=True, trap_pre=failure == "pre_upgrade"))
        plain_set(st, "w", 41)
        before = snapshot(st, "w")
        new = plain_wat(version=2, eop=True, trap_start=failure == "start", trap_post=failure == "post_upgrade",
                        burn_post=10_000_000 if failure == "budget" else 0)
        with pytest.raises(CanisterTrapError, match="rolled back") as exc:
            upgrade_code(st, "w", new, wasm_memory_persistence="keep")
        expected = {"pre_upgrade": "pre traps", "start": "start traps", "post_upgrade": "post traps",
                    "budget": "instructions for single message execution"}[failure]
        assert expected in str(exc.value)
        assert snapshot(st, "w") == before
        # the live instance was put back too: pre_upgrade's marks (0x508, stable word 8) are gone
        assert plain_get(st, "w") == (1, 41, 0, 41, 0)
        assert history_kinds(st, "w") == ["create", "install"]
    with open_store(sqlite_url) as st:  # and what a fresh process sees
        assert plain_get(st, "w") == (1, 41, 0, 41, 0)


def test_keep_and_replace_on_hand_written_modules(store: Store) -> None:
    install(store, "w", plain_wat(version=1, eop=True))
    plain_set(store, "w", 41)
    upgrade_code(store, "w", plain_wat(version=2, eop=True), wasm_memory_persistence="keep")
    assert plain_get(store, "w") == (2, 41, 0xAA, 41, 0xBB)  # the heap pre_upgrade left, and stable memory
    upgrade_code(store, "w", plain_wat(version=3), wasm_memory_persistence="replace")
    assert plain_get(store, "w") == (3, 0, 0, 41, 0xBB)  # a fresh heap; stable memory kept
    upgrade_code(store, "w", plain_wat(version=4))  # a classical module needs no option
    assert plain_get(store, "w")[0] == 4


def test_instances_left_behind_by_upgrades_are_freed(store: Store) -> None:
    """wasmtime-py keeps host functions alive process-wide until their store is dropped; they reach
    the instance through a weak proxy, so upgraded-away and evicted instances (and their memories)
    are freed. A kept heap keeps the predecessor whose stable-memory helper it shares."""
    import gc
    import weakref

    install(store, "w", plain_wat(version=1, eop=True))
    plain_set(store, "w", 7)
    refs = [weakref.ref(next(iter(store.live.values())).live)]
    upgrade_code(store, "w", plain_wat(version=2, eop=True), wasm_memory_persistence="keep")
    refs.append(weakref.ref(next(iter(store.live.values())).live))
    upgrade_code(store, "w", plain_wat(version=3, eop=True), wasm_memory_persistence="replace")
    assert plain_get(store, "w") == (3, 0, 0, 7, 0xBB)
    store.live.clear()
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert plain_get(store, "w") == (3, 0, 0, 7, 0xBB)  # reloaded from SQL


def test_skip_pre_upgrade(store: Store) -> None:
    install(store, "w", plain_wat(version=1, eop=True, trap_pre=True))
    plain_set(store, "w", 5)
    with pytest.raises(CanisterTrapError, match="pre traps"):
        upgrade_code(store, "w", plain_wat(version=2, eop=True), wasm_memory_persistence="keep")
    upgrade_code(store, "w", plain_wat(version=2, eop=True), wasm_memory_persistence="keep", skip_pre_upgrade=True)
    assert plain_get(store, "w") == (2, 5, 0, 5, 0)  # pre_upgrade did not run

    # A Motoko canister whose preupgrade always traps can be upgraded only by skipping it; moc's
    # pre_upgrade is also what hands the stable variables over, so they start afresh (verified).
    shapes(store, "p", "shapes_trap_pre")
    fixed = motoko("shapes_pre_fixed")
    with pytest.raises(CanisterTrapError, match="preupgrade refuses on purpose"):
        upgrade(store, "p", fixed)
    assert call(store, "p", "dump") == V1_DUMP
    with pytest.raises(UpgradeRefusedError, match="resets every stable variable"):
        upgrade(store, "p", fixed, skip_pre_upgrade=True)
    out = upgrade(store, "p", fixed, skip_pre_upgrade=True, force=True)
    assert out.executed and out.path == "keep"
    assert call(store, "p", "dump") == '("count=0 owner=nobody")'


# --------------------------------------------------------------------------- planned keep upgrades


def test_keep_upgrades_add_a_variable_widen_nat_to_int_and_add_a_tag(store: Store) -> None:
    shapes(store)
    plan = plan_upgrade(store, "s", motoko("shapes_v2_extra_var"))
    assert (plan.path, plan.verdict) == ("keep", "compatible")
    assert plan.old.signature_source == "old module, confirmed by the persisted descriptor"
    assert plan.old.layout == plan.new.layout == "64-bit, layout version 1"
    text = plan.format_text()
    assert "stable var note : Text" in text and "layout version 1" in text and "path: keep" in text
    out = upgrade(store, "s", motoko("shapes_v2_extra_var"))
    assert (out.path, out.executed) == ("keep", True)
    assert call(store, "s", "dump") == V1_DUMP
    assert call(store, "s", "getNote") == '("added in v2")'

    out = upgrade(store, "s", motoko("shapes_v3_int_and_tag"))
    assert out.path == "keep"
    assert call(store, "s", "dump") == '("count=+7 owner=ada tri:#red:3 square:#green:4")'
    assert call(store, "s", "total") == "(7 : int)"
    call(store, "s", "add", '("pent", variant { blue }, 5 : nat)')
    assert call(store, "s", "subtract", "(20 : nat)") == "(-8 : int)"
    assert call(store, "s", "dump") == '("count=-8 owner=ada tri:#red:3 square:#green:4 pent:#blue:5")'
    assert call(store, "s", "getNote") == '("added in v2")'
    assert history_kinds(store, "s")[-2:] == ["upgrade", "upgrade"]


def test_incompatible_upgrade_is_refused_then_forced_and_refused_by_the_canister(store: Store) -> None:
    shapes(store)
    upgrade(store, "s", motoko("shapes_v2_extra_var"))
    before = snapshot(store, "s")
    bad = motoko("shapes_bad_text")
    with pytest.raises(UpgradeRefusedError) as exc:
        upgrade(store, "s", bad)
    plan = exc.value.plan
    assert plan.path == "refuse" and plan.verdict == "incompatible"
    assert plan.report is not None
    assert {(i.path, i.rule) for i in plan.report.issues} == {("count", "type-mismatch"),
                                                               ("note", "drop-stable-variable")}
    assert "error [type-mismatch] count: Nat cannot become Text" in plan.format_text()
    with pytest.raises(UpgradeRefusedError, match="--force"):
        upgrade(store, "s", bad, mode="keep")
    with pytest.raises(UpgradeRefusedError, match="never forced"):
        upgrade(store, "s", bad, mode="graph-copy", force=True)
    assert snapshot(store, "s") == before

    with pytest.raises(CanisterTrapError, match="RTS error: Memory-incompatible program upgrade"):
        upgrade(store, "s", bad, mode="keep", force=True)
    assert snapshot(store, "s") == before
    assert call(store, "s", "dump") == V1_DUMP


def test_trap_in_post_upgrade_is_rolled_back(store: Store) -> None:
    shapes(store)
    before = snapshot(store, "s")
    plan = plan_upgrade(store, "s", motoko("shapes_trap_post"))
    assert plan.path == "keep"  # the types are fine; the hook is not
    with pytest.raises(CanisterTrapError, match="postupgrade refuses on purpose"):
        upgrade(store, "s", motoko("shapes_trap_post"))
    assert snapshot(store, "s") == before
    assert call(store, "s", "dump") == V1_DUMP


def test_replace_dry_run_resume_and_non_motoko_plans(store: Store) -> None:
    shapes(store)
    before = snapshot(store, "s")
    with pytest.raises(UpgradeRefusedError, match="replace discards the heap"):
        upgrade(store, "s", motoko("shapes_v2_extra_var"), mode="replace")
    out = upgrade(store, "s", motoko("shapes_v2_extra_var"), dry_run=True)
    assert (out.executed, out.path) == (False, "keep")
    with pytest.raises(UpgradeRefusedError, match="no EOP section"):
        upgrade(store, "s", plain_wat(version=1))  # would drop the Motoko heap
    assert snapshot(store, "s") == before
    upgrade(store, "s", motoko("shapes_v2_extra_var"))
    again = upgrade(store, "s", motoko("shapes_v2_extra_var"), resume=True)  # e.g. after a kill
    assert (again.executed, again.path) == (False, "none")
    assert history_kinds(store, "s").count("upgrade") == 1

    install(store, "w", plain_wat(version=1, eop=True))
    plan = plan_upgrade(store, "w", plain_wat(version=2, eop=True))
    assert (plan.path, plan.verdict) == ("keep", "unchecked")
    assert "no stable signature: replace (or keep for EOP-marked modules)" in plan.format_text()
    assert plan_upgrade(store, "w", plain_wat(version=2)).path == "replace"
    assert upgrade(store, "w", plain_wat(version=2)).path == "replace"

    # a module declaring another layout is upgraded by graph copy (see test_graph_copy.py)
    other = with_eop_section(motoko("shapes_v2_extra_var"), "64-bit, layout version 2")
    assert plan_upgrade(store, "s", other).path == "graph-copy"
    assert plan_upgrade(store, "s", other, "keep").path == "refuse"


def test_only_controllers_upgrade(sqlite_url: str, moc: None) -> None:
    with open_store(sqlite_url) as st:
        shapes(st)
    with open_store(sqlite_url, caller="anonymous") as st:
        with pytest.raises(NotAuthorizedError):
            upgrade(st, "s", motoko("shapes_v2_extra_var"))


# --------------------------------------------------------------------------- the command line


def gc(url: str, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--db", url, *args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def modules(tmp_path: Path, moc: None) -> dict[str, str]:
    out = {}
    for name in ("shapes_v1", "shapes_v2_extra_var", "shapes_bad_text"):
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(motoko(name))
        out[name] = str(path)
    return out


def test_cli_upgrade_prints_the_plan_and_refuses_with_the_full_report(sqlite_url: str,
                                                                      modules: dict[str, str]) -> None:
    assert gc(sqlite_url, "install", "s", modules["shapes_v1"])[0] == 0
    gc(sqlite_url, "call", "s", "add", '("tri", variant { red }, 3 : nat)')
    code, out, err = gc(sqlite_url, "upgrade", "s", modules["shapes_v2_extra_var"], "--dry-run")
    assert code == 0 and "old stable types" in out and "new stable types" in out and "path: keep" in out
    assert "layout version 1" in out and "dry run, nothing changed" in out
    code, out, err = gc(sqlite_url, "upgrade", "s", modules["shapes_v2_extra_var"])
    assert code == 0 and "upgraded, heap kept" in out
    def state() -> dict[str, object]:
        doc = json.loads(gc(sqlite_url, "status", "s", "--json")[1])
        doc.pop("log_lines")  # the forced upgrade's trap is logged, as the IC's canister logs keep it
        return doc

    before = state()
    code, out, err = gc(sqlite_url, "upgrade", "s", modules["shapes_bad_text"])
    assert code == 1
    assert "incompatible: 2 errors" in out and "[type-mismatch] count" in out and "[drop-stable-variable] note" in out
    assert err.strip().count("\n") == 0 and "refused" in err
    code, out, err = gc(sqlite_url, "upgrade", "s", modules["shapes_bad_text"], "--json")
    doc = json.loads(out)
    assert code == 1 and doc["refused"] and len(doc["plan"]["compatibility"]["errors"]) == 2
    code, out, err = gc(sqlite_url, "upgrade", "s", modules["shapes_bad_text"], "--mode", "keep", "--force")
    assert code == 7 and "Memory-incompatible program upgrade" in err and err.strip().count("\n") == 0
    code, _, err = gc(sqlite_url, "--caller", "anonymous", "upgrade", "s", modules["shapes_v2_extra_var"])
    assert code == 5 and "controller" in err
    code, _, err = gc(sqlite_url, "upgrade", "s", modules["shapes_v2_extra_var"], "--mode", "sideways")
    assert code == 2 and "unknown upgrade mode" in err
    assert state() == before
    code, out, _ = gc(sqlite_url, "upgrade", "s", modules["shapes_v2_extra_var"], "--json")
    doc = json.loads(out)
    assert code == 0 and doc["path"] == "none" and not doc["executed"]  # unchanged: skipped, as dfx does
    code, out, _ = gc(sqlite_url, "upgrade", "s", modules["shapes_v2_extra_var"], "--json", "--upgrade-unchanged")
    doc = json.loads(out)
    assert code == 0 and doc["path"] == "keep" and doc["plan"]["verdict"] == "compatible"
    assert gc(sqlite_url, "call", "s", "dump")[1].strip() == '("count=3 owner=nobody tri:#red:3")'
