"""Executing one message of each kind and committing its outcome (or undoing it).

An ingress update runs at once (:func:`execute_ingress`) and is recorded as pending only if it
awaits calls; queued requests (:func:`execute_request`), responses (:func:`execute_response`, with
``call_on_cleanup`` when the callback traps) and timers (:func:`execute_timer`) come from the
scheduler; queries (:func:`run_query`) and ``canister_inspect_message`` (:func:`inspect_ingress`)
never commit. Calls to the management canister are :mod:`persist.execution.management`'s.

What a caller receives when its callee fails is the replica's reject, text for text
(:mod:`persist.execution.rejects`). Cycles move as on the IC: attached cycles leave the caller when
its message commits, accepted ones reach the callee, the rest comes back with the response (and
stays with the caller even if the callback traps).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from persist.execution import rejects
from persist.execution.clock import message_time
from persist.execution.commit import Guard, ctx_logs, finish_commit, known_row_guard, write_state
from persist.execution.contexts import cycles_update, message_context
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
    COMPOSITE_QUERY,
    INSPECT,
    QUERY,
    REJECT,
    REPLICATED_QUERY,
    REPLY,
    TIMER,
    UPDATE,
    Callback,
    MessageContext,
)
from persist.principal import Principal
from persist.session import Store
from persist.store import db, events, schema
from persist.store.canisters import StaleStateError, canister_row_by_id

__all__ = ["Ran", "execute_ingress", "execute_known_ingress", "execute_request", "execute_response", "execute_timer",
           "inspect_ingress", "run_query"]

MANAGEMENT = Principal.management_canister().to_text()


def _request_rejection(row: sa.Row[Any] | None) -> Response | None:
    if row is None:
        return rejects.callee_missing("(deleted)")
    if row.module_hash is None:
        return rejects.no_wasm_module(row.principal)
    if row.status != "running":
        return rejects.stopped(row.principal, row.status)
    return None


def _with_caller(origin: Origin, caller: bytes) -> Origin:
    """The origin a call context keeps: where its response goes, and who its caller is (what
    ``msg_caller`` says in its callbacks)."""
    return {**origin, "caller": Principal(caller).to_text()}


def _credit(conn: sa.Connection, canister_id: int, cycles: int) -> None:
    """Move cycles into (or out of) a canister without committing a message of it."""
    values = cycles_update(cycles)
    if values:
        conn.execute(schema.canisters.update().where(schema.canisters.c.id == canister_id).values(**values))


def execute_request(store: Store, msg: sa.Row[Any]) -> None:
    """Run a queued call to a canister's update (or query) method, and commit its outcome."""
    payload = json.loads(msg.payload)
    origin: Origin = payload["origin"]
    method: str = payload["method"]
    with db.read_transaction(store.engine) as conn:
        row = canister_row_by_id(conn, msg.canister_id)
    rejection = _request_rejection(row)
    live = None
    kind, export = UPDATE, ""
    if rejection is None:
        assert row is not None
        live = live_canister(store, row)
        if method in live.info.updates:
            export = f"canister_update {method}"
        elif f"canister_query {method}" in live.info.exports:
            # A query called by another canister runs in replicated mode.
            kind, export = REPLICATED_QUERY, f"canister_query {method}"
        elif method in live.info.queries:
            rejection = rejects.IcError(rejects.COMPOSITE_QUERY_CALLED_IN_REPLICATED_MODE,
                                        "Composite query cannot be called in replicated mode").reject()
        else:
            rejection = rejects.method_not_found(row.principal, "update", method)
    if rejection is not None or live is None or row is None:
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
            deliver(conn, origin, rejection or rejects.callee_missing("(unavailable)"))
        return

    ctx = message_context(row, kind, caller=Principal.from_text(payload["caller"]).raw, arg=bytes(msg.data or b""),
                          time_ns=message_time(row), can_respond=True, method=method,
                          cycles_available=int(origin.get("cycles", 0)))
    fuel = store.limits.update_instructions if kind == UPDATE else store.limits.query_instructions
    result = live.run(ctx, fuel, export)
    if result.trap is not None or kind == REPLICATED_QUERY:
        undo(store, row.id, live)
        response = ctx.response if result.trap is None else None
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
            if result.trap is not None:
                events.append_logs(conn, row.id, ctx_logs(ctx, result.trap), capacity=store.limits.log_memory_limit)
                response = rejects.trap_reject(row.principal, result.trap)
            else:
                # A replicated query keeps no state, but the cycles it accepted or burned move.
                _credit(conn, row.id, ctx.cycle_delta())
                origin = {**origin, "cycles": max(0, int(origin.get("cycles", 0)) - ctx.cycles_accepted)}
                if response is None:
                    response = rejects.did_not_reply(row.principal)
            deliver(conn, origin, response)
        return
    _commit_update(store, row, live, ctx, origin, message_id=msg.id)


