"""What every command shares: one-line errors with typed exit codes, opening the store, output helpers.

Errors are printed as one line on stderr, and the exit code comes from the error's type
(``persist.errors``): 2 bad input (unknown canister, bad module, bad Candid, a missing file, a bad
option), 3 store error, 4 a conflict with another process (``ConflictError``: a locked database, a
claimed canister, a canister changed meanwhile), 5 not authorized, 6 wrong canister state, 7 trap,
8 reject; 70 an unexpected internal error (``cli.app``). Under ``--json`` an error is also printed on
stdout as ``{"error": ..., "code": ...}``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer

from persist.errors import GraphcopyError, InvalidArgumentError
from persist.interrupts import immediate

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


@dataclasses.dataclass
class Options:
    """The global options of one run (``--db``, ``--identity NAME``, ``--caller PRINCIPAL``), kept on
    the root context."""

    db: str | None = None
    caller: str | None = None
    identity: str | None = None


@dataclasses.dataclass
class Acting:
    """Who a command acts as: a principal, whether the user holds its key, and the identity's name."""

    principal: str
    held: bool
    identity: str | None


def acting(opts: Options) -> Acting:
    """The caller of this run: ``--caller PRINCIPAL`` (held when one of the user's identities has
    it), else ``--identity NAME``, else the identity in use (``default`` made on first need)."""
    from persist.identity import current_identity, held_identity, parse_sender

    if opts.caller is not None and opts.identity is not None:
        raise InvalidArgumentError("give --identity NAME or --caller PRINCIPAL, not both")
    if opts.caller is not None:
        principal = parse_sender(opts.caller)
        if principal.is_anonymous:
            return Acting(principal.to_text(), True, "anonymous")
        own = held_identity(principal)
        return Acting(principal.to_text(), own is not None, own.name if own is not None else None)
    identity = current_identity(opts.identity)
    if identity.created and err.is_terminal:
        err.print(f"note: created the identity {identity.name!r} (principal {identity.principal}, key "
                  f"{identity.pem_path}); it controls the canisters you create", highlight=False)
    return Acting(identity.principal.to_text(), True, identity.name)


@dataclasses.dataclass
class Invocation:
    """What the command line said before any command ran (set by the root command for each run)."""

    json: bool = False


INVOCATION = Invocation()

class LazyConsole:
    """A rich ``Console`` made on first use: importing rich costs a command that prints plain text
    (:func:`print_line`), or only lists its commands (``--help``), time it does not need. Every
    attribute is the console's; rich objects that keep a console (``Progress``) get
    :func:`real_console`."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> Console:
        return self.real.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.real.__exit__(*exc)


out = cast("Console", LazyConsole(soft_wrap=True))
err = cast("Console", LazyConsole(stderr=True, soft_wrap=True))


def real_console(console: Any) -> Console:
    """The rich ``Console`` behind ``out`` / ``err`` (or ``console`` itself), for rich objects that keep one."""
    return console.real if isinstance(console, LazyConsole) else console


T = TypeVar("T")


def escape(text: str) -> str:
    """``text`` with rich markup escaped (rich loads only when something is printed through it)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def new_table(*headers: str, **options: Any) -> Table:
    """A rich ``Table`` (rich loads when a command has one to print)."""
    from rich.table import Table

    return Table(*headers, **options)


def print_line(text: str, *, stderr: bool = False) -> None:
    """One line of plain text, as it is (no markup, highlighting, emoji codes or wrapping), on
    stdout or stderr: replies and canister logs, where rich would only risk changing the text."""
    stream = sys.stderr if stderr else sys.stdout
    stream.write(text + "\n")
    stream.flush()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (errors too).")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Show identifiers (hashes, principals) whole.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")]
ScaleOpt = Annotated[float | None, typer.Option(
    "--performance-counter-scale", min=0.0, show_default=False, envvar="GRAPHCOPY_PERFORMANCE_COUNTER_SCALE",
    help="Multiply what ic0.performance_counter reports (>1 makes Motoko's graph-copy increments smaller; "
         "default $GRAPHCOPY_PERFORMANCE_COUNTER_SCALE or 1, as on the IC).")]
# The trap text moc's runtime uses for every message during a graph-copy migration.
BLOCKED_TRAP = "Messages are blocked during stabilization"


def fail_line(message: str, code: int, extra: dict[str, Any] | None = None) -> None:
    """Report an error: one line on stderr and, under ``--json``, ``{"error", "code", ...extra}`` on stdout."""
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if INVOCATION.json:
        print_json({"error": message, "code": code, **(extra or {})})


def fail(message: str, code: int, extra: dict[str, Any] | None = None) -> typer.Exit:
    """:func:`fail_line`, and the exception that ends the command with ``code`` (``raise fail(...)``)."""
    fail_line(message, code, extra)
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
        who = acting(opts)
        store = open_store(opts.db, caller=who.principal, caller_held=who.held)
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


def confirm(question: str, yes: bool) -> None:
    """Ask before a destructive step: on a terminal a y/N question (no: exit 1, nothing changed);
    elsewhere (a script, a pipe) only ``--yes`` lets it through (exit 2 without)."""
    if yes:
        return
    if sys.stdin.isatty():
        with immediate():  # Ctrl-C at the question ends the command at once
            answer = typer.confirm(question, default=False, err=True)
        if answer:
            return
        raise fail("cancelled; nothing was changed", 1)
    raise InvalidArgumentError(f"not confirmed: {question.split('?')[0].lower()}? asks for confirmation; "
                               "pass --yes (-y) when there is no terminal to ask on")


def with_spinner(text: str, quiet: bool, fn: Callable[[], T]) -> T:
    """Run ``fn`` under a spinner on stderr (only on a terminal, and not with --json)."""
    if quiet or not sys.stderr.isatty() or not err.is_terminal:  # isatty first: rich only on a terminal
        return fn()
    with err.status(text):
        return fn()


def read_file(path: Path, *, swapped_with: str | None = None, order: str = "NAME WASM") -> bytes:
    """The bytes of a file the user named; a missing one is "no such file" (exit 2), and when the
    other argument (``swapped_with``) is an existing file the arguments were swapped: say the order."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if swapped_with is not None and Path(swapped_with).is_file():
            raise InvalidArgumentError(f"{path} is not a file; the order is {order}") from None
        raise InvalidArgumentError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidArgumentError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read {path}: {exc.strerror}") from exc


def read_wasm(path: Path, name: str | None = None) -> bytes:
    """A module file (``.wasm`` or ``.wasm.gz``) given after the canister ``name``."""
    return read_file(path, swapped_with=name)


def read_text_argument(path: str) -> str:
    """``--argument-file FILE`` (``-`` is stdin), as dfx reads it."""
    if path == "-":
        return sys.stdin.read()
    data = read_file(Path(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidArgumentError(f"{path} is not UTF-8 text") from None


def wide_output(wide: bool) -> bool:
    """Whether tables show identifiers whole: asked for (``--wide``), or stdout is not a terminal
    (a script or a file must never get a cut hash or principal)."""
    return wide or not out.is_terminal


def short_hash(value: str | None, wide: bool, empty: str = "-") -> str:
    """A module hash for a table: whole when ``wide``, else its first 16 hex digits and an ellipsis."""
    if not value:
        return empty
    return value if wide else value[:16] + "…"


def print_table(table: Any, wide: bool) -> None:
    """Print a rich table; when ``wide`` no column is squeezed to the terminal's width."""
    if wide:
        from rich.console import Console

        Console(file=out.file, width=100_000, force_terminal=True if out.is_terminal else None).print(table)
    else:
        out.print(table)
