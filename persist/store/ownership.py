"""Stores are what they claim: graphcopy's schema goes only into a new or empty database, or one
it owns; a damaged SQLite file is named as such and never written.

* Ownership. A database is graphcopy's when its ``settings`` table holds the row
  ``schema_owner = graphcopy`` (written by revision ``0006_store_owner``, and by it into every
  store an older graphcopy made: those are recognised by an ``alembic_version`` row naming one of
  graphcopy's own revisions next to graphcopy's ``settings`` and ``canisters`` tables).
  :func:`check_owner` runs before any revision is applied: a database with other tables and no
  graphcopy schema (another application's, or one that only looks like a store) is refused and
  left untouched, and an unknown revision in a graphcopy store means a newer graphcopy made it.
* SQLite files. :func:`check_sqlite_file` reads the 100-byte header of an existing, non-empty file
  before SQLite opens it: a file that is not SQLite, or is shorter than its header says (a
  truncated copy), is refused, so nothing is ever written to it. An empty file is a new database.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlalchemy as sa

from persist.errors import StoreError

__all__ = ["OWNER_KEY", "OWNER_VALUE", "check_owner", "check_sqlite_file", "sqlite_file_of"]

#: The ``settings`` row that marks a database as a graphcopy store.
OWNER_KEY = "schema_owner"
OWNER_VALUE = "graphcopy"

_SQLITE_MAGIC = b"SQLite format 3\x00"
# Tables any graphcopy store has had since its first revision.
_CORE_TABLES = frozenset({"alembic_version", "settings", "canisters"})


def check_sqlite_file(path: str, where: str) -> None:
    """Refuse an existing SQLite file that is not SQLite, is shorter than its header says, or holds
    another application's tables; read-only, before graphcopy's connection settings (WAL) could
    change the file."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return  # a new file (or one SQLite will report it cannot open)
    if size == 0:
        return
    try:
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as exc:
        raise StoreError(f"cannot read SQLite database {where}: {exc.strerror}") from exc
    if not header.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{where} is not a SQLite database (it does not start with the SQLite header); "
                         "graphcopy did not change it")
    if len(header) < 100:
        raise StoreError(f"SQLite database {where} is truncated: {size} bytes, less than its 100-byte header; "
                         "restore it from a backup (graphcopy did not write to it)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count in the header is valid when its "version-valid-for" equals the change counter.
    # A checkpoint killed half-way leaves the new header written and the file not yet extended, while
    # the write-ahead log still holds every page: with a non-empty -wal file the file is not truncated.
    if header[92:96] == header[24:28] and page_size and pages and size < pages * page_size and not _has_wal(path):
        raise StoreError(f"SQLite database {where} is truncated: its header says {pages} pages of {page_size} bytes "
                         f"({pages * page_size:,} bytes), the file has {size:,}; restore it from a backup "
                         "(graphcopy did not write to it)")
    try:
        con = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return  # SQLite's own error comes when the store opens it
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%'")}
        owned = "settings" in tables and con.execute(
            "SELECT value FROM settings WHERE key = ?", (OWNER_KEY,)).fetchone() == (OWNER_VALUE,)
        revisions = [r[0] for r in con.execute("SELECT version_num FROM alembic_version")] \
            if "alembic_version" in tables else []
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"SQLite database {where} is corrupt ({exc}); restore it from a backup "
                         "(graphcopy did not write to it)") from exc
    finally:
        con.close()
    _refuse_foreign(tables, owned, revisions, None, where)


def check_owner(conn: sa.Connection, known_revisions: set[str], head: str | None, where: str) -> None:
    """Refuse to put graphcopy's schema into a database that holds something else (before any
    revision runs, in the migration's transaction). ``known_revisions`` are graphcopy's."""
    tables = set(sa.inspect(conn).get_table_names())
    if not tables:
        return  # new or empty: graphcopy's to create
    owned = "settings" in tables and conn.execute(
        sa.text("SELECT value FROM settings WHERE key = :k"), {"k": OWNER_KEY}).scalar() == OWNER_VALUE
    revisions: list[str] = []
    if "alembic_version" in tables:
        revisions = list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    _refuse_foreign(tables, owned, revisions, known_revisions, where)
    unknown = [r for r in revisions if r not in known_revisions]
    if unknown:
        raise StoreError(f"database {where} has schema revision {unknown[0]}, which this graphcopy does not know "
                         f"(newest known: {head}); use a newer graphcopy")


def _refuse_foreign(tables: set[str], owned: bool, revisions: list[str], known: set[str] | None,
                    where: str) -> None:
    """StoreError unless the database is empty, marked as graphcopy's, or an older graphcopy
    store (graphcopy's core tables, and revisions all graphcopy's; ``known`` None: not checked)."""
    if not tables or owned:
        return
    if _CORE_TABLES <= tables and revisions and (known is None or set(revisions) <= known):
        return
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    what = (f"an Alembic schema of another application (revision {revisions[0]})" if revisions
            else f"{len(tables)} table(s) ({shown}) and no graphcopy schema")
    raise StoreError(f"database {where} is not a graphcopy store: it holds {what}; graphcopy creates its schema "
                     "only in a new or empty database (a new SQLite file, or `createdb graphcopy`), and left "
                     "this one unchanged")


def _has_wal(path: str) -> bool:
    try:
        return os.path.getsize(path + "-wal") > 0
    except OSError:
        return False


def sqlite_file_of(u: sa.URL) -> str | None:
    """The file a SQLite URL names (None for in-memory databases)."""
    db = u.database or ""
    if db in ("", ":memory:") or db.startswith("file:"):
        return None
    return str(Path(db))
