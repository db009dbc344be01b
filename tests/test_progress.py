"""Progress that tells how long: graph-copy phases with a percentage and an ETA (on a terminal and in
a log), estimated from the heap and refined from the increments; pipelines per canister."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from cli.main import app
from migrate.record import ESTIMATE_CEILING, phase_progress
from tests.test_cli_safety import fill_graph, on_terminal
from tests.upgrade_helpers import motoko

runner = CliRunner()
SCALE = 100_000.0


def test_phase_progress_estimates_and_never_claims_to_be_done_early() -> None:
    rec = {"phase": "stabilizing", "estimated_image_bytes": 1000, "stable_io": {"stabilize": {"read": 250}}}
    pp = phase_progress(rec)
    assert pp is not None and (pp.done, pp.total, pp.fraction) == (250, 1000, 0.25)
    rec["stable_io"]["stabilize"]["read"] = 2000  # the estimate was low: raised, short of 100%
    pp = phase_progress(rec)
    assert pp is not None and pp.total > 2000 and ESTIMATE_CEILING - 0.01 < pp.fraction <= ESTIMATE_CEILING
    rec = {"phase": "destabilizing", "stable_written_bytes": 1000, "stable_io": {"destabilize": {"read": 675}}}
    pp = phase_progress(rec)
    assert pp is not None and pp.fraction == 0.5  # the image is read about 1.35 times over
    assert phase_progress({"phase": "upgrading"}) is None and phase_progress({"phase": "done"}) is None


def test_graph_copy_progress_in_a_log_and_on_a_terminal(sqlite_url: str, tmp_path: Path, moc: None) -> None:
    fill_graph(sqlite_url)
    wasm = tmp_path / "graph_v2.wasm"
    wasm.write_bytes(motoko("graph_v2"))
    res = runner.invoke(app, ["--db", sqlite_url, "stabilize-before-upgrade", "g", "--performance-counter-scale",
                              str(SCALE)])
    assert res.exit_code == 0, res.stderr
    # stderr is not a terminal: a line per tenth of the phase, with the estimate and the time left
    tenths = re.findall(r"^g: stabilizing (\d+)% \(([\d.]+) of ~([\d.]+) MiB, about (\d+) (s|min) left\)$",
                        res.stderr, re.M)
    assert tenths and [int(t[0]) for t in tenths] == sorted({int(t[0]) for t in tenths}), res.stderr
    assert "g: stabilized" in res.stderr
    # on a terminal: rich's bar with a percentage and an ETA, for the upgrade and destabilization
    code, out = on_terminal(sqlite_url, ["upgrade", "g", str(wasm), "--mode", "graph-copy"], None)
    assert code == 0 and "upgraded by graph copy" in out, out
    assert re.search(r"g: destabilizing \(~[\d.]+ MiB\)", out) and re.search(r"\b\d{1,3}%", out) and "ETA" in out


def test_pipeline_progress_per_canister(sqlite_url: str, tmp_path: Path) -> None:
    from tests.test_pipeline import COUNTER, write_pipeline

    for i in range(3):
        assert runner.invoke(app, ["--db", sqlite_url, "install", f"c-{i}", str(COUNTER)]).exit_code == 0
    pipeline = write_pipeline(tmp_path)
    res = runner.invoke(app, ["--db", sqlite_url, "pipeline", "run", str(pipeline)])
    assert res.exit_code == 0, res.stderr
    finished = re.findall(r"^\S+: (\d)/3 canister\(s\) finished$", res.stderr, re.M)
    assert finished == ["1", "2", "3"]
    code, out = on_terminal(sqlite_url, ["pipeline", "run", str(pipeline)], None)  # rerun: nothing left to do
    assert code == 0 and "3 canister(s): 3 done" in out
