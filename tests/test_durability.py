"""Durability: what is committed survives (a new process, a killed process, a second engine), what
is not (traps, queries, a locked database, invalid installs) leaves no trace; on SQLite and
PostgreSQL.

Canisters: ``canisters/system_api.wat`` (counter, heap words, stable memory, self-calls) and
``canisters/durability.wat`` (one message that changes every kind of state and then traps; many
stable pages in one message).
"""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import wasmtime

from persist import (
    call,
    delete,
    install,
    list_canisters,
    logs,
    open_store,
    run_pending,
    start,
    status,
    stop,
)
from persist.errors import (
    CanisterExistsError,
    CanisterNotFoundError,
    CanisterStateError,
    CanisterTrapError,
    InvalidModuleError,
    StoreLockedError,
)
from persist.host.limits import Limits
from persist.host.memory import LOAD_GROUP_PAGES, PAGE
from persist.principal import Principal
from persist.session import Store
from persist.store import pages

# The host and durability suites run under both heap dirty-tracking mechanisms (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("dirty_tracking")

REPO = Path(__file__).resolve().parent.parent
CANISTERS = Path(__file__).resolve().parent / "canisters"
FAR_FUTURE_NS = 4_000_000_000_000_000_000


@functools.cache
def wasm(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm((CANISTERS / name).read_text()))


def wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def i64(v: int) -> bytes:
    return struct.pack("<q", v)


def s64(data: bytes, index: int = 0) -> int:
    return int(struct.unpack_from("<q", data, 8 * index)[0])


def reply(store: Store, name: str, method: str, arg: bytes = b"") -> bytes:
    return call(store, name, method, arg).reply


def dur_state(store: Store) -> dict[str, int]:
    """durability.wat's ``state``: its global, a heap word, stable size and first word, heap size."""
    data = reply(store, "dur", "state")
    keys = ("counter", "heap_word", "stable_pages", "stable_word", "heap_pages")
    return {k: s64(data, i) for i, k in enumerate(keys)}


def new_store(url: str) -> Store:
    return open_store(url, limits=Limits())


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    st = new_store(db_url)
    yield st
    st.close()


# --------------------------------------------------------------------------- subprocesses

