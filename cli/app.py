"""The Typer application, its command groups and its global options (``--db``, ``--identity``).

``GraphcopyGroup`` is the root command: before Click parses anything it moves the global options
to where Click expects them (:mod:`cli.argv`), so they work before or after the command, and it
reports every usage error (unknown command or option, bad value) as one line on stderr with exit
code 2, plus ``{"error": ..., "code": ...}`` on stdout under ``--json``, like every other error.
An unknown command is never run as another: the answer names the command that does the job (for
dfx and icp-cli words such as ``create`` or ``info``) or the close matches, and exits.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from difflib import get_close_matches
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli.argv import normalize
from cli.common import INVOCATION, Options, fail_line
from cli.params import install_fast_coercion
from persist.errors import GraphcopyError
from persist.interrupts import deferred

#: The exit code of an unexpected internal error (a bug): sysexits' EX_SOFTWARE.
INTERNAL_ERROR_EXIT = 70

# dfx / icp-cli words that graphcopy spells differently, and where to go instead.
DFX_WORDS = {
    "canister": "graphcopy has no `canister` group: the commands are top-level (`graphcopy call NAME METHOD`, "
                "`graphcopy install NAME WASM`, `graphcopy status NAME`)",
    "create": "`graphcopy install NAME WASM` creates the canister when it is new",
    "info": "`graphcopy status NAME` shows the module hash, controllers and history",
    "id": "`graphcopy status NAME` (or `graphcopy list`) shows the canister's principal",
    "uninstall-code": "`graphcopy install NAME WASM --mode reinstall` replaces the module and wipes the state "
                      "(after a snapshot)",
    "metadata": "`graphcopy status NAME --json` and `graphcopy check` read the module's sections",
    "new": "graphcopy does not create projects: write a .mo file, then `graphcopy deploy NAME FILE.mo`",
}


def version_text() -> str:
    """``graphcopy <version>`` from the installed distribution (or the source tree's pyproject)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"graphcopy {version('graphcopy')}"
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "graphcopy (not installed)"


def report_internal_error(exc: BaseException) -> int:
    """One line for an exception graphcopy did not expect (a bug), with where to report it; the
    stack only with ``GRAPHCOPY_DEBUG=1``. Returns the exit code (:data:`INTERNAL_ERROR_EXIT`)."""
    import os
    import traceback

    debug = os.environ.get("GRAPHCOPY_DEBUG", "").strip() not in ("", "0")
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    text = " ".join(str(exc).split())
    if len(text) > 300:
        text = text[:297] + "..."
    where = "the stack is above" if debug else "run it again with GRAPHCOPY_DEBUG=1 to see the stack"
    fail_line(f"internal error: {type(exc).__name__}{': ' + text if text else ''} (a bug in graphcopy: please "
              f"report it with the command you ran and `{version_text()}`; {where})", INTERNAL_ERROR_EXIT)
    return INTERNAL_ERROR_EXIT


def _stopping_notice() -> None:
    """What the first Ctrl-C says: the message under way finishes (or is undone) first."""
    sys.stderr.write("\nstopping after the current message; press Ctrl-C again to stop at once\n")
    sys.stderr.flush()


# The order `graphcopy --help` lists the commands in: the daily ones first.
COMMAND_ORDER = ("install", "deploy", "build", "call", "status", "list", "logs", "upgrade", "check", "rollback",
                 "snapshot", "stabilize-before-upgrade", "destabilize-after-upgrade", "pipeline", "stop", "start",
                 "delete", "tick", "identity", "db", "cache", "demo")


class GraphcopyGroup(TyperGroup):
    """The root command: global options anywhere, one-line usage errors, no guessing of commands."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(self.commands)
        rank = {n: i for i, n in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda n: (rank.get(n, len(rank)), names.index(n)))

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, windows_expand_args: bool = True,
             **extra: Any) -> Any:
        raw = list(sys.argv[1:] if args is None else args)
        install_fast_coercion(self, HELP_NAMES)  # no Pydantic for plain values (cli/params.py)
        norm = normalize(self, raw)
        INVOCATION.json = norm.json
        try:
            # Ctrl-C stops the command between two messages, not inside one (persist.interrupts).
            with deferred(notice=_stopping_notice):
                rv = super().main(norm.args, prog_name or "graphcopy", complete_var, standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
        except typer.TyperException as exc:  # Click's usage errors (UsageError, BadParameter, NoSuchOption...)
            if type(exc).__name__ == "NoArgsIsHelpError":
                typer.echo(exc.format_message())
                code = 0
            else:
                code = getattr(exc, "exit_code", 2)
                fail_line(self._usage_message(exc, norm.command_path), code)
        except typer.Abort:
            fail_line("aborted", 1)
            code = 1
        except KeyboardInterrupt:
            fail_line("interrupted; committed messages stay committed, queued ones run with the next command", 130)
            code = 130
        except GraphcopyError as exc:  # a typed error raised outside a command's own handler
            fail_line(str(exc), exc.exit_code)
            code = exc.exit_code
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback reaches a user
            code = report_internal_error(exc)
        else:
            code = rv if isinstance(rv, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)

    def _usage_message(self, exc: typer.TyperException, path: list[str]) -> str:
        message = exc.format_message().strip()
        unknown = message.startswith("No such command")
        message = message.split(". Did you mean")[0]
        if message:
            message = message[0].lower() + message[1:]
        where = " ".join(["graphcopy", *path])
        if unknown:
            typed = message.split("'")[1] if message.count("'") >= 2 else ""
            group = self if not path else self._find(path)
            names = sorted(getattr(group, "commands", {}) or {})
            if not path and typed in DFX_WORDS:
                return f"{message.rstrip('.')}: {DFX_WORDS[typed]}"
            close = get_close_matches(typed, names, n=3)
            hint = f"; did you mean {', '.join(f'`{where} {c}`' for c in close)}?" if close else ""
            return f"{message.rstrip('.')}{hint} (nothing was run; `{where} --help` lists the commands)"
        return f"{message.rstrip('.')} (see `{where} --help`)"

    def _find(self, path: list[str]) -> Any:
        cmd: Any = self
        for name in path:
            cmd = (getattr(cmd, "commands", {}) or {}).get(name, cmd)
        return cmd


HELP_NAMES = ["-h", "--help"]
HELP = ("Host Motoko/IC canisters with durable SQL state, and upgrade them without losing data.\n\n"
        "Global options (--db, --identity, --caller) and --json may stand before or after the command.")

app = typer.Typer(
    name="graphcopy",
    cls=GraphcopyGroup,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": HELP_NAMES},
)
db_app = typer.Typer(help="graphcopy's own database schema (Alembic revisions).", no_args_is_help=True,
                     rich_markup_mode=None)
app.add_typer(db_app, name="db")
snapshot_app = typer.Typer(help="Snapshots of a canister's state (pages shared between snapshots).",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(snapshot_app, name="snapshot")
identity_app = typer.Typer(help="Your identities (kept per user, like dfx's): the principal you act as.",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(identity_app, name="identity")
pipeline_app = typer.Typer(help="Migration pipelines: upgrade many canisters with N workers.", no_args_is_help=True,
                           rich_markup_mode=None)
app.add_typer(pipeline_app, name="pipeline")
cache_app = typer.Typer(help="The per-user cache of compiled modules (never in the store).", no_args_is_help=True,
                        rich_markup_mode=None)
app.add_typer(cache_app, name="cache")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit(0)


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(
        "--db", metavar="URL", show_default=False,
        help="Database URL (default: $GRAPHCOPY_DATABASE_URL or sqlite:///graphcopy.db in the working directory; "
             "postgresql://... for PostgreSQL).")] = None,
    identity: Annotated[str | None, typer.Option(
        "--identity", metavar="NAME", show_default=False,
        help="Act as this identity (`graphcopy identity list`; 'anonymous' is built in) instead of the one in "
             "use.")] = None,
    caller: Annotated[str | None, typer.Option(
        "--caller", metavar="PRINCIPAL", show_default=False,
        help="Send calls as this principal (text, or 'anonymous'). A principal none of your identities has "
             "is never a controller.")] = None,
    version: Annotated[bool, typer.Option(
        "--version", "-V", is_eager=True, callback=_show_version, help="Print graphcopy's version and exit.")]
        = False,
) -> None:
    ctx.obj = Options(db=db, caller=caller, identity=identity)


__all__ = ["INTERNAL_ERROR_EXIT", "GraphcopyGroup", "Options", "app", "cache_app", "db_app", "identity_app",
           "pipeline_app", "report_internal_error", "snapshot_app", "version_text"]
