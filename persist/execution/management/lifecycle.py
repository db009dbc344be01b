"""Management methods about a canister's life: create it, set it up, start, stop, delete it, and
what anyone may learn about it (status, info, metadata, logs), its cycles, randomness and the subnet.

Every handler works inside the transaction in which the call is answered (and its message taken
off the queue), so a method's effect and its reply commit together. Canister ids are allocated like
the replica allocates them from its subnet's range (``persist.store.canisters.allocate_principal``);
a canister created by a canister is a first-class canister of the store, named after its principal,
with the creator recorded as its ``parent``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa

from persist.execution import rejects
from persist.execution.clock import now_ns
from persist.execution.contexts import MAX_CYCLES, cycles_update
from persist.execution.instances import forget_live
from persist.execution.management.request import (
    Pending,
    Reply,
    Request,
    canister_arg,
    invalid_controller,
    refresh_cached,
    require_controller,
    require_visible,
    target,
)
from persist.execution.management.settings import apply_settings, definite_settings, env_vars_hash, validate_settings
from persist.execution.rejects import IcError, doc_help
from persist.execution.routing import deliver, settle_stopping
from persist.host.memory import PAGE
from persist.host.system_api.subnet import SUBNET_ID
from persist.principal import Principal
from persist.session import Store
from persist.store import canisters, deletion, events, schema
from persist.store.canisters import DELETED, StaleStateError, controllers_of

__all__ = [
    "CHUNK_BYTES",
    "canister_info",
    "canister_metadata",
    "canister_metrics",
    "canister_status",
    "create_canister",
    "delete_canister",
    "deposit_cycles",
    "fetch_canister_logs",
    "list_canisters",
    "node_metrics_history",
    "provisional_create_canister_with_cycles",
    "provisional_top_up_canister",
    "raw_rand",
    "start_canister",
    "start_row",
    "changes",
    "stop_canister",
    "subnet_info",
    "update_settings",
]

#: A chunk occupies 1 MiB of the chunk store however small it is (the replica's accounting).
CHUNK_BYTES = 1024 * 1024
#: What ``fetch_canister_logs`` returns at most: the newest records within 4 KiB of content.
LOG_BYTES = 4096
#: ``canister_info`` returns at most this many changes (the replica keeps at least 20).
MAX_CHANGES = 20
REPLICA_VERSION = "graphcopy"


def _create(conn: sa.Connection, store: Store, req: Request, settings: dict[str, Any] | None, cycles: int | None,
            specified: Principal | None = None) -> Principal:
    validated = validate_settings(settings)
    env = validated.get("environment_variables")
    if specified is not None:
        if canisters.canister_row_by_principal(conn, specified.raw) is not None:
            raise IcError(205, f"Unsuccessful canister creation: canister id {specified.to_text()} already exists.")
        principal = specified
    else:
        principal = canisters.allocate_principal(conn)
    controllers = validated.get("controllers") or [req.caller.to_text()]
    validated["controllers"] = controllers
    values = apply_settings(None, validated)
    now = now_ns()
    res = conn.execute(schema.canisters.insert().values(
        name=principal.to_text(), principal=principal.to_text(), status="running", module_hash=None,
        controllers=values.pop("controllers"), version=0, created_at_ns=now, updated_at_ns=now, time_ns=now,
        parent=req.caller.to_text() if req.from_canister is not None else None,
        cycles=min(cycles, MAX_CYCLES) if cycles is not None else schema.DEFAULT_CYCLES, **values))
    pk = res.inserted_primary_key
    assert pk is not None
    detail: dict[str, Any] = {"controllers": controllers}
    if env is not None:
        detail["environment_variables_hash"] = env_vars_hash(env).hex()
    events.add_history(conn, int(pk[0]), "create", None, detail, origin=req.origin, canister_version=0)
    return principal


def create_canister(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``create_canister``: a new, empty canister with the given settings (controllers default to
    the caller). Its balance is the cycles attached (all kept, no creation fee), or the notional
    balance when none were."""
    req.accepted = req.cycles
    principal = _create(conn, store, req, req.arg.get("settings"), req.cycles or None)
    return Reply({"canister_id": principal})


