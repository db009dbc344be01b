"""Snapshot commands: snapshot take (or create, as dfx and icp-cli say), list, load (or restore), delete;
import and export IC snapshot directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import snapshot_app
from cli.common import (
    JsonOpt,
    WideOpt,
    err,
    errors,
    escape,
    fail,
    human_bytes,
    new_table,
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
    t = new_table("id", "taken", "label", "module", "version", "heap", "stable", "new bytes", "purpose")
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


DirOpt = Annotated[Path | None, typer.Option(
    "--dir", help="The snapshot directory (as dfx names it); instead of the DIR argument.", show_default=False)]


@snapshot_app.command("import")
def snapshot_import(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The canister to create (or, with --into, to load the snapshot onto).")],
    directory: Annotated[Path | None, typer.Argument(
        help="A snapshot directory as `dfx canister snapshot download --dir` (or icp-cli) writes it.",
        show_default=False)] = None,
    dir_opt: DirOpt = None,
    into: Annotated[bool, typer.Option(
        "--into", help="Load onto the existing canister NAME (a graphcopy snapshot of it is taken first).")] = False,
    canister_id: Annotated[str | None, typer.Option(
        "--canister-id", help="Give the new canister this principal (its id on the IC).", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import an IC canister snapshot directory (metadata.json, wasm_module.bin, wasm_memory.bin, ...)."""
    from cli.progress import TransferProgress
    from persist.api.snapshot_transfer import import_snapshot

    path = _one_dir(directory, dir_opt)
    with opened(ctx) as store, errors(), TransferProgress(err, enabled=not as_json) as progress:
        res = import_snapshot(store, name, path, into=into, canister_id=canister_id, on_progress=progress)
    if as_json:
        print_json(res)
        return
    for w in res.warnings:
        err.print(f"warning: {w}", highlight=False, markup=False)
    how = "created from" if res.created else "loaded from"
    first = f" (graphcopy snapshot {res.snapshot_id} taken first)" if res.snapshot_id is not None else ""
    out.print(f"{res.name} ({res.principal}) {how} {res.directory}{first}: module {res.module_hash[:16]}…, "
              f"heap {human_bytes(res.heap_bytes)} ({res.stored_heap_pages} non-zero pages), stable "
              f"{human_bytes(res.stable_bytes)} ({res.stored_stable_pages}), {res.globals} globals, "
              f"{res.chunks} chunks, "
              f"canister version {res.canister_version}, taken {when(res.taken_at_timestamp)}", highlight=False,
              markup=False)


def _one_dir(directory: Path | None, dir_opt: Path | None) -> Path:
    if (directory is None) == (dir_opt is None):
        raise fail("give the snapshot directory once: as DIR or as --dir", 2)
    return directory if directory is not None else dir_opt  # type: ignore[return-value]


@snapshot_app.command("export")
def snapshot_export(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    args: Annotated[list[str] | None, typer.Argument(
        metavar="[ID] DIR", help="A graphcopy snapshot id (default: the current state), then the directory to "
                                 "write (new or empty).", show_default=False)] = None,
    dir_opt: DirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a canister (or one of its snapshots) as a directory `dfx canister snapshot upload --dir` takes."""
    from cli.progress import TransferProgress
    from persist.api.snapshot_transfer import export_snapshot

    rest = list(args or [])
    if dir_opt is not None:
        rest.append(str(dir_opt))
    if len(rest) not in (1, 2):
        raise fail("usage: graphcopy snapshot export NAME [ID] DIR", 2)
    snapshot_id: int | None = None
    if len(rest) == 2:
        if not rest[0].isdigit():
            raise fail(f"snapshot id {rest[0]!r} is not a number (see `graphcopy snapshot list {name}`)", 2)
        snapshot_id = int(rest[0])
    with opened(ctx) as store, errors(), TransferProgress(err, enabled=not as_json) as progress:
        res = export_snapshot(store, name, Path(rest[-1]), snapshot_id, on_progress=progress)
    if as_json:
        print_json(res)
        return
    for w in res.warnings:
        err.print(f"warning: {w}", highlight=False, markup=False)
    what = f"snapshot {res.snapshot_id}" if res.snapshot_id is not None else "current state"
    total = sum(res.files.values())
    out.print(f"{res.name}: {what} exported to {res.directory}: {len(res.files)} files, {human_bytes(total)} "
              f"({res.stored_heap_pages} heap + {res.stored_stable_pages} stable non-zero pages written); "
              f"upload it with `dfx canister snapshot upload <canister> --dir {res.directory}`", highlight=False,
              markup=False)
