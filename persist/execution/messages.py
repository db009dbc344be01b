"""Executing one message of each kind and committing its outcome (or undoing it).

An ingress update runs at once (:func:`execute_ingress`) and is recorded as pending only if it
awaits calls; queued requests (:func:`execute_request`), responses (:func:`execute_response`, with
``call_on_cleanup`` when the callback traps) and timers (:func:`execute_timer`) come from the
scheduler; queries (:func:`run_query`) and ``canister_inspect_message`` (:func:`inspect_ingress`)
never commit.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from persist.execution.clock import message_time
from persist.execution.commit import ctx_logs, finish_commit, write_state
from persist.execution.instances import forget_live, live_canister, undo
from persist.execution.routing import (
    Origin,
    Response,
    consume,
    deliver,
    new_ingress,
    open_context,
    send_calls,
    settle_stopping,
)
from persist.host.live import LiveCanister, MessageResult
from persist.host.system_api.context import (
    CLEANUP,
    INSPECT,
    QUERY,
    REJECT,
    REJECT_CANISTER_ERROR,
    REJECT_DESTINATION_INVALID,
    REPLY,
    TIMER,
    UPDATE,
    Callback,
    MessageContext,
)
from persist.principal import Principal
from persist.session import Store
from persist.store import db, events, schema
from persist.store.canisters import canister_row_by_id

__all__ = ["execute_ingress", "execute_request", "execute_response", "execute_timer", "inspect_ingress", "run_query"]


def _request_rejection(row: sa.Row[Any] | None) -> tuple[int, str] | None:
    if row is None:
        return REJECT_DESTINATION_INVALID, "Canister not found"
    p = row.principal
    if row.module_hash is None:
        return REJECT_DESTINATION_INVALID, f"Canister {p} is empty: it has no Wasm module"
    if row.status != "running":
        return REJECT_CANISTER_ERROR, f"Canister {p} is {row.status}"
    return None

def execute_request(store: Store, msg: sa.Row[Any]) -> None:
    """Run a queued call to a canister's update (or query) method, and commit its outcome."""
    payload = json.loads(msg.payload)
    origin: Origin = payload["origin"]
    method: str = payload["method"]
    with db.read_transaction(store.engine) as conn:
        row = canister_row_by_id(conn, msg.canister_id)
    rejection = _request_rejection(row)
    live = None
    if rejection is None:
        assert row is not None
        live = live_canister(store, row)
        if method in live.info.updates:
            kind, export = UPDATE, f"canister_update {method}"
        elif method in live.info.queries:
            kind = QUERY
            export = (f"canister_query {method}" if f"canister_query {method}" in live.info.exports
                      else f"canister_composite_query {method}")
        else:
            rejection = (REJECT_DESTINATION_INVALID,
                         f"Canister {row.principal} has no update method '{method}'")
    if rejection is not None or live is None or row is None:
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
            deliver(conn, origin, ("reject", b"", *(rejection or (REJECT_CANISTER_ERROR, "unavailable"))))
        return

    ctx = MessageContext(kind=kind, caller=Principal.from_text(payload["caller"]).raw, arg=bytes(msg.data or b""),
                         time_ns=message_time(row), can_respond=True, method=method,
                         cycles_available=int(origin.get("cycles", 0)))
    fuel = store.limits.update_instructions if kind == UPDATE else store.limits.query_instructions
    result = live.run(ctx, fuel, export)
    if result.trap is not None or kind == QUERY:
        undo(store, row.id, live)
        response = ctx.response if result.trap is None else None
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
            if result.trap is not None:
                events.append_logs(conn, row.id, ctx_logs(ctx, result.trap))
                response = ("reject", b"", REJECT_CANISTER_ERROR,
                            f"Error from Canister {row.principal}: {result.trap}")
            elif response is None:
                response = ("reject", b"", REJECT_CANISTER_ERROR,
                            f"Canister {row.principal} did not reply to the call")
            deliver(conn, origin, response)
        return
    _commit_update(store, row, live, ctx, origin, message_id=msg.id)

