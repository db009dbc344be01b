"""Canister commands: install, status, list, stop, start, delete, tick (call and logs: :mod:`cli.calls`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.app import app
from cli.calls import ArgOpt, ArgTypeOpt, ArgumentFileOpt, init_argument
from cli.common import (
    JsonOpt,
    WideOpt,
    YesOpt,
    confirm,
    errors,
    escape,
    human_bytes,
    new_table,
    opened,
    out,
    print_json,
    print_table,
    read_wasm,
    short_hash,
    to_jsonable,
    when,
    wide_output,
)
from cli.upgrades import (
    NoSnapshotOpt,
    PersistenceOpt,
    SkipPreUpgradeOpt,
    UnchangedOpt,
    confirm_reinstall,
    deploy_and_report,
    upgrade_mode_for,
)

if TYPE_CHECKING:
    from rich.table import Table


@app.command()
def install(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Canister name (created if new).")],
    wasm: Annotated[Path, typer.Argument(help="The module (.wasm or .wasm.gz).")],
    arg: ArgOpt = None,
    argument_file: ArgumentFileOpt = None,
    arg_type: ArgTypeOpt = "idl",
    mode: Annotated[str, typer.Option(
        "--mode", "-m", help="install (a new or empty canister), reinstall (wipes the state, after a snapshot), "
                             "upgrade (as `graphcopy upgrade`), auto (install or upgrade).")] = "install",
    wasm_memory_persistence: PersistenceOpt = None,
    upgrade_unchanged: UnchangedOpt = False,
    skip_pre_upgrade: SkipPreUpgradeOpt = False,
    no_snapshot: NoSnapshotOpt = False,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Install a module on a canister, running its init (or upgrade it, with --mode upgrade|auto)."""
    with opened(ctx) as store, errors():
        data = read_wasm(wasm, name)
        arg_bytes = init_argument(data, arg, argument_file, arg_type)
        if mode == "reinstall":
            confirm_reinstall(store, name, snapshot=not no_snapshot, yes=yes)
        deploy_and_report(store, name, data, mode=mode, upgrade_mode=upgrade_mode_for(wasm_memory_persistence),
                          arg_bytes=arg_bytes, as_json=as_json, upgrade_unchanged=upgrade_unchanged,
                          skip_pre_upgrade=skip_pre_upgrade, snapshot=not no_snapshot)


@app.command()
def status(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Canister name or principal.")],
           wide: WideOpt = False, as_json: JsonOpt = False) -> None:
    """Show a canister's state, sizes, module, queue, applied migrations and history."""
    from migrate import applied_migrations
    from persist import api

    with opened(ctx) as store, errors():
        st = api.status(store, name)
        applied = applied_migrations(store, name)
    if as_json:
        print_json({**to_jsonable(st), "applied_migrations": applied})
        return
    wide = wide_output(wide)
    t = new_table(show_header=False, box=None, pad_edge=False)
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("name", st.name)
    t.add_row("principal", st.principal)
    t.add_row("status", st.status)
    t.add_row("module", st.module_hash or "(empty)")
    t.add_row("persistence", "enhanced orthogonal (EOP)" if st.eop else ("classical" if st.eop is False else "-"))
    t.add_row("heap", f"{human_bytes(st.heap_bytes)} ({st.stored_heap_pages} non-zero pages stored)")
    t.add_row("stable memory", f"{human_bytes(st.stable_bytes)} ({st.stored_stable_pages} non-zero pages stored)")
    t.add_row("dirty tracking", escape(st.dirty_tracking_detail))
    t.add_row("controllers", ", ".join(st.controllers))
    if st.parent:
        t.add_row("parent", st.parent)
    t.add_row("cycles", f"{st.cycles:,} (notional: not metered)")
    if st.environment_variables:
        t.add_row("environment", escape(", ".join(f"{k}={v}" for k, v in st.environment_variables.items())))
    t.add_row("version", str(st.version))
    t.add_row("timer", when(st.timer_ns))
    t.add_row("queued messages", f"{st.pending_messages} (`graphcopy tick` runs them)" if st.pending_messages
              else "0")
    t.add_row("open call contexts", str(st.open_call_contexts))
    t.add_row("log lines", str(st.log_lines))
    if applied:
        t.add_row("migrations applied", f"{len(applied)}, last {escape(applied[-1])}")
        for n in applied:
            t.add_row("", escape(n))
    if st.migration:
        _migration_rows(t, st.name, st.migration, wide)
    print_table(t, wide)
    if st.migration and st.migration.get("history"):
        m = new_table(title="migration history", title_justify="left")
        for col in ("time", "phase", "detail"):
            m.add_column(col)
        for e in st.migration["history"]:
            detail = {k: v for k, v in e.items() if k not in ("phase", "at_ns")}
            m.add_row(when(int(e.get("at_ns") or 0)), str(e.get("phase")),
                      escape(", ".join(f"{k}: {v}" for k, v in detail.items())))
        print_table(m, wide)
    if st.history:
        h = new_table(title="history", title_justify="left")
        for col in ("time", "event", "module", "detail"):
            h.add_column(col, no_wrap=col == "module")
        for e in st.history:
            h.add_row(when(e.time_ns), e.kind, short_hash(e.module_hash, wide, ""),
                      escape(json.dumps(e.detail)) if e.detail else "")
        print_table(h, wide)


