"""Canister claims of migration pipelines, as the mutating entry points see them.

``migrate.pipeline`` workers claim a canister by setting its ``pipeline_locks`` row to ``running``
with their owner token (``host:pid``) and a heartbeat. While such a claim is live, every command
that would change the canister (an update call, install, upgrade, snapshot load / rollback) is
refused at once with :class:`CanisterLockedError` ("locked by host:pid (pipeline X)") instead of
waiting; the worker's own store (``Store.lock_owner``) is let through. A claim is dead when its
heartbeat is older than :data:`STALE_AFTER_S`, or when its owner is a process of this host that no
longer exists (a killed worker); a dead claim blocks nobody and is taken over by the next run.

The check is one indexed query (``ix_pipeline_locks_canister``).
"""

from __future__ import annotations

import os
import socket
import time

import sqlalchemy as sa

from persist.errors import ConflictError
from persist.store import schema

__all__ = ["STALE_AFTER_S", "CanisterLockedError", "check_unlocked", "owner_token", "owner_alive", "claim_is_live"]

#: A running claim whose heartbeat is older than this is considered abandoned.
STALE_AFTER_S = float(os.environ.get("GRAPHCOPY_PIPELINE_STALE_S", "30"))
RUNNING = "running"


class CanisterLockedError(ConflictError):
    """A migration pipeline worker has claimed the canister."""

    exit_code = 4


def owner_token() -> str:
    """This process as a lock owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """False only when ``owner`` is a process of this host that no longer exists."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine: only its heartbeat tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is dead too.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def claim_is_live(owner: str | None, heartbeat_ns: int, now_ns: int | None = None) -> bool:
    """Whether a running claim still holds: a fresh heartbeat and an owner that is not known dead."""
    now = time.time_ns() if now_ns is None else now_ns
    return heartbeat_ns >= now - int(STALE_AFTER_S * 1e9) and owner_alive(owner)


def check_unlocked(conn: sa.Connection, name: str, lock_owner: str | None, *, principal: str | None = None) -> None:
    """Raise CanisterLockedError if a live pipeline claim other than ``lock_owner``'s holds ``name``.

    ``name`` is the canister's name; ``principal`` (its principal text), if given, is matched too.
    """
    pl = schema.pipeline_locks
    names = [name] if principal is None else [name, principal]
    rows = conn.execute(
        sa.select(pl.c.owner, pl.c.pipeline, pl.c.heartbeat_ns)
        .where(pl.c.canister.in_(names), pl.c.state == RUNNING)).all()
    for row in rows:
        if row.owner == lock_owner and lock_owner is not None:
            continue
        if claim_is_live(row.owner, int(row.heartbeat_ns)):
            raise CanisterLockedError(
                f"canister {name!r} is locked by {row.owner} (pipeline {row.pipeline}); "
                "retry when the pipeline has finished with it")