def _commit_update(store: Store, row: sa.Row[Any], live: LiveCanister, ctx: MessageContext, origin: Origin,
                   *, message_id: int | None) -> Response | int | None:
    """Commit an update-like message: state, logs, its response, its calls, its call context.

    ``origin`` ``{"direct": ...}`` is an ingress call executed without queuing it first: if it
    answers at once the response is returned and nothing else is written; if it is still waiting
    for calls, an ingress record is created in the same transaction and its id returned.
    """
    outcome: Response | int | None = None
    if "canister" in origin and ctx.cycles_accepted:
        # What the callee kept is no longer refunded to the caller.
        origin = {**origin, "cycles": max(0, int(origin.get("cycles", 0)) - ctx.cycles_accepted)}
    try:
        with db.transaction(store.engine) as conn:
            if message_id is not None:
                consume(conn, message_id)
            commit = write_state(conn, row, live, time_ns=ctx.time_ns, ctx=ctx)
            events.append_logs(conn, row.id, ctx_logs(ctx, None))
            if "direct" in origin:
                if ctx.response is not None:
                    outcome = ctx.response
                elif ctx.calls:
                    origin = {"ingress": new_ingress(conn, row.id, origin["direct"])}
                    outcome = int(origin["ingress"])
                else:
                    outcome = ("reject", b"", REJECT_CANISTER_ERROR,
                               f"Canister {row.principal} did not reply to the call")
            elif ctx.response is not None:
                deliver(conn, origin, ctx.response)
            if ctx.calls:
                # The call context needs a row only while calls made in it are outstanding.
                replied = ctx.response is not None or "system" in origin
                cid = open_context(conn, row.id, origin, replied=replied, outstanding=len(ctx.calls))
                send_calls(conn, row.id, live.principal, cid, ctx)
            elif ctx.response is None and "system" not in origin and "direct" not in origin:
                deliver(conn, origin, ("reject", b"", REJECT_CANISTER_ERROR,
                                       f"Canister {row.principal} did not reply to the call"))
            settle_stopping(conn, row.id)
    except BaseException:
        undo(store, row.id, live)
        raise
    finish_commit(store, row, live, commit)
    return outcome

def inspect_ingress(store: Store, row: sa.Row[Any], method: str, arg: bytes, caller: Principal) -> str | None:
    """Run ``canister_inspect_message`` (if exported) for an ingress update; changes are discarded.
    Returns why the message is refused, or None if it is accepted."""
    live = live_canister(store, row)
    if "canister_inspect_message" not in live.info.system:
        return None
    ctx = MessageContext(kind=INSPECT, caller=caller.raw, arg=arg, time_ns=message_time(row), method=method,
                         replicated=False)
    result = live.run(ctx, store.limits.query_instructions, "canister_inspect_message")
    undo(store, row.id, live)
    if result.trap is not None:
        return f"Canister {row.principal} rejected the message: {result.trap}"
    if not ctx.accepted_message:
        return f"Canister {row.principal} rejected the message"
    return None

def execute_ingress(store: Store, row: sa.Row[Any], method: str, arg: bytes,
                    caller: Principal) -> tuple[Response | None, int | None, MessageContext, str | None]:
    """Run an ingress update call at once. Returns (response, ingress id, context, trap):
    a response if it answered; otherwise the id of the ingress record its callbacks will answer."""
    live = live_canister(store, row)
    ctx = MessageContext(kind=UPDATE, caller=caller.raw, arg=arg, time_ns=message_time(row), can_respond=True,
                         method=method)
    result = live.run(ctx, store.limits.update_instructions, f"canister_update {method}")
    if result.trap is not None:
        undo(store, row.id, live)
        with db.transaction(store.engine) as conn:
            events.append_logs(conn, row.id, ctx_logs(ctx, result.trap))
        return None, None, ctx, result.trap
    origin = {"direct": {"method": method, "caller": caller.to_text()}}
    outcome = _commit_update(store, row, live, ctx, origin, message_id=None)
    if isinstance(outcome, int):
        return None, outcome, ctx, None
    return outcome, None, ctx, None

