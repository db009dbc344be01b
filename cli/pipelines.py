"""Pipeline commands: pipeline run, pipeline status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import pipeline_app
from cli.common import (
    JsonOpt,
    WideOpt,
    err,
    errors,
    escape,
    new_table,
    opened,
    out,
    print_json,
    print_table,
    real_console,
    when,
    wide_output,
)


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
    """Run a pipeline: migrate every matching canister exactly once. Exit 1 if any canister failed.

    Canisters an earlier run failed or rolled back are tried again; no matching canister is an error (exit 2)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from migrate.pipeline import load_pipeline, pipeline_status, run_pipeline

    with opened(ctx) as store, errors():
        pipeline = load_pipeline(file)
        total = len(pipeline_status(store, pipeline))
        use_bar = not as_json and err.is_terminal
        # The bar moves as each canister finishes (done, failed or rolled back); the ETA is rich's,
        # from the pace of the canisters finished so far.
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TaskProgressColumn(), TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
                            console=real_console(err), disable=not use_bar)
        task = progress.add_task(pipeline.key, total=total)

        finished = [0]

        def on_event(e: dict[str, Any]) -> None:
            if e["event"] in ("done", "failed", "rolled-back"):
                progress.advance(task)
                finished[0] += 1
                if not use_bar and not as_json:
                    err.print(f"{pipeline.key}: {finished[0]}/{total} canister(s) finished", highlight=False,
                              markup=False)
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
    wide: WideOpt = False,
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
    t = new_table(title=f"pipeline {pipeline.key}")
    for col in ("canister", "state", "owner", "heartbeat", "attempts", "at target", "error"):
        t.add_column(col, no_wrap=col in ("canister", "owner"))
    for s in states:
        t.add_row(s.canister, s.state, s.owner or "-", when(s.heartbeat_ns), str(s.attempts),
                  "yes" if s.at_target else "no", escape(s.error or ""))
    print_table(t, wide_output(wide))
