"""The public functions that talk to a canister: call (update or query), its interface, a method's kind.

The management canister is called the same way, by its id ``aaaaa-aa``: ``call(store, "aaaaa-aa",
"canister_status", arg)`` with the argument encoded against its real interface
(``interface(store, "aaaaa-aa")``), as the store's user (an ingress message, or a query call for
its query methods).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from persist.candid.wire import EMPTY_ARGS
from persist.errors import (
    CanisterRejectError,
    CanisterStateError,
    CanisterTrapError,
    InvalidArgumentError,
    MethodNotFoundError,
    NotAuthorizedError,
)
from persist.execution import instances, messages, scheduler
from persist.execution.clock import now_ns
from persist.execution.rejects import Response, check_ingress_size
from persist.host.live import LiveCanister
from persist.host.module import ModuleInfo, parse_module
from persist.host.system_api.context import REJECT_CANISTER_ERROR, REJECT_CANISTER_REJECT
from persist.interrupts import checkpoint
from persist.principal import Principal
from persist.session import Store
from persist.store import db, events, locks, schema
from persist.store.canisters import canister_row, controllers_of

if TYPE_CHECKING:
    from persist.candid import ServiceInterface

__all__ = [
    "CALL_KINDS",
    "MANAGEMENT",
    "CallResult",
    "call",
    "interface",
    "is_management",
    "method_kind",
    "module_interface",
]

#: What ``call(kind=...)`` accepts: how the caller means to call the method (dfx's ``--query`` / ``--update``).
CALL_KINDS = ("query", "update")

#: The management canister's id.
MANAGEMENT = Principal.management_canister().to_text()
# A canister's trap as the replica reports it: "IC0503: Error from Canister <id>: <trap>", maybe
# followed by ".\n<help>".
_TRAP_REJECT = re.compile(r"^IC05(02|03|04|22): Error from Canister [a-z0-9-]+: (?P<trap>.*)$", re.S)


@dataclass
class CallResult:
    """The reply of a call, and how it ran."""

    method: str
    kind: str  # "update" | "query"
    reply: bytes
    logs: list[str] = field(default_factory=list)
    instructions: int = 0


def is_management(name: str) -> bool:
    """Whether ``name`` is the management canister (``aaaaa-aa``)."""
    return name == MANAGEMENT


def interface(store: Store, name: str, *, did: str | None = None) -> ServiceInterface | None:
    """The canister's Candid interface: ``did`` (the text of a ``.did`` file, dfx's ``--candid``)
    when given, else its module's custom sections (for ``aaaaa-aa``, the management canister's);
    None if it has none."""
    if did is not None:
        from persist.candid import parse_service

        return parse_service(did)
    if is_management(name):
        from persist.execution.management.interface import management_interface

        return management_interface()
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        if row.module_hash is None:
            return None
        wasm = conn.execute(
            sa.select(schema.modules.c.wasm).where(schema.modules.c.hash == row.module_hash)).scalar_one()
    return module_interface(parse_module(bytes(wasm)))


def module_interface(info: ModuleInfo) -> ServiceInterface | None:
    """A module's Candid interface: ``candid:service``, with the init arguments from
    ``candid:args`` where moc keeps them (actor classes), or None if it declares no interface."""
    from persist.candid import parse_service

    text = info.candid_service
    if text is None:
        return None
    args = info.section_text(("icp:public candid:args", "icp:private candid:args"))
    if args and args.strip() not in ("", "()"):
        head, sep, rest = text.rpartition("service :")
        if sep and not rest.lstrip().startswith("("):
            text = f"{head}service : {args.strip()} ->{rest}"
    return parse_service(text)


def _kind_of(live: LiveCanister, name: str, method: str) -> str:
    if method in live.info.updates:
        return "update"
    if method in live.info.queries:
        return "query"
    known = ", ".join(sorted(m for m in live.info.updates + live.info.queries if not m.startswith(("__", "@"))))
    raise MethodNotFoundError(f"canister {name!r} has no method {method!r} (it has: {known or 'none'})")


def method_kind(store: Store, name: str, method: str) -> str:
    """"update" or "query", as the canister's module exports ``method`` (or as the management
    canister's interface declares it)."""
    if is_management(name):
        # the management canister's modules load only when it is called (not on every call's path)
        from persist.execution.management import dispatch
        from persist.execution.management.interface import management_interface

        if method not in management_interface().methods:
            raise MethodNotFoundError(f"the management canister has no method {method!r} (it has: "
                                      f"{', '.join(sorted(management_interface().methods))})")
        return "query" if dispatch.is_query(method) else "update"
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    return _kind_of(instances.live_canister(store, row), name, method)


