"""The open store: one SQL database of canisters, and the process-local state to run them.

Every public function of ``persist`` takes a ``Store``. It holds the SQLAlchemy engine (the durable
state), the wasmtime ``Runtime`` (compiled modules), the execution ``Limits``, the identity that
calls canisters on the user's behalf, and a cache of live canister instances. A live instance is
used only while its ``version`` matches the database row, so several processes may share a store:
a stale instance is dropped and reloaded, and a commit that races another is refused by the
version check instead of overwriting it.
"""

from __future__ import annotations

import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from persist.errors import NotAuthorizedError
from persist.host.limits import Limits
from persist.host.live import LiveCanister
from persist.host.runtime import Runtime
from persist.identity.identities import current_identity
from persist.identity.principals import parse_sender
from persist.principal import Principal
from persist.store import db, schema
from persist.store.canisters import IDENTITY_KEY


@dataclass
class CachedCanister:
    live: LiveCanister
    version: int
    module_hash: str
    # The canister row as this process last wrote it (``RETURNING`` of its commit), if it did: an
    # update runs on it without reading it first, its commit compares the whole row (see
    # ``persist.execution.messages.execute_known_ingress``). None: read the row first.
    row: sa.Row[Any] | None = None


@dataclass
class Store:
    """An open graphcopy store. Create it with ``open_store``; close it with ``close()``."""

    engine: sa.Engine
    url: str
    runtime: Runtime
    limits: Limits
    identity: Principal
    live: OrderedDict[int, CachedCanister] = field(default_factory=OrderedDict)
    # Live instances kept in memory (least recently used are dropped first; they are always at
    # their committed state between messages, so dropping one loses nothing).
    max_live: int = 16
    # Upper bound on queued messages one command runs before it returns (the rest stay queued,
    # durable, for the next command), and on those of them it runs for work it does not wait for
    # (other canisters' queues, what its call set going after it was answered); see
    # ``persist.execution.scheduler``.
    max_messages_per_command: int = 10_000
    max_background_messages: int = 20
    # The pipeline worker token ("host:pid") this store acts for: canisters that worker has claimed
    # (``pipeline_locks``) are not refused to it (see ``persist.store.locks``).
    lock_owner: str | None = None
    # Whether the user holds the key of ``identity`` (a named identity, the store's own, a script's
    # principal). False for a principal typed on a command line (``--caller``): it may send calls,
    # but never acts as a controller (``controller_identity``).
    caller_held: bool = True

    def controller_identity(self) -> Principal:
        """The caller, for an operation only a controller may do: ``identity`` if the user holds its
        key, else NotAuthorizedError (exit 5): typing a controller's principal does not make one."""
        if not self.caller_held:
            raise NotAuthorizedError(
                f"caller {self.identity.to_text()} was given as a principal (--caller), whose key graphcopy "
                "does not hold: it is never a controller; act as an identity you hold (`--identity NAME`, "
                "`graphcopy identity list`)")
        return self.identity

    def remember(self, canister_id: int, cached: CachedCanister) -> None:
        """Keep a live instance, evicting the least recently used ones beyond ``max_live``."""
        self.live[canister_id] = cached
        self.live.move_to_end(canister_id)
        while len(self.live) > self.max_live:
            self.live.popitem(last=False)

    def known(self, name: str) -> CachedCanister | None:
        """The cached instance of the canister named ``name`` with the row its last commit in this
        process left, if there is one (a hint: the commit that relies on it compares the row)."""
        for cached in self.live.values():
            if cached.row is not None and cached.row.name == name and cached.version == cached.row.version:
                return cached
        return None

    def close(self) -> None:
        """Release the live instances and the connection pool."""
        self.live.clear()
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_runtime: Runtime | None = None


def shared_runtime() -> Runtime:
    """One wasmtime engine per process: compiled modules are reused across stores."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def open_store(
    url: str | None = None,
    *,
    limits: Limits | None = None,
    caller: str | None = None,
    lock_timeout_s: float | None = None,
    allow_in_memory: bool = False,
    caller_held: bool = True,
) -> Store:
    """Open (and create or migrate) the store at ``url``.

    ``url`` defaults to ``GRAPHCOPY_DATABASE_URL`` or ``graphcopy.db`` in the working directory.
    ``caller`` is the principal (text, or ``anonymous``) that calls canisters and controls the
    canisters it creates; by default the principal of the user's identity in use
    (``persist.identity.current_identity``: ``default`` is made on first need, as dfx makes it), the
    same one the CLI acts as. It must be a principal that can send ingress messages on the IC (the
    anonymous principal or a self-authenticating one: InvalidArgumentError for a canister id or
    ``aaaaa-aa``). A script is trusted like dfx's agent with a key: its ``caller`` may act as a
    controller, unless ``caller_held=False`` (what the CLI's ``--caller PRINCIPAL`` passes for a
    principal none of the user's identities has: such a caller sends calls but never controls).
    The store's own identity (``store_identity``, the default caller before named identities) is
    still made and kept; ``persist.api.adopt`` hands its canisters to the caller.
    Pending Alembic revisions are applied. ``lock_timeout_s`` (default ``GRAPHCOPY_LOCK_TIMEOUT`` or
    5 s) is how long to wait for a database another process holds before StoreLockedError.
    An in-memory SQLite database (``sqlite://``) is refused unless ``allow_in_memory`` (its state
    is gone when the store is closed: for tests and throw-away scripts only).
    """
    if lock_timeout_s is None:
        lock_timeout_s = float(os.environ.get("GRAPHCOPY_LOCK_TIMEOUT", "5"))
    resolved = db.resolve_url(url)
    engine = db.create_engine_for(resolved, lock_timeout_s=lock_timeout_s, allow_in_memory=allow_in_memory)
    try:
        db.upgrade_schema(engine)
        store_identity(engine)
        identity = parse_sender(caller) if caller is not None else current_identity().principal
    except BaseException:
        engine.dispose()
        raise
    env_scale = os.environ.get("GRAPHCOPY_PERFORMANCE_COUNTER_SCALE")
    lim = limits or Limits()
    if env_scale and limits is None:
        lim.performance_counter_scale = float(env_scale)
    return Store(engine=engine, url=resolved, runtime=shared_runtime(), limits=lim, identity=identity,
                 caller_held=caller_held)


def store_identity(engine: sa.Engine) -> Principal:
    """The store's own identity, the Python API's default caller: a self-authenticating-style
    principal made once per store and kept in it (no key exists outside the store: whoever can write
    the store holds it). Before named identities the CLI called as it too (``persist.api.adopt``)."""
    with db.read_transaction(engine) as conn:
        value = conn.execute(
            sa.select(schema.settings.c.value).where(schema.settings.c.key == IDENTITY_KEY)).scalar()
    if value is not None:
        return Principal.from_text(value)
    principal = Principal(secrets.token_bytes(28) + b"\x02")
    with db.transaction(engine) as conn:
        existing = conn.execute(
            sa.select(schema.settings.c.value).where(schema.settings.c.key == IDENTITY_KEY)).scalar()
        if existing is not None:
            return Principal.from_text(existing)
        conn.execute(schema.settings.insert().values(key=IDENTITY_KEY, value=principal.to_text()))
    return principal
