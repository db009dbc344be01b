"""Dirty tracking and undo without a committed copy (persist/host/dirty, persist/host/memory.Heap).

Under both mechanisms (the ``dirty_tracking`` fixture): every writer of the heap is seen (Wasm
stores, host copies, the stable-memory helper, the kernel), a memory that moves when it grows is
followed, and a trapped update and a query on a 256 MiB heap leave every byte as committed (the
pages they wrote come back from the cache of committed images and from SQL). Also: the choice
of mechanism and its errors, ``status`` naming it, data segments committed at install, and an
undo that finds the store moved on reloading instead of mixing two versions.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import wasmtime
import xxhash
from typer.testing import CliRunner

from cli.main import app
from persist import call, install, open_store
from persist.errors import CanisterTrapError, DirtyTrackingError
from persist.host.dirty import select, uffd
from persist.host.memory import PAGE, Heap, StaleSourceError
from persist.host.module import MemoryInfo
from persist.host.page_images import ZERO, PageImages
from persist.host.system_api.context import MessageContext
from persist.session import Store
from persist.store import db, pages

CANISTERS = Path(__file__).resolve().parent / "canisters"
BIG_HEAP_PAGES = 4096  # 256 MiB

STORE_WAT = """(module (import "m" "mem" (memory i64 1))
  (func (export "store") (param i64 i64) (i64.store (local.get 0) (local.get 1)))
  (func (export "grow") (param i64) (result i64) (memory.grow (local.get 0))))"""


def i64(*values: int) -> bytes:
    return b"".join(struct.pack("<q", v) for v in values)


class Wasm:
    """A heap (``persist.host.memory.Heap``) and a module storing into it."""

    def __init__(self, pages_: int, config: wasmtime.Config | None = None) -> None:
        cfg = config or wasmtime.Config()
        cfg.wasm_memory64 = True
        self.store = wasmtime.Store(wasmtime.Engine(cfg))
        self.heap = Heap.create(self.store, MemoryInfo(is_64=True, min_pages=pages_, max_pages=None), pages_)
        inst = wasmtime.Instance(self.store, wasmtime.Module(self.store.engine, STORE_WAT), [self.heap.memory])
        ex = inst.exports(self.store)
        self._store_fn, self._grow_fn = ex["store"], ex["grow"]

    def store_word(self, addr: int, value: int) -> None:
        self._store_fn(self.store, addr, value)  # type: ignore[operator]

    def grow(self, pages_: int) -> None:
        assert self._grow_fn(self.store, pages_) != -1  # type: ignore[operator]

    def page(self, p: int) -> bytes:
        base, _ = self.heap.span()
        return ctypes.string_at(base + p * PAGE, PAGE)


def _pattern(p: int) -> bytes:
    return bytes([p % 251 + 1]) * PAGE


def test_every_writer_is_seen_and_undone(dirty_tracking: str, tmp_path: Path) -> None:
    w = Wasm(32)
    heap = w.heap
    assert heap.mechanism == dirty_tracking
    stored = {p: _pattern(p) for p in range(0, 32, 3)}
    heap.write_pages(iter(stored.items()))  # as a load from SQL does
    heap.take_baseline()
    assert heap.changed_pages() == []
    w.store_word(5 * PAGE + 4096 * 3, 7)  # Wasm
    base, _ = heap.span()
    ctypes.memmove(base + 9 * PAGE + 100, b"host", 4)  # the host (argument copies, load)
    src = tmp_path / "bytes"
    src.write_bytes(b"kernel" * 10)
    fd = os.open(src, os.O_RDONLY)
    try:  # the kernel (a read(2) into the heap)
        view = memoryview((ctypes.c_char * PAGE).from_address(base + 20 * PAGE)).cast("B")
        assert os.preadv(fd, [view[:60]], 0) == 60
    finally:
        os.close(fd)
    assert heap.changed_pages() == [5, 9, 20]
    assert heap.changed_pages() == [5, 9, 20]  # asking again forgets nothing
    heap.commit([5, 9, 20])
    assert heap.changed_pages() == []
    committed = {p: w.page(p) for p in range(32)}

    # Undo: page 5 from the cache of committed images; 12 (stored) and 13 (zero) from the source.
    heap.images = PageImages(4 * PAGE)
    heap.images.put(5, committed[5])
    reads: list[list[int]] = []

    def source(wanted: list[int]) -> Iterator[tuple[int, bytes]]:
        reads.append(list(wanted))
        return ((p, committed[p]) for p in wanted if committed[p] != bytes(PAGE))

    heap.source = source
    for p in (5, 12, 13):
        w.store_word(p * PAGE + 8, 0x1234)
    assert heap.restore()
    assert reads == [[12, 13]]
    assert all(w.page(p) == committed[p] for p in range(32))
    assert heap.changed_pages() == []
    assert heap.images.get(13) == ZERO and heap.images.get(12) == committed[12]

    # A page neither cached nor readable: the heap cannot be put back in place.
    heap.images = PageImages(0)
    w.store_word(14 * PAGE, 1)

    def stale(wanted: list[int]) -> Iterator[tuple[int, bytes]]:
        raise StaleSourceError("moved on")

    heap.source = stale
    assert not heap.restore()
    heap.source = None
    assert not heap.restore()

    # Growth: every new page is changed; a grown heap cannot be undone in place.
    heap.source = source
    w.grow(4)
    assert heap.grew() and not heap.restore()
    assert heap.changed_pages() == [14, 32, 33, 34, 35]
    heap.commit(heap.changed_pages())
    w.store_word(34 * PAGE, 9)
    assert heap.changed_pages() == [34]


def test_a_commit_larger_than_the_image_cache_drops_stale_images(dirty_tracking: str) -> None:
    w = Wasm(8)
    heap = w.heap
    heap.take_baseline()
    heap.images = PageImages(2 * PAGE)
    w.store_word(1 * PAGE, 1)
    heap.commit(heap.changed_pages())
    assert heap.images.get(1) is not None  # page 1's image, with the 1
    for p in range(1, 6):
        w.store_word(p * PAGE, 2)
    changed = heap.changed_pages()
    assert changed == [1, 2, 3, 4, 5]
    heap.commit(changed)  # only two images fit: page 1's old one must not survive
    committed = {p: w.page(p) for p in range(8)}
    heap.source = lambda wanted: ((p, committed[p]) for p in wanted)
    w.store_word(1 * PAGE, 3)
    assert heap.restore() and w.page(1) == committed[1]


def test_a_memory_that_moves_when_it_grows_is_followed(dirty_tracking: str) -> None:
    cfg = wasmtime.Config()
    cfg.memory_reservation = 1 << 20  # 1 MiB: growing past it moves the memory
    cfg.memory_reservation_for_growth = 0
    w = Wasm(4, cfg)
    heap = w.heap
    heap.take_baseline()
    w.store_word(1 * PAGE, 1)
    base0, _ = heap.span()
    w.grow(60)
    assert heap.span()[0] != base0, "the memory did not move; the test needs a smaller reservation"
    w.store_word(2 * PAGE, 2)
    changed = heap.changed_pages()
    assert {1, 2} <= set(changed) and set(range(4, 64)) <= set(changed)
    heap.commit(changed)
    assert heap.changed_pages() == []
    w.store_word(3 * PAGE + 8, 3)
    w.store_word(50 * PAGE + 8, 3)
    assert heap.changed_pages() == [3, 50]


def _heap_matches_sql(store: Store, cid: int, heap: Heap) -> None:
    """Every byte of the heap is what SQL holds for it (a page without a row is zero)."""
    arr = heap.array()
    seen = np.zeros(heap.pages, dtype=bool)
    with db.read_transaction(store.engine) as conn:
        for p, data in pages.read_pages(conn, pages.HEAP, cid):
            assert arr[p * PAGE:(p + 1) * PAGE].tobytes() == bytes(data), f"heap page {p} differs from SQL"
            seen[p] = True
    for p in np.nonzero(~seen)[0]:
        assert not arr[int(p) * PAGE:(int(p) + 1) * PAGE].any(), f"heap page {p} should be zero"


def test_a_trapped_update_and_a_query_leave_every_heap_byte_as_committed(
        dirty_tracking: str, sqlite_url: str) -> None:
    wasm = bytes(wasmtime.wat2wasm((CANISTERS / "scribble.wat").read_text()))
    with open_store(sqlite_url) as store:
        install(store, "big", wasm)
        call(store, "big", "fill", i64(BIG_HEAP_PAGES))
        (cid,) = list(store.live)
        live = store.live[cid].live
        assert live.heap.pages == BIG_HEAP_PAGES and live.dirty_tracking == dirty_tracking
        _heap_matches_sql(store, cid, live.heap)
        digest = xxhash.xxh3_128_intdigest(memoryview(live.heap.array()))

        # An update that writes 1,366 pages (more than the image cache holds) and traps.
        with pytest.raises(CanisterTrapError, match="scribble"):
            call(store, "big", "scribble", i64(1, 3, -1, 1))
        assert store.live[cid].live is live, "the trapped update was undone by a reload, not in place"
        assert xxhash.xxh3_128_intdigest(memoryview(live.heap.array())) == digest
        _heap_matches_sql(store, cid, live.heap)

        # Queries, twice (the second finds the images in the cache).
        for value in (11, 12):
            assert call(store, "big", "peek", i64(2, 5, value, 0), kind="query").reply == i64(2)
            assert store.live[cid].live is live
            assert xxhash.xxh3_128_intdigest(memoryview(live.heap.array())) == digest

        # An update that commits: exactly what it wrote reaches SQL.
        call(store, "big", "scribble", i64(7, 1000, 99, 0))
        assert call(store, "big", "word", i64(7 * PAGE + 7 * 4096), kind="query").reply == i64(99)
        _heap_matches_sql(store, cid, live.heap)
    with open_store(sqlite_url) as store:  # and a new process sees it
        assert call(store, "big", "word", i64(3007 * PAGE + 15 * 4096), kind="query").reply == i64(99)
        assert call(store, "big", "word", i64(4 * PAGE), kind="query").reply == i64((4 * PAGE) ^ 0x5DEECE66D)


def test_committed_data_segments_survive_a_reload(dirty_tracking: str, sqlite_url: str) -> None:
    wasm = bytes(wasmtime.wat2wasm((CANISTERS / "scribble.wat").read_text()))
    with open_store(sqlite_url) as store:
        install(store, "ds", wasm)
    with open_store(sqlite_url) as store:
        assert call(store, "ds", "word", i64(32768), kind="query").reply == b"scribble"


def test_an_undo_that_finds_the_store_moved_on_reloads(dirty_tracking: str, sqlite_url: str) -> None:
    wasm = bytes(wasmtime.wat2wasm((CANISTERS / "scribble.wat").read_text()))
    with open_store(sqlite_url) as a, open_store(sqlite_url) as b:
        install(a, "c", wasm)
        call(a, "c", "fill", i64(64))
        (cid,) = list(a.live)
        stale = a.live[cid].live
        stale.heap.images = PageImages(0)  # every undo must read SQL
        call(b, "c", "scribble", i64(40, 1000, 5, 0))  # another process commits
        # The instance of process a runs a message that writes page 40, as a query would, and is
        # undone: the committed pages it would read belong to the newer version, so it refuses.
        ctx = MessageContext(kind="query", arg=i64(40, 1000, 1, 0), can_respond=True)
        assert stale.run(ctx, 10**9, "canister_query peek").trap is None
        assert not stale.rollback(), "an undo read pages of a newer version"
        # The next call of process a finds the newer version and reloads.
        assert call(a, "c", "word", i64(40 * PAGE + 8 * 4096), kind="query").reply == i64(5)
        assert a.live[cid].live is not stale


def test_page_images_are_bounded_least_recently_used_first() -> None:
    images = PageImages(2 * PAGE)
    images.put(1, b"a" * PAGE)
    images.put(2, b"b" * PAGE)
    assert images.get(1) == b"a" * PAGE  # 1 is now the most recent
    images.put(3, b"c" * PAGE)
    assert images.get(2) is None and images.get(1) is not None and images.get(3) is not None
    images.put(4, ZERO)  # a zero page costs nothing
    assert len(images) == 3 and images.get(4) == ZERO
    images.forget(1)
    assert images.get(1) is None
    assert len(PageImages(0)) == 0


def test_the_mechanism_is_chosen_at_run_time_and_may_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(select.ENV, raising=False)
    reason = uffd.unavailable_reason()
    auto = select.mechanism()
    assert auto.name == ("uffd" if reason is None else "compare") and not auto.forced
    monkeypatch.setenv(select.ENV, "compare")
    forced = select.mechanism()
    assert forced.name == "compare" and forced.forced and "forced" in forced.describe()
    assert select.new_tracker().mechanism == "compare"
    monkeypatch.setenv(select.ENV, "bogus")
    with pytest.raises(DirtyTrackingError, match="use uffd, compare or auto"):
        select.mechanism()
    # A kernel without it: the probe's answer for this process is what the selector goes by.
    monkeypatch.setitem(uffd._PROBED, os.getpid(), "simulated: no PAGEMAP_SCAN")  # noqa: SLF001
    monkeypatch.setenv(select.ENV, "uffd")
    with pytest.raises(DirtyTrackingError, match="simulated: no PAGEMAP_SCAN.*unset it to use compare"):
        select.mechanism()
    monkeypatch.setenv(select.ENV, "auto")
    fallback = select.mechanism()
    assert fallback.name == "compare" and "uffd unavailable: simulated" in fallback.detail


def test_status_names_the_mechanism(dirty_tracking: str) -> None:
    runner = CliRunner()
    counter = str(Path(__file__).resolve().parent.parent / "examples" / "counter" / "counter.wasm")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/g.db"
        assert runner.invoke(app, ["--db", url, "install", "counter", counter]).exit_code == 0
        res = runner.invoke(app, ["--db", url, "status", "counter", "--json"])
        doc = json.loads(res.stdout)
        assert doc["dirty_tracking"] == dirty_tracking and "forced by GRAPHCOPY_DIRTY_TRACKING" in \
            doc["dirty_tracking_detail"]
        res = runner.invoke(app, ["--db", url, "status", "counter"])
        assert res.exit_code == 0 and re.search(rf"dirty tracking +{dirty_tracking} \(", res.stdout)
        res = runner.invoke(app, ["--db", url, "status", "counter"], env={select.ENV: "sometimes"})
        assert res.exit_code == 2 and res.stdout == ""
        assert res.stderr.strip().splitlines() == [
            "error: GRAPHCOPY_DIRTY_TRACKING='sometimes' is not a dirty-tracking mechanism: use uffd, compare or auto"]
