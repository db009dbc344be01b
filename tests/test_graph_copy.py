"""Graph-copy migrations of real moc canisters: driven from outside, chunked, resumable.

The canister (``canisters/upgrades/graph_v1.mo``) holds a 100,000-element mutable array and
thousands of nested records that share sub-objects; ``performance_counter_scale`` makes Motoko's
increments small, so a migration takes hundreds of them. Checked: the data (a digest over every
stable value, samples, sizes, and sharing: a mutation seen through another path) is identical
after the migration; messages are refused while it runs; only controllers drive it; the record
shows its phases; and a migration interrupted anywhere, in process or by ``kill -9`` of the CLI at
many points, finishes when the command is run again, with nothing lost or done twice.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from migrate import MigrationStateError, UpgradeRefusedError, destabilize, plan_upgrade, stabilize, upgrade
from migrate.graph_copy import BLOCKED_TRAP
from migrate.record import PHASES
from persist.errors import CanisterTrapError, NotAuthorizedError
from persist.host.limits import Limits
from persist.session import Store, open_store
from tests.upgrade_helpers import call, history_kinds, install, motoko, with_eop_section

ROOT = Path(__file__).resolve().parent.parent
SCALE = 100_000.0  # small increments: one per ~256 KiB of graph (the runtime's own minimum)
runner = CliRunner()


def fill(store: Store, name: str, n: int, m: int) -> None:
    install(store, name, motoko("graph_v1"))
    call(store, name, "fill", f"({n} : nat, {m} : nat)")
    call(store, name, "visit", "(3 : nat)")


def observe(store: Store, name: str) -> dict[str, str]:
    """What the tests compare before and after a migration (queries only)."""
    return {"digest": call(store, name, "digest"), "sizes": call(store, name, "sizes"),
            "sample": call(store, name, "sample", "(7 : nat)"), "prev": call(store, name, "prevVisits", "(4 : nat)")}


@pytest.fixture
def store(sqlite_url: str, moc: None) -> Iterator[Store]:
    with open_store(sqlite_url, limits=Limits(performance_counter_scale=SCALE)) as st:
        yield st


def test_graph_copy_takes_hundreds_of_increments_and_keeps_every_value(store: Store) -> None:
    fill(store, "g", 100_000, 8_000)
    before = observe(store, "g")
    seen: list[dict[str, Any]] = []
    out = upgrade(store, "g", motoko("graph_v2"), mode="graph-copy", on_progress=seen.append)
    rec = out.migration
    assert out.path == "graph-copy" and rec is not None and rec["phase"] == "done"
    inc = rec["increments"]
    assert inc["stabilize"] >= 150 and inc["destabilize"] >= 50 and inc["stabilize"] + inc["destabilize"] >= 200
    assert rec["instructions"]["stabilize"] > 0 and rec["stable_bytes"] >= 2 * 2**20
    assert [h["phase"] for h in rec["history"]] == ["stabilizing", "stabilized", "upgrading", "upgraded",
                                                     "destabilizing", "done"]
    # progress came after every message, and only grew
    counts = [r["increments"]["stabilize"] + r["increments"]["destabilize"] for r in seen]
    assert len(seen) >= inc["stabilize"] + inc["destabilize"] and counts == sorted(counts)
    assert observe(store, "g") == before
    assert call(store, "g", "getRelease") == '("v2")'  # the new module, its new variable initialised
    prev = int(call(store, "g", "prevVisits", "(5 : nat)").strip("( :nat)").replace("_", ""))
    assert call(store, "g", "visit", "(4 : nat)") == f"({prev + 1} : nat)"
    assert call(store, "g", "prevVisits", "(5 : nat)") == f"({prev + 1} : nat)"  # sharing survived
    assert history_kinds(store, "g")[-1] == "upgrade"


def test_layout_change_takes_the_graph_copy_path_automatically(store: Store) -> None:
    fill(store, "g", 20_000, 500)
    before = observe(store, "g")
    other = with_eop_section(motoko("graph_v2"), "64-bit, layout version 2")
    plan = plan_upgrade(store, "g", other)
    assert plan.path == "graph-copy" and "layout changes" in plan.reasons[0]
    out = upgrade(store, "g", other)
    assert out.path == "graph-copy" and out.migration is not None and out.migration["phase"] == "done"
    assert observe(store, "g") == before


def test_messages_are_blocked_and_only_controllers_drive_it(sqlite_url: str, moc: None, tmp_path: Path) -> None:
    with open_store(sqlite_url, limits=Limits(performance_counter_scale=SCALE)) as st:
        fill(st, "g", 20_000, 500)
        before = observe(st, "g")
    with open_store(sqlite_url, caller="anonymous") as st:
        with pytest.raises(NotAuthorizedError):
            stabilize(st, "g")
    code, _, err = gc(sqlite_url, "--caller", "anonymous", "stabilize-before-upgrade", "g")
    assert code == 5 and "controller" in err
    code, out, err = gc(sqlite_url, "stabilize-before-upgrade", "g", "--performance-counter-scale", str(SCALE))
    assert code == 0 and "stabilized" in out, err
    with open_store(sqlite_url) as st:
        for method in ("digest", "visit"):  # queries and updates alike
            with pytest.raises(CanisterTrapError, match=BLOCKED_TRAP):
                call(st, "g", method, "(1 : nat)" if method == "visit" else "()")
        with pytest.raises(MigrationStateError, match="not upgraded yet"):
            destabilize(st, "g")
        with pytest.raises(UpgradeRefusedError, match="in progress"):
            upgrade(st, "g", motoko("graph_v2"), mode="keep")
    # Started by stabilize-before-upgrade, the migration has no target yet: the remedy names the module
    code, _, err = gc(sqlite_url, "call", "g", "digest")
    assert code == 7 and BLOCKED_TRAP in err and err.strip().count("\n") == 0
    assert "`graphcopy upgrade g WASM --mode graph-copy`" in err
    code, out, _ = gc(sqlite_url, "status", "g")
    assert code == 0 and "IN PROGRESS: stabilized" in out and "`graphcopy upgrade g WASM --mode graph-copy`" in out
    doc = json.loads(gc(sqlite_url, "status", "g", "--json")[1])
    assert doc["migration"]["phase"] == "stabilized" and doc["migration"]["increments"]["stabilize"] > 10

    # the rest of the way: the upgrade continues the migration the stabilization started
    wasm = tmp_path / "graph_v2.wasm"
    wasm.write_bytes(motoko("graph_v2"))
    code, out, err = gc(sqlite_url, "upgrade", "g", str(wasm), "--performance-counter-scale", str(SCALE))
    assert code == 0 and "continuing from phase stabilized" in out and "upgraded by graph copy" in out, err
    assert "g: destabilizing" in err and "g: done" in err  # phase lines on stderr (not a terminal)
    code, out, _ = gc(sqlite_url, "status", "g")
    assert "graph copy done" in out and "migration history" in out and "destabilizing" in out
    with open_store(sqlite_url) as st:
        assert observe(st, "g") == before
    code, _, err = gc(sqlite_url, "destabilize-after-upgrade", "g")
    assert code == 6 and "nothing to destabilize" in err


class Crash(Exception):
    """Stands in for a kill: raised from the progress callback right after a committed message."""


def crash_when(predicate: Callable[[dict[str, Any]], bool]) -> Callable[[dict[str, Any]], None]:
    def on_progress(rec: dict[str, Any]) -> None:
        if predicate(rec):
            raise Crash(rec["phase"])

    return on_progress


def test_interrupted_anywhere_in_process_then_resumed(db_url: str, moc: None) -> None:
    """Both backends: stop the driver after committed messages in every phase, drop the store (and
    its live instances), reopen, and resume; the standalone steps resume too."""
    limits = Limits(performance_counter_scale=SCALE)
    with open_store(db_url, limits=limits) as st:
        fill(st, "g", 20_000, 800)
        before = observe(st, "g")
        v2 = motoko("graph_v2")
    stops: list[Callable[[dict[str, Any]], bool]] = [
        lambda r: r["increments"]["stabilize"] >= 5,
        lambda r: r["phase"] == "stabilized",
        lambda r: r["phase"] == "upgrading",
        lambda r: r["phase"] == "upgraded",
        lambda r: r["increments"]["destabilize"] >= 3,
    ]
    for k, stop in enumerate(stops):
        with open_store(db_url, limits=limits) as st:
            with pytest.raises(Crash):
                upgrade(st, "g", v2 if k == 0 else None, mode="graph-copy", resume=k > 0, on_progress=crash_when(stop))
    with open_store(db_url, limits=limits) as st:
        rec = upgrade(st, "g", None, resume=True).migration
        assert rec is not None and rec["phase"] == "done"
        assert [h.get("event") for h in rec["history"]].count("resumed") == len(stops)
        assert observe(st, "g") == before
        assert call(st, "g", "getRelease") == '("v2")'

        # stabilize / destabilize on their own, interrupted as well
        with pytest.raises(Crash):
            stabilize(st, "g", on_progress=crash_when(lambda r: r["increments"]["stabilize"] >= 3))
        assert stabilize(st, "g")["phase"] == "stabilized"
        with pytest.raises(Crash):
            upgrade(st, "g", motoko("graph_v2"), on_progress=crash_when(lambda r: r["increments"]["destabilize"] >= 2))
        assert destabilize(st, "g")["phase"] == "done"
        assert observe(st, "g") == before


def test_a_failed_upgrade_step_is_rolled_back_and_another_module_finishes_it(sqlite_url: str, moc: None) -> None:
    """With the IC's budgets the upgrade step completes the destabilization, so a new module whose
    postupgrade traps fails there: rolled back, the canister stays stabilized (and blocked), the
    record says failed, and the migration can be finished with a module that works."""
    with open_store(sqlite_url) as st:
        fill(st, "g", 20_000, 500)
        before = observe(st, "g")
        with pytest.raises(CanisterTrapError, match="postupgrade refuses on purpose"):
            upgrade(st, "g", motoko("graph_trap_post"), mode="graph-copy")
        rec = migration_record_of(st, "g")
        assert (rec["phase"], rec["failed_in"]) == ("failed", "upgrading") and "postupgrade" in rec["error"]
        with pytest.raises(CanisterTrapError, match=BLOCKED_TRAP):
            call(st, "g", "digest")
        code, out, _ = gc(sqlite_url, "status", "g")
        assert "graph copy FAILED in upgrading" in out
        out_ = upgrade(st, "g", motoko("graph_v2"))  # auto: continues the migration, to the new target
        assert out_.resumed and out_.migration is not None and out_.migration["phase"] == "done"
        assert observe(st, "g") == before
        assert history_kinds(st, "g").count("upgrade") == 1


def test_a_crash_right_after_the_upgrade_commits_does_not_upgrade_twice(store: Store,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The upgrade step is one transaction, and the phase moves in the next one: a driver that dies
    in between is recognised by the canister's history, and the upgrade is not run again."""
    import migrate.graph_copy as driver

    fill(store, "g", 20_000, 500)
    before = observe(store, "g")
    real_move = driver.records.move

    def move(st: Store, name: str, phase: str, **kw: Any) -> dict[str, Any]:
        if phase == "upgraded" and kw.get("event") is None:
            raise Crash("after the upgrade committed")
        return real_move(st, name, phase, **kw)

    monkeypatch.setattr(driver.records, "move", move)
    with pytest.raises(Crash):
        upgrade(store, "g", motoko("graph_v2"), mode="graph-copy")
    monkeypatch.setattr(driver.records, "move", real_move)
    assert migration_record_of(store, "g")["phase"] == "upgrading"
    rec = upgrade(store, "g", None, resume=True).migration
    assert rec is not None and rec["phase"] == "done"
    assert "recovered" in [h.get("event") for h in rec["history"]]
    assert history_kinds(store, "g").count("upgrade") == 1
    assert observe(store, "g") == before