def _commit_update(store: Store, row: sa.Row[Any], live: LiveCanister, ctx: MessageContext, origin: Origin,
                   *, message_id: int | None, guard: Guard | None = None) -> Response | int | None:
    """Commit an update-like message: state, logs, its response, its calls, its call context.

    ``origin`` ``{"direct": ...}`` is an ingress call executed without queuing it first: if it
    answers at once the response is returned and nothing else is written; if it is still waiting
    for calls, an ingress record is created in the same transaction and its id returned.
    ``guard``: the commit's further condition (``known_row_guard``; it implies the canister is running,
    so a stopping canister needs no settling); StaleStateError, with the message undone, when it fails.
    """
    outcome: Response | int | None = None
    if "canister" in origin and ctx.cycles_accepted:
        # What the callee kept is no longer refunded to the caller.
        origin = {**origin, "cycles": max(0, int(origin.get("cycles", 0)) - ctx.cycles_accepted)}
    try:
        with db.transaction(store.engine) as conn:
            if message_id is not None:
                consume(conn, message_id)
            commit = write_state(conn, row, live, time_ns=ctx.time_ns, ctx=ctx,
                                 extra=cycles_update(ctx.cycle_delta()) or None, guard=guard)
            events.append_logs(conn, row.id, ctx_logs(ctx, None), capacity=store.limits.log_memory_limit)
            if "direct" in origin:
                if ctx.response is not None:
                    outcome = ctx.response
                elif ctx.calls:
                    origin = {"ingress": new_ingress(conn, row.id, origin["direct"])}
                    outcome = int(origin["ingress"])
                else:
                    outcome = rejects.did_not_reply(row.principal)
            elif ctx.response is not None:
                deliver(conn, origin, ctx.response)
            if ctx.calls:
                # The call context needs a row only while calls made in it are outstanding.
                replied = ctx.response is not None or "system" in origin
                cid = open_context(conn, row.id, _with_caller(origin, ctx.caller), replied=replied,
                                   outstanding=len(ctx.calls))
                send_calls(conn, row.id, live.principal, cid, ctx, caller_version=int(row.version))
            elif ctx.response is None and "system" not in origin and "direct" not in origin:
                deliver(conn, origin, rejects.did_not_reply(row.principal))
            if guard is None:
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
    ctx = message_context(row, INSPECT, caller=caller.raw, arg=arg, time_ns=message_time(row), method=method,
                          replicated=False)
    result = live.run(ctx, store.limits.query_instructions, "canister_inspect_message")
    undo(store, row.id, live)
    if result.trap is not None:
        return f"Canister {row.principal} rejected the message: {result.trap}"
    if not ctx.accepted_message:
        return f"Canister {row.principal} rejected the message"
    return None


#: What an ingress update that ran gives back: (response, ingress id, context, trap).
Ran = tuple[Response | None, int | None, MessageContext, str | None]


def execute_ingress(store: Store, row: sa.Row[Any], method: str, arg: bytes, caller: Principal) -> Ran:
    """Run an ingress update call at once. Returns (response, ingress id, context, trap):
    a response if it answered; otherwise the id of the ingress record its callbacks will answer."""
    ran = _execute_ingress(store, row, method, arg, caller, known=False)
    assert ran is not None  # only a guarded (known) run gives up
    return ran


