"""Concurrent commands on one store: the loser of a conflict exits 4 (``ConflictError``), whatever
the conflict is (a database another process holds, a claimed canister, a canister another process
committed to first), and two upgrades planned on the same state never both run.

Real processes: each runs ``graphcopy upgrade`` (the CLI's own entry point); a barrier after the
plan (the real planner, then a wait until both processes have planned) makes both plan on the same
state before either upgrades, so the race is hit every time rather than by luck.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

from persist.errors import (
    CandidError,
    ConflictError,
    GraphcopyError,
    StaleStateError,
    StoreError,
    StoreLockedError,
)
from persist.session import Store, open_store
from persist.store.locks import CanisterLockedError
from tests.upgrade_helpers import call, history_kinds

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"

# Runs `graphcopy ARGS...` after wrapping the planner: the real plan, then (with a barrier directory)
# say so and wait until the test says go.
BARRIER_CLI = r'''
import importlib, sys, time
from pathlib import Path

barrier = Path(sys.argv[1])
up = importlib.import_module("migrate.upgrade")
real_plan = up.plan_upgrade

def plan_then_wait(*args, **kwargs):
    plan = real_plan(*args, **kwargs)
    (barrier / "planned").touch()
    deadline = time.monotonic() + 120
    while not (barrier / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return plan

up.plan_upgrade = plan_then_wait
import cli.main
sys.argv = ["graphcopy", *sys.argv[2:]]
cli.main.main()
'''


def upgrades_into_v2(st: Store) -> int:
    """How often counter v2's post_upgrade ran (its ``upgrades`` variable)."""
    found = re.search(r"upgrades = (\d+)", call(st, "ctr", "stats"))
    assert found is not None
    return int(found.group(1))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_")}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def test_every_conflict_is_one_family_with_exit_code_4() -> None:
    for cls in (StoreLockedError, CanisterLockedError, StaleStateError):
        assert issubclass(cls, ConflictError) and cls.exit_code == 4
    assert issubclass(StoreLockedError, StoreError)  # still a store problem for who catches those
    assert ConflictError.exit_code == 4 and issubclass(ConflictError, GraphcopyError)
    assert not issubclass(CandidError, ConflictError)


def test_two_simultaneous_keep_upgrades_run_post_upgrade_once(db_url: str, tmp_path: Path) -> None:
    with open_store(db_url) as st:
        from persist import api

        api.install(st, "ctr", COUNTER.read_bytes())
        call(st, "ctr", "add", "(41 : nat)")
        caller = st.identity.to_text()
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    args = ["upgrade", "ctr", str(COUNTER_V2), "--mode", "keep", "--db", db_url, "--caller", caller]
    # The second upgrade plans on version 1 of the canister and waits; the first runs to its end;
    # then the second goes on, planned on a state that is gone.
    second = subprocess.Popen([sys.executable, "-c", BARRIER_CLI, str(barrier), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    deadline = time.monotonic() + 120
    while not (barrier / "planned").exists():
        assert second.poll() is None and time.monotonic() < deadline, second.communicate()
        time.sleep(0.02)
    first = subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, env=_env(),
                           cwd=ROOT, timeout=300)
    assert first.returncode == 0, first.stderr
    (barrier / "go").touch()
    out, err = second.communicate(timeout=300)
    assert second.returncode == 4, err
    assert "changed by another process" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    with open_store(db_url) as st:
        # post_upgrade ran once: counter v2 counts the upgrades into it.
        assert upgrades_into_v2(st) == 1 and call(st, "ctr", "get") == "(41 : nat)"
        assert history_kinds(st, "ctr").count("upgrade") == 1
        from persist.api import snapshots

        # The loser's snapshot went with its upgrade: only the winner's remains.
        assert len(snapshots.list_snapshots(st, "ctr")) == 1


def test_simultaneous_upgrades_without_a_barrier_never_both_run(sqlite_url: str) -> None:
    with open_store(sqlite_url) as st:
        from persist import api

        api.install(st, "ctr", COUNTER.read_bytes())
        caller = st.identity.to_text()
    procs = [subprocess.Popen([sys.executable, "-m", "cli.main", "upgrade", "ctr", str(COUNTER_V2), "--db",
                               sqlite_url, "--caller", caller], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=_env(), cwd=ROOT) for _ in range(3)]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    # Each either upgraded, found nothing to do (it already runs the module), or lost a conflict (4).
    assert all(code in (0, 4) for code, _ in results), results
    assert all("Traceback" not in err for _, err in results)
    with open_store(sqlite_url) as st:
        assert upgrades_into_v2(st) == 1
        assert history_kinds(st, "ctr").count("upgrade") == 1
