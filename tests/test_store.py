"""The store layer: engine settings, Alembic schema upgrades, page I/O, lock errors."""

from __future__ import annotations

import array
import hashlib
import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from persist.errors import StoreError, StoreLockedError
from persist.store import db, pages, schema

P = pages.PAGE_SIZE
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _page(fill: int) -> bytes:
    return bytes([fill]) * P


def _new_canister(conn: sa.Connection, name: str = "c1") -> int:
    result = conn.execute(
        schema.canisters.insert().values(
            name=name,
            principal=f"principal-{name}",
            controllers="[]",
            created_at_ns=1,
            updated_at_ns=1,
        )
    )
    pk = result.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def _user_tables(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(sa.inspect(conn).get_table_names())


def _sqlite_path(url: str) -> str:
    database = sa.make_url(url).database
    assert database
    return database


def _sqlite_schema_dump(path: str) -> list[tuple[str, str, str | None]]:
    con = sqlite3.connect(path)
    try:
        return sorted(con.execute("SELECT type, name, sql FROM sqlite_master").fetchall())
    finally:
        con.close()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    e = db.open_engine(db_url)
    yield e
    e.dispose()


# ------------------------------------------------------------------------------------------- URLs


def test_resolve_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(db.ENV_URL, raising=False)
    monkeypatch.chdir(tmp_path)
    assert db.resolve_url(None) == f"sqlite:///{tmp_path / 'graphcopy.db'}"
    assert db.resolve_url("") == f"sqlite:///{tmp_path / 'graphcopy.db'}"
    monkeypatch.setenv(db.ENV_URL, "postgresql://u@h:5/d")
    assert db.resolve_url(None) == "postgresql+psycopg://u@h:5/d"
    assert db.resolve_url("sqlite:////x/y.db") == "sqlite:////x/y.db"
    assert db.resolve_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.resolve_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.resolve_url("sub/my.db") == f"sqlite:///{tmp_path / 'sub' / 'my.db'}"


def test_describe_url_hides_password() -> None:
    assert db.describe_url("postgresql+psycopg://u:secret@h:5/d") == "postgresql://u:***@h:5/d"
    assert db.describe_url("sqlite:////x/y.db") == "/x/y.db"


# --------------------------------------------------------------------------------------- schema


def test_history_and_head() -> None:
    assert db.head_revision() == "0008_page_hashes"
    assert db.history() == [("0001_initial", "initial schema"), ("0002_snapshots", "snapshots"),
                            ("0003_pipeline_locks", "pipeline locks"), ("0004_snapshot_transfer", "snapshot transfer"),
                            ("0005_management_canister", "management canister"), ("0006_store_owner", "store owner"),
                            ("0007_snapshot_outcome", "snapshot outcome"), ("0008_page_hashes", "page hashes")]


def test_upgrade_fresh_database(db_url: str) -> None:
    engine = db.create_engine_for(db_url)
    try:
        assert db.current_revision(engine) is None
        db.upgrade_schema(engine)
        assert db.current_revision(engine) == db.head_revision()
        assert _user_tables(engine) == set(schema.metadata.tables) | {"alembic_version"}
    finally:
        engine.dispose()


def test_migration_matches_schema_module(engine: sa.Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, schema.metadata)
    assert diff == []


def test_reopen_is_a_noop(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = db.open_engine(db_url)
    with db.transaction(engine) as conn:
        cid = _new_canister(conn)
    engine.dispose()

    from alembic import command

    def _boom(*_a: object, **_k: object) -> None:
        raise AssertionError("upgrade must not run on an up-to-date database")

    monkeypatch.setattr(command, "upgrade", _boom)
    engine = db.open_engine(db_url)
    try:
        assert db.current_revision(engine) == db.head_revision()
        with db.read_transaction(engine) as conn:
            names = conn.execute(sa.select(schema.canisters.c.name, schema.canisters.c.id)).all()
        assert [tuple(r) for r in names] == [("c1", cid)]
    finally:
        engine.dispose()


def test_concurrent_first_open(db_url: str) -> None:
    """Two processes opening a fresh store at once: one migrates, the other sees it done."""
    errors: list[BaseException] = []
    engines: list[sa.Engine] = []

    def _open() -> None:
        try:
            engines.append(db.open_engine(db_url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=_open) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in engines:
        e.dispose()
    assert errors == []
    engine = db.create_engine_for(db_url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_sqlite_settings(sqlite_url: str) -> None:
    engine = db.open_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar() == 65536
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 2  # FAST, whatever the build's default
    finally:
        engine.dispose()


def test_pg_settings(pg_url: str) -> None:
    engine = db.open_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar() == "5s"
            storage: dict[str, str] = dict(
                conn.exec_driver_sql(
                    "SELECT c.relname, a.attstorage FROM pg_attribute a "
                    "JOIN pg_class c ON c.oid = a.attrelid "
                    "WHERE a.attname = 'data' AND c.relname IN ('heap_pages', 'stable_pages')"
                ).all()
            )
            assert storage == {"heap_pages": "e", "stable_pages": "e"}
            types: dict[str, str] = dict(
                conn.exec_driver_sql(
                    "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND column_name IN ('data', 'id', 'size', 'page_no')"
                ).all()
            )
            assert types["heap_pages.data"] == "bytea"
            assert types["heap_pages.page_no"] == "bigint"
            assert types["modules.size"] == "bigint"
            assert types["logs.id"] == "bigint"
            assert types["canisters.id"] == "integer"
    finally:
        engine.dispose()


# ------------------------------------------------------------------- failed migrations roll back

BROKEN_REVISION = '''"""broken on purpose

Revision ID: 0099_broken
Revises: HEAD
"""

import sqlalchemy as sa
from alembic import op

revision = "0099_broken"
down_revision = "HEAD"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("half_done", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("canisters", sa.Column("extra", sa.Text, nullable=True))
    op.create_index("ix_half_done_id", "half_done", ["id"])
    op.execute("INSERT INTO half_done (id) VALUES (1)")
    op.execute("SELECT * FROM table_that_does_not_exist")


def downgrade():
    pass
'''


@pytest.fixture
def broken_scripts(tmp_path: Path) -> str:
    """A copy of the migrations directory with an extra revision that fails half-way."""
    target = tmp_path / "broken_migrations"
    (target / "versions").mkdir(parents=True)
    shutil.copy(MIGRATIONS_DIR / "env.py", target / "env.py")
    shutil.copy(MIGRATIONS_DIR / "script.py.mako", target / "script.py.mako")
    for f in (MIGRATIONS_DIR / "versions").glob("0*.py"):
        shutil.copy(f, target / "versions" / f.name)
    (target / "versions" / "0099_broken.py").write_text(BROKEN_REVISION.replace("HEAD", db.head_revision()))
    return str(target)


def test_failed_migration_on_fresh_db_leaves_nothing(db_url: str, broken_scripts: str) -> None:
    engine = db.create_engine_for(db_url)
    try:
        with pytest.raises(StoreError, match="schema upgrade of .* failed, database left unchanged"):
            db.upgrade_schema(engine, script_location=broken_scripts)
        # 0001 and 0002 ran fine inside the same transaction, but they were rolled back with 0099.
        assert _user_tables(engine) == set()
        assert db.current_revision(engine) is None
    finally:
        engine.dispose()


def test_failed_migration_leaves_previous_schema(db_url: str, broken_scripts: str) -> None:
    engine = db.create_engine_for(db_url)
    try:
        db.upgrade_schema(engine, revision="0001_initial", script_location=broken_scripts)
        with db.transaction(engine) as conn:
            _new_canister(conn)
        before_tables = _user_tables(engine)
        with engine.connect() as conn:
            before_cols = [c["name"] for c in sa.inspect(conn).get_columns("canisters")]
        sqlite_before = _sqlite_schema_dump(_sqlite_path(db_url)) if db_url.startswith("sqlite") else None

        with pytest.raises(StoreError, match="table_that_does_not_exist|no such table"):
            db.upgrade_schema(engine, script_location=broken_scripts)

        assert db.current_revision(engine) == "0001_initial"
        assert _user_tables(engine) == before_tables
        with engine.connect() as conn:
            assert [c["name"] for c in sa.inspect(conn).get_columns("canisters")] == before_cols
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.canisters)).scalar() == 1
        if sqlite_before is not None:
            assert _sqlite_schema_dump(_sqlite_path(db_url)) == sqlite_before
        # and the real migrations still consider the database up to date
        db.upgrade_schema(engine)
        assert db.current_revision(engine) == db.head_revision()
    finally:
        engine.dispose()


def test_plain_pysqlite_would_leave_half_schema(sqlite_url: str, broken_scripts: str) -> None:
    """Control: without graphcopy's recipe the same failure leaves DDL behind (why the recipe exists)."""
    from alembic import command
    from alembic.config import Config

    plain = sa.create_engine(sqlite_url)
    try:
        cfg = Config()
        cfg.set_main_option("script_location", broken_scripts)
        with pytest.raises(sa.exc.OperationalError), plain.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        # pysqlite ran 0001's DDL outside any transaction: its tables stay although no revision is
        # recorded, so the next upgrade would fail with "table already exists".
        assert "canisters" in _user_tables(plain)
        with plain.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 0
    finally:
        plain.dispose()


# ------------------------------------------------------------------------------------ open errors


def test_open_unreachable_postgresql() -> None:
    with pytest.raises(StoreError) as info:
        db.open_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("cannot connect to database postgresql://postgres@127.0.0.1:1/nowhere")
    assert not isinstance(info.value, StoreLockedError)


def test_open_missing_pg_database(pg_url: str) -> None:
    url = sa.make_url(pg_url).set(database="graphcopy_no_such_db").render_as_string(hide_password=False)
    with pytest.raises(StoreError, match='database "graphcopy_no_such_db" does not exist') as info:
        db.open_engine(url)
    assert "\n" not in str(info.value)


def test_open_unwritable_sqlite_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open SQLite database .*does the directory exist") as info:
        db.open_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")
    assert "\n" not in str(info.value)


def test_open_not_a_database(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"this is not sqlite" * 1000)
    with pytest.raises(StoreError, match="not a (SQLite )?database") as info:
        db.open_engine(f"sqlite:///{bogus}")
    assert "\n" not in str(info.value)


def test_open_unsupported_url() -> None:
    with pytest.raises(StoreError, match="unsupported database URL"):
        db.open_engine("mysql://u@h/d")
    with pytest.raises(StoreError, match="invalid database URL"):
        db.open_engine("not a url://")


def test_open_database_from_newer_graphcopy(db_url: str) -> None:
    engine = db.open_engine(db_url)
    with db.transaction(engine) as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_future'")
    engine.dispose()
    with pytest.raises(StoreError, match="schema revision 9999_future, which this graphcopy does not know"):
        db.open_engine(db_url)


def test_integrity_errors_pass_through(engine: sa.Engine) -> None:
    with db.transaction(engine) as conn:
        _new_canister(conn, "dup")
    with pytest.raises(sa.exc.IntegrityError), db.transaction(engine) as conn:
        _new_canister(conn, "other")
        _new_canister(conn, "dup")
    with db.read_transaction(engine) as conn:
        names = conn.execute(sa.select(schema.canisters.c.name)).scalars().all()
    assert names == ["dup"]  # "other" was rolled back


# -------------------------------------------------------------------------------------------- pages


def test_page_round_trip(engine: sa.Engine) -> None:
    with db.transaction(engine) as conn:
        cid = _new_canister(conn)
        other = _new_canister(conn, "c2")

    backing = bytearray(3 * P)
    backing[P : 2 * P] = _page(7)
    backing[2 * P + 5] = 1
    mv = memoryview(backing)
    q = array.array("Q", [0]) * (P // 8)
    q[3] = 0xDEADBEEF
    with db.transaction(engine) as conn:
        written = pages.write_pages(
            conn,
            pages.HEAP,
            cid,
            [
                (0, mv[0:P]),  # zero: not stored
                (1, mv[P : 2 * P]),
                (2, mv[2 * P : 3 * P]),
                (5, _page(9)),
                (6, bytes(P)),  # zero bytes: not stored
                (9, memoryview(q)),  # non-byte format memoryview
                (10, bytearray(_page(3))),
            ],
        )
    assert written == 5 * P
    with db.read_transaction(engine) as conn:
        assert pages.stored_page_count(conn, pages.HEAP, cid) == 5
        assert pages.stored_page_count(conn, pages.STABLE, cid) == 0
        got = list(pages.read_pages(conn, pages.HEAP, cid))
        assert [n for n, _ in got] == [1, 2, 5, 9, 10]
        assert all(type(d) is bytes for _, d in got)
        data = dict(got)
        assert data[1] == _page(7)
        assert data[2] == bytes(backing[2 * P :])
        assert data[5] == _page(9)
        assert data[9] == q.tobytes()
        assert data[10] == _page(3)
        # explicit page numbers: ordered, deduplicated, missing (zero) pages not yielded
        sel = list(pages.read_pages(conn, pages.HEAP, cid, [10, 0, 5, 5, 123]))
        assert [n for n, _ in sel] == [5, 10]
        assert list(pages.read_pages(conn, pages.HEAP, other)) == []

    # overwriting with zeros deletes; later writes of the same page win
    with db.transaction(engine) as conn:
        written = pages.write_pages(
            conn,
            pages.HEAP,
            cid,
            [(5, bytes(P)), (1, _page(1)), (1, bytes(P)), (11, bytes(P)), (11, _page(4))],
        )
        assert written == 2 * P
        assert [n for n, _ in pages.read_pages(conn, pages.HEAP, cid)] == [2, 9, 10, 11]
        assert dict(pages.read_pages(conn, pages.HEAP, cid, [11]))[11] == _page(4)


def test_page_batches_copy_delete_cascade(engine: sa.Engine) -> None:
    n = 150  # more than two batches of 64
    with db.transaction(engine) as conn:
        src = _new_canister(conn, "src")
        dst = _new_canister(conn, "dst")
        pages.write_pages(conn, pages.STABLE, dst, [(999, _page(1))])  # replaced by the copy
        written = pages.write_pages(
            conn, pages.STABLE, src, ((i, (i % 251 + 1).to_bytes(1, "little") * P) for i in range(n))
        )
        assert written == n * P
    with db.transaction(engine) as conn:
        pages.copy_pages(conn, pages.STABLE, src, dst)
    with db.read_transaction(engine) as conn:
        src_pages = list(pages.read_pages(conn, pages.STABLE, src))
        dst_pages = list(pages.read_pages(conn, pages.STABLE, dst))
        assert [p for p, _ in src_pages] == list(range(n))
        assert src_pages == dst_pages
        some = list(pages.read_pages(conn, pages.STABLE, src, range(0, n + 50, 2)))
        assert [p for p, _ in some] == list(range(0, n, 2))
    with db.transaction(engine) as conn:
        pages.delete_pages(conn, pages.STABLE, src, from_page=100)
        assert pages.stored_page_count(conn, pages.STABLE, src) == 100
        pages.delete_pages(conn, pages.STABLE, src)
        assert pages.stored_page_count(conn, pages.STABLE, src) == 0
        # deleting the canister cascades to its pages
        conn.execute(schema.canisters.delete().where(schema.canisters.c.id == dst))
        assert pages.stored_page_count(conn, pages.STABLE, dst) == 0


def _stored_with_hashes(conn: sa.Connection, cid: int) -> dict[int, tuple[bytes, str]]:
    rows = conn.execute(sa.select(schema.heap_pages.c.page_no, schema.heap_pages.c.data, schema.heap_pages.c.hash)
                        .where(schema.heap_pages.c.canister_id == cid))
    return {int(no): (bytes(data), str(h)) for no, data, h in rows}


def _many_batch_writes(n: int) -> tuple[list[tuple[int, bytes]], dict[int, bytes]]:
    """Writes spanning several batches, with later batches zeroing and rewriting pages of earlier
    ones, and what the store must hold after them (the last write of each page wins)."""
    b = pages.BATCH_PAGES
    seq = [(i, _page(i % 250 + 1)) for i in range(n)]
    seq += [(5, bytes(P)), (7, _page(251)), (9, bytes(P)), (9, _page(252))]
    seq += [(n + i, _page(3)) for i in range(b)] + [(n, bytes(P)), (n + 1, _page(253)), (7, bytes(P))]
    expected: dict[int, bytes] = {}
    for no, data in seq:
        if data == bytes(P):
            expected.pop(no, None)
        else:
            expected[no] = data
    return seq, expected


def test_page_writes_over_many_batches_keep_their_order_and_hashes(engine: sa.Engine) -> None:
    # a write of several batches hashes each batch on a helper thread while the one before is
    # stored: the statements must still run in the order of the writes, each page with its hash
    with db.transaction(engine) as conn:
        cid = _new_canister(conn)
    seq, expected = _many_batch_writes(3 * pages.BATCH_PAGES + 10)
    with db.transaction(engine) as conn:
        written = pages.write_pages(conn, pages.HEAP, cid, seq)
    assert written == sum(P for _, data in seq if data != bytes(P))
    with db.read_transaction(engine) as conn:
        stored = _stored_with_hashes(conn, cid)
    assert {no: data for no, (data, _) in stored.items()} == expected
    assert all(h == hashlib.sha256(data).hexdigest() for data, h in stored.values())


def test_page_writes_after_a_fork_hash_in_the_child(sqlite_url: str, tmp_path: Path) -> None:
    # the parent's helper thread does not survive a fork; a child (the kill tests fork their operations,
    # a script may too) must get its own rather than wait on a thread that is not there
    parent = db.open_engine(sqlite_url)
    try:
        with db.transaction(parent) as conn:
            cid = _new_canister(conn)
            pages.write_pages(conn, pages.HEAP, cid, _many_batch_writes(2 * pages.BATCH_PAGES)[0])
    finally:
        parent.dispose()
    child_url = f"sqlite:///{tmp_path / 'child.db'}"
    seq, expected = _many_batch_writes(2 * pages.BATCH_PAGES + 1)
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit status
        code = 1
        try:
            child = db.open_engine(child_url)
            with db.transaction(child) as conn:
                pages.write_pages(conn, pages.HEAP, _new_canister(conn), seq)
            child.dispose()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 30
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung in write_pages")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    check = db.open_engine(child_url)
    try:
        with db.read_transaction(check) as conn:
            (cid,) = conn.execute(sa.select(schema.canisters.c.id)).one()
            stored = _stored_with_hashes(conn, cid)
    finally:
        check.dispose()
    assert {no: data for no, (data, _) in stored.items()} == expected


def test_page_functions_autobegin(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        with conn.begin():
            cid = _new_canister(conn)
        pages.write_pages(conn, pages.HEAP, cid, [(0, _page(2))])
        assert conn.in_transaction()
        conn.rollback()
        assert pages.stored_page_count(conn, pages.HEAP, cid) == 0
        pages.write_pages(conn, pages.HEAP, cid, [(0, _page(2))])
        conn.commit()
    with db.read_transaction(engine) as conn:
        assert pages.stored_page_count(conn, pages.HEAP, cid) == 1


def test_page_argument_errors(engine: sa.Engine) -> None:
    with db.transaction(engine) as conn:
        cid = _new_canister(conn)
        with pytest.raises(ValueError, match="pages are exactly 65536 bytes"):
            pages.write_pages(conn, pages.HEAP, cid, [(0, b"short")])
        with pytest.raises(ValueError, match="negative"):
            pages.write_pages(conn, pages.HEAP, cid, [(-1, _page(1))])
        with pytest.raises(ValueError, match="unknown page kind"):
            pages.stored_page_count(conn, "wasm", cid)
        with pytest.raises(ValueError, match="unknown page kind"):
            list(pages.read_pages(conn, "wasm", cid))


def test_zero_check_is_cheap() -> None:
    mv = memoryview(bytearray(P))
    start = time.perf_counter()
    for _ in range(1000):
        assert pages.is_zero_page(mv)
    assert time.perf_counter() - start < 0.5  # ~1 µs each; a byte-wise check takes ~100 µs
    nz = bytearray(P)
    nz[-1] = 1
    assert not pages.is_zero_page(memoryview(nz))


# -------------------------------------------------------------------------------------------- locks


def test_sqlite_lock_raises_store_locked(sqlite_url: str) -> None:
    db.open_engine(sqlite_url).dispose()
    holder = sqlite3.connect(_sqlite_path(sqlite_url), isolation_level=None)
    engine = db.create_engine_for(sqlite_url, lock_timeout_s=0.2)
    try:
        holder.execute("BEGIN IMMEDIATE")
        start = time.perf_counter()
        with pytest.raises(StoreLockedError) as info, db.transaction(engine) as conn:
            conn.execute(sa.insert(schema.settings).values(key="k", value="v"))
        elapsed = time.perf_counter() - start
        assert elapsed < 2.0
        assert str(info.value) == (
            f"database {_sqlite_path(sqlite_url)} is locked by another process; retry when it finishes"
        )
        assert info.value.exit_code == 4
        # readers are not blocked by the writer (WAL, deferred BEGIN)
        with db.read_transaction(engine) as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(schema.settings)
                                .where(schema.settings.c.key == "k")).scalar() == 0
        holder.execute("COMMIT")
        with db.transaction(engine) as conn:
            conn.execute(sa.insert(schema.settings).values(key="k", value="v"))
    finally:
        holder.close()
        engine.dispose()


def test_pg_row_lock_raises_store_locked(pg_url: str) -> None:
    import psycopg

    engine = db.open_engine(pg_url)
    with db.transaction(engine) as conn:
        cid = _new_canister(conn)
        pages.write_pages(conn, pages.HEAP, cid, [(0, _page(1))])
    engine.dispose()

    fast = db.create_engine_for(pg_url, lock_timeout_s=0.2)
    holder = psycopg.connect(sa.make_url(pg_url).set(drivername="postgresql").render_as_string(False))
    try:
        holder.execute("SELECT id FROM canisters WHERE id = %s FOR UPDATE", (cid,))
        holder.execute("SELECT page_no FROM heap_pages WHERE canister_id = %s FOR UPDATE", (cid,))
        start = time.perf_counter()
        with pytest.raises(StoreLockedError, match="is locked by another process; retry when it finishes"):
            with db.transaction(fast) as conn:
                conn.execute(schema.canisters.update().where(schema.canisters.c.id == cid).values(version=2))
        assert time.perf_counter() - start < 3.0
        # the driver-level page path is translated too
        with pytest.raises(StoreLockedError), db.transaction(fast) as conn:
            pages.write_pages(conn, pages.HEAP, cid, [(0, _page(2))])
        # reading a locked row does not wait
        with db.read_transaction(fast) as conn:
            assert dict(pages.read_pages(conn, pages.HEAP, cid)) == {0: _page(1)}
        holder.rollback()
        with db.transaction(fast) as conn:
            pages.write_pages(conn, pages.HEAP, cid, [(0, _page(2))])
    finally:
        holder.close()
        fast.dispose()
