"""Safety through the CLI: reinstall and delete snapshot first and ask on a terminal; an interrupted
or killed graph copy names the real command that finishes it; a drained or resumed migration keeps
its own performance-counter scale."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from persist.host.limits import Limits
from persist.session import open_store
from tests.upgrade_helpers import call, install, motoko

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
COUNTER = str(EXAMPLES / "counter" / "counter.wasm")
SCALE = 100_000.0
runner = CliRunner()


def gc(url: str, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--db", url, *args])
    return res.exit_code, res.stdout, res.stderr


def env_for(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_")}
    return {**env, "GRAPHCOPY_DATABASE_URL": url, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def on_terminal(url: str, args: list[str], answer: str | None) -> tuple[int, str]:
    """Run graphcopy with a pseudo-terminal as stdin/stdout/stderr; type ``answer`` at the prompt."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", *args], stdin=slave, stdout=slave, stderr=slave,
                            cwd=ROOT, env=env_for(url), close_fds=True)
    os.close(slave)
    seen = b""
    answered = False
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if answer is not None and not answered and b"[y/N]" in seen:
            os.write(master, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    code = proc.wait(timeout=30)
    os.close(master)
    return code, seen.decode("utf-8", "replace")


def state(url: str, name: str) -> dict[str, Any]:
    doc = json.loads(gc(url, "status", name, "--json")[1])
    return {k: doc[k] for k in ("module_hash", "version", "status", "stored_heap_pages")}


def test_reinstall_takes_a_snapshot_and_asks_first(sqlite_url: str) -> None:
    gc(sqlite_url, "install", "counter", COUNTER)
    gc(sqlite_url, "call", "counter", "add", "(9 : nat)")
    before = state(sqlite_url, "counter")
    code, out, err = gc(sqlite_url, "install", "counter", COUNTER, "--mode", "reinstall")
    assert (code, out) == (2, "") and "confirm" in err and "--yes" in err and err.count("\n") == 1
    assert state(sqlite_url, "counter") == before  # refused: nothing changed
    code, out = on_terminal(sqlite_url, ["install", "counter", COUNTER, "--mode", "reinstall"], "n")
    assert code == 1 and "Reinstall canister counter?" in out and "cancelled; nothing was changed" in out
    assert state(sqlite_url, "counter") == before
    code, out = on_terminal(sqlite_url, ["install", "counter", COUNTER, "--mode", "reinstall"], "y")
    assert code == 0 and "reinstalled" in out and "snapshot 1 of the old state taken first" in out, out
    assert gc(sqlite_url, "call", "counter", "get")[1] == "(0 : nat)\n"
    code, out, _ = gc(sqlite_url, "rollback", "counter")
    assert code == 0 and "rolled back to snapshot 1" in out
    assert gc(sqlite_url, "call", "counter", "get")[1] == "(9 : nat)\n"
    code, out, _ = gc(sqlite_url, "install", "counter", COUNTER, "-m", "reinstall", "-y", "--no-snapshot", "--json")
    assert code == 0 and json.loads(out)["snapshot_id"] is None
    assert json.loads(gc(sqlite_url, "snapshot", "list", "counter", "--json")[1])[-1]["id"] == 1


def test_delete_keeps_a_snapshot_that_brings_the_canister_back(sqlite_url: str) -> None:
    gc(sqlite_url, "install", "counter", COUNTER)
    gc(sqlite_url, "call", "counter", "add", "(5 : nat)")
    principal = json.loads(gc(sqlite_url, "status", "counter", "--json")[1])["principal"]
    gc(sqlite_url, "stop", "counter")
    code, out = on_terminal(sqlite_url, ["delete", "counter"], "n")
    assert code == 1 and "Delete canister counter" in out and "snapshot load" in out
    assert gc(sqlite_url, "status", "counter")[0] == 0
    code, out, _ = gc(sqlite_url, "delete", "counter", "--yes", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["status"] == "deleted" and doc["snapshot_id"] == 1 and doc["principal"] == principal
    assert gc(sqlite_url, "status", "counter")[0] == 2
    assert json.loads(gc(sqlite_url, "list", "--json")[1]) == []
    assert gc(sqlite_url, "call", principal, "get")[0] == 2  # not found by principal either
    listed = json.loads(gc(sqlite_url, "snapshot", "list", "counter", "--json")[1])
    assert [(s["id"], s["purpose"], s["deleted_principal"]) for s in listed] == [(1, "delete", principal)]
    code, out, _ = gc(sqlite_url, "snapshot", "load", "counter", "1")
    assert code == 0 and "loaded snapshot 1" in out
    doc = json.loads(gc(sqlite_url, "status", "counter", "--json")[1])
    assert doc["principal"] == principal and doc["status"] == "stopped"
    gc(sqlite_url, "start", "counter")
    assert gc(sqlite_url, "call", "counter", "get")[1] == "(5 : nat)\n"

    # deleted again, and the name taken by a new canister: the old one cannot come back over it
    gc(sqlite_url, "stop", "counter")
    kept = json.loads(gc(sqlite_url, "delete", "counter", "-y", "--json")[1])["snapshot_id"]
    gc(sqlite_url, "install", "counter", COUNTER)
    code, _, err = gc(sqlite_url, "snapshot", "load", "counter", str(kept))
    assert code == 2 and "belongs to the deleted canister" in err
    assert gc(sqlite_url, "snapshot", "delete", "counter", str(kept))[0] == 0  # forgotten for good
    assert json.loads(gc(sqlite_url, "snapshot", "list", "counter", "--json")[1]) == []
    with sa.create_engine(sqlite_url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM canisters")).scalar() == 1
    gc(sqlite_url, "stop", "counter")
    code, out, _ = gc(sqlite_url, "delete", "counter", "-y", "--no-snapshot")
    assert (code, out) == (0, "counter: deleted\n")
    assert gc(sqlite_url, "snapshot", "list", "counter")[0] == 2


def fill_graph(url: str) -> dict[str, str]:
    with open_store(url, limits=Limits(performance_counter_scale=SCALE)) as st:
        install(st, "g", motoko("graph_v1"))
        call(st, "g", "fill", "(60000 : nat, 4000 : nat)")
        return {"digest": call(st, "g", "digest"), "sizes": call(st, "g", "sizes")}


def migration(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        text = conn.execute(sa.text("SELECT migration FROM canisters WHERE name = 'g'")).scalar()
    engine.dispose()
    return json.loads(text) if text else {}


def start_upgrade(url: str, wasm: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "upgrade", "g", str(wasm), "--mode", "graph-copy",
         "--performance-counter-scale", str(SCALE)], cwd=ROOT, env=env_for(url), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def wait_for_increments(proc: subprocess.Popen[str], url: str, n: int) -> None:
    t0 = time.monotonic()
    while migration(url).get("increments", {}).get("stabilize", 0) < n:
        assert proc.poll() is None and time.monotonic() - t0 < 120, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.01)


def test_ctrl_c_during_a_graph_copy_names_the_command_that_finishes_it(sqlite_url: str, moc: None,
                                                                        tmp_path: Path) -> None:
    before = fill_graph(sqlite_url)
    wasm = tmp_path / "graph_v2.wasm"
    wasm.write_bytes(motoko("graph_v2"))
    proc = start_upgrade(sqlite_url, wasm)
    wait_for_increments(proc, sqlite_url, 5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert last == ("error: interrupted; the graph-copy migration of g stopped after its last committed increment: "
                    "finish it with `graphcopy upgrade g --resume`")
    assert migration(sqlite_url)["phase"] == "stabilizing"
    code, out, _ = gc(sqlite_url, "status", "g")
    assert code == 0 and "finish it with `graphcopy upgrade g --resume`" in out and "NAME" not in out
    code, out, err = gc(sqlite_url, "upgrade", "g", "--resume")
    assert code == 0 and "upgraded by graph copy (resumed)" in out, err
    with open_store(sqlite_url) as st:
        assert {"digest": call(st, "g", "digest"), "sizes": call(st, "g", "sizes")} == before


def test_a_drained_migration_keeps_its_own_scale(sqlite_url: str, moc: None, tmp_path: Path) -> None:
    """kill -9 mid-stabilization, then a plain command (``tick``: no scale given, none in the environment)
    drains the queued increments: they run with the migration's scale, so there are as many small
    increments as an uninterrupted run takes, not a couple of IC-sized ones."""
    fill_graph(sqlite_url)
    wasm = tmp_path / "graph_v2.wasm"
    wasm.write_bytes(motoko("graph_v2"))
    proc = start_upgrade(sqlite_url, wasm)
    wait_for_increments(proc, sqlite_url, 5)
    proc.kill()
    proc.wait()
    killed_at = migration(sqlite_url)["increments"]["stabilize"]
    assert migration(sqlite_url)["performance_counter_scale"] == SCALE
    code, _, err = gc(sqlite_url, "tick")  # drains the queue: the whole stabilization (a query runs nothing queued)
    assert code == 0, err
    code, _, err = gc(sqlite_url, "call", "g", "digest")
    assert code == 7 and "`graphcopy upgrade g --resume`" in err
    rec = migration(sqlite_url)
    assert rec["increments"]["stabilize"] >= killed_at + 50, rec["increments"]  # still small increments
    code, out, _ = gc(sqlite_url, "upgrade", "g", "--resume", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["migration"]["phase"] == "done" and doc["migration"]["increments"]["destabilize"] > 10
    assert doc["migration"]["performance_counter_scale"] == SCALE


@pytest.mark.parametrize("given", [None, 1.0])
def test_a_resumed_migration_keeps_its_scale_unless_given_another(sqlite_url: str, moc: None,
                                                                  given: float | None) -> None:
    from migrate import stabilize, upgrade
    from migrate.record import read

    fill_graph(sqlite_url)
    with open_store(sqlite_url, limits=Limits(performance_counter_scale=SCALE)) as st:
        def stop_early(rec: dict[str, Any]) -> None:
            if rec["increments"]["stabilize"] >= 3:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            stabilize(st, "g", on_progress=stop_early)
    with open_store(sqlite_url) as st:  # the store's own scale is 1 now
        upgrade(st, "g", motoko("graph_v2"), performance_counter_scale=given)
        rec = read(st, "g")
    assert rec is not None and rec["performance_counter_scale"] == (SCALE if given is None else given)
    if given is None:
        assert rec["increments"]["destabilize"] > 10  # destabilized in small increments too
