"""Running the message queue fairly: canisters take turns, and every command has a budget.

A message is a request to a canister, a response to a caller, or a call to the management canister
(``persist.execution.management.dispatch.execute``). Each canister's messages run oldest first, and
canisters take turns: in a round every canister with queued work runs one message, the canister
whose oldest message is oldest going first (so messages that do not compete keep the order in which
they were sent), and a canister's due timer fires once per round. A canister that floods its own
queue gets one turn per round like any other (round-robin, as the replica's scheduler gives every
canister its share of a round).

A command runs the work it is waiting for with a *focus*: the canister it called, and every
canister that receives a message one of the focus canisters queued during the command (found from
the ids of the messages queued meanwhile). Work outside the focus, left by other commands or other
canisters, gets at most ``background`` messages of the command, and only while the focus has
nothing to run; a command without a focus (``graphcopy tick``) serves every canister in turn.
Everything is bounded by ``max_messages``; what is left stays queued, durable, for later commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from persist.execution.clock import now_ns
from persist.execution.messages import execute_request, execute_response, execute_timer
from persist.execution.routing import MANAGEMENT_MESSAGE
from persist.interrupts import checkpoint
from persist.session import Store
from persist.store import db, schema
from persist.store.canisters import StaleStateError

__all__ = ["QueueEntry", "has_pending_work", "newest_message_id", "queue_summary", "run_pending", "settle_canister"]


def run_pending(store: Store, *, focus: Iterable[int] | None = None, since: int | None = None,
                until: Callable[[], bool] | None = None, max_messages: int | None = None,
                background: int | None = None, on_message: Callable[[int], None] | None = None) -> int:
    """Execute queued messages and due timers, canisters taking turns; returns how many ran.

    ``focus`` (canister ids) is the work the command waits for; it grows by every canister that
    receives a message a focus canister queues, and by the receivers of messages queued after
    message id ``since`` (the ingress message the command ran itself). Without ``focus`` every
    canister is served. At most ``max_messages`` run (default ``store.max_messages_per_command``),
    of them at most ``background`` outside the focus (default ``store.max_background_messages``).
    ``until`` stops early once it returns True (checked between messages). ``on_message`` is
    called after each message or timer, once its transaction has ended, with the id of the
    canister it ran on (progress displays read what the message committed).
    """
    limit = store.max_messages_per_command if max_messages is None else max_messages
    turn = _Turn(ours=None if focus is None else set(focus),
                 spare=store.max_background_messages if background is None else background)
    if turn.ours is not None:
        with db.read_transaction(store.engine) as conn:
            turn.newest = _newest_id(conn)
            if since is not None:
                turn.adopt(conn, since)
    done = 0
    while done < limit:
        checkpoint()  # between two messages: where a deferred Ctrl-C stops the work (persist.interrupts)
        if until is not None and until():
            break
        work = _next_work(store, turn)
        if work is None:
            break
        step, row, canister_id, mine = work
        _run_guarded(store, step, row)
        done += 1
        if turn.ours is not None:
            with db.read_transaction(store.engine) as conn:
                if mine:
                    turn.adopt(conn, turn.newest)
                else:  # what background work queued is not the focus's
                    turn.newest = max(turn.newest, _newest_id(conn))
        if not mine:
            turn.spare -= 1
        if on_message is not None:
            on_message(canister_id)
    return done


def settle_canister(store: Store, name: str) -> int:
    """Before an operation on canister ``name`` (an upgrade, a snapshot): run what is queued for it,
    within the background budget. Returns how many messages ran (0 for an unknown canister)."""
    c = schema.canisters.c
    with db.read_transaction(store.engine) as conn:
        cid = conn.execute(sa.select(c.id).where(sa.or_(c.name == name, c.principal == name))).scalar()
    if cid is None:
        return 0
    return run_pending(store, focus=[int(cid)], max_messages=store.max_background_messages)


def newest_message_id(store: Store) -> int:
    """The id of the newest queued message (0 if none): what ``run_pending(since=...)`` takes."""
    with db.read_transaction(store.engine) as conn:
        return _newest_id(conn)


@dataclass
class _Turn:
    """Where the round-robin stands: the focus, the canisters served in this round, the timers
    fired, the background budget left and the newest message id seen."""

    ours: set[int] | None
    spare: int
    served: set[int] = field(default_factory=set)
    fired: set[int] = field(default_factory=set)
    newest: int = 0

    def adopt(self, conn: sa.Connection, after: int) -> None:
        """Add to the focus the receivers of the messages queued after message id ``after``."""
        assert self.ours is not None
        m = schema.messages.c
        rows = conn.execute(sa.select(m.id, m.canister_id).where(m.id > after)).all()
        self.ours.update(int(r.canister_id) for r in rows)
        self.newest = max([self.newest, after, *(int(r.id) for r in rows)])


def _execute_management(store: Store, row: sa.Row[Any]) -> None:
    # imported here: the management canister's modules load only in a process that has such a message
    from persist.execution.management import dispatch

    dispatch.execute(store, row)


_STEPS: dict[str, Callable[[Store, sa.Row[Any]], None]] = {
    "request": execute_request,
    "response": execute_response,
    MANAGEMENT_MESSAGE: _execute_management,
}


def _newest_id(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(sa.func.max(schema.messages.c.id))).scalar() or 0)


def _due_timers_query() -> sa.Select[Any]:
    c = schema.canisters.c
    return sa.select(schema.canisters).where(
        c.timer_ns > 0, c.timer_ns <= now_ns(), c.status == "running", c.module_hash.is_not(None)).order_by(c.id)


Work = tuple[Callable[[Store, sa.Row[Any]], None], sa.Row[Any], int, bool]


def _next_work(store: Store, turn: _Turn) -> Work | None:
    """The next message (or due timer) to run, and whether it is the focus's (one read)."""
    with db.read_transaction(store.engine) as conn:
        work = _take(conn, turn, mine=True)
        if work is None and turn.spare > 0 and turn.ours is not None:
            work = _take(conn, turn, mine=False)
    return work


