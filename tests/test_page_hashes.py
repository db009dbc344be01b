"""Every stored page carries the sha256 of its data (revision 0008_page_hashes), whatever wrote it.

Snapshots map the live pages to ``page_blobs`` by that hash without reading the pages, so a stale
or missing hash would put a wrong page into a snapshot. Checked on SQLite and PostgreSQL, after
each kind of write: install, update, keep-upgrade (with its snapshot), graph copy (stable memory
written and read by hundreds of increments), snapshot load, snapshot-directory import (new and
``--into``); the snapshots taken by reference round-trip byte for byte; the second snapshot of a
barely changed canister adds only the changed pages; and the migration hashes the pages a store
made before it holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from migrate import upgrade
from persist import api
from persist.api import snapshot_transfer
from persist.api import snapshots as snaps
from persist.host.limits import Limits
from persist.session import Store, open_store
from persist.store import db, pages, schema
from persist.store.canisters import canister_row
from tests.upgrade_helpers import call, install, motoko

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COUNTER = (EXAMPLES / "counter" / "counter.wasm").read_bytes()
COUNTER_V2 = (EXAMPLES / "counter" / "counter_v2.wasm").read_bytes()
EMPTY = b"DIDL\x00\x00"


def check_hashes(store: Store) -> dict[str, int]:
    """Assert that every live page's hash is the sha256 of its data, and every blob's too;
    returns how many pages of each kind were checked."""
    counts = {}
    with db.read_transaction(store.engine) as conn:
        for kind in (pages.HEAP, pages.STABLE):
            t = schema.page_table(kind)
            rows = conn.execute(sa.select(t.c.canister_id, t.c.page_no, t.c.data, t.c.hash)).all()
            bad = [(r.canister_id, r.page_no) for r in rows if r.hash != hashlib.sha256(bytes(r.data)).hexdigest()]
            assert not bad, f"{kind} pages with a wrong hash: {bad[:5]}"
            counts[kind] = len(rows)
        pb = schema.page_blobs
        bad_blobs = [h for h, d in conn.execute(sa.select(pb.c.hash, pb.c.data)) if
                     h != hashlib.sha256(bytes(d)).hexdigest()]
        assert not bad_blobs
    return counts


def live_pages(store: Store, name: str) -> dict[str, dict[int, bytes]]:
    with db.read_transaction(store.engine) as conn:
        cid = canister_row(conn, name).id
        return {kind: dict(pages.read_pages(conn, kind, cid)) for kind in (pages.HEAP, pages.STABLE)}


@pytest.fixture
def hstore(db_url: str, moc: None) -> Iterator[Store]:
    with open_store(db_url, limits=Limits(performance_counter_scale=100_000.0)) as st:
        yield st


def test_every_write_keeps_page_hashes_right(hstore: Store, tmp_path: Path) -> None:
    store = hstore
    api.install(store, "c", COUNTER)
    assert check_hashes(store)[pages.HEAP] > 0
    for _ in range(3):
        api.call(store, "c", "inc", EMPTY)
    check_hashes(store)

    before = live_pages(store, "c")
    out = upgrade(store, "c", COUNTER_V2, mode="keep")  # its snapshot is taken by reference
    assert out.snapshot_id is not None
    check_hashes(store)
    api.call(store, "c", "inc", EMPTY)
    check_hashes(store)

    # Loading the snapshot writes the pages (and their hashes) back exactly.
    snaps.load_snapshot(store, "c", out.snapshot_id)
    assert live_pages(store, "c") == before
    check_hashes(store)

    # A second snapshot after one update adds only the pages the update changed.
    first = snaps.take_snapshot(store, "c")
    api.call(store, "c", "inc", EMPTY)
    second = snaps.take_snapshot(store, "c")
    assert first.bytes_new == 0  # nothing changed since the last snapshot: every page is a blob already
    assert 0 < second.bytes_new < second.stored_heap_pages * pages.PAGE_SIZE
    assert second.stored_heap_pages == len(live_pages(store, "c")[pages.HEAP])

    # Import of a snapshot directory: as a new canister, and onto an existing one.
    snapshot_transfer.export_snapshot(store, "c", tmp_path / "dir")
    snapshot_transfer.import_snapshot(store, "c2", tmp_path / "dir")
    assert live_pages(store, "c2") == live_pages(store, "c")
    api.call(store, "c2", "inc", EMPTY)
    check_hashes(store)
    snapshot_transfer.import_snapshot(store, "c2", tmp_path / "dir", into=True)
    assert live_pages(store, "c2") == live_pages(store, "c")
    check_hashes(store)

    # A graph copy writes and reads stable memory in many increments, then rewrites the heap.
    install(store, "g", motoko("graph_v1"))
    call(store, "g", "fill", "(20_000 : nat, 500 : nat)")
    digest = call(store, "g", "digest")
    stable_seen: list[int] = []

    def on_progress(record: dict[str, object]) -> None:
        if record.get("phase") in ("stabilized", "upgraded", "destabilizing"):
            stable_seen.append(check_hashes(store)[pages.STABLE])

    upgrade(store, "g", motoko("graph_v2"), mode="graph-copy", on_progress=on_progress)
    assert call(store, "g", "digest") == digest
    check_hashes(store)
    assert stable_seen and max(stable_seen) > 0  # the stable image was checked while it existed


def test_the_migration_hashes_the_pages_already_stored(db_url: str) -> None:
    engine = db.create_engine_for(db_url)
    try:
        db.upgrade_schema(engine, revision="0006_store_owner")
        data = {(kind, no): bytes([no % 251 + 1]) * pages.PAGE_SIZE for kind in ("heap", "stable") for no in range(300)}
        with db.transaction(engine) as conn:
            cid = conn.execute(sa.text(
                "INSERT INTO canisters (name, principal, controllers, created_at_ns, updated_at_ns) "
                "VALUES ('old', 'old-principal', '[]', 1, 1) RETURNING id")).scalar_one()
            for kind in ("heap", "stable"):
                conn.execute(sa.text(f"INSERT INTO {kind}_pages (canister_id, page_no, data) VALUES (:c, :p, :d)"),
                             [{"c": cid, "p": no, "d": d} for (k, no), d in data.items() if k == kind])
        db.upgrade_schema(engine)
        assert db.current_revision(engine) == "0008_page_hashes"
        with db.read_transaction(engine) as conn:
            for kind in ("heap", "stable"):
                t = schema.page_table(kind)
                got = {int(no): h for no, h in conn.execute(sa.select(t.c.page_no, t.c.hash))}
                assert got == {no: hashlib.sha256(d).hexdigest() for (k, no), d in data.items() if k == kind}
    finally:
        engine.dispose()
