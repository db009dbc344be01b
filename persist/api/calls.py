"""The public functions that talk to a canister: call (update or query), its interface, a method's kind.

:func:`interface` is the one place that answers "which Candid types does this canister's method
take and return" (the module's ``candid:service``, or a ``.did`` text the caller gives instead);
the CLI and scripts type their arguments and print replies with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from persist.errors import (
    CanisterRejectError,
    CanisterStateError,
    CanisterTrapError,
    InvalidArgumentError,
    MethodNotFoundError,
)
from persist.execution import instances, messages, scheduler
from persist.execution.install_code import EMPTY_ARGS
from persist.host.live import LiveCanister
from persist.host.module import ModuleInfo, parse_module
from persist.host.system_api.context import REJECT_CANISTER_ERROR, REJECT_CANISTER_REJECT
from persist.session import Store
from persist.store import db, events, locks, schema
from persist.store.canisters import canister_row

if TYPE_CHECKING:
    from persist.candid import ServiceInterface

__all__ = ["CALL_KINDS", "CallResult", "call", "interface", "method_kind", "module_interface"]

#: What ``call(kind=...)`` accepts: how the caller means to call the method (dfx's ``--query`` / ``--update``).
CALL_KINDS = ("query", "update")


@dataclass
class CallResult:
    """The reply of a call, and how it ran."""

    method: str
    kind: str  # "update" | "query"
    reply: bytes
    logs: list[str] = field(default_factory=list)
    instructions: int = 0


def interface(store: Store, name: str, *, did: str | None = None) -> ServiceInterface | None:
    """The canister's Candid interface: ``did`` (the text of a ``.did`` file, dfx's ``--candid``)
    when given, else its module's custom sections; None if it has none."""
    from persist.candid import parse_service

    if did is not None:
        return parse_service(did)
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
    """"update" or "query", as the canister's module exports ``method``."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    return _kind_of(instances.live_canister(store, row), name, method)


def _raise_for(name: str, method: str, response: tuple[str, bytes, int, str] | None, principal: str) -> bytes:
    if response is None:
        raise CanisterRejectError(REJECT_CANISTER_ERROR, f"Canister {principal} did not reply to the call")
    kind, data, code, text = response
    if kind == "reply":
        return data
    if code == REJECT_CANISTER_ERROR and text.startswith("Error from Canister"):
        raise CanisterTrapError(f"{name}.{method} trapped: {text.split(': ', 1)[1]}", canister=name, method=method)
    raise CanisterRejectError(code, text)


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


def call(store: Store, name: str, method: str, arg: bytes = EMPTY_ARGS, *, kind: str | None = None,
         on_message: Callable[[int], None] | None = None) -> CallResult:
    """Call ``method`` as the store's identity: an update commits, a query discards its changes.

    ``kind`` ("query" or "update") says how the caller means to call it; InvalidArgumentError
    (nothing runs) when the module exports the method the other way. Raises CanisterTrapError (the
    canister's trap message; nothing changed) or CanisterRejectError. Queued messages the call
    causes (callbacks, self-calls, other canisters) run before it returns; ``on_message`` is called
    after each of them (see ``execution.run_pending``).
    """
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        pending = scheduler.has_pending_work(conn)
    if pending:  # what an earlier command left behind runs first
        scheduler.run_pending(store, on_message=on_message)
        with db.read_transaction(store.engine) as conn:
            row = canister_row(conn, name)
    if row.module_hash is None:
        raise CanisterStateError(f"canister {name!r} is empty: install a module first (`graphcopy install`)")
    live = instances.live_canister(store, row)
    wanted = kind
    kind = _kind_of(live, name, method)
    _check_kind(name, method, kind, wanted)
    if row.status != "running":
        raise CanisterStateError(f"canister {name!r} is {row.status}; run `graphcopy start {name}` first")
    if kind == "query":
        res = messages.run_query(store, row, method, arg, store.identity.raw)
        logs = [text for _, text in res.ctx.logs]
        if res.trap is not None:
            raise CanisterTrapError(f"{name}.{method} trapped: {res.trap}", canister=name, method=method)
        reply = _raise_for(name, method, res.ctx.response, row.principal)
        return CallResult(method=method, kind=kind, reply=reply, logs=logs, instructions=res.instructions)

    with db.read_transaction(store.engine) as conn:
        locks.check_unlocked(conn, row.name, store.lock_owner)
    refused = messages.inspect_ingress(store, row, method, arg, store.identity)
    if refused is not None:
        raise CanisterRejectError(REJECT_CANISTER_REJECT, refused)
    response, ingress_id, ctx, trap = messages.execute_ingress(store, row, method, arg, store.identity)
    logs = [text for _, text in ctx.logs]
    if trap is not None:
        raise CanisterTrapError(f"{name}.{method} trapped: {trap}", canister=name, method=method)
    if ingress_id is not None:
        # The method awaits calls: run the queue until its call context answers the ingress.
        def answered() -> bool:
            with db.read_transaction(store.engine) as c:
                st = c.execute(sa.select(schema.ingress.c.status).where(schema.ingress.c.id == ingress_id)).scalar()
            return st != "pending"

        with db.read_transaction(store.engine) as conn:
            seq_before = events.last_log_seq(conn, row.id)
        scheduler.run_pending(store, until=answered, on_message=on_message)
        with db.transaction(store.engine) as conn:
            ing = conn.execute(sa.select(schema.ingress).where(schema.ingress.c.id == ingress_id)).one()
            logs += list(conn.execute(sa.select(schema.logs.c.message).where(
                schema.logs.c.canister_id == row.id, schema.logs.c.seq > seq_before,
                schema.logs.c.kind == "print").order_by(schema.logs.c.seq)).scalars())
            if ing.status != "pending":
                conn.execute(schema.ingress.delete().where(schema.ingress.c.id == ingress_id))
        if ing.status == "pending":
            raise CanisterStateError(
                f"{name}.{method} has not been answered yet; its messages stay queued and run with the next command")
        response = (("reply", bytes(ing.reply or b""), 0, "") if ing.status == "replied"
                    else ("reject", b"", int(ing.reject_code), str(ing.reject_message)))
    # Whatever the call set going (callbacks of others, timers) runs on before we return.
    scheduler.run_pending(store, on_message=on_message)
    reply = _raise_for(name, method, response, row.principal)
    return CallResult(method=method, kind=kind, reply=reply, logs=logs, instructions=0)
