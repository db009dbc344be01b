"""The ``graphcopy`` command line: a thin layer that parses, calls ``persist``/``migrate``, and prints.

Errors are printed as one line on stderr, and the exit code comes from the error's type
(``persist.errors``): 2 bad input (unknown canister, bad module, bad Candid), 3 store error,
4 database locked, 5 not authorized, 6 wrong canister state, 7 trap, 8 reject.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from persist.errors import CanisterTrapError, GraphcopyError

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

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ScaleOpt = Annotated[float | None, typer.Option(
    "--performance-counter-scale", min=0.0, show_default=False,
    help="Multiply what ic0.performance_counter reports (>1 makes Motoko's graph-copy increments smaller; "
         "default $GRAPHCOPY_PERFORMANCE_COUNTER_SCALE or 1, as on the IC).")]
# The trap text moc's runtime uses for every message during a graph-copy migration.
BLOCKED_TRAP = "Messages are blocked during stabilization"


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


def fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn graphcopy's typed errors into one line on stderr and the error's exit code."""
    try:
        yield
    except GraphcopyError as exc:
        raise fail(str(exc), exc.exit_code) from None
    except KeyboardInterrupt:
        raise fail("interrupted; committed messages stay committed, queued ones run with the next command", 130) \
            from None


@contextmanager
def opened(ctx: typer.Context) -> Iterator[Any]:
    from persist import open_store

    opts: Options = ctx.obj
    with errors():
        store = open_store(opts.db, caller=opts.caller)
        try:
            yield store
        finally:
            store.close()


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def when(ns: int) -> str:
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def with_spinner(text: str, quiet: bool, fn: Callable[[], T]) -> T:
    """Run ``fn`` under a spinner on stderr (only on a terminal, and not with --json)."""
    if quiet or not err.is_terminal:
        return fn()
    with err.status(text):
        return fn()


