"""Upgrade commands: check, upgrade, stabilize-before-upgrade, destabilize-after-upgrade, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import app
from cli.common import JsonOpt, ScaleOpt, err, errors, fail, opened, out, print_json, read_wasm


@app.command()
def check(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Old side: a .wasm, a .most file, or an installed canister's name.")],
    new: Annotated[str, typer.Argument(help="New side: a .wasm, a .most file, or an installed canister's name.")],
    as_json: JsonOpt = False,
) -> None:
    """Is an upgrade from OLD to NEW safe for the stable data? Lists every incompatibility.

    Exit code 0 compatible, 1 incompatible, 2 error (unreadable input, no stable signature)."""
    from migrate.check import check as check_fn

    def needs_store() -> bool:
        return not (Path(old).is_file() and Path(new).is_file())

    with errors():
        if needs_store():
            with opened(ctx) as store:
                result = check_fn(old, new, store=store)
        else:
            result = check_fn(old, new)
    if as_json:
        print_json(result.to_dict())
    else:
        out.print(result.format_text(), highlight=False, markup=False)
    if not result.compatible:
        raise typer.Exit(1)


def _apply_scale(store: Any, scale: float | None, name: str | None = None) -> None:
    """--performance-counter-scale; a resumed migration reuses the scale it was started with unless
    a scale is given (flag or environment)."""
    import os

    if scale is not None:
        store.limits.performance_counter_scale = scale
        return
    if name is None or os.environ.get("GRAPHCOPY_PERFORMANCE_COUNTER_SCALE"):
        return
    from migrate.record import read, unfinished

    rec = read(store, name)
    if unfinished(rec) and rec is not None and rec.get("performance_counter_scale"):
        store.limits.performance_counter_scale = float(rec["performance_counter_scale"])


@app.command()
def upgrade(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    wasm: Annotated[Path | None, typer.Argument(
        help="The new module (.wasm or .wasm.gz); optional with --resume.", show_default=False)] = None,
    arg: Annotated[str | None, typer.Option(
        "--arg", help="post_upgrade argument in Candid text (typed by the new module's init arguments).")] = None,
    mode: Annotated[str, typer.Option(
        "--mode", help="auto (keep if compatible and same layout, graph copy if the layout changes, refuse if "
                       "incompatible), keep, replace or graph-copy.")] = "auto",
    skip_pre_upgrade: Annotated[bool, typer.Option(
        "--skip-pre-upgrade", help="Do not run the old module's pre_upgrade hook (last resort).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish an interrupted graph-copy migration (WASM may be left out).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Let an incompatible keep reach the canister's own check (it traps and rolls back), or "
                        "allow a replace that discards stable variables.")] = False,
    no_snapshot: Annotated[bool, typer.Option(
        "--no-snapshot", help="Do not take a snapshot first (then `graphcopy rollback` cannot undo this upgrade).")]
        = False,
    scale: ScaleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upgrade a canister: print the plan, then keep the heap, replace it, or graph-copy it.

    A snapshot is taken first (unless --no-snapshot); `graphcopy rollback NAME` restores it."""
    from cli.progress import MigrationProgress
    from migrate import UpgradeRefusedError, plan_upgrade
    from migrate import upgrade as run_upgrade
    from persist import api
    from persist.candid import encode_args
    from persist.host.module import parse_module

    with opened(ctx) as store, errors():
        data = read_wasm(wasm) if wasm is not None else None
        arg_bytes = None
        if arg is not None:
            if data is None:
                raise fail("--arg needs the WASM (its init arguments type the argument)", 2)
            iface = api.module_interface(parse_module(data))
            arg_bytes = encode_args(arg, iface.init_args if iface is not None else None)
        _apply_scale(store, scale, name)
        if data is None and not resume:
            raise fail("missing WASM: give the module to upgrade to (or --resume to finish a migration)", 2)
        plan = plan_upgrade(store, name, data, mode, force=force, skip_pre_upgrade=skip_pre_upgrade)
        if not as_json:
            out.print(plan.format_text(), highlight=False, soft_wrap=True, markup=False)
        try:
            with MigrationProgress(err, name, enabled=not as_json) as progress:
                outcome = run_upgrade(store, name, data, arg=arg_bytes, mode=mode, skip_pre_upgrade=skip_pre_upgrade,
                                      dry_run=dry_run, resume=resume, force=force, on_progress=progress,
                                      snapshot=not no_snapshot)
        except UpgradeRefusedError as exc:
            if as_json:
                print_json({"refused": True, "error": str(exc), "plan": exc.plan.to_dict()})
            raise
    if as_json:
        print_json(outcome.to_dict())
    else:
        out.print(outcome.summary(), highlight=False, markup=False)
        for child in outcome.children:
            out.print(f"  {child.describe()}", highlight=False, markup=False)


def _graph_copy_step(ctx: typer.Context, name: str, scale: float | None, as_json: bool, step: str) -> None:
    from cli.progress import MigrationProgress, describe
    from migrate import destabilize, stabilize

    with opened(ctx) as store, errors():
        _apply_scale(store, scale, name)
        with MigrationProgress(err, name, enabled=not as_json) as progress:
            rec = (stabilize if step == "stabilize" else destabilize)(store, name, on_progress=progress)
    if as_json:
        print_json(rec)
    elif step == "stabilize":
        out.print(f"{name}: stabilized ({describe(rec)}); now `graphcopy upgrade {name} WASM --mode graph-copy`",
                  highlight=False)
    else:
        out.print(f"{name}: destabilized, migration done ({describe(rec)})", highlight=False)


@app.command("stabilize-before-upgrade")
def stabilize_before_upgrade(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    scale: ScaleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy a Motoko canister's heap into stable memory (graph copy), every increment to the end."""
    _graph_copy_step(ctx, name, scale, as_json, "stabilize")


@app.command("destabilize-after-upgrade")
def destabilize_after_upgrade(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    scale: ScaleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a Motoko canister's heap from stable memory after a graph-copy upgrade."""
    _graph_copy_step(ctx, name, scale, as_json, "destabilize")


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    as_json: JsonOpt = False,
) -> None:
    """Restore the state from before the canister's last upgrade (the snapshot that upgrade took)."""
    from persist.api import snapshots

    with opened(ctx) as store, errors():
        info = snapshots.rollback(store, name)
    if as_json:
        print_json(info)
    else:
        out.print(f"{name}: rolled back to snapshot {info.id} (module {(info.module_hash or '-')[:16]}…)",
                  highlight=False)
