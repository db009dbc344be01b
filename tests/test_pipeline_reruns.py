"""Pipelines' wrong answers, fixed: a verify failure keeps both replies whole, a rerun retries what
an earlier run failed or rolled back, and patterns that match no canister are an error."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from tests.test_pipeline import COUNTER, write_pipeline

runner = CliRunner()


def gc(url: str, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--db", url, *args])
    return res.exit_code, res.stdout, res.stderr


def status(url: str, pipeline: Path) -> dict[str, dict[str, object]]:
    doc = json.loads(gc(url, "pipeline", "status", str(pipeline), "--json")[1])
    return {c["canister"]: c for c in doc["canisters"]}


def test_a_verify_failure_keeps_both_replies_whole(sqlite_url: str, tmp_path: Path) -> None:
    gc(sqlite_url, "install", "c-0", str(COUNTER))
    gc(sqlite_url, "call", "c-0", "add", "(4 : nat)")
    # counter_v2's stats() gains fields, so the reply differs after the upgrade
    pipeline = write_pipeline(tmp_path, verify='query = "stats"')
    code, out, err = gc(sqlite_url, "pipeline", "run", str(pipeline))
    assert code == 1
    error = str(status(sqlite_url, pipeline)["c-0"]["error"])
    assert "\n" not in error
    assert error.startswith("verify stats(): (record { count = 4 : nat; changes = 1 : nat;}) before the upgrade, "
                            "(record { ")
    assert "after (rolled back to snapshot 1)" in error and "upgrades = 1 : nat" in error
    assert error in out.replace("\n", "") or error.split(" (rolled back")[0] in out
    assert gc(sqlite_url, "call", "c-0", "get")[1] == "(4 : nat)\n"  # rolled back


HOOK = '''
from pathlib import Path


def ready(store, name):
    return (Path(__file__).parent / "ready").exists()
'''


def test_a_rerun_retries_rolled_back_canisters(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "gate.py").write_text(HOOK)
    for i in range(2):
        gc(sqlite_url, "install", f"c-{i}", str(COUNTER))
    pipeline = write_pipeline(tmp_path, extra_verify='[[verify]]\nhook = "gate:ready"')
    assert gc(sqlite_url, "pipeline", "run", str(pipeline))[0] == 1
    first = status(sqlite_url, pipeline)
    assert {n: (c["state"], c["attempts"]) for n, c in first.items()} == {"c-0": ("rolled-back", 1),
                                                                          "c-1": ("rolled-back", 1)}
    (tmp_path / "ready").write_text("")
    code, out, err = gc(sqlite_url, "pipeline", "run", str(pipeline))
    assert code == 0 and "2 canister(s): 2 done" in out, (out, err)
    assert err.count("retry") == 2 and "failed or rolled back in an earlier run" in err
    assert {n: (c["state"], c["attempts"]) for n, c in status(sqlite_url, pipeline).items()} == {
        "c-0": ("done", 2), "c-1": ("done", 2)}
    assert all(json.loads(gc(sqlite_url, "status", n, "--json")[1])["module_hash"] == c["module_hash"]
               for n, c in status(sqlite_url, pipeline).items())


def test_patterns_that_match_no_canister_are_an_error(sqlite_url: str, tmp_path: Path) -> None:
    gc(sqlite_url, "install", "other", str(COUNTER))
    pipeline = write_pipeline(tmp_path)  # canisters = ["c-*"]
    code, out, err = gc(sqlite_url, "pipeline", "run", str(pipeline))
    assert (code, out) == (2, "") and err == "error: pipeline p: no canister matches c-* (see `graphcopy list`)\n"
    code, out, _ = gc(sqlite_url, "pipeline", "run", str(pipeline), "--json")
    assert code == 2 and json.loads(out)["code"] == 2
