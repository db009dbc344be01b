"""Upgrade benchmarks: keep-upgrade cost by heap size, and what SQL durability costs a graph copy.

Prints one JSON document. For each heap size (8, 128 and 512 MiB of stable data by default, built
by ``bench/canisters/heap.mo``: 128 KiB blocks of small Nats in linked records):

* ``keep_upgrade_s``: ``migrate.upgrade`` with keep to the same module, 5 times (min, median, each
  run's instructions). EOP keeps the heap as it is, so this should be flat in heap size; what
  grows is graphcopy's own commit, which compares the heap with its last committed copy;
* ``graph_copy.scale_<s>.sql``: the graph-copy migration through SQL (``mode="graph-copy"``) at
  performance-counter scale ``s`` (1: the IC's budgets; larger: more, smaller increments), per
  phase from the migration record: stabilize, upgrade step, destabilize seconds, increments, and
  MB/s over the stable image;
* ``graph_copy.scale_<s>.in_memory``: the same message sequence on a ``LiveCanister`` in the same
  process with no SQL at all: every message's changed heap pages and dirty stable pages are
  copied into Python bytearrays instead (the baseline); ``sql_cost_ratio`` divides the two.

The two alternate (``--repeat`` times each, fastest kept), start from the same committed data, and
the digest of every stable value is checked after each SQL run. Absolute times vary by +-30% on
these machines; the ratios are the figures.

``--keep-only`` runs the keep-upgrades only (each takes its snapshot first, as ``graphcopy upgrade``
does; the first one after the build stores every page, the later ones only what changed) and
reports each snapshot's ``bytes_new``; then, the two parts apart, keep-upgrades without a snapshot
(``keep_upgrade_without_snapshot_s``), each followed by a snapshot of what it left (``snapshot_alone_s``).

Usage: python bench/upgrade.py [--db URL] [--heaps 8,128,512] [--scales 1,100] [--repeat 2] [--quick]
       [--keep-only] [--keeps 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migrate import upgrade  # noqa: E402
from persist import api  # noqa: E402
from persist.api.snapshots import list_snapshots, take_snapshot  # noqa: E402
from persist.execution import instances  # noqa: E402
from persist.host.limits import Limits  # noqa: E402
from persist.host.live import LiveCanister  # noqa: E402
from persist.host.memory import PAGE  # noqa: E402
from persist.host.system_api.context import POST_UPGRADE, PRE_UPGRADE, REPLY, UPDATE, MessageContext, OutgoingCall  # noqa: E402
from persist.session import Store, open_store  # noqa: E402
from persist.store import db  # noqa: E402
from persist.store.canisters import canister_row  # noqa: E402
from toolchain.moc import compile_motoko  # noqa: E402

EMPTY = b"DIDL\x00\x00"
MIB = 1024 * 1024
GROW_STEP_MIB = 64


def nat_arg(n: int) -> bytes:
    """Candid ``(n : nat)``."""
    out = bytearray(b"DIDL\x00\x01\x7d")
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class InMemoryCommits:
    """Where the baseline 'commits': changed heap pages and dirty stable pages copied into Python
    bytearrays, exactly the pages the SQL commit would write."""

    def __init__(self) -> None:
        self.heap = bytearray()
        self.stable = bytearray()
        self.pages_written = 0

    @staticmethod
    def _put(image: bytearray, page_no: int, data: Any) -> None:
        end = (page_no + 1) * PAGE
        if len(image) < end:
            image.extend(bytes(end - len(image)))
        image[page_no * PAGE : end] = bytes(data)

    def commit(self, live: LiveCanister) -> None:
        heap, stable = live.changed_heap_pages(), live.dirty_stable_pages()
        for p, data in live.heap_page_bytes(heap):
            self._put(self.heap, p, data)
        for p, data in live.stable_page_bytes(stable):
            self._put(self.stable, p, data)
        self.pages_written += len(heap) + len(stable)
        live.commit(heap, stable)


def _run(live: LiveCanister, ctx: MessageContext, fuel: int | None, entry: Any, sink: InMemoryCommits) -> None:
    res = live.run(ctx, fuel, entry)
    if res.trap is not None:
        raise RuntimeError(f"baseline message trapped: {res.trap}")
    sink.commit(live)


def drive_in_memory(live: LiveCanister, method: str, controller: bytes, limits: Limits,
                    sink: InMemoryCommits) -> int:
    """The protocol graphcopy runs through SQL, without SQL: call ``method`` as a controller, then
    deliver each self-call and its reply callback until the original call is answered. Returns the
    number of increments (self-calls)."""
    fuel = limits.update_instructions
    ctx = MessageContext(kind=UPDATE, caller=controller, arg=EMPTY, time_ns=time.time_ns(), can_respond=True,
                         method=method)
    _run(live, ctx, fuel, f"canister_update {method}", sink)
    pending: list[OutgoingCall] = list(ctx.calls)
    increments = 0
    answered = ctx.response is not None
    while pending and not answered:
        call = pending.pop(0)
        req = MessageContext(kind=UPDATE, caller=live.principal, arg=bytes(call.arg), time_ns=time.time_ns(),
                             can_respond=True, method=call.method)
        _run(live, req, fuel, f"canister_update {call.method}", sink)
        increments += 1
        assert req.response is not None and req.response[0] == "reply", req.response
        cb = MessageContext(kind=REPLY, arg=req.response[1], time_ns=time.time_ns(), can_respond=True)
        _run(live, cb, fuel, (call.callback.reply_fun, call.callback.reply_env), sink)
        pending.extend(cb.calls)
        answered = cb.response is not None
    return increments


def upgrade_in_memory(store: Store, old: LiveCanister, wasm: bytes, controller: bytes,
                      sink: InMemoryCommits) -> LiveCanister:
    """install_code upgrade with replace, as persist.execution.install_code runs it, committing to memory."""
    info, module = store.runtime.load_module(wasm)
    old.store.set_fuel(store.limits.install_instructions)
    pre = MessageContext(kind=PRE_UPGRADE, caller=controller, time_ns=time.time_ns())
    assert old.run(pre, None, "canister_pre_upgrade").trap is None
    new = LiveCanister(store.runtime, info, module, principal=old.principal, controllers=old.controllers,
                       status="running", limits=store.limits, heap_pages=0, heap_data=[],
                       stable_pages=old.stable_pages, stable_source=lambda _: [], stable_stored=None, globals_=None,
                       timer_ns=0, run_start=True, predecessor=old, keep_heap=False)
    assert new.run_start(None).trap is None
    post = MessageContext(kind=POST_UPGRADE, caller=controller, arg=EMPTY, time_ns=time.time_ns())
    assert new.run(post, None, "canister_post_upgrade").trap is None
    sink.heap = bytearray()  # replace: the new heap is the whole heap
    sink.commit(new)
    return new


def phase_seconds(rec: dict[str, Any], start: str, end: str) -> float:
    at = {h["phase"]: h["at_ns"] for h in rec["history"]}
    return (at[end] - at[start]) / 1e9


def in_memory_run(store: Store, name: str, wasm: bytes) -> tuple[dict[str, Any], int]:
    """The baseline: the committed canister, detached from the store's cache, migrated with every
    commit going to bytearrays. Returns its figures and the stable image size."""
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
    live = instances.live_canister(store, row)
    instances.forget_live(store, row.id)
    controller = store.identity.raw
    sink = InMemoryCommits()
    t0 = time.perf_counter()
    inc_s = drive_in_memory(live, "__motoko_stabilize_before_upgrade", controller, store.limits, sink)
    t1 = time.perf_counter()
    stable_bytes = live.stable_pages * PAGE
    new = upgrade_in_memory(store, live, wasm, controller, sink)
    t2 = time.perf_counter()
    inc_d = drive_in_memory(new, "__motoko_destabilize_after_upgrade", controller, store.limits, sink)
    t3 = time.perf_counter()
    return ({"stabilize_s": t1 - t0, "upgrade_s": t2 - t1, "destabilize_s": t3 - t2, "total_s": t3 - t0,
             "increments": {"stabilize": inc_s, "destabilize": inc_d}, "pages_copied": sink.pages_written},
            stable_bytes)


def sql_run(store: Store, name: str, wasm: bytes, digest: bytes) -> dict[str, Any]:
    """The graph copy as graphcopy runs it, every message committed to SQL; checks the digest."""
    assert api.call(store, name, "digest").reply == digest  # (re)loads the committed canister first
    out = upgrade(store, name, wasm, mode="graph-copy")
    rec = out.migration
    assert rec is not None and rec["phase"] == "done"
    assert api.call(store, name, "digest").reply == digest
    return {"stabilize_s": phase_seconds(rec, "stabilizing", "stabilized"),
            "upgrade_s": phase_seconds(rec, "upgrading", "upgraded"),
            "destabilize_s": phase_seconds(rec, "destabilizing", "done"), "total_s": out.seconds,
            "increments": rec["increments"]}


def graph_copies(store: Store, name: str, wasm: bytes, digest: bytes, scale: float, repeat: int) -> dict[str, Any]:
    """Graph copies of canister ``name`` in memory (the baseline) and through SQL, alternately,
    ``repeat`` times each; the fastest run of each side is reported (order and noise matter less)."""
    store.limits.performance_counter_scale = scale
    baselines: list[dict[str, Any]] = []
    sqls: list[dict[str, Any]] = []
    stable_bytes = 0
    for _ in range(repeat):
        run, stable_bytes = in_memory_run(store, name, wasm)
        baselines.append(run)
        gc.collect()  # the detached instance's memories
        sqls.append(sql_run(store, name, wasm, digest))
    baseline = min(baselines, key=lambda r: r["total_s"])
    sql = min(sqls, key=lambda r: r["total_s"])

    def rounded(d: dict[str, Any]) -> dict[str, Any]:
        r = {k: round(v, 3) if isinstance(v, float) else v for k, v in d.items()}
        r["stabilize_MBps"] = round(stable_bytes / d["stabilize_s"] / 1e6, 1)
        # The upgrade step runs the first destabilization increment (all of it, with the IC's budget).
        r["upgrade_and_destabilize_MBps"] = round(stable_bytes / (d["upgrade_s"] + d["destabilize_s"]) / 1e6, 1)
        return r

    return {
        "stable_image_mib": round(stable_bytes / MIB, 1),
        "sql": rounded(sql),
        "in_memory": rounded(baseline),
        "sql_cost_ratio": {k: round(sql[f"{k}_s"] / baseline[f"{k}_s"], 2)
                           for k in ("stabilize", "upgrade", "destabilize", "total")},
        "digest_equal": True,  # checked after every SQL run
    }


def grow(store: Store, name: str, mib: int) -> None:
    """Add ``mib`` MiB of bench data to canister ``name`` (running ``bench/canisters/heap.mo``), in
    ``GROW_STEP_MIB`` steps so each message stays within the IC's instruction budget."""
    left = mib
    while left > 0:
        step = min(GROW_STEP_MIB, left)
        api.call(store, name, "grow", nat_arg(step))
        left -= step


