"""CLI benchmark: whole ``graphcopy`` commands as a user runs them, one fresh process each.

Prints one JSON document (and writes it with ``--out``). Every command runs ``--repeat`` times,
interleaved round by round with the baselines, so a busy machine slows all of them alike:

* ``python -c pass`` (the floor: an interpreter starting and stopping) and
  ``python -c 'import sqlalchemy'`` (a reference: the store's SQL library alone);
* ``graphcopy call counter get`` with a warm module cache (compiled code from an earlier process)
  and a cold one (a new, empty cache directory for every run: Cranelift compiles the canister);
* ``graphcopy status counter`` and ``graphcopy --help``.

Each figure has its median, min, quartiles and max in milliseconds, and its median as a ratio to
the ``python -c pass`` median; ``cpu`` has the same for the process's user + system CPU time
(less sensitive than wall time to other work on a shared machine). ``--source DIR`` runs another
checkout's code (``PYTHONPATH``), with this interpreter and its packages, to measure a before/after
pair with the same script.

The source is byte-compiled first (``compileall``, as ``pip install`` does for an installed
package), so the figures do not depend on ``PYTHONDONTWRITEBYTECODE``.

Usage: python bench/cli.py [--repeat 15] [--source DIR] [--out FILE] [--note TEXT] [--no-compile] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The console script's body: what `graphcopy` runs, from whichever tree is on PYTHONPATH (older
# trees have no cli.entry: their script ran cli.main).
LAUNCHER = ("import sys\ntry:\n    from cli.entry import main\nexcept ImportError:\n    from cli.main import main\n"
            "sys.exit(main())")


def summary(samples: list[float], floor: float | None) -> dict[str, object]:
    ms = sorted(s * 1000 for s in samples)
    q = statistics.quantiles(ms, n=4) if len(ms) >= 2 else [ms[0]] * 3
    out: dict[str, object] = {
        "median_ms": round(statistics.median(ms), 1),
        "min_ms": round(ms[0], 1),
        "p25_ms": round(q[0], 1),
        "p75_ms": round(q[2], 1),
        "max_ms": round(ms[-1], 1),
        "runs": len(ms),
    }
    if floor:
        out["ratio_to_python"] = round(statistics.median(ms) / floor, 2)
    return out


def git_commit(source: Path) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--source", type=Path, default=ROOT, help="the checkout whose code runs (default: this one)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--quick", action="store_true", help="3 rounds (a smoke run)")
    ap.add_argument("--note", help="a note kept in the JSON (e.g. which commit --source is)")
    ap.add_argument("--no-compile", action="store_true",
                    help="do not byte-compile the source first (an installed package is compiled by pip; a checkout "
                         "run with PYTHONDONTWRITEBYTECODE=1 compiles every module on every start)")
    a = ap.parse_args()
    repeat = 3 if a.quick else a.repeat
    source = a.source.resolve()
    work = Path(tempfile.mkdtemp(prefix="graphcopy-bench-cli-"))
    warm_cache = work / "warm-cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRAPHCOPY_")}
    env.update(PYTHONPATH=str(source), GRAPHCOPY_DATABASE_URL=f"sqlite:///{work / 'graphcopy.db'}",
               GRAPHCOPY_CACHE_DIR=str(warm_cache))
    gc = [sys.executable, "-c", LAUNCHER]

    def run(argv: list[str], cache: Path | None = None) -> tuple[float, float]:
        """Wall-clock and CPU (user + system) seconds of one run."""
        run_env = env if cache is None else {**env, "GRAPHCOPY_CACHE_DIR": str(cache)}
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        res = subprocess.run(argv, env=run_env, cwd=work, capture_output=True, check=False)
        elapsed = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if res.returncode != 0:
            raise SystemExit(f"{argv[3:] or argv}: exit {res.returncode}: {res.stderr.decode()[-500:]}")
        return elapsed, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)

    if not a.no_compile:
        packages = [str(source / p) for p in ("cli", "persist", "migrate", "toolchain", "migrations")
                    if (source / p).is_dir()]
        subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], check=True, stdout=subprocess.DEVNULL)
    try:
        where = subprocess.run([sys.executable, "-c", "import cli, persist; print(cli.__file__)"], env=env, cwd=work,
                               capture_output=True, text=True, check=True).stdout.strip()
        if not where.startswith(str(source)):
            raise SystemExit(f"the code that runs is {where}, not from {source}")
        run([*gc, "install", "counter", str(ROOT / "examples" / "counter" / "counter.wasm")])
        run([*gc, "call", "counter", "get"])  # fills the warm cache (where the code has one)
        commands: dict[str, tuple[list[str], bool]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], False),
            "python -c 'import sqlalchemy'": ([sys.executable, "-c", "import sqlalchemy"], False),
            "graphcopy call counter get (warm cache)": ([*gc, "call", "counter", "get"], False),
            "graphcopy call counter get (cold cache)": ([*gc, "call", "counter", "get"], True),
            "graphcopy status counter": ([*gc, "status", "counter"], False),
            "graphcopy --help": ([*gc, "--help"], False),
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        load_before = os.getloadavg()
        for i in range(repeat):
            names = list(commands)
            names = names[i % len(names):] + names[:i % len(names)]  # rotate: no command always runs first
            for name in names:
                argv, cold = commands[name]
                cache = None
                if cold:
                    cache = work / f"cold-cache-{i}"
                wall, used = run(argv, cache)
                samples[name].append(wall)
                cpu[name].append(used)
                if cache is not None:
                    shutil.rmtree(cache, ignore_errors=True)
        load_after = os.getloadavg()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    floor = statistics.median(samples["python -c pass"]) * 1000
    cpu_floor = statistics.median(cpu["python -c pass"]) * 1000
    doc = {
        "bench": "cli",
        "source": str(source),
        "commit": git_commit(source),
        "note": a.note,
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "load_before": [round(x, 2) for x in load_before],
                    "load_after": [round(x, 2) for x in load_after]},
        "repeat": repeat,
        "launcher": f"python -c {LAUNCHER!r} (the console script's body)",
        "bytecode": "as it was" if a.no_compile else "compiled first (python -m compileall), as pip install does",
        "commands": {name: summary(s, floor if name != "python -c pass" else None) for name, s in samples.items()},
        # user + system CPU of the process: less sensitive than wall time to other work on the machine
        "cpu": {name: summary(s, cpu_floor if name != "python -c pass" else None) for name, s in cpu.items()},
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
