"""What every command shares: one-line errors with typed exit codes, opening the store, output helpers.

Errors are printed as one line on stderr, and the exit code comes from the error's type
(``persist.errors``): 2 bad input (unknown canister, bad module, bad Candid), 3 store error,
4 database locked, 5 not authorized, 6 wrong canister state, 7 trap, 8 reject.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from cli.app import Options
from persist.errors import GraphcopyError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ScaleOpt = Annotated[float | None, typer.Option(
    "--performance-counter-scale", min=0.0, show_default=False,
    help="Multiply what ic0.performance_counter reports (>1 makes Motoko's graph-copy increments smaller; "
         "default $GRAPHCOPY_PERFORMANCE_COUNTER_SCALE or 1, as on the IC).")]
# The trap text moc's runtime uses for every message during a graph-copy migration.
BLOCKED_TRAP = "Messages are blocked during stabilization"


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn graphcopy's typed errors into one line on stderr and the error's exit code."""
    try:
        yield
    except GraphcopyError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted; committed messages stay committed, queued ones run with the next command", 130) \
            from None


@contextmanager
def opened(ctx: typer.Context) -> Iterator[Any]:
    from persist import open_store

    opts: Options = ctx.obj
    with errors():
        store = open_store(opts.db, caller=opts.caller)
        try:
            yield store
        finally:
            store.close()


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def when(ns: int) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def with_spinner(text: str, quiet: bool, fn: Callable[[], T]) -> T:
    """Run ``fn`` under a spinner on stderr (only on a terminal, and not with --json)."""
    if quiet or not err.is_terminal:
        return fn()
    with err.status(text):
        return fn()


def read_wasm(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GraphcopyError(f"cannot read {path}: {exc.strerror}") from exc
