"""Schema commands: db upgrade, db current, db history (graphcopy's own Alembic revisions)."""

from __future__ import annotations

from typing import Any

import typer

from cli.app import db_app
from cli.common import JsonOpt, Options, errors, out, print_json


def _engine(ctx: typer.Context) -> Any:
    from persist.store import db

    opts: Options = ctx.find_root().obj
    return db.create_engine_for(db.resolve_url(opts.db))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Apply pending schema revisions."""
    from persist.store import db

    with errors():
        engine = _engine(ctx)
        try:
            before = db.current_revision(engine)
            db.upgrade_schema(engine)
            after = db.current_revision(engine)
        finally:
            engine.dispose()
    if as_json:
        print_json({"current": after, "before": before})
        return
    out.print(f"schema at {after}" + (f" (was {before})" if before != after else " (up to date)"))


@db_app.command("current")
def db_current(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Show the store's schema revision."""
    from persist.store import db

    with errors():
        engine = _engine(ctx)
        try:
            rev = db.current_revision(engine)
        finally:
            engine.dispose()
        head = db.head_revision()
    if as_json:
        print_json({"current": rev, "head": head})
    else:
        out.print(f"{rev or '(empty database)'}" + (" (head)" if rev == head else f" (head is {head})"))


@db_app.command("history")
def db_history(as_json: JsonOpt = False) -> None:
    """List the schema revisions graphcopy knows."""
    from persist.store import db

    revs = db.history()
    if as_json:
        print_json([{"revision": r, "message": m} for r, m in revs])
        return
    for r, m in revs:
        out.print(f"{r}  {m}", highlight=False)
