"""Canister rows, canister ids, controllers and the controller check; the modules table.

A canister is found by its name or its principal text. Its row's ``version`` is the
compare-and-set guard of every commit (:class:`StaleStateError` when another process got there
first). Canister ids are allocated from a counter in ``settings`` like the replica's canister ranges
(``Principal.from_canister_index``).

A deleted canister whose last state was snapshotted first keeps its row as a *tombstone*: status
``deleted``, no module or pages, renamed ``<name>#deleted-<id>`` (``#`` is not allowed in canister
names, so the name is free again) and holding only that snapshot, from which ``snapshot load NAME
ID`` brings it back. Lookups by name or principal never return a tombstone; :func:`tombstones` does.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa

from persist.errors import (
    CanisterNotFoundError,
    CanisterStateError,
    NotAuthorizedError,
    StaleStateError,
)
from persist.principal import Principal
from persist.store import locks, schema

__all__ = [
    "IDENTITY_KEY",
    "NEXT_CANISTER_INDEX_KEY",
    "StaleStateError",
    "allocate_principal",
    "canister_row",
    "canister_row_by_id",
    "canister_row_by_principal",
    "DELETED",
    "original_name",
    "tombstone_name",
    "tombstones",
    "controller_row",
    "not_a_controller",
    "controllers_of",
    "env_vars_of",
    "insert_ignore",
    "is_text",
    "next_principal",
    "refuse_with_calls_in_flight",
    "settings_of",
    "store_module",
]

IDENTITY_KEY = "identity"
NEXT_CANISTER_INDEX_KEY = "next_canister_index"


#: The status of a tombstone: a deleted canister kept only for the snapshot taken before its deletion.
DELETED = "deleted"
_TOMBSTONE = "#deleted-"


def tombstone_name(name: str, canister_id: int) -> str:
    """The name a deleted canister's row takes (``counter#deleted-7``), freeing ``name``."""
    return f"{name}{_TOMBSTONE}{canister_id}"


def original_name(row_name: str) -> str:
    """The name a canister had before it was deleted (``counter`` for ``counter#deleted-7``)."""
    return row_name.split(_TOMBSTONE, 1)[0]


def tombstones(conn: sa.Connection, name: str) -> list[sa.Row[Any]]:
    """The rows of deleted canisters that were called ``name``, newest first."""
    if not is_text(name):
        return []  # no row can have been called that (canister_row says why, in one line)
    c = schema.canisters.c
    return list(conn.execute(sa.select(schema.canisters).where(
        c.status == DELETED, c.name.startswith(name + _TOMBSTONE, autoescape=True)).order_by(c.id.desc())))
def is_text(value: str) -> bool:
    """Whether ``value`` is valid text (Python keeps undecodable command-line bytes as surrogates,
    which no database can store or compare)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def canister_row(conn: sa.Connection, name: str) -> sa.Row[Any]:
    """The canister row by name or principal text; CanisterNotFoundError if there is none."""
    if not is_text(name):
        raise CanisterNotFoundError(f"no canister named {name!r} in this store: the name is not valid text "
                                    "(undecodable bytes; check the terminal's encoding)")
    c = schema.canisters.c
    live = c.status != DELETED
    row = conn.execute(sa.select(schema.canisters).where(c.name == name, live)).first()
    if row is None:
        row = conn.execute(sa.select(schema.canisters).where(c.principal == name, live)).first()
    if row is None:
        raise CanisterNotFoundError(f"no canister named {name!r} in this store (see `graphcopy list`)")
    return row


def canister_row_by_id(conn: sa.Connection, canister_id: int) -> sa.Row[Any] | None:
    """The canister row with this database id, or None."""
    return conn.execute(sa.select(schema.canisters).where(schema.canisters.c.id == canister_id)).first()


def canister_row_by_principal(conn: sa.Connection, principal: bytes) -> sa.Row[Any] | None:
    """The canister row with this principal (raw bytes), or None (a deleted canister is none)."""
    text = Principal(principal).to_text()
    c = schema.canisters.c
    return conn.execute(sa.select(schema.canisters).where(c.principal == text, c.status != DELETED)).first()


def controllers_of(row: sa.Row[Any]) -> list[bytes]:
    """The raw principals of the canister's controllers."""
    return [Principal.from_text(p).raw for p in json.loads(row.controllers)]


def env_vars_of(row: sa.Row[Any]) -> list[tuple[str, str]]:
    """The canister's environment variables, sorted by name."""
    raw = getattr(row, "environment_variables", None)
    return [(str(k), str(v)) for k, v in json.loads(raw)] if raw else []


