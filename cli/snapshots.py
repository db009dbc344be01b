"""Snapshot commands: snapshot take, list, load, delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.app import snapshot_app
from cli.common import JsonOpt, errors, human_bytes, opened, out, print_json, when


def _snapshot_line(info: Any) -> str:
    label = f" {info.label!r}" if info.label else ""
    return (f"snapshot {info.id}{label} of {info.canister}: module {(info.module_hash or '-')[:16]}…, "
            f"heap {human_bytes(info.heap_pages * 65536)} ({info.stored_heap_pages} stored pages), "
            f"stable {human_bytes(info.stable_pages * 65536)} ({info.stored_stable_pages} stored pages), "
            f"{human_bytes(info.bytes_new)} new")


@snapshot_app.command("take")
def snapshot_take(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    label: Annotated[str | None, typer.Option("--label", help="A note kept with the snapshot.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Snapshot a canister's module, heap, stable memory and metadata (only new pages cost storage)."""
    from persist.api import snapshots

    with opened(ctx) as store, errors():
        info = snapshots.take_snapshot(store, name, label=label)
    if as_json:
        print_json(info)
    else:
        out.print(_snapshot_line(info), highlight=False)


@snapshot_app.command("list")
def snapshot_list(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    as_json: JsonOpt = False,
) -> None:
    """List a canister's snapshots, oldest first."""
    from persist.api import snapshots

    with opened(ctx) as store, errors():
        infos = snapshots.list_snapshots(store, name)
    if as_json:
        print_json(infos)
        return
    if not infos:
        out.print(f"{name}: no snapshots", highlight=False)
        return
    t = Table("id", "taken", "label", "module", "version", "heap", "stable", "new bytes", "purpose")
    for i in infos:
        purpose = i.purpose or ""
        if i.rolled_back_at_ns:
            purpose += " (rolled back)"
        t.add_row(str(i.id), when(i.created_at_ns), escape(i.label or ""), (i.module_hash or "-")[:16],
                  str(i.version), f"{i.stored_heap_pages}/{i.heap_pages}", f"{i.stored_stable_pages}/{i.stable_pages}",
                  human_bytes(i.bytes_new), purpose)
    out.print(t)


@snapshot_app.command("load")
def snapshot_load(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    snapshot_id: Annotated[int, typer.Argument(help="The snapshot's id (see `graphcopy snapshot list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Restore a canister to a snapshot exactly (module, memories, metadata); allowed mid-migration."""
    from persist.api import snapshots

    with opened(ctx) as store, errors():
        info = snapshots.load_snapshot(store, name, snapshot_id)
    if as_json:
        print_json(info)
    else:
        out.print(f"{name}: loaded snapshot {info.id} (module {(info.module_hash or '-')[:16]}…)", highlight=False)


@snapshot_app.command("delete")
def snapshot_delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    snapshot_id: Annotated[int, typer.Argument(help="The snapshot's id.")],
    as_json: JsonOpt = False,
) -> None:
    """Delete a snapshot (and the stored pages no other snapshot uses)."""
    from persist.api import snapshots

    with opened(ctx) as store, errors():
        snapshots.delete_snapshot(store, name, snapshot_id)
    if as_json:
        print_json({"name": name, "deleted": snapshot_id})
    else:
        out.print(f"{name}: deleted snapshot {snapshot_id}", highlight=False)
