"""The Typer application, its command groups and its global options (``--db``, ``--caller``)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

app = typer.Typer(
    name="graphcopy",
    help="Host Motoko/IC canisters with durable SQL state, and upgrade them without losing data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="graphcopy's own database schema (Alembic revisions).", no_args_is_help=True)
app.add_typer(db_app, name="db")
snapshot_app = typer.Typer(help="Snapshots of a canister's state (pages shared between snapshots).",
                           no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")
pipeline_app = typer.Typer(help="Migration pipelines: upgrade many canisters with N workers.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")


@dataclasses.dataclass
class Options:
    db: str | None = None
    caller: str | None = None


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[str | None, typer.Option(
        "--db", help="Database URL (default: $GRAPHCOPY_DATABASE_URL or sqlite:///graphcopy.db).",
        show_default=False)] = None,
    caller: Annotated[str | None, typer.Option(
        "--caller", help="Call as this principal (text, or 'anonymous') instead of the store's identity.",
        show_default=False)] = None,
) -> None:
    ctx.obj = Options(db=db, caller=caller)

