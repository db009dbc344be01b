"""Output for people and scripts, through the CLI: whole identifiers when stdout is not a terminal
(and with --wide on one), JSON errors on every command, the same exit code for the same mistake,
hints for store URLs, and a reply that is not Candid never reported as a failed call."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from typer.testing import CliRunner

from cli.main import app
from tests.test_cli_safety import on_terminal

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
COUNTER = str(EXAMPLES / "counter" / "counter.wasm")
COUNTER_V2 = str(EXAMPLES / "counter" / "counter_v2.wasm")
runner = CliRunner()


def gc(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def module_hash(url: str, name: str) -> str:
    return str(json.loads(gc("--db", url, "status", name, "--json")[1])["module_hash"])


def test_tables_show_identifiers_whole_unless_on_a_narrow_terminal(sqlite_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    gc("--db", sqlite_url, "install", "counter-with-a-long-name", COUNTER)
    gc("--db", sqlite_url, "upgrade", "counter-with-a-long-name", COUNTER_V2)
    full = module_hash(sqlite_url, "counter-with-a-long-name")
    for args in (["list"], ["snapshot", "list", "counter-with-a-long-name"], ["status", "counter-with-a-long-name"]):
        code, out, _ = gc("--db", sqlite_url, *args)  # CliRunner: not a terminal
        hashes = set(re.findall(r'"module_hash": "([0-9a-f]{64})"', gc("--db", sqlite_url, *args, "--json")[1]))
        assert code == 0 and hashes and all(h in out for h in hashes) and "…" not in out, args
        assert "counter-with-a-long-name" in out and "rwlgt-iiaaa-aaaaa-aaaaa-cai" in out or args[0] == "snapshot"
    monkeypatch.setenv("COLUMNS", "60")  # a narrow terminal
    code, out = on_terminal(sqlite_url, ["list"], None)
    assert code == 0 and full not in out and "…" in out  # squeezed to the terminal
    code, out = on_terminal(sqlite_url, ["list", "--wide"], None)
    assert code == 0 and full in out and "rwlgt-iiaaa-aaaaa-aaaaa-cai" in out


# One bad input per command: each must exit with the error's code and print {"error", "code"} as JSON.
BAD = [
    (["install", "nosuch-dir/x", COUNTER], 2), (["call", "nosuch", "get"], 2), (["status", "nosuch"], 2),
    (["list", "--wide"], 0), (["logs", "nosuch"], 2), (["stop", "nosuch"], 2), (["start", "nosuch"], 2),
    (["delete", "nosuch", "-y"], 2), (["tick"], 0), (["check", "nosuch.wasm", COUNTER], 2),
    (["upgrade", "nosuch", COUNTER], 2), (["stabilize-before-upgrade", "nosuch"], 2),
    (["destabilize-after-upgrade", "nosuch"], 2), (["rollback", "nosuch"], 2), (["snapshot", "take", "nosuch"], 2),
    (["snapshot", "list", "nosuch"], 2), (["snapshot", "load", "nosuch", "1"], 2),
    (["snapshot", "delete", "nosuch", "1"], 2), (["pipeline", "run", "nosuch.toml"], 2),
    (["pipeline", "status", "nosuch.toml"], 2), (["build", "nosuch.mo"], 2), (["deploy", "x", "nosuch.mo"], 2),
    (["call", "counter", "get", "--output", "yaml"], 2), (["nosuch-command"], 2),
]


@pytest.mark.parametrize(("args", "code"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_every_command_reports_errors_as_json(sqlite_url: str, args: list[str], code: int) -> None:
    got, out, err = gc("--db", sqlite_url, *args, "--json")
    assert got == code, (out, err)
    if code:
        doc = json.loads(out)
        assert set(doc) >= {"error", "code"} and doc["code"] == code and doc["error"] in err
        assert err.count("\n") == 1 and err.startswith("error: ")


def test_the_same_mistake_gets_the_same_exit_code(sqlite_url: str, tmp_path: Path) -> None:
    u = ("--db", sqlite_url)
    gc(*u, "install", "counter", COUNTER)
    # a missing file: "no such file", exit 2, for every command that reads one
    for args in (["install", "x", "nope.wasm"], ["upgrade", "counter", "nope.wasm"], ["check", "nope.wasm", COUNTER],
                 ["deploy", "x", "nope.wasm"], ["build", "nope.mo"], ["pipeline", "run", "nope.toml"],
                 ["call", "counter", "get", "--argument-file", "nope.args"]):
        code, _, err = gc(*u, *args)
        assert code == 2 and ("no such file" in err or "cannot read" in err), (args, err)
    # an unknown mode: exit 2 everywhere
    for args in (["install", "y", COUNTER, "--mode", "sideways"], ["upgrade", "counter", COUNTER_V2, "--mode", "up"],
                 ["deploy", "y", COUNTER, "--mode", "sideways"]):
        code, _, err = gc(*u, *args)
        assert code == 2 and "mode" in err, (args, err)
    # swapped arguments: the order is named
    for args in (["install", COUNTER, "counter2"], ["upgrade", COUNTER_V2, "counter"]):
        code, _, err = gc(*u, *args)
        assert code == 2 and err == f"error: {args[2]} is not a file; the order is NAME WASM\n", (args, err)
    code, _, err = gc(*u, "deploy", COUNTER, "counter2")
    assert code == 2 and "the order is NAME SOURCE" in err
    # an unknown canister: exit 2 everywhere
    for args in (["status", "ghost"], ["call", "ghost", "get"], ["upgrade", "ghost", COUNTER_V2], ["logs", "ghost"]):
        assert gc(*u, *args)[0] == 2, args
    assert json.loads(gc(*u, "status", "counter", "--json")[1])["version"] == 1  # none of it changed anything


def test_check_says_no_such_file_for_a_path(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = gc("check", "old/counter.wasm", COUNTER)
    assert (code, out, err) == (2, "", "error: no such file: old/counter.wasm\n")
    code, _, err = gc("check", COUNTER, "counter_v3.most")
    assert code == 2 and err == "error: no such file: counter_v3.most\n"
    assert not (tmp_path / "graphcopy.db").exists()  # two files: no store opened


def test_store_urls_get_hints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = gc("--db", "sqlite:///no-such-dir/graphcopy.db", "list")
    assert code == 3 and "relative to the working directory" in err and "sqlite:////no-such-dir/graphcopy.db" in err
    assert err.count("\n") == 1
    import sqlalchemy as sa

    missing = sa.make_url(pg_url).set(database="graphcopy_no_such_db").render_as_string(hide_password=False)
    code, _, err = gc("--db", missing, "list")
    assert code == 3 and 'database "graphcopy_no_such_db" does not exist' in err and "createdb" in err
    assert "-h 127.0.0.1" in err and err.count("\n") == 1


def test_a_reply_that_is_not_candid_is_not_an_error(sqlite_url: str, tmp_path: Path) -> None:
    wasm = tmp_path / "sys.wasm"
    wasm.write_bytes(bytes(wasmtime.wat2wasm((Path(__file__).parent / "canisters" / "system_api.wat").read_text())))
    gc("--db", sqlite_url, "install", "sys", str(wasm))
    version = json.loads(gc("--db", sqlite_url, "status", "sys", "--json")[1])["version"]
    code, out, err = gc("--db", sqlite_url, "call", "sys", "bump")  # replies a raw i64, not DIDL
    assert code == 0 and re.fullmatch(r"[0-9a-f]{16}\n", out), (out, err)
    assert "not Candid" in err and "the update was committed" in err
    assert json.loads(gc("--db", sqlite_url, "status", "sys", "--json")[1])["version"] == version + 1
    code, out, _ = gc("--db", sqlite_url, "call", "sys", "bump", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["reply"] is None and doc["reply_hex"] == "0200000000000000"
    assert "not Candid" in doc["warning"]


def test_the_console_script_is_the_same_cli(sqlite_url: str) -> None:
    """The real process (python -m cli.main, as the graphcopy script runs it): options after the
    command, a JSON error, the exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-m", "cli.main", "status", "ghost", "--json", "--db", sqlite_url],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and json.loads(res.stdout)["code"] == 2 and res.stderr.startswith("error: no canister")
