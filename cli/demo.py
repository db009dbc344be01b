"""``graphcopy demo``: install the example canisters, load data, call them, reopen the store, upgrade
them (keeping the heap, by graph copy, and along a migration chain).

Everything goes through the public API (``persist``), exactly as a script would use it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from persist import api
from persist.candid import ServiceInterface, encode_args, format_args
from persist.errors import GraphcopyError
from persist.session import Store, open_store

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
BATCH = 2_000


def example_wasm(name: str) -> bytes:
    path = EXAMPLES / name / f"{name}.wasm"
    if not path.exists():
        raise GraphcopyError(f"example module {path} is missing: run graphcopy from a checkout (pip install -e .)")
    return path.read_bytes()


class _Caller:
    """Calls with Candid text in and out, typed by the canister's interface."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        iface = api.interface(store, name)
        assert isinstance(iface, ServiceInterface)
        self.iface = iface

    def __call__(self, method: str, args: str = "()") -> str:
        sig = self.iface.methods[method]
        res = api.call(self.store, self.name, method, encode_args(args, sig.args))
        return format_args(res.reply, sig.rets)


def _install_fresh(store: Store, name: str, wasm: bytes) -> api.InstallResult:
    existing = {c.name for c in api.list_canisters(store)}
    return api.install(store, name, wasm, mode="reinstall" if name in existing else "install")


def _upgrade_both_ways(store: Store, say: Any) -> dict[str, Any]:
    """Upgrade the counter keeping its heap, and the ledger by graph copy; check the data after each."""
    from migrate import upgrade

    out: dict[str, Any] = {}
    counter = _Caller(store, "demo-counter")
    before = counter("get")
    res = upgrade(store, "demo-counter", (EXAMPLES / "counter" / "counter_v2.wasm").read_bytes(), mode="auto")
    after = _Caller(store, "demo-counter")("get")
    say(f"upgraded demo-counter to counter_v2 ([bold]{res.path}[/]: compatible stable types, same layout) in "
        f"{res.seconds * 1000:.0f} ms: get → {after}" + (" [green](kept)[/]" if after == before else " [red](LOST)[/]"),
        highlight=False)
    out["keep"] = {"path": res.path, "seconds": round(res.seconds, 3), "kept": after == before}

    ledger = _Caller(store, "demo-ledger")
    digest = ledger("digest")
    # Small increments, so the copy is visibly chunked: ic0.performance_counter reports 2000x.
    store.limits.performance_counter_scale = 2000.0
    try:
        res = upgrade(store, "demo-ledger", example_wasm("ledger"), mode="graph-copy")
    finally:
        store.limits.performance_counter_scale = 1.0
    again = _Caller(store, "demo-ledger")("digest")
    inc = (res.migration or {}).get("increments", {})
    say(f"upgraded demo-ledger by [bold]graph copy[/] ({inc.get('stabilize', 0)} stabilization and "
        f"{inc.get('destabilize', 0)} destabilization increments, each one committed) in {res.seconds:.1f} s: "
        f"digest → {again}" + (" [green](identical)[/]" if again == digest else " [red](DIFFERENT)[/]"),
        highlight=False)
    out["graph_copy"] = {"path": res.path, "seconds": round(res.seconds, 2), "increments": inc,
                         "digest_matches": again == digest}
    if after != before or again != digest:
        raise GraphcopyError("demo: data changed across an upgrade")
    return out


def _chain_upgrade(store: Store, say: Any) -> dict[str, Any]:
    """Install the to-do example (an enhanced migration chain), then upgrade it to the release whose
    new migration converts the tasks it holds; check that it ran once and kept them."""
    from migrate import applied_migrations, plan_upgrade, upgrade

    _install_fresh(store, "demo-tasks", example_wasm("tasks"))
    tasks = _Caller(store, "demo-tasks")
    for title in ("write the migration", "rehearse the upgrade", "deploy"):
        tasks("add", f'("{title}")')
    tasks("complete", "(0 : nat)")
    applied = applied_migrations(store, "demo-tasks") or []
    say(f"installed [cyan]demo-tasks[/], a to-do list built with a migration chain: a fresh install ran "
        f"{len(applied)} migrations; 3 tasks added, one done", highlight=False)
    v2 = (EXAMPLES / "tasks" / "tasks_v2.wasm").read_bytes()
    plan = plan_upgrade(store, "demo-tasks", v2)
    pending = [p.name for p in plan.report.chain.pending] if plan.report and plan.report.chain else []
    before = tasks("count")
    res = upgrade(store, "demo-tasks", v2)
    after = _Caller(store, "demo-tasks")
    listed = after("list")
    kept = after("count") == before and "variant { done }" in listed and "priority = 1 : nat" in listed
    say(f"upgraded demo-tasks to tasks_v2 ([bold]{res.path}[/]): the plan listed {len(pending)} pending migration "
        f"({', '.join(pending)}), the upgrade ran {', '.join(res.migrations_run or []) or 'none'}; the tasks "
        "now have a status and a priority" + (" [green](kept)[/]" if kept else " [red](LOST)[/]"), highlight=False)
    if not kept or res.migrations_run != pending:
        raise GraphcopyError("demo: the chain upgrade did not run its migration once, or lost tasks")
    return {"path": res.path, "pending": pending, "migrations_run": res.migrations_run, "kept": kept,
            "applied": applied_migrations(store, "demo-tasks")}


