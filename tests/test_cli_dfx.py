"""dfx's and icp-cli's names and flags where graphcopy does the same thing, through the CLI (exit code,
stdout, stderr): call's --query/--update, --output, --argument-file, --type, --candid; install's
modes and upgrade options; snapshot create/restore; logs as dfx prints them; -h, -V; global options
before or after the command; mistyped commands that never run another."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
COUNTER = str(EXAMPLES / "counter" / "counter.wasm")
COUNTER_V2 = str(EXAMPLES / "counter" / "counter_v2.wasm")
DIRECTORY = str(EXAMPLES / "directory" / "directory.wasm")
ALICE = str(EXAMPLES / "directory" / "alice.args")
runner = CliRunner()


def gc(*args: str, input: str | None = None) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args), input=input)
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture
def directory(sqlite_url: str) -> str:
    assert gc("--db", sqlite_url, "install", "directory", DIRECTORY)[0] == 0
    code, out, err = gc("--db", sqlite_url, "call", "directory", "add", "--argument-file", ALICE)
    assert (code, out, err) == (0, "(0 : nat)\n", "directory: added alice as profile 0\n")
    return sqlite_url


def test_output_formats_are_dfx_s(directory: str) -> None:
    url = directory
    code, out, _ = gc("--db", url, "call", "directory", "totals")
    assert code == 0 and out == ("(\n  record {\n    balance = -18_446_744_073_709_551_616_000 : int;\n"
                                 "    entries = 1 : nat;\n    admins = 0 : nat;\n"
                                 "    karma = 340_282_366_920_938_463_463_374_607_431_768_211_456 : nat;\n  },\n)\n")
    code, out, _ = gc("--db", url, "call", "directory", "totals", "--output", "idl")
    assert out == ("(record { balance = -18_446_744_073_709_551_616_000 : int; entries = 1 : nat; admins = 0 : nat; "
                   "karma = 340_282_366_920_938_463_463_374_607_431_768_211_456 : nat;})\n")
    # JSON as dfx prints it (idl2json): big numbers as strings, opt as arrays, blob as numbers, keys sorted
    code, out, _ = gc("--db", url, "call", "directory", "get", "(0)", "--output", "json")
    doc = json.loads(out)
    profile = doc[0]["profile"]
    assert code == 0 and doc[0]["id"] == "0" and doc[0]["changes"] == "0"
    assert profile["balance"] == "-18446744073709551616000" and profile["karma"] == str(2**128)
    assert profile["avatar"] == [[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A]] and profile["owner"] == "2vxsx-fae"
    assert profile["role"] == {"member": {"since": "1700000000000000000"}} and profile["tags"] == ["early", "beta"]
    assert list(profile) == sorted(profile)
    assert json.loads(gc("--db", url, "call", "directory", "get", "(7)", "-o", "json")[1]) == []  # null: no element
    code, raw, _ = gc("--db", url, "call", "directory", "avatar", "(0)", "--output", "raw")
    assert code == 0 and raw == "4449444c026e016d7b0100010689504e470d0a\n"
    assert gc("--db", url, "call", "directory", "avatar", "(0)", "--output", "hex")[1] == raw  # icp-cli's name
    code, _, err = gc("--db", url, "call", "directory", "totals", "--output", "yaml")
    assert code == 2 and "invalid value for '--output'" in err and err.count("\n") == 1


def test_arguments_from_files_stdin_and_raw_bytes(directory: str) -> None:
    url = directory
    code, out, _ = gc("--db", url, "call", "directory", "credit", "--argument-file", "-", input="(0, 5 : int)")
    assert code == 0 and "changes = 1 : nat" in out and "-18_446_744_073_709_551_615_995 : int" in out
    # --type raw: the argument as hex bytes (here `(0 : nat)`), as dfx takes it
    code, out, _ = gc("--db", url, "call", "directory", "avatar", "4449444c00017d00", "--type", "raw")
    assert code == 0 and out == '(opt blob "\\89\\50\\4e\\47\\0d\\0a")\n'
    code, _, err = gc("--db", url, "call", "directory", "avatar", "zz", "--type", "raw")
    assert code == 2 and "hex" in err
    code, _, err = gc("--db", url, "call", "directory", "avatar", "(0)", "--argument-file", ALICE)
    assert code == 2 and "not both" in err
    code, _, err = gc("--db", url, "call", "directory", "avatar", "--argument-file", "nope.args")
    assert code == 2 and err == "error: no such file: nope.args\n"


def test_query_and_update_flags_are_refused_when_they_contradict_the_module(sqlite_url: str) -> None:
    gc("--db", sqlite_url, "install", "counter", COUNTER)
    code, out, err = gc("--db", sqlite_url, "call", "counter", "inc", "--query")
    assert (code, out) == (2, "") and err == ("error: `inc` is an update method of 'counter', not a query method; "
                                              "run the command without --query\n")
    code, _, err = gc("--db", sqlite_url, "call", "counter", "get", "--update")
    assert code == 2 and "is a query method" in err
    assert gc("--db", sqlite_url, "call", "counter", "get", "--query")[1] == "(0 : nat)\n"  # nothing ran
    assert gc("--db", sqlite_url, "call", "counter", "inc", "--update")[1] == "(1 : nat)\n"
    assert gc("--db", sqlite_url, "call", "counter", "inc", "--query", "--update")[0] == 2


def _without_section(wasm: bytes, name: str) -> bytes:
    """The module without the custom section ``name`` (a canister built without its Candid interface)."""
    from persist.host.wasm_binary import WasmReader, leb_u, normalize_wasm, split_sections

    data = normalize_wasm(wasm)
    out = bytearray(data[:8])
    for sid, start, end in split_sections(data):
        body = data[start:end]
        if sid == 0 and WasmReader(body).name() == name:
            continue
        out += bytes([sid]) + leb_u(len(body)) + body
    assert len(out) < len(data)
    return bytes(out)


def test_candid_file_types_a_module_without_candid_service(sqlite_url: str, tmp_path: Path) -> None:
    bare = tmp_path / "counter-bare.wasm"
    bare.write_bytes(_without_section(Path(COUNTER).read_bytes(), "icp:private candid:service"))
    assert gc("--db", sqlite_url, "install", "c", str(bare))[0] == 0
    gc("--db", sqlite_url, "call", "c", "add", "(5 : nat)")
    code, out, _ = gc("--db", sqlite_url, "call", "c", "stats")
    assert code == 0 and "count" not in out and "5 : nat" in out  # the wire's field ids only
    code, out, _ = gc("--db", sqlite_url, "call", "c", "stats", "--candid", str(EXAMPLES / "counter" / "counter.did"))
    assert (code, out) == (0, "(record { count = 5 : nat; changes = 1 : nat })\n")
    code, _, err = gc("--db", sqlite_url, "call", "c", "stats", "--candid", "missing.did")
    assert code == 2 and err == "error: no such file: missing.did\n"


def test_global_options_stand_before_or_after_the_command(sqlite_url: str) -> None:
    assert gc("install", "counter", COUNTER, "--db", sqlite_url)[0] == 0
    assert gc("call", "counter", "inc", f"--db={sqlite_url}")[1] == "(1 : nat)\n"
    code, out, _ = gc("--json", "--db", sqlite_url, "call", "counter", "get")
    assert code == 0 and json.loads(out)["value"] == [1]
    code, out, _ = gc("call", "--json", "counter", "get", "--db", sqlite_url)
    assert code == 0 and json.loads(out)["reply"] == "(1 : nat)"
    # --identity (or dfx's old --caller) after the command: the anonymous principal is no controller
    code, _, err = gc("stop", "counter", "--db", sqlite_url, "--identity", "anonymous")
    assert code == 5 and "controller" in err
    assert gc("snapshot", "take", "counter", "--caller", "anonymous", "--db", sqlite_url)[0] == 5
    # a value that looks like a global option stays the command's
    code, out, _ = gc("--db", sqlite_url, "snapshot", "take", "counter", "--label", "--db", "--json")
    assert code == 0 and json.loads(out)["label"] == "--db"
    # after `--` nothing is an option
    assert gc("--db", sqlite_url, "call", "counter", "get", "--", "--json")[0] == 2


def test_help_version_and_json_flags(sqlite_url: str) -> None:
    code, out, _ = gc("-h")
    assert code == 0 and "install" in out and "--identity" in out and "<bool>" not in out
    code, out, _ = gc("-V")
    assert code == 0 and re.fullmatch(r"graphcopy \S+\n", out)
    assert gc("--version")[1] == out
    # every command answers -h, and has --json as a plain flag
    root = __import__("typer").main.get_command(app)
    paths = [[n] for n, c in root.commands.items() if not getattr(c, "commands", None)]
    paths += [[g, n] for g, c in root.commands.items() for n in (getattr(c, "commands", None) or {})]
    assert len(paths) >= 25
    for path in paths:
        code, out, _ = gc(*path, "-h")
        assert code == 0 and "--json" in out and "<bool>" not in out, path


def test_install_modes_and_upgrade_options(sqlite_url: str) -> None:
    u = ("--db", sqlite_url)
    code, out, _ = gc(*u, "install", "counter", COUNTER, "-m", "auto")
    assert code == 0 and "created and installed" in out
    gc(*u, "call", "counter", "add", "(7 : nat)")
    code, out, _ = gc(*u, "install", "counter", COUNTER_V2, "--mode", "upgrade", "--wasm-memory-persistence", "keep")
    assert code == 0 and "upgrade plan for 'counter' (mode keep)" in out and "upgraded, heap kept" in out
    code, out, _ = gc(*u, "install", "counter", COUNTER_V2, "--mode", "auto", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["action"] == "unchanged" and doc["path"] == "none"
    code, out, _ = gc(*u, "install", "counter", COUNTER_V2, "-m", "upgrade", "--upgrade-unchanged", "--json")
    assert code == 0 and json.loads(out)["action"] == "upgraded"
    assert gc(*u, "call", "counter", "get")[1] == "(7 : nat)\n"
    code, _, err = gc(*u, "install", "counter", COUNTER_V2, "-m", "upgrade", "--wasm-memory-persistence", "dunno")
    assert code == 2 and "--wasm-memory-persistence" in err
    code, _, err = gc(*u, "upgrade", "counter", COUNTER_V2, "--mode", "keep", "--wasm-memory-persistence", "replace")
    assert code == 2 and "contradicts" in err


def test_snapshot_create_and_restore_are_take_and_load(sqlite_url: str) -> None:
    u = ("--db", sqlite_url)
    gc(*u, "install", "counter", COUNTER)
    code, out, _ = gc(*u, "snapshot", "create", "counter", "--json")
    snap = json.loads(out)["id"]
    gc(*u, "call", "counter", "inc")
    code, out, _ = gc(*u, "snapshot", "restore", "counter", str(snap))
    assert code == 0 and f"loaded snapshot {snap}" in out
    assert gc(*u, "call", "counter", "get")[1] == "(0 : nat)\n"


def test_logs_as_dfx_prints_them(sqlite_url: str) -> None:
    u = ("--db", sqlite_url)
    gc(*u, "install", "counter", COUNTER)
    gc(*u, "call", "counter", "add", "(1 : nat)")
    time.sleep(1.1)
    gc(*u, "call", "counter", "add", "(2 : nat)")
    code, out, _ = gc(*u, "logs", "counter")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2
    assert re.fullmatch(r"\[1\. \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z\]: counter: added 1, count is now 1",
                        lines[0]), lines[0]
    assert lines[1].startswith("[2. ") and lines[1].endswith("]: counter: added 2, count is now 3")
    assert gc(*u, "logs", "counter", "--tail", "1")[1] == lines[1] + "\n"
    assert gc(*u, "logs", "counter", "--since", "1s")[1] == lines[1] + "\n"
    assert gc(*u, "logs", "counter", "--since", "1h")[1] == out
    stamp = lines[1][4:lines[1].index("]")]  # the RFC 3339 time of the second line
    assert gc(*u, "logs", "counter", "--since-time", stamp)[1] == ""  # strictly newer
    assert gc(*u, "logs", "counter", "--since-time", "0")[1] == out
    code, _, err = gc(*u, "logs", "counter", "--since", "3 weeks")
    assert code == 2 and "--since" in err
    assert gc(*u, "logs", "counter", "--since", "1s", "--tail", "1")[0] == 2


def test_a_trap_in_the_log_reads_like_the_ic_s(sqlite_url: str, tmp_path: Path) -> None:
    import wasmtime

    wasm = tmp_path / "sys.wasm"
    wasm.write_bytes(bytes(wasmtime.wat2wasm((Path(__file__).parent / "canisters" / "system_api.wat").read_text())))
    gc("--db", sqlite_url, "install", "sys", str(wasm))
    assert gc("--db", sqlite_url, "call", "sys", "print_then_trap")[0] == 7
    out = gc("--db", sqlite_url, "logs", "sys")[1]
    assert re.search(r"\]: \[TRAP\]: .*boom", out), out


def test_mistyped_commands_never_run_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GRAPHCOPY_DATABASE_URL", raising=False)
    code, out, err = gc("deploi", "counter", COUNTER)
    assert (code, out) == (2, "") and "no such command 'deploi'" in err and "`graphcopy deploy`" in err
    assert "nothing was run" in err and err.count("\n") == 1
    code, _, err = gc("create", "counter")
    assert code == 2 and "`graphcopy install NAME WASM` creates the canister" in err
    code, _, err = gc("canister", "call", "counter", "inc")
    assert code == 2 and "top-level" in err
    code, out, _ = gc("--json", "instal", "x", COUNTER)
    assert code == 2 and json.loads(out)["code"] == 2 and "`graphcopy install`" in json.loads(out)["error"]
    code, _, err = gc("snapshot", "tak", "x")
    assert code == 2 and "`graphcopy snapshot take`" in err
    assert not list(tmp_path.iterdir())  # no store was even created


def test_logs_follow_prints_new_lines_until_ctrl_c(sqlite_url: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    gc("--db", sqlite_url, "install", "counter", COUNTER)
    gc("--db", sqlite_url, "call", "counter", "add", "(1 : nat)")
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "logs", "counter", "--follow", "--interval", "0.2",
                             "--db", sqlite_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    gc("--db", sqlite_url, "call", "counter", "add", "(2 : nat)")
    second = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert first.startswith("[1. ") and first.rstrip().endswith("count is now 1")
    assert second.startswith("[2. ") and second.rstrip().endswith("count is now 3")
