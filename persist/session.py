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

from persist.host.limits import Limits
from persist.host.live import LiveCanister
from persist.host.runtime import Runtime
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
) -> Store:
    """Open (and create or migrate) the store at ``url``.

    ``url`` defaults to ``GRAPHCOPY_DATABASE_URL`` or ``graphcopy.db`` in the working directory.
    ``caller`` is the principal (text) that calls canisters; by default the store's own identity,
    created on first use and kept in the store, which also controls the canisters it creates.
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
        identity = _store_identity(engine)
    except BaseException:
        engine.dispose()
        raise
    if caller is not None:
        identity = Principal.from_text(caller) if caller != "anonymous" else Principal.anonymous()
    env_scale = os.environ.get("GRAPHCOPY_PERFORMANCE_COUNTER_SCALE")
    lim = limits or Limits()
    if env_scale and limits is None:
        lim.performance_counter_scale = float(env_scale)
    return Store(engine=engine, url=resolved, runtime=shared_runtime(), limits=lim, identity=identity)


def _store_identity(engine: sa.Engine) -> Principal:
    """The store's default caller: a self-authenticating-style principal made once per store."""
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