PRELUDE = """
import json, os, struct, sys
from persist import call, install, open_store, run_pending, status
from persist.errors import CanisterStateError
from persist.host.limits import Limits
url, wasm_path = sys.argv[1], sys.argv[2]
i64 = lambda v: struct.pack("<q", v)
s64 = lambda b: struct.unpack_from("<q", b)[0]
st = open_store(url, limits=Limits())
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRAPHCOPY_DATABASE_URL", "GRAPHCOPY_PERFORMANCE_COUNTER_SCALE")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _script_args(body: str, url: str, wasm_path: Path) -> list[str]:
    return [sys.executable, "-c", PRELUDE + body, url, str(wasm_path)]


def run_script(body: str, url: str, wasm_path: Path) -> Any:
    """Run ``body`` in a fresh Python process against ``url``; return the JSON it prints last."""
    proc = subprocess.run(_script_args(body, url, wasm_path), capture_output=True, text=True,
                          timeout=120, env=_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def sys_wasm_path(tmp_path: Path) -> Path:
    path = tmp_path / "system_api.wasm"
    path.write_bytes(wasm("system_api.wat"))
    return path


# --------------------------------------------------------------------------- traps and queries


@pytest.mark.parametrize("reopen", [False, True], ids=["installing-store", "reopened-store"])
def test_trap_rolls_back_every_kind_of_state(db_url: str, reopen: bool) -> None:
    """Heap, globals, stable contents and size, the timer, the heap size: a trap undoes them all,
    both when the instance is restored in place and when it has to be reloaded (heap grew); in the
    store that installed the canister and in one that loaded it from the database."""
    st = new_store(db_url)
    install(st, "dur", wasm("durability.wat"))
    assert s64(reply(st, "dur", "setup", i64(FAR_FUTURE_NS))) == 0
    before = dur_state(st)
    assert before == {"counter": 7, "heap_word": 11, "stable_pages": 1, "stable_word": 13, "heap_pages": 2}
    if reopen:
        st.close()
        st = new_store(db_url)
    version = status(st, "dur").version
    for flags, kind in ((0, "in place"), (1, "heap grew")):
        with pytest.raises(CanisterTrapError):
            call(st, "dur", "mutate_then_trap", i64(flags))
        assert dur_state(st) == before, kind
        s = status(st, "dur")
        assert (s.timer_ns, s.stable_bytes, s.heap_bytes) == (FAR_FUTURE_NS, PAGE, 2 * PAGE)
        assert s.version == version
        assert s.stored_stable_pages == 1
    st.close()
    fresh = new_store(db_url)
    assert dur_state(fresh) == before
    fresh.close()


def test_trap_rolls_back_heap_growth_and_globals(store: Store) -> None:
    install(store, "sys", wasm("system_api.wat"))
    reply(store, "sys", "poke", i64(0x600) + i64(3))
    assert s64(reply(store, "sys", "bump")) == 1
    for method in ("grow_heap_then_trap", "write_then_trap"):
        arg = b"" if method == "grow_heap_then_trap" else i64(0) + b"XYZ"
        if method == "write_then_trap":
            reply(store, "sys", "stable_grow", i64(1))
        with pytest.raises(CanisterTrapError):
            call(store, "sys", method, arg)
        assert s64(reply(store, "sys", "heap_pages")) == 4
        assert status(store, "sys").heap_bytes == 4 * PAGE
        assert s64(reply(store, "sys", "peek", i64(0x600))) == 3
        assert s64(reply(store, "sys", "peek", i64(0x500))) == 0
        assert s64(reply(store, "sys", "counter")) == 1
    assert reply(store, "sys", "stable_read", i64(0) + i64(3)) == bytes(3)
    # A successful grow commits.
    assert s64(reply(store, "sys", "grow_heap")) == 4
    assert s64(reply(store, "sys", "heap_pages")) == 5
    assert s64(reply(store, "sys", "bump")) == 2


def test_queries_discard_every_change(store: Store) -> None:
    install(store, "sys", wasm("system_api.wat"))
    reply(store, "sys", "poke", i64(0x900) + i64(5))
    assert s64(reply(store, "sys", "bump")) == 1
    version = status(store, "sys").version
    for _ in range(2):
        assert reply(store, "sys", "poke_query", i64(0x900) + i64(77)) == b""
        assert s64(reply(store, "sys", "peek", i64(0x900))) == 5
        assert s64(reply(store, "sys", "counter")) == 1
    assert status(store, "sys").version == version
    # Nothing of the queries leaks into the next update either.
    assert s64(reply(store, "sys", "bump")) == 2
    assert s64(reply(store, "sys", "peek", i64(0x900))) == 5


# --------------------------------------------------------------------------- across processes


def test_state_survives_a_new_process(db_url: str, sys_wasm_path: Path) -> None:
    written = run_script("""
install(st, "sys", open(wasm_path, "rb").read(), arg=b"from-process-1")
call(st, "sys", "poke", i64(0x900) + i64(1234))
for _ in range(3):
    call(st, "sys", "bump")
call(st, "sys", "stable_grow", i64(2))
call(st, "sys", "stable_write", i64(65530) + b"durable bytes")
call(st, "sys", "set_timer", i64(4_000_000_000_000_000_000))
s = status(st, "sys")
print(json.dumps({"version": s.version, "principal": s.principal}))
""", db_url, sys_wasm_path)
    read = run_script("""
