"""Serving a call to the management canister: from a canister (a queued ``management`` message,
:func:`execute`) or from the store's user (:func:`call_from_user`).

A call is decoded with the real interface, checked as the replica checks it (an unknown method, a
payload that does not decode, a ``sender_canister_version`` that is not the caller's, methods
users may not call), and served by its method in one transaction with its reply: the message
leaves the queue and the caller's callback is queued together. ``stop_canister`` answers when the
canister has stopped (``persist.execution.routing.settle_stopping``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from persist.errors import CandidError
from persist.execution import rejects
from persist.execution.management import code, lifecycle, snapshots
from persist.execution.management.interface import decode_arg, encode_reply, management_interface
from persist.execution.management.request import Pending, Reply, Request
from persist.execution.management.unsupported import UNSUPPORTED, unsupported
from persist.execution.rejects import IcError, Response
from persist.execution.routing import consume, deliver, new_ingress, wait_for_stop
from persist.principal import Principal
from persist.session import Store
from persist.store import db
from persist.store.canisters import canister_row_by_id, canister_row_by_principal, controllers_of

__all__ = ["METHODS", "USER_REFUSED", "call_from_user", "execute", "is_query"]

SqlMethod = Callable[[sa.Connection, Store, Request], "Reply | Pending"]
CodeMethod = Callable[[Store, Request, Callable[[sa.Connection, Reply], None]], None]

#: Methods served in one SQL transaction.
SQL_METHODS: dict[str, SqlMethod] = {
    "create_canister": lifecycle.create_canister,
    "update_settings": lifecycle.update_settings,
    "start_canister": lifecycle.start_canister,
    "stop_canister": lifecycle.stop_canister,
    "delete_canister": lifecycle.delete_canister,
    "canister_status": lifecycle.canister_status,
    "canister_metrics": lifecycle.canister_metrics,
    "canister_info": lifecycle.canister_info,
    "canister_metadata": lifecycle.canister_metadata,
    "deposit_cycles": lifecycle.deposit_cycles,
    "raw_rand": lifecycle.raw_rand,
    "fetch_canister_logs": lifecycle.fetch_canister_logs,
    "list_canisters": lifecycle.list_canisters,
    "subnet_info": lifecycle.subnet_info,
    "node_metrics_history": lifecycle.node_metrics_history,
    "provisional_create_canister_with_cycles": lifecycle.provisional_create_canister_with_cycles,
    "provisional_top_up_canister": lifecycle.provisional_top_up_canister,
    "upload_chunk": code.upload_chunk,
    "stored_chunks": code.stored_chunks,
    "clear_chunk_store": code.clear_chunk_store,
    "uninstall_code": code.uninstall_code,
    "take_canister_snapshot": snapshots.take_canister_snapshot,
    "load_canister_snapshot": snapshots.load_canister_snapshot,
    "list_canister_snapshots": snapshots.list_canister_snapshots,
    "delete_canister_snapshot": snapshots.delete_canister_snapshot,
}
#: Methods that run Wasm (they answer inside the installer's commit).
CODE_METHODS: dict[str, CodeMethod] = {
    "install_code": code.install_code,
    "install_chunked_code": code.install_chunked_code,
}
#: Every method of the interface and how it is served.
METHODS = frozenset({*SQL_METHODS, *CODE_METHODS, *UNSUPPORTED})
#: Methods users may not call (the replica's ``should_accept_ingress_message``): "Only canisters
#: can call ic00 method …".
USER_REFUSED = frozenset({
    "create_canister", "canister_info", "canister_metadata", "ecdsa_public_key", "sign_with_ecdsa",
    "schnorr_public_key", "sign_with_schnorr", "vetkd_public_key", "vetkd_derive_key", "deposit_cycles",
    "http_request", "raw_rand", "bitcoin_get_balance", "bitcoin_get_utxos", "bitcoin_get_block_headers",
    "bitcoin_send_transaction", "bitcoin_get_current_fee_percentiles", "node_metrics_history", "subnet_info",
})
#: Methods users may call only as controllers of the canister they name.
USER_CONTROLLER_ONLY = frozenset({
    "canister_status", "start_canister", "uninstall_code", "stop_canister", "delete_canister", "update_settings",
    "install_code", "install_chunked_code", "upload_chunk", "stored_chunks", "clear_chunk_store",
    "take_canister_snapshot", "load_canister_snapshot", "list_canister_snapshots", "delete_canister_snapshot",
    "read_canister_snapshot_metadata", "read_canister_snapshot_data", "upload_canister_snapshot_metadata",
    "upload_canister_snapshot_data",
})


def is_query(method: str) -> bool:
    """Whether the interface declares ``method`` a query (``canister_status``, ``fetch_canister_logs``, …)."""
    sig = management_interface().methods.get(method)
    return sig is not None and sig.is_query


def _decode(req: Request, data: bytes) -> None:
    if req.method not in management_interface().methods or req.method not in METHODS:
        raise IcError(rejects.CANISTER_METHOD_NOT_FOUND, f"Management canister has no method '{req.method}'")
    try:
        req.arg = decode_arg(req.method, data)
    except CandidError as exc:
        raise IcError(rejects.INVALID_MANAGEMENT_PAYLOAD, f"Error decoding candid: {exc}") from exc
    given = req.arg.get("sender_canister_version") if isinstance(req.arg, dict) else None
    if given is not None and req.sender_version is not None and given != req.sender_version:
        raise IcError(rejects.CANISTER_CONTRACT_VIOLATION,
                      f"Management canister call payload includes sender canister version {given} that does not "
                      f"match the actual sender canister version {req.sender_version}.")


def _serve(store: Store, req: Request, finish: Callable[[sa.Connection, Reply | Pending], None]) -> Response | None:
    """Run the method; ``finish(conn, outcome)`` is called in the transaction that commits it.
    Returns the reject (or the unsupported method's answer) when nothing was committed."""
    try:
        if req.method in UNSUPPORTED:
            return unsupported(req)
        if req.method in CODE_METHODS:
            CODE_METHODS[req.method](store, req, finish)
        else:
            with db.transaction(store.engine) as conn:
                finish(conn, SQL_METHODS[req.method](conn, store, req))
    except IcError as exc:
        return exc.reject()
    for hook in req.after_commit:
        hook()
    return None


def execute(store: Store, msg: sa.Row[Any]) -> None:
    """Serve a queued call from a canister and answer it (its callback is queued)."""
    payload = json.loads(msg.payload)
    origin: dict[str, Any] = payload["origin"]
    with db.read_transaction(store.engine) as conn:
        caller_row = canister_row_by_id(conn, msg.canister_id)
    req = Request(method=payload["method"], caller=Principal.from_text(payload["caller"]), arg=None,
                  cycles=int(origin.get("cycles", 0)), from_canister=caller_row,
                  sender_version=payload.get("sender_version"))

    def refunded() -> dict[str, Any]:
        return {**origin, "cycles": max(0, req.cycles - req.accepted)}

    def finish(conn: sa.Connection, outcome: Reply | Pending) -> None:
        consume(conn, msg.id)
        if isinstance(outcome, Pending):
            wait_for_stop(conn, outcome.canister_id, refunded())
        else:
            deliver(conn, refunded(), ("reply", encode_reply(req.method, outcome.value), 0, ""))

    try:
        _decode(req, bytes(msg.data or b""))
        rejected = _serve(store, req, finish)
    except IcError as exc:
        rejected = exc.reject()
    if rejected is not None:
        req.accepted = 0
        with db.transaction(store.engine) as conn:
            consume(conn, msg.id)
            deliver(conn, refunded(), rejected)


def _check_user(conn: sa.Connection, req: Request) -> None:
    """The replica's ingress filter for the management canister."""
    if req.method in USER_REFUSED:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE, f"Only canisters can call ic00 method {req.method}")
    if req.method not in USER_CONTROLLER_ONLY:
        return
    arg = req.arg if isinstance(req.arg, dict) else {}
    effective = arg.get("canister_id") or arg.get("target_canister")
    if not isinstance(effective, Principal):
        raise IcError(rejects.INVALID_MANAGEMENT_PAYLOAD, f"Failed to decode payload for ic00 method: {req.method}")
    row = canister_row_by_principal(conn, effective.raw)
    if row is None:
        raise IcError(rejects.CANISTER_NOT_FOUND, f"Canister {effective.to_text()} not found")
    if req.caller.raw not in controllers_of(row):
        raise IcError(rejects.CANISTER_INVALID_CONTROLLER,
                      f"Only controllers of canister {effective.to_text()} can call ic00 method {req.method}")