def settings_of(row: sa.Row[Any]) -> dict[str, Any]:
    """The canister settings that were set (``canister_settings`` field name to value, JSON-ready)."""
    raw = getattr(row, "settings", None)
    return dict(json.loads(raw)) if raw else {}


def not_a_controller(conn: sa.Connection, row: sa.Row[Any], caller: Principal,
                     what: str = "may do this") -> NotAuthorizedError:
    """The error for a caller that does not control the canister ``row``; when the store's own
    identity does (a canister made before named identities), it names the command that adopts it."""
    own = conn.execute(sa.select(schema.settings.c.value).where(schema.settings.c.key == IDENTITY_KEY)).scalar()
    hint = ""
    if own is not None and Principal.from_text(own).raw in controllers_of(row):
        hint = ("; the store's own identity controls it (made before named identities, or by a script): "
                "`graphcopy identity adopt` makes your identity a controller too")
    return NotAuthorizedError(f"only a controller of {original_name(row.name)!r} {what} (caller "
                              f"{caller.to_text()}){hint}")


def controller_row(conn: sa.Connection, name: str, caller: Principal, lock_owner: str | None, *,
                   mutating: bool = True) -> sa.Row[Any]:
    """The canister's row, if ``caller`` controls it. A ``mutating`` operation is also refused while
    another process's pipeline has claimed the canister ("locked by ..."); ``lock_owner`` is the
    pipeline worker the caller acts for, if any."""
    row = canister_row(conn, name)
    if caller.raw not in controllers_of(row):
        raise not_a_controller(conn, row, caller)
    if mutating:
        locks.check_unlocked(conn, row.name, lock_owner)
    return row


def _free_index(conn: sa.Connection) -> tuple[int, bool]:
    """The next canister index whose principal no canister has (an imported canister may keep the
    id it had on the IC), and whether the counter exists yet."""
    s = schema.settings
    value = conn.execute(sa.select(s.c.value).where(s.c.key == NEXT_CANISTER_INDEX_KEY)).scalar()
    index = int(value) if value is not None else 0
    c = schema.canisters.c
    while conn.execute(sa.select(c.id).where(
            c.principal == Principal.from_canister_index(index).to_text())).first() is not None:
        index += 1
    return index, value is not None


def refuse_with_calls_in_flight(conn: sa.Connection, row: sa.Row[Any], what: str) -> None:
    """CanisterStateError while the canister has open call contexts or queued messages: they belong
    to the state that ``what`` (loading a snapshot) would replace."""
    open_contexts = conn.execute(sa.select(sa.func.count()).select_from(schema.call_contexts).where(
        schema.call_contexts.c.canister_id == row.id)).scalar() or 0
    queued = conn.execute(sa.select(sa.func.count()).select_from(schema.messages).where(
        schema.messages.c.canister_id == row.id)).scalar() or 0
    if open_contexts or queued:
        raise CanisterStateError(
            f"canister {row.name!r} has {open_contexts} open call context(s) and {queued} queued message(s); "
            f"run `graphcopy tick` (or stop it and let them finish) before {what}")


def next_principal(conn: sa.Connection) -> Principal:
    """The principal the next created canister will get (nothing is allocated)."""
    return Principal.from_canister_index(_free_index(conn)[0])


def allocate_principal(conn: sa.Connection) -> Principal:
    """Allocate the next canister id (in the caller's transaction)."""
    s = schema.settings
    index, exists = _free_index(conn)
    if not exists:
        conn.execute(s.insert().values(key=NEXT_CANISTER_INDEX_KEY, value=str(index + 1)))
    else:
        conn.execute(s.update().where(s.c.key == NEXT_CANISTER_INDEX_KEY).values(value=str(index + 1)))
    return Principal.from_canister_index(index)


def insert_ignore(conn: sa.Connection, table: sa.Table, index_elements: list[str] | None = None) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` on ``table`` for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=index_elements)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements)


def store_module(conn: sa.Connection, wasm: bytes, module_hash: str, custom_sections: dict[str, bytes]) -> None:
    """Keep a module and its custom sections (once per hash)."""
    exists = conn.execute(sa.select(schema.modules.c.hash).where(schema.modules.c.hash == module_hash)).scalar()
    if exists:
        return
    # Another process may store the same module concurrently (PostgreSQL READ COMMITTED: both see it
    # absent), so insert with ON CONFLICT DO NOTHING; the content is the same by construction (the hash).
    conn.execute(insert_ignore(conn, schema.modules).values(
        hash=module_hash, wasm=wasm, size=len(wasm), created_at_ns=time.time_ns()))
    if custom_sections:
        conn.execute(insert_ignore(conn, schema.module_sections), [
            {"module_hash": module_hash, "name": k, "data": v} for k, v in custom_sections.items()])