def run_demo(db_url: str | None, *, entries: int, console: Console | None) -> dict[str, Any]:
    """Run the demo; print what happens to ``console`` (None: quiet) and return a report."""
    say = console.print if console is not None else (lambda *a, **k: None)
    report: dict[str, Any] = {}
    with open_store(db_url) as store:
        say(f"[bold]graphcopy demo[/] on {store.url}")
        res = _install_fresh(store, "demo-counter", example_wasm("counter"))
        counter = _Caller(store, "demo-counter")
        say(f"installed [cyan]demo-counter[/] ({res.principal}), a Motoko counter")
        replies = [counter("inc") for _ in range(3)]
        say(f"  inc ×3 → {', '.join(replies)};  add(39) → {counter('add', '(39 : nat)')};  "
            f"get → {counter('get')}", highlight=False)
        report["counter"] = {"principal": res.principal, "get": counter("get")}

        res = _install_fresh(store, "demo-ledger", example_wasm("ledger"))
        ledger = _Caller(store, "demo-ledger")
        say(f"installed [cyan]demo-ledger[/] ({res.principal}): records, variants, options, "
            "mutable arrays, blobs, big Int/Nat and a map in stable variables")
        t0 = time.perf_counter()
        progress = Progress(TextColumn("  loading entries"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, disable=console is None)
        with progress:
            task = progress.add_task("load", total=entries)
            loaded = 0
            while loaded < entries:
                n = min(BATCH, entries - loaded)
                ledger("load", f"({n} : nat, 7 : nat)")
                loaded += n
                progress.update(task, completed=loaded)
        load_s = time.perf_counter() - t0
        count = ledger("count")
        digest = ledger("digest")
        say(f"  count → {count};  digest → {digest}  ({entries:,} entries in {load_s:.1f} s, "
            f"{entries / load_s:,.0f} entries/s, one committed update per {BATCH:,})", highlight=False)
        say(f"  get(42) → {ledger('get', '(42 : nat)')}", highlight=False, soft_wrap=True)
        st = api.status(store, "demo-ledger")
        say(f"  heap {st.heap_bytes / 2**20:.1f} MiB ({st.stored_heap_pages} non-zero pages in SQL), "
            f"stable memory {st.stable_bytes / 2**20:.1f} MiB, version {st.version}", highlight=False)
        report["ledger"] = {"principal": res.principal, "entries": entries, "count": count, "digest": digest,
                            "load_seconds": round(load_s, 2), "heap_bytes": st.heap_bytes,
                            "stored_heap_pages": st.stored_heap_pages}

    # A new store object has no live instances: everything comes back from SQL, as in a new process.
    with open_store(db_url) as store:
        again = _Caller(store, "demo-ledger")("digest")
        same = again == report["ledger"]["digest"]
        say(f"reopened the store: digest → {again} "
            + ("[green](identical: every byte came back from SQL)[/]" if same else "[red](DIFFERENT)[/]"),
            highlight=False)
        report["reopened_digest_matches"] = same
        if not same:
            raise GraphcopyError("demo: the ledger's digest changed after reopening the store")
        report["upgrades"] = _upgrade_both_ways(store, say)
        report["upgrades"]["chain"] = _chain_upgrade(store, say)
    say("next: [bold]graphcopy status demo-ledger[/] (its migration history), "
        "[bold]graphcopy call demo-ledger range '(0 : nat, 2 : nat)'[/]")
    return report
