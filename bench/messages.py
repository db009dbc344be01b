"""Message benchmarks: what durability costs per message, per heap size, per stable byte.

Prints one JSON document. Every figure comes with a baseline measured in the same process, and the
ratio is the figure to compare across machines (absolute times vary by +-30% here):

* update / query latency and throughput of the example counter canister through graphcopy
  (SQL commit included), against a bare wasmtime call of the same export;
* commit time of a one-page change as a function of heap size (8, 128, 512 MiB by default);
* stable memory write / read MB/s from inside a canister, against a bare ``memory.copy`` loop;
* time to open a canister (first query) with a large stable memory, against a small one;
* ``latency_by_heap_size``: one-page update and one-page query latency on 8, 128, 512 and 2048 MiB
  heaps under each heap dirty-tracking mechanism (``uffd``, ``compare``; on a tree without them,
  ``committed-copy``), in rounds that alternate the mechanisms, with medians, p10/p90 and the
  spread of the per-round medians, and ratios to the 8 MiB heap of the same mechanism and to
  ``uffd`` at the same size;
* ``open_rss``: the peak RSS of a fresh process opening (first query) a 2 GiB heap, per mechanism,
  against its heap size and against its own RSS before opening.

Usage: python bench/messages.py [--db URL] [--heaps 8,128,512] [--stable-mib 1024] [--quick]
       [--sections counter,commit,stream,open,latency,rss] [--latency-heaps 8,128,512,2048]
       [--rounds 3] [--rss-mib 2048]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from persist import api  # noqa: E402
from persist.host.live import LiveCanister  # noqa: E402
from persist.host.system_api.context import MessageContext  # noqa: E402
from persist.session import Store, open_store  # noqa: E402

EMPTY = b"DIDL\x00\x00"
MIB = 1024 * 1024


def i64(*values: int) -> bytes:
    return b"".join(struct.pack("<q", v) for v in values)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_us": round(statistics.median(samples) * 1e6, 1),
        "p90_us": round(sorted(samples)[int(len(samples) * 0.9) - 1] * 1e6, 1),
        "per_second": round(1 / statistics.median(samples), 1),
    }


def bare_live(store: Store, wasm: bytes) -> LiveCanister:
    """The same module in the same engine, with no SQL: a fresh instance after start + init."""
    info, module = store.runtime.load_module(wasm)
    live = LiveCanister(
        store.runtime, info, module, principal=b"\x00" * 8 + b"\x01\x01", controllers=[b"\x04"],
        status="running", limits=store.limits, heap_pages=0, heap_data=[], stable_pages=0,
        stable_source=lambda _: [], stable_stored=[], globals_=None, timer_ns=0, run_start=True)
    live.run_start(10**12)
    if "canister_init" in info.system:
        live.run(MessageContext(kind="init", arg=EMPTY, time_ns=time.time_ns()), 10**12, "canister_init")
    live.commit(live.changed_heap_pages(), live.dirty_stable_pages())
    return live


def bench_counter(store: Store, n: int) -> dict[str, object]:
    wasm = (ROOT / "examples" / "counter" / "counter.wasm").read_bytes()
    api.install(store, "bench-counter", wasm)
    live = bare_live(store, wasm)

    def bare_samples(kind: str, export: str) -> list[float]:
        # Only the wasmtime call is timed; a query's changes are undone outside the timed region
        # (moc's runtime traps on the next message if they are kept).
        out = []
        for _ in range(n):
            ctx = MessageContext(kind=kind, arg=EMPTY, time_ns=time.time_ns(), can_respond=True)
            t0 = time.perf_counter()
            res = live.run(ctx, 10**10, export)
            out.append(time.perf_counter() - t0)
            assert res.trap is None and ctx.response is not None, res.trap
            if kind == "query":
                live.rollback()
        live.commit(live.changed_heap_pages(), live.dirty_stable_pages())
        return out

    upd = timed(lambda: api.call(store, "bench-counter", "inc", EMPTY), n)
    qry = timed(lambda: api.call(store, "bench-counter", "get", EMPTY), n)
    bare_upd = bare_samples("update", "canister_update inc")
    bare_qry = bare_samples("query", "canister_query get")
    return {
        "update": summary(upd),
        "update_bare_wasmtime": summary(bare_upd),
        "update_ratio": round(statistics.median(upd) / statistics.median(bare_upd), 1),
        "query": summary(qry),
        "query_bare_wasmtime": summary(bare_qry),
        "query_ratio": round(statistics.median(qry) / statistics.median(bare_qry), 1),
    }


def install_filled(store: Store, name: str, bench_wasm: bytes, mib: int) -> float:
    """Install the bench canister as ``name`` and grow its heap to ``mib`` MiB; the seconds the fill took."""
    api.install(store, name, bench_wasm)
    t0 = time.perf_counter()
    api.call(store, name, "fill_heap", i64(mib * MIB // 65536))
    return time.perf_counter() - t0


def bench_heap_sizes(store: Store, heaps_mib: list[int], n: int, bench_wasm: bytes) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    base = 0.0
    for mib in heaps_mib:
        name = f"bench-heap-{mib}"
        fill = install_filled(store, name, bench_wasm, mib)

        def touch(nm: str = name) -> None:
            api.call(store, nm, "touch", b"")

        samples = summary(timed(touch, n))
        base = base or samples["median_us"]
        out.append({
            "heap_mib": mib,
            "initial_commit_s": round(fill, 3),
            "one_page_update": samples,
            "ratio_to_smallest": round(samples["median_us"] / base, 2),
        })
        api.stop(store, name)
        api.delete(store, name)
    return out


BARE_COPY_WAT = """
(module
  (memory $heap i64 2)
  (memory $stable i64 0)
  (func (export "grow") (param i64) (drop (memory.grow $stable (local.get 0))))
  (func (export "write") (param $total i64) (param $chunk i64)
    (local $off i64)
    (block $done (loop $l
      (br_if $done (i64.ge_u (local.get $off) (local.get $total)))
      (memory.copy $stable $heap (local.get $off) (i64.const 65536) (local.get $chunk))
      (local.set $off (i64.add (local.get $off) (local.get $chunk)))
      (br $l))))
  (func (export "read") (param $total i64) (param $chunk i64)
    (local $off i64)
    (block $done (loop $l
      (br_if $done (i64.ge_u (local.get $off) (local.get $total)))
      (memory.copy $heap $stable (i64.const 65536) (local.get $off) (local.get $chunk))
      (local.set $off (i64.add (local.get $off) (local.get $chunk)))
      (br $l)))))
