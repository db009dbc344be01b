"""Migration pipelines (``migrate.pipeline``) and their locks (``persist.store.locks``).

* 20 counters (one of them a Motoko module whose upgrade to the target is incompatible) with 4
  worker processes on PostgreSQL: the incompatible one is refused and left unchanged, the others are
  upgraded exactly once with verify passing; a rerun changes nothing; ``pipeline status``.
* a worker killed (``kill -9``) in the middle of a ``graphcopy pipeline run`` subprocess, while a
  concurrent command on its claimed canister gets "locked by host:pid (pipeline X)"; the rerun
  completes and the canister was still upgraded once.
* SQLite: 2 workers; a verify that fails rolls the canister back to its snapshot; ``on_failure = "stop"``.
* the lock check of the mutating entry points (stale claims and the owner's own store pass).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from migrate import upgrade
from migrate.pipeline import PipelineError, load_pipeline, pipeline_status, run_pipeline
from persist import api
from persist.api import snapshots
from persist.session import Store, open_store
from persist.store import db, schema
from persist.store.locks import CanisterLockedError
from tests.upgrade_helpers import call, history_kinds, motoko

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"
BAD = "c-07"  # installed with shapes_v1: its upgrade to counter_v2 would drop stable variables
runner = CliRunner()


def populate(store: Store, n: int, *, bad: bool = True) -> dict[str, str]:
    wasm = COUNTER.read_bytes()
    for i in range(n):
        name = f"c-{i:02d}"
        if bad and name == BAD:
            api.install(store, name, motoko("shapes_v1"))
            continue
        api.install(store, name, wasm)
        call(store, name, "add", f"({i + 1} : nat)")
    return {n: call(store, n, "get") for n in (f"c-{i:02d}" for i in range(n)) if not (bad and n == BAD)}


def write_pipeline(tmp: Path, *, name: str = "p", verify: str = 'query = "get"', on_failure: str = "rollback-continue",
                   extra_verify: str = "") -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(f'''
name = "{name}"
module = "{COUNTER_V2}"
canisters = ["c-*"]
mode = "auto"
steps = ["check", "snapshot", "upgrade", "verify"]
on_failure = "{on_failure}"

[[verify]]
{verify}
{extra_verify}
''')
    return path


def upgrades(store: Store, name: str) -> int:
    return history_kinds(store, name).count("upgrade")


def test_twenty_canisters_four_workers_postgresql(pg_url: str, tmp_path: Path, moc: None) -> None:
    with open_store(pg_url) as store:
        before = populate(store, 20)
        bad_module = api.status(store, BAD).module_hash
    pipeline = load_pipeline(write_pipeline(tmp_path))
    events: list[dict[str, object]] = []
    report = run_pipeline(pg_url, pipeline, workers=4, on_event=events.append)
    states = {c.canister: c for c in report.canisters}
    assert len(states) == 20 and not report.ok
    assert states[BAD].state == "failed" and "refused" in (states[BAD].error or "")
    assert all(c.state == "done" and c.attempts == 1 for n, c in states.items() if n != BAD)
    claimed = [e["canister"] for e in events if e["event"] == "claimed"]
    assert sorted(claimed) == sorted(states)  # each canister claimed exactly once
    assert len({e["owner"] for e in events}) > 1  # the work was shared
    with open_store(pg_url) as store:
        assert api.status(store, BAD).module_hash == bad_module and upgrades(store, BAD) == 0
        for name, reply in before.items():
            assert upgrades(store, name) == 1
            assert call(store, name, "get") == reply
            assert api.status(store, name).module_hash == pipeline.module_hash
    # A rerun touches nothing done, and tries the failed canister again (refused again); status agrees.
    retried: list[dict[str, object]] = []
    again = run_pipeline(pg_url, pipeline, workers=2, on_event=retried.append)
    assert {c.canister: (c.state, c.attempts) for c in again.canisters} == {
        n: (c.state, c.attempts + (n == BAD)) for n, c in states.items()}
    assert [e["canister"] for e in retried if e["event"] == "retry"] == [BAD]
    res = runner.invoke(app, ["--db", pg_url, "pipeline", "status", str(pipeline.path), "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 0 and doc["pipeline"] == pipeline.key
    assert {c["canister"]: c["state"] for c in doc["canisters"]}[BAD] == "failed"
    assert sum(c["at_target"] for c in doc["canisters"]) == 19


HOOK = '''
import time
from pathlib import Path


def wait(store, name):
    """Hold the first verify step of ``name`` while the file ``wait-NAME`` exists (a worker that takes the
    canister over later, from one that was killed in here, is not held)."""
    marker = Path(__file__).with_name("wait-" + name)
    held = Path(__file__).with_name("waiting-" + name)
    if marker.exists() and not held.exists():
        held.write_text("x")
        while marker.exists():
            time.sleep(0.05)
    return True
'''


def held_pipeline_run(url: str, tmp_path: Path, victim: str) -> tuple[subprocess.Popen[str], list[str], dict[str, str]]:
    """Six counters and ``graphcopy pipeline run --workers 2`` in its own process group, returned once the
    worker on ``victim`` is held in its verify hook (``tmp_path / f"wait-{victim}"`` releases it).
    Returns the process, its command and the canisters' replies before the run."""
    with open_store(url) as store:
        before = populate(store, 6, bad=False)
    (tmp_path / "hooks_wait.py").write_text(HOOK)
    (tmp_path / f"wait-{victim}").write_text("x")
    path = write_pipeline(tmp_path, extra_verify='\n[[verify]]\nhook = "hooks_wait:wait"')
    cmd = [sys.executable, "-m", "cli.main", "--db", url, "pipeline", "run", str(path), "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / f"waiting-{victim}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the worker never reached the hook (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.05)
    return proc, cmd, before


def end_process_group(proc: subprocess.Popen[str]) -> None:
    """Whatever a test left running of a pipeline run (the command, and workers a killed parent
    orphaned: they hold its output pipes) is killed, so a failing test cannot hang the suite."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.communicate(timeout=30)


def test_ctrl_c_stops_the_workers_between_messages(sqlite_url: str, tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the pipeline and all its workers: each finishes the step it is in,
    stops before its next message and exits quietly (no traceback); the command exits 130 and a rerun
    completes, every canister upgraded exactly once."""
    victim = "c-02"
    proc, cmd, before = held_pipeline_run(sqlite_url, tmp_path, victim)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal sends it: to the whole process group
        time.sleep(0.5)
        assert proc.poll() is None  # the worker in the hook finishes its step first
        (tmp_path / f"wait-{victim}").unlink()
        _, err = proc.communicate(timeout=120)
    finally:
        end_process_group(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "error: interrupted; committed messages stay committed, queued ones run with the next command")
    rerun = subprocess.run([*cmd[:-1], "1", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert all(c["state"] == "done" for c in json.loads(rerun.stdout)["canisters"])
    with open_store(sqlite_url) as store:
        for name, reply in before.items():
            assert upgrades(store, name) == 1, name
            assert call(store, name, "get") == reply


def _lock_row(url: str, canister: str) -> sa.Row[object] | None:
    with open_store(url) as store, db.read_transaction(store.engine) as conn:
        pl = schema.pipeline_locks
        return conn.execute(sa.select(pl).where(pl.c.canister == canister)).first()


def test_killed_worker_rerun_and_locked_by(pg_url: str, tmp_path: Path) -> None:
    victim = "c-03"
    proc, cmd, before = held_pipeline_run(pg_url, tmp_path, victim)
    path = Path(cmd[cmd.index("run") + 1])
    try:
        row = _lock_row(pg_url, victim)
        assert row is not None and row.state == "running"
        owner = str(row.owner)
        # Another command on the claimed canister: refused at once, one line.
        res = runner.invoke(app, ["--db", pg_url, "call", victim, "inc"])
        assert res.exit_code == 4
        assert f"locked by {owner} (pipeline {load_pipeline(path).key})" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1
        assert runner.invoke(app, ["--db", pg_url, "call", victim, "get"]).exit_code == 0  # queries pass
        status = runner.invoke(app, ["--db", pg_url, "pipeline", "status", str(path), "--json"])
        assert {c["canister"]: c["state"] for c in json.loads(status.stdout)["canisters"]}[victim] == "running"
        os.kill(int(owner.rpartition(":")[2]), signal.SIGKILL)  # while it holds the claim, in the hook
        proc.communicate(timeout=60)
    finally:
        end_process_group(proc)
    rerun = subprocess.run([*cmd[:-1], "1", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    doc = json.loads(rerun.stdout)
    states = {c["canister"]: c for c in doc["canisters"]}
    assert all(c["state"] == "done" for c in states.values())
    assert states[victim]["attempts"] == 2
    with open_store(pg_url) as store:
        for name, reply in before.items():
            assert upgrades(store, name) == 1, name
            assert call(store, name, "get") == reply
        assert call(store, victim, "inc") != ""  # unlocked now


def test_sqlite_two_workers_rollback_and_stop(sqlite_url: str, tmp_path: Path, moc: None) -> None:
    with open_store(sqlite_url) as store:
        before = populate(store, 9)
        v1 = api.status(store, "c-00").module_hash
    # stats gains two fields in v2: the verify fails and every counter is rolled back.
    bad_verify = load_pipeline(write_pipeline(tmp_path, name="stats", verify='query = "stats"'))
    report = run_pipeline(sqlite_url, bad_verify, workers=1)
    states = {c.canister: c.state for c in report.canisters}
    assert states.pop(BAD) == "failed" and set(states.values()) == {"rolled-back"}
    with open_store(sqlite_url) as store:
        assert api.status(store, "c-00").module_hash == v1
        assert history_kinds(store, "c-00")[-2:] == ["upgrade", "snapshot-load"]
    # on_failure = "stop": the first failure (c-07, refused) stops the rest.
    stop = load_pipeline(write_pipeline(tmp_path, name="stop", on_failure="stop"))
    report = run_pipeline(sqlite_url, stop, workers=1)
    assert report.stopped and [c.canister for c in report.canisters if c.state == "failed"] == [BAD]
    assert {c.state for c in report.canisters if c.canister > BAD} == {"pending"}
    # The real one, with 2 workers and the CLI.
    good = write_pipeline(tmp_path, name="good")
    res = runner.invoke(app, ["--db", sqlite_url, "pipeline", "run", str(good), "--workers", "2"])
    assert res.exit_code == 1  # c-07 failed
    assert f"{BAD}: failed: upgrade of '{BAD}' refused" in res.stdout
    with open_store(sqlite_url) as store:
        states2 = {c.canister: c.state for c in pipeline_status(store, load_pipeline(good))}
        assert states2.pop(BAD) == "failed" and set(states2.values()) == {"done"}
        for name, reply in before.items():
            assert call(store, name, "get") == reply and api.status(store, name).module_hash != v1


def test_lock_check_of_mutating_entry_points(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        api.install(store, "c", COUNTER.read_bytes())
        snap = snapshots.take_snapshot(store, "c")

        def claim(owner: str, heartbeat_ns: int) -> None:
            with db.transaction(store.engine) as conn:
                pl = schema.pipeline_locks
                conn.execute(pl.delete())
                conn.execute(pl.insert().values(pipeline="x@1", canister="c", state="running", owner=owner,
                                                heartbeat_ns=heartbeat_ns, attempts=1, updated_at_ns=0))

        claim("elsewhere:1", time.time_ns())
        attempts = [
            lambda: call(store, "c", "inc"),
            lambda: api.install(store, "c", COUNTER.read_bytes(), mode="reinstall"),
            lambda: upgrade(store, "c", COUNTER_V2.read_bytes()),
            lambda: snapshots.load_snapshot(store, "c", snap.id),
            lambda: snapshots.take_snapshot(store, "c"),
            lambda: snapshots.delete_snapshot(store, "c", snap.id),
            lambda: api.stop(store, "c"),
            lambda: api.start(store, "c"),
            lambda: api.delete(store, "c"),
        ]
        for attempt in attempts:
            with pytest.raises(CanisterLockedError, match=r"locked by elsewhere:1 \(pipeline x@1\)"):
                attempt()
        assert call(store, "c", "get") == "(0 : nat)"  # queries are not refused
        assert [x.id for x in snapshots.list_snapshots(store, "c")] == [snap.id]  # nor reading snapshots
        assert api.status(store, "c").status == "running"
        store.lock_owner = "elsewhere:1"  # the claim's own worker passes
        assert call(store, "c", "inc") == "(1 : nat)"
        store.lock_owner = None
        claim("elsewhere:1", time.time_ns() - 120 * 10**9)  # stale heartbeat: no longer a lock
        assert call(store, "c", "inc") == "(2 : nat)"
        claim("elsewhere:99999999", time.time_ns())  # another host's process: its heartbeat decides
        with pytest.raises(CanisterLockedError):
            call(store, "c", "inc")


def test_invalid_pipeline_files(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    for text, match in [
        ("module = 1", "module"),
        (f'module = "{COUNTER_V2}"', "canisters"),
        (f'module = "{COUNTER_V2}"\ncanisters = ["a"]\nsteps = ["bogus"]', "steps"),
        (f'module = "{COUNTER_V2}"\ncanisters = ["a"]\non_failure = "retry"', "on_failure"),
        (f'module = "{COUNTER_V2}"\ncanisters = ["a"]\n[[verify]]\nhook = "nocolon"', "module:function"),
        ("module = [", "TOML"),
    ]:
        p.write_text(text)
        with pytest.raises(PipelineError, match=match):
            load_pipeline(p)
