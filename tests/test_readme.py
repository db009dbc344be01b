"""The README's example session, run as a user would run it: every command of its console blocks,
in order, in a fresh directory, through a real ``graphcopy`` process, compared with what the
README shows.

What may differ is normalised on both sides: hashes (12+ hex digits), timestamps, durations,
runs of spaces. In the README, ``…`` stands for any text within a line, or, alone on a line, for
any number of lines; ``  # ...`` is a comment (``# exit code N`` is checked); a line ``^C`` sends
SIGINT to the command once the line before it has been printed. The PostgreSQL command runs on a
fresh test database.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_PG_URL = "postgresql://postgres@127.0.0.1/graphcopy"
ELLIPSIS = "…"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0
    interrupt_after: int | None = None  # index into expected of the line to wait for before SIGINT


def session_blocks(readme: str) -> list[str]:
    """The console blocks of the README's "Example session" section."""
    start = readme.index("\n## Example session")
    end = readme.find("\n## ", start + 1)
    section = readme[start:end if end != -1 else None]
    return re.findall(r"```console\n(.*?)```", section, re.S)


def _comment(line: str) -> tuple[str, str]:
    m = re.search(r"\s{2,}#\s.*$", line)
    if m is None:
        return line, ""
    return line[:m.start()], m.group(0)


def parse_steps(blocks: list[str]) -> list[Step]:
    steps: list[Step] = []
    for block in blocks:
        for raw in block.splitlines():
            if raw.startswith("$ "):
                command, comment = _comment(raw[2:])
                steps.append(Step(command=command.strip()))
                target = steps[-1]
            else:
                text, comment = _comment(raw)
                target = steps[-1]
                if text.strip() == "^C":
                    target.interrupt_after = len(target.expected) - 1
                elif text.strip():
                    target.expected.append(text.rstrip())
            m = re.search(r"exit code (\d+)", comment)
            if m:
                target.exit_code = int(m.group(1))
    return steps


def normalise(line: str) -> str:
    line = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?( UTC|Z)?", "<time>", line)
    line = re.sub(r"\b[0-9a-f]{12,}\b", "<hex>", line)
    line = re.sub(r"\b\d+(\.\d+)? s\b", "<n> s", line)
    return " ".join(line.split())


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in normalise(expected).split(ELLIPSIS)]
    return re.compile(".*?".join(parts))


def lines_match(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` fits ``expected`` (with ``…`` lines and ``…`` inside lines as wildcards)."""
    exp = [e for e in expected]
    act = [normalise(a) for a in actual if a.strip()]
    patterns = [None if e.strip() == ELLIPSIS else _line_pattern(e) for e in exp]

    @cache
    def fit(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        p = patterns[i]
        if p is None:
            return any(fit(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and p.fullmatch(act[j]) is not None and fit(i + 1, j + 1)

    return fit(0, 0)


def _env(bin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_") and k != "COLUMNS"}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=str(bin_dir.parent / "config"))  # a user with no identity yet, as a new user
    return env


def run_step(step: Step, cwd: Path, env: dict[str, str], pg_url: str) -> tuple[int, list[str]]:
    command = step.command.replace(README_PG_URL, pg_url)
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    got: list[str] = []
    wait_for = (_line_pattern(step.expected[step.interrupt_after])
                if step.interrupt_after is not None and step.interrupt_after >= 0 else None)
    deadline = time.monotonic() + 600
    while True:
        item = lines.get(timeout=max(1.0, deadline - time.monotonic()))
        if item is None:
            break
        got.append(item)
        if wait_for is not None and wait_for.fullmatch(normalise(item)):
            time.sleep(0.2)  # a person's Ctrl-C comes a moment after the line, not in the middle of printing it
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
            wait_for = None
    return proc.wait(timeout=60), got


def test_the_readme_session_runs_as_shown(tmp_path: Path, pg_url: str, moc: None) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    steps = parse_steps(session_blocks(readme))
    assert len(steps) >= 30 and any(s.interrupt_after is not None for s in steps)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "graphcopy"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cli.main "$@"\n')
    wrapper.chmod(0o755)
    env = _env(bin_dir)
    work = tmp_path / "work"
    work.mkdir()
    (work / "examples").symlink_to(ROOT / "examples")
    for step in steps:
        code, out = run_step(step, work, env, pg_url)
        shown = "\n".join(out)
        assert code == step.exit_code, f"$ {step.command}\nexit code {code}, README says {step.exit_code}\n{shown}"
        assert lines_match(step.expected, out), (f"$ {step.command}\n--- README:\n" + "\n".join(step.expected)
                                                 + f"\n--- actual:\n{shown}")


def test_the_matcher_is_strict() -> None:
    # the session check could pass vacuously if the matcher accepted anything
    assert lines_match(["a …", "…", "c"], ["a b", "x", "y", "c"])
    assert not lines_match(["a …", "c"], ["a b", "x", "c"])
    assert not lines_match(["(1 : nat)"], ["(2 : nat)"])
    assert lines_match(["module 06ed2d9e26384e10…, in 0.13 s"], ["module 1d8affbeb10b489f…, in 2.50 s"])
    steps = parse_steps(["$ graphcopy x   # exit code 7\nout  # note\n  # more\n^C\nafter\n"])
    assert [(s.command, s.expected, s.exit_code, s.interrupt_after) for s in steps] == [
        ("graphcopy x", ["out", "after"], 7, 0)]


def test_ci_runs_exactly_the_readmes_test_command() -> None:
    """`.ci/run` runs the README's second command as written (its first bash block runs the demo)."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert len(blocks) >= 2 and "graphcopy demo" in blocks[0]
    test_command = blocks[1].strip()
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()]
    assert test_command in ci_lines
