"""Fair, bounded scheduling: canisters take turns, a command does a bounded amount of other
canisters' queued work, a query never waits for a queue, and a canister that floods its own
queue (``tests/canisters/storm.mo``, a real moc canister: every message sends itself two more)
slows only itself; ``graphcopy tick`` and ``graphcopy status`` show what is queued."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from persist import api
from persist.execution import scheduler
from persist.session import Store, open_store
from tests.canister_helpers import Canister, install
from toolchain.moc import compile_motoko

CANISTERS = Path(__file__).parent / "canisters"
COUNTER = Path(__file__).parent.parent / "examples" / "counter" / "counter.wasm"


@pytest.fixture
def store(sqlite_url: str, moc: None) -> Iterator[Store]:
    with open_store(sqlite_url) as st:
        yield st


def storms(c: Canister) -> int:
    return int(c("count").strip("()").split(":")[0].replace("_", ""))


def flooding(store: Store, name: str = "storm") -> Canister:
    """A storm canister whose queue never empties (width 2: each message queues two more)."""
    c = install(store, name, compile_motoko(CANISTERS / "storm.mo").wasm)
    c("storm", "(2)")
    return c


def test_a_flood_slows_only_the_canister_that_makes_it(store: Store) -> None:
    storm = flooding(store)
    budget = store.max_background_messages
    # Its own command returned: the ingress was answered, what it set going ran within the budget.
    ran = storms(storm)
    assert 1 < ran <= 1 + budget
    assert api.status(store, "storm").pending_messages > 0

    counter = install(store, "counter", COUNTER.read_bytes())
    before = storms(storm)
    assert counter("inc") == "(1 : nat)"
    assert counter("inc") == "(2 : nat)"
    # Each command on another canister did at most three background budgets of the flood (before
    # its call, while waiting, after it), never the whole queue.
    done = storms(storm) - before
    assert 0 < done <= 2 * 3 * budget
    assert api.status(store, "storm").pending_messages > 0


def test_a_query_never_waits_for_a_queue(store: Store) -> None:
    storm = flooding(store)
    counter = install(store, "counter", COUNTER.read_bytes())
    counter("inc")
    queued, ran = api.status(store, "storm").pending_messages, storms(storm)
    for _ in range(3):
        assert counter("get") == "(1 : nat)"
        assert storms(storm) == ran  # a query runs nothing queued, its own canister's or another's
    assert api.status(store, "storm").pending_messages == queued


def test_canisters_take_turns(store: Store) -> None:
    one, two = flooding(store, "one"), flooding(store, "two")
    a, b = storms(one), storms(two)
    assert api.run_pending(store, max_messages=200) == 200
    # Round-robin: each flooding canister got half of the messages.
    assert abs((storms(one) - a) - (storms(two) - b)) <= 1
    entries = {e.name: e for e in api.queue(store)}
    assert set(entries) == {"one", "two"}
    assert entries["one"].messages == api.status(store, "one").pending_messages > 0
    # Each storm message queues two requests to itself; their responses come back to it.
    assert entries["one"].requests + entries["one"].responses == entries["one"].messages
    assert entries["one"].requests > 0 and entries["one"].management == 0 and not entries["one"].timer_due


def test_the_focus_follows_the_calls_a_command_makes(store: Store) -> None:
    """While a command waits, the canisters its call reaches are its own work; the flood next
    door gets only the background budget."""
    storm = flooding(store)
    store.max_background_messages = 0
    sc = install(store, "self", compile_motoko(CANISTERS / "selfcall.mo").wasm)
    ran = storms(storm)
    assert sc("chain", "(25)") == "(25 : nat)"  # 25 nested self-calls, each a queued message
    assert storms(storm) == ran


def test_stop_ends_a_flood(store: Store) -> None:
    flooding(store)
    assert api.stop(store, "storm") in ("stopping", "stopped")
    # Queued requests to a stopping canister are rejected, responses still run: the flood drains.
    for _ in range(20):
        api.run_pending(store)
        if not api.queue(store):
            break
    assert api.queue(store) == []
    assert api.status(store, "storm").status == "stopped"


def test_tick_and_status_show_the_queue(sqlite_url: str, moc: None) -> None:
    with open_store(sqlite_url) as st:
        flooding(st)
    runner = CliRunner()
    res = runner.invoke(app, ["--db", sqlite_url, "tick", "--max-messages", "5", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["executed"] == 5
    [entry] = report["queued"]
    with open_store(sqlite_url) as st:
        assert entry["name"] == "storm" and entry["messages"] == api.status(st, "storm").pending_messages > 0
    res = runner.invoke(app, ["--db", sqlite_url, "tick", "--max-messages", "1"])
    assert res.exit_code == 0 and "1 message(s) executed" in res.output and "still queued" in res.output
    assert "storm" in res.output
    res = runner.invoke(app, ["--db", sqlite_url, "status", "storm"])
    assert res.exit_code == 0 and "`graphcopy tick` runs them" in res.output


def test_newest_message_id_and_settle(store: Store) -> None:
    flooding(store)
    newest = scheduler.newest_message_id(store)
    assert newest > 0
    assert scheduler.settle_canister(store, "storm") == store.max_background_messages
    assert scheduler.settle_canister(store, "no-such-canister") == 0
    assert scheduler.newest_message_id(store) > newest
