"""Bulk I/O of 64 KiB memory pages (heap and stable memory) stored in ``heap_pages`` / ``stable_pages``.

A page that is all zero is never stored: a missing row means "zero page". Every function takes a
SQLAlchemy ``Connection`` and works inside its current transaction (starting one if none is
open, like SQLAlchemy's autobegin), so the caller decides where to commit (``persist.store.db.transaction``).

Speed notes (measured, see the dependency report): writes use ``executemany`` in batches of 64
pages; PostgreSQL reads go through a psycopg *binary* cursor (3x faster than SQLAlchemy's text
transfer of ``bytea``); every query filters on ``canister_id`` so the ``(canister_id, page_no)``
primary key is used (an ``ORDER BY page_no`` without it makes SQLite sort all the blobs).

Every stored page carries ``hash``, the sha256 hex of its data (:func:`page_hash`, the key of
``page_blobs``): :func:`write_pages` computes it (about 30 µs a page), :func:`copy_pages` copies it,
so a snapshot maps the live pages to blobs from the covering index without reading a page. A write
of more than one batch hashes each batch on a helper thread while the driver stores the one before
(``hashlib`` and both drivers release the GIL for the work): a graph copy of a 583 MiB heap stores
1.6 GiB of pages, and their hashes are about a second of CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa

__all__ = [
    "PAGE_SIZE",
    "HEAP",
    "STABLE",
    "ZERO_PAGE",
    "BATCH_PAGES",
    "read_pages",
    "write_pages",
    "delete_pages",
    "stored_page_count",
    "copy_pages",
    "is_zero_page",
    "page_hash",
]

PAGE_SIZE = 65536
HEAP, STABLE = "heap", "stable"
#: Shared all-zero page; comparing against it is a memcmp (about 1 µs per page).
ZERO_PAGE = bytes(PAGE_SIZE)
#: Pages per executemany / per read round trip.
BATCH_PAGES = 64
# Page numbers per "IN (...)" / "= ANY(...)" query when specific pages are read.
_LOOKUP_CHUNK = 256

_TABLES = {HEAP: "heap_pages", STABLE: "stable_pages"}

Buffer = bytes | bytearray | memoryview


def _table(kind: str) -> str:
    try:
        return _TABLES[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown page kind {kind!r}; expected {HEAP!r} or {STABLE!r}") from None


def _is_pg(conn: sa.Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _ensure_transaction(conn: sa.Connection) -> None:
    # Driver cursors bypass SQLAlchemy's autobegin; begin here so the work joins a transaction the
    # caller commits (conn.commit() / the enclosing engine.begin()).
    if not conn.in_transaction():
        conn.begin()


def _sql(conn: sa.Connection, text: str) -> str:
    """``text`` written with ``?`` placeholders, in the driver's paramstyle."""
    return text.replace("?", "%s") if _is_pg(conn) else text


def _as_page_buffer(page_no: int, data: Any) -> Buffer:
    """``data`` as a flat byte buffer of exactly PAGE_SIZE bytes, without copying when possible."""
    if isinstance(data, bytes | bytearray):
        buf: Buffer = data
        size = len(data)
    else:
        mv = memoryview(data)
        if mv.ndim != 1 or mv.format not in ("B", "b", "c"):
            mv = mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())
        elif not mv.c_contiguous:
            mv = memoryview(mv.tobytes())
        buf = mv
        size = mv.nbytes
    if size != PAGE_SIZE:
        raise ValueError(f"page {page_no} has {size} bytes; pages are exactly {PAGE_SIZE} bytes")
    return buf


def is_zero_page(data: Buffer) -> bool:
    """True if ``data`` (exactly PAGE_SIZE bytes) is all zero. Fast: a memcmp, no copy."""
    return ZERO_PAGE.startswith(data)


def page_hash(data: Buffer) -> str:
    """The content hash a stored page carries and ``page_blobs`` is keyed by: sha256, hex."""
    return hashlib.sha256(data).hexdigest()


def _page_hashes(bufs: Sequence[Buffer]) -> list[str]:
    return [page_hash(b) for b in bufs]


