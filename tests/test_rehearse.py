"""Rehearsals on downloaded snapshots (``migrate.rehearse``, ``graphcopy rehearse``) and pipelines
that import snapshot directories (the ``import`` and ``export`` steps).

* a rehearsal that keeps the heap (counter -> counter_v2): queries compared, the budget against
  the IC's install_code limit, the migrated state exported and importable;
* one that graph-copies (a real moc object graph) at the IC's budgets, with the increments counted;
* one the planner refuses (nothing upgraded, nothing exported, exit 1), one whose upgrade traps;
* a rehearsal killed during its graph copy continues from the kept store;
* the report says that loading an uploaded snapshot on the IC runs no hooks and no check;
* a pipeline imports a fleet of snapshot directories, migrates and exports them, and a rerun does
  not import them again; a bad directory fails alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from migrate.pipeline import PipelineError, load_pipeline, pipeline_status, run_pipeline
from migrate.rehearse import LOAD_NOTE, rehearse
from migrate.verify import VerifyError, VerifyQuery, parse_verify
from persist import api
from persist.api.snapshot_transfer import export_snapshot, import_snapshot
from persist.session import Store, open_store
from tests.upgrade_helpers import call, motoko

ROOT = Path(__file__).resolve().parent.parent
COUNTER = (ROOT / "examples" / "counter" / "counter.wasm").read_bytes()
COUNTER_V2_PATH = ROOT / "examples" / "counter" / "counter_v2.wasm"
COUNTER_V2 = COUNTER_V2_PATH.read_bytes()
runner = CliRunner()


def counter_snapshot(store: Store, directory: Path, value: int, wasm: bytes = COUNTER, name: str = "c") -> Path:
    """A snapshot directory of a counter holding ``value`` (as `dfx canister snapshot download` would)."""
    api.install(store, name, wasm)
    call(store, name, "add", f"({value} : nat)")
    export_snapshot(store, name, directory)
    return directory


def test_parse_verify() -> None:
    assert parse_verify("get") == VerifyQuery("get", "()")
    assert parse_verify(" balance(7 : nat) ") == VerifyQuery("balance", "(7 : nat)")
    with pytest.raises(VerifyError, match="must be METHOD or METHOD"):
        parse_verify("(7)")


def test_rehearsal_that_keeps_the_heap(sstore: Store, tmp_path: Path) -> None:
    snap = counter_snapshot(sstore, tmp_path / "prod", 41)
    rep = rehearse(snap, COUNTER_V2, out=tmp_path / "migrated", verify=[VerifyQuery("get"), VerifyQuery("stats")])
    assert rep.plan.path == "keep" and rep.outcome is not None and rep.outcome.executed
    assert [(v.query, v.equal) for v in rep.verify] == [("get()", True), ("stats()", False)]  # stats gains fields
    assert rep.verify[0].before == rep.verify[0].after == "(41 : nat)"
    assert not rep.ok  # a reply changed
    budget = rep.budget
    assert budget["fits_one_message"] is True and 0 < budget["instructions"] < budget["install_code_limit"]
    assert budget["install_code_limit"] == 300_000_000_000
    assert LOAD_NOTE in rep.notes and "runs no canister code" in rep.format_text()
    assert rep.exported is not None and (tmp_path / "migrated" / "metadata.json").is_file()
    with open_store(f"sqlite:///{tmp_path / 'check.db'}") as other:  # what would be uploaded
        import_snapshot(other, "c", tmp_path / "migrated")
        assert call(other, "c", "get") == "(41 : nat)" and "upgrades = 1" in call(other, "c", "stats")
    doc = rep.to_dict()
    assert doc["plan"]["path"] == "keep" and doc["upgrade"]["path"] == "keep" and doc["imported"]["name"] == "prod"


def test_rehearsal_that_graph_copies_at_the_ics_budgets(sstore: Store, tmp_path: Path, moc: None) -> None:
    api.install(sstore, "g", motoko("graph_v1"))
    call(sstore, "g", "fill", "(20_000 : nat, 2_000 : nat)")
    export_snapshot(sstore, "g", tmp_path / "prod")
    rep = rehearse(tmp_path / "prod", motoko("graph_v2"), mode="graph-copy", out=tmp_path / "migrated",
                   verify=[parse_verify("digest"), parse_verify("sizes"), parse_verify("sample(7 : nat)")])
    assert rep.ok and rep.plan.path == "graph-copy"
    assert rep.outcome is not None and rep.outcome.migration is not None
    assert rep.outcome.migration["phase"] == "done"
    b = rep.budget
    assert b["performance_counter_scale"] == 1.0 and b["stabilize_instructions"] > 0
    assert b["stabilize_increments"] >= 1 and b["fits_one_message"] is True and b["upgrade_step_fits"] is True
    assert b["instructions"] == b["stabilize_instructions"] + b["upgrade_instructions"] + b["destabilize_instructions"]
    assert any("graph copy at the IC's budgets" in line for line in b["lines"])
    with open_store(f"sqlite:///{tmp_path / 'check.db'}") as other:
        import_snapshot(other, "g", tmp_path / "migrated")
        assert call(other, "g", "getRelease") == '("v2")'
        assert call(other, "g", "digest") == rep.verify[0].before


def test_refused_rehearsal_changes_and_exports_nothing(sqlite_url: str, tmp_path: Path) -> None:
    with open_store(sqlite_url) as st:
        counter_snapshot(st, tmp_path / "prod", 5, wasm=COUNTER_V2)
    out = tmp_path / "migrated"
    res = runner.invoke(app, ["rehearse", str(tmp_path / "prod"), str(ROOT / "examples" / "counter" / "counter.wasm"),
                              "--out", str(out), "--verify", "get", "--json"])
    assert res.exit_code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["refused"] is True and doc["ok"] is False and doc["upgrade"] is None and doc["exported"] is None
    assert doc["plan"]["verdict"] == "incompatible" and doc["verify"][0]["before"] == "(5 : nat)"
    assert any("runs no canister code" in n for n in doc["notes"])
    assert not out.exists() and "the upgrade was refused" in res.stderr


def test_rehearsal_whose_upgrade_traps(sstore: Store, tmp_path: Path, moc: None) -> None:
    api.install(sstore, "s", motoko("shapes_v1"))
    call(sstore, "s", "setOwner", '("alice")')
    export_snapshot(sstore, "s", tmp_path / "prod")
    rep = rehearse(tmp_path / "prod", motoko("shapes_trap_post"), verify=[parse_verify("dump")],
                   out=tmp_path / "migrated")
    assert rep.outcome is None and not rep.refused and rep.error is not None
    assert "postupgrade refuses on purpose" in rep.error and not rep.ok
    assert "the upgrade FAILED" in rep.format_text() and not (tmp_path / "migrated").exists()


def test_killed_rehearsal_continues_from_the_kept_store(sstore: Store, tmp_path: Path, moc: None) -> None:
    api.install(sstore, "g", motoko("graph_v1"))
    call(sstore, "g", "fill", "(30_000 : nat, 3_000 : nat)")
    export_snapshot(sstore, "g", tmp_path / "prod")
    kept = f"sqlite:///{tmp_path / 'kept.db'}"
    seen: list[dict[str, Any]] = []

    def kill(record: dict[str, Any]) -> None:
        seen.append(record)
        if len(seen) == 6:
            raise KeyboardInterrupt

    args: dict[str, Any] = {"mode": "graph-copy", "store_url": kept, "name": "g", "performance_counter_scale": 50_000.0,
                            "verify": [parse_verify("digest")]}
    with pytest.raises(KeyboardInterrupt):
        rehearse(tmp_path / "prod", motoko("graph_v2"), on_migration=kill, **args)
    assert seen[-1]["phase"] == "stabilizing"
    rep = rehearse(tmp_path / "prod", motoko("graph_v2"), out=tmp_path / "migrated", **args)
    assert rep.imported is None and rep.ok and rep.outcome is not None and rep.outcome.resumed
    assert rep.verify[0].before == rep.verify[0].after
    assert "not the IC's budgets" in " ".join(rep.budget["lines"])
    with open_store(kept) as st:  # another directory may not take the kept canister's name
        counter_snapshot(st, tmp_path / "other", 1, name="x")
    with pytest.raises(Exception, match="was not imported from"):
        rehearse(tmp_path / "other", COUNTER_V2, store_url=kept, name="g")


def test_cli_rehearse_text_report(sqlite_url: str, tmp_path: Path) -> None:
    with open_store(sqlite_url) as st:
        counter_snapshot(st, tmp_path / "prod", 3)
    res = runner.invoke(app, ["rehearse", str(tmp_path / "prod"), str(COUNTER_V2_PATH), "--verify", "get",
                              "--out", str(tmp_path / "migrated")])
    assert res.exit_code == 0, res.stderr
    assert "path: keep" in res.stdout and "verify get(): same: (3 : nat)" in res.stdout
    assert "it fits in one message" in res.stdout and "dfx canister snapshot upload" in res.stdout
    assert "runs no canister code" in res.stdout
    res = runner.invoke(app, ["rehearse", str(tmp_path / "nope"), str(COUNTER_V2_PATH)])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error:") and "does not exist" in res.stderr


# --------------------------------------------------------------------------------- pipelines


def write_fleet_pipeline(tmp: Path, extra: str = "") -> Path:
    path = tmp / "fleet.toml"
    path.write_text(f"""
