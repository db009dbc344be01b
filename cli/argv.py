"""Where the global options may stand: before the command or anywhere after it.

Click parses a group's options only before the subcommand's name, so ``graphcopy call counter get
--db URL`` would be "no such option". dfx and icp-cli users put ``--identity`` and ``--network``
wherever they like, so :func:`normalize` rewrites the argument list before Click sees it:

* the global options (``--db``, ``--identity`` / ``--caller``, with their values) are moved to the
  front, where the root command parses them;
* ``--json`` given before the command is moved behind the command's name (every command that
  reports something has its own ``--json``); ``--json`` anywhere also marks the run as JSON, so
  that an error found while parsing is reported as JSON too.

The rewrite walks the real command tree (the Click objects Typer builds), so it knows which option
of the command takes a value and never mistakes that value for a global option; everything after
``--`` is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: Options of the root command that may also be given after the command, and whether they take a value.
GLOBAL_OPTIONS = {"--db": True, "--identity": True, "--caller": True}
JSON_FLAG = "--json"


@dataclass
class Normalized:
    """The rewritten arguments, and what the rewrite learnt about the run."""

    args: list[str]
    json: bool = False
    command_path: list[str] = field(default_factory=list)


def _options(command: Any) -> dict[str, bool]:
    """The command's option names and whether each takes a value (Click parameter objects)."""
    found: dict[str, bool] = {}
    for p in getattr(command, "params", ()):
        if getattr(p, "param_type_name", "") != "option":
            continue
        takes_value = not (getattr(p, "is_flag", False) or getattr(p, "count", False))
        for name in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ())):
            found[name] = takes_value
    return found


def _subcommands(command: Any) -> dict[str, Any]:
    commands = getattr(command, "commands", None)
    return dict(commands) if isinstance(commands, dict) else {}


def normalize(root: Any, args: Sequence[str]) -> Normalized:
    """Rewrite ``args`` (without the program name) for the Click command ``root``; see the module docstring."""
    front: list[str] = []
    rest: list[str] = []
    wants_json = False
    json_before_command = False
    command = root
    path: list[str] = []
    insert_at: int | None = None  # where a --json given before the command goes (after the command's name)
    options = _options(command)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            rest.extend(args[i:])
            break
        name, eq, _ = tok.partition("=")
        if name in GLOBAL_OPTIONS and (not path or name not in options):
            if eq or not GLOBAL_OPTIONS[name]:
                front.append(tok)
            else:
                front.extend(args[i:i + 2])
                i += 1
            i += 1
            continue
        if tok == JSON_FLAG:
            wants_json = True
            if JSON_FLAG in options and path and not _subcommands(command):
                rest.append(tok)
            else:
                json_before_command = True
            i += 1
            continue
        if tok.startswith("-") and tok != "-":
            rest.append(tok)
            if not eq and options.get(name) and i + 1 < len(args):
                rest.append(args[i + 1])
                i += 1
            i += 1
            continue
        subs = _subcommands(command)
        if tok in subs:
            command = subs[tok]
            path.append(tok)
            options = _options(command)
            rest.append(tok)
            insert_at = len(rest)
        else:
            rest.append(tok)
            if subs:  # an unknown command: stop walking, Click reports it (as JSON if asked anywhere)
                tail = list(args[i + 1:])
                wants_json = wants_json or JSON_FLAG in tail[:tail.index("--")] if "--" in tail else (
                    wants_json or JSON_FLAG in tail)
                rest.extend(tail)
                break
        i += 1
    if json_before_command and insert_at is not None and JSON_FLAG in _options(command):
        rest.insert(insert_at, JSON_FLAG)
    # Otherwise (no command, an unknown one, a group) there is nothing to hand it to: the error
    # Click reports about the command is printed as JSON all the same (``wants_json``).
    return Normalized(args=front + rest, json=wants_json, command_path=path)
