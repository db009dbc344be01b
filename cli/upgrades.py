"""Upgrade commands: check, upgrade, stabilize-before-upgrade, destabilize-after-upgrade, rollback.

:func:`deploy_and_report` is the one way the CLI installs or upgrades (``install``, ``upgrade``,
``deploy``): the plan printed before anything happens, progress on stderr, a refused plan and an
interrupted graph copy reported with what to do next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from cli.app import app
from cli.calls import ArgOpt, ArgTypeOpt, ArgumentFileOpt, init_argument
from cli.common import (
    JsonOpt,
    ScaleOpt,
    confirm,
    err,
    errors,
    fail,
    opened,
    out,
    print_json,
    read_wasm,
)
from persist.errors import CanisterTrapError

PersistenceOpt = Annotated[Literal["keep", "replace"] | None, typer.Option(
    "--wasm-memory-persistence", show_default=False,
    help="Upgrades: keep the Wasm heap (--mode keep) or replace it (--mode replace).")]
UnchangedOpt = Annotated[bool, typer.Option(
    "--upgrade-unchanged", help="Upgrade even if the canister already runs this module (else it is skipped).")]
SkipPreUpgradeOpt = Annotated[bool, typer.Option(
    "--skip-pre-upgrade", help="Do not run the old module's pre_upgrade hook (last resort; Motoko needs --force).")]
NoSnapshotOpt = Annotated[bool, typer.Option(
    "--no-snapshot", help="Do not take a snapshot first (then `graphcopy rollback` cannot undo this).")]


def upgrade_mode_for(persistence: str | None, mode: str = "auto") -> str:
    """dfx's ``--wasm-memory-persistence keep|replace`` as graphcopy's upgrade mode."""
    if persistence is None:
        return mode
    if mode not in ("auto", persistence):
        raise fail(f"--wasm-memory-persistence {persistence} contradicts --mode {mode}", 2)
    return persistence


@contextmanager
def reporting(store: Any, name: str, as_json: bool) -> Iterator[tuple[Callable[[Any], None], Any]]:
    """``(on_plan, on_progress)`` for ``migrate.upgrade`` / ``migrate.deploy``: the plan on stdout,
    progress on stderr; a refused plan exits 1 (its plan in the JSON error), Ctrl-C exits 130 with
    the command that finishes an interrupted graph copy."""
    from cli.progress import MigrationProgress
    from migrate import UpgradeRefusedError

    def on_plan(plan: Any) -> None:
        if not as_json:
            out.print(plan.format_text(), highlight=False, soft_wrap=True, markup=False)

    try:
        with MigrationProgress(err, name, enabled=not as_json) as progress:
            yield on_plan, progress
    except UpgradeRefusedError as exc:
        raise fail(str(exc), exc.exit_code, {"refused": True, "plan": exc.plan.to_dict()}) from None
    except KeyboardInterrupt:
        raise fail(_interrupted(store, name), 130) from None


def _interrupted(store: Any, name: str) -> str:
    from migrate.record import read, resume_command

    try:
        command = resume_command(name, read(store, name))
    except Exception:  # noqa: BLE001 - the store itself may be what was interrupted
        command = None
    if command is None:
        return f"interrupted; nothing of the upgrade of {name} was committed (it is one transaction)"
    return (f"interrupted; the graph-copy migration of {name} stopped after its last committed increment: "
            f"finish it with `{command}`")


def confirm_reinstall(store: Any, name: str, *, snapshot: bool, yes: bool) -> None:
    """A reinstall of a canister with a module wipes its state: ask first (``--yes`` for scripts)."""
    from persist import api
    from persist.errors import CanisterNotFoundError

    try:
        if api.status(store, name).module_hash is None:
            return
    except CanisterNotFoundError:
        return
    kept = f" (a snapshot is taken first: `graphcopy rollback {name}` undoes it)" if snapshot else ""
    confirm(f"Reinstall canister {name}? Its heap, stable memory and logs are wiped{kept}.", yes)


def deploy_and_report(store: Any, name: str, data: bytes, *, mode: str, upgrade_mode: str, arg_bytes: bytes | None,
                      as_json: bool, upgrade_unchanged: bool, skip_pre_upgrade: bool = False, force: bool = False,
                      dry_run: bool = False, snapshot: bool = True, scale: float | None = None) -> None:
    """Install or upgrade through ``migrate.deploy`` and print what happened."""
    from migrate.deploy import deploy

    with reporting(store, name, as_json) as (on_plan, progress):
        try:
            res = deploy(store, name, data, arg=arg_bytes, mode=mode, upgrade_mode=upgrade_mode,
                         upgrade_unchanged=upgrade_unchanged, skip_pre_upgrade=skip_pre_upgrade, force=force,
                         dry_run=dry_run, snapshot=snapshot, on_plan=on_plan, on_progress=progress,
                         performance_counter_scale=scale)
        except CanisterTrapError as exc:
            if not as_json:  # a failed first install leaves no canister whose log could keep them
                for line in exc.prints:
                    err.print(f"[dim]{name}:[/] {line}", highlight=False)
            raise
    if as_json:
        print_json(res.to_dict())
    else:
        out.print(res.summary(), highlight=False, markup=False)


@app.command()
def check(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="Old side: a .wasm, a .most file, or an installed canister's name.")],
    new: Annotated[str, typer.Argument(help="New side: a .wasm, a .most file, or an installed canister's name.")],
    as_json: JsonOpt = False,
) -> None:
    """Is an upgrade from OLD to NEW safe for the stable data? Lists every incompatibility.

    Exit code 0 compatible, 1 incompatible, 2 error (no such file or canister, no stable signature)."""
    from migrate.check import check as check_fn
    from migrate.check import names_a_file

    with errors():
        if names_a_file(old) and names_a_file(new):  # no store needed (and none is created)
            result = check_fn(old, new)
        else:
            with opened(ctx) as store:
                result = check_fn(old, new, store=store)
    if as_json:
        print_json(result.to_dict())
    else:
        out.print(result.format_text(), highlight=False, markup=False)
    if not result.compatible:
        raise typer.Exit(1)


@app.command()
def upgrade(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    wasm: Annotated[Path | None, typer.Argument(
        help="The new module (.wasm or .wasm.gz); optional with --resume.", show_default=False)] = None,
    arg: ArgOpt = None,
    argument_file: ArgumentFileOpt = None,
    arg_type: ArgTypeOpt = "idl",
    mode: Annotated[str, typer.Option(
        "--mode", "-m", help="auto (keep if compatible and same layout, graph copy if the layout changes, refuse "
                             "if incompatible), keep, replace or graph-copy.")] = "auto",
    wasm_memory_persistence: PersistenceOpt = None,
    upgrade_unchanged: UnchangedOpt = False,
    skip_pre_upgrade: SkipPreUpgradeOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")] = False,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Finish an interrupted graph-copy migration (WASM may be left out).")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Let an incompatible keep reach the canister's own check (it traps and rolls back), or "
                        "allow a replace that discards stable variables.")] = False,
    no_snapshot: NoSnapshotOpt = False,
    scale: ScaleOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upgrade a canister: print the plan, then keep the heap, replace it, or graph-copy it.

    A snapshot is taken first (unless --no-snapshot); `graphcopy rollback NAME` restores it. A module
    the canister already runs is skipped unless --upgrade-unchanged."""
    from migrate import upgrade as run_upgrade

    with opened(ctx) as store, errors():
        mode = upgrade_mode_for(wasm_memory_persistence, mode)
        data = read_wasm(wasm, name) if wasm is not None else None
        if data is None and (arg is not None or argument_file is not None):
            raise fail("--arg needs the WASM (its init arguments type the argument)", 2)
        arg_bytes = init_argument(data, arg, argument_file, arg_type) if data is not None else None
        if data is None and not resume:
            raise fail("missing WASM: give the module to upgrade to (or --resume to finish a migration)", 2)
        with reporting(store, name, as_json) as (on_plan, progress):
            outcome = run_upgrade(store, name, data, arg=arg_bytes, mode=mode, skip_pre_upgrade=skip_pre_upgrade,
                                  dry_run=dry_run, resume=resume, force=force, on_progress=progress,
                                  snapshot=not no_snapshot, skip_unchanged=not upgrade_unchanged, on_plan=on_plan,
                                  performance_counter_scale=scale)
    if as_json:
        print_json(outcome.to_dict())
    else:
        out.print(outcome.summary(), highlight=False, markup=False)
        for child in outcome.children:
            out.print(f"  {child.describe()}", highlight=False, markup=False)


def _graph_copy_step(ctx: typer.Context, name: str, scale: float | None, as_json: bool, step: str) -> None:
    from cli.progress import describe
    from migrate import destabilize, stabilize

    with opened(ctx) as store, errors(), reporting(store, name, as_json) as (_, progress):
        fn = stabilize if step == "stabilize" else destabilize
        rec = fn(store, name, on_progress=progress, performance_counter_scale=scale)
    if as_json:
        print_json(rec)
    elif step == "stabilize":
        out.print(f"{name}: stabilized ({describe(rec)}); now `graphcopy upgrade {name} WASM --mode graph-copy`",
                  highlight=False, markup=False)
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
    """Restore the state from before the canister's last upgrade or reinstall (the snapshot it took)."""
    from persist.api import snapshots

    with opened(ctx) as store, errors():
        info = snapshots.rollback(store, name)
    if as_json:
        print_json(info)
    else:
        out.print(f"{name}: rolled back to snapshot {info.id} (module {(info.module_hash or '-')[:16]}…)",
                  highlight=False)
        if info.skipped:
            err.print(f"note: passed over snapshot {', '.join(map(str, info.skipped))}: taken before an upgrade "
                      "that never committed (its process was killed or it failed)", highlight=False)