def _strip_help(trap: str) -> str:
    """A trap without the replica's help line (a suggestion and a documentation link)."""
    head, sep, tail = trap.rpartition(".\n")
    return head if sep and ("See documentation:" in tail or "forum.dfinity.org" in tail) else trap


def _trapped(name: str, method: str, trap: str) -> CanisterTrapError:
    return CanisterTrapError(f"{name}.{method} trapped: {trap}", canister=name, method=method, trap=trap)


def _raise_for(name: str, method: str, response: Response | None, principal: str) -> bytes:
    if response is None:
        raise CanisterRejectError(REJECT_CANISTER_ERROR, f"Canister {principal} did not reply to the call")
    kind, data, code, text = response
    if kind == "reply":
        return data
    match = _TRAP_REJECT.match(text) if code == REJECT_CANISTER_ERROR else None
    if match is not None:
        raise _trapped(name, method, _strip_help(match["trap"]))
    raise CanisterRejectError(code, text)


def _await_ingress(store: Store, ingress_id: int, canister_id: int, since: int,
                   on_message: Callable[[int], None] | None, what: str) -> tuple[Response, list[str]]:
    """Run the queue until the ingress record is answered; its response and the prints meanwhile.
    The queue runs with the canister and whatever the call set going (messages after ``since``)
    as its focus: other canisters' queued work gets only the background budget."""
    def answered() -> bool:
        with db.read_transaction(store.engine) as c:
            st = c.execute(sa.select(schema.ingress.c.status).where(schema.ingress.c.id == ingress_id)).scalar()
        return st != "pending"

    with db.read_transaction(store.engine) as conn:
        seq_before = events.last_log_seq(conn, canister_id)
    scheduler.run_pending(store, focus=[canister_id], since=since, until=answered, on_message=on_message)
    with db.transaction(store.engine) as conn:
        ing = conn.execute(sa.select(schema.ingress).where(schema.ingress.c.id == ingress_id)).one()
        logs = list(conn.execute(sa.select(schema.logs.c.message).where(
            schema.logs.c.canister_id == canister_id, schema.logs.c.seq > seq_before,
            schema.logs.c.kind == "print").order_by(schema.logs.c.seq)).scalars())
        if ing.status != "pending":
            conn.execute(schema.ingress.delete().where(schema.ingress.c.id == ingress_id))
    if ing.status == "pending":
        raise CanisterStateError(f"{what} has not been answered within {store.max_messages_per_command} queued "
                                 "messages; its messages stay queued and run with the next commands "
                                 "(`graphcopy tick`, `graphcopy status` shows what is queued)")
    response = (("reply", bytes(ing.reply or b""), 0, "") if ing.status == "replied"
                else ("reject", b"", int(ing.reject_code), str(ing.reject_message)))
    return response, logs


def _check_kind(name: str, method: str, kind: str, wanted: str | None) -> None:
    """dfx's ``--query`` / ``--update``: refused when they contradict how the module exports the method."""
    if wanted is None or wanted == kind:
        return
    if wanted not in CALL_KINDS:
        raise InvalidArgumentError(f"unknown call kind {wanted!r}: use query or update")
    if wanted == "query":
        raise InvalidArgumentError(
            f"`{method}` is an update method of {name!r}, not a query method; run the command without --query")
    raise InvalidArgumentError(
        f"`{method}` is a query method of {name!r}: it runs as a query (its changes are discarded either way); "
        "run the command without --update")