def _migration_rows(t: Table, name: str, rec: dict[str, Any], wide: bool) -> None:
    """The migration record as status rows: its phase first, then what it has done."""
    from cli.progress import describe
    from migrate.record import resume_command, unfinished

    phase = str(rec.get("phase"))
    started = int(rec.get("started_ns") or 0)
    command = resume_command(name, rec)
    if phase == "done":
        took = (int(rec.get("finished_ns") or 0) - started) / 1e9
        t.add_row("migration", f"graph copy done at {when(int(rec.get('finished_ns') or 0))} ({took:.1f} s)")
    elif phase == "failed":
        t.add_row("migration", escape(f"graph copy FAILED in {rec.get('failed_in')}: {rec.get('error')} (the canister "
                                      f"refuses other messages until `{command}` finishes it)"))
    elif unfinished(rec):
        t.add_row("migration", escape(f"graph copy IN PROGRESS: {phase} (since {when(started)}; once stabilization "
                                      f"has started the canister refuses other messages; finish it with `{command}`)"))
    t.add_row("  progress", describe(rec))
    if rec.get("target_module_hash"):
        t.add_row("  from -> to", f"{short_hash(str(rec.get('from_module_hash')), wide)} -> "
                                  f"{short_hash(str(rec['target_module_hash']), wide)}")


@app.command("list")
def list_(ctx: typer.Context, wide: WideOpt = False, as_json: JsonOpt = False) -> None:
    """List the canisters in the store."""
    from persist import api

    with opened(ctx) as store, errors():
        rows = api.list_canisters(store)
    if as_json:
        print_json([{"name": s.name, "principal": s.principal, "status": s.status, "module_hash": s.module_hash,
                     "heap_bytes": s.heap_bytes, "stable_bytes": s.stable_bytes, "parent": s.parent} for s in rows])
        return
    if not rows:
        out.print("no canisters yet: `graphcopy install NAME WASM` creates one", highlight=False)
        return
    wide = wide_output(wide)
    names = {s.principal: s.name for s in rows}
    t = new_table()
    for col in ("name", "principal", "status", "module", "heap", "stable", "parent"):
        t.add_column(col, no_wrap=col in ("name", "principal", "module", "parent"))
    for s in rows:
        parent = names.get(s.parent, s.parent) if s.parent else ""
        t.add_row(s.name, s.principal, s.status, short_hash(s.module_hash, wide, "(empty)"),
                  human_bytes(s.heap_bytes), human_bytes(s.stable_bytes), parent)
    print_table(t, wide)


def _lifecycle(ctx: typer.Context, name: str, as_json: bool, op: str) -> None:
    from persist import api

    with opened(ctx) as store, errors():
        new = api.stop(store, name) if op == "stop" else api.start(store, name)
    if as_json:
        print_json({"name": name, "status": new})
    else:
        out.print(f"{name}: {new}", highlight=False)


@app.command()
def stop(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Canister name or principal.")],
         as_json: JsonOpt = False) -> None:
    """Stop a canister (it refuses new calls)."""
    _lifecycle(ctx, name, as_json, "stop")


@app.command()
def start(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Canister name or principal.")],
          as_json: JsonOpt = False) -> None:
    """Start a stopped canister."""
    _lifecycle(ctx, name, as_json, "start")


@app.command()
def delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Canister name or principal.")],
           no_snapshot: NoSnapshotOpt = False, yes: YesOpt = False, as_json: JsonOpt = False) -> None:
    """Delete a stopped canister and its state; a snapshot of it is kept first (`snapshot load` brings it back)."""
    from persist import api

    with opened(ctx) as store, errors():
        if api.status(store, name).status == "stopped":  # else delete says why not, without asking first
            kept = "" if no_snapshot else f" A snapshot is kept: `graphcopy snapshot load {name} ID` brings it back."
            confirm(f"Delete canister {name} and all its state?{kept}", yes)
        res = api.delete(store, name, snapshot=not no_snapshot)
    if as_json:
        print_json({"name": name, "status": "deleted", "principal": res.principal, "snapshot_id": res.snapshot_id})
    elif res.snapshot_id is not None:
        out.print(f"{name}: deleted; snapshot {res.snapshot_id} kept (`graphcopy snapshot load {name} "
                  f"{res.snapshot_id}` brings it back)", highlight=False, markup=False)
    else:
        out.print(f"{name}: deleted", highlight=False)


@app.command()
def tick(ctx: typer.Context, max_messages: Annotated[int | None, typer.Option(
        "--max-messages", min=0, show_default=False,
        help="Run at most this many messages (default: the store's per-command budget, 10,000).")] = None,
         as_json: JsonOpt = False) -> None:
    """Run queued messages and due timers, every canister in turn, and show what is still queued."""
    from persist import api

    with opened(ctx) as store, errors():
        n = api.run_pending(store, max_messages=max_messages)
        left = api.queue(store)
    if as_json:
        print_json({"executed": n, "queued": to_jsonable(left)})
        return
    out.print(f"{n} message(s) executed")
    if left:
        t = new_table(title="still queued", title_justify="left")
        for col in ("canister", "messages", "requests", "responses", "management", "timer due"):
            t.add_column(col)
        for e in left:
            t.add_row(e.name, str(e.messages), str(e.requests), str(e.responses), str(e.management),
                      "yes" if e.timer_due else "")
        out.print(t)