def bench_heap(store: Store, wasm: bytes, mib: int, scales: list[float], repeat: int,
               n_keeps: int = 5) -> dict[str, Any]:
    name = f"heap-{mib}"
    api.install(store, name, wasm)
    t0 = time.perf_counter()
    grow(store, name, mib)
    build = time.perf_counter() - t0
    st = api.status(store, name)
    digest = api.call(store, name, "digest").reply

    # The first keep-upgrades after a big build also pay for garbage collection the runtime still
    # owes (see the instructions); the minimum is the upgrade itself.
    keeps = [upgrade(store, name, wasm, mode="keep") for _ in range(n_keeps)]
    assert api.call(store, name, "digest").reply == digest
    runs = [k.seconds for k in keeps]
    snaps = {s.id: s for s in list_snapshots(store, name)}
    snapshot_new_mib = [round(snaps[k.snapshot_id].bytes_new / MIB, 1) for k in keeps if k.snapshot_id in snaps]
    # The two parts apart: a keep-upgrade without its snapshot, then a snapshot of what it left.
    plain: list[float] = []
    alone: list[float] = []
    for _ in range(n_keeps):
        plain.append(upgrade(store, name, wasm, mode="keep", snapshot=False).seconds)
        t0 = time.perf_counter()
        take_snapshot(store, name)
        alone.append(time.perf_counter() - t0)

    copies = {f"scale_{scale:g}": graph_copies(store, name, wasm, digest, scale, repeat) for scale in scales}
    result = {
        "requested_mib": mib,
        "heap_mib": round(st.heap_bytes / MIB, 1),
        "build_s": round(build, 2),
        "keep_upgrade_s": {"min": round(min(runs), 3), "median": round(statistics.median(runs), 3),
                           "runs": [round(x, 3) for x in runs], "instructions": [k.instructions for k in keeps],
                           "snapshot_bytes_new_mib": snapshot_new_mib},
        "keep_upgrade_without_snapshot_s": {"min": round(min(plain), 3), "median": round(statistics.median(plain), 3),
                                            "runs": [round(x, 3) for x in plain]},
        "snapshot_alone_s": {"min": round(min(alone), 3), "median": round(statistics.median(alone), 3),
                             "runs": [round(x, 3) for x in alone]},
        "graph_copy": copies,
    }
    store.live.clear()
    api.stop(store, name)
    api.delete(store, name)
    return result


