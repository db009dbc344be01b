"""Draining the message queue: queued messages oldest first, then due timers.

A message is a request to a canister, a response to a caller, or a call to the management
canister (``persist.execution.management.dispatch.execute``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from persist.execution.clock import now_ns
from persist.execution.management import dispatch
from persist.execution.messages import execute_request, execute_response, execute_timer
from persist.execution.routing import MANAGEMENT_MESSAGE
from persist.session import Store
from persist.store import db, schema
from persist.store.canisters import StaleStateError

__all__ = ["has_pending_work", "run_pending"]


def run_pending(store: Store, *, until: Callable[[], bool] | None = None, max_messages: int | None = None,
                on_message: Callable[[int], None] | None = None) -> int:
    """Execute queued messages (oldest first) and due timers, until the queue is empty.

    Returns how many were executed. ``until`` stops early once it returns True (checked between
    messages); ``max_messages`` bounds the work of one call, and what is left stays queued. Each
    due timer fires at most once per call, so a timer that re-arms itself cannot keep it busy.
    ``on_message`` is called after each message or timer, once its transaction has ended, with the
    id of the canister it ran on (progress displays read what the message committed).
    """
    limit = store.max_messages_per_command if max_messages is None else max_messages
    done = 0
    fired: set[int] = set()
    while done < limit:
        if until is not None and until():
            break
        msg, due = _next_work(store, fired)
        if msg is not None:
            _run_guarded(store, _STEPS[msg.kind], msg)
            done += 1
            if on_message is not None:
                on_message(int(msg.canister_id))
            continue
        if not due:
            break
        for row in due:
            fired.add(row.id)
            _run_guarded(store, execute_timer, row)
            done += 1
            if on_message is not None:
                on_message(int(row.id))
    return done

_STEPS: dict[str, Callable[[Store, sa.Row[Any]], None]] = {
    "request": execute_request,
    "response": execute_response,
    MANAGEMENT_MESSAGE: dispatch.execute,
}


def _due_timers_query() -> sa.Select[Any]:
    c = schema.canisters.c
    return sa.select(schema.canisters).where(
        c.timer_ns > 0, c.timer_ns <= now_ns(), c.status == "running", c.module_hash.is_not(None)).order_by(c.id)

def _next_work(store: Store, fired: set[int]) -> tuple[sa.Row[Any] | None, list[sa.Row[Any]]]:
    """The oldest queued message, or else the canisters whose timer is due (one read)."""
    with db.read_transaction(store.engine) as conn:
        msg = conn.execute(sa.select(schema.messages).order_by(schema.messages.c.id).limit(1)).first()
        if msg is not None:
            return msg, []
        due = conn.execute(_due_timers_query()).all()
    return None, [r for r in due if r.id not in fired]

def has_pending_work(conn: sa.Connection) -> bool:
    """Whether a queued message or a due timer is waiting (one cheap read, inside a caller's transaction)."""
    if conn.execute(sa.select(schema.messages.c.id).limit(1)).first() is not None:
        return True
    return conn.execute(_due_timers_query().limit(1)).first() is not None

def _run_guarded(store: Store, step: Callable[[Store, sa.Row[Any]], None], row: sa.Row[Any]) -> None:
    """Run one message; if another process got there first, drop caches and go on."""
    try:
        step(store, row)
    except StaleStateError:
        store.live.clear()