# --------------------------------------------------------------------------- kill -9 of the CLI


def gc(url: str, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--db", url, *args])
    return res.exit_code, res.stdout, res.stderr


def migration_record(engine: sa.Engine, name: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        text = conn.execute(sa.text("SELECT migration FROM canisters WHERE name = :n"), {"n": name}).scalar()
    return json.loads(text) if text else None


def test_kill_9_at_many_points_then_resume(sqlite_url: str, moc: None, tmp_path: Path) -> None:
    limits = Limits(performance_counter_scale=SCALE)
    with open_store(sqlite_url, limits=limits) as st:
        # a reference migration of the same data, uninterrupted, for the increment counts
        fill(st, "ref", 100_000, 5_000)
        ref = upgrade(st, "ref", motoko("graph_v2"), mode="graph-copy").migration
        assert ref is not None
        fill(st, "g", 100_000, 5_000)
        before = observe(st, "g")
    wasm = tmp_path / "graph_v2.wasm"
    wasm.write_bytes(motoko("graph_v2"))
    cmd = [sys.executable, "-m", "cli.main", "--db", sqlite_url, "upgrade", "g", str(wasm),
           "--mode", "graph-copy", "--performance-counter-scale", str(SCALE)]
    rng = random.Random(20261121)
    # When to kill: after so many increments observed in the database, when a phase is reached, or
    # after a random delay (startup, mid-increment, between transactions: anywhere).
    triggers: list[tuple[str, Any]] = [
        ("stabilize", 20), ("delay", rng.uniform(0.3, 1.5)), ("stabilize", 60), ("delay", rng.uniform(0.3, 1.5)),
        ("phase", "stabilized"), ("phase", "upgrading"), ("phase", "destabilizing"), ("destabilize", 4),
        ("delay", rng.uniform(1.0, 1.5)), ("destabilize", 12), ("destabilize", 20),
    ]
    engine = sa.create_engine(sqlite_url, poolclass=sa.NullPool)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GRAPHCOPY_PERFORMANCE_COUNTER_SCALE", None)
    killed_in: list[str] = []
    finished = False
    checked_blocked = False
    try:
        for kind, value in triggers:
            done_before = sum((migration_record(engine, "g") or {"increments": {}})["increments"].values())
            proc = subprocess.Popen(cmd + (["--resume"] if killed_in else []), cwd=ROOT, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            t0 = time.monotonic()
            while proc.poll() is None and time.monotonic() - t0 < 60:
                now = migration_record(engine, "g") or {"phase": None, "increments": {}}
                if kind == "delay":
                    # a random point (startup, inside an increment, between transactions), but never
                    # more than a few increments on: on a fast machine a delay must not carry the
                    # migration past the phases the later triggers are for
                    hit = time.monotonic() - t0 >= value or sum(now["increments"].values()) - done_before >= 3
                elif kind == "phase":  # reached (a quick phase may pass between two polls)
                    hit = now["phase"] in PHASES and PHASES.index(now["phase"]) >= PHASES.index(value)
                else:
                    hit = now["increments"].get(kind, 0) >= value
                if hit:
                    proc.kill()
                    break
                time.sleep(0.002)
            proc.wait()
            rec = migration_record(engine, "g")
            if proc.returncode == 0:
                finished = True
                break
            assert proc.returncode == -9, proc.stderr.read().decode() if proc.stderr else ""
            killed_in.append(f"{kind}={value}:{rec['phase'] if rec else None}")
            if rec is not None and rec["phase"] in ("stabilized", "upgrading", "upgraded") and not checked_blocked:
                # stabilized, the queue empty: the canister itself refuses (one line, with the remedy)
                code, _, err = gc(sqlite_url, "call", "g", "digest")
                assert code == 7 and BLOCKED_TRAP in err and "--resume" in err, err
                checked_blocked = True
        if not finished:
            res = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            assert res.returncode == 0, res.stderr
    finally:
        engine.dispose()
    print("killed in:", killed_in)
    assert len(killed_in) >= 8 and checked_blocked, killed_in
    phases = {k.rsplit(":", 1)[1] for k in killed_in}
    assert {"stabilizing", "destabilizing"} <= phases, killed_in
    with open_store(sqlite_url) as st:
        assert observe(st, "g") == before
        assert call(st, "g", "getRelease") == '("v2")'
        assert history_kinds(st, "g").count("upgrade") == 1
        again = upgrade(st, "g", motoko("graph_v2"), resume=True)
        assert not again.executed  # nothing left to do, nothing done twice
        final = migration_record_of(st, "g")
    assert final["phase"] == "done"
    resumes = [h.get("event") for h in final["history"]].count("resumed")
    assert resumes >= 1
    # Every committed increment is counted once: a resume re-enters the endpoint, which at most
    # adds one increment that finds the work done; nothing is repeated.
    for step in ("stabilize", "destabilize"):
        assert ref["increments"][step] <= final["increments"][step] <= ref["increments"][step] + len(killed_in)


def migration_record_of(store: Store, name: str) -> dict[str, Any]:
    from migrate.record import read

    rec = read(store, name)
    assert rec is not None
    return rec