def provisional_create_canister_with_cycles(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """The local-development variant: the balance is ``amount`` (default: the notional balance), and
    ``specified_id`` picks the id if it is free."""
    amount = req.arg.get("amount")
    principal = _create(conn, store, req, req.arg.get("settings"), amount, req.arg.get("specified_id"))
    return Reply({"canister_id": principal})


def update_settings(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``update_settings``: only the given fields change; a new controller list is recorded in the
    history. The canister's version goes up (its live instance is kept)."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    validated = validate_settings(req.arg.get("settings"))
    controllers = validated.get("controllers")
    values = apply_settings(row, validated)
    c = schema.canisters.c
    upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version).values(
        version=row.version + 1, updated_at_ns=now_ns(), **values))
    if upd.rowcount != 1:
        raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
    if controllers is not None:
        events.add_history(conn, row.id, "controllers", None, {"controllers": controllers}, origin=req.origin,
                           canister_version=int(row.version) + 1)
    req.after_commit.append(lambda: refresh_cached(store, row.id, int(row.version), int(row.version) + 1))
    return Reply()


def start_canister(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``start_canister``: running again; ``stop_canister`` calls still waiting are rejected."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    start_row(conn, row)
    return Reply()


def start_row(conn: sa.Connection, row: sa.Row[Any]) -> None:
    """Set the canister running; the stop requests still waiting get the replica's
    "Canister …'s stop request was cancelled." (``graphcopy start`` does the same)."""
    w = schema.stop_waiters
    cancelled = rejects.IcError(rejects.CANISTER_STOPPING_CANCELLED,
                                f"Canister {row.principal}'s stop request was cancelled.").reject()
    for waiter in conn.execute(sa.select(w).where(w.c.canister_id == row.id).order_by(w.c.id)).all():
        deliver(conn, json.loads(waiter.origin), cancelled)
    conn.execute(w.delete().where(w.c.canister_id == row.id))
    conn.execute(schema.canisters.update().where(schema.canisters.c.id == row.id).values(status="running"))


def stop_canister(conn: sa.Connection, store: Store, req: Request) -> Reply | Pending:
    """``stop_canister``: the canister takes no new calls and stops once no call context is open;
    the call is answered then (at once if it already is stopped)."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    if row.status == "stopped":
        return Reply()
    if row.status == "running":
        conn.execute(schema.canisters.update().where(schema.canisters.c.id == row.id).values(status="stopping"))
        settle_stopping(conn, row.id)
        if canisters.canister_row_by_id(conn, row.id).status == "stopped":  # type: ignore[union-attr]
            return Reply()
    return Pending(int(row.id))


def delete_canister(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``delete_canister``: a stopped canister, by a controller other than itself, with nothing queued."""
    principal = canister_arg(req)
    if req.caller == principal:
        help_ = doc_help("Delete the canister from one of its other controllers.", "delete-canister-self")
        raise IcError(rejects.CANISTER_INVALID_CONTROLLER,
                      f"Canister {principal.to_text()} cannot delete itself.\n{help_}")
    row = target(conn, principal)
    require_controller(row, req)
    if row.status != "stopped":
        help_ = doc_help("Stop the canister before deleting it.", "delete-canister-not-stopped")
        raise IcError(rejects.CANISTER_NOT_STOPPED,
                      f"Canister {row.principal} must be stopped before it is deleted.\n{help_}")
    queued = conn.execute(sa.select(sa.func.count()).select_from(schema.messages).where(
        schema.messages.c.canister_id == row.id, schema.messages.c.kind != "management")).scalar()
    if queued:
        help_ = doc_help("Wait until the queues have been cleared to delete the canister and in the meantime stop "
                         "the canister.", "delete-canister-queue-not-empty")
        raise IcError(203, f"Canister {row.principal} has messages in its queues and cannot be deleted now. "
                           f"Please retry after some time.\n{help_}")
    deletion.delete_canister(conn, row)
    req.after_commit.append(lambda: forget_live(store, row.id))
    return Reply()


def _add_cycles(conn: sa.Connection, row: sa.Row[Any], amount: int) -> None:
    values = cycles_update(amount)
    if values:
        conn.execute(schema.canisters.update().where(schema.canisters.c.id == row.id).values(**values))


def deposit_cycles(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``deposit_cycles``: the attached cycles go to the canister (anyone may deposit)."""
    row = target(conn, canister_arg(req))
    req.accepted = req.cycles
    _add_cycles(conn, row, req.cycles)
    return Reply()


def provisional_top_up_canister(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``provisional_top_up_canister``: ``amount`` cycles out of thin air (local development)."""
    row = target(conn, canister_arg(req))
    _add_cycles(conn, row, int(req.arg["amount"]))
    return Reply()


def raw_rand(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``raw_rand``: 32 bytes from the operating system's randomness (no consensus to draw from)."""
    return Reply(os.urandom(32))


def _module_info(conn: sa.Connection, module_hash: str | None) -> tuple[int, int, dict[str, bytes]]:
    if module_hash is None:
        return 0, 0, {}
    size = int(conn.execute(sa.select(schema.modules.c.size).where(schema.modules.c.hash == module_hash))
               .scalar() or 0)
    ms = schema.module_sections
    sections = {r.name: bytes(r.data) for r in conn.execute(sa.select(ms.c.name, ms.c.data).where(
        ms.c.module_hash == module_hash))}
    custom = sum(len(k) + len(v) for k, v in sections.items() if k.startswith("icp:"))
    return size, custom, sections


def canister_status(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``canister_status``: the canister's status, version, settings, module hash, memory, cycles.
    Controllers, the canister itself and whoever ``status_visibility`` allows may ask."""
    row = target(conn, canister_arg(req))
    require_visible(row, req, "status_visibility")
    wasm_size, custom, _ = _module_info(conn, row.module_hash)
    chunk_count = int(conn.execute(sa.select(sa.func.count()).select_from(schema.wasm_chunks).where(
        schema.wasm_chunks.c.canister_id == row.id)).scalar() or 0)
    s = schema.snapshots
    snaps = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(s.c.heap_pages + s.c.stable_pages), 0)).where(
        s.c.canister_id == row.id)).scalar() or 0
    history = int(conn.execute(sa.select(sa.func.count()).select_from(schema.history).where(
        schema.history.c.canister_id == row.id)).scalar() or 0)
    globals_ = len(json.loads(row.globals)) * 8 if row.globals else 0
    metrics = {
        "wasm_memory_size": int(row.heap_pages) * PAGE,
        "stable_memory_size": int(row.stable_pages) * PAGE,
        "global_memory_size": globals_,
        "wasm_binary_size": wasm_size,
        "custom_sections_size": custom,
        "canister_history_size": history * 100,
        "wasm_chunk_store_size": chunk_count * CHUNK_BYTES,
        "snapshots_size": int(snaps) * PAGE,
    }
    queued = conn.execute(sa.select(sa.func.count()).select_from(schema.messages).where(
        schema.messages.c.canister_id == row.id)).scalar()
    return Reply({
        "status": {row.status: None},
        "ready_for_migration": row.status == "stopped" and not queued,
        "version": int(row.version),
        "settings": definite_settings(row),
        "module_hash": bytes.fromhex(row.module_hash) if row.module_hash else None,
        "memory_size": sum(metrics.values()),
        "memory_metrics": metrics,
        "cycles": int(row.cycles),
        "reserved_cycles": 0,
        "idle_cycles_burned_per_day": 0,
        "query_stats": {"num_calls_total": 0, "num_instructions_total": 0, "request_payload_bytes_total": 0,
                        "response_payload_bytes_total": 0},
    })


def canister_metrics(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``canister_metrics``: cycles consumed by use case; graphcopy charges nothing, so all zero."""
    row = target(conn, canister_arg(req))
    require_controller(row, req)
    keys = ("memory", "compute_allocation", "ingress_induction", "instructions", "request_and_response_transmission",
            "uninstall", "canister_creation", "http_outcalls", "burned_cycles")
    return Reply({"cycles_consumed": dict.fromkeys(keys, 0)})


def _change(h: sa.Row[Any], default_user: str) -> dict[str, Any] | None:
    detail = json.loads(h.detail) if h.detail else {}
    kind = h.kind
    if kind == "create":
        env_hash = detail.get("environment_variables_hash")
        details: dict[str, Any] = {"creation": {
            "controllers": [Principal.from_text(p) for p in detail.get("controllers", [])],
            "environment_variables_hash": bytes.fromhex(env_hash) if env_hash else None}}
    elif kind in ("install", "reinstall", "upgrade"):
        details = {"code_deployment": {"mode": {kind: None}, "module_hash": bytes.fromhex(h.module_hash)}}
    elif kind == "uninstall":
        details = {"code_uninstall": None}
    elif kind == "controllers":
        details = {"controllers_change": {"controllers": [Principal.from_text(p) for p in detail["controllers"]]}}
    elif kind in ("snapshot-load", "rollback"):
        details = {"load_snapshot": {
            "from_canister_id": Principal.from_text(detail["from_canister"]) if detail.get("from_canister") else None,
            "snapshot_id": bytes.fromhex(detail["snapshot_blob"]) if detail.get("snapshot_blob") else b"",
            "canister_version": int(detail.get("snapshot_version") or 0),
            "taken_at_timestamp": int(detail.get("taken_at_ns") or 0),
            "source": {"taken_from_canister": None}}}
    else:
        return None
    origin = json.loads(h.origin) if h.origin else {"user": default_user}
    if "canister" in origin:
        version = origin.get("version")
        who: dict[str, Any] = {"from_canister": {"canister_id": Principal.from_text(origin["canister"]),
                                                 "canister_version": int(version) if version is not None else None}}
    else:
        who = {"from_user": {"user_id": Principal.from_text(origin["user"])}}
    return {"timestamp_nanos": int(h.time_ns), "canister_version": int(h.canister_version or 0), "origin": who,
            "details": details}


def changes(conn: sa.Connection, store: Store, row: sa.Row[Any]) -> list[dict[str, Any]]:
    """The canister's history as ``canister_info`` changes, oldest first."""
    hist = conn.execute(sa.select(schema.history).where(schema.history.c.canister_id == row.id)
                        .order_by(schema.history.c.id)).all()
    out = [_change(h, store.identity.to_text()) for h in hist]
    return [c for c in out if c is not None]


def canister_info(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``canister_info``: module hash, controllers, and the most recent changes (anyone may ask)."""
    row = target(conn, canister_arg(req))
    all_changes = changes(conn, store, row)
    wanted = min(int(req.arg.get("num_requested_changes") or 0), MAX_CHANGES)
    return Reply({
        "total_num_changes": len(all_changes),
        "recent_changes": all_changes[len(all_changes) - wanted:] if wanted else [],
        "module_hash": bytes.fromhex(row.module_hash) if row.module_hash else None,
        "controllers": [Principal(c) for c in sorted(controllers_of(row))],
    })


def canister_metadata(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``canister_metadata``: an ``icp:public`` custom section to anyone, ``icp:private`` to controllers."""
    row = target(conn, canister_arg(req))
    name = req.arg["name"]
    if row.module_hash is None:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE,
                      f"The canister {row.principal} has no Wasm module and hence no metadata is available.")
    _, _, sections = _module_info(conn, row.module_hash)
    if f"icp:public {name}" in sections:
        return Reply({"value": sections[f"icp:public {name}"]})
    if f"icp:private {name}" in sections:
        if req.caller.raw not in controllers_of(row):
            raise invalid_controller(row, req.caller)
        return Reply({"value": sections[f"icp:private {name}"]})
    raise IcError(rejects.CANISTER_REJECTED_MESSAGE,
                  f"The canister {row.principal} has no metadata section with the name {name}.")


def fetch_canister_logs(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``fetch_canister_logs`` (query calls only): the newest records within 4 KiB, traps as
    ``[TRAP]: …``; who may read them is ``log_visibility``'s."""
    if req.replicated:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE,
                      "fetch_canister_logs API is only accessible in non-replicated mode")
    row = target(conn, canister_arg(req))
    require_visible(row, req, "log_visibility")
    lg = schema.logs
    records: list[dict[str, Any]] = []
    size = 0
    for r in conn.execute(sa.select(lg).where(lg.c.canister_id == row.id).order_by(lg.c.seq.desc())):
        content = (f"[TRAP]: {r.message}" if r.kind == "trap" else r.message).encode()
        if size + len(content) > LOG_BYTES:
            break
        size += len(content)
        records.append({"idx": int(r.seq), "timestamp_nanos": int(r.time_ns), "content": content})
    records.reverse()
    return Reply({"canister_log_records": records})


def list_canisters(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``list_canisters`` (subnet admins, query calls): the store's canister ids as ranges. The
    store's own identity is the subnet's admin."""
    if req.caller != store.identity or req.replicated:
        raise IcError(rejects.CANISTER_REJECTED_MESSAGE, "The caller is not authorized to call this method.")
    c = schema.canisters.c
    ids = sorted(Principal.from_text(p) for p in conn.execute(sa.select(c.principal).where(c.status != DELETED))
                 .scalars())
    ranges: list[dict[str, Principal]] = []
    for p in ids:
        index = p.canister_index()
        last = ranges[-1]["end"].canister_index() if ranges else None
        if ranges and index is not None and last is not None and index == last + 1:
            ranges[-1]["end"] = p
        else:
            ranges.append({"start": p, "end": p})
    return Reply({"canisters": ranges})


def subnet_info(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``subnet_info`` for the store's subnet (``ic0.subnet_self_copy``'s id)."""
    subnet = req.arg["subnet_id"]
    if subnet != SUBNET_ID:
        raise IcError(404, f"Subnet {subnet.to_text()} not found (graphcopy's only subnet is {SUBNET_ID.to_text()})")
    return Reply({"replica_version": REPLICA_VERSION, "registry_version": 1})


def node_metrics_history(conn: sa.Connection, store: Store, req: Request) -> Reply:
    """``node_metrics_history``: graphcopy's subnet has no nodes to report on."""
    if req.arg["subnet_id"] != SUBNET_ID:
        raise IcError(404, f"Subnet {req.arg['subnet_id'].to_text()} not found")
    return Reply([])
