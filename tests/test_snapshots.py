"""Snapshots (``persist.api.snapshots``), the upgrade's snapshot and ``rollback``, and their CLI.

* a snapshot round-trips byte for byte: heap pages, stable pages and every metadata column
  (the examples/ledger canister, and a WAT canister with stable memory), on SQLite and PostgreSQL;
* page blobs are shared: after a small change the next snapshot adds only a few pages; deleting a
  snapshot frees exactly the blobs no other snapshot uses;
* loading after further changes restores the state exactly (pages and queries), and drops the
  cached live instance;
* ``upgrade`` takes a snapshot (unless ``snapshot=False``); ``rollback`` restores it after a
  successful upgrade; a trapped upgrade changed nothing and leaves nothing to roll back;
* controller-only, refused during a graph-copy migration except loading, typed one-line errors;
* ``graphcopy snapshot take|list|load|delete`` and ``graphcopy rollback`` with --json and exit codes.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import wasmtime
from typer.testing import CliRunner

from cli.main import app
from migrate import upgrade
from persist import api
from persist.api import snapshots as snaps
from persist.errors import CanisterStateError, CanisterTrapError, NotAuthorizedError
from persist.session import Store, open_store
from persist.store import db, pages, schema
from persist.store.canisters import canister_row
from tests.upgrade_helpers import call, history_kinds, plain_get, plain_set, plain_wat

# The host and durability suites run under both heap dirty-tracking mechanisms (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("dirty_tracking")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LEDGER = (EXAMPLES / "ledger" / "ledger.wasm").read_bytes()
COUNTER = EXAMPLES / "counter" / "counter.wasm"
COUNTER_V2 = EXAMPLES / "counter" / "counter_v2.wasm"
DURABILITY = Path(__file__).resolve().parent / "canisters" / "durability.wat"
runner = CliRunner()


def state(store: Store, name: str) -> dict[str, Any]:
    """Everything a snapshot restores, as committed in SQL (the version excluded: loading bumps it)."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        return {
            "module_hash": row.module_hash, "heap_pages": int(row.heap_pages), "stable_pages": int(row.stable_pages),
            "globals": row.globals, "timer_ns": int(row.timer_ns), "certified_data": row.certified_data,
            "controllers": row.controllers, "status": row.status, "migration": row.migration,
            "heap": dict(pages.read_pages(conn, pages.HEAP, row.id)),
            "stable": dict(pages.read_pages(conn, pages.STABLE, row.id)),
        }


def version(store: Store, name: str) -> int:
    with db.read_transaction(store.engine) as conn:
        return int(canister_row(conn, name).version)


def blob_count(store: Store) -> int:
    return snaps.blob_stats(store)[0]


def ledger(store: Store, entries: int = 3000) -> None:
    api.install(store, "ledger", LEDGER)
    call(store, "ledger", "load", f"({entries}, 1)")


def durability_wat(store: Store) -> None:
    api.install(store, "w", bytes(wasmtime.wat2wasm(DURABILITY.read_text())))
    api.call(store, "w", "setup", struct.pack("<q", 0))
    api.call(store, "w", "fill_stable", struct.pack("<q", 12))


# --------------------------------------------------------------------------- round trips


def test_ledger_round_trip_and_sharing(store: Store) -> None:
    ledger(store)
    before = state(store, "ledger")
    digest, count = call(store, "ledger", "digest"), call(store, "ledger", "count")
    first = snaps.take_snapshot(store, "ledger", label="loaded")
    assert first.stored_heap_pages == len(before["heap"]) > 50
    assert first.bytes_new == first.stored_heap_pages * pages.PAGE_SIZE == blob_count(store) * pages.PAGE_SIZE
    assert first.label == "loaded" and first.module_hash == before["module_hash"]

    # a small change: the next snapshot adds only the few pages that differ
    call(store, "ledger", "apply", "(5, 3)")
    blobs = blob_count(store)
    second = snaps.take_snapshot(store, "ledger")
    added = blob_count(store) - blobs
    assert second.bytes_new == added * pages.PAGE_SIZE
    assert 0 < added <= 8 < first.stored_heap_pages
    assert [s.id for s in snaps.list_snapshots(store, "ledger")] == [first.id, second.id]

    # more changes, then load the first: pages, metadata and queries are exactly as they were
    call(store, "ledger", "load", "(500, 2)")
    assert call(store, "ledger", "count") != count
    v = version(store, "ledger")
    loaded = snaps.load_snapshot(store, "ledger", first.id)
    assert loaded.id == first.id
    assert version(store, "ledger") == v + 1  # cached live instances are stale now
    assert store.live.get(canister_row_id(store, "ledger")) is None
    assert state(store, "ledger") == before
    assert call(store, "ledger", "digest") == digest and call(store, "ledger", "count") == count
    # and the canister carries on from there
    call(store, "ledger", "apply", "(5, 3)")
    assert "snapshot-load" in history_kinds(store, "ledger")