"""


def bench_stable_stream(store: Store, bench_wasm: bytes, total_mib: int) -> dict[str, object]:
    name = "bench-stream"
    api.install(store, name, bench_wasm)
    api.call(store, name, "fill_stable", i64(total_mib * 16, 1))
    total = total_mib * MIB
    res: dict[str, object] = {"bytes": total}
    engine = store.runtime.engine
    cfg_store = wasmtime.Store(engine)
    cfg_store.set_fuel(10**15)
    bare = wasmtime.Instance(cfg_store, wasmtime.Module(engine, BARE_COPY_WAT), [])
    ex = bare.exports(cfg_store)

    def fn(name: str) -> wasmtime.Func:
        f = ex[name]
        assert isinstance(f, wasmtime.Func)
        return f

    fn("grow")(cfg_store, total_mib * 16)
    # Reads first: every page is in memory then (fill_stable ran here). A rolled-back write would
    # send the next read back to SQL for the pages it dirtied, which is not what is measured here.
    live = store.live[max(store.live)].live
    chunks = (8, 4096, 65536)
    reads: dict[int, float] = {}
    writes: dict[int, float] = {}
    for chunk in chunks:
        ctx = MessageContext(kind="query", arg=i64(total, chunk), time_ns=time.time_ns(), can_respond=True)
        t0 = time.perf_counter()
        r = live.run(ctx, 10**13, "canister_query stream_read")
        reads[chunk] = time.perf_counter() - t0
        assert r.trap is None, r.trap
        live.rollback()
    for chunk in chunks:
        # the message run only (commit excluded), so the figure is the in-canister rate
        ctx = MessageContext(kind="update", arg=i64(total, chunk), time_ns=time.time_ns(), can_respond=True)
        t0 = time.perf_counter()
        r = live.run(ctx, 10**13, "canister_update stream_write")
        writes[chunk] = time.perf_counter() - t0
        assert r.trap is None, r.trap
        live.commit(live.changed_heap_pages(), live.dirty_stable_pages())  # in memory only: deleted below
    for chunk in chunks:
        t0 = time.perf_counter()
        fn("write")(cfg_store, total, chunk)
        bw = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn("read")(cfg_store, total, chunk)
        br = time.perf_counter() - t0
        w, rd = writes[chunk], reads[chunk]
        res[f"chunk_{chunk}"] = {
            "write_MBps": round(total / w / 1e6, 1),
            "read_MBps": round(total / rd / 1e6, 1),
            "bare_memory_copy_write_MBps": round(total / bw / 1e6, 1),
            "bare_memory_copy_read_MBps": round(total / br / 1e6, 1),
            "write_ratio": round(w / bw, 2),
            "read_ratio": round(rd / br, 2),
        }
    store.live.clear()
    api.stop(store, name)
    api.delete(store, name)
    return res


def bench_open(url: str, bench_wasm: bytes, sizes_mib: list[int]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for mib in sizes_mib:
        with open_store(url) as store:
            name = f"bench-open-{mib}"
            api.install(store, name, bench_wasm)
            t0 = time.perf_counter()
            api.call(store, name, "fill_stable", i64(mib * 16, 7))
            fill = time.perf_counter() - t0
        with open_store(url) as store:
            t0 = time.perf_counter()
            reply = api.call(store, name, "stable_word", i64((mib * 16 - 1) * 65536)).reply
            first = time.perf_counter() - t0
            assert struct.unpack("<q", reply)[0] == 0x0707070707070707
        out.append({"stable_mib": mib, "write_all_pages_s": round(fill, 2), "open_and_first_read_ms":
                    round(first * 1000, 1)})
    return out


DIRTY_ENV = "GRAPHCOPY_DIRTY_TRACKING"


def mechanisms() -> list[str]:
    """The dirty-tracking mechanisms this tree and kernel offer ("committed-copy" before issue 11)."""
    try:
        from persist.host.dirty.uffd import unavailable_reason
    except ImportError:
        return ["committed-copy"]
    return (["uffd"] if unavailable_reason() is None else []) + ["compare"]


def use_mechanism(store: Store, mech: str) -> None:
    """Make the next load of every canister use ``mech`` (the instances are dropped and reloaded)."""
    if mech != "committed-copy":
        os.environ[DIRTY_ENV] = mech
    store.live.clear()
    gc.collect()  # free the old heap before the next load


def spread(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1e3, 3),
            "p10_ms": round(ordered[max(0, len(ordered) // 10 - 1)] * 1e3, 3),
            "p90_ms": round(ordered[max(0, len(ordered) * 9 // 10 - 1)] * 1e3, 3)}


def sqlite_floor(path: str, n: int) -> list[float]:
    """Raw SQLite transactions writing one 64 KiB page and one small row, with graphcopy's pragmas
    (WAL, synchronous=FULL, 64 KiB pages): what any durable update costs on this disk."""
    import sqlite3

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA page_size = 65536")
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = FULL")
    con.execute("CREATE TABLE IF NOT EXISTS p (k INTEGER PRIMARY KEY, data BLOB)")
    con.execute("CREATE TABLE IF NOT EXISTS r (k INTEGER PRIMARY KEY, v INTEGER)")
    page = os.urandom(65536)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT OR REPLACE INTO p VALUES (?, ?)", (i % 16, page))
        con.execute("INSERT OR REPLACE INTO r VALUES (1, ?)", (i,))
        con.execute("COMMIT")
        out.append(time.perf_counter() - t0)
    con.close()
    return out


def tracking_cost(store: Store, name: str, n: int) -> dict[str, float]:
    """The dirty-tracking part alone, on the loaded instance: finding the pages a one-page update
    wrote (``changed_heap_pages``) and undoing a one-page query (``rollback``), no SQL."""
    live = next(c.live for c in store.live.values())
    find: list[float] = []
    undo: list[float] = []
    for _ in range(n):
        ctx = MessageContext(kind="update", arg=b"", time_ns=time.time_ns(), can_respond=True)
        assert live.run(ctx, 10**9, "canister_update touch").trap is None
        t0 = time.perf_counter()
        changed = live.changed_heap_pages()
        find.append(time.perf_counter() - t0)
        assert changed == [0], changed
        ctx = MessageContext(kind="query", arg=b"", time_ns=time.time_ns(), can_respond=True)
        assert live.run(ctx, 10**9, "canister_query get").trap is None
        t0 = time.perf_counter()
        assert live.rollback()
        undo.append(time.perf_counter() - t0)  # puts back the update too: nothing is committed
    store.live.clear()
    return {"find_written_pages": spread(find)["median_ms"], "undo_query": spread(undo)["median_ms"]}


def bench_latency_by_heap(store: Store, bench_wasm: bytes, heaps_mib: list[int], n: int,
                          rounds: int, scratch: str) -> dict[str, object]:
    """One-page update (``touch``) and query (``get``) latency per heap size and mechanism."""
    mechs = mechanisms()
    out: list[dict[str, object]] = []
    for mib in heaps_mib:
        name = f"bench-lat-{mib}"
        fill = install_filled(store, name, bench_wasm, mib)
        upd: dict[str, list[float]] = {m: [] for m in mechs}
        qry: dict[str, list[float]] = {m: [] for m in mechs}
        round_medians: dict[str, dict[str, list[float]]] = {m: {"update": [], "query": []} for m in mechs}
        loads: dict[str, list[float]] = {m: [] for m in mechs}
        tracking: dict[str, list[dict[str, float]]] = {m: [] for m in mechs}
        floor: list[float] = []
        for r in range(rounds):
            floor += sqlite_floor(scratch, n)
            for mech in (mechs if r % 2 == 0 else mechs[::-1]):
                use_mechanism(store, mech)
                t0 = time.perf_counter()
                api.call(store, name, "get", b"", kind="query")  # loads the canister (untimed below)
                loads[mech].append(time.perf_counter() - t0)
                for _ in range(3):
                    api.call(store, name, "touch", b"")
                u: list[float] = []
                q: list[float] = []
                for _ in range(n):  # interleaved: update, query
                    t0 = time.perf_counter()
                    api.call(store, name, "touch", b"")
                    u.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    api.call(store, name, "get", b"", kind="query")
                    q.append(time.perf_counter() - t0)
                upd[mech] += u
                qry[mech] += q
                round_medians[mech]["update"].append(round(statistics.median(u) * 1e3, 3))
                round_medians[mech]["query"].append(round(statistics.median(q) * 1e3, 3))
                tracking[mech].append(tracking_cost(store, name, max(5, n // 4)))
        entry: dict[str, object] = {"heap_mib": mib, "initial_commit_s": round(fill, 2),
                                    "raw_sqlite_one_page_commit": spread(floor)}
        for mech in mechs:
            entry[mech] = {"update": spread(upd[mech]), "query": spread(qry[mech]),
                           "round_medians_ms": round_medians[mech],
                           "load_s_median": round(statistics.median(loads[mech]), 3), "samples": len(upd[mech]),
                           "update_to_raw_sqlite": round(statistics.median(upd[mech]) / statistics.median(floor), 2),
                           "tracking_only_ms": {k: round(statistics.median(t[k] for t in tracking[mech]), 3)
                                                for k in ("find_written_pages", "undo_query")}}
        out.append(entry)
        store.live.clear()
        api.stop(store, name)
        api.delete(store, name)
        gc.collect()
    # Ratios: against the smallest heap of the same mechanism (flatness), and against the first
    # mechanism (uffd where the kernel has it) at the same size.
    first = out[0]
    for entry in out:
        for mech in mechs:
            fig = entry[mech]
            assert isinstance(fig, dict)
            small = first[mech]
            assert isinstance(small, dict)
            for kind in ("update", "query"):
                fig[f"{kind}_ratio_to_{first['heap_mib']}mib"] = round(
                    fig[kind]["median_ms"] / small[kind]["median_ms"], 2)
                base = entry[mechs[0]]
                assert isinstance(base, dict)
                fig[f"{kind}_ratio_to_{mechs[0]}"] = round(fig[kind]["median_ms"] / base[kind]["median_ms"], 2)
    return {"mechanisms": mechs, "messages_per_round": n, "rounds": rounds, "by_heap": out}


def _hwm_kib() -> int:
    """This process's peak RSS (``VmHWM``): unlike ``ru_maxrss``, which a child started by
    ``subprocess`` inherits from the (large) parent it was forked from, it starts anew at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rss_child(url: str, name: str) -> None:
    """In a fresh process: open the store and the canister (one query), print peak RSS as JSON."""
    before = _hwm_kib()
    with open_store(url) as store:
        api.call(store, name, "get", b"", kind="query")
        live = store.live[max(store.live)].live
        heap = live.heap_pages * 65536
        mech = str(getattr(live, "dirty_tracking", "committed-copy"))
        peak = _hwm_kib()
    print(json.dumps({"heap_mib": round(heap / MIB, 1), "rss_before_open_mib": round(before / 1024, 1),
                      "peak_rss_mib": round(peak / 1024, 1), "mechanism": mech}))