q = lambda m, a=b"": call(st, "sys", m, a).reply
s = status(st, "sys")
print(json.dumps({
    "heap": s64(q("peek", i64(0x900))), "counter": s64(q("counter")), "init_arg": s64(q("init_arg_size")),
    "stable": q("stable_read", i64(65530) + i64(13)).decode(), "stable_size": s64(q("stable_size")),
    "version": s.version, "principal": s.principal, "timer_ns": s.timer_ns,
}))
""", db_url, sys_wasm_path)
    assert read == {"heap": 1234, "counter": 3, "init_arg": len(b"from-process-1"), "stable": "durable bytes",
                    "stable_size": 2, "version": written["version"], "principal": written["principal"],
                    "timer_ns": FAR_FUTURE_NS}
    # This process agrees, and queries did not change the version.
    st = new_store(db_url)
    assert status(st, "sys").version == written["version"]
    assert s64(reply(st, "sys", "counter")) == 3
    st.close()


def test_stable_memory_loads_lazily(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    n_pages = 1024  # 64 MiB, every page non-zero
    st = new_store(db_url)
    install(st, "dur", wasm("durability.wat"))
    assert s64(reply(st, "dur", "fill_stable", i64(n_pages))) == 0
    assert status(st, "dur").stored_stable_pages == n_pages
    st.close()

    requested: list[list[int] | None] = []
    real_read_pages = pages.read_pages

    def counting_read_pages(conn: sa.Connection, kind: str, canister_id: int,
                            page_nos: Any = None) -> Iterator[tuple[int, bytes]]:
        if kind == pages.STABLE:
            requested.append(None if page_nos is None else list(page_nos))
        return real_read_pages(conn, kind, canister_id, page_nos)

    monkeypatch.setattr(pages, "read_pages", counting_read_pages)
    st = new_store(db_url)
    assert s64(reply(st, "dur", "page_word", i64(500))) == 501
    (cached,) = st.live.values()
    live = cached.live
    assert live.stable_pages == n_pages
    first = 500 // LOAD_GROUP_PAGES * LOAD_GROUP_PAGES
    group = set(range(first, first + LOAD_GROUP_PAGES))
    loaded = live.stable.loaded_map()
    assert set(loaded.nonzero()[0].tolist()) == group
    assert None not in requested  # never "all pages"
    assert set().union(*map(set, requested)) == group  # type: ignore[arg-type]
    assert live.stable_access()[0] == 8

    # Another page: one more group, nothing reloaded.
    assert s64(reply(st, "dur", "page_word", i64(n_pages - 1))) == n_pages
    loaded = live.stable.loaded_map()
    assert int(loaded.sum()) == 2 * LOAD_GROUP_PAGES
    assert sum(len(r or []) for r in requested) == 2 * LOAD_GROUP_PAGES
    assert s64(reply(st, "dur", "page_word", i64(500))) == 501
    assert sum(len(r or []) for r in requested) == 2 * LOAD_GROUP_PAGES
    st.close()


CRASH_WITH_QUEUED_MESSAGES = """
st.max_messages_per_command = 1
try:
    call(st, "sys", "selfcall", i64(0) + b"in flight")
    answered = True
except CanisterStateError:
    answered = False
s = status(st, "sys")
print(json.dumps({"answered": answered, "pending": s.pending_messages, "contexts": s.open_call_contexts}),
      flush=True)
os._exit(0)  # no cleanup, no draining
"""


def test_queued_messages_survive_a_crash(db_url: str, sys_wasm_path: Path) -> None:
    st = new_store(db_url)
    install(st, "sys", sys_wasm_path.read_bytes())
    st.close()
    left = run_script(CRASH_WITH_QUEUED_MESSAGES, db_url, sys_wasm_path)
    assert left["answered"] is False
    assert left["pending"] >= 1 and left["contexts"] == 1

    st = new_store(db_url)
    s = status(st, "sys")
    assert (s.pending_messages, s.open_call_contexts) == (left["pending"], 1)
    # The next command of another process carries the chain on before doing its own work.
    assert s64(reply(st, "sys", "bump")) == 1
    s = status(st, "sys")
    assert (s.pending_messages, s.open_call_contexts) == (0, 0)
    # The ingress message that was in flight got its reply: the callback's [refund] ++ echo.
    ingress = sa.Table("ingress", sa.MetaData(), autoload_with=st.engine)
    with st.engine.connect() as conn:
        rows = conn.execute(sa.select(ingress.c.method, ingress.c.status, ingress.c.reply)).all()
    assert [(r.method, r.status) for r in rows] == [("selfcall", "replied")]
    assert bytes(rows[0].reply)[8:] == b"in flight"
    st.close()

    # The same with run_pending as the next command, and a crash one message earlier.
    left = run_script(CRASH_WITH_QUEUED_MESSAGES.replace("= 1\n", "= 0\n", 1), db_url, sys_wasm_path)
    assert left["answered"] is False and left["pending"] >= 1
    st = new_store(db_url)
    assert run_pending(st) >= left["pending"]
    s = status(st, "sys")
    assert (s.pending_messages, s.open_call_contexts) == (0, 0)
    with st.engine.connect() as conn:
        later = conn.execute(sa.select(ingress.c.status, ingress.c.reply).order_by(ingress.c.id)).all()
    assert [r.status for r in later] == ["replied", "replied"]
    assert bytes(later[1].reply)[8:] == b"in flight"
    assert s64(reply(st, "sys", "counter")) == 1
    st.close()


KILL_LOOP = """
while True:
    print(s64(call(st, "sys", "bump").reply), flush=True)
    call(st, "sys", "selfcall", i64(0) + b"x")