def execute_known_ingress(store: Store, row: sa.Row[Any], method: str, arg: bytes, caller: Principal
                          ) -> Ran | None:
    """:func:`execute_ingress` on the canister as this process last committed it (``row``, cached),
    reading nothing first: the commit (or, for a trap, the log write) is guarded by
    :func:`~persist.execution.commit.known_row_guard` (the row unchanged, nothing queued, no
    pipeline claim). Returns what :func:`execute_ingress` returns; None when the guard failed and
    the message was undone: the caller then runs it on the path that reads and checks everything."""
    return _execute_ingress(store, row, method, arg, caller, known=True)


def _execute_ingress(store: Store, row: sa.Row[Any], method: str, arg: bytes, caller: Principal, *,
                     known: bool) -> Ran | None:
    live = live_canister(store, row)
    ctx = message_context(row, UPDATE, caller=caller.raw, arg=arg, time_ns=message_time(row), can_respond=True,
                          method=method)
    result = live.run(ctx, store.limits.update_instructions, f"canister_update {method}")
    guard = known_row_guard(row, store.lock_owner) if known else None
    if result.trap is not None:
        undo(store, row.id, live)
        with db.transaction(store.engine) as conn:
            if guard is not None:
                c = schema.canisters.c
                current = conn.execute(sa.select(c.id).where(c.id == row.id, c.version == row.version, guard[0]),
                                       guard[1]).first()
                if current is None:
                    return None
            events.append_logs(conn, row.id, ctx_logs(ctx, result.trap), capacity=store.limits.log_memory_limit)
        return None, None, ctx, result.trap
    origin = {"direct": {"method": method, "caller": caller.to_text()}}
    try:
        outcome = _commit_update(store, row, live, ctx, origin, message_id=None, guard=guard)
    except StaleStateError:
        if guard is None:
            raise
        return None  # undone by _commit_update
    if isinstance(outcome, int):
        return None, outcome, ctx, None
    return outcome, None, ctx, None


def execute_response(store: Store, msg: sa.Row[Any]) -> None:
    """Run the reply or reject callback of a call's response in the calling canister."""
    payload = json.loads(msg.payload)
    cb = Callback.from_json(payload["callback"])
    context_id = int(payload["context"])
    refund = int(payload.get("refund") or 0)
    with db.read_transaction(store.engine) as conn:
        row = canister_row_by_id(conn, msg.canister_id)
        cctx = conn.execute(sa.select(schema.call_contexts).where(
            schema.call_contexts.c.id == context_id)).first()
    if row is None or cctx is None or row.module_hash is None:
        # The caller is gone or was uninstalled: the refund still reaches it, no callback runs.
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
            if row is not None:
                _credit(conn, row.id, refund)
        return
    live = live_canister(store, row)
    origin: Origin = json.loads(cctx.origin)
    is_reply = payload["kind"] == "reply"
    caller = Principal.from_text(origin.get("caller", MANAGEMENT)).raw
    ctx = message_context(
        row, REPLY if is_reply else REJECT, refund=refund,
        caller=caller,
        arg=bytes(msg.data or b"") if is_reply else b"",
        time_ns=message_time(row),
        can_respond=not cctx.replied,
        reject_code=int(payload.get("reject_code") or 0),
        reject_message=payload.get("reject_message") or "",
    )
    entry = (cb.reply_fun, cb.reply_env) if is_reply else (cb.reject_fun, cb.reject_env)
    result = live.run(ctx, store.limits.update_instructions, entry)
    trap = result.trap
    logs = ctx_logs(ctx, trap)
    if trap is None:
        _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, None, commit=ctx.cycle_delta() + refund)
        return
    undo(store, row.id, live)
    if cb.cleanup_fun is not None:
        clean = message_context(row, CLEANUP, refund=refund, caller=caller, time_ns=ctx.time_ns,
                                reject_code=ctx.reject_code)
        cleanup = live.run(clean, store.limits.update_instructions, (cb.cleanup_fun, cb.cleanup_env or 0))
        logs += ctx_logs(clean, cleanup.trap)
        if cleanup.trap is None:
            ctx.calls, ctx.response = [], None
            _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, trap,
                             commit=clean.cycle_delta() + refund)
            return
        undo(store, row.id, live)
        _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, trap, refund=refund,
                         failure=rejects.cleanup_reject(row.principal, trap, cleanup.trap))
        return
    _finish_callback(store, row, live, msg.id, cctx, origin, ctx, logs, trap, refund=refund)