def execute_response(store: Store, msg: sa.Row[Any]) -> None:
    """Run the reply or reject callback of a call's response in the calling canister."""
    payload = json.loads(msg.payload)
    cb = Callback.from_json(payload["callback"])
    context_id = int(payload["context"])
    with db.read_transaction(store.engine) as conn:
        row = canister_row_by_id(conn, msg.canister_id)
        cctx = conn.execute(sa.select(schema.call_contexts).where(
            schema.call_contexts.c.id == context_id)).first()
    if row is None or cctx is None or row.module_hash is None:
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
        return
    live = live_canister(store, row)
    origin: Origin = json.loads(cctx.origin)
    is_reply = payload["kind"] == "reply"
    ctx = MessageContext(
        kind=REPLY if is_reply else REJECT,
        caller=b"",
        arg=bytes(msg.data or b"") if is_reply else b"",
        time_ns=message_time(row),
        can_respond=not cctx.replied,
        reject_code=int(payload.get("reject_code") or 0),
        reject_message=payload.get("reject_message") or "",
        refunded_cycles=int(payload.get("refund") or 0),
    )
    entry = (cb.reply_fun, cb.reply_env) if is_reply else (cb.reject_fun, cb.reject_env)
    result = live.run(ctx, store.limits.update_instructions, entry)
    trap = result.trap
    logs = ctx_logs(ctx, trap)
    if trap is not None:
        undo(store, row.id, live)
        if cb.cleanup_fun is not None:
            cctx_clean = MessageContext(kind=CLEANUP, time_ns=ctx.time_ns)
            cleanup = live.run(cctx_clean, store.limits.update_instructions, (cb.cleanup_fun, cb.cleanup_env or 0))
            logs += ctx_logs(cctx_clean, cleanup.trap)
            if cleanup.trap is not None:
                undo(store, row.id, live)
            else:
                ctx.calls = []
                ctx.response = None
                _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, trap, commit_state=True)
                return
        _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, trap, commit_state=False)
        return
    _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, None, commit_state=True)

def _finish_callback(store: Store, row: sa.Row[Any], live: LiveCanister, message_id: int, cctx: sa.Row[Any],
                     origin: Origin, ctx: MessageContext, logs: list[tuple[int, str, str]], trap: str | None,
                     *, commit_state: bool) -> None:
    cc = schema.call_contexts
    try:
        with db.transaction(store.engine) as conn:
            consume(conn, message_id)
            commit = write_state(conn, row, live, time_ns=ctx.time_ns) if commit_state else None
            events.append_logs(conn, row.id, logs)
            replied = bool(cctx.replied)
            outstanding = int(cctx.outstanding) - 1
            if trap is None and ctx.response is not None and not replied:
                deliver(conn, origin, ctx.response)
                replied = True
            if trap is None and ctx.calls:
                outstanding += len(ctx.calls)
                send_calls(conn, row.id, live.principal, cctx.id, ctx)
            if outstanding == 0:
                if not replied and "system" not in origin:
                    text = (f"Error from Canister {row.principal}: {trap}" if trap is not None
                            else f"Canister {row.principal} did not reply to the call")
                    deliver(conn, origin, ("reject", b"", REJECT_CANISTER_ERROR, text))
                conn.execute(cc.delete().where(cc.c.id == cctx.id))
            else:
                conn.execute(cc.update().where(cc.c.id == cctx.id).values(replied=replied, outstanding=outstanding))
            settle_stopping(conn, row.id)
    except BaseException:
        if commit_state:
            undo(store, row.id, live)
        raise
    if commit is not None:
        finish_commit(store, row, live, commit)

def execute_timer(store: Store, row: sa.Row[Any]) -> None:
    """Run ``canister_global_timer``: the timer is deactivated first, as on the IC."""
    live = live_canister(store, row)
    live.timer_ns = 0
    ctx = MessageContext(kind=TIMER, time_ns=message_time(row))
    result_trap: str | None = None
    if "canister_global_timer" in live.info.system:
        result_trap = live.run(ctx, store.limits.update_instructions, "canister_global_timer").trap
    if result_trap is not None:
        undo(store, row.id, live)
        with db.transaction(store.engine) as conn:
            c = schema.canisters.c
            conn.execute(schema.canisters.update().where(c.id == row.id).values(timer_ns=0))
            events.append_logs(conn, row.id, ctx_logs(ctx, result_trap))
        forget_live(store, row.id)  # its timer changed underneath the cached row version
        return
    _commit_update(store, row, live, ctx, {"system": "timer"}, message_id=None)

def run_query(store: Store, row: sa.Row[Any], method: str, arg: bytes, caller: bytes) -> MessageResult:
    """Run a query method; every change it makes is discarded."""
    live = live_canister(store, row)
    export = f"canister_query {method}"
    if export not in live.info.exports:
        export = f"canister_composite_query {method}"
    ctx = MessageContext(kind=QUERY, caller=caller, arg=arg, time_ns=message_time(row), can_respond=True,
                         method=method, replicated=False)
    result = live.run(ctx, store.limits.query_instructions, export)
    undo(store, row.id, live)
    return result
