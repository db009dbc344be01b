"""A pipeline checks what its file names before it touches any canister (``migrate.pipeline_checks``):
the target module, the verify hooks (they import), the verify queries (query methods of the target
module, with arguments that parse). Each mistake is one line, exit 2, and every canister is as it was:
no claim, no snapshot, no upgrade, no import."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from cli.main import app
from migrate.pipeline import PipelineError, load_pipeline, run_pipeline
from persist import api
from persist.api import snapshots
from persist.session import Store, open_store
from persist.store import db, schema

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"
runner = CliRunner()


def pipeline_file(tmp: Path, verify: str, module: Path = COUNTER_V2) -> Path:
    path = tmp / "p.toml"
    path.write_text(f'name = "p"\nmodule = "{module}"\ncanisters = ["c*"]\n'
                    f'steps = ["check", "snapshot", "upgrade", "verify"]\n\n[[verify]]\n{verify}\n')
    return path


def untouched(store: Store, v1: str) -> None:
    for name in ("c1", "c2"):
        assert api.status(store, name).module_hash == v1
        assert snapshots.list_snapshots(store, name) == []
    with db.read_transaction(store.engine) as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.pipeline_locks)).scalar() == 0


CASES = [
    ('hook = "no_such_checks:balances_ok"', r"verify hook 'no_such_checks:balances_ok': no module named "
                                           r"'no_such_checks'"),
    ('hook = "broken_checks:ok"', r"verify hook 'broken_checks:ok': importing broken_checks failed: "
                                  r"ZeroDivisionError: division by zero"),
    ('hook = "good_checks:missing"', r"verify hook 'good_checks:missing': good_checks has no function missing"),
    ('query = "nope"', r"verify query 'nope' is not a query method of the target module counter_v2.wasm "
                       r"\(its queries: get, stats\)"),
    ('query = "inc"', r"verify query 'inc' is an update method of the target module, not a query"),
    ('query = "get"\nargs = "(1 : nat"', r"verify query get\(1 : nat: the arguments do not parse"),
]


@pytest.mark.parametrize(("verify", "message"), CASES)
def test_mistakes_are_found_before_any_canister_is_touched(sqlite_url: str, tmp_path: Path, verify: str,
                                                            message: str) -> None:
    (tmp_path / "broken_checks.py").write_text("x = 1 / 0\n")
    (tmp_path / "good_checks.py").write_text("def ok(store, name):\n    return True\n")
    with open_store(sqlite_url) as st:
        for name in ("c1", "c2"):
            api.install(st, name, COUNTER.read_bytes())
        v1 = api.status(st, "c1").module_hash
        assert v1 is not None
        path = pipeline_file(tmp_path, verify)
        with pytest.raises(PipelineError, match=message):
            run_pipeline(st, load_pipeline(path))
        untouched(st, v1)
    res = runner.invoke(app, ["--db", sqlite_url, "pipeline", "run", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: p.toml: verify"), res.output
    with open_store(sqlite_url) as st:
        untouched(st, v1)


def test_a_target_module_that_is_not_a_canister_module_is_found_first(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    with open_store(sqlite_url) as st:
        for name in ("c1", "c2"):
            api.install(st, name, COUNTER.read_bytes())
        v1 = api.status(st, "c1").module_hash
        assert v1 is not None
        with pytest.raises(PipelineError, match=r"p.toml: module .*bad.wasm: "):
            run_pipeline(st, load_pipeline(pipeline_file(tmp_path, 'query = "get"', module=bad)))
        untouched(st, v1)


def test_a_good_pipeline_passes_its_checks_and_runs(sqlite_url: str, tmp_path: Path) -> None:
    (tmp_path / "good_checks.py").write_text("def ok(store, name):\n    return True\n")
    with open_store(sqlite_url) as st:
        for name in ("c1", "c2"):
            api.install(st, name, COUNTER.read_bytes())
        path = pipeline_file(tmp_path, 'query = "get"\n\n[[verify]]\nhook = "good_checks:ok"')
        report = run_pipeline(st, load_pipeline(path))
        assert report.ok and report.counts == {"done": 2}