def _finish_callback(store: Store, row: sa.Row[Any], live: LiveCanister, message_id: int, cctx: sa.Row[Any],
                     origin: Origin, ctx: MessageContext, logs: list[tuple[int, str, str]], trap: str | None,
                     *, commit: int | None = None, refund: int = 0, failure: Response | None = None) -> None:
    """Record a callback's outcome. ``commit`` (the balance change) when the callback (or its
    cleanup) committed state; otherwise only ``refund`` moves. ``failure`` is what the caller gets
    if the context ends unanswered because of the trap (default: the trap's reject)."""
    cc = schema.call_contexts
    written = None
    try:
        with db.transaction(store.engine) as conn:
            consume(conn, message_id)
            if commit is not None:
                written = write_state(conn, row, live, time_ns=ctx.time_ns, extra=cycles_update(commit) or None)
            else:
                _credit(conn, row.id, refund)
            events.append_logs(conn, row.id, logs, capacity=store.limits.log_memory_limit)
            replied = bool(cctx.replied)
            outstanding = int(cctx.outstanding) - 1
            if trap is None and ctx.response is not None and not replied:
                deliver(conn, origin, ctx.response)
                replied = True
            if trap is None and ctx.calls:
                outstanding += len(ctx.calls)
                send_calls(conn, row.id, live.principal, cctx.id, ctx, caller_version=int(row.version))
            if outstanding == 0:
                if not replied and "system" not in origin:
                    if trap is not None:
                        deliver(conn, origin, failure or rejects.trap_reject(row.principal, trap))
                    else:
                        deliver(conn, origin, rejects.did_not_reply(row.principal))
                conn.execute(cc.delete().where(cc.c.id == cctx.id))
            else:
                conn.execute(cc.update().where(cc.c.id == cctx.id).values(replied=replied, outstanding=outstanding))
            settle_stopping(conn, row.id)
    except BaseException:
        if commit is not None:
            undo(store, row.id, live)
        raise
    if written is not None:
        finish_commit(store, row, live, written)


def execute_timer(store: Store, row: sa.Row[Any]) -> None:
    """Run ``canister_global_timer``: the timer is deactivated first, as on the IC."""
    live = live_canister(store, row)
    live.timer_ns = 0
    ctx = message_context(row, TIMER, time_ns=message_time(row))
    result_trap: str | None = None
    if "canister_global_timer" in live.info.system:
        result_trap = live.run(ctx, store.limits.update_instructions, "canister_global_timer").trap
    if result_trap is not None:
        undo(store, row.id, live)
        with db.transaction(store.engine) as conn:
            c = schema.canisters.c
            conn.execute(schema.canisters.update().where(c.id == row.id).values(timer_ns=0))
            events.append_logs(conn, row.id, ctx_logs(ctx, result_trap), capacity=store.limits.log_memory_limit)
        forget_live(store, row.id)  # its timer changed underneath the cached row version
        return
    _commit_update(store, row, live, ctx, {"system": "timer"}, message_id=None)


def run_query(store: Store, row: sa.Row[Any], method: str, arg: bytes, caller: bytes) -> MessageResult:
    """Run a query method (a query call: non-replicated); every change it makes is discarded."""
    live = live_canister(store, row)
    export, kind = f"canister_query {method}", QUERY
    if export not in live.info.exports:
        export, kind = f"canister_composite_query {method}", COMPOSITE_QUERY
    ctx = message_context(row, kind, caller=caller, arg=arg, time_ns=message_time(row), can_respond=True,
                          method=method, replicated=False)
    result = live.run(ctx, store.limits.query_instructions, export)
    undo(store, row.id, live)
    return result
