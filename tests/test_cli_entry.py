"""The console script (``cli.entry``): it loads only the command group the command line names.

What a command imports is its start-up cost; these tests pin the structure (no timings): the map
from command words to modules matches what the modules register, the command word is found past
global options, and ``graphcopy call`` on an installed canister runs without Pydantic, rich, the
management canister's modules, the install machinery, ``migrate`` or numpy (the counter has no stable
memory, whose page bytemaps are what numpy serves).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.entry import COMMAND_MODULES, command_word

ROOT = Path(__file__).resolve().parent.parent
COUNTER = str(ROOT / "examples" / "counter" / "counter.wasm")


def test_every_command_maps_to_the_module_that_registers_it() -> None:
    from cli.main import app

    registered: dict[str, set[str]] = {}
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        registered.setdefault(name, set()).add(info.callback.__module__)
    for group in app.registered_groups:
        assert group.name is not None and group.typer_instance is not None
        registered[group.name] = {c.callback.__module__ for c in group.typer_instance.registered_commands
                                  if c.callback is not None}
    assert {name: next(iter(mods)) for name, mods in registered.items()} == COMMAND_MODULES
    assert all(len(mods) == 1 for mods in registered.values())


@pytest.mark.parametrize(("args", "word"), [
    (["call", "counter", "get"], "call"),
    (["--db", "sqlite:///x.db", "call", "counter"], "call"),
    (["--db=sqlite:///x.db", "--json", "--identity", "anonymous", "status", "c"], "status"),
    (["--caller", "call", "status"], "status"),  # "call" is --caller's value here
    (["--help"], None),
    (["-V"], None),
    ([], None),
    (["deploi", "x"], "deploi"),
])
def test_command_word(args: list[str], word: str | None) -> None:
    assert command_word(args) == word


def test_call_runs_without_the_modules_it_does_not_need(tmp_path: Path) -> None:
    env = {**os.environ, "GRAPHCOPY_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}"}
    run = subprocess.run([sys.executable, "-m", "cli.main", "install", "counter", COUNTER], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    probe = ("import json, sys\n"
             "sys.argv = ['graphcopy', 'call', 'counter', 'get']\n"
             "from cli.entry import main\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n")
    res = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    reply, doc_line = res.stdout.splitlines()[-2:]
    doc = json.loads(doc_line)
    assert reply == "(0 : nat)" and doc["code"] in (0, None), res.stderr
    modules = set(doc["modules"])
    assert {"cli.calls", "persist.api.calls", "sqlalchemy", "wasmtime"} <= modules  # it did run the call
    unwanted = {"pydantic", "rich", "rich.console", "alembic", "migrate", "cli.canisters", "cli.upgrades",
                "persist.api.canisters", "persist.execution.installer", "persist.execution.management.dispatch",
                "persist.store.snapshots", "numpy"}
    assert modules & unwanted == set()