def read_wasm(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise GraphcopyError(f"cannot read {path}: {exc.strerror}") from exc


# --------------------------------------------------------------------------- canister commands


@app.command()
def install(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name (created if new).")],
    wasm: Annotated[Path, typer.Argument(help="The module (.wasm or .wasm.gz).")],
    arg: Annotated[str | None, typer.Option("--arg", help="Init argument in Candid text, e.g. '(42 : nat)'.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="install (empty canister) or reinstall (wipes state).")] =
        "install",
    as_json: JsonOpt = False,
) -> None:
    """Install a module on a canister, running its init."""
    from persist import api
    from persist.candid import encode_args
    from persist.host.module import parse_module

    with opened(ctx) as store, errors():
        data = read_wasm(wasm)
        iface = api.module_interface(parse_module(data))
        init_types = iface.init_args if iface is not None else None
        arg_bytes = encode_args(arg if arg is not None else "()", init_types)
        res = with_spinner(f"installing {name}…", as_json,
                           lambda: api.install(store, name, data, arg=arg_bytes, mode=mode))
    if as_json:
        print_json(res)
        return
    verb = "created and installed" if res.created else f"{res.mode}ed"
    out.print(f"{res.name} ({res.principal}) {verb}: module {res.module_hash[:16]}…, "
              f"heap {human_bytes(res.heap_bytes)}, {res.instructions:,} instructions", highlight=False)


@app.command()
def call(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    method: Annotated[str, typer.Argument(help="Method to call (update or query, as the module exports it).")],
    args: Annotated[str, typer.Argument(help="Arguments in Candid text, e.g. '(42 : nat, \"x\")'.")] = "()",
    as_json: JsonOpt = False,
) -> None:
    """Call a canister method; the reply is printed in Candid text."""
    from persist import api
    from persist.candid import decode_args, encode_args, format_args, values_to_json

    with opened(ctx) as store, errors():
        iface = api.interface(store, name)
        sig = iface.methods.get(method) if iface is not None else None
        kind = api.method_kind(store, name, method)
        arg_bytes = encode_args(args, sig.args if sig else None)
        try:
            res = with_spinner(f"calling {name}.{method}…", as_json, lambda: api.call(store, name, method, arg_bytes))
        except CanisterTrapError as exc:
            if BLOCKED_TRAP in str(exc):
                # Motoko's own words, plus what to do about them.
                raise fail(f"{exc} (a graph-copy migration is in progress: finish it with "
                           f"`graphcopy upgrade {name} --resume`)", exc.exit_code) from None
            raise
        rets = sig.rets if sig else None
        if as_json:
            print_json({"method": method, "kind": kind, "reply": format_args(res.reply, rets),
                        "value": values_to_json(decode_args(res.reply, rets), rets), "logs": res.logs})
            return
        for line in res.logs:
            err.print(f"[dim]{name}:[/] {line}", highlight=False)
        out.print(format_args(res.reply, rets), highlight=False, soft_wrap=True)


@app.command()
def status(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Canister name or principal.")],
           as_json: JsonOpt = False) -> None:
    """Show a canister's state, sizes, module, queue and history."""
    from persist import api

    with opened(ctx) as store, errors():
        st = api.status(store, name)
    if as_json:
        print_json(st)
        return
    t = Table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("name", st.name)
    t.add_row("principal", st.principal)
    t.add_row("status", st.status)
    t.add_row("module", st.module_hash or "(empty)")
    t.add_row("persistence", "enhanced orthogonal (EOP)" if st.eop else ("classical" if st.eop is False else "-"))
    t.add_row("heap", f"{human_bytes(st.heap_bytes)} ({st.stored_heap_pages} non-zero pages stored)")
    t.add_row("stable memory", f"{human_bytes(st.stable_bytes)} ({st.stored_stable_pages} non-zero pages stored)")
    t.add_row("controllers", ", ".join(st.controllers))
    t.add_row("version", str(st.version))
    t.add_row("timer", when(st.timer_ns))
    t.add_row("queued messages", str(st.pending_messages))
    t.add_row("open call contexts", str(st.open_call_contexts))
    t.add_row("log lines", str(st.log_lines))
    if st.migration:
        _migration_rows(t, st.migration)
    out.print(t)
    if st.migration and st.migration.get("history"):
        m = Table(title="migration history", title_justify="left")
        for col in ("time", "phase", "detail"):
            m.add_column(col)
        for e in st.migration["history"]:
            detail = {k: v for k, v in e.items() if k not in ("phase", "at_ns")}
            m.add_row(when(int(e.get("at_ns") or 0)), str(e.get("phase")),
                      escape(", ".join(f"{k}: {v}" for k, v in detail.items())))
        out.print(m)
    if st.history:
        h = Table(title="history", title_justify="left")
        for col in ("time", "event", "module", "detail"):
            h.add_column(col)
        for e in st.history:
            h.add_row(when(e.time_ns), e.kind, (e.module_hash or "")[:16], json.dumps(e.detail) if e.detail else "")
        out.print(h)


def _migration_rows(t: Table, rec: dict[str, Any]) -> None:
    """The migration record as status rows: its phase first, then what it has done."""
    from cli.progress import describe
    from migrate.record import unfinished

    phase = str(rec.get("phase"))
    started = int(rec.get("started_ns") or 0)
    if phase == "done":
        took = (int(rec.get("finished_ns") or 0) - started) / 1e9
        t.add_row("migration", f"graph copy done at {when(int(rec.get('finished_ns') or 0))} ({took:.1f} s)")
    elif phase == "failed":
        t.add_row("migration", escape(f"graph copy FAILED in {rec.get('failed_in')}: {rec.get('error')} (the canister "
                                      "refuses other messages until `graphcopy upgrade NAME --resume` finishes it)"))
    elif unfinished(rec):
        t.add_row("migration", f"graph copy IN PROGRESS: {phase} (since {when(started)}; once stabilization has "
                               "started the canister refuses other messages; finish it with "
                               "`graphcopy upgrade NAME --resume`)")
    t.add_row("  progress", describe(rec))
    if rec.get("target_module_hash"):
        t.add_row("  from -> to", f"{str(rec.get('from_module_hash'))[:16]}… -> {str(rec['target_module_hash'])[:16]}…")


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List the canisters in the store."""
    from persist import api

    with opened(ctx) as store, errors():
        rows = api.list_canisters(store)
    if as_json:
        print_json([{"name": s.name, "principal": s.principal, "status": s.status, "module_hash": s.module_hash,
                     "heap_bytes": s.heap_bytes, "stable_bytes": s.stable_bytes} for s in rows])
        return
    if not rows:
        out.print("no canisters yet: `graphcopy install NAME WASM` creates one")
        return
    t = Table()
    for col in ("name", "principal", "status", "module", "heap", "stable"):
        t.add_column(col)
    for s in rows:
        t.add_row(s.name, s.principal, s.status, (s.module_hash or "(empty)")[:16], human_bytes(s.heap_bytes),
                  human_bytes(s.stable_bytes))
    out.print(t)


@app.command()
def logs(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name or principal.")],
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines.", min=1)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a canister's log (debug prints and traps)."""
    from persist import api

    with opened(ctx) as store, errors():
        lines = api.logs(store, name, tail=tail)
    if as_json:
        print_json(lines)
        return
    for line in lines:
        style = "red" if line.kind == "trap" else ""
        prefix = "[TRAP] " if line.kind == "trap" else ""
        out.print(f"[dim]{line.seq:>5} {when(line.time_ns)}[/] [{style}]{prefix}{line.message}[/]"
                  if style else f"[dim]{line.seq:>5} {when(line.time_ns)}[/] {line.message}",
                  highlight=False, soft_wrap=True)


def _lifecycle(ctx: typer.Context, name: str, as_json: bool, op: str) -> None:
    from persist import api

    with opened(ctx) as store, errors():
        if op == "delete":
            api.delete(store, name)
            new = "deleted"
        else:
            new = api.stop(store, name) if op == "stop" else api.start(store, name)
    if as_json:
        print_json({"name": name, "status": new})
    else:
        out.print(f"{name}: {new}", highlight=False)


@app.command()
def stop(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Stop a canister (it refuses new calls)."""
    _lifecycle(ctx, name, as_json, "stop")


@app.command()
def start(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Start a stopped canister."""
    _lifecycle(ctx, name, as_json, "start")


@app.command()
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument()], as_json: JsonOpt = False) -> None:
    """Delete a stopped canister and all its state."""
    _lifecycle(ctx, name, as_json, "delete")


@app.command()
def tick(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Run queued messages and due timers (also done at the start of every call)."""
    from persist import api

    with opened(ctx) as store, errors():
        n = api.run_pending(store)
    if as_json:
        print_json({"executed": n})
    else:
        out.print(f"{n} message(s) executed")


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


# --------------------------------------------------------------------------- upgrades


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


# --------------------------------------------------------------------------- snapshots


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


# --------------------------------------------------------------------------- pipelines


def _event_line(e: dict[str, Any]) -> str:
    who = e.get("canister") or "-"
    msg = f": {e['message']}" if e.get("message") else ""
    return f"{who}: {e['event']} [{e.get('owner')}]{msg}"


@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The pipeline file (TOML).")],
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes (each opens the store).")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Run a pipeline: migrate every matching canister exactly once. Exit 1 if any canister failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from migrate.pipeline import load_pipeline, pipeline_status, run_pipeline

    with opened(ctx) as store, errors():
        pipeline = load_pipeline(file)
        total = len(pipeline_status(store, pipeline))
        use_bar = not as_json and err.is_terminal
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, disable=not use_bar)
        task = progress.add_task(pipeline.key, total=total)

        def on_event(e: dict[str, Any]) -> None:
            if e["event"] in ("done", "failed", "rolled-back"):
                progress.advance(task)
            if not as_json:
                colour = {"failed": "red", "rolled-back": "yellow", "worker-died": "red", "done": "green"}
                c = colour.get(e["event"])
                line = escape(_event_line(e))
                err.print(f"[{c}]{line}[/]" if c else line, highlight=False)

        with progress:
            report = run_pipeline(store, pipeline, workers=workers, on_event=on_event)
    if as_json:
        print_json(report.to_dict())
    else:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(report.counts.items()))
        out.print(f"pipeline {report.pipeline}: {len(report.canisters)} canister(s): {counts} "
                  f"in {report.seconds:.1f} s with {workers} worker(s)", highlight=False)
        for c in report.canisters:
            if c.state != "done":
                out.print(f"  {c.canister}: {c.state}{': ' + c.error if c.error else ''}", highlight=False,
                          markup=False)
    if not report.ok:
        raise typer.Exit(1)


@pipeline_app.command("status")
def pipeline_status_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The pipeline file (TOML).")],
    as_json: JsonOpt = False,
) -> None:
    """The state of every canister of a pipeline (pending, running, done, failed, rolled-back)."""
    from migrate.pipeline import load_pipeline, pipeline_status

    with opened(ctx) as store, errors():
        pipeline = load_pipeline(file)
        states = pipeline_status(store, pipeline)
    if as_json:
        print_json({"pipeline": pipeline.key, "canisters": states})
        return
    t = Table(title=f"pipeline {pipeline.key}")
    for col in ("canister", "state", "owner", "heartbeat", "attempts", "at target", "error"):
        t.add_column(col)
    for s in states:
        t.add_row(s.canister, s.state, s.owner or "-", when(s.heartbeat_ns), str(s.attempts),
                  "yes" if s.at_target else "no", escape(s.error or ""))
    out.print(t)


# --------------------------------------------------------------------------- db commands


def _engine(ctx: typer.Context) -> Any:
    from persist.store import db

    opts: Options = ctx.find_root().obj
    return db.create_engine_for(db.resolve_url(opts.db))


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
