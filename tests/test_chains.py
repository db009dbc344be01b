"""Enhanced migration chains (moc ``--enhanced-migration``) run on graphcopy, compiled by the pinned moc.

* install: a fresh install runs the whole chain, in order, and the heap records every step (a long
  chain too);
* keep-upgrades run exactly the migrations the canister has not applied (several steps: a new
  field, Nat -> Int, a dropped field), once; an upgrade to the same chain runs none;
* a migration that traps rolls the whole upgrade back (module, heap, applied list), with its trap
  message, and earlier steps of the same upgrade are undone with it;
* ``graphcopy rollback`` undoes a chain upgrade; a graph copy across a chain runs the pending step
  once and keeps the applied list (the next upgrade runs only its own step);
* a pipeline over chain canisters; ``graphcopy status`` shows the applied migrations;
* the reader of the applied-migration list (``migrate.descriptor.read_applied_migrations``) on
  hand-built heaps: the empty list, a concatenated name, and corrupt lists.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from migrate import plan_upgrade, upgrade
from migrate.descriptor import applied_migrations_from_canister, read_applied_migrations
from migrate.descriptor.heap import METADATA_ADDRESS, NULL_POINTER, PERSISTENCE_FINGERPRINT
from migrate.errors import DescriptorError
from migrate.pipeline import load_pipeline, run_pipeline
from persist import api
from persist.api import EMPTY_ARGS, snapshots
from persist.candid import decode_args, values_to_json
from persist.errors import CanisterTrapError
from persist.session import Store, open_store
from tests.chain_helpers import (
    ADD_ACCOUNTS,
    COUNT_TO_INT,
    DROP_OWNER,
    FAILS,
    INIT,
    chain,
    install_with_data,
    long_chain,
)
from tests.upgrade_helpers import call, history_kinds, install, snapshot

runner = CliRunner()


@pytest.fixture
def store(db_url: str, moc: None) -> Iterator[Store]:
    """SQLite and PostgreSQL."""
    with open_store(db_url) as st:
        yield st


def applied(store: Store, name: str) -> list[str]:
    return applied_migrations_from_canister(store, name)


def test_a_fresh_install_runs_the_whole_chain(store: Store) -> None:
    install(store, "c", chain("v3").wasm)
    assert applied(store, "c") == [INIT, ADD_ACCOUNTS, COUNT_TO_INT]
    assert call(store, "c", "state") == '("count=0 owner= accounts=[]")'
    assert call(store, "c", "dec") == "(-1 : int)"


def test_a_fresh_install_of_a_long_chain_runs_every_step_in_order(store: Store) -> None:
    install(store, "long", long_chain(60).wasm)
    names = applied(store, "long")
    assert len(names) == 61 and names[0] == "20240101_000000_Init" and names == sorted(names)
    reply = api.call(store, "long", "state", EMPTY_ARGS).reply
    assert values_to_json(decode_args(reply, None)) == [60, list(range(1, 61))]


def test_each_upgrade_runs_exactly_its_pending_migrations(store: Store) -> None:
    install_with_data(store, "c", chain("v1"), incs=3, owner="ada")

    plan = plan_upgrade(store, "c", chain("v2").wasm)
    assert plan.path == "keep" and plan.report is not None and plan.report.compatible
    assert plan.report.chain is not None and [p.name for p in plan.report.chain.pending] == [ADD_ACCOUNTS]
    out = upgrade(store, "c", chain("v2").wasm)
    assert out.migrations_run == [ADD_ACCOUNTS] and "ran 1 migration: " + ADD_ACCOUNTS in out.summary()
    call(store, "c", "addAccount", '("bob", 10 : nat)')
    assert call(store, "c", "state") == '("count=3 owner=ada accounts=[(\\"bob\\", 10)]")'

    out = upgrade(store, "c", chain("v3").wasm)  # Nat -> Int through the migration
    assert out.migrations_run == [COUNT_TO_INT]
    assert call(store, "c", "dec") == "(2 : int)"

    plan = plan_upgrade(store, "c", chain("v4").wasm)  # drops owner: a warning, not an error
    assert plan.report is not None and plan.report.compatible and plan.path == "keep"
    assert [(w.rule, w.path, w.migration) for w in plan.report.warnings] == [
        ("migration-discards-field", "owner", DROP_OWNER)]
    assert plan.report.chain is not None and plan.report.chain.pending[0].discards == ("owner",)
    out = upgrade(store, "c", chain("v4").wasm)
    assert out.migrations_run == [DROP_OWNER]
    assert call(store, "c", "state") == '("count=+2 accounts=[(\\"bob\\", 10)]")'

    # The same chain again: nothing is pending, nothing runs, the data stays.
    again = upgrade(store, "c", chain("v4").wasm, mode="keep")
    assert again.migrations_run == [] and "ran no migration" in again.summary()
    assert applied(store, "c") == [INIT, ADD_ACCOUNTS, COUNT_TO_INT, DROP_OWNER]
    assert call(store, "c", "state") == '("count=+2 accounts=[(\\"bob\\", 10)]")'
    assert history_kinds(store, "c").count("upgrade") == 4


def test_a_trapping_migration_rolls_the_whole_upgrade_back(store: Store) -> None:
    install(store, "c", chain("v3").wasm)
    call(store, "c", "setOwner", '("ada")')
    before = snapshot(store, "c")
    # Two migrations are pending: DropOwner runs, then Fails traps; both are undone.
    plan = plan_upgrade(store, "c", chain("v4_fails").wasm)
    assert plan.report is not None and [p.name for p in plan.report.chain.pending] == [DROP_OWNER, FAILS]
    with pytest.raises(CanisterTrapError, match="20250501_000000_Fails: the count is not negative") as info:
        upgrade(store, "c", chain("v4_fails").wasm)
    assert "rolled back" in str(info.value)
    assert snapshot(store, "c") == before  # module, heap, stable memory, byte for byte
    assert applied(store, "c") == [INIT, ADD_ACCOUNTS, COUNT_TO_INT]
    assert call(store, "c", "getOwner") == '("ada")'
    assert snapshots.list_snapshots(store, "c") == []  # a failed keep upgrade drops its snapshot
    # With a negative count the step passes, and it runs once.
    call(store, "c", "dec")
    out = upgrade(store, "c", chain("v4_fails").wasm)
    assert out.migrations_run == [DROP_OWNER, FAILS]
    assert call(store, "c", "state") == '("count=-1 accounts=[]")'


def test_rollback_undoes_a_chain_upgrade(store: Store) -> None:
    install(store, "c", chain("v2").wasm)
    call(store, "c", "inc")
    call(store, "c", "addAccount", '("bob", 10 : nat)')
    state_v2 = call(store, "c", "state")
    module_v2 = api.status(store, "c").module_hash
    upgrade(store, "c", chain("v3").wasm)
    assert applied(store, "c")[-1] == COUNT_TO_INT

    snapshots.rollback(store, "c")
    assert api.status(store, "c").module_hash == module_v2
    assert applied(store, "c") == [INIT, ADD_ACCOUNTS]
    assert call(store, "c", "state") == state_v2
    # The step was undone with the rest, so the next upgrade runs it again, once.
    assert upgrade(store, "c", chain("v3").wasm).migrations_run == [COUNT_TO_INT]
    assert call(store, "c", "dec") == "(0 : int)"


def test_a_graph_copy_across_a_chain_runs_the_step_once_and_keeps_the_list(store: Store) -> None:
    install_with_data(store, "c", chain("v2"), incs=2)
    call(store, "c", "addAccount", '("bob", 10 : nat)')
    out = upgrade(store, "c", chain("v3").wasm, mode="graph-copy")
    assert out.path == "graph-copy" and out.migration is not None and out.migration["phase"] == "done"
    assert out.migrations_run == [COUNT_TO_INT]
    assert applied(store, "c") == [INIT, ADD_ACCOUNTS, COUNT_TO_INT]
    assert call(store, "c", "state") == '("count=+2 owner= accounts=[(\\"bob\\", 10)]")'
    # The list survived the copy: a keep upgrade now runs only DropOwner.
    assert upgrade(store, "c", chain("v4").wasm).migrations_run == [DROP_OWNER]
    assert call(store, "c", "dec") == "(1 : int)"


def test_a_pipeline_over_chain_canisters(sqlite_url: str, tmp_path: Path, moc: None) -> None:
    target = tmp_path / "chain_v3.wasm"
    target.write_bytes(chain("v3").wasm)
    with open_store(sqlite_url) as store:
        for k in range(3):
            install_with_data(store, f"c-{k}", chain("v2"), incs=k, owner=f"owner {k}")
    toml = tmp_path / "chain.toml"
    toml.write_text(f'name = "chain-v3"\nmodule = "{target}"\ncanisters = ["c-*"]\n'
                    'steps = ["check", "snapshot", "upgrade", "verify"]\n\n[[verify]]\nquery = "getOwner"\n')
    report = run_pipeline(sqlite_url, load_pipeline(toml), workers=1)
    assert report.ok and {c.state for c in report.canisters} == {"done"}
    with open_store(sqlite_url) as store:
        for k in range(3):
            assert applied(store, f"c-{k}") == [INIT, ADD_ACCOUNTS, COUNT_TO_INT]
            assert history_kinds(store, f"c-{k}").count("upgrade") == 1
            assert call(store, f"c-{k}", "dec") == f"({k - 1} : int)"


def test_status_shows_the_applied_migrations(sqlite_url: str, moc: None, tmp_path: Path) -> None:
    wasm = tmp_path / "v2.wasm"
    wasm.write_bytes(chain("v2").wasm)
    assert runner.invoke(app, ["--db", sqlite_url, "install", "c", str(wasm)]).exit_code == 0
    res = runner.invoke(app, ["--db", sqlite_url, "status", "c", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["applied_migrations"] == [INIT, ADD_ACCOUNTS]
    res = runner.invoke(app, ["--db", sqlite_url, "status", "c"])
    assert "migrations applied" in res.stdout and f"2, last {ADD_ACCOUNTS}" in res.stdout
    plain = tmp_path / "plain.wasm"
    plain.write_bytes((Path(__file__).parent.parent / "examples" / "counter" / "counter.wasm").read_bytes())
    assert runner.invoke(app, ["--db", sqlite_url, "install", "k", str(plain)]).exit_code == 0
    res = runner.invoke(app, ["--db", sqlite_url, "status", "k", "--json"])
    assert json.loads(res.stdout)["applied_migrations"] == []  # EOP without a chain
    assert "migrations applied" not in runner.invoke(app, ["--db", sqlite_url, "status", "k"]).stdout


# --------------------------------------------------------------------------- the list reader, unit level

HEAP = 0x500000  # the dynamic heap's first address


def _heap(roots: tuple[int, int, int], objects: list[tuple[int, bytes]]) -> bytearray:
    heap = bytearray(0x520000)
    m = METADATA_ADDRESS
    heap[m:m + 128] = PERSISTENCE_FINGERPRINT.encode("utf-32-le")
    struct.pack_into("<Q", heap, m + 128, 1)
    struct.pack_into("<3Q", heap, m + 7560, *roots)
    for addr, data in objects:
        heap[addr:addr + len(data)] = data
    return heap


def _pair(addr: int, head: int, tail: int, *, tag: int = 7) -> tuple[int, bytes]:
    return addr, struct.pack("<5Q", tag, addr - 1, 2, head, tail)


def _text(addr: int, text: bytes) -> tuple[int, bytes]:
    return addr, struct.pack("<3Q", 27, addr - 1, len(text)) + text


def test_the_list_reader_on_hand_built_heaps() -> None:
    null = (NULL_POINTER, NULL_POINTER)
    assert read_applied_migrations(_heap((*null, NULL_POINTER), [])) == []
    assert read_applied_migrations(_heap((*null, 0), [])) == []  # a runtime without the list
    # Newest first in the heap, oldest first out; a name may be a concatenation (tag 37).
    concat = (HEAP + 0x300, struct.pack("<5Q", 37, HEAP + 0x300 - 1, 3, HEAP + 0x400 - 1, HEAP + 0x500 - 1))
    objects = [_pair(HEAP, HEAP + 0x100 - 1, HEAP + 0x200 - 1), _text(HEAP + 0x100, b"b_second"),
               _pair(HEAP + 0x200, HEAP + 0x300 - 1, NULL_POINTER), concat, _text(HEAP + 0x400, b"a_"),
               _text(HEAP + 0x500, b"first")]
    assert read_applied_migrations(_heap((*null, HEAP - 1), objects)) == ["a_first", "b_second"]


@pytest.mark.parametrize(("roots", "objects", "message"), [
    ((NULL_POINTER, NULL_POINTER, HEAP - 1), [_pair(HEAP, HEAP + 0x100 - 1, HEAP - 1), _text(HEAP + 0x100, b"x")],
     "does not end"),
    ((NULL_POINTER, NULL_POINTER, HEAP - 1), [_pair(HEAP, HEAP + 0x100 - 1, NULL_POINTER, tag=3)], "is not a pair"),
    ((NULL_POINTER, NULL_POINTER, HEAP - 1), [_pair(HEAP, HEAP + 0x100 - 1, NULL_POINTER),
                                             (HEAP + 0x100, struct.pack("<3Q", 25, HEAP + 0x100 - 1, 0))],
     "is not a text"),
    ((NULL_POINTER, NULL_POINTER, 0x1000 - 1), [], "outside the dynamic heap"),
    ((5, NULL_POINTER, NULL_POINTER), [], "metadata layout changed"),
], ids=["cycle", "not a pair", "not a text", "outside", "layout"])
def test_the_list_reader_rejects_corrupt_lists(roots: tuple[int, int, int], objects: list[tuple[int, bytes]],
                                               message: str) -> None:
    with pytest.raises(DescriptorError, match=message):
        read_applied_migrations(_heap(roots, objects))
