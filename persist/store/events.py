"""A canister's log (debug prints and traps) and its history (installs, upgrades, snapshot loads)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from persist.store import schema

__all__ = ["DEFAULT_LOG_CAPACITY", "RECORD_OVERHEAD", "add_history", "append_logs", "last_log_seq"]

#: The replica keeps a canister's newest log records that fit in its log memory:
#: DEFAULT_AGGREGATE_LOG_MEMORY_LIMIT, 4 KiB (dfinity/ic rs/types/types/src/canister_log.rs).
DEFAULT_LOG_CAPACITY = 4 * 1024
#: What a record costs on top of its text (``size_of::<CanisterLogRecord>()``: 40 bytes).
RECORD_OVERHEAD = 40


def _size(text: str) -> int:
    return RECORD_OVERHEAD + len(text.encode())


def _newest_that_fit(lines: list[tuple[int, str, str]], capacity: int) -> list[tuple[int, str, str]]:
    """The newest lines that fit in ``capacity``; if not even the newest does, its text is cut."""
    kept: list[tuple[int, str, str]] = []
    used = 0
    for t, kind, text in reversed(lines):
        size = _size(text)
        if used + size > capacity:
            if not kept and capacity > RECORD_OVERHEAD:
                cut = text.encode()[:capacity - RECORD_OVERHEAD].decode("utf-8", errors="ignore")
                kept.append((t, kind, cut))
            break
        kept.append((t, kind, text))
        used += size
    kept.reverse()
    return kept


def append_logs(conn: sa.Connection, canister_id: int, lines: list[tuple[int, str, str]], *,
                capacity: int = DEFAULT_LOG_CAPACITY) -> None:
    """Append (time_ns, kind, text) log lines with increasing sequence numbers, keeping the
    canister's log within ``capacity`` bytes as the replica keeps it: the oldest records are
    dropped first, a record larger than the whole log is cut (``Records::push_back``,
    ``make_free_space_within_limit``, ``truncate_content``). Sequence numbers never repeat."""
    kept = _newest_that_fit(lines, capacity)
    if not kept:
        return
    t = schema.logs
    room = capacity - sum(_size(text) for _, _, text in kept)
    used, cutoff, last = 0, None, None
    # One scan, newest first: its first row has the largest sequence number (what max(seq) would read).
    for row in conn.execute(sa.select(t.c.seq, t.c.message).where(t.c.canister_id == canister_id)
                            .order_by(t.c.seq.desc())):
        if last is None:
            last = row.seq
        used += _size(row.message)
        if used > room:
            cutoff = row.seq
            break
    if cutoff is not None:
        conn.execute(t.delete().where(t.c.canister_id == canister_id, t.c.seq <= cutoff))
    seq = int(last or 0)
    rows = []
    for time_ns, kind, text in kept:
        seq += 1
        rows.append({"canister_id": canister_id, "seq": seq, "time_ns": time_ns, "kind": kind, "message": text})
    conn.execute(t.insert(), rows)


def last_log_seq(conn: sa.Connection, canister_id: int) -> int:
    """The sequence number of the canister's newest log line (0 if it has none)."""
    return int(conn.execute(sa.select(sa.func.max(schema.logs.c.seq)).where(
        schema.logs.c.canister_id == canister_id)).scalar() or 0)


def add_history(conn: sa.Connection, canister_id: int, kind: str, module_hash: str | None,
                detail: dict[str, Any] | None = None, *, origin: dict[str, Any] | None = None,
                canister_version: int | None = None) -> None:
    """Append an entry to the canister's history: ``origin`` is who made the change
    (``{"user": text}`` or ``{"canister": text, "version": n}``), ``canister_version`` the
    canister's version after it (both for the management canister's ``canister_info``)."""
    conn.execute(schema.history.insert().values(
        canister_id=canister_id, time_ns=time.time_ns(), kind=kind, module_hash=module_hash,
        detail=json.dumps(detail) if detail else None, origin=json.dumps(origin) if origin else None,
        canister_version=canister_version))
