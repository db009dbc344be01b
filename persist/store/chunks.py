"""Each canister's Wasm chunk store in SQL: chunks keyed by their sha256 (hex), per canister.

``upload_chunk`` stores a chunk once however often it is uploaded; ``install_chunked_code`` reads
chunks by hash; :func:`import_chunks` puts chunks someone else holds (a snapshot's chunk store) in
by their hashes, keeping the ones already there; snapshot import and export of IC snapshot
directories use :func:`put_chunks` and :func:`all_chunks`. All chunk-store SQL is here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

import sqlalchemy as sa

from persist.store import schema
from persist.store.canisters import insert_ignore

__all__ = [
    "all_chunks",
    "chunk_count",
    "chunk_hashes",
    "clear_chunks",
    "get_chunks",
    "import_chunks",
    "put_chunk",
    "put_chunks",
]


def put_chunk(conn: sa.Connection, canister_id: int, data: bytes) -> bytes:
    """Store ``data`` in the canister's chunk store (a no-op if it is there already); its sha256."""
    digest = hashlib.sha256(data).digest()
    import_chunks(conn, canister_id, [(digest.hex(), data)])
    return digest


def put_chunks(conn: sa.Connection, canister_id: int, items: Iterable[bytes]) -> list[bytes]:
    """Store several chunks (one a canister holds already is kept once); their sha256, in order."""
    pairs = [(hashlib.sha256(data).digest(), data) for data in items]
    import_chunks(conn, canister_id, [(d.hex(), data) for d, data in pairs])
    return [d for d, _ in pairs]


def import_chunks(conn: sa.Connection, canister_id: int, chunks: Iterable[tuple[str, bytes]]) -> None:
    """Put ``(sha256 hex, data)`` chunks into the canister's store; existing hashes are kept."""
    rows = [{"canister_id": canister_id, "hash": h, "data": d, "created_at_ns": time.time_ns()} for h, d in chunks]
    if rows:
        conn.execute(insert_ignore(conn, schema.wasm_chunks, ["canister_id", "hash"]), rows)


def chunk_hashes(conn: sa.Connection, canister_id: int) -> list[bytes]:
    """The sha256 of every chunk in the canister's store, in hash order (as the replica lists them)."""
    w = schema.wasm_chunks
    return [bytes.fromhex(h) for h in conn.execute(sa.select(w.c.hash).where(w.c.canister_id == canister_id)
                                                   .order_by(w.c.hash)).scalars()]


def chunk_count(conn: sa.Connection, canister_id: int) -> int:
    """How many chunks the canister's store holds."""
    w = schema.wasm_chunks
    return int(conn.execute(sa.select(sa.func.count()).select_from(w).where(w.c.canister_id == canister_id))
               .scalar() or 0)


def get_chunks(conn: sa.Connection, canister_id: int, hashes: list[bytes]) -> dict[bytes, bytes]:
    """The chunks of these hashes the canister's store holds."""
    w = schema.wasm_chunks
    wanted = sorted({h.hex() for h in hashes})
    out: dict[bytes, bytes] = {}
    for i in range(0, len(wanted), 500):
        for r in conn.execute(sa.select(w.c.hash, w.c.data).where(
                w.c.canister_id == canister_id, w.c.hash.in_(wanted[i:i + 500]))):
            out[bytes.fromhex(r.hash)] = bytes(r.data)
    return out


def all_chunks(conn: sa.Connection, canister_id: int) -> list[tuple[bytes, bytes]]:
    """``(sha256, data)`` of every chunk of the canister, in hash order (at most 1 MiB each)."""
    w = schema.wasm_chunks
    rows = conn.execute(sa.select(w.c.hash, w.c.data).where(w.c.canister_id == canister_id).order_by(w.c.hash))
    return [(bytes.fromhex(h), bytes(d)) for h, d in rows]


def clear_chunks(conn: sa.Connection, canister_id: int) -> None:
    """Empty the canister's chunk store."""
    conn.execute(schema.wasm_chunks.delete().where(schema.wasm_chunks.c.canister_id == canister_id))