def bench_open_rss(url: str, bench_wasm: bytes, mib: int, repeat: int) -> dict[str, object]:
    """Peak RSS of fresh processes opening a ``mib`` MiB heap, per mechanism (alternating)."""
    name = f"bench-rss-{mib}"
    with open_store(url) as store:
        install_filled(store, name, bench_wasm, mib)
    mechs = mechanisms()
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in mechs}
    for r in range(repeat):
        for mech in (mechs if r % 2 == 0 else mechs[::-1]):
            env = dict(os.environ)
            if mech != "committed-copy":
                env[DIRTY_ENV] = mech
            res = subprocess.run([sys.executable, __file__, "--rss-child", "--db", url, "--name", name],
                                 capture_output=True, text=True, env=env, check=True)
            runs[mech].append(json.loads(res.stdout.strip().splitlines()[-1]))
    out: dict[str, object] = {"heap_mib": mib}
    for mech, rs in runs.items():
        peak = statistics.median(x["peak_rss_mib"] for x in rs)
        before = statistics.median(x["rss_before_open_mib"] for x in rs)
        heap = rs[0]["heap_mib"]
        out[mech] = {"peak_rss_mib": peak, "rss_before_open_mib": before, "runs_peak_rss_mib":
                     [x["peak_rss_mib"] for x in rs], "peak_to_heap": round(peak / heap, 3),
                     "peak_minus_before_to_heap": round((peak - before) / heap, 3)}
    with open_store(url) as store:
        api.stop(store, name)
        api.delete(store, name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="database URL (default: a fresh SQLite file in a temp dir)")
    ap.add_argument("--heaps", default="8,128,512", help="heap sizes in MiB")
    ap.add_argument("--stable-mib", type=int, default=1024, help="large stable memory for the open test")
    ap.add_argument("--stream-mib", type=int, default=64, help="bytes streamed through stable memory")
    ap.add_argument("-n", type=int, default=200, help="messages per latency figure")
    ap.add_argument("--quick", action="store_true", help="small sizes, for CI smoke runs")
    ap.add_argument("--sections", default="counter,commit,stream,open,latency,rss",
                    help="which figures to measure (comma-separated)")
    ap.add_argument("--latency-heaps", default="8,128,512,2048", help="heap sizes in MiB for latency_by_heap_size")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per mechanism (alternating) for latency and RSS")
    ap.add_argument("--rss-mib", type=int, default=2048, help="heap opened by the RSS measurement")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.db, args.name)
        return
    if args.quick:
        args.heaps, args.stable_mib, args.stream_mib, args.n = "8,32", 64, 8, 30
        args.latency_heaps, args.rss_mib, args.rounds = "8,32", 32, 2
    sections = set(args.sections.split(","))
    tmp = tempfile.TemporaryDirectory()
    url = args.db or f"sqlite:///{tmp.name}/bench.db"
    bench_wasm = bytes(wasmtime.wat2wasm((ROOT / "bench" / "canisters" / "bench.wat").read_text()))
    report: dict[str, object] = {"database": url.split("://")[0], "mechanisms": mechanisms()}
    with open_store(url) as store:
        if "counter" in sections:
            report["counter"] = bench_counter(store, args.n)
        if "commit" in sections:
            report["commit_by_heap_size"] = bench_heap_sizes(
                store, [int(x) for x in args.heaps.split(",")], max(10, args.n // 4), bench_wasm)
        if "stream" in sections:
            report["stable_stream"] = bench_stable_stream(store, bench_wasm, args.stream_mib)
        if "latency" in sections:
            report["latency_by_heap_size"] = bench_latency_by_heap(
                store, bench_wasm, [int(x) for x in args.latency_heaps.split(",")], max(10, args.n // 4), args.rounds,
                f"{tmp.name}/floor.db")
    if "open" in sections:
        report["open_with_stable_memory"] = bench_open(url, bench_wasm, [16, args.stable_mib])
    if "rss" in sections:
        report["open_rss"] = bench_open_rss(url, bench_wasm, args.rss_mib, args.rounds)
    print(json.dumps(report, indent=2))
    tmp.cleanup()


if __name__ == "__main__":
    main()
