"""Pipeline benchmarks: canisters per minute by worker count, and what a snapshot costs after a small change.

Prints one JSON document:

* ``throughput.<backend>.workers_<n>``: a pipeline (check, snapshot, upgrade counter -> counter_v2,
  verify one query) over ``--canisters`` freshly installed counters, run with 1, 2 and 4 worker
  processes on PostgreSQL (``--pg URL``, a database is created and dropped per run) and SQLite (a
  temporary file); ``canisters_per_minute`` includes worker start-up (spawn) but not the installs;
* ``snapshot``: one counter, a first snapshot, one update call (``add``), a second snapshot: the
  second one's ``bytes_new`` against the canister's heap + stable bytes.

Usage: python bench/pipeline.py [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--canisters 40]
       [--workers 1,2,4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from migrate.pipeline import load_pipeline, run_pipeline  # noqa: E402
from persist import api  # noqa: E402
from persist.api import snapshots  # noqa: E402
from persist.candid import encode_args  # noqa: E402
from persist.session import open_store  # noqa: E402

COUNTER = ROOT / "examples" / "counter" / "counter.wasm"
COUNTER_V2 = ROOT / "examples" / "counter" / "counter_v2.wasm"


def _pipeline_file(tmp: Path) -> Path:
    path = tmp / "bench.toml"
    path.write_text(f'name = "bench"\nmodule = "{COUNTER_V2}"\ncanisters = ["b-*"]\n'
                    'steps = ["check", "snapshot", "upgrade", "verify"]\n[[verify]]\nquery = "get"\n')
    return path


def _populate(url: str, n: int) -> None:
    wasm = COUNTER.read_bytes()
    with open_store(url) as store:
        for i in range(n):
            api.install(store, f"b-{i:03d}", wasm)
            api.call(store, f"b-{i:03d}", "add", encode_args(f"({i} : nat)", None))


def _one_run(url: str, n: int, workers: int, tmp: Path) -> dict[str, Any]:
    _populate(url, n)
    pipeline = load_pipeline(_pipeline_file(tmp))
    t0 = time.perf_counter()
    report = run_pipeline(url, pipeline, workers=workers)
    seconds = time.perf_counter() - t0
    assert report.ok, report.to_dict()
    return {"canisters": n, "seconds": round(seconds, 2), "canisters_per_minute": round(n / seconds * 60, 1)}


def _pg_database(admin_url: str) -> tuple[sa.Engine, str, str]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"graphcopy_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return admin, name, admin.url.set(database=name).render_as_string(hide_password=False)


def _drop(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def throughput(pg: str | None, n: int, workers: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"sqlite": {}, "postgresql": {}}
    for w in workers:
        with tempfile.TemporaryDirectory() as tmp:
            out["sqlite"][f"workers_{w}"] = _one_run(f"sqlite:///{tmp}/bench.db", n, w, Path(tmp))
        if pg:
            admin_url = pg.replace("postgresql://", "postgresql+psycopg://", 1) if pg.startswith(
                "postgresql://") else pg
            admin, name, url = _pg_database(admin_url)
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    out["postgresql"][f"workers_{w}"] = _one_run(url, n, w, Path(tmp))
            finally:
                _drop(admin, name)
    return out


def snapshot_cost() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/snap.db") as store:
        api.install(store, "s", COUNTER.read_bytes())
        first = snapshots.take_snapshot(store, "s")
        api.call(store, "s", "add", encode_args("(5 : nat)", None))
        second = snapshots.take_snapshot(store, "s")
        st = api.status(store, "s")
        size = st.heap_bytes + st.stable_bytes
        return {"canister_bytes": size, "first_snapshot_bytes_new": first.bytes_new,
                "second_snapshot_bytes_new": second.bytes_new,
                "second_vs_canister": round(second.bytes_new / size, 4) if size else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres",
                    help="PostgreSQL maintenance URL (a database is created per run); '' to skip")
    ap.add_argument("--canisters", type=int, default=40)
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--quick", action="store_true", help="8 canisters")
    args = ap.parse_args()
    n = 8 if args.quick else args.canisters
    workers = [int(w) for w in args.workers.split(",")]
    doc = {"canisters": n, "throughput": throughput(args.pg or None, n, workers), "snapshot": snapshot_cost()}
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
