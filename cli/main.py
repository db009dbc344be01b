"""The ``graphcopy`` command line: a thin layer that parses, calls ``persist``/``migrate``, and prints.

The application and its global options are in :mod:`cli.app` (with :mod:`cli.argv`, which lets
the global options stand anywhere); each command group has its module (:mod:`cli.canisters`,
:mod:`cli.calls`, :mod:`cli.upgrades`, :mod:`cli.build`, :mod:`cli.snapshots`,
:mod:`cli.pipelines`, :mod:`cli.db`), importing which registers its commands; :mod:`cli.common`
holds error handling and output helpers. Commands import ``persist``/``migrate`` inside their
bodies, so ``graphcopy --help`` stays cheap.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import (  # noqa: F401  (registers)
    build,
    cache,
    calls,
    canisters,
    db,
    identity,
    pipelines,
    rehearse,
    snapshots,
    upgrades,
)
from cli.app import app
from cli.common import JsonOpt, Options, errors, out, print_json, real_console


@app.command()
def demo(
    ctx: typer.Context,
    entries: Annotated[int, typer.Option("--entries", help="How many ledger entries to load.", min=1)] = 20_000,
    as_json: JsonOpt = False,
) -> None:
    """Install the example canisters, load data, call them and show what happened (on SQLite by default)."""
    from cli.demo import run_demo

    opts: Options = ctx.obj
    with errors():
        report = run_demo(opts.db, entries=entries, console=None if as_json else real_console(out))
    if as_json:
        print_json(report)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