name = "fleet-v2"
module = "{COUNTER_V2_PATH}"
snapshots = "downloads/*"
export_dir = "migrated"
steps = ["import", "check", "upgrade", "verify", "export"]
{extra}
[[verify]]
query = "get"
""")
    return path


def test_pipeline_imports_migrates_and_exports_a_fleet(sqlite_url: str, tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'prod.db'}") as prod:
        for i, value in enumerate((10, 20, 30)):
            counter_snapshot(prod, tmp_path / "downloads" / f"shop-{i}", value, name=f"c{i}")
    (tmp_path / "downloads" / "broken").mkdir()
    pipeline = load_pipeline(write_fleet_pipeline(tmp_path))
    assert pipeline.canisters == ["broken", "shop-0", "shop-1", "shop-2"] and pipeline.steps[0] == "import"
    events: list[dict[str, Any]] = []
    with open_store(sqlite_url) as st:
        report = run_pipeline(st, pipeline, on_event=events.append)
        states = {c.canister: c for c in report.canisters}
        assert {n: s.state for n, s in states.items()} == {"broken": "failed", "shop-0": "done", "shop-1": "done",
                                                            "shop-2": "done"}
        assert "is not a canister snapshot" in (states["broken"].error or "")
        assert call(st, "shop-1", "get") == "(20 : nat)" and states["shop-1"].module_hash == pipeline.module_hash
        assert [e["event"] for e in events if e["canister"] == "shop-0"] == [
            "import", "claimed", "check", "upgrade", "verify", "export", "done"]
        for i, value in enumerate((10, 20, 30)):
            with open_store(f"sqlite:///{tmp_path / f'check{i}.db'}") as other:
                import_snapshot(other, "c", tmp_path / "migrated" / f"shop-{i}")
                assert call(other, "c", "get") == f"({value} : nat)" and "upgrades = 1" in call(other, "c", "stats")
        again: list[dict[str, Any]] = []
        run_pipeline(st, pipeline, on_event=again.append)  # a rerun: nothing imported or migrated twice
        assert {e["event"] for e in again if e["canister"] == "shop-0"} == {"import"}
        assert all("earlier run" in e["message"] for e in again if e["event"] == "import")
        assert [s.state for s in pipeline_status(st, pipeline)].count("done") == 3


@pytest.mark.parametrize(("extra", "steps", "message"), [
    ("", '["import", "upgrade"]', "the export step and `export_dir` (where it writes) go together"),
    ("", '["check", "upgrade", "export"]', "the import step and `snapshots`"),
])
def test_pipeline_import_and_export_keys_go_with_their_steps(tmp_path: Path, extra: str, steps: str,
                                                             message: str) -> None:
    (tmp_path / "downloads" / "a").mkdir(parents=True)
    path = write_fleet_pipeline(tmp_path, extra)
    path.write_text(path.read_text().replace('["import", "check", "upgrade", "verify", "export"]', steps))
    with pytest.raises(PipelineError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_pipeline(path)


def test_pipeline_snapshots_must_match_a_directory(tmp_path: Path) -> None:
    path = write_fleet_pipeline(tmp_path)
    with pytest.raises(PipelineError, match="matches no directory"):
        load_pipeline(path)
