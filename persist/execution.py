"""Running messages against canisters and committing them, one transaction per message.

The message queue lives in SQL (``messages``, ``call_contexts``, ``ingress``): a request to a
canister, a response to a caller's callback, and the state of every open call context are rows.
Executing a message and consuming its row happen in the same transaction as the canister's page
and metadata changes, so a process killed at any point leaves either the state before the message
(with the message still queued) or the state after it (with its consequences queued). The next
command on the store drains the queue, so nothing waits for a reply no one will deliver.

Rules, as on the IC:
* an update's changes commit; a query's are discarded; a trap or an exhausted instruction limit
  discards the message's changes (its debug prints and the trap are still logged, as the IC's
  canister logs keep them);
* calls made by a message are sent only if it commits; their responses run the caller's reply or
  reject callback from its table, and ``call_on_cleanup``'s function when a callback traps;
* a call context that ends without a reply is rejected with CANISTER_ERROR.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from persist.errors import CanisterStateError
from persist.host.globals import decode_globals, encode_globals
from persist.host.live import LiveCanister, MessageResult
from persist.host.memory import PAGE
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
from persist.session import CachedCanister, Store
from persist.store import db, events, pages, schema
from persist.store.canisters import StaleStateError, canister_row_by_id, controllers_of

Origin = dict[str, Any]
Response = tuple[str, bytes, int, str]


def now_ns() -> int:
    return time.time_ns()


def message_time(row: sa.Row[Any]) -> int:
    """The time a message sees: wall clock, but never earlier than the canister's last message."""
    return max(now_ns(), int(row.time_ns) + 1)


# --------------------------------------------------------------------------- live instances


def live_canister(store: Store, row: sa.Row[Any]) -> LiveCanister:
    """The in-memory instance of a canister at exactly the committed state ``row`` describes."""
    cached = store.live.get(row.id)
    if cached is not None and cached.version == row.version and cached.module_hash == row.module_hash:
        store.live.move_to_end(row.id)
        cached.live.status = row.status
        cached.live.controllers = set(controllers_of(row))
        cached.live.version = int(row.version)
        return cached.live
    store.live.pop(row.id, None)
    if row.module_hash is None:
        raise CanisterStateError(f"canister {row.name!r} is empty: install a module first (`graphcopy install`)")
    with db.read_transaction(store.engine) as conn:
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
        info, module = store.runtime.load_module(wasm)
        heap = list(pages.read_pages(conn, pages.HEAP, row.id))
        stored = [int(p) for p in conn.execute(
            sa.select(schema.stable_pages.c.page_no).where(schema.stable_pages.c.canister_id == row.id))
            .scalars()]
    live = LiveCanister(
        store.runtime, info, module,
        principal=Principal.from_text(row.principal).raw,
        controllers=controllers_of(row),
        status=row.status,
        limits=store.limits,
        heap_pages=int(row.heap_pages),
        heap_data=heap,
        stable_pages=int(row.stable_pages),
        stable_source=stable_source(store, row.id),
        stable_stored=stored,
        globals_=decode_globals(json.loads(row.globals)) if row.globals else None,
        timer_ns=int(row.timer_ns),
        run_start=False,
    )
    live.version = int(row.version)
    live.certified_data = bytes(row.certified_data or b"")
    live.commit([], [])  # the certified data and version just set are the committed baseline
    store.remember(row.id, CachedCanister(live, int(row.version), row.module_hash))
    return live


def stable_source(store: Store, canister_id: int) -> Callable[[list[int]], list[tuple[int, bytes]]]:
    """Reads committed stable pages of one canister, for loading them on first access."""

    def read(wanted: list[int]) -> list[tuple[int, bytes]]:
        with db.read_transaction(store.engine) as conn:
            return list(pages.read_pages(conn, pages.STABLE, canister_id, wanted))

    return read


def forget_live(store: Store, canister_id: int) -> None:
    store.live.pop(canister_id, None)


def undo(store: Store, canister_id: int, live: LiveCanister) -> None:
    """Put a live canister back at its committed state (or drop it if that cannot be done in place)."""
    if not live.rollback():
        forget_live(store, canister_id)


# --------------------------------------------------------------------------- committing


@dataclass
class Commit:
    """What a successful message writes besides the canister's own state."""

    heap: list[int]
    stable: list[int]


# The messages in which Motoko's runtime copies its object graph to or from stable memory, one
# increment each (see migrate/graph_copy.py); their progress is recorded with their commit.
INCREMENT_METHODS = {
    "__motoko_stabilize_before_upgrade": "stabilize",
    "@motoko_async_stabilization": "stabilize",
    "__motoko_destabilize_after_upgrade": "destabilize",
    "@motoko_async_destabilization": "destabilize",
}