def _run_on(store: Store, focus: list[int], since: int | None, on_message: Callable[[int], None] | None) -> None:
    """What the call set going (callbacks, self-calls, timers) runs on before the command returns,
    within the background budget; the rest stays queued."""
    scheduler.run_pending(store, focus=focus, since=since, max_messages=store.max_background_messages,
                          on_message=on_message)


def _call_management(store: Store, method: str, arg: bytes, wanted: str | None,
                     on_message: Callable[[int], None] | None) -> CallResult:
    kind = method_kind(store, MANAGEMENT, method)
    _check_kind(MANAGEMENT, method, kind, wanted)
    since = scheduler.newest_message_id(store)
    from persist.execution.management import dispatch

    response, ingress_id = dispatch.call_from_user(store, method, arg, store.identity, query=kind == "query")
    focus: list[int] = []
    if ingress_id is not None:
        with db.read_transaction(store.engine) as conn:
            canister_id = conn.execute(sa.select(schema.ingress.c.canister_id).where(
                schema.ingress.c.id == ingress_id)).scalar_one()
        focus = [int(canister_id)]
        response, _ = _await_ingress(store, ingress_id, int(canister_id), since, on_message, f"{MANAGEMENT}.{method}")
    _run_on(store, focus, since, on_message)
    assert response is not None
    kind_, data, code, text = response
    if kind_ != "reply":
        raise CanisterRejectError(code, text)
    return CallResult(method=method, kind=kind, reply=data)


def _call_known(store: Store, name: str, method: str, arg: bytes, wanted: str | None,
                on_message: Callable[[int], None] | None) -> CallResult | None:
    """An update to a canister whose last commit this process made, run without reading anything
    first (``messages.execute_known_ingress``: one transaction for a message that answers at once);
    None whenever the general path must decide (not cached, a query, an inspect_message hook, a
    changed row, queued work, a pipeline claim)."""
    cached = store.known(name)
    if cached is None or wanted not in (None, "update"):
        return None
    if not store.caller_held:
        # A caller whose key graphcopy does not hold takes the general path, which refuses it where
        # the canister is its controller.
        return None
    row, live = cached.row, cached.live
    assert row is not None
    if (row.status != "running" or method not in live.info.updates
            or "canister_inspect_message" in live.info.system):
        return None
    ran = messages.execute_known_ingress(store, row, method, arg, store.identity)
    if ran is None:
        return None
    # Nothing was queued when it committed (the guard), so what is queued now is its doing (``since`` 0).
    return _answer_update(store, name, method, row, live, ran, 0, on_message, nothing_else_queued=True)


def _answer_update(store: Store, name: str, method: str, row: sa.Row[Any], live: LiveCanister,
                   ran: messages.Ran, since: int,
                   on_message: Callable[[int], None] | None, *, nothing_else_queued: bool) -> CallResult:
    """The result of an ingress update ``messages.execute_ingress`` (or ``execute_known_ingress``) ran:
    its trap, or its reply once the queue has answered it (if it awaited calls), after what it set
    going (messages after ``since``) ran on within the background budget. ``nothing_else_queued``:
    nothing was queued when it committed, so when it set nothing going there is nothing to run."""
    response, ingress_id, ctx, trap = ran
    logs = [text for _, text in ctx.logs]
    if trap is not None:
        raise _trapped(name, method, trap)
    if ingress_id is not None:
        # The method awaits calls: run the queue until its call context answers the ingress.
        response, more = _await_ingress(store, ingress_id, row.id, since, on_message, f"{name}.{method}")
        logs += more
    if not nothing_else_queued or ingress_id is not None or ctx.calls or 0 < live.timer_ns <= now_ns():
        # What it set going (calls, one-way ones too; a timer it set that is due) runs on.
        _run_on(store, [row.id], since, on_message)
    reply = _raise_for(name, method, response, row.principal)
    return CallResult(method=method, kind="update", reply=reply, logs=logs)


