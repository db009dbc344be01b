"""Showing a graph-copy migration while it runs, from its migration record.

``MigrationProgress`` is the ``on_progress`` callback of ``migrate.graph_copy``: it is handed the
migration record after every message of the migration and shows the phase, increments, instructions
and stable memory size as a live rich progress line on a terminal. Phase changes are also printed
as plain lines, so a log (stderr not a terminal) shows how far a killed command got.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn


def _si(n: int) -> str:
    for unit, size in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def describe(record: dict[str, Any]) -> str:
    """One line: increments, instructions and stable memory of a migration record."""
    inc = record.get("increments") or {}
    ins = record.get("instructions") or {}
    stable = int(record.get("stable_bytes") or 0)
    return (f"increments {inc.get('stabilize', 0)} + {inc.get('destabilize', 0)}, "
            f"instructions {_si(int(ins.get('stabilize', 0)))} + {_si(int(ins.get('destabilize', 0)))}, "
            f"stable memory {stable / 2**20:.1f} MiB")


class MigrationProgress:
    """A context manager and ``on_progress`` callback rendering migration records on ``console``."""

    def __init__(self, console: Console, name: str, *, enabled: bool = True) -> None:
        self.console = console
        self.name = name
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self.phase: str | None = None
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> MigrationProgress:
        if self.live:
            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(f"{self.name}: starting", total=None)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        phase = str(record.get("phase"))
        if phase != self.phase:
            self.phase = phase
            line = f"{self.name}: {phase}" + ("" if phase in ("stabilizing", "upgrading") else f" ({describe(record)})")
            if self.progress is not None:
                self.progress.console.print(line, highlight=False, markup=False)
            else:
                self.console.print(line, highlight=False, markup=False)
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, description=f"{self.name}: {phase}: {describe(record)}")


class TransferProgress:
    """A context manager and ``on_progress(file, done, total)`` callback of snapshot import and
    export: one bar per memory file with percentage, bytes, speed and time left, on a terminal."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled and console.is_terminal
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TransferProgress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TaskProgressColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                     DownloadColumn(binary_units=True), TransferSpeedColumn(), TimeRemainingColumn(),
                                     console=self.console, transient=False)
            self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, file: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        task = self.tasks.get(file)
        if task is None:
            task = self.tasks[file] = self.progress.add_task(file, total=max(total, 1))
        self.progress.update(task, completed=done if total else 1)
