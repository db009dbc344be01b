"""Opening, configuring and migrating the SQL store (SQLite by default, PostgreSQL for fleets).

* :func:`resolve_url` picks the database: an explicit URL, else ``$GRAPHCOPY_DATABASE_URL``, else
  ``sqlite:///<cwd>/graphcopy.db``.
* :func:`create_engine_for` builds an engine with graphcopy's connection settings. On SQLite these are
  WAL, ``synchronous=FULL``, 64 KiB database pages, foreign keys, a busy timeout, and truly
  transactional DDL and DML (pysqlite's own transaction handling is switched off, and every
  transaction starts with an explicit ``BEGIN IMMEDIATE``). On PostgreSQL it sets ``lock_timeout``, so a
  locked row or table raises an error instead of waiting for ever.
* :func:`upgrade_schema` applies pending Alembic revisions from the ``migrations`` package, all in
  one transaction. If a revision fails, the database is left exactly as it was, on both backends.
* :func:`transaction` / :func:`read_transaction` wrap one unit of work and turn driver errors into
  :class:`~persist.errors.StoreLockedError` / :class:`~persist.errors.StoreError`.
* :func:`open_engine` does all of the above and reports problems in one line.

Alembic is imported lazily (only when a revision has to be applied, or when the revision list is
asked for), because importing it and loading the scripts costs a noticeable part of a CLI run.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event

from persist.errors import StoreError, StoreLockedError
from persist.store import ownership, urls

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "DEFAULT_DB_FILE",
    "ENV_URL",
    "READ_ONLY_OPTION",
    "resolve_url",
    "describe_url",
    "create_engine_for",
    "upgrade_schema",
    "current_revision",
    "head_revision",
    "history",
    "transaction",
    "read_transaction",
    "translate_error",
    "open_engine",
]

DEFAULT_DB_FILE = "graphcopy.db"
ENV_URL = "GRAPHCOPY_DATABASE_URL"

#: Execution option: on SQLite, a connection that has it set to True starts its transactions with a
#: plain (deferred) ``BEGIN`` instead of ``BEGIN IMMEDIATE``, so it does not take the write lock.
READ_ONLY_OPTION = "graphcopy_read_only"

SQLITE_PAGE_SIZE = 65536
PG_CONNECT_TIMEOUT_S = 10
# pg_advisory_xact_lock key that serialises concurrent schema upgrades on PostgreSQL ("graphcop").
_PG_MIGRATION_LOCK_KEY = 0x6772617068636F70


# --------------------------------------------------------------------------------------------- URLs


def resolve_url(url: str | None) -> str:
    """The SQLAlchemy URL of the store.

    Uses ``url`` if given (non-empty), else ``$GRAPHCOPY_DATABASE_URL``, else
    ``sqlite:///<cwd>/graphcopy.db``. ``postgresql://`` and ``postgres://`` URLs are rewritten to use
    psycopg 3 (``postgresql+psycopg://``). A value without ``://`` is taken as the path of a SQLite
    file and turned into an absolute ``sqlite:///`` URL.
    """
    chosen = url if url else os.environ.get(ENV_URL, "")
    chosen = chosen.strip()
    if not chosen:
        return f"sqlite:///{Path.cwd() / DEFAULT_DB_FILE}"
    for prefix in ("postgresql://", "postgres://"):
        if chosen.startswith(prefix):
            return "postgresql+psycopg://" + chosen[len(prefix) :]
    if "://" not in chosen:
        return f"sqlite:///{Path(chosen).expanduser().resolve()}"
    return chosen


def describe_url(url: str | sa.URL) -> str:
    """A short, password-free name of the database for messages (a file path, or a PostgreSQL URL)."""
    try:
        u = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparsable database URL>"
    if u.get_backend_name() == "sqlite":
        return u.database or ":memory:"
    return u.set(drivername=u.get_backend_name()).render_as_string(hide_password=True)


# ------------------------------------------------------------------------------------------ engines


def create_engine_for(url: str, *, lock_timeout_s: float = 5.0, allow_in_memory: bool = False) -> sa.Engine:
    """An engine for ``url`` with graphcopy's connection settings (see the module docstring).

    ``lock_timeout_s`` bounds how long a statement waits for a lock held by someone else before it
    fails (SQLite busy timeout; PostgreSQL ``lock_timeout``). Raises :class:`StoreError` for a URL that
    is neither SQLite nor PostgreSQL or cannot be parsed (:mod:`persist.store.urls`: bad ports,
    IPv6 brackets, PostgreSQL without a database name), for an in-memory SQLite database unless
    ``allow_in_memory``, and for an existing SQLite file that is not SQLite or is truncated
    (:func:`persist.store.ownership.check_sqlite_file`). Connects lazily.
    """
    u = urls.parse_url(url, allow_in_memory=allow_in_memory)
    backend = u.get_backend_name()
    if lock_timeout_s < 0:
        raise ValueError("lock_timeout_s must be >= 0")
    try:
        if backend == "sqlite":
            return _sqlite_engine(u, lock_timeout_s)
        if backend == "postgresql":
            return _postgresql_engine(u, lock_timeout_s)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise StoreError(f"invalid database URL {describe_url(u)}: {_first_line(exc)}") from exc
    raise StoreError(
        f"unsupported database URL {describe_url(u)}: graphcopy stores its state in SQLite "
        "(sqlite:///path) or PostgreSQL (postgresql://...)"
    )


def _sqlite_engine(u: sa.URL, lock_timeout_s: float) -> sa.Engine:
    if u.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise StoreError(f"unsupported SQLite driver {u.drivername!r}; use a plain sqlite:/// URL")
    path = ownership.sqlite_file_of(u)
    if path is not None:
        ownership.check_sqlite_file(path, describe_url(u))
    engine = sa.create_engine(u, connect_args={"timeout": lock_timeout_s})
    busy_ms = int(lock_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_con: Any, _record: Any) -> None:
        # Switch off pysqlite's implicit transaction handling: the "begin" hook below issues BEGIN
        # itself, so DDL is transactional too (a failed migration leaves no half schema).
        dbapi_con.isolation_level = None
        cur = dbapi_con.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            # Only effective before the first table is created; must precede the switch to WAL.
            cur.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = FULL")
            cur.execute("PRAGMA foreign_keys = ON")
            # Builds compiled with SQLITE_SECURE_DELETE (Debian's, among others) zero every page they
            # free: deleting a stored 64 KiB page (a heap or stable memory that is cleared, a dropped
            # snapshot) then writes as much as storing one did. FAST still purges b-tree pages but not
            # freed overflow pages, which keep old page bytes until reused (README, Limits). Measured:
            # the upgrade step of a 583 MiB graph copy, which clears 512 MiB of stable memory, 8.7 -> 5.6 s.
            cur.execute("PRAGMA secure_delete = FAST")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get(READ_ONLY_OPTION):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgresql_engine(u: sa.URL, lock_timeout_s: float) -> sa.Engine:
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if u.drivername != "postgresql+psycopg":
        raise StoreError(
            f"unsupported PostgreSQL driver {u.drivername!r}; graphcopy uses psycopg 3 (postgresql://...)"
        )
    # lock_timeout = 0 would mean "wait for ever" on PostgreSQL, so never go below 1 ms.
    lock_ms = max(1, int(lock_timeout_s * 1000))
    options = f"-c lock_timeout={lock_ms}"
    user_options = u.query.get("options")
    if isinstance(user_options, str) and user_options:
        options = f"{user_options} {options}"
    connect_args: dict[str, Any] = {"options": options}
    if "connect_timeout" not in u.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    if "application_name" not in u.query:
        connect_args["application_name"] = "graphcopy"
    return sa.create_engine(u, connect_args=connect_args)


# ------------------------------------------------------------------------------------ transactions


@contextmanager
def transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One write transaction: commits when the block ends, rolls back if it raises.

    On SQLite it starts with ``BEGIN IMMEDIATE`` (takes the write lock up front, waiting at most the
    engine's lock timeout). Lock errors (SQLite ``database is locked``, PostgreSQL lock timeout or
    deadlock) become :class:`StoreLockedError`; other operational errors (connection refused,
    unwritable file, ...) become :class:`StoreError`, both with a one-line message and the driver
    error as ``__cause__``. Integrity and programming errors pass through unchanged.
    """
    with _translated(engine), engine.begin() as conn:
        yield conn


@contextmanager
def _translated(engine: sa.Engine) -> Iterator[None]:
    """Re-raise driver errors of the block as :class:`StoreError` / :class:`StoreLockedError`."""
    try:
        yield
    except StoreError:
        raise
    except Exception as exc:
        err = translate_error(exc, engine)
        if err is None:
            raise
        raise err from exc


@contextmanager
def read_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """Like :func:`transaction`, but on SQLite starts with a deferred ``BEGIN``.

    Readers then neither wait for nor block a writer (WAL); the block sees one consistent snapshot. It
    may still write, but then it can fail with :class:`StoreLockedError` if another writer got there
    first, so use :func:`transaction` for read-modify-write work.
    """
    with _translated(engine), engine.connect() as conn:
        conn.execution_options(**{READ_ONLY_OPTION: True})
        with conn.begin():
            yield conn


def translate_error(exc: BaseException, engine_or_url: sa.Engine | sa.URL | str) -> StoreError | None:
    """The :class:`StoreError` to raise for a driver error, or None if it is not an operational error.

    Accepts SQLAlchemy-wrapped errors as well as raw ``sqlite3`` / ``psycopg`` ones (the page I/O of
    :mod:`persist.store.pages` uses driver cursors directly).
    """
    url = engine_or_url.url if isinstance(engine_or_url, sa.Engine) else engine_or_url
    where = describe_url(url)
    orig: BaseException = exc
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        msg = str(orig)
        if "locked" in msg or "busy" in msg:
            return _locked(where)
        if "unable to open database file" in msg:
            return StoreError(
                f"cannot open SQLite database {where}: unable to open the file "
                f"(does the directory exist, and is it writable?){_path_hint(url)}"
            )
        if "readonly" in msg or "read-only" in msg:
            return StoreError(f"cannot write SQLite database {where}: the file or its directory is read-only")
        return StoreError(f"database {where}: {_first_line(orig)}")
    if isinstance(orig, sqlite3.DatabaseError) and "not a database" in str(orig):
        return StoreError(f"{where} is not a SQLite database ({_first_line(orig)})")
    if isinstance(orig, sqlite3.DatabaseError) and "malformed" in str(orig):
        return StoreError(f"SQLite database {where} is corrupt ({_first_line(orig)}); restore it from a backup "
                          "(the transaction that found it was rolled back)")
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(orig, psycopg.OperationalError):
        sqlstate = getattr(orig, "sqlstate", None)
        if sqlstate in ("55P03", "40P01") or (sqlstate == "57014" and "lock timeout" in str(orig)):
            return _locked(where)
        if sqlstate is None:
            hint = ""
            if "does not exist" in str(orig) and "database" in str(orig):
                hint = urls.missing_database_hint(sa.make_url(url))
            return StoreError(f"cannot connect to database {where}: {_pg_reason(orig)}{hint}")
        return StoreError(f"database {where}: {_first_line(orig)}")
    if isinstance(exc, sa.exc.OperationalError):
        return StoreError(f"database {where}: {_first_line(orig)}")
    return None


def _pg_reason(exc: BaseException) -> str:
    """psycopg's connection error without its "connection failed: connection to server ..." preamble."""
    text = " ".join(str(exc).split())
    return text.split("FATAL: ", 1)[1].strip() if "FATAL: " in text else _first_line(exc)


def _path_hint(url: sa.URL | str) -> str:
    try:
        return urls.sqlite_path_hint(sa.make_url(url))
    except (sa.exc.ArgumentError, ValueError):
        return ""


def _locked(where: str) -> StoreLockedError:
    return StoreLockedError(f"database {where} is locked by another process; retry when it finishes")


def _orig(exc: BaseException) -> BaseException:
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        return exc.orig
    return exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


# -------------------------------------------------------------------------------------- migrations


def _default_script_location() -> str:
    import migrations

    return str(Path(migrations.__file__).resolve().parent)


def _alembic_config(script_location: str | None, connection: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    location = script_location or _default_script_location()
    cfg.set_main_option("script_location", location.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


_REVISION_RE = re.compile(r"""^revision(?:\s*:[^=\n]*)?\s*=\s*["']([^"'\n]+)["']\s*$""", re.M)
_DOWN_RE = re.compile(r"""^down_revision(?:\s*:[^=\n]*)?\s*=\s*(None|["']([^"'\n]+)["'])\s*$""", re.M)


@functools.cache
def _cheap_head(versions_dir: str) -> str | None:
    """The single head revision, read from the version files' text without importing Alembic.

    Only used to skip Alembic when a database is already up to date; returns None (so that Alembic
    decides) when anything is unusual (unparsable file, merge revision, several heads).
    """
    revisions: set[str] = set()
    downs: set[str] = set()
    try:
        names = sorted(os.listdir(versions_dir))
    except OSError:
        return None
    for name in names:
        if not name.endswith(".py") or name.startswith(("__init__", ".#")):
            continue
        try:
            text = Path(versions_dir, name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None
        revs = _REVISION_RE.findall(text)
        down = _DOWN_RE.findall(text)
        if len(revs) != 1 or len(down) != 1:
            return None
        revisions.add(revs[0])
        if down[0][0] != "None":
            downs.add(down[0][1])
    heads = revisions - downs
    if len(heads) != 1 or not downs <= revisions:
        return None
    return heads.pop()


def current_revision(engine: sa.Engine) -> str | None:
    """The Alembic revision the database is at, or None for an empty (never migrated) database."""
    with read_transaction(engine) as conn:
        return _revision_of(conn)


def _revision_of(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    if not rows:
        return None
    return ",".join(sorted(rows))


def head_revision(*, script_location: str | None = None) -> str:
    """The newest revision in the ``migrations`` package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(script_location)).get_current_head()
    if head is None:
        raise StoreError("the migrations package has no revisions")
    return head


def history(*, script_location: str | None = None) -> list[tuple[str, str]]:
    """All revisions as ``(revision, message)``, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(script_location))
    return [(s.revision, (s.doc or "").strip()) for s in reversed(list(script.walk_revisions()))]


def upgrade_schema(engine: sa.Engine, *, revision: str = "head", script_location: str | None = None) -> None:
    """Apply the pending Alembic revisions up to ``revision``, in one transaction.

    A no-op (without importing Alembic) when the database is already at the head. On failure the
    database is unchanged, on SQLite too, and :class:`StoreError` (or :class:`StoreLockedError`)
    is raised. ``script_location`` overrides the ``migrations`` package directory (tests).
    """
    if revision == "head":
        location = script_location or _default_script_location()
        head = _cheap_head(os.path.join(location, "versions"))
        if head is not None and current_revision(engine) == head:
            return

    from alembic import command
    from alembic.util import CommandError

    where = describe_url(engine.url)
    migrating = False
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Serialise concurrent upgrades of a fresh database (SQLite: BEGIN IMMEDIATE does it).
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_KEY})
            cfg = _alembic_config(script_location, conn)
            _check_owner(cfg, conn, where)
            migrating = True
            command.upgrade(cfg, revision)
    except StoreError:
        raise
    except Exception as exc:
        err = translate_error(exc, engine)
        if isinstance(err, StoreLockedError) or (err is not None and not migrating):
            raise err from exc
        if migrating and isinstance(exc, sa.exc.SQLAlchemyError | CommandError | sqlite3.Error):
            raise StoreError(
                f"schema upgrade of {where} failed, database left unchanged: {_first_line(_orig(exc))}"
            ) from exc
        raise


def _check_owner(cfg: Config, conn: sa.Connection, where: str) -> None:
    """Before any revision runs: the database must be new, empty or graphcopy's (see
    :mod:`persist.store.ownership`)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(cfg)
    known = {s.revision for s in script.walk_revisions()}
    ownership.check_owner(conn, known, script.get_current_head(), where)


def open_engine(url: str | None = None, *, allow_in_memory: bool = False) -> sa.Engine:
    """Resolve the URL, create the engine and bring the schema up to date.

    Raises :class:`StoreError` / :class:`StoreLockedError` with one clear line (unreachable
    PostgreSQL, unwritable path, locked database, database from a newer graphcopy, a database that
    is not graphcopy's, a truncated SQLite file, ...). In-memory SQLite only with ``allow_in_memory``.
    """
    engine = create_engine_for(resolve_url(url), allow_in_memory=allow_in_memory)
    try:
        upgrade_schema(engine)
    except BaseException:
        engine.dispose()
        raise
    return engine
