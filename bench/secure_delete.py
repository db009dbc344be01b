"""SQLite's ``secure_delete``: graphcopy's FAST against a build default of ON, on the same graph copy.

Builds compiled with ``SQLITE_SECURE_DELETE`` (Debian's ``libsqlite3``, which Python uses here) zero
every page they free, so deleting a stored 64 KiB page writes as much as storing it did. graphcopy
sets ``PRAGMA secure_delete = FAST`` (``persist.store.db``). This builds the bench heap
(``bench/canisters/heap.mo``) twice, in two SQLite stores that differ only in that pragma (the second
store's connections set it back to ON), and runs graph-copy upgrades on them alternately (the order
flips every round), ``--rounds`` times each. The upgrade step is where it shows: it clears the
stable memory the stabilization filled. Prints JSON: per setting, the median, min and max seconds
of the whole upgrade, the stabilization and the upgrade step, and each run.

Usage: python bench/secure_delete.py [--heap 512] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from bench.upgrade import grow, phase_seconds  # noqa: E402
from migrate import upgrade  # noqa: E402
from persist import api  # noqa: E402
from persist.session import Store, open_store  # noqa: E402
from toolchain.moc import compile_motoko  # noqa: E402


def built_store(directory: str, wasm: bytes, mib: int, *, secure_delete_on: bool) -> Store:
    """A store holding canister ``h`` with ``mib`` MiB of bench data, its first snapshot taken."""
    store = open_store(f"sqlite:///{directory}/bench.db")
    if secure_delete_on:
        @event.listens_for(store.engine, "connect")
        def _on(dbapi_con: Any, _record: Any) -> None:
            dbapi_con.execute("PRAGMA secure_delete = ON")

        store.engine.dispose()  # connections from now on have it
    api.install(store, "h", wasm)
    grow(store, "h", mib)
    upgrade(store, "h", wasm, mode="keep")  # the first snapshot: later ones map pages by their hashes
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == (1 if secure_delete_on else 2)
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--heap", type=int, default=512, help="bench data to build, in MiB")
    ap.add_argument("--rounds", type=int, default=3, help="graph copies per setting")
    a = ap.parse_args()
    wasm = compile_motoko(ROOT / "bench" / "canisters" / "heap.mo").wasm
    stores = {label: built_store(tempfile.mkdtemp(prefix=f"graphcopy-sd-{label}-"), wasm, a.heap,
                                 secure_delete_on=label == "on")
              for label in ("fast", "on")}
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in stores}
    for r in range(a.rounds):
        order = list(stores) if r % 2 == 0 else list(stores)[::-1]
        for label in order:
            out = upgrade(stores[label], "h", wasm, mode="graph-copy")
            rec = out.migration
            assert rec is not None and rec["phase"] == "done"
            runs[label].append({"total_s": round(out.seconds, 3),
                                "stabilize_s": round(phase_seconds(rec, "stabilizing", "stabilized"), 3),
                                "upgrade_step_s": round(phase_seconds(rec, "upgrading", "upgraded"), 3)})

    def summary(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
                "max": round(max(values), 2)}

    doc = {"heap_mib_requested": a.heap, "rounds": a.rounds,
           "summary": {label: {k: summary([x[k] for x in rs]) for k in rs[0]} for label, rs in runs.items()},
           "upgrade_step_ratio_on_to_fast": round(
               statistics.median(x["upgrade_step_s"] for x in runs["on"])
               / statistics.median(x["upgrade_step_s"] for x in runs["fast"]), 2),
           "runs": runs}
    for store in stores.values():
        store.close()
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
