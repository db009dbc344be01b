"""Showing a graph-copy migration while it runs, from its migration record.

``MigrationProgress`` is the ``on_progress`` callback of ``migrate.graph_copy``: it is handed the
migration record after every message of the migration. On a terminal it draws a rich progress bar
per phase with a percentage and an ETA (``migrate.record.phase_progress``: the stable image written
against its estimated size while stabilizing, the heap rebuilt against the image while
destabilizing; the upgrade step in between is one transaction). Phase changes, and every tenth of a
phase, are also printed as plain lines, so a log (stderr not a terminal) shows how far a killed
command got and how long the rest should take.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.common import real_console


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


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f}"


def eta_text(seconds: float | None) -> str:
    """A remaining time for people: "about 12 s left", "about 3 min left"."""
    if seconds is None:
        return "time left unknown"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s left"
    return f"about {round(seconds / 60)} min left"


class MigrationProgress:
    """A context manager and ``on_progress`` callback rendering migration records on ``console``."""

    def __init__(self, console: Console, name: str, *, enabled: bool = True) -> None:
        self.console = real_console(console)
        self.name = name
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self.phase: str | None = None
        self.phase_started = time.monotonic()
        self.tenth = 0
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> MigrationProgress:
        if self.live:
            self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     TaskProgressColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                     TimeElapsedColumn(), console=self.console, transient=True)
            self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _line(self, text: str) -> None:
        target = self.progress.console if self.progress is not None else self.console
        target.print(text, highlight=False, markup=False)

    def __call__(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        from migrate.record import phase_progress

        phase = str(record.get("phase"))
        pp = phase_progress(record)
        if phase != self.phase:
            self.phase = phase
            self.phase_started = time.monotonic()
            self.tenth = 0
            detail = "" if phase in ("stabilizing", "upgrading") else f" ({describe(record)})"
            self._line(f"{self.name}: {phase}{detail}")
            if self.progress is not None:
                if self.task is not None:
                    self.progress.remove_task(self.task)
                self.task = self.progress.add_task(f"{self.name}: {phase}", total=pp.total if pp else None)
        if pp is None:
            return
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, total=pp.total, completed=pp.done,
                                 description=f"{self.name}: {phase} (~{_mib(pp.total)} MiB)")
            return
        tenth = int(pp.fraction * 10)
        if 0 < tenth < 10 and tenth > self.tenth:  # a log gets a line per tenth of the phase
            self.tenth = tenth
            elapsed = time.monotonic() - self.phase_started
            left = elapsed * (1 - pp.fraction) / pp.fraction if pp.fraction > 0 else None
            self._line(f"{self.name}: {phase} {tenth * 10}% ({_mib(pp.done)} of ~{_mib(pp.total)} MiB, "
                       f"{eta_text(left)})")


class TransferProgress:
    """A context manager and ``on_progress(file, done, total)`` callback of snapshot import and
    export: one bar per memory file with percentage, bytes, speed and time left, on a terminal."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = real_console(console)
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