# One helper thread per process hashes the next batch while the driver stores the current one.
# Made on first need, and again in a forked child (a fork keeps the executor but not its thread).
_hasher: tuple[int, ThreadPoolExecutor] | None = None


def _hash_in_background(bufs: Sequence[Buffer]) -> Future[list[str]]:
    global _hasher
    if _hasher is None or _hasher[0] != os.getpid():
        _hasher = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphcopy-page-hash"))
    return _hasher[1].submit(_page_hashes, bufs)


def read_pages(
    conn: sa.Connection, kind: str, canister_id: int, page_nos: Iterable[int] | None = None
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(page_no, data)`` for the stored pages of one canister, in ascending ``page_no``.

    ``page_nos=None`` reads all stored pages; otherwise only those listed (duplicates ignored).
    Pages that are not stored are all zero and are *not* yielded. Memory use is bounded (pages
    are fetched in batches), so a whole memory can be streamed.
    """
    table = _table(kind)
    _ensure_transaction(conn)
    wanted = None if page_nos is None else sorted(set(page_nos))
    if _is_pg(conn):
        yield from _read_pg(conn, table, canister_id, wanted)
    else:
        yield from _read_sqlite(conn, table, canister_id, wanted)


def _read_sqlite(
    conn: sa.Connection, table: str, canister_id: int, wanted: list[int] | None
) -> Iterator[tuple[int, bytes]]:
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    cur = dbapi.cursor()
    try:
        if wanted is None:
            cur.execute(
                f"SELECT page_no, data FROM {table} WHERE canister_id = ? ORDER BY page_no", (canister_id,)
            )
            # Not ``yield from cur``: closing this generator would then close the cursor unguarded.
            for row in cur:  # noqa: UP028
                yield row
            return
        for i in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            cur.execute(
                f"SELECT page_no, data FROM {table} WHERE canister_id = ? AND page_no IN ({marks}) "
                "ORDER BY page_no",
                (canister_id, *chunk),
            )
            yield from cur.fetchall()
    finally:
        # A reader abandoned half-way (its consumer raised) may be closed after its connection went
        # back to the pool and was closed: the cursor is gone with it, nothing is left to release.
        with contextlib.suppress(sqlite3.ProgrammingError):
            cur.close()


def _read_pg(
    conn: sa.Connection, table: str, canister_id: int, wanted: list[int] | None
) -> Iterator[tuple[int, bytes]]:
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    with dbapi.cursor(binary=True) as cur:
        if wanted is None:
            # Keyset pagination: bounded memory, one index range scan per batch.
            last = -1
            while True:
                cur.execute(
                    f"SELECT page_no, data FROM {table} WHERE canister_id = %s AND page_no > %s "
                    "ORDER BY page_no LIMIT %s",
                    (canister_id, last, BATCH_PAGES),
                )
                rows = cur.fetchall()
                yield from rows
                if len(rows) < BATCH_PAGES:
                    break
                last = rows[-1][0]
            return
        for i in range(0, len(wanted), BATCH_PAGES):
            chunk = wanted[i : i + BATCH_PAGES]
            cur.execute(
                f"SELECT page_no, data FROM {table} WHERE canister_id = %s AND page_no = ANY(%s::bigint[]) "
                "ORDER BY page_no",
                (canister_id, chunk),
            )
            yield from cur.fetchall()


def write_pages(conn: sa.Connection, kind: str, canister_id: int, pages: Iterable[tuple[int, Buffer]]) -> int:
    """Store pages (insert or overwrite); an all-zero page is deleted instead of stored.

    Each stored page gets its :func:`page_hash`. Each page must be exactly PAGE_SIZE bytes (bytes,
    bytearray, memoryview or any buffer; buffers are passed to the driver without a copy where it
    allows). Later entries for the same page win.
    Returns the number of bytes stored (non-zero pages × PAGE_SIZE).
    """
    table = _table(kind)
    _ensure_transaction(conn)
    data_mark = "%b" if _is_pg(conn) else "?"
    upsert = _sql(
        conn,
        f"INSERT INTO {table} (canister_id, page_no, data, hash) VALUES (?, ?, {data_mark}, ?) "
        "ON CONFLICT (canister_id, page_no) DO UPDATE SET data = excluded.data, hash = excluded.hash",
    )
    delete = _sql(conn, f"DELETE FROM {table} WHERE canister_id = ? AND page_no = ?")

    stores: list[tuple[int, Buffer]] = []
    store_keys: set[int] = set()
    deletes: list[tuple[int, int]] = []
    delete_keys: set[int] = set()
    written = 0
    # A full batch whose hashes are being computed on the helper thread: it is stored (in order,
    # before any later statement) by drain().
    hashing: list[tuple[list[tuple[int, Buffer]], Future[list[str]]]] = []

    def store(batch: list[tuple[int, Buffer]], hashes: list[str]) -> None:
        conn.exec_driver_sql(upsert, [(canister_id, no, buf, h) for (no, buf), h in zip(batch, hashes, strict=True)])

    def drain() -> None:
        if hashing:
            batch, future = hashing.pop()
            store(batch, future.result())

    def flush_stores(last: bool = False) -> None:
        if not stores:
            drain()
            return
        batch = stores.copy()
        stores.clear()
        store_keys.clear()
        if last and not hashing:
            # a write of one batch (every ordinary message) hashes inline: no thread hand-off
            store(batch, _page_hashes([buf for _, buf in batch]))
            return
        future = _hash_in_background([buf for _, buf in batch])
        drain()  # the driver stores the previous batch while this one is hashed
        if last:
            store(batch, future.result())
        else:
            hashing.append((batch, future))

    def flush_deletes() -> None:
        if deletes:
            drain()
            conn.exec_driver_sql(delete, deletes)
            deletes.clear()
            delete_keys.clear()

    for page_no, data in pages:
        if page_no < 0:
            raise ValueError(f"page number {page_no} is negative")
        buf = _as_page_buffer(page_no, data)
        if is_zero_page(buf):
            if page_no in store_keys:  # keep the order of two writes to the same page
                flush_stores()
            deletes.append((canister_id, page_no))
            delete_keys.add(page_no)
            if len(deletes) >= BATCH_PAGES:
                flush_deletes()
        else:
            if page_no in delete_keys:
                flush_deletes()
            stores.append((page_no, buf))
            store_keys.add(page_no)
            written += PAGE_SIZE
            if len(stores) >= BATCH_PAGES:
                flush_stores()
    flush_stores(last=True)
    flush_deletes()
    return written


def delete_pages(conn: sa.Connection, kind: str, canister_id: int, from_page: int = 0) -> None:
    """Delete the stored pages numbered ``from_page`` and up (all pages by default)."""
    table = _table(kind)
    conn.exec_driver_sql(
        _sql(conn, f"DELETE FROM {table} WHERE canister_id = ? AND page_no >= ?"), (canister_id, from_page)
    )


def stored_page_count(conn: sa.Connection, kind: str, canister_id: int) -> int:
    """How many (non-zero) pages are stored for the canister."""
    table = _table(kind)
    row = conn.exec_driver_sql(
        _sql(conn, f"SELECT count(*) FROM {table} WHERE canister_id = ?"), (canister_id,)
    ).one()
    return int(row[0])


def copy_pages(conn: sa.Connection, kind: str, src_canister_id: int, dst_canister_id: int) -> None:
    """Make the destination's pages of ``kind`` an exact copy of the source's, inside the server.

    The destination's existing pages of that kind are deleted first.
    """
    table = _table(kind)
    if src_canister_id == dst_canister_id:
        return
    conn.exec_driver_sql(_sql(conn, f"DELETE FROM {table} WHERE canister_id = ?"), (dst_canister_id,))
    conn.exec_driver_sql(
        _sql(
            conn,
            f"INSERT INTO {table} (canister_id, page_no, data, hash) "
            f"SELECT ?, page_no, data, hash FROM {table} WHERE canister_id = ?",
        ),
        (dst_canister_id, src_canister_id),
    )
