"""The CLI: thin over the API, one-line errors with typed exit codes, --json for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COUNTER = str(EXAMPLES / "counter" / "counter.wasm")
runner = CliRunner()


def gc(url: str, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--db", url, *args])
    return res.exit_code, res.stdout, res.stderr


def test_install_call_query_status_list_logs(db_url: str) -> None:
    code, out, _ = gc(db_url, "install", "counter", COUNTER)
    assert code == 0 and "created and installed" in out
    assert gc(db_url, "call", "counter", "inc")[1].strip() == "(1 : nat)"
    code, out, err = gc(db_url, "call", "counter", "add", "(41 : nat)")
    assert code == 0 and out.strip() == "(42 : nat)" and "added 41" in err  # debug_print goes to stderr
    assert gc(db_url, "call", "counter", "get")[1].strip() == "(42 : nat)"
    code, out, _ = gc(db_url, "call", "counter", "add", "(1 : nat)", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["value"] == [43] and doc["kind"] == "update" and doc["reply"] == "(43 : nat)"
    doc = json.loads(gc(db_url, "status", "counter", "--json")[1])
    assert doc["name"] == "counter" and doc["eop"] is True and doc["status"] == "running"
    assert [h["kind"] for h in doc["history"]] == ["create", "install"]
    assert json.loads(gc(db_url, "list", "--json")[1])[0]["name"] == "counter"
    lines = json.loads(gc(db_url, "logs", "counter", "--json")[1])
    assert [line["message"] for line in lines][-1].endswith("count is now 43")
    assert gc(db_url, "logs", "counter", "--tail", "1")[0] == 0


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["call", "nosuch", "get"], 2, "no canister named 'nosuch'"),
        (["call", "counter", "add", '("x")'], 2, "bad Candid argument"),
        (["call", "counter", "add", "(1 : nat"], 2, "bad Candid text"),
        (["call", "counter", "nope"], 2, "has no method 'nope'"),
        (["install", "bad", __file__], 2, "not a Wasm module"),
        (["install", "counter", COUNTER], 2, "already has a module"),
        (["install", "x", "/nonexistent.wasm"], 2, "no such file: /nonexistent.wasm"),
    ],
)
def test_errors_are_one_line_with_exit_codes(sqlite_url: str, args: list[str], code: int, text: str) -> None:
    assert gc(sqlite_url, "install", "counter", COUNTER)[0] == 0
    before = gc(sqlite_url, "status", "counter", "--json")[1]
    got, out, err = gc(sqlite_url, *args)
    assert got == code, (out, err)
    assert text in err and err.strip().count("\n") == 0
    assert gc(sqlite_url, "status", "counter", "--json")[1] == before  # nothing changed


def test_trap_message_and_exit_code(sqlite_url: str) -> None:
    import wasmtime

    wat = (Path(__file__).parent / "canisters" / "system_api.wat").read_text()
    wasm = Path(sqlite_url.removeprefix("sqlite:///")).with_name("sys.wasm")
    wasm.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    assert gc(sqlite_url, "install", "sys", str(wasm))[0] == 0
    code, _, err = gc(sqlite_url, "call", "sys", "print_then_trap")
    assert code == 7 and "Canister called `ic0.trap` with message: 'boom'" in err


def test_lifecycle_commands(sqlite_url: str) -> None:
    gc(sqlite_url, "install", "counter", COUNTER)
    assert json.loads(gc(sqlite_url, "stop", "counter", "--json")[1])["status"] == "stopped"
    code, _, err = gc(sqlite_url, "call", "counter", "inc")
    assert code == 6 and "is stopped" in err
    assert gc(sqlite_url, "start", "counter")[0] == 0
    assert gc(sqlite_url, "delete", "counter", "--yes")[0] == 6  # must be stopped first
    gc(sqlite_url, "stop", "counter")
    assert gc(sqlite_url, "delete", "counter", "-y")[0] == 0
    assert gc(sqlite_url, "status", "counter")[0] == 2


def test_db_commands(sqlite_url: str) -> None:
    code, out, _ = gc(sqlite_url, "db", "upgrade")
    assert code == 0 and "0008_page_hashes" in out
    doc = json.loads(gc(sqlite_url, "db", "current", "--json")[1])
    assert doc["current"] == doc["head"] == "0008_page_hashes"
    hist = gc(sqlite_url, "db", "history")[1]
    assert "0001_initial" in hist and "0002_snapshots" in hist and "0003_pipeline_locks" in hist
    assert "0004_snapshot_transfer" in hist and "0005_management_canister" in hist and "0006_store_owner" in hist
    assert "0007_snapshot_outcome" in hist and "0008_page_hashes" in hist


def test_locked_database_is_one_line_exit_4(tmp_path: Path) -> None:
    import sqlite3

    url = f"sqlite:///{tmp_path}/locked.db"
    assert gc(url, "install", "counter", COUNTER)[0] == 0
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        env = {**os.environ, "GRAPHCOPY_DATABASE_URL": url, "GRAPHCOPY_LOCK_TIMEOUT": "0.2"}
        res = subprocess.run([sys.executable, "-m", "cli.main", "call", "counter", "inc"], env=env,
                             capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, timeout=60)
        assert res.returncode == 4, res.stderr
        assert "is locked" in res.stderr and res.stderr.strip().count("\n") == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert gc(url, "call", "counter", "get")[1].strip() == "(0 : nat)"


def test_demo_runs_on_sqlite(tmp_path: Path) -> None:
    res = runner.invoke(app, ["--db", f"sqlite:///{tmp_path}/demo.db", "demo", "--entries", "3000", "--json"])
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["ledger"]["count"] == "(3_000 : nat)"
    assert doc["reopened_digest_matches"] is True
    assert doc["counter"]["get"] == "(42 : nat)"
    assert doc["upgrades"]["keep"] == {"path": "keep", "seconds": doc["upgrades"]["keep"]["seconds"], "kept": True}
    gcopy = doc["upgrades"]["graph_copy"]
    assert gcopy["path"] == "graph-copy" and gcopy["digest_matches"] is True
    assert gcopy["increments"]["stabilize"] > 1 and gcopy["increments"]["destabilize"] >= 1  # chunked
    chain = doc["upgrades"]["chain"]
    assert chain["path"] == "keep" and chain["kept"] is True
    assert chain["pending"] == chain["migrations_run"] == ["20250301_000000_AddPriority"]
    assert chain["applied"][-1] == "20250301_000000_AddPriority" and len(chain["applied"]) == 3


def test_check_files_and_canisters(sqlite_url: str) -> None:
    v1, v2 = COUNTER, str(EXAMPLES / "counter" / "counter_v2.wasm")
    most = str(EXAMPLES / "counter" / "counter_v2.most")
    code, out, _ = gc(sqlite_url, "check", v1, v2)
    assert code == 0 and "compatible" in out
    code, out, _ = gc(sqlite_url, "check", v2, v1)
    assert code == 1 and out.count("[drop-stable-variable]") == 2  # both dropped variables, not only the first
    doc = json.loads(gc(sqlite_url, "check", v2, v1, "--json")[1])
    assert doc["compatible"] is False and {e["path"] for e in doc["errors"]} == {"step", "upgrades"}
    assert all(e["hint"] for e in doc["errors"])
    gc(sqlite_url, "install", "counter", v1)
    code, out, _ = gc(sqlite_url, "check", "counter", most)
    assert code == 0 and "persisted descriptor" in out
    code, _, err = gc(sqlite_url, "check", "counter", __file__)
    assert code == 2 and err.strip().count("\n") == 0
    assert gc(sqlite_url, "check", "nosuch", most)[0] == 2
