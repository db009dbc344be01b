"""The message queue in SQL: delivering responses, sending calls, call contexts and ingress records.

Everything here works in the caller's transaction, so a message's consequences are queued in the
same commit as its state. A call to the management canister (``aaaaa-aa``) is queued as a
``management`` message under the calling canister (``persist.execution.management`` serves it);
``stop_canister`` calls wait in ``stop_waiters`` until their canister has stopped.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from persist.execution.clock import now_ns
from persist.execution.rejects import callee_missing
from persist.host.system_api.context import MessageContext
from persist.principal import Principal
from persist.store import schema
from persist.store.canisters import DELETED, StaleStateError

__all__ = ["MANAGEMENT_MESSAGE", "Origin", "Response", "consume", "deliver", "new_ingress", "open_context",
           "send_calls", "settle_stopping", "wait_for_stop"]

#: ``messages.kind`` of a call to the management canister (queued under the calling canister).
MANAGEMENT_MESSAGE = "management"

Origin = dict[str, Any]

Response = tuple[str, bytes, int, str]


def deliver(conn: sa.Connection, origin: Origin, response: Response) -> None:
    """Send a call context's response where it came from: an ingress record or a caller's callback.

    Cycles are not metered: what the caller attached comes back to it in full as a refund."""
    refund = int(origin.get("cycles", 0))
    kind, data, code, message = response
    if "ingress" in origin:
        t = schema.ingress
        conn.execute(t.update().where(t.c.id == origin["ingress"]).values(
            status="replied" if kind == "reply" else "rejected",
            reply=data if kind == "reply" else None,
            reject_code=None if kind == "reply" else code,
            reject_message=None if kind == "reply" else message))
    elif "canister" in origin:
        payload = {"context": origin["context"], "callback": origin["callback"], "kind": kind,
                   "reject_code": code, "reject_message": message, "refund": refund}
        conn.execute(schema.messages.insert().values(
            canister_id=origin["canister"], kind="response", payload=json.dumps(payload),
            data=data if kind == "reply" else None, created_at_ns=now_ns()))
    # origin {"system": ...} (timers): nobody is waiting for a response.

def send_calls(conn: sa.Connection, caller_id: int, caller_principal: bytes, context_id: int,
               ctx: MessageContext, *, caller_version: int | None = None) -> None:
    """Queue the calls a committed message made, each answered into ``context_id``.
    ``caller_version`` is the caller's canister version during that message (what a management
    call's ``sender_canister_version`` must equal)."""
    for call in ctx.calls:
        origin = {"canister": caller_id, "context": context_id, "callback": call.callback.to_json(),
                  "cycles": call.cycles}
        payload: dict[str, Any] = {"method": call.method, "caller": Principal(caller_principal).to_text(),
                                   "origin": origin}
        if call.callee == b"":
            payload["sender_version"] = caller_version
            conn.execute(schema.messages.insert().values(
                canister_id=caller_id, kind=MANAGEMENT_MESSAGE, payload=json.dumps(payload), data=bytes(call.arg),
                created_at_ns=now_ns()))
            continue
        target = conn.execute(sa.select(schema.canisters.c.id).where(
            schema.canisters.c.principal == Principal(call.callee).to_text(),
            schema.canisters.c.status != DELETED)).scalar()  # a tombstone is no canister
        if target is None:
            deliver(conn, origin, callee_missing(Principal(call.callee).to_text()))
            continue
        conn.execute(schema.messages.insert().values(
            canister_id=target, kind="request", payload=json.dumps(payload), data=bytes(call.arg),
            created_at_ns=now_ns()))

def open_context(conn: sa.Connection, canister_id: int, origin: Origin, *, replied: bool, outstanding: int) -> int:
    """Open a call context that waits for ``outstanding`` responses; returns its id."""
    res = conn.execute(schema.call_contexts.insert().values(
        canister_id=canister_id, origin=json.dumps(origin), replied=replied, outstanding=outstanding,
        deleted=False))
    pk = res.inserted_primary_key
    assert pk is not None
    return int(pk[0])

def consume(conn: sa.Connection, message_id: int) -> None:
    """Take a message off the queue; if another process took it first, abort this transaction."""
    res = conn.execute(schema.messages.delete().where(schema.messages.c.id == message_id))
    if res.rowcount != 1:
        raise StaleStateError("message was already executed by another process")

def settle_stopping(conn: sa.Connection, canister_id: int) -> None:
    """A stopping canister becomes stopped once it has no open call contexts."""
    c = schema.canisters.c
    status = conn.execute(sa.select(c.status).where(c.id == canister_id)).scalar()
    if status != "stopping":
        return
    open_ = conn.execute(sa.select(sa.func.count()).select_from(schema.call_contexts).where(
        schema.call_contexts.c.canister_id == canister_id)).scalar()
    if not open_:
        conn.execute(schema.canisters.update().where(c.id == canister_id).values(status="stopped"))
        # Every stop_canister call waiting for this is answered now.
        w = schema.stop_waiters
        for waiter in conn.execute(sa.select(w).where(w.c.canister_id == canister_id).order_by(w.c.id)).all():
            deliver(conn, json.loads(waiter.origin), ("reply", b"DIDL\x00\x00", 0, ""))
        conn.execute(w.delete().where(w.c.canister_id == canister_id))

def wait_for_stop(conn: sa.Connection, canister_id: int, origin: Origin) -> None:
    """Answer ``origin`` (a stop_canister call) once the canister has stopped."""
    conn.execute(schema.stop_waiters.insert().values(canister_id=canister_id, origin=json.dumps(origin),
                                                      created_at_ns=now_ns()))

def new_ingress(conn: sa.Connection, canister_id: int, call: dict[str, Any]) -> int:
    """Record an ingress call that is waiting for its reply (its call context is open)."""
    res = conn.execute(schema.ingress.insert().values(
        canister_id=canister_id, method=call["method"], caller=call["caller"], arg=b"", status="pending",
        created_at_ns=now_ns()))
    pk = res.inserted_primary_key
    assert pk is not None
    return int(pk[0])
