"""From Motoko source to a canister: ``graphcopy build`` and ``graphcopy deploy``.

Both compile with the pinned ``moc`` (``toolchain.moc``: the npm package ``motoko``, run by Node),
with ``--enhanced-migration DIR`` for a migration chain. ``deploy`` then installs the module or
upgrades the canister to it through the same path as ``install`` / ``upgrade`` (the plan first, a
snapshot, keep or graph copy), so a Motoko developer goes from a source file to a rehearsed upgrade
without a second tool. A missing Node or compiler is one line that says what to install.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import app
from cli.calls import ArgOpt, ArgTypeOpt, ArgumentFileOpt, init_argument
from cli.common import (
    INVOCATION,
    JsonOpt,
    ScaleOpt,
    YesOpt,
    err,
    errors,
    fail,
    human_bytes,
    opened,
    out,
    print_json,
    read_file,
    with_spinner,
)
from cli.upgrades import (
    NoSnapshotOpt,
    PersistenceOpt,
    UnchangedOpt,
    confirm_reinstall,
    deploy_and_report,
    upgrade_mode_for,
)

MigrationOpt = Annotated[Path | None, typer.Option(
    "--enhanced-migration", metavar="DIR", show_default=False,
    help="Compile with this enhanced migration chain (moc's --enhanced-migration: one module per step).")]


@contextmanager
def _compiler_errors() -> Iterator[None]:
    """moc's failures as graphcopy errors: the diagnostics (file:line.col: ...) then one error line."""
    from toolchain.moc import MocError, MocUnavailable

    try:
        yield
    except MocUnavailable as exc:
        raise fail(f"cannot compile Motoko here: {exc}", 1) from None
    except MocError as exc:
        if not INVOCATION.json:
            for d in exc.diagnostics:
                err.print(str(d), highlight=False, markup=False, soft_wrap=True)
        first = str(exc).splitlines()[0]
        raise fail(first, 2, {"diagnostics": [d.to_json() for d in exc.diagnostics]}) from None


def compile_source(source: Path, enhanced_migration: Path | None, quiet: bool) -> Any:
    """Compile a ``.mo`` file with the pinned moc (warnings on stderr); the ``CompiledCanister``."""
    from toolchain.moc import compile_motoko

    if not source.is_file():
        read_file(source)  # "no such file", exit 2
    with _compiler_errors():
        compiled = with_spinner(f"compiling {source} with moc…", quiet,
                                lambda: compile_motoko(source, migrations=enhanced_migration))
    if not quiet:
        for w in compiled.warnings:
            err.print(str(w), highlight=False, markup=False, soft_wrap=True)
    return compiled


@app.command()
def build(
    source: Annotated[Path, typer.Argument(help="The Motoko actor (.mo).")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="FILE.wasm", show_default=False,
        help="Where to write the module (default: next to the source); the .did and .most go beside it.")] = None,
    enhanced_migration: MigrationOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compile a Motoko actor with the pinned moc: the module (.wasm), its Candid (.did) and stable types (.most)."""
    with errors():
        compiled = compile_source(source, enhanced_migration, as_json)
        target = output if output is not None else source.with_suffix(".wasm")
        stem = target.name.removesuffix(".wasm")
        paths = compiled.write(target.parent, stem)
    if as_json:
        print_json({"source": str(source), "moc_version": compiled.moc_version, "module_hash": compiled.wasm_sha256,
                    "bytes": len(compiled.wasm), "files": {k: str(v) for k, v in paths.items()},
                    "warnings": [w.to_json() for w in compiled.warnings], "from_cache": compiled.from_cache})
        return
    out.print(f"wrote {paths['wasm']} ({human_bytes(len(compiled.wasm))}, module {compiled.wasm_sha256[:16]}…), "
              f"{paths['did'].name}, {paths['most'].name} ({compiled.moc_version})", highlight=False, markup=False)


@app.command()
def deploy(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name (created if new).")],
    source: Annotated[Path, typer.Argument(help="The Motoko actor (.mo), or a built module (.wasm, .wasm.gz).")],
    arg: ArgOpt = None,
    argument_file: ArgumentFileOpt = None,
    arg_type: ArgTypeOpt = "idl",
    mode: Annotated[str, typer.Option(
        "--mode", "-m", help="auto (install if new, else upgrade), install, reinstall or upgrade.")] = "auto",
    upgrade_mode: Annotated[str, typer.Option(
        "--upgrade-mode", help="How to upgrade: auto, keep, replace or graph-copy (as `graphcopy upgrade --mode`).")]
        = "auto",
    wasm_memory_persistence: PersistenceOpt = None,
    enhanced_migration: MigrationOpt = None,
    upgrade_unchanged: UnchangedOpt = False,
    no_snapshot: NoSnapshotOpt = False,
    scale: ScaleOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Compile SOURCE with the pinned moc and install it on NAME, or upgrade NAME to it (the plan first).

    A module the canister already runs is skipped unless --upgrade-unchanged."""
    with errors():
        if source.suffix == ".mo":
            data = compile_source(source, enhanced_migration, as_json).wasm
        else:
            if enhanced_migration is not None:
                raise fail("--enhanced-migration is for compiling a .mo source, not a built module", 2)
            data = read_file(source, swapped_with=name, order="NAME SOURCE")
    with opened(ctx) as store, errors():
        arg_bytes = init_argument(data, arg, argument_file, arg_type)
        if mode == "reinstall":
            confirm_reinstall(store, name, snapshot=not no_snapshot, yes=yes)
        deploy_and_report(store, name, data, mode=mode, upgrade_mode=upgrade_mode_for(wasm_memory_persistence,
                                                                                      upgrade_mode),
                          arg_bytes=arg_bytes, as_json=as_json, upgrade_unchanged=upgrade_unchanged,
                          snapshot=not no_snapshot, scale=scale)