def canister_row_id(store: Store, name: str) -> int:
    with db.read_transaction(store.engine) as conn:
        return int(canister_row(conn, name).id)


def test_wat_stable_memory_round_trip(store: Store) -> None:
    durability_wat(store)
    before = state(store, "w")
    assert len(before["stable"]) == 13 and before["timer_ns"] == 0
    query = api.call(store, "w", "state").reply
    snap = snaps.take_snapshot(store, "w")
    assert snap.stored_stable_pages == 13 and snap.stable_pages == 13

    api.call(store, "w", "fill_stable", struct.pack("<q", 3))
    api.call(store, "w", "setup", struct.pack("<q", 4 * 10**18))  # globals, heap word, stable word, timer
    changed = state(store, "w")
    assert changed["stable_pages"] == 17 and changed["timer_ns"] == 4 * 10**18

    snaps.load_snapshot(store, "w", snap.id)
    assert state(store, "w") == before
    assert api.call(store, "w", "state").reply == query
    assert api.call(store, "w", "page_word", struct.pack("<q", 11)).reply == struct.pack("<q", 12)


def test_delete_frees_unreferenced_blobs(sstore: Store) -> None:
    durability_wat(sstore)
    a = snaps.take_snapshot(sstore, "w")
    n_a = blob_count(sstore)
    api.call(sstore, "w", "fill_stable", struct.pack("<q", 2))  # two new stable pages
    api.call(sstore, "w", "setup", struct.pack("<q", 5))
    b = snaps.take_snapshot(sstore, "w")
    n_ab = blob_count(sstore)
    assert n_ab > n_a
    with db.read_transaction(sstore.engine) as conn:
        sp = schema.snapshot_pages
        only_a = set(conn.execute(sa.select(sp.c.blob_hash).where(sp.c.snapshot_id == a.id)).scalars()) - set(
            conn.execute(sa.select(sp.c.blob_hash).where(sp.c.snapshot_id == b.id)).scalars())
    assert only_a  # setup rewrote stable page 0
    snaps.delete_snapshot(sstore, "w", a.id)
    assert blob_count(sstore) == n_ab - len(only_a)
    with pytest.raises(snaps.SnapshotNotFoundError, match=f"^no snapshot {a.id} for canister w$"):
        snaps.load_snapshot(sstore, "w", a.id)
    snaps.delete_snapshot(sstore, "w", b.id)
    assert blob_count(sstore) == 0 and snaps.list_snapshots(sstore, "w") == []

    # deleting the canister without its safety snapshot deletes its snapshots and their blobs
    snaps.take_snapshot(sstore, "w")
    assert blob_count(sstore) > 0
    api.stop(sstore, "w")
    api.delete(sstore, "w", snapshot=False)
    assert blob_count(sstore) == 0


def test_snapshot_of_another_canister_is_unknown(sstore: Store) -> None:
    durability_wat(sstore)
    api.install(sstore, "c", COUNTER.read_bytes())
    snap = snaps.take_snapshot(sstore, "w")
    with pytest.raises(snaps.SnapshotNotFoundError, match=f"no snapshot {snap.id} for canister c"):
        snaps.load_snapshot(sstore, "c", snap.id)
    with pytest.raises(snaps.SnapshotNotFoundError):
        snaps.delete_snapshot(sstore, "c", snap.id)


def test_controller_only_and_migration_guard(sqlite_url: str) -> None:
    with open_store(sqlite_url) as st:
        durability_wat(st)
        snap = snaps.take_snapshot(st, "w")
    with open_store(sqlite_url, caller="anonymous") as other:
        for fn in (lambda: snaps.take_snapshot(other, "w"), lambda: snaps.list_snapshots(other, "w"),
                   lambda: snaps.load_snapshot(other, "w", snap.id), lambda: snaps.delete_snapshot(other, "w", snap.id),
                   lambda: snaps.rollback(other, "w")):
            with pytest.raises(NotAuthorizedError):
                fn()
    with open_store(sqlite_url) as st:
        with db.transaction(st.engine) as conn:
            conn.execute(schema.canisters.update().where(schema.canisters.c.name == "w")
                         .values(migration=json.dumps({"phase": "stabilizing"})))
        with pytest.raises(CanisterStateError, match="graph-copy migration is in progress"):
            snaps.take_snapshot(st, "w")
        with pytest.raises(CanisterStateError, match="graph-copy migration is in progress"):
            snaps.delete_snapshot(st, "w", snap.id)
        snaps.load_snapshot(st, "w", snap.id)  # loading is the way back
        assert state(st, "w")["migration"] is None
        assert len(snaps.list_snapshots(st, "w")) == 1


