"""kill -9 at random points of every operation: install, update calls, upgrades (keep and graph
copy), snapshots (take, load), snapshot-directory export and import, pipelines. After each kill the
store must recover intact: the next command works, and the state is the one before the killed
operation or the one after it (a graph copy or a pipeline is resumed and then must be complete).

Each operation runs in a process forked from a "zygote" that has imported graphcopy and compiled
the modules (so a kill point costs the operation, not an interpreter start); the test kills it at
a random moment within the operation's measured duration, then checks the store from this process.
The points are chosen by a seeded random generator: a fixed seed in CI; ``GRAPHCOPY_KILL_SEED``
(an integer, or ``random``) picks others, ``GRAPHCOPY_KILL_POINTS`` how many (default 100 on SQLite,
a quarter as many on PostgreSQL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from migrate import upgrade
from migrate.pipeline import load_pipeline, run_pipeline
from persist import api
from persist.api import snapshots
from persist.api.snapshot_transfer import export_snapshot
from persist.errors import SnapshotDirError
from persist.session import Store, open_store
from persist.snapshot_dir.reader import open_snapshot_dir
from tests.upgrade_helpers import call, history_kinds

# The host and durability suites run under both heap dirty-tracking mechanisms (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("dirty_tracking")

ROOT = Path(__file__).resolve().parent.parent
COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"
SYSTEM_API = ROOT / "tests" / "canisters" / "system_api.wat"

_SEED = os.environ.get("GRAPHCOPY_KILL_SEED", "").strip()
SEED = random.SystemRandom().randrange(2**32) if _SEED == "random" else int(_SEED or 14)
POINTS = int(os.environ.get("GRAPHCOPY_KILL_POINTS", "100"))
GC_SCALE = 2000.0  # small graph-copy increments: many messages to be killed in

ZYGOTE = r'''
import json, os, signal, sys, traceback
from pathlib import Path
import pytest
import wasmtime
from migrate import upgrade
from migrate.pipeline import load_pipeline, run_pipeline
from persist import api
from persist.api import snapshots
from persist.api.snapshot_transfer import export_snapshot, import_snapshot
from persist.session import open_store, shared_runtime

root = Path(sys.argv[1])
wasms = {"v1": (root / "examples/counter/counter.wasm").read_bytes(),
         "v2": (root / "examples/counter/counter_v2.wasm").read_bytes(),
         "sys": bytes(wasmtime.wat2wasm((root / "tests/canisters/system_api.wat").read_text()))}
rt = shared_runtime()  # compiled once here; every forked operation uses the same code
for w in wasms.values():
    rt.load_module(w)
for is_64 in (True, False):
    rt.helper_module(is_64)

def run(op, a):
    st = open_store(a["url"])
    print(json.dumps({"started": os.getpid()}), flush=True)  # the kill window opens here
    if op in ("update", "update-moc"):
        api.call(st, a["name"], a["method"])
    elif op == "install":
        api.install(st, a["name"], wasms["sys"])
    elif op == "keep":
        upgrade(st, a["name"], wasms["v2"], mode="keep")
    elif op == "graph-copy":
        st.limits.performance_counter_scale = a["scale"]
        upgrade(st, a["name"], wasms["v2"], mode="graph-copy")
    elif op == "snapshot-take":
        snapshots.take_snapshot(st, a["name"])
    elif op == "snapshot-load":
        snapshots.load_snapshot(st, a["name"], a["snapshot"])
    elif op == "export":
        export_snapshot(st, a["name"], a["dir"])
    elif op == "import":
        import_snapshot(st, a["name"], a["dir"])
    elif op == "pipeline":
        run_pipeline(st, load_pipeline(a["path"]))
    else:
        raise ValueError(op)
    st.close()

print("ready", flush=True)
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            run(req["op"], req["args"])
        except BaseException:
            traceback.print_exc()
            code = 3
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"status": status}), flush=True)
'''


class Zygote:
    """The process that forks one child per operation."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("GRAPHCOPY_DATABASE_URL", None)
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(ROOT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert self._line() == "ready"

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the zygote died"
        return line.strip()

    def start(self, op: str, args: dict[str, Any]) -> int:
        """Fork a child for ``op``; returns once the child has opened the store and begins it."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "args": args}) + "\n")
        self.proc.stdin.flush()
        # The zygote's {"pid"} and the child's {"started"} may come in either order.
        got = {**json.loads(self._line()), **json.loads(self._line())}
        assert got["started"] == got["pid"], got
        return int(got["pid"])

    def wait(self) -> int:
        """The child's wait status (0: it finished; SIGKILL: killed)."""
        return int(json.loads(self._line())["status"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@dataclass
class World:
    """The store and what the test knows about it."""

    url: str
    tmp: Path
    rng: random.Random
    n: int = 0
    snapshot_values: dict[int, int] = field(default_factory=dict)
    export_dir: Path | None = None
    export_value: int = 0

    def store(self) -> Store:
        return open_store(self.url)

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def sys_counter(st: Store, name: str = "sys") -> int:
    return int.from_bytes(api.call(st, name, "counter").reply[:8], "little", signed=True)


def count(st: Store, name: str) -> int:
    return int(call(st, name, "get").strip("()").split(":")[0].replace("_", ""))


def module_is(st: Store, name: str, wasm: Path) -> bool:
    from persist.host.module import parse_module
    return api.status(st, name).module_hash == parse_module(wasm.read_bytes()).hash


# Each operation: prepare (before the fork) -> (args, snapshot of "before"); check (after the kill).

def prepare(w: World, op: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with w.store() as st:
        if op == "update":
            return {"name": "sys", "method": "bump"}, {"counter": sys_counter(st)}
        if op == "update-moc":
            return {"name": "ctr", "method": "inc"}, {"count": count(st, "ctr")}
        if op == "install":
            return {"name": w.fresh("i")}, {}
        if op == "keep":
            return {"name": "ctr"}, {"count": count(st, "ctr"), "upgrades": history_kinds(st, "ctr").count("upgrade")}
        if op == "graph-copy":
            name = w.fresh("g")
            api.install(st, name, COUNTER.read_bytes())
            call(st, name, "add", f"({w.rng.randrange(1, 10**6)} : nat)")
            return {"name": name, "scale": GC_SCALE}, {"count": count(st, name)}
        if op == "snapshot-take":
            return {"name": "sys"}, {"snapshots": len(snapshots.list_snapshots(st, "sys"))}
        if op == "snapshot-load":
            snap = snapshots.take_snapshot(st, "sys")
            w.snapshot_values[snap.id] = sys_counter(st)
            api.call(st, "sys", "bump")
            return {"name": "sys", "snapshot": snap.id}, {"counter": sys_counter(st),
                                                           "snapshot": w.snapshot_values[snap.id]}
        if op == "export":
            target = w.tmp / w.fresh("export")
            return {"name": "sys", "dir": str(target)}, {"counter": sys_counter(st)}
        if op == "import":
            if w.export_dir is None:
                w.export_dir = w.tmp / "exported"
                export_snapshot(st, "sys", w.export_dir)
                w.export_value = sys_counter(st)
            return {"name": w.fresh("m"), "dir": str(w.export_dir)}, {}
        if op == "pipeline":
            k = w.fresh("p")
            values = {}
            for part in ("a", "b"):
                api.install(st, f"{k}{part}", COUNTER.read_bytes())
                values[f"{k}{part}"] = int(call(st, f"{k}{part}", "add", f"({w.rng.randrange(1, 999)} : nat)")
                                           .strip("()").split(":")[0].replace("_", ""))
            path = w.tmp / f"{k}.toml"
            path.write_text(f'name = "{k}"\nmodule = "{COUNTER_V2}"\ncanisters = ["{k}?"]\nmode = "auto"\n'
                            'steps = ["check", "snapshot", "upgrade", "verify"]\n\n[[verify]]\nquery = "get"\n')
            return {"path": str(path)}, {"values": values}
    raise AssertionError(op)


def check(w: World, op: str, args: dict[str, Any], before: dict[str, Any], finished: bool) -> str:
    """Verify the store after the operation ran (``finished``) or was killed; returns what was found."""
    with w.store() as st:
        api.run_pending(st)  # the next command works
        if op == "update":
            now = sys_counter(st)
            assert now in (before["counter"], before["counter"] + 1)
            assert not finished or now == before["counter"] + 1
            return "after" if now != before["counter"] else "before"
        if op == "update-moc":
            now = count(st, "ctr")
            assert now in (before["count"], before["count"] + 1) and (not finished or now != before["count"])
            return "after" if now != before["count"] else "before"
        if op == "install":
            names = {c.name for c in api.list_canisters(st)}
            if args["name"] not in names:
                assert not finished
                return "before"
            assert sys_counter(st, args["name"]) == 0 and api.status(st, args["name"]).module_hash is not None
            return "after"
        if op == "keep":
            upgrades = history_kinds(st, "ctr").count("upgrade")
            assert upgrades in (before["upgrades"], before["upgrades"] + 1)
            assert not finished or upgrades == before["upgrades"] + 1
            assert count(st, "ctr") == before["count"] and module_is(st, "ctr", COUNTER_V2) == (upgrades > 0)
            return "after" if upgrades != before["upgrades"] else "before"
        if op == "graph-copy":
            name = args["name"]
            status = api.status(st, name)
            found = "after" if module_is(st, name, COUNTER_V2) else "before"
            if status.migration and status.migration.get("phase") not in (None, "done"):
                found = "resumed"
                st.limits.performance_counter_scale = GC_SCALE
                upgrade(st, name, None, resume=True)
                assert module_is(st, name, COUNTER_V2)
            assert not finished or found == "after"
            assert count(st, name) == before["count"]
            return found
        if op == "snapshot-take":
            n = len(snapshots.list_snapshots(st, "sys"))
            assert n in (before["snapshots"], before["snapshots"] + 1) and (not finished or n > before["snapshots"])
            return "after" if n > before["snapshots"] else "before"
        if op == "snapshot-load":
            now = sys_counter(st)
            assert now in (before["counter"], before["snapshot"])
            assert not finished or now == before["snapshot"]
            api.call(st, "sys", "bump")  # and it goes on from there
            return "after" if now == before["snapshot"] else "before"
        if op == "export":
            assert sys_counter(st) == before["counter"]  # an export changes nothing
            try:
                snap = open_snapshot_dir(args["dir"])
            except SnapshotDirError:
                assert not finished
                return "before"
            assert snap.metadata.wasm_memory_size > 0
            return "after"
        if op == "import":
            names = {c.name for c in api.list_canisters(st)}
            if args["name"] not in names:
                assert not finished
                return "before"
            assert sys_counter(st, args["name"]) == w.export_value
            return "after"
        if op == "pipeline":
            values: dict[str, int] = before["values"]
            states = {n: module_is(st, n, COUNTER_V2) for n in values}
            for name, value in values.items():
                assert count(st, name) == value
            report = run_pipeline(st, load_pipeline(args["path"]))  # a rerun finishes what was left
            assert report.ok, report.to_dict()
            for name, value in values.items():
                assert count(st, name) == value and history_kinds(st, name).count("upgrade") == 1
            assert not finished or all(states.values())
            return "after" if all(states.values()) else "before" if not any(states.values()) else "partly"
    raise AssertionError(op)


OPS = ["update", "update-moc", "install", "keep", "graph-copy", "snapshot-take", "snapshot-load", "export",
       "import", "pipeline"]


def test_kill_at_random_points_of_every_operation(db_url: str, tmp_path: Path, moc: None) -> None:
    """``POINTS`` kill points on SQLite, a quarter as many on PostgreSQL."""
    points = POINTS if db_url.startswith("sqlite") else max(POINTS // 4, len(OPS))
    rng = random.Random(SEED)
    w = World(url=db_url, tmp=tmp_path, rng=rng)
    with w.store() as st:
        api.install(st, "sys", bytes(wasmtime.wat2wasm(SYSTEM_API.read_text())))
        api.install(st, "ctr", COUNTER.read_bytes())
        call(st, "ctr", "add", "(41 : nat)")
    zygote = Zygote()
    durations: dict[str, float] = {}
    outcomes: dict[str, dict[str, int]] = {op: {} for op in OPS}
    try:
        # First every operation once, to completion: it must work, and its duration bounds the kill times.
        for op in OPS:
            args, before = prepare(w, op)
            args["url"] = w.url
            pid = zygote.start(op, args)
            t0 = time.perf_counter()
            status = zygote.wait()
            durations[op] = time.perf_counter() - t0
            assert status == 0, f"{op} failed in its process (pid {pid})"
            check(w, op, args, before, finished=True)
        kills = 0
        # Every operation equally often, in a random order (rounds of a shuffled list).
        order = [op for _ in range(points // len(OPS) + 1) for op in rng.sample(OPS, len(OPS))][:points]
        for point, op in enumerate(order):
            args, before = prepare(w, op)
            args["url"] = w.url
            delay = rng.uniform(0, 1.1 * durations[op])
            pid = zygote.start(op, args)
            t0 = time.perf_counter()
            time.sleep(delay)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            status = zygote.wait()
            killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
            assert killed or status == 0, f"point {point} ({op}, seed {SEED}): the operation failed"
            if not killed:  # the kill came too late: the operation is quicker now than at first
                durations[op] = min(durations[op], time.perf_counter() - t0)
            kills += killed
            found = check(w, op, args, before, finished=not killed)
            outcomes[op][found] = outcomes[op].get(found, 0) + 1
    finally:
        zygote.close()
    print(f"kill points (seed {SEED}): {json.dumps(outcomes)}")
    assert kills >= points // 2  # most points really killed an operation in flight
