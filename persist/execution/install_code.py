"""``install_code`` for the store's user: ``graphcopy install`` (modes install and reinstall) and
the upgrade under ``graphcopy upgrade``, with their option checks and one-line errors.

The work itself is :mod:`persist.execution.installer`'s (shared with the management canister).
Here the caller must be a controller, queued messages run first (an upgrade) or afterwards (what an
install set going), and a failed install's log lines are kept: in the canister's log when it
exists, and on the raised :class:`~persist.errors.CanisterTrapError` (``.prints``) always, since a
failed first install leaves no canister to hold them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from persist.errors import (
    CanisterExistsError,
    CanisterStateError,
    CanisterTrapError,
    InvalidArgumentError,
    StaleStateError,
)
from persist.execution import installer
from persist.execution.installer import (
    EMPTY_ARGS,
    INVALID_KEEP,
    MISSING_OPTION,
    PERSISTENCE_OPTIONS,
    InstallResult,
    OnCommit,
    Requester,
    UpgradeResult,
)
from persist.execution.rejects import check_ingress_size
from persist.execution.scheduler import settle_canister
from persist.session import Store
from persist.store import db, events, locks, schema
from persist.store.canisters import controller_row, controllers_of, not_a_controller

__all__ = [
    "EMPTY_ARGS",
    "INSTALL_MODES",
    "INVALID_KEEP",
    "MISSING_OPTION",
    "PERSISTENCE_OPTIONS",
    "InstallResult",
    "UpgradeResult",
    "install_module",
    "upgrade_code",
]

INSTALL_MODES = ("install", "reinstall")


def _keep_failed_logs(store: Store, row: sa.Row[Any] | None, exc: CanisterTrapError) -> None:
    if row is not None:
        with db.transaction(store.engine) as conn:
            events.append_logs(conn, row.id, exc.logs, capacity=store.limits.log_memory_limit)


def install_module(store: Store, name: str, wasm: bytes, *, arg: bytes = EMPTY_ARGS,
                   mode: str = "install", on_commit: OnCommit | None = None) -> InstallResult:
    """Install ``wasm`` on canister ``name`` (created if new): run its start function and
    ``canister_init(arg)`` within the install instruction limit, and commit everything at once.

    ``mode="reinstall"`` replaces the module and wipes heap, stable memory and logs. A trap or an
    invalid module changes nothing (a new canister is not even created); the trap's error carries
    the run's debug prints. ``on_commit(conn)`` runs inside the install's commit transaction.
    """
    if mode not in INSTALL_MODES:
        raise InvalidArgumentError(
            f"unknown install mode {mode!r}: use install or reinstall (upgrades: graphcopy upgrade)")
    # The argument travels in the install_code ingress message (large modules go in chunks).
    check_ingress_size(store.limits.max_ingress_bytes, name, "canister_init", arg)
    store.runtime.load_module(wasm)  # an invalid module is refused before anything else
    with db.read_transaction(store.engine) as conn:
        row = conn.execute(sa.select(schema.canisters).where(schema.canisters.c.name == name)).first()
        locks.check_unlocked(conn, name, store.lock_owner)
    if row is not None:
        if mode == "install" and row.module_hash is not None:
            raise CanisterExistsError(
                f"canister {name!r} already has a module; use --mode reinstall to wipe it, or `graphcopy upgrade`")
        if store.controller_identity().raw not in controllers_of(row):
            with db.read_transaction(store.engine) as conn:
                raise not_a_controller(conn, row, store.identity, "may install code on it")
    try:
        result = installer.install(store, row, wasm, name=name, arg=arg, mode=mode,
                                   requester=Requester.user(store.controller_identity()), on_commit=on_commit)
    except CanisterTrapError as exc:
        _keep_failed_logs(store, row, exc)
        raise
    settle_canister(store, name)
    return result


def upgrade_code(
    store: Store,
    name: str,
    wasm: bytes,
    *,
    arg: bytes = EMPTY_ARGS,
    skip_pre_upgrade: bool = False,
    wasm_memory_persistence: str | None = None,
    history_detail: dict[str, Any] | None = None,
    expected_version: int | None = None,
    on_commit: OnCommit | None = None,
) -> UpgradeResult:
    """Upgrade canister ``name`` to ``wasm`` (``install_code`` mode upgrade). Only controllers may.

    Raises UpgradeOptionError for options the modules do not allow, CanisterTrapError if any stage
    traps or runs out of instructions (everything is rolled back), CanisterStateError for an empty
    canister. Queued messages run first. ``history_detail`` is added to the upgrade's history entry.
    ``expected_version`` is the canister version the caller planned the upgrade on: if another
    process changed the canister since, StaleStateError (a conflict, exit 4) and nothing is run,
    so two upgrades planned on the same state never both run their hooks. ``on_commit(conn)`` runs
    inside the upgrade's commit transaction.
    """
    check_ingress_size(store.limits.max_ingress_bytes, name, "canister_post_upgrade", arg)
    store.runtime.load_module(wasm)
    settle_canister(store, name)
    with db.read_transaction(store.engine) as conn:
        row = controller_row(conn, name, store.controller_identity(), store.lock_owner)
    if expected_version is not None and int(row.version) != expected_version:
        raise StaleStateError(
            f"canister {name!r} was changed by another process while this upgrade was planned (version "
            f"{expected_version}, now {int(row.version)}); nothing was changed: run the command again")
    if row.module_hash is None:
        raise CanisterStateError(f"canister {name!r} is empty: use `graphcopy install` for its first module")
    try:
        return installer.upgrade(store, row, wasm, arg=arg, skip_pre_upgrade=skip_pre_upgrade,
                                 wasm_memory_persistence=wasm_memory_persistence,
                                 requester=Requester.user(store.controller_identity()), history_detail=history_detail,
                                 on_commit=on_commit)
    except CanisterTrapError as exc:
        _keep_failed_logs(store, row, exc)
        raise