def dirty_tracking() -> str:
    """The heap dirty-tracking mechanism this run uses (``GRAPHCOPY_DIRTY_TRACKING`` chooses;
    "committed-copy" on a tree from before issue 11)."""
    try:
        from persist.host.dirty.select import mechanism
    except ImportError:
        return "committed-copy"
    return mechanism().name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--heaps", default="8,128,512", help="stable data to build, in MiB")
    ap.add_argument("--scales", default="1,100",
                    help="performance_counter_scale values to graph-copy with (1 = the IC's budgets: few, large "
                         "increments; 100 = many smaller ones)")
    ap.add_argument("--repeat", type=int, default=2, help="graph copies per side and scale (the fastest counts)")
    ap.add_argument("--quick", action="store_true", help="small sizes, for smoke runs")
    ap.add_argument("--keep-only", action="store_true", help="keep-upgrades only (no graph copies)")
    ap.add_argument("--keeps", type=int, default=5, help="keep-upgrades per heap")
    args = ap.parse_args()
    if args.quick:
        args.heaps, args.repeat = "4,16", 1
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{tmp.name}/bench.db"
    wasm = compile_motoko(ROOT / "bench" / "canisters" / "heap.mo").wasm
    scales = [] if args.keep_only else [float(x) for x in args.scales.split(",")]
    report: dict[str, Any] = {"database": url.split("://")[0], "cpus": os.cpu_count(),
                              "dirty_tracking": dirty_tracking()}
    # The digest query reads every value of a 512 MiB heap: more than the IC's 5e9 query limit.
    with open_store(url, limits=Limits(query_instructions=200_000_000_000)) as store:
        heaps = [bench_heap(store, wasm, int(x), scales, args.repeat, args.keeps) for x in args.heaps.split(",")]
    report["heaps"] = heaps
    keeps = [h["keep_upgrade_s"]["min"] for h in heaps]
    report["keep_upgrade_min_largest_to_smallest"] = round(keeps[-1] / keeps[0], 2) if keeps[0] else None
    report["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(report, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
