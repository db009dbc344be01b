"""Snapshot commands: snapshot take (or create, as dfx and icp-cli say), list, load (or restore), delete."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.app import snapshot_app
from cli.common import (
    JsonOpt,
    WideOpt,
    errors,
    human_bytes,
    opened,
    out,
    print_json,
    print_table,
    short_hash,
    when,
    wide_output,
)


def _snapshot_line(info: Any) -> str:
    label = f" {info.label!r}" if info.label else ""
    return (f"snapshot {info.id}{label} of {info.canister}: module {(info.module_hash or '-')[:16]}…, "
            f"heap {human_bytes(info.heap_pages * 65536)} ({info.stored_heap_pages} stored pages), "
            f"stable {human_bytes(info.stable_pages * 65536)} ({info.stored_stable_pages} stored pages), "
            f"{human_bytes(info.bytes_new)} new")


@snapshot_app.command("create")
@snapshot_app.command("take")
def snapshot_take(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    label: Annotated[str | None, typer.Option("--label", help="A note kept with the snapshot.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Snapshot a canister's module, heap, stable memory and metadata (only new pages cost storage).

    `snapshot create` is the same command (dfx's and icp-cli's name)."""
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
    wide: WideOpt = False,
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
    wide = wide_output(wide)
    t = Table("id", "taken", "label", "module", "version", "heap", "stable", "new bytes", "purpose")
    t.columns[3].no_wrap = True
    for i in infos:
        purpose = i.purpose or ""
        if i.rolled_back_at_ns:
            purpose += " (rolled back)"
        if i.deleted_principal:
            purpose += f" (deleted canister {i.deleted_principal})"
        t.add_row(str(i.id), when(i.created_at_ns), escape(i.label or ""), short_hash(i.module_hash, wide),
                  str(i.version), f"{i.stored_heap_pages}/{i.heap_pages}", f"{i.stored_stable_pages}/{i.stable_pages}",
                  human_bytes(i.bytes_new), escape(purpose))
    print_table(t, wide)


@snapshot_app.command("restore")
@snapshot_app.command("load")
def snapshot_load(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    snapshot_id: Annotated[int, typer.Argument(help="The snapshot's id (see `graphcopy snapshot list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Restore a canister to a snapshot exactly (module, memories, metadata); allowed mid-migration.

    The snapshot a delete kept brings the deleted canister back. `snapshot restore` is the same command."""
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
