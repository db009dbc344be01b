"""A canister's log (debug prints and traps) and its history (installs, upgrades, snapshot loads)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from persist.store import schema

__all__ = ["add_history", "append_logs", "last_log_seq"]


def append_logs(conn: sa.Connection, canister_id: int, lines: list[tuple[int, str, str]]) -> None:
    """Append (time_ns, kind, text) log lines with increasing sequence numbers."""
    if not lines:
        return
    last = conn.execute(
        sa.select(sa.func.max(schema.logs.c.seq)).where(schema.logs.c.canister_id == canister_id)).scalar()
    seq = int(last or 0)
    rows = []
    for t, kind, text in lines:
        seq += 1
        rows.append({"canister_id": canister_id, "seq": seq, "time_ns": t, "kind": kind, "message": text})
    conn.execute(schema.logs.insert(), rows)


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
