"""The message path: an update to a canister this process committed last is one transaction of the
statements it needs, and every guarantee of the general path holds (SQLite and PostgreSQL).

The statement counts are counted (SQLAlchemy event listeners), not timed. Checked besides: another
process's update, stop, or deposit in between is seen (the whole-row compare-and-set fails, the
general path runs it on the current state, nothing is lost or done twice); a queued message runs
first; a live pipeline claim refuses it (a dead one does not); its debug prints are logged and
returned; a call to a missing method changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from persist import api
from persist.errors import CanisterStateError
from persist.session import Store, open_store
from persist.store import db, schema
from persist.store.canisters import canister_row
from persist.store.locks import CanisterLockedError, owner_token

COUNTER = (Path(__file__).resolve().parent.parent / "examples" / "counter" / "counter.wasm").read_bytes()
EMPTY = b"DIDL\x00\x00"


def nat(n: int) -> bytes:
    out = bytearray(b"DIDL\x00\x01\x7d")
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def count(store: Store, name: str = "c") -> bytes:
    return api.call(store, name, "get", EMPTY).reply


class Counted:
    """Statements and transactions on an engine (BEGIN counts as a transaction, not a statement)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[str] = []
        self.transactions = 0
        self.engine = engine
        sa.event.listen(engine, "before_cursor_execute", self._stmt)
        sa.event.listen(engine, "begin", self._begin)

    def _stmt(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.startswith("BEGIN"):
            self.statements.append(statement.split(None, 1)[0].upper())

    def _begin(self, conn: Any) -> None:
        self.transactions += 1

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._stmt)
        sa.event.remove(self.engine, "begin", self._begin)


@pytest.fixture
def two(db_url: str) -> Iterator[tuple[Store, Store]]:
    """Two stores on one database: two processes, as far as the message path can tell."""
    with open_store(db_url) as a, open_store(db_url) as b:
        api.install(a, "c", COUNTER)
        yield a, b


def test_an_update_is_one_transaction_of_at_most_three_statements(two: tuple[Store, Store]) -> None:
    a, _ = two
    api.call(a, "c", "inc", EMPTY)  # the general path: reads the row, then caches what it wrote
    counted = Counted(a.engine)
    try:
        for i in range(10):
            assert api.call(a, "c", "inc", EMPTY).reply == nat(i + 2)
    finally:
        counted.close()
    # the compare-and-set UPDATE and the page upsert (no logs: inc prints nothing)
    assert counted.transactions == 10
    assert len(counted.statements) <= 3 * 10
    assert counted.statements.count("UPDATE") == 10 and "SELECT" not in counted.statements
    assert count(a) == nat(11)


def test_another_process_in_between_is_seen(two: tuple[Store, Store]) -> None:
    a, b = two
    api.call(a, "c", "inc", EMPTY)
    api.call(a, "c", "inc", EMPTY)  # a: cached row
    assert api.call(b, "c", "inc", EMPTY).reply == nat(3)
    assert api.call(a, "c", "inc", EMPTY).reply == nat(4)  # not 3: a's stale instance was not used
    assert api.call(b, "c", "inc", EMPTY).reply == nat(5)
    assert count(a) == count(b) == nat(5)
    # A deposit by another process changes no version, but the row: seen too.
    with db.transaction(b.engine) as conn:
        c = schema.canisters.c
        conn.execute(schema.canisters.update().where(c.name == "c").values(cycles=c.cycles + 7))
    before = api.status(a, "c")
    assert api.call(a, "c", "inc", EMPTY).reply == nat(6)
    assert api.status(a, "c").version == before.version + 1
    # Stopped by the other process: refused, nothing ran.
    api.stop(b, "c")
    with pytest.raises(CanisterStateError, match="stopped"):
        api.call(a, "c", "inc", EMPTY)
    api.start(b, "c")
    assert api.call(a, "c", "inc", EMPTY).reply == nat(7)


