"""A canister's Wasm chunk store, in SQL: the chunks kept for ``install_chunked_code``, by sha256.

All chunk-store SQL is here, so that the chunk store has one owner: snapshot import writes the
chunks a snapshot directory carries (``put_chunks``), export reads them back (``chunks``). Hashes
are sha256 digests (raw bytes in, hex in the table), listed in hash order as the IC lists them
(``stored_chunks``). Every function works in the caller's transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import sqlalchemy as sa

from persist.store import schema

__all__ = ["chunk_hashes", "chunks", "clear_chunks", "put_chunks"]


def put_chunks(conn: sa.Connection, canister_id: int, items: Iterable[bytes]) -> list[bytes]:
    """Add chunks to the canister's store (a chunk it holds already is kept once); returns their hashes."""
    t = schema.wasm_chunks
    present = set(chunk_hashes(conn, canister_id))
    hashes: list[bytes] = []
    for data in items:
        digest = hashlib.sha256(data).digest()
        hashes.append(digest)
        if digest not in present:
            conn.execute(t.insert().values(canister_id=canister_id, hash=digest.hex(), data=data))
            present.add(digest)
    return hashes


def chunk_hashes(conn: sa.Connection, canister_id: int) -> list[bytes]:
    """The hashes of the canister's chunks, in hash order."""
    t = schema.wasm_chunks
    return [bytes.fromhex(h) for h in conn.execute(
        sa.select(t.c.hash).where(t.c.canister_id == canister_id).order_by(t.c.hash)).scalars()]


def chunks(conn: sa.Connection, canister_id: int) -> list[tuple[bytes, bytes]]:
    """``(hash, data)`` of every chunk of the canister, in hash order (at most 1 MiB each)."""
    t = schema.wasm_chunks
    rows = conn.execute(sa.select(t.c.hash, t.c.data).where(t.c.canister_id == canister_id).order_by(t.c.hash))
    return [(bytes.fromhex(h), bytes(d)) for h, d in rows]


def clear_chunks(conn: sa.Connection, canister_id: int) -> None:
    """Empty the canister's chunk store."""
    t = schema.wasm_chunks
    conn.execute(t.delete().where(t.c.canister_id == canister_id))
