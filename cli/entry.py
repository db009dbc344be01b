"""The ``graphcopy`` console script: import only the command group the command line names.

Importing every command module, and letting Typer build every command, costs a ``graphcopy call``
tens of milliseconds it does not need. :func:`main` finds the command word (skipping the global
options and their values, as :mod:`cli.argv` knows them), imports the module that registers it,
and runs the same Typer application. Anything else -- no command (``--help``, ``--version``), a
word that is not a command (so the answer can name the close matches), a new command missing from
:data:`COMMAND_MODULES` -- imports them all (:mod:`cli.main`), exactly as before.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from cli.argv import GLOBAL_OPTIONS, JSON_FLAG

#: The module that registers each top-level command or group (tests/test_cli_entry.py checks it).
COMMAND_MODULES = {
    "call": "cli.calls", "logs": "cli.calls",
    "check": "cli.upgrades", "upgrade": "cli.upgrades", "stabilize-before-upgrade": "cli.upgrades",
    "destabilize-after-upgrade": "cli.upgrades", "rollback": "cli.upgrades",
    "build": "cli.build", "deploy": "cli.build",
    "install": "cli.canisters", "status": "cli.canisters", "list": "cli.canisters", "stop": "cli.canisters",
    "start": "cli.canisters", "delete": "cli.canisters", "tick": "cli.canisters",
    "rehearse": "cli.rehearse", "demo": "cli.main",
    "db": "cli.db", "snapshot": "cli.snapshots", "pipeline": "cli.pipelines", "cache": "cli.cache",
    "identity": "cli.identity",
}  # fmt: skip


def command_word(args: Sequence[str]) -> str | None:
    """The first word of ``args`` that is not a global option, ``--json`` or an option's value."""
    i = 0
    while i < len(args):
        tok = args[i]
        name, eq, _ = tok.partition("=")
        if name in GLOBAL_OPTIONS:
            i += 1 if eq or not GLOBAL_OPTIONS[name] else 2
            continue
        if tok == JSON_FLAG:
            i += 1
            continue
        return None if tok.startswith("-") else tok
    return None


def main() -> None:
    """Console-script entry point."""
    module = COMMAND_MODULES.get(command_word(sys.argv[1:]) or "", "cli.main")
    importlib.import_module(module)
    from cli.app import app

    app()