def test_empty_canister_cannot_be_snapshotted(sstore: Store) -> None:
    durability_wat(sstore)
    with db.transaction(sstore.engine) as conn:  # an empty canister (as `create` without a module would leave)
        conn.execute(schema.canisters.update().where(schema.canisters.c.name == "w").values(module_hash=None))
    with pytest.raises(CanisterStateError, match="empty"):
        snaps.take_snapshot(sstore, "w")


# --------------------------------------------------------------------------- upgrade and rollback


def test_rollback_after_successful_upgrade(store: Store) -> None:
    api.install(store, "counter", COUNTER.read_bytes())
    call(store, "counter", "add", "(41 : nat)")
    call(store, "counter", "inc")
    before = state(store, "counter")
    out = upgrade(store, "counter", COUNTER_V2.read_bytes())
    assert out.path == "keep" and out.snapshot_id is not None
    assert out.to_dict()["snapshot_id"] == out.snapshot_id and "rollback" in out.summary()
    status = api.status(store, "counter")
    upgrade_entry = [h for h in status.history if h.kind == "upgrade"][-1]
    assert upgrade_entry.detail is not None and upgrade_entry.detail["snapshot_id"] == out.snapshot_id
    call(store, "counter", "inc")
    assert state(store, "counter")["module_hash"] != before["module_hash"]

    info = snaps.rollback(store, "counter")
    assert info.id == out.snapshot_id and info.rolled_back_at_ns
    assert state(store, "counter") == before
    assert call(store, "counter", "get") == "(42 : nat)"
    assert history_kinds(store, "counter")[-1] == "rollback"
    with pytest.raises(snaps.NothingToRollBackError, match="rolled back already"):
        snaps.rollback(store, "counter")
    # upgrading again works, and can be rolled back again
    out2 = upgrade(store, "counter", COUNTER_V2.read_bytes())
    assert out2.snapshot_id not in (None, out.snapshot_id)
    assert snaps.rollback(store, "counter").id == out2.snapshot_id


def test_trapped_upgrade_leaves_nothing_to_roll_back(sstore: Store) -> None:
    api.install(sstore, "p", plain_wat(version=1))
    plain_set(sstore, "p", 5)
    before = state(sstore, "p")
    with pytest.raises(CanisterTrapError):
        upgrade(sstore, "p", plain_wat(version=2, trap_post=True))
    assert state(sstore, "p") == before
    assert snaps.list_snapshots(sstore, "p") == [] and blob_count(sstore) == 0  # its snapshot was dropped
    with pytest.raises(snaps.NothingToRollBackError, match="^nothing to roll back: no upgrade of canister p"):
        snaps.rollback(sstore, "p")

    out = upgrade(sstore, "p", plain_wat(version=2))
    assert plain_get(sstore, "p")[0] == 2 and out.snapshot_id is not None
    plain_set(sstore, "p", 9)
    snaps.rollback(sstore, "p")
    assert state(sstore, "p") == before and plain_get(sstore, "p")[0] == 1


def test_upgrade_without_snapshot(sstore: Store) -> None:
    api.install(sstore, "counter", COUNTER.read_bytes())
    out = upgrade(sstore, "counter", COUNTER_V2.read_bytes(), snapshot=False)
    assert out.executed and out.snapshot_id is None
    assert snaps.list_snapshots(sstore, "counter") == []
    with pytest.raises(snaps.NothingToRollBackError):
        snaps.rollback(sstore, "counter")
    # a dry run takes none either
    assert upgrade(sstore, "counter", COUNTER.read_bytes(), mode="replace", dry_run=True,
                   force=True).snapshot_id is None
    assert snaps.list_snapshots(sstore, "counter") == []


def test_existing_store_is_migrated_to_snapshots(db_url: str) -> None:
    """A store made by 0001 (with a canister in it) gets the snapshot tables, and snapshots work."""
    engine = db.create_engine_for(db_url)
    try:
        db.upgrade_schema(engine, revision="0001_initial")
        assert not sa.inspect(engine).has_table("page_blobs")
    finally:
        engine.dispose()
    with open_store(db_url) as st:  # opening applies every later revision
        assert db.current_revision(st.engine) == db.head_revision()
        api.install(st, "counter", COUNTER.read_bytes())
        snap = snaps.take_snapshot(st, "counter")
        assert snaps.list_snapshots(st, "counter")[0].id == snap.id