def test_queued_work_runs_first_and_a_live_claim_refuses(two: tuple[Store, Store]) -> None:
    a, b = two
    api.call(a, "c", "inc", EMPTY)
    api.call(a, "c", "inc", EMPTY)
    with db.read_transaction(b.engine) as conn:
        row = canister_row(conn, "c")
    with db.transaction(b.engine) as conn:  # another process queued a request to the canister
        payload = {"method": "add", "caller": row.principal, "origin": {"system": "test"}}
        conn.execute(schema.messages.insert().values(canister_id=row.id, kind="request", payload=json.dumps(payload),
                                                     data=nat(10), created_at_ns=1))
    assert api.call(a, "c", "inc", EMPTY).reply == nat(13)  # 2, then the queued +10, then this +1
    # A running claim of a live pipeline worker (this very process, under another token).
    with db.transaction(b.engine) as conn:
        conn.execute(schema.pipeline_locks.insert().values(
            pipeline="p", canister="c", state="running", owner=owner_token(), heartbeat_ns=2**62, attempts=1,
            updated_at_ns=1))
    with pytest.raises(CanisterLockedError):
        api.call(a, "c", "inc", EMPTY)
    a.lock_owner = owner_token()  # the worker's own store is let through
    assert api.call(a, "c", "inc", EMPTY).reply == nat(14)
    assert api.call(a, "c", "inc", EMPTY).reply == nat(15)
    a.lock_owner = None
    with pytest.raises(CanisterLockedError):
        api.call(a, "c", "inc", EMPTY)
    with db.transaction(b.engine) as conn:  # a dead claim (no such process) blocks nobody
        conn.execute(schema.pipeline_locks.update().values(owner=f"{owner_token().rpartition(':')[0]}:{2**22 + 7}"))
    assert os.path.exists("/proc") and api.call(a, "c", "inc", EMPTY).reply == nat(16)


def test_logs_and_traps_on_the_one_transaction_path(two: tuple[Store, Store]) -> None:
    a, b = two
    api.call(a, "c", "inc", EMPTY)
    res = api.call(a, "c", "add", nat(5))
    assert res.reply == nat(6) and res.logs == ["counter: added 5, count is now 6"]
    res = api.call(a, "c", "add", nat(2))  # cached now
    assert res.reply == nat(8) and res.logs == ["counter: added 2, count is now 8"]
    assert [e.message for e in api.logs(b, "c")][-2:] == ["counter: added 5, count is now 6",
                                                          "counter: added 2, count is now 8"]
    version = api.status(a, "c").version
    with pytest.raises(Exception, match="no method|has no method"):
        api.call(a, "c", "nope", EMPTY)
    assert api.status(a, "c").version == version and count(a) == nat(8)


def test_a_trap_on_the_one_transaction_path_changes_nothing_and_is_logged(two: tuple[Store, Store]) -> None:
    import wasmtime

    from persist.errors import CanisterTrapError

    a, b = two
    wat = (Path(__file__).resolve().parent / "canisters" / "durability.wat").read_text()
    api.install(a, "d", bytes(wasmtime.wat2wasm(wat)))
    zero = (0).to_bytes(8, "little")
    api.call(a, "d", "setup", zero)
    api.call(a, "d", "setup", zero)  # cached now
    state = api.call(a, "d", "state").reply
    version = api.status(a, "d").version
    counted = Counted(a.engine)
    try:
        with pytest.raises(CanisterTrapError):
            api.call(a, "d", "mutate_then_trap", (1).to_bytes(8, "little"))
    finally:
        counted.close()
    assert counted.transactions == 1 and counted.statements.count("UPDATE") == 0  # one read, the trap logged
    assert api.call(a, "d", "state").reply == api.call(b, "d", "state").reply == state
    assert api.status(b, "d").version == version
    assert api.logs(b, "d")[-1].kind == "trap"
    assert api.call(a, "d", "setup", zero).reply == zero