def call(store: Store, name: str, method: str, arg: bytes = EMPTY_ARGS, *, kind: str | None = None,
         on_message: Callable[[int], None] | None = None) -> CallResult:
    """Call ``method`` as the store's identity: an update commits, a query discards its changes.

    ``kind`` ("query" or "update") says how the caller means to call it; InvalidArgumentError
    (nothing runs) when the module exports the method the other way. Raises CanisterTrapError (the
    canister's trap message; nothing changed), CanisterRejectError, or MessageTooLargeError (an
    argument over ``store.limits.max_ingress_bytes``). A query reads the committed state and runs
    nothing queued. An update first runs what is queued for the canister (at most
    ``store.max_background_messages``), then itself; the messages it causes (callbacks, self-calls,
    other canisters) run until it is answered (at most ``store.max_messages_per_command``), and what
    it set going runs on within the background budget; ``on_message`` is called after each of them
    (see ``execution.scheduler.run_pending``). ``name`` ``aaaaa-aa`` calls the management canister.
    """
    checkpoint()  # a loop of calls stops between two of them on a deferred Ctrl-C
    wanted = kind
    check_ingress_size(store.limits.max_ingress_bytes, name, method, arg)
    if is_management(name):
        store.controller_identity()  # the management canister's methods are for key holders (controllers)
        return _call_management(store, method, arg, wanted, on_message)
    known = _call_known(store, name, method, arg, wanted, on_message)
    if known is not None:
        return known
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    if not store.caller_held and store.identity.raw in controllers_of(row):
        # A controller's principal typed on a command line would pass the canister's own controller
        # checks (``ic0.is_controller``: Motoko's ``__motoko_*`` endpoints, ``msg.caller`` tests): refused.
        raise NotAuthorizedError(
            f"caller {store.identity.to_text()} controls {name!r}, and graphcopy does not hold its key (it was "
            "given with --caller): calling as a controller needs the identity itself (`--identity NAME`)")
    if row.module_hash is None:
        raise CanisterStateError(f"canister {name!r} is empty: install a module first (`graphcopy install`)")
    live = instances.live_canister(store, row)
    kind = _kind_of(live, name, method)
    _check_kind(name, method, kind, wanted)
    if row.status != "running":
        raise CanisterStateError(f"canister {name!r} is {row.status}; run `graphcopy start {name}` first")
    if kind == "query":
        res = messages.run_query(store, row, method, arg, store.identity.raw)
        logs = [text for _, text in res.ctx.logs]
        if res.trap is not None:
            raise _trapped(name, method, res.trap)
        reply = _raise_for(name, method, res.ctx.response, row.principal)
        return CallResult(method=method, kind=kind, reply=reply, logs=logs, instructions=res.instructions)

    with db.read_transaction(store.engine) as conn:
        pending = scheduler.has_pending_work(conn)
    if pending:  # what earlier commands left for this canister runs first, within the background budget
        scheduler.run_pending(store, focus=[row.id], max_messages=store.max_background_messages,
                              on_message=on_message)
        with db.read_transaction(store.engine) as conn:
            row = canister_row(conn, name)
        if row.status != "running":
            raise CanisterStateError(f"canister {name!r} is {row.status}; run `graphcopy start {name}` first")
    with db.read_transaction(store.engine) as conn:
        locks.check_unlocked(conn, row.name, store.lock_owner)
    refused = messages.inspect_ingress(store, row, method, arg, store.identity)
    if refused is not None:
        raise CanisterRejectError(REJECT_CANISTER_REJECT, refused)
    since = scheduler.newest_message_id(store)
    ran = messages.execute_ingress(store, row, method, arg, store.identity)
    return _answer_update(store, name, method, row, live, ran, since, on_message, nothing_else_queued=False)
