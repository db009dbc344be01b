"""Snapshot import/export benchmark: a 2 GiB heap and 4 GiB of stable memory, with a flat memory profile.

Builds a snapshot directory of the example counter (its real module, globals and heap pages) whose
heap is grown to ``--heap-mib`` and whose stable memory is ``--stable-mib``, both sparse files with
one non-zero 64 KiB page in every ``--every`` pages (the rest are holes). Each measured step runs in
a fresh subprocess, which reports its peak resident set (``VmHWM`` from ``/proc/self/status``):

* ``baseline``: the same imports, then reading both memory files page by page (``memory_pages``)
  without SQL: the floor of the process and of the file reading;
* ``import``: ``graphcopy snapshot import`` into a new store (``--db``, default a SQLite file);
* ``export``: ``graphcopy snapshot export`` of the imported canister into a new directory.

The whole run is done twice, at the full size and at one eighth of it, so the ratio of the peaks
shows whether memory grows with the size (it should not). Figures per run: seconds, MB/s over
the memories' full size and over the non-zero bytes moved, peak RSS in MiB. The exported
directory is checked against the input (same metadata, same non-zero pages by sha256).

Usage: python bench/snapshot_transfer.py [--heap-mib 2048] [--stable-mib 4096] [--every 16]
       [--db URL] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1 << 20
PAGE = 65536


def _vmhwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _child(argv: list[str]) -> None:
    """One measured step, in its own process; prints a JSON line."""
    from persist.api.snapshot_transfer import export_snapshot, import_snapshot
    from persist.session import open_store
    from persist.snapshot_dir.reader import memory_pages, open_snapshot_dir

    step = argv[0]
    t0 = time.perf_counter()
    moved = 0
    if step == "baseline":
        snap = open_snapshot_dir(argv[1])
        for path, size in ((snap.heap_path, snap.metadata.wasm_memory_size),
                           (snap.stable_path, snap.metadata.stable_memory_size)):
            moved += sum(len(d) for _, d in memory_pages(path, size))
    elif step == "import":
        with open_store(argv[2]) as store:
            res = import_snapshot(store, argv[3], argv[1])
            moved = (res.stored_heap_pages + res.stored_stable_pages) * PAGE
    elif step == "export":
        with open_store(argv[1]) as store:
            out = export_snapshot(store, argv[3], argv[2])
            moved = (out.stored_heap_pages + out.stored_stable_pages) * PAGE
    seconds = time.perf_counter() - t0
    print(json.dumps({"step": step, "seconds": seconds, "moved_bytes": moved, "vmhwm_kib": _vmhwm_kib()}))


def _run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"step {args[0]} failed:\n{proc.stderr}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _build(directory: Path, heap_mib: int, stable_mib: int, every: int, tmp: Path) -> dict[str, int]:
    """A counter's snapshot directory with its memories enlarged to sparse files of the given sizes."""
    from persist import api
    from persist.api.snapshot_transfer import export_snapshot
    from persist.candid import encode_args
    from persist.session import open_store
    from persist.snapshot_dir.format import parse_metadata

    with open_store(f"sqlite:///{tmp / 'source.db'}") as store:
        api.install(store, "counter", (ROOT / "examples" / "counter" / "counter.wasm").read_bytes())
        api.call(store, "counter", "add", encode_args("(41 : nat)", None))
        export_snapshot(store, "counter", directory)
    heap_size, stable_size = heap_mib * MIB, stable_mib * MIB
    nonzero = 0
    for name, size, first in (("wasm_memory.bin", heap_size, 128), ("stable_memory.bin", stable_size, 0)):
        with (directory / name).open("r+b" if name == "wasm_memory.bin" else "wb") as f:
            for page in range(first, size // PAGE, every):
                f.seek(page * PAGE)
                f.write(hashlib.sha256(f"{name}:{page}".encode()).digest() * (PAGE // 32))
                nonzero += 1
            f.truncate(size)
    meta = parse_metadata((directory / "metadata.json").read_bytes())
    meta.wasm_memory_size, meta.stable_memory_size = heap_size, stable_size
    (directory / "metadata.json").write_text(meta.to_json_text())
    return {"heap_bytes": heap_size, "stable_bytes": stable_size, "nonzero_pages_added": nonzero}


def _digest(directory: Path) -> str:
    """sha256 over metadata.json and every non-zero page (with its number) of both memories."""
    from persist.snapshot_dir.reader import memory_pages, open_snapshot_dir

    snap = open_snapshot_dir(directory)
    h = hashlib.sha256((directory / "metadata.json").read_bytes())
    for path, size in ((snap.heap_path, snap.metadata.wasm_memory_size),
                       (snap.stable_path, snap.metadata.stable_memory_size)):
        for no, data in memory_pages(path, size):
            h.update(no.to_bytes(8, "little") + data)
    return h.hexdigest()


def _one_size(heap_mib: int, stable_mib: int, every: int, db: str | None, tmp: Path) -> dict[str, Any]:
    src, out = tmp / "snapshot", tmp / "exported"
    built = _build(src, heap_mib, stable_mib, every, tmp)
    url = db or f"sqlite:///{tmp / 'bench.db'}"
    total = built["heap_bytes"] + built["stable_bytes"]
    result: dict[str, Any] = {"heap_mib": heap_mib, "stable_mib": stable_mib, "one_nonzero_page_in": every, **built}
    name = f"big-{heap_mib}-{stable_mib}"
    for step, args in (("baseline", (str(src),)), ("import", (str(src), url, name)), ("export", (url, str(out), name))):
        r = _run_child(step, *args)
        result[step] = {"seconds": round(r["seconds"], 2), "vmhwm_mib": round(r["vmhwm_kib"] / 1024, 1),
                        "mb_per_s_full_size": round(total / MIB / r["seconds"], 1),
                        "mb_per_s_nonzero": round(r["moved_bytes"] / MIB / r["seconds"], 1),
                        "nonzero_mib": round(r["moved_bytes"] / MIB, 1)}
    result["export_matches_input"] = _digest(src) == _digest(out)
    result["sparse_export_disk_mib"] = round(sum(p.stat().st_blocks * 512 for p in out.iterdir()) / MIB, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--heap-mib", type=int, default=2048)
    ap.add_argument("--stable-mib", type=int, default=4096)
    ap.add_argument("--every", type=int, default=16, help="one non-zero page in this many")
    ap.add_argument("--db", default=None, help="store URL (default: a fresh SQLite file per run)")
    ap.add_argument("--quick", action="store_true", help="256 MiB heap, 512 MiB stable")
    args = ap.parse_args()
    if args.quick:
        args.heap_mib, args.stable_mib = 256, 512
    runs = []
    for divisor in (8, 1):
        with tempfile.TemporaryDirectory(prefix="graphcopy-bench-") as tmp:
            runs.append(_one_size(args.heap_mib // divisor, args.stable_mib // divisor, args.every, args.db,
                                  Path(tmp)))
    small, big = runs
    doc = {"runs": runs, "peak_rss_ratio_full_vs_eighth": {
        step: round(big[step]["vmhwm_mib"] / small[step]["vmhwm_mib"], 2) for step in ("baseline", "import", "export")},
        "import_peak_over_baseline_mib": round(big["import"]["vmhwm_mib"] - big["baseline"]["vmhwm_mib"], 1),
        "export_peak_over_baseline_mib": round(big["export"]["vmhwm_mib"] - big["baseline"]["vmhwm_mib"], 1)}
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
