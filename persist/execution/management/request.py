"""What a call to the management canister carries, and the checks every method shares.

Errors are the replica's ``CanisterManagerError`` texts and codes with their help lines
(dfinity/ic ``rs/execution_environment/src/canister_manager/types.rs``: ``From<CanisterManagerError>
for UserError``, ``error_help``), raised as :class:`~persist.execution.rejects.IcError`; a canister
receives them as ``IC0512: Only the controllers …`` rejects, a user as a one-line error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from persist.execution import rejects
from persist.execution.rejects import IcError, doc_help
from persist.principal import Principal
from persist.session import Store
from persist.store import schema
from persist.store.canisters import DELETED, controllers_of, settings_of

__all__ = [
    "Pending",
    "Reply",
    "Request",
    "canister_arg",
    "invalid_controller",
    "not_found",
    "refresh_cached",
    "require_controller",
    "require_visible",
    "snapshot_not_found",
    "target",
]


@dataclass
class Request:
    """One call to the management canister."""

    method: str
    caller: Principal
    arg: Any  # the decoded argument (a dict for the record every method takes)
    cycles: int = 0  # attached by a calling canister
    from_canister: sa.Row[Any] | None = None  # the calling canister's row, None for a user
    sender_version: int | None = None  # the caller's canister version when it made the call
    replicated: bool = True  # False for a query call (``fetch_canister_logs``, ``canister_status``)
    accepted: int = 0  # cycles the method keeps (the rest is refunded)
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def origin(self) -> dict[str, Any]:
        """The change origin the canister's history records for this call."""
        if self.from_canister is None:
            return {"user": self.caller.to_text()}
        version = (self.arg or {}).get("sender_canister_version") if isinstance(self.arg, dict) else None
        return {"canister": self.caller.to_text(), "version": version}


@dataclass
class Reply:
    """The method's reply value (encoded with its result type)."""

    value: Any = None


@dataclass
class Pending:
    """The method answers later (``stop_canister`` waits for the canister to stop)."""

    canister_id: int


def _not_found_text(canister: str) -> str:
    help_ = doc_help("Check the ICP dashboard to ensure the canister exists.", "canister-not-found")
    return f"Canister {canister} not found.\n{help_}"


def not_found(canister: str) -> IcError:
    """``CanisterManagerError::CanisterNotFound``."""
    return IcError(rejects.CANISTER_NOT_FOUND, _not_found_text(canister))


def canister_arg(req: Request, key: str = "canister_id") -> Principal:
    """The canister the call is about (its ``canister_id`` field)."""
    value = req.arg.get(key) if isinstance(req.arg, dict) else None
    if not isinstance(value, Principal):
        raise IcError(rejects.INVALID_MANAGEMENT_PAYLOAD, f"Failed to decode payload for ic00 method: {req.method}")
    return value


def target(conn: sa.Connection, principal: Principal) -> sa.Row[Any]:
    """The canister row with this id; CanisterNotFound if there is none."""
    row = conn.execute(sa.select(schema.canisters).where(
        schema.canisters.c.principal == principal.to_text(),
        schema.canisters.c.status != DELETED)).first()  # a tombstone is no canister
    if row is None:
        raise not_found(principal.to_text())
    return row


def invalid_controller(row: sa.Row[Any], caller: Principal) -> IcError:
    """``CanisterManagerError::CanisterInvalidController``: the controllers in the replica's order
    (by raw bytes, a ``BTreeSet``)."""
    controllers = " ".join(Principal(c).to_text() for c in sorted(controllers_of(row)))
    help_ = doc_help("Execute this call from a controller of the target canister or add the current caller "
                     "as a controller.", "invalid-controller")
    return IcError(rejects.CANISTER_INVALID_CONTROLLER,
                   f"Only the controllers of the canister {row.principal} can control it.\n"
                   f"Canister's controllers: {controllers}\nSender's ID: {caller.to_text()}\n{help_}")


def require_controller(row: sa.Row[Any], req: Request) -> None:
    """Only a controller of the canister may go on."""
    if req.caller.raw not in controllers_of(row):
        raise invalid_controller(row, req.caller)


def require_visible(row: sa.Row[Any], req: Request, setting: str) -> None:
    """Controllers, the canister itself, and whoever the visibility ``setting``
    (``log_visibility``, ``snapshot_visibility``, ``status_visibility``) names may go on."""
    if req.caller.raw in controllers_of(row) or req.caller.to_text() == row.principal:
        return
    visibility = settings_of(row).get(setting) or {"controllers": None}
    if "public" in visibility:
        return
    allowed = visibility.get("allowed_viewers") or []
    if req.caller.to_text() in allowed:
        return
    raise invalid_controller(row, req.caller)


def snapshot_not_found(canister: str, snapshot_id: bytes) -> IcError:
    """``CanisterManagerError::CanisterSnapshotNotFound``."""
    help_ = doc_help("Use the `list_canister_snapshot` API to see which snapshots are present.",
                     "canister-snapshot-not-found")
    return IcError(rejects.CANISTER_SNAPSHOT_NOT_FOUND,
                   f"Could not find the snapshot ID {snapshot_id.hex()} for canister {canister}.\n{help_}")


def refresh_cached(store: Store, canister_id: int, old_version: int, new_version: int) -> None:
    """After a change that bumped only the version (settings), keep this process's cached instance:
    its memory is still the committed state."""
    cached = store.live.get(canister_id)
    if cached is not None and cached.version == old_version:
        cached.version = new_version
        cached.live.version = new_version
