"""Adopting a store's canisters: the migration from the store's own identity to the user's.

Before named identities, every command ran as the store's own identity (a principal kept in the
store's ``settings``, created with the store), so the canisters a user made from the command line
are controlled by it, and the Python API's default caller is still that identity. That identity has
no key outside the store: whoever can write the store holds it. :func:`adopt` adds a principal the
user holds (the identity in use) to the controllers of every canister the store's identity controls,
in one transaction, each change recorded in the canister's history as a controller change made by
the store's identity (as ``update_settings`` records one). The store's identity stays a controller,
so scripts with the default caller keep working; ``graphcopy call aaaaa-aa update_settings`` removes
it where that is wanted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlalchemy as sa

from persist.errors import InvalidArgumentError
from persist.execution import instances
from persist.execution.management.settings import MAX_CONTROLLERS
from persist.session import Store, store_identity
from persist.store import db, events, schema
from persist.store.canisters import DELETED, StaleStateError

__all__ = ["AdoptResult", "adopt"]


@dataclass
class AdoptResult:
    """What :func:`adopt` did: the canisters it made ``principal`` a controller of, those it already
    controlled, and those it could not (a full controller list), with the reason."""

    principal: str
    store_identity: str
    adopted: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def adopt(store: Store, *, dry_run: bool = False) -> AdoptResult:
    """Make the caller (``store.controller_identity()``: a principal the user holds) a controller of
    every canister the store's own identity controls. ``dry_run`` changes nothing and reports what
    would change. Tombstones of deleted canisters are adopted too (their kept snapshot stays
    loadable). InvalidArgumentError when the caller is the store's identity itself or anonymous."""
    caller = store.controller_identity()
    own = store_identity(store.engine)
    if caller == own:
        raise InvalidArgumentError(f"the caller {caller.to_text()} is the store's own identity: nothing to adopt")
    if caller.is_anonymous:
        raise InvalidArgumentError("the anonymous identity cannot adopt canisters: anyone could act as it "
                                   "(`graphcopy identity use NAME` picks one with a key)")
    result = AdoptResult(principal=caller.to_text(), store_identity=own.to_text())
    c = schema.canisters.c
    changed: list[int] = []
    with db.transaction(store.engine) as conn:
        for row in conn.execute(sa.select(schema.canisters).order_by(c.id)).all():
            controllers = json.loads(row.controllers)
            label = row.name if row.status != DELETED else f"{row.name} (deleted)"
            if own.to_text() not in controllers:
                continue
            if caller.to_text() in controllers:
                result.already.append(label)
                continue
            if len(controllers) >= MAX_CONTROLLERS:
                result.refused[label] = (f"it has {len(controllers)} controllers already, the IC's most; remove one "
                                         "with `graphcopy call aaaaa-aa update_settings` first")
                continue
            result.adopted.append(label)
            if dry_run:
                continue
            new = [*controllers, caller.to_text()]
            upd = conn.execute(schema.canisters.update().where(c.id == row.id, c.version == row.version).values(
                controllers=json.dumps(new), version=row.version + 1))
            if upd.rowcount != 1:
                raise StaleStateError(f"canister {row.name!r} was changed by another process; retry")
            events.add_history(conn, row.id, "controllers", None, {"controllers": new},
                               origin={"user": own.to_text()}, canister_version=int(row.version) + 1)
            changed.append(int(row.id))
    for canister_id in changed:
        instances.forget_live(store, canister_id)  # its controllers (ic0.is_controller) changed
    return result