def call_from_user(store: Store, method: str, arg: bytes, caller: Principal, *,
                   query: bool = False) -> tuple[Response | None, int | None]:
    """Serve a call of the store's user (an ingress message, or a query call when ``query``).

    Returns ``(response, None)`` once answered, or ``(None, ingress id)`` when the answer comes
    later (``stop_canister`` on a canister with open call contexts): the ingress record is answered
    when the canister has stopped."""
    req = Request(method=method, caller=caller, arg=None, replicated=not query)
    outcome: list[Response | int] = []

    def finish(conn: sa.Connection, result: Reply | Pending) -> None:
        if isinstance(result, Pending):
            ingress_id = new_ingress(conn, result.canister_id, {"method": method, "caller": caller.to_text()})
            wait_for_stop(conn, result.canister_id, {"ingress": ingress_id})
            outcome.append(ingress_id)
        else:
            outcome.append(("reply", encode_reply(method, result.value), 0, ""))

    try:
        _decode(req, arg)
        with db.read_transaction(store.engine) as conn:
            _check_user(conn, req)
        rejected = _serve(store, req, finish)
    except IcError as exc:
        rejected = exc.reject()
    if rejected is not None:
        return rejected, None
    result = outcome[0]
    if isinstance(result, int):
        return None, result
    return result, None