"""


def test_killed_process_leaves_a_consistent_store(db_url: str, sys_wasm_path: Path) -> None:
    st = new_store(db_url)
    install(st, "sys", sys_wasm_path.read_bytes())
    st.close()
    rng = random.Random(20240611)
    committed_total = 0
    for _round in range(3):
        proc = subprocess.Popen(_script_args(KILL_LOOP, db_url, sys_wasm_path), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
        assert proc.stdout is not None and proc.stderr is not None
        lines: list[str] = []
        try:
            for _ in range(rng.randint(1, 8)):
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
            time.sleep(rng.uniform(0, 0.05))
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            rest, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        lines += rest.splitlines(keepends=True)
        printed = [int(x) for x in lines if x.endswith("\n")]
        assert printed, err
        assert printed == list(range(printed[0], printed[0] + len(printed)))
        assert printed[0] == committed_total + 1

        st = new_store(db_url)
        run_pending(st)
        counter = s64(reply(st, "sys", "counter"))
        # Every reply printed was committed; at most the call in flight was committed unprinted.
        assert printed[-1] <= counter <= printed[-1] + 1
        s = status(st, "sys")
        assert (s.pending_messages, s.open_call_contexts) == (0, 0)
        assert s64(reply(st, "sys", "bump")) == counter + 1  # and the canister still works
        committed_total = counter + 1
        st.close()


# --------------------------------------------------------------------------- locks


def test_locked_database_fails_fast_and_changes_nothing(sqlite_url: str) -> None:
    st = new_store(sqlite_url)
    install(st, "sys", wasm("system_api.wat"))
    assert s64(reply(st, "sys", "bump")) == 1
    version = status(st, "sys").version
    st.close()

    path = sa.make_url(sqlite_url).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        locked = open_store(sqlite_url, limits=Limits(), lock_timeout_s=0.2)
        with pytest.raises(StoreLockedError) as info:
            call(locked, "sys", "bump")
        message = str(info.value)
        assert "\n" not in message and "locked" in message
        assert info.value.exit_code == 4
        locked.close()
    finally:
        holder.rollback()
        holder.close()

    st = new_store(sqlite_url)
    assert s64(reply(st, "sys", "counter")) == 1
    s = status(st, "sys")
    assert (s.version, s.pending_messages, s.open_call_contexts) == (version, 0, 0)
    assert s64(reply(st, "sys", "bump")) == 2
    st.close()


# --------------------------------------------------------------------------- lifecycle


def test_stop_start_delete(store: Store) -> None:
    install(store, "sys", wasm("system_api.wat"))
    assert s64(reply(store, "sys", "bump")) == 1
    with pytest.raises(CanisterStateError):
        delete(store, "sys")  # running
    assert stop(store, "sys") == "stopped"
    assert status(store, "sys").status == "stopped"
    for method in ("bump", "counter"):
        with pytest.raises(CanisterStateError):
            call(store, "sys", method)
    assert start(store, "sys") == "running"
    assert s64(reply(store, "sys", "bump")) == 2

    # A canister with an open call context is "stopping": it takes no new calls, but the response
    # to its outstanding call is still delivered, and then it is stopped.
    store.max_messages_per_command = 0
    with pytest.raises(CanisterStateError):
        call(store, "sys", "selfcall", i64(0) + b"late")  # not answered within 0 queued messages
    run_pending(store, max_messages=1)
    assert status(store, "sys").open_call_contexts == 1
    assert stop(store, "sys") == "stopping"
    with pytest.raises(CanisterStateError):
        call(store, "sys", "counter")
    store.max_messages_per_command = 1_000_000
    run_pending(store)
    s = status(store, "sys")
    assert (s.status, s.pending_messages, s.open_call_contexts) == ("stopped", 0, 0)

    delete(store, "sys")
    for op in (lambda: call(store, "sys", "counter"), lambda: status(store, "sys"),
               lambda: start(store, "sys"), lambda: logs(store, "sys")):
        with pytest.raises(CanisterNotFoundError):
            op()
    assert list_canisters(store) == []


def test_install_and_reinstall(store: Store) -> None:
    first = install(store, "sys", wasm("system_api.wat"), arg=b"one")
    assert first.created and first.mode == "install"
    reply(store, "sys", "stable_grow", i64(2))
    reply(store, "sys", "stable_write", i64(10) + b"old")
    reply(store, "sys", "print", b"old log line")
    assert s64(reply(store, "sys", "bump")) == 1
    version = status(store, "sys").version

    with pytest.raises(CanisterExistsError):
        install(store, "sys", wasm("system_api.wat"))
    assert status(store, "sys").version == version

    again = install(store, "sys", wasm("system_api.wat"), arg=b"second", mode="reinstall")
    assert not again.created and again.principal == first.principal and again.stable_bytes == 0
    s = status(store, "sys")
    assert s.version > version
    assert (s.stable_bytes, s.stored_stable_pages) == (0, 0)
    assert s64(reply(store, "sys", "stable_size")) == 0
    assert s64(reply(store, "sys", "counter")) == 0
    assert s64(reply(store, "sys", "init_arg_size")) == len(b"second")
    assert [(x.kind, x.message) for x in logs(store, "sys")] == [("print", "initialised")]
    assert [h.kind for h in s.history] == ["create", "install", "reinstall"]


def test_invalid_modules_create_nothing(store: Store) -> None:
    good = wasm("system_api.wat")
    name, body = b"icp:public candid:service", b"service : {}"
    moc_like = good + bytes([0, 1 + len(name) + len(body), len(name)]) + name + body  # a custom section
    bad_modules = {
        "random bytes": random.Random(7).randbytes(4096),
        "truncated": moc_like[: len(good) // 2],
        "empty": b"",
        "wasi": wat('(module (import "wasi_snapshot_preview1" "fd_write"'
                    ' (func (param i32 i32 i32 i32) (result i32))) (memory 1) (func (export "_start")))'),
    }
    for label, module in bad_modules.items():
        with pytest.raises(InvalidModuleError) as info:
            install(store, "bad", module)
        assert "\n" not in str(info.value), label
        if label == "wasi":
            assert "wasi_snapshot_preview1" in str(info.value)
    assert list_canisters(store) == []

    # canister_init traps: CanisterTrapError and no canister.
    trapping_init = wat("""(module
      (import "ic0" "trap" (func $trap (param i64 i64)))
      (memory i64 1) (data (i64.const 0) "init failed")
      (func (export "canister_init") (call $trap (i64.const 0) (i64.const 11))))""")
    with pytest.raises(CanisterTrapError) as trapped:
        install(store, "bad", trapping_init)
    assert "init failed" in str(trapped.value)
    assert list_canisters(store) == []
    with pytest.raises(CanisterNotFoundError):
        status(store, "bad")

    # None of the failures used up a canister id: the first real canister gets index 0.
    assert install(store, "bad", moc_like).principal == Principal.from_canister_index(0).to_text()
    assert [c.name for c in list_canisters(store)] == ["bad"]
    assert status(store, "bad").history[-1].kind == "install"


# --------------------------------------------------------------------------- two engines


def test_two_stores_on_one_database(db_url: str) -> None:
    a = new_store(db_url)
    install(a, "sys", wasm("system_api.wat"))
    b = new_store(db_url)
    assert b.identity == a.identity
    assert s64(reply(b, "sys", "bump")) == 1  # B loads and caches the instance
    assert s64(reply(a, "sys", "bump")) == 2  # A's cached instance is stale: it reloads
    assert s64(reply(b, "sys", "counter")) == 2
    reply(a, "sys", "poke", i64(0x900) + i64(99))
    reply(a, "sys", "stable_grow", i64(1))
    reply(a, "sys", "stable_write", i64(40) + b"from A")
    assert s64(reply(b, "sys", "peek", i64(0x900))) == 99
    assert reply(b, "sys", "stable_read", i64(40) + i64(6)) == b"from A"
    assert s64(reply(b, "sys", "bump")) == 3
    reply(b, "sys", "stable_write", i64(40) + b"from B")
    assert s64(reply(a, "sys", "counter")) == 3
    assert reply(a, "sys", "stable_read", i64(40) + i64(6)) == b"from B"
    assert status(a, "sys").version == status(b, "sys").version
    a.close()
    b.close()
