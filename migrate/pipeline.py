"""Migration pipelines: upgrade many canisters the same way, with N workers on one store.

A pipeline file (TOML) names the canisters (names or glob patterns), the target module and the
steps; ``run_pipeline`` migrates every matching canister exactly once, with ``workers`` processes
(``multiprocessing``, spawn) that each open their own store on the same URL::

    name = "counter-v2"
    module = "counter/counter_v2.wasm"        # relative to the pipeline file
    canisters = ["counter", "counter-*"]
    children_of = ["parent"]                  # and every canister these created (actor classes)
    mode = "auto"                             # auto | keep | graph-copy
    performance_counter_scale = 1.0
    steps = ["check", "snapshot", "upgrade", "verify"]   # + "stabilize", "destabilize"
    on_failure = "rollback-continue"          # or "stop"

    [[verify]]
    query = "get"                             # a query whose reply must be equal before and after
    args = "()"

    [[verify]]
    hook = "my_checks:balances_ok"           # called with (store, name) after the upgrade

    snapshots = ["downloads/*"]               # with the "import" step: IC snapshot directories,
    export_dir = "migrated"                   # each a canister named after it; "export" writes
                                              # the migrated states to export_dir/<canister>

Every (pipeline, canister) has a row in ``pipeline_locks`` (pending / running / done / failed /
rolled-back). A worker claims a canister with one conditional UPDATE (pending, or running with a
dead claim: heartbeat older than ``persist.store.locks.STALE_AFTER_S`` or owner process gone on this
host), so a canister is migrated once however many workers run, and a rerun takes over what a
killed worker left. The pipeline's identity is its ``name`` plus a hash of the file and the target
module: rerunning the same file continues it; changing either starts a new one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import multiprocessing
import queue
import sys
import threading
import time
import tomllib
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from migrate.errors import PipelineError
from persist.errors import GraphcopyError
from persist.interrupts import deferred
from persist.session import Store, open_store
from persist.store import db, locks, schema
from persist.store.canisters import DELETED, insert_ignore

__all__ = [
    "STEPS",
    "CanisterState",
    "Pipeline",
    "PipelineError",
    "PipelineReport",
    "VerifyStep",
    "load_pipeline",
    "pipeline_status",
    "run_pipeline",
]

STEPS = ("import", "check", "snapshot", "stabilize", "upgrade", "destabilize", "verify", "export")
MODES = ("auto", "keep", "graph-copy")
ON_FAILURE = ("rollback-continue", "stop")
PENDING, RUNNING, DONE, FAILED, ROLLED_BACK = "pending", "running", "done", "failed", "rolled-back"
HEARTBEAT_S = 2.0

EventFn = Callable[[dict[str, Any]], None]


@dataclass
class VerifyStep:
    query: str | None = None
    args: str = "()"
    hook: str | None = None

    def label(self) -> str:
        return f"hook {self.hook}" if self.hook else f"{self.query}{self.args}"


@dataclass
class Pipeline:
    name: str
    path: str
    module_path: str
    module_hash: str
    canisters: list[str]
    steps: list[str]
    verify: list[VerifyStep]
    mode: str = "auto"
    on_failure: str = "rollback-continue"
    performance_counter_scale: float | None = None
    key: str = ""  # "<name>@<12 hex>": the identity in pipeline_locks
    snapshots: list[str] = field(default_factory=list)  # snapshot directories the import step imports
    export_dir: str | None = None  # where the export step writes the migrated states
    # Names or glob patterns of parents: the canisters they created are selected too.
    children_of: list[str] = field(default_factory=list)

    def module_bytes(self) -> bytes:
        return Path(self.module_path).read_bytes()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CanisterState:
    canister: str
    state: str
    owner: str | None = None
    heartbeat_ns: int = 0
    attempts: int = 0
    error: str | None = None
    module_hash: str | None = None
    at_target: bool = False


@dataclass
class PipelineReport:
    pipeline: str
    workers: int
    seconds: float
    canisters: list[CanisterState] = field(default_factory=list)
    stopped: bool = False

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.canisters:
            out[c.state] = out.get(c.state, 0) + 1
        return out

    @property
    def ok(self) -> bool:
        return all(c.state == DONE for c in self.canisters)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "workers": self.workers, "seconds": round(self.seconds, 3),
                "ok": self.ok, "stopped": self.stopped, "counts": self.counts,
                "canisters": [asdict(c) for c in self.canisters]}


# ------------------------------------------------------------------------------------------ loading


def load_pipeline(path: str | Path) -> Pipeline:
    """Parse and validate a pipeline file (PipelineError with the reason if it is not valid)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        doc = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise PipelineError(f"cannot read pipeline file {p}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PipelineError(f"pipeline file {p} is not valid TOML: {exc}") from exc
    known = {"name", "module", "canisters", "children_of", "steps", "verify", "mode", "on_failure",
             "performance_counter_scale", "snapshots", "export_dir"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PipelineError(f"{p}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if "module" not in doc or not isinstance(doc["module"], str):
        raise PipelineError(f"{p}: `module` (the path of the target .wasm) is required")
    module = (p.parent / doc["module"]).resolve()
    try:
        module_hash = hashlib.sha256(module.read_bytes()).hexdigest()
    except OSError as exc:
        raise PipelineError(f"{p}: cannot read module {module}: {exc.strerror}") from exc
    steps = doc.get("steps", ["check", "snapshot", "upgrade", "verify"])
    snapshot_dirs, export_dir = _transfer_keys(p, doc, steps)
    canisters = doc.get("canisters", [d.name for d in snapshot_dirs] if snapshot_dirs else [])
    if isinstance(canisters, str):
        canisters = [canisters]
    children_of = doc.get("children_of", [])
    if isinstance(children_of, str):
        children_of = [children_of]
    if not isinstance(children_of, list) or not all(isinstance(c, str) and c for c in children_of):
        raise PipelineError(f"{p}: `children_of` must be a list of canister names or glob patterns (their parents)")
    if not isinstance(canisters, list) or not all(isinstance(c, str) and c for c in canisters) or not (
            canisters or children_of):
        raise PipelineError(f"{p}: `canisters` must be a non-empty list of names or glob patterns (or give "
                            "`children_of`)")
    if not isinstance(steps, list) or not all(s in STEPS for s in steps) or "upgrade" not in steps:
        raise PipelineError(f"{p}: `steps` must list steps of {', '.join(STEPS)}, including upgrade")
    mode = doc.get("mode", "auto")
    if mode not in MODES:
        raise PipelineError(f"{p}: `mode` must be one of {', '.join(MODES)}")
    on_failure = doc.get("on_failure", "rollback-continue")
    if on_failure not in ON_FAILURE:
        raise PipelineError(f"{p}: `on_failure` must be one of {', '.join(ON_FAILURE)}")
    scale = doc.get("performance_counter_scale")
    if scale is not None and (not isinstance(scale, int | float) or scale <= 0):
        raise PipelineError(f"{p}: `performance_counter_scale` must be a positive number")
    verify: list[VerifyStep] = []
    for i, v in enumerate(doc.get("verify", [])):
        if not isinstance(v, dict) or (("query" in v) == ("hook" in v)) or set(v) - {"query", "args", "hook"}:
            raise PipelineError(f"{p}: verify entry {i + 1} needs exactly one of `query` (with optional `args`) "
                                "or `hook` (\"module:function\")")
        if "hook" in v and ":" not in str(v["hook"]):
            raise PipelineError(f"{p}: verify hook {v['hook']!r} must be \"module:function\"")
        verify.append(VerifyStep(query=v.get("query"), args=str(v.get("args", "()")), hook=v.get("hook")))
    name = str(doc.get("name") or p.stem)
    key = f"{name}@{hashlib.sha256(raw + module_hash.encode()).hexdigest()[:12]}"
    ordered = [s for s in STEPS if s in steps]
    return Pipeline(name=name, path=str(p.resolve()), module_path=str(module), module_hash=module_hash,
                    canisters=list(canisters), steps=ordered, verify=verify, mode=mode, on_failure=on_failure,
                    performance_counter_scale=float(scale) if scale is not None else None, key=key,
                    snapshots=[str(d) for d in snapshot_dirs], export_dir=export_dir,
                    children_of=list(children_of))


def _transfer_keys(p: Path, doc: dict[str, Any], steps: Any) -> tuple[list[Path], str | None]:
    """``snapshots`` (with the import step) and ``export_dir`` (with the export step), checked."""
    from migrate.pipeline_snapshots import snapshot_dirs

    listed = isinstance(steps, list)
    patterns = doc.get("snapshots")
    if isinstance(patterns, str):
        patterns = [patterns]
    if patterns is not None and (not isinstance(patterns, list) or not all(isinstance(x, str) for x in patterns)):
        raise PipelineError(f"{p}: `snapshots` must be a glob pattern or a list of them (snapshot directories)")
    if listed and (patterns is not None) != ("import" in steps):
        raise PipelineError(f"{p}: the import step and `snapshots` (the directories it imports) go together")
    dirs = snapshot_dirs(p.parent, patterns) if patterns else []
    if patterns and not dirs:
        raise PipelineError(f"{p}: `snapshots` {patterns} matches no directory")
    export_dir = doc.get("export_dir")
    if export_dir is not None and not isinstance(export_dir, str):
        raise PipelineError(f"{p}: `export_dir` must be a directory path")
    if listed and (export_dir is not None) != ("export" in steps):
        raise PipelineError(f"{p}: the export step and `export_dir` (where it writes) go together")
    return dirs, str((p.parent / export_dir).resolve()) if export_dir is not None else None


def _matching(conn: sa.Connection, pipeline: Pipeline) -> list[str]:
    """The canisters the pipeline selects: by name pattern, and the children of the parents
    ``children_of`` names (canisters whose recorded parent is one of them)."""
    c = schema.canisters.c
    rows = conn.execute(sa.select(c.name, c.principal, c.parent).where(c.status != DELETED).order_by(c.name)).all()
    parents = {r.principal for r in rows if any(fnmatch.fnmatchcase(r.name, pat) for pat in pipeline.children_of)}
    return [r.name for r in rows
            if any(fnmatch.fnmatchcase(r.name, pat) for pat in pipeline.canisters) or r.parent in parents]


# ------------------------------------------------------------------------------------------- status


def pipeline_status(store: Store, pipeline: Pipeline) -> list[CanisterState]:
    """Every canister the pipeline matches (now, or when it ran), with its state in this store."""
    pl, c = schema.pipeline_locks, schema.canisters
    with db.read_transaction(store.engine) as conn:
        names = _matching(conn, pipeline)
        rows = {r.canister: r for r in conn.execute(sa.select(pl).where(pl.c.pipeline == pipeline.key))}
        modules = {r.name: r.module_hash for r in conn.execute(sa.select(c.c.name, c.c.module_hash))}
    out = []
    for n in sorted(set(names) | set(rows)):
        r = rows.get(n)
        mh = modules.get(n)
        st = CanisterState(canister=n, state=PENDING, module_hash=mh, at_target=mh == pipeline.module_hash)
        if r is not None:
            st.state, st.owner, st.heartbeat_ns = r.state, r.owner, int(r.heartbeat_ns)
            st.attempts, st.error = int(r.attempts), r.error
        out.append(st)
    return out


# -------------------------------------------------------------------------------------------- claims


def _register(store: Store, pipeline: Pipeline, emit: EventFn) -> tuple[list[str], list[str]]:
    """Run the import step, then insert a pending row for every matching canister (existing rows are
    kept), and make the canisters an earlier run failed or rolled back pending again: a rerun
    retries them. A snapshot directory that could not be imported gets a failed row. Returns the
    matching names and the retried ones. PipelineError when nothing matches."""
    failed: dict[str, str] = {}
    if "import" in pipeline.steps:
        from migrate.pipeline_snapshots import import_snapshot_dirs

        def on_import(canister: str, event: str, message: str) -> None:
            emit({"canister": canister, "event": event, "owner": locks.owner_token(), "message": message,
                  "time_ns": time.time_ns()})

        failed = import_snapshot_dirs(store, [Path(d) for d in pipeline.snapshots], on_import)
    now = time.time_ns()
    retried: list[str] = []
    pl = schema.pipeline_locks
    with db.transaction(store.engine) as conn:
        names = _matching(conn, pipeline)
        if not names and not failed:
            wanted = [*pipeline.canisters, *(f"children of {p}" for p in pipeline.children_of)]
            raise PipelineError(f"pipeline {pipeline.name}: no canister matches {', '.join(wanted)} "
                                "(see `graphcopy list`)")
        if names:
            conn.execute(insert_ignore(conn, pl), [
                {"pipeline": pipeline.key, "canister": n, "state": PENDING, "owner": None, "heartbeat_ns": 0,
                 "attempts": 0, "error": None, "detail": None, "updated_at_ns": now} for n in names])
            mine = (pl.c.pipeline == pipeline.key, pl.c.canister.in_(names))
            # Failed with attempts 0: a directory whose import failed in an earlier run, imported now.
            retried = sorted(conn.execute(sa.select(pl.c.canister).where(
                *mine, pl.c.state.in_((FAILED, ROLLED_BACK)), pl.c.attempts > 0)).scalars())
            # A rolled-back canister is back where it started: check and record it afresh. A failed one was
            # left as it was (perhaps upgraded): keep its "before" replies and its snapshot.
            conn.execute(pl.update().where(*mine, pl.c.state == ROLLED_BACK).values(
                state=PENDING, owner=None, detail=None, updated_at_ns=now))
            conn.execute(pl.update().where(*mine, pl.c.state == FAILED).values(
                state=PENDING, owner=None, error=None, updated_at_ns=now))
        for n, error in failed.items():
            conn.execute(insert_ignore(conn, pl).values(
                pipeline=pipeline.key, canister=n, state=FAILED, owner=None, heartbeat_ns=0, attempts=0, error=error,
                detail=None, updated_at_ns=now))
            conn.execute(pl.update().where(pl.c.pipeline == pipeline.key, pl.c.canister == n,
                                           pl.c.state != DONE).values(state=FAILED, error=error, updated_at_ns=now))
    return names, retried


def _claim_next(store: Store, pipeline: Pipeline, owner: str) -> tuple[str, dict[str, Any]] | None:
    """Claim one canister (atomic conditional UPDATE); None when nothing is left to claim."""
    pl = schema.pipeline_locks
    while True:
        with db.read_transaction(store.engine) as conn:
            rows = conn.execute(sa.select(pl.c.canister, pl.c.state, pl.c.owner, pl.c.heartbeat_ns).where(
                pl.c.pipeline == pipeline.key, pl.c.state.in_((PENDING, RUNNING))).order_by(pl.c.canister)).all()
        candidates = [r for r in rows if r.state == PENDING
                      or (r.owner != owner and not locks.claim_is_live(r.owner, int(r.heartbeat_ns)))]
        if not candidates:
            return None
        for r in candidates:
            now = time.time_ns()
            cond = [pl.c.pipeline == pipeline.key, pl.c.canister == r.canister]
            if r.state == PENDING:
                cond.append(pl.c.state == PENDING)
            else:  # take over a dead claim: compare-and-set on the claim we saw
                cond += [pl.c.state == RUNNING, pl.c.heartbeat_ns == r.heartbeat_ns]
                cond.append(pl.c.owner == r.owner if r.owner is not None else pl.c.owner.is_(None))
            with db.transaction(store.engine) as conn:
                res = conn.execute(pl.update().where(*cond).values(
                    state=RUNNING, owner=owner, heartbeat_ns=now, attempts=pl.c.attempts + 1, updated_at_ns=now))
                if res.rowcount == 1:
                    detail = conn.execute(sa.select(pl.c.detail).where(*cond[:2])).scalar()
                    return r.canister, json.loads(detail) if detail else {}
        # every candidate was taken by someone else meanwhile: look again


def _set(store: Store, pipeline: Pipeline, name: str, owner: str, **values: Any) -> None:
    pl = schema.pipeline_locks
    if "detail" in values and values["detail"] is not None:
        values["detail"] = json.dumps(values["detail"])
    with db.transaction(store.engine) as conn:
        conn.execute(pl.update().where(pl.c.pipeline == pipeline.key, pl.c.canister == name, pl.c.owner == owner)
                     .values(updated_at_ns=time.time_ns(), **values))


def _should_stop(store: Store, pipeline: Pipeline) -> bool:
    if pipeline.on_failure != "stop":
        return False
    pl = schema.pipeline_locks
    with db.read_transaction(store.engine) as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(pl).where(
            pl.c.pipeline == pipeline.key, pl.c.state.in_((FAILED, ROLLED_BACK)))).scalar()
    return bool(n)


class _Heartbeat:
    """Refresh this worker's running claims every HEARTBEAT_S seconds, from a thread with its own engine."""

    def __init__(self, url: str, pipeline: Pipeline, owner: str) -> None:
        self.engine = db.create_engine_for(url)
        self.pipeline, self.owner = pipeline, owner
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pl = schema.pipeline_locks
        while not self.stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception), db.transaction(self.engine) as conn:
                conn.execute(pl.update().where(pl.c.pipeline == self.pipeline.key, pl.c.owner == self.owner,
                                               pl.c.state == RUNNING).values(heartbeat_ns=time.time_ns()))

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.engine.dispose()


# ------------------------------------------------------------------------------------ one canister


def _hook(spec: str, pipeline: Pipeline) -> Callable[[Store, str], Any]:
    from migrate.pipeline_checks import import_hook

    return import_hook(spec, Path(pipeline.path).parent)


def _query_replies(store: Store, name: str, pipeline: Pipeline) -> dict[str, str]:
    from migrate.verify import query_reply

    return {v.label(): query_reply(store, name, v.query, v.args) for v in pipeline.verify if v.query is not None}


def _migrate_one(store: Store, pipeline: Pipeline, name: str, detail: dict[str, Any],
                 emit: Callable[..., None], owner: str) -> None:
    """Run the steps on one claimed canister; raises on failure (``detail`` is kept up to date)."""
    from migrate import destabilize, plan_upgrade, stabilize, upgrade
    from migrate import record as records
    from migrate.plan import UpgradeRefusedError
    from persist.api import snapshots, status

    wasm = pipeline.module_bytes()
    at_target = status(store, name).module_hash == pipeline.module_hash and not records.unfinished(
        records.read(store, name))
    if at_target and "before" not in detail:
        emit("skipped", "already runs the target module")
        return
    if not at_target:
        if "check" in pipeline.steps:
            plan = plan_upgrade(store, name, wasm, pipeline.mode)
            if plan.path == "refuse":
                raise UpgradeRefusedError(plan)
            emit("check", f"path {plan.path}")
        if "verify" in pipeline.steps and "before" not in detail and not records.unfinished(records.read(store, name)):
            detail["before"] = _query_replies(store, name, pipeline)
            _set(store, pipeline, name, owner, detail=detail)
        if "snapshot" in pipeline.steps and "snapshot_id" not in detail:
            snap = snapshots.take_snapshot(store, name, label=f"pipeline {pipeline.key}",
                                           purpose=snapshots.UPGRADE_PURPOSE, upgrade_to=pipeline.module_hash)
            detail["snapshot_id"] = snap.id
            _set(store, pipeline, name, owner, detail=detail)
            emit("snapshot", f"snapshot {snap.id}")
        if "stabilize" in pipeline.steps and plan_upgrade(store, name, wasm, pipeline.mode).path == "graph-copy":
            stabilize(store, name, snapshot_id=detail.get("snapshot_id"))
            emit("stabilize", "stabilized")
        # The snapshot step's snapshot is marked committed in the upgrade's own commit.
        out = upgrade(store, name, wasm, mode=pipeline.mode, snapshot=False, snapshot_id=detail.get("snapshot_id"))
        emit("upgrade", out.summary())
        if "destabilize" in pipeline.steps and records.unfinished(records.read(store, name)):
            destabilize(store, name)
            emit("destabilize", "destabilized")
    if "verify" in pipeline.steps:
        after = _query_replies(store, name, pipeline)
        detail["after"] = after
        _set(store, pipeline, name, owner, detail=detail)
        for label, reply in (detail.get("before") or {}).items():
            if after.get(label) != reply:
                raise PipelineError(f"verify {label}: {reply} before the upgrade, {after.get(label)} after")
        for v in pipeline.verify:
            if v.hook is not None:
                ok = _hook(v.hook, pipeline)(store, name)
                if ok is False:
                    raise PipelineError(f"verify hook {v.hook} returned False")
        emit("verify", f"{len(pipeline.verify)} check(s) passed")
    if "export" in pipeline.steps and pipeline.export_dir is not None:
        from migrate.pipeline_snapshots import export_migrated

        res = export_migrated(store, Path(pipeline.export_dir), name)
        emit("export", f"exported to {res.directory}")


def _work(store: Store, pipeline: Pipeline, owner: str, on_event: EventFn) -> None:
    """The worker loop: claim, migrate, record, until nothing is left (or the pipeline stops)."""
    from persist.api import snapshots

    store.lock_owner = owner
    if pipeline.performance_counter_scale is not None:
        store.limits.performance_counter_scale = pipeline.performance_counter_scale
    with _Heartbeat(store.url, pipeline, owner):
        while not _should_stop(store, pipeline):
            claimed = _claim_next(store, pipeline, owner)
            if claimed is None:
                return
            name, detail = claimed

            def emit(event: str, message: str = "", _name: str = name) -> None:
                on_event({"canister": _name, "event": event, "owner": owner, "message": message,
                          "time_ns": time.time_ns()})

            emit("claimed")
            try:
                _migrate_one(store, pipeline, name, detail, emit, owner)
            except Exception as exc:
                # One line, but all of it (a reply printed over several lines must not lose its end).
                message = " ".join(line.strip() for line in str(exc).splitlines()) or type(exc).__name__
                if not isinstance(exc, GraphcopyError):
                    message = f"{type(exc).__name__}: {message}"
                    traceback.print_exc()
                state = FAILED
                if pipeline.on_failure == "rollback-continue" and "snapshot_id" in detail:
                    try:
                        snapshots.load_snapshot(store, name, int(detail["snapshot_id"]))
                        state = ROLLED_BACK
                        message += f" (rolled back to snapshot {detail['snapshot_id']})"
                    except Exception as rexc:  # noqa: BLE001 - reported, the canister stays failed
                        message += f" (rollback failed: {rexc})"
                _set(store, pipeline, name, owner, state=state, error=message)
                emit(state, message)
            else:
                _set(store, pipeline, name, owner, state=DONE, error=None)
                emit(DONE)


def _worker_main(url: str, pipeline: Pipeline, events: Any, index: int, caller: str, caller_held: bool) -> None:
    owner = locks.owner_token()

    def put(event: dict[str, Any]) -> None:
        events.put(event)

    # The worker acts as the process that ran the pipeline (the CLI's identity, a script's caller).
    # A terminal's Ctrl-C reaches every worker: each stops between two messages (persist.interrupts)
    # and exits 130 without a traceback; what it had claimed is taken over by the next run.
    try:
        with deferred(), open_store(url, caller=caller, caller_held=caller_held) as store:
            _work(store, pipeline, owner, put)
    except KeyboardInterrupt:
        sys.exit(130)


# ------------------------------------------------------------------------------------------- running


def run_pipeline(url_or_store: str | Store, pipeline: Pipeline, workers: int = 1,
                 on_event: EventFn | None = None) -> PipelineReport:
    """Migrate every canister ``pipeline`` matches, each exactly once, with ``workers`` processes.

    ``workers=1`` runs in this process (on the given store); more spawn worker processes that open
    their own store on the same URL. ``on_event(dict)`` gets one event per step of each canister
    (``canister``, ``event``: import / claimed / check / snapshot / stabilize / upgrade / destabilize / verify /
    export / skipped / done / failed / rolled-back / worker-died / retry, ``owner``, ``message``). Canisters
    done by an earlier run of the same pipeline are not touched again; those it failed or rolled back
    are tried again; a canister a killed worker left running is taken over (immediately if its
    process is gone from this host, else after its heartbeat goes stale). PipelineError (nothing
    done) when the pipeline selects no canister, or when what it names cannot run: the target module,
    a verify hook that does not import, a verify query the target module lacks or whose arguments do
    not parse (``migrate.pipeline_checks``, checked before the import step and any claim).
    """
    if workers < 1:
        raise PipelineError("workers must be at least 1")
    t0 = time.perf_counter()
    emit = on_event or (lambda _e: None)
    own = isinstance(url_or_store, str)
    store = open_store(url_or_store) if isinstance(url_or_store, str) else url_or_store
    try:
        from migrate.pipeline_checks import check_pipeline

        check_pipeline(store, pipeline)  # the module, the hooks, the verify queries: before any canister
        _, retried = _register(store, pipeline, emit)
        for name in retried:
            emit({"canister": name, "event": "retry", "owner": None,
                  "message": "failed or rolled back in an earlier run: trying again", "time_ns": time.time_ns()})
        if workers == 1:
            saved = store.lock_owner, store.limits.performance_counter_scale
            try:
                _work(store, pipeline, locks.owner_token(), emit)
            finally:
                store.lock_owner, store.limits.performance_counter_scale = saved
        else:
            _run_processes(store, pipeline, workers, emit)
        states = pipeline_status(store, pipeline)
    finally:
        if own:
            store.close()
    return PipelineReport(pipeline=pipeline.key, workers=workers, seconds=time.perf_counter() - t0,
                          canisters=states, stopped=pipeline.on_failure == "stop" and any(
                              s.state in (FAILED, ROLLED_BACK) for s in states))


def _run_processes(store: Store, pipeline: Pipeline, workers: int, emit: EventFn) -> None:
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    caller = store.identity.to_text()
    procs = [ctx.Process(target=_worker_main, args=(store.url, pipeline, events, i, caller, store.caller_held),
                         name=f"graphcopy-worker-{i}") for i in range(workers)]
    for p in procs:
        p.start()
    try:
        reported: set[int] = set()
        while True:
            try:
                emit(events.get(timeout=0.2))
                continue
            except queue.Empty:
                pass
            for p in procs:
                if p.exitcode not in (None, 0) and p.pid not in reported and p.pid is not None:
                    reported.add(p.pid)
                    emit({"canister": None, "event": "worker-died", "owner": f"pid {p.pid}",
                          "message": f"worker {p.name} exited with {p.exitcode}", "time_ns": time.time_ns()})
            if all(p.exitcode is not None for p in procs):
                while True:  # what is still queued
                    try:
                        emit(events.get(timeout=0.1))
                    except queue.Empty:
                        break
                return
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
