"""``graphcopy rehearse DIR NEW_WASM``: an upgrade rehearsed on a downloaded IC snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.app import app
from cli.common import JsonOpt, ScaleOpt, err, errors, escape, fail, out, print_json, read_wasm


@app.command()
def rehearse(
    directory: Annotated[Path, typer.Argument(
        help="A snapshot directory, as `dfx canister snapshot download --dir` (or icp-cli) writes it.")],
    wasm: Annotated[Path, typer.Argument(help="The module to upgrade to (.wasm or .wasm.gz).")],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", help="Export the migrated state here (a directory `dfx canister snapshot upload --dir` takes).",
        show_default=False)] = None,
    verify: Annotated[list[str] | None, typer.Option(
        "--verify", help="A query to run before and after, compared as Candid text: METHOD or METHOD(ARGS). "
                         "Repeatable.", show_default=False)] = None,
    mode: Annotated[str, typer.Option("--mode", help="auto, keep, replace or graph-copy (as for upgrade).")] = "auto",
    arg: Annotated[str | None, typer.Option(
        "--arg", help="post_upgrade argument in Candid text (typed by the new module's init arguments).")] = None,
    force: Annotated[bool, typer.Option("--force", help="As for upgrade.")] = False,
    name: Annotated[str | None, typer.Option(
        "--name", help="The canister's name in the store (default: the directory's name).", show_default=False)] = None,
    store_url: Annotated[str | None, typer.Option(
        "--store", help="Keep the rehearsal in this store (a database URL); run again to continue a killed one. "
                        "Default: a scratch store, removed afterwards.", show_default=False)] = None,
    scale: ScaleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a downloaded IC snapshot into a scratch store, plan and run the upgrade, compare queries,
    report instructions against the IC's limits, and with --out export the migrated state.

    Exit code 0: the upgrade ran and every verify query replied the same; 1: refused, failed or a
    reply changed; 2: bad input."""
    from cli.progress import MigrationProgress, TransferProgress
    from migrate.rehearse import rehearse as run_rehearsal
    from migrate.verify import parse_verify
    from persist import api
    from persist.candid import encode_args
    from persist.host.module import parse_module

    with errors():
        data = read_wasm(wasm)
        queries = [parse_verify(v) for v in verify or []]
        arg_bytes = None
        if arg is not None:
            iface = api.module_interface(parse_module(data))
            arg_bytes = encode_args(arg, iface.init_args if iface is not None else None)
        label = name or directory.name
        with TransferProgress(err, enabled=not as_json) as transfer, \
                MigrationProgress(err, label, enabled=not as_json) as migration:
            report = run_rehearsal(
                directory, data, out=out_dir, verify=queries, mode=mode, arg=arg_bytes, force=force, name=name,
                store_url=store_url, performance_counter_scale=scale, on_transfer=transfer, on_migration=migration,
                on_phase=None if as_json else lambda p: err.print(f"{label}: {p}", highlight=False, markup=False))
    if as_json:
        print_json(report.to_dict())
    else:
        out.print(report.format_text(), highlight=False, markup=False, soft_wrap=True)
    if not report.ok:
        why = "rehearsal: " + ("the upgrade was refused" if report.refused else
                               f"the upgrade failed: {report.error}" if report.error else
                               "a verify query replied differently after the upgrade")
        if as_json:  # the report on stdout is the JSON answer (``"ok": false``); the line goes to stderr only
            err.print(f"[bold red]error:[/] {escape(why)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        raise fail(why, 1)