def migration_progress(row: sa.Row[Any], live: LiveCanister, ctx: MessageContext) -> str | None:
    """The canister's migration record after this message, if a migration is in progress and the
    message was one of its increments (None: leave the record as it is)."""
    if not row.migration or ctx.method not in INCREMENT_METHODS:
        return None
    record = json.loads(row.migration)
    if record.get("phase") in (None, "done", "failed"):
        return None
    step = INCREMENT_METHODS[ctx.method]
    counts = record.setdefault("increments", {})
    counts[step] = int(counts.get(step, 0)) + (1 if ctx.method.startswith("@") else 0)
    instr = record.setdefault("instructions", {})
    instr[step] = int(instr.get(step, 0)) + ctx.instructions_used
    record["stable_bytes"] = live.stable_pages * PAGE
    record["updated_ns"] = now_ns()
    return json.dumps(record)


def write_state(conn: sa.Connection, row: sa.Row[Any], live: LiveCanister, *, time_ns: int,
                extra: dict[str, Any] | None = None, ctx: MessageContext | None = None) -> Commit:
    """Write a live canister's changes since its last commit, guarded by the row's version.

    With ``ctx``, a migration increment also updates the canister's progress record, in the same
    transaction as the state it produced."""
    heap_changed = live.changed_heap_pages()
    stable_dirty = live.dirty_stable_pages()
    values: dict[str, Any] = {
        "version": row.version + 1,
        "heap_pages": live.heap_pages,
        "stable_pages": live.stable_pages,
        "globals": json.dumps(encode_globals(live.get_globals())),
        "timer_ns": live.timer_ns,
        "certified_data": live.certified_data,
        "time_ns": max(int(row.time_ns), time_ns),
        "updated_at_ns": now_ns(),
    }
    values.update(extra or {})
    progress = migration_progress(row, live, ctx) if ctx is not None else None
    if progress is not None:
        values["migration"] = progress
    c = schema.canisters.c
    res = conn.execute(
        schema.canisters.update().where(c.id == row.id, c.version == row.version).values(**values))
    if res.rowcount != 1:
        raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
    pages.write_pages(conn, pages.HEAP, row.id, live.heap_page_bytes(heap_changed))
    pages.write_pages(conn, pages.STABLE, row.id, live.stable_page_bytes(stable_dirty))
    return Commit(heap_changed, stable_dirty)


def finish_commit(store: Store, row: sa.Row[Any], live: LiveCanister, commit: Commit,
                  module_hash: str | None = None) -> None:
    """After the transaction committed: the live instance's current state is the new baseline
    (``module_hash``: the module it now runs, if the commit installed another one)."""
    live.commit(commit.heap, commit.stable)
    live.version = int(row.version) + 1
    store.remember(row.id, CachedCanister(live, live.version, module_hash or row.module_hash))


def ctx_logs(ctx: MessageContext, trap: str | None) -> list[tuple[int, str, str]]:
    lines = [(t, "print", text) for t, text in ctx.logs]
    if trap is not None:
        lines.append((ctx.time_ns, "trap", trap))
    return lines


# --------------------------------------------------------------------------- responses and calls


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
               ctx: MessageContext) -> None:
    """Queue the calls a committed message made, each answered into ``context_id``."""
    for call in ctx.calls:
        target = conn.execute(sa.select(schema.canisters.c.id).where(
            schema.canisters.c.principal == Principal(call.callee).to_text())).scalar()
        origin = {"canister": caller_id, "context": context_id, "callback": call.callback.to_json(),
                  "cycles": call.cycles}
        if target is None:
            deliver(conn, origin, ("reject", b"", REJECT_DESTINATION_INVALID,
                                   f"Canister {Principal(call.callee).to_text()} not found"))
            continue
        payload = {"method": call.method, "caller": Principal(caller_principal).to_text(), "origin": origin}
        conn.execute(schema.messages.insert().values(
            canister_id=target, kind="request", payload=json.dumps(payload), data=bytes(call.arg),
            created_at_ns=now_ns()))


def open_context(conn: sa.Connection, canister_id: int, origin: Origin, *, replied: bool, outstanding: int) -> int:
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


# --------------------------------------------------------------------------- executing queued messages


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


def new_ingress(conn: sa.Connection, canister_id: int, call: dict[str, Any]) -> int:
    """Record an ingress call that is waiting for its reply (its call context is open)."""
    res = conn.execute(schema.ingress.insert().values(
        canister_id=canister_id, method=call["method"], caller=call["caller"], arg=b"", status="pending",
        created_at_ns=now_ns()))
    pk = res.inserted_primary_key
    assert pk is not None
    return int(pk[0])


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
            _run_guarded(store, execute_request if msg.kind == "request" else execute_response, msg)
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
