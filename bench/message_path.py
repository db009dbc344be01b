"""The message path: an update through the API against the raw SQLite floor, and what it costs in SQL.

Prints one JSON document:

* ``update_api``: ``persist.api.call`` of the example counter's ``inc`` (an update that changes one
  heap page and replies at once), latency median / p10 / p90;
* ``raw_sqlite_txn``: in the same process, one raw ``sqlite3`` transaction that writes one 64 KiB
  page (``INSERT ... ON CONFLICT DO UPDATE``) and updates one row, with the store's pragmas
  (64 KiB pages, WAL, ``synchronous = FULL``, ``BEGIN IMMEDIATE``): the floor of a durable commit;
* ``ratio``: median update / median raw transaction (the issue's target: at most 4), and its spread
  over the rounds (the two sides alternate message by message, ``--rounds`` times ``-n`` each);
* ``statements_per_update`` / ``transactions_per_update``: counted by SQLAlchemy event listeners
  on the store's engine over the timed updates (``BEGIN`` statements are counted as transactions,
  not statements).

Usage: python bench/message_path.py [--db URL] [-n 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persist import api  # noqa: E402
from persist.session import open_store  # noqa: E402

EMPTY = b"DIDL\x00\x00"
PAGE = 65536


class SqlCounter:
    """Statements and transactions run on an engine while ``active``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.active = False
        self.statements = 0
        self.transactions = 0
        self.kinds: dict[str, int] = {}
        sa.event.listen(engine, "before_cursor_execute", self._on_execute)
        sa.event.listen(engine, "begin", self._on_begin)

    def _on_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not self.active or statement.startswith("BEGIN"):
            return
        self.statements += 1
        verb = statement.split(None, 1)[0].upper()
        self.kinds[verb] = self.kinds.get(verb, 0) + 1

    def _on_begin(self, conn: Any) -> None:
        if self.active:
            self.transactions += 1


class RawSqlite:
    """The floor: one page and one row per transaction, straight through sqlite3."""

    def __init__(self, path: str) -> None:
        self.con = sqlite3.connect(path, isolation_level=None)
        for pragma in ("busy_timeout = 5000", f"page_size = {PAGE}", "journal_mode = WAL", "synchronous = FULL",
                       "foreign_keys = ON"):
            self.con.execute(f"PRAGMA {pragma}")
        self.con.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, time_ns INTEGER)")
        self.con.execute("CREATE TABLE p (canister_id INTEGER, page_no INTEGER, data BLOB NOT NULL, "
                         "PRIMARY KEY (canister_id, page_no))")
        self.con.execute("INSERT INTO c VALUES (1, 0, 0)")
        self.page = bytearray(os.urandom(PAGE))
        self.n = 0

    def txn(self) -> None:
        self.n += 1
        self.page[self.n % PAGE] ^= 0xFF  # a different page each time, as a real commit writes
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE c SET version = version + 1, time_ns = ? WHERE id = 1 AND version = ?",
                    (time.time_ns(), self.n - 1))
        con.execute("INSERT INTO p VALUES (1, 0, ?) ON CONFLICT (canister_id, page_no) DO UPDATE SET "
                    "data = excluded.data", (bytes(self.page),))
        con.execute("COMMIT")


def quantiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median_us": round(statistics.median(s) * 1e6, 1), "p10_us": round(s[len(s) // 10] * 1e6, 1),
            "p90_us": round(s[(len(s) * 9) // 10 - 1] * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("-n", type=int, default=200, help="updates (and raw transactions) per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds (the two sides alternate message by message)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{tmp.name}/bench.db"
    wasm = (ROOT / "examples" / "counter" / "counter.wasm").read_bytes()
    raw = RawSqlite(f"{tmp.name}/raw.db")
    report: dict[str, Any] = {"database": url.split("://")[0]}
    with open_store(url) as store:
        name = "bench-path"
        api.install(store, name, wasm)
        for _ in range(20):  # warm up: the instance is loaded, statements compiled
            api.call(store, name, "inc", EMPTY)
            raw.txn()
        counter = SqlCounter(store.engine)
        api_s: list[float] = []
        raw_s: list[float] = []
        ratios: list[float] = []
        for _ in range(args.rounds):
            a: list[float] = []
            r: list[float] = []
            for _ in range(args.n):  # interleaved one by one: both sides see the same machine
                counter.active = True
                t0 = time.perf_counter()
                api.call(store, name, "inc", EMPTY)
                a.append(time.perf_counter() - t0)
                counter.active = False
                t0 = time.perf_counter()
                raw.txn()
                r.append(time.perf_counter() - t0)
            api_s += a
            raw_s += r
            ratios.append(statistics.median(a) / statistics.median(r))
        updates = args.n * args.rounds
        value = api.call(store, name, "get", EMPTY).reply
        report["update_api"] = quantiles(api_s)
        report["raw_sqlite_txn"] = quantiles(raw_s)
        report["ratio"] = round(statistics.median(api_s) / statistics.median(raw_s), 2)
        report["ratio_by_round"] = {"min": round(min(ratios), 2), "median": round(statistics.median(ratios), 2),
                                    "max": round(max(ratios), 2)}
        report["statements_per_update"] = round(counter.statements / updates, 2)
        report["statements_by_verb"] = {k: round(v / updates, 2) for k, v in sorted(counter.kinds.items())}
        report["transactions_per_update"] = round(counter.transactions / updates, 2)
        report["updates"] = updates
        report["counter_reply"] = value.hex()
    raw.con.close()
    print(json.dumps(report, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
