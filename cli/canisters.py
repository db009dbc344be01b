"""Canister commands: install, call, status, list, logs, stop, start, delete, tick."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.app import app
from cli.common import (
    BLOCKED_TRAP,
    JsonOpt,
    err,
    errors,
    fail,
    human_bytes,
    opened,
    out,
    print_json,
    read_wasm,
    to_jsonable,
    when,
    with_spinner,
)
from persist.errors import CanisterTrapError


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
        try:
            res = with_spinner(f"installing {name}…", as_json,
                               lambda: api.install(store, name, data, arg=arg_bytes, mode=mode))
        except CanisterTrapError as exc:
            for line in exc.prints:  # a failed first install leaves no canister whose log could keep them
                err.print(f"[dim]{name}:[/] {line}", highlight=False)
            raise
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
    """Show a canister's state, sizes, module, queue, applied migrations and history."""
    from migrate import applied_migrations
    from persist import api

    with opened(ctx) as store, errors():
        st = api.status(store, name)
        applied = applied_migrations(store, name)
    if as_json:
        print_json({**to_jsonable(st), "applied_migrations": applied})
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
    if st.parent:
        t.add_row("parent", st.parent)
    t.add_row("cycles", f"{st.cycles:,} (notional: not metered)")
    if st.environment_variables:
        t.add_row("environment", ", ".join(f"{k}={v}" for k, v in st.environment_variables.items()))
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
                     "heap_bytes": s.heap_bytes, "stable_bytes": s.stable_bytes, "parent": s.parent} for s in rows])
        return
    if not rows:
        out.print("no canisters yet: `graphcopy install NAME WASM` creates one")
        return
    names = {s.principal: s.name for s in rows}
    t = Table()
    for col in ("name", "principal", "status", "module", "heap", "stable", "parent"):
        t.add_column(col)
    for s in rows:
        parent = names.get(s.parent, s.parent) if s.parent else ""
        t.add_row(s.name, s.principal, s.status, (s.module_hash or "(empty)")[:16], human_bytes(s.heap_bytes),
                  human_bytes(s.stable_bytes), parent or "")
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
        t = Table(title="still queued", title_justify="left")
        for col in ("canister", "messages", "requests", "responses", "management", "timer due"):
            t.add_column(col)
        for e in left:
            t.add_row(e.name, str(e.messages), str(e.requests), str(e.responses), str(e.management),
                      "yes" if e.timer_due else "")
        out.print(t)
