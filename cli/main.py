"""The ``graphcopy`` command line: a thin layer that parses, calls ``persist``/``migrate``, and prints.

The application and its global options are in :mod:`cli.app`; each command group has its module
(:mod:`cli.canisters`, :mod:`cli.upgrades`, :mod:`cli.snapshots`, :mod:`cli.pipelines`,
:mod:`cli.db`), importing which registers its commands; :mod:`cli.common` holds error handling and
output helpers. Commands import ``persist``/``migrate`` inside their bodies, so ``graphcopy --help``
stays cheap.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli import canisters, db, pipelines, rehearse, snapshots, upgrades  # noqa: F401  (importing registers the commands)
from cli.app import Options, app
from cli.common import JsonOpt, errors, out, print_json


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
        report = run_demo(opts.db, entries=entries, console=None if as_json else out)
    if as_json:
        print_json(report)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