def test_pg_page_blobs_storage_external(pg_url: str) -> None:
    engine = db.open_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql(
                "SELECT a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE a.attname = 'data' AND c.relname = 'page_blobs'").scalar() == "e"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- CLI


def gc(url: str, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--db", url, *args])
    return res.exit_code, res.stdout, res.stderr


def test_cli_snapshots_and_rollback(sqlite_url: str) -> None:
    assert gc(sqlite_url, "install", "counter", str(COUNTER))[0] == 0
    gc(sqlite_url, "call", "counter", "add", "(7 : nat)")
    code, out, _ = gc(sqlite_url, "snapshot", "take", "counter", "--label", "seven", "--json")
    assert code == 0
    taken = json.loads(out)
    assert taken["label"] == "seven" and taken["bytes_new"] > 0
    code, out, _ = gc(sqlite_url, "snapshot", "take", "counter")
    assert code == 0 and "snapshot 2 " in out and "0 B new" in out  # nothing changed: every page is shared
    gc(sqlite_url, "call", "counter", "inc")
    listed = json.loads(gc(sqlite_url, "snapshot", "list", "counter", "--json")[1])
    assert [s["id"] for s in listed] == [taken["id"], taken["id"] + 1]
    assert "seven" in gc(sqlite_url, "snapshot", "list", "counter")[1]
    code, out, _ = gc(sqlite_url, "snapshot", "load", "counter", str(taken["id"]), "--json")
    assert code == 0 and json.loads(out)["id"] == taken["id"]
    assert gc(sqlite_url, "call", "counter", "get")[1].strip() == "(7 : nat)"

    code, _, err = gc(sqlite_url, "snapshot", "load", "counter", "99")
    assert code == 2 and "no snapshot 99 for canister counter" in err and len(err.strip().splitlines()) == 1
    code, _, err = gc(sqlite_url, "rollback", "counter")
    assert code == 6 and "nothing to roll back" in err
    code, _, err = gc(sqlite_url, "--caller", "anonymous", "snapshot", "take", "counter")
    assert code == 5
    code, out, _ = gc(sqlite_url, "snapshot", "delete", "counter", str(taken["id"]), "--json")
    assert code == 0 and json.loads(out) == {"name": "counter", "deleted": taken["id"]}
    assert gc(sqlite_url, "snapshot", "delete", "counter", str(taken["id"]))[0] == 2

    code, out, _ = gc(sqlite_url, "upgrade", "counter", str(COUNTER_V2), "--json")
    assert code == 0 and json.loads(out)["snapshot_id"] is not None
    code, out, _ = gc(sqlite_url, "rollback", "counter", "--json")
    assert code == 0 and json.loads(out)["id"] == json.loads(gc(sqlite_url, "snapshot", "list", "counter",
                                                                "--json")[1])[-1]["id"]
    assert gc(sqlite_url, "call", "counter", "get")[1].strip() == "(7 : nat)"
    code, out, _ = gc(sqlite_url, "upgrade", "counter", str(COUNTER_V2), "--no-snapshot", "--json")
    assert code == 0 and json.loads(out)["snapshot_id"] is None
    code, _, err = gc(sqlite_url, "rollback", "counter")
    assert code == 6 and "rolled back already" in err


# --------------------------------------------------------------------------- graph copy


def test_rollback_of_a_graph_copy_and_loading_out_of_a_stuck_migration(sqlite_url: str, moc: None) -> None:
    from migrate import stabilize
    from persist.host.limits import Limits
    from tests.upgrade_helpers import motoko

    with open_store(sqlite_url, limits=Limits(performance_counter_scale=100_000.0)) as st:
        api.install(st, "g", motoko("graph_v1"))
        call(st, "g", "fill", "(3000 : nat, 300 : nat)")
        before, digest = state(st, "g"), call(st, "g", "digest")
        out = upgrade(st, "g", motoko("graph_v2"), mode="graph-copy")
        assert out.migration is not None and out.migration["phase"] == "done" and out.snapshot_id is not None
        assert call(st, "g", "getRelease") == '("v2")'
        snaps.rollback(st, "g")
        assert state(st, "g") == before and call(st, "g", "digest") == digest  # v1 again, no migration record

        # a migration stopped half-way blocks the canister; loading a snapshot is the way out
        snap = snaps.take_snapshot(st, "g", label="before stabilizing")
        stabilize(st, "g")
        with pytest.raises(CanisterTrapError, match="blocked"):
            call(st, "g", "digest")
        with pytest.raises(CanisterStateError, match="migration is in progress"):
            snaps.take_snapshot(st, "g")
        snaps.load_snapshot(st, "g", snap.id)
        assert state(st, "g") == before and call(st, "g", "digest") == digest