def _take(conn: sa.Connection, turn: _Turn, *, mine: bool) -> Work | None:
    """The oldest message of the canister, not served yet in this round, whose oldest message is
    oldest; at the end of a round, a due timer not fired yet in this command, else a new round."""
    m = schema.messages.c
    q = sa.select(m.canister_id, sa.func.min(m.id)).group_by(m.canister_id)
    if turn.ours is not None:
        q = q.where(m.canister_id.in_(turn.ours) if mine else m.canister_id.not_in(turn.ours))
    heads = {int(cid): int(head) for cid, head in conn.execute(q)}
    waiting = [head for cid, head in heads.items() if cid not in turn.served]
    if not waiting:
        timer = _due_timer(conn, turn, mine=mine)
        if timer is not None:
            turn.fired.add(int(timer.id))
            return execute_timer, timer, int(timer.id), mine
        turn.served.difference_update(heads)  # a new round for these canisters
        waiting = list(heads.values())
    if not waiting:
        return None
    msg = conn.execute(sa.select(schema.messages).where(m.id == min(waiting))).one()
    turn.served.add(int(msg.canister_id))
    return _STEPS[msg.kind], msg, int(msg.canister_id), mine


def _due_timer(conn: sa.Connection, turn: _Turn, *, mine: bool) -> sa.Row[Any] | None:
    for row in conn.execute(_due_timers_query()):
        if int(row.id) in turn.fired:
            continue
        if turn.ours is None or (int(row.id) in turn.ours) == mine:
            return row
    return None


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


@dataclass
class QueueEntry:
    """What waits for one canister: queued messages (by kind) and whether its timer is due."""

    name: str
    principal: str
    messages: int
    requests: int
    responses: int
    management: int
    timer_due: bool


def queue_summary(conn: sa.Connection) -> list[QueueEntry]:
    """Every canister with queued work, in canister order."""
    m, c = schema.messages.c, schema.canisters.c
    counts: dict[int, dict[str, int]] = {}
    for row in conn.execute(sa.select(m.canister_id, m.kind, sa.func.count()).group_by(m.canister_id, m.kind)):
        counts.setdefault(int(row[0]), {})[str(row[1])] = int(row[2])
    due = {int(r.id) for r in conn.execute(_due_timers_query())}
    ids = sorted(set(counts) | due)
    if not ids:
        return []
    names = {int(r.id): (r.name, r.principal) for r in conn.execute(sa.select(c.id, c.name, c.principal)
                                                                     .where(c.id.in_(ids)))}
    out = []
    for cid in ids:
        kinds = counts.get(cid, {})
        name, principal = names.get(cid, ("(deleted)", ""))
        out.append(QueueEntry(name=name, principal=principal, messages=sum(kinds.values()),
                              requests=kinds.get("request", 0), responses=kinds.get("response", 0),
                              management=kinds.get(MANAGEMENT_MESSAGE, 0), timer_due=cid in due))
    return out
