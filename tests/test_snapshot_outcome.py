"""A snapshot taken before an upgrade records whether its upgrade committed (revision
``0007_snapshot_outcome``), in the upgrade's own commit transaction; ``rollback`` goes back only to
snapshots whose change committed. kill -9 between the pre-upgrade snapshot and the upgrade (the
process kills itself the moment the snapshot's transaction has returned) leaves a ``pending``
snapshot that rollback passes over and says so.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from migrate import upgrade
from persist import api
from persist.api import snapshots
from persist.errors import NothingToRollBackError
from persist.host.module import parse_module
from persist.session import open_store
from tests.upgrade_helpers import call

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"
V1 = parse_module(COUNTER.read_bytes()).hash
V2 = parse_module(COUNTER_V2.read_bytes()).hash
runner = CliRunner()

# Upgrade, and kill -9 this process right after the pre-upgrade snapshot has been taken.
KILLED_AFTER_SNAPSHOT = r'''
import json, os, signal, sys
from pathlib import Path
from migrate import upgrade
from persist.api import snapshots
from persist.session import open_store

url, name, wasm, mode = sys.argv[1], sys.argv[2], Path(sys.argv[3]).read_bytes(), sys.argv[4]
real_take = snapshots.take_snapshot

def take_then_die(*args, **kwargs):
    info = real_take(*args, **kwargs)
    print(json.dumps({"snapshot": info.id}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

snapshots.take_snapshot = take_then_die
store = open_store(url)
upgrade(store, name, wasm, mode=mode)
print("not killed", flush=True)
'''


def killed_upgrade(url: str, name: str, wasm: Path, mode: str) -> int:
    """Run an upgrade in a real process killed by SIGKILL after its snapshot; the snapshot's id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_")}
    env["PYTHONPATH"] = str(ROOT)
    res = subprocess.run([sys.executable, "-c", KILLED_AFTER_SNAPSHOT, url, name, str(wasm), mode],
                         capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert res.returncode == -signal.SIGKILL, (res.returncode, res.stdout, res.stderr)
    return int(json.loads(res.stdout.splitlines()[0])["snapshot"])


def outcomes(store: object, name: str) -> dict[int, str | None]:
    return {s.id: s.outcome for s in snapshots.list_snapshots(store, name)}  # type: ignore[arg-type]


def test_upgrades_and_reinstalls_mark_their_snapshot_committed(db_url: str) -> None:
    with open_store(db_url) as st:
        api.install(st, "c", COUNTER.read_bytes())
        manual = snapshots.take_snapshot(st, "c").id
        keep = upgrade(st, "c", COUNTER_V2.read_bytes(), mode="keep").snapshot_id
        reinstall = api.install(st, "c", COUNTER_V2.read_bytes(), mode="reinstall").snapshot_id
        st.limits.performance_counter_scale = 1000.0
        gc = upgrade(st, "c", COUNTER_V2.read_bytes(), mode="graph-copy").snapshot_id
        assert outcomes(st, "c") == {manual: None, keep: "committed", reinstall: "committed", gc: "committed"}


@pytest.mark.parametrize("mode", ["keep", "graph-copy"])
def test_kill_between_snapshot_and_upgrade_leaves_nothing_for_rollback(db_url: str, mode: str) -> None:
    with open_store(db_url) as st:
        api.install(st, "c", COUNTER.read_bytes())
        call(st, "c", "add", "(41 : nat)")
    snap = killed_upgrade(db_url, "c", COUNTER_V2, mode)
    with open_store(db_url) as st:
        assert api.status(st, "c").module_hash == V1 and call(st, "c", "get") == "(41 : nat)"
        assert outcomes(st, "c") == {snap: "pending"}
        with pytest.raises(NothingToRollBackError, match=rf"snapshot {snap} of canister c was taken before an "
                                                         "upgrade that never committed"):
            snapshots.rollback(st, "c")
        assert api.status(st, "c").module_hash == V1  # nothing was loaded
    res = runner.invoke(app, ["--db", db_url, "rollback", "c"])
    assert res.exit_code == 6 and "never committed" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    # The upgrade run again works, and its own snapshot is the one rollback then restores.
    with open_store(db_url) as st:
        out = upgrade(st, "c", COUNTER_V2.read_bytes(), mode=mode)
        assert out.executed and api.status(st, "c").module_hash == V2
        info = snapshots.rollback(st, "c")
        assert info.id == out.snapshot_id and info.skipped == [] and api.status(st, "c").module_hash == V1
        assert call(st, "c", "get") == "(41 : nat)"


def test_rollback_passes_over_a_killed_upgrade_to_the_last_one_that_happened(db_url: str) -> None:
    with open_store(db_url) as st:
        api.install(st, "c", COUNTER.read_bytes())
        call(st, "c", "add", "(7 : nat)")
        first = upgrade(st, "c", COUNTER_V2.read_bytes(), mode="keep").snapshot_id  # v1 -> v2, committed
    # v2 -> v2 by graph copy, killed after its snapshot: the canister still runs v2 as it was.
    killed = killed_upgrade(db_url, "c", COUNTER_V2, "graph-copy")
    with open_store(db_url) as st:
        assert outcomes(st, "c") == {first: "committed", killed: "pending"}
        assert api.status(st, "c").module_hash == V2 and api.status(st, "c").migration in (None, {})
    res = runner.invoke(app, ["--db", db_url, "rollback", "c"])
    assert res.exit_code == 0, res.output
    assert f"rolled back to snapshot {first}" in res.stdout
    assert f"passed over snapshot {killed}: taken before an upgrade that never committed" in res.stderr
    with open_store(db_url) as st:
        assert api.status(st, "c").module_hash == V1 and call(st, "c", "get") == "(7 : nat)"


def test_the_revision_judges_older_snapshots_by_what_followed_them(sqlite_url: str) -> None:
    from alembic import command
    from alembic.config import Config

    import migrations
    from persist.store import db

    with open_store(sqlite_url) as st:
        api.install(st, "done", COUNTER.read_bytes())
        done = upgrade(st, "done", COUNTER_V2.read_bytes(), mode="keep").snapshot_id  # the canister changed after
        api.install(st, "killed", COUNTER.read_bytes())
        killed = snapshots.take_snapshot(st, "killed", purpose=snapshots.UPGRADE_PURPOSE).id  # nothing after it
        manual = snapshots.take_snapshot(st, "killed").id
    # Back to the schema before the revision (the column goes), then forward again.
    engine = db.create_engine_for(sqlite_url)
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(Path(migrations.__file__).resolve().parent))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0006_store_owner")
        assert db.current_revision(engine) == "0006_store_owner"
    finally:
        engine.dispose()
    with open_store(sqlite_url) as st:
        assert outcomes(st, "done") == {done: "committed"}
        assert outcomes(st, "killed") == {killed: "pending", manual: None}
