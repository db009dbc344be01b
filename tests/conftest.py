"""Fixtures shared by the whole test suite.

Database fixtures (names are stable; other test modules rely on them):

* ``db_url`` -- parametrized over ``["sqlite", "postgresql"]``: the URL of a fresh, empty database
  (a new SQLite file in ``tmp_path``, or a new PostgreSQL database created for this test and
  dropped afterwards).
* ``sqlite_url`` -- the SQLite case only.
* ``pg_url`` -- the PostgreSQL case only.
* ``store_engine`` -- ``persist.store.db.open_engine(db_url)``: schema at head, disposed afterwards.
* ``store`` / ``sstore`` -- an open ``persist.session.Store`` on ``db_url`` (both backends) / on
  ``sqlite_url`` (a module may define its own ``store``, e.g. with other limits).
* ``pg_admin_url`` -- session-scoped URL of the PostgreSQL server's maintenance database.
* ``dirty_tracking`` -- parametrized over ``["uffd", "compare"]``: the test runs under each heap
  dirty-tracking mechanism (``GRAPHCOPY_DIRTY_TRACKING``, inherited by subprocesses). Host and
  durability modules request it for every test with ``pytestmark = pytest.mark.usefixtures(...)``.
  ``uffd`` where the kernel lacks it is skipped on a developer machine and fails in CI.

PostgreSQL comes from ``$GRAPHCOPY_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); the role needs CREATEDB. If the server is
unreachable, the PostgreSQL cases are skipped on a developer machine, but *fail* when ``$CI`` is
set (a skip in CI would hide a broken setup).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

# The user's identities (``persist.identity``) live in a directory of the test session, never in the
# real home: XDG_CONFIG_HOME is inherited by the subprocesses tests start (which drop GRAPHCOPY_*
# variables), so they act as the same identity as the test process.
os.environ.pop("GRAPHCOPY_CONFIG_DIR", None)
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="graphcopy-test-config-")

# Compiled modules (``persist.host.module_cache``) are cached under XDG_CACHE_HOME, here a directory of
# the test session (inherited by subprocesses that drop GRAPHCOPY_* variables), never the user's own.
os.environ.pop("GRAPHCOPY_CACHE_DIR", None)
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="graphcopy-test-cache-")
_CACHE_OWNER = os.getpid()  # a forked child leaving must not remove it under the suite
atexit.register(lambda d=os.environ["XDG_CACHE_HOME"]: os.getpid() == _CACHE_OWNER and shutil.rmtree(d, True))

# A suite started in the background by a shell without job control (`bash .ci/run &`, a CI runner's
# script) inherits SIGINT ignored, and so would every graphcopy process it starts: a Python that
# starts with SIGINT ignored keeps it ignored, and the Ctrl-C tests would see no Ctrl-C. With a
# handler here, the processes the tests start begin with the default disposition again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

PG_ENV = "GRAPHCOPY_TEST_PG_URL"
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _pg_base_url() -> sa.URL:
    raw = os.environ.get(PG_ENV, "").strip() or PG_DEFAULT
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            raw = "postgresql+psycopg://" + raw[len(prefix) :]
    return sa.make_url(raw)


def _pg_unavailable(reason: str) -> None:
    msg = f"PostgreSQL unavailable ({reason}); set {PG_ENV} to a server where the role may CREATE DATABASE"
    if _in_ci():
        pytest.fail(f"{msg} -- PostgreSQL is required when CI is set", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def _pg_admin_engine() -> Iterator[sa.Engine | str]:
    """An AUTOCOMMIT engine on the maintenance database, or the reason it cannot be reached."""
    url = _pg_base_url()
    engine = sa.create_engine(
        url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}, poolclass=sa.NullPool
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # any failure means "no server for the tests"
        engine.dispose()
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        yield f"{url.render_as_string(hide_password=True)}: {first}"
        return
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_admin_url(_pg_admin_engine: sa.Engine | str) -> str:
    """URL of the PostgreSQL maintenance database (skips/fails like ``pg_url`` if unreachable)."""
    if isinstance(_pg_admin_engine, str):
        _pg_unavailable(_pg_admin_engine)
        raise AssertionError("unreachable")
    return _pg_admin_engine.url.render_as_string(hide_password=False)


def _fresh_pg_database(admin: sa.Engine | str) -> Iterator[str]:
    if isinstance(admin, str):
        _pg_unavailable(admin)
        raise AssertionError("unreachable")
    name = f"graphcopy_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _fresh_sqlite_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'graphcopy-test.db'}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file (not created yet) in the test's tmp_path."""
    return _fresh_sqlite_file(tmp_path)


@pytest.fixture
def pg_url(_pg_admin_engine: sa.Engine | str) -> Iterator[str]:
    """URL (postgresql+psycopg://) of a fresh PostgreSQL database, dropped after the test."""
    yield from _fresh_pg_database(_pg_admin_engine)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database; the test runs once per backend."""
    if request.param == "sqlite":
        yield _fresh_sqlite_file(tmp_path)
    else:
        yield from _fresh_pg_database(request.getfixturevalue("_pg_admin_engine"))


@pytest.fixture
def store_engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine on ``db_url`` opened with ``persist.store.db.open_engine`` (schema at head)."""
    from persist.store.db import open_engine

    engine = open_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def moc() -> None:
    """Real `moc` (the pinned npm package `motoko`) is needed: skip on a laptop without Node or
    `npm ci`, fail in CI."""
    from toolchain.moc import require_moc

    require_moc()


@pytest.fixture
def store(db_url: str) -> Iterator[Any]:
    """An open store on a fresh database (SQLite and PostgreSQL), closed afterwards."""
    from persist.session import open_store

    with open_store(db_url) as st:
        yield st


@pytest.fixture
def sstore(sqlite_url: str) -> Iterator[Any]:
    """An open store on a fresh SQLite file, closed afterwards."""
    from persist.session import open_store

    with open_store(sqlite_url) as st:
        yield st


@pytest.fixture(params=["uffd", "compare"])
def dirty_tracking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The heap dirty-tracking mechanism this test runs under (forced through the environment)."""
    from persist.host.dirty.select import ENV
    from persist.host.dirty.uffd import unavailable_reason

    mechanism = str(request.param)
    if mechanism == "uffd":
        reason = unavailable_reason()
        if reason is not None:
            msg = f"userfaultfd dirty tracking unavailable here ({reason})"
            if _in_ci():
                pytest.fail(f"{msg} -- CI machines have it (Linux 6.7+)", pytrace=False)
            pytest.skip(msg)
    monkeypatch.setenv(ENV, mechanism)
    return mechanism
