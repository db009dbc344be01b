"""A live canister's memories and their bookkeeping: what a message changed, and how to undo it.

:class:`Heap` is the canister's memory 0, host-owned. Its changes are found by comparing it with a
copy of its last committed state, 64 KiB page by 64 KiB page, with numpy (no soft-dirty bits on
these machines; a write barrier would mean rewriting every store instruction). The copy doubles as
the undo log: a trap or a query puts the changed pages back. ``bench/messages.py`` measures what
this costs per heap size.

:class:`StableMemory` is the host-owned 64-bit stable memory with its two bytemaps (one byte per
64 KiB page: written since the last commit, loaded from SQL yet) and the Wasm helper that serves
``ic0.stable*`` over them (:mod:`persist.host.stable_helper`). Pages are read from SQL on their
first access, through a :data:`PageSource`; nothing here knows about SQL.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import wasmtime

from persist.host.module import MemoryInfo
from persist.host.stable_helper import FAIL_MESSAGES
from persist.host.traps import HostTrap

__all__ = [
    "LOAD_GROUP_PAGES",
    "PAGE",
    "WASM32_HEAP_MAX_PAGES",
    "WASM64_HEAP_MAX_PAGES",
    "Heap",
    "PageSource",
    "StableMemory",
]

PAGE = 65536
# Pages are loaded from SQL on first access in aligned groups, so word-by-word access to a cold
# stable memory costs one query per group, not one per page.
LOAD_GROUP_PAGES = 16
WASM64_HEAP_MAX_PAGES = 6 * 1024 * 1024 * 1024 // PAGE  # the IC's 6 GiB wasm64 heap limit
WASM32_HEAP_MAX_PAGES = 65536

#: Reads committed pages: given page numbers, yields ``(page_no, data)`` for those that are stored.
PageSource = Callable[[list[int]], Iterable[tuple[int, bytes]]]


def _byte_map(store: wasmtime.Store, memory: wasmtime.Memory, n: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    base = ctypes.addressof(memory.data_ptr(store).contents)
    return np.ctypeslib.as_array((ctypes.c_ubyte * n).from_address(base))


class Heap:
    """The canister's heap and the committed copy it is compared with."""

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory, is_64: bool) -> None:
        self.store = store
        self.memory = memory
        self.is_64 = is_64
        # The committed state; all zero (empty) until a baseline is taken.
        self._shadow = np.zeros(0, dtype=np.uint8)

    @classmethod
    def create(cls, store: wasmtime.Store, declared: MemoryInfo | None, heap_pages: int) -> Heap:
        """A fresh heap for a module declaring ``declared``, at least ``heap_pages`` pages large."""
        is_64 = declared.is_64 if declared is not None else True
        cap = WASM64_HEAP_MAX_PAGES if is_64 else WASM32_HEAP_MAX_PAGES
        heap_max = min(declared.max_pages, cap) if declared is not None and declared.max_pages is not None else cap
        start_pages = max(heap_pages, declared.min_pages if declared is not None else 0)
        memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(start_pages, heap_max), is_64=is_64))
        return cls(store, memory, is_64)

    # ----------------------------------------------------------------- views

    def span(self) -> tuple[int, int]:
        """(base address, length in bytes), fetched anew: memories may move on grow."""
        length = self.memory.data_len(self.store)
        if length == 0:
            return 0, 0
        return ctypes.addressof(self.memory.data_ptr(self.store).contents), length

    def array(self) -> np.ndarray:
        """The heap as a numpy byte array (no copy; valid until the heap grows)."""
        base, length = self.span()
        if length == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.ctypeslib.as_array((ctypes.c_ubyte * length).from_address(base))

    @property
    def pages(self) -> int:
        return self.memory.size(self.store)

    def grow_to(self, pages: int) -> None:
        """Grow the heap to at least ``pages`` pages."""
        if self.memory.size(self.store) < pages:
            self.memory.grow(self.store, pages - self.memory.size(self.store))

    def write_pages(self, pages: Iterable[tuple[int, bytes]]) -> None:
        """Copy stored pages into the heap."""
        base, _ = self.span()
        for page_no, data in pages:
            ctypes.memmove(base + page_no * PAGE, data, len(data))

    def put_back(self, pages: set[int], stored: dict[int, bytes]) -> None:
        """Make ``pages`` what ``stored`` holds (a page missing from it is zero)."""
        base, _ = self.span()
        for p in pages:
            data = stored.get(p)
            if data is None:
                ctypes.memset(base + p * PAGE, 0, PAGE)
            else:
                ctypes.memmove(base + p * PAGE, data, len(data))

    def page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        """``(page_no, data)`` of the heap's current contents."""
        base, _ = self.span()
        for p in pages:
            yield p, ctypes.string_at(base + p * PAGE, PAGE)

    # ----------------------------------------------------------------- change tracking

    def take_baseline(self) -> None:
        """The current contents are the committed state."""
        self._shadow = self.array().copy()

    def changed_pages(self) -> list[int]:
        """Pages that differ from the last committed state (including new pages)."""
        cur = self.array()
        sh = self._shadow
        n_common = min(len(cur), len(sh)) // PAGE
        changed: list[int] = []
        step = 256  # 16 MiB at a time keeps the temporary arrays small
        for p0 in range(0, n_common, step):
            p1 = min(n_common, p0 + step)
            a = cur[p0 * PAGE:p1 * PAGE].view(np.uint64).reshape(p1 - p0, PAGE // 8)
            b = sh[p0 * PAGE:p1 * PAGE].view(np.uint64).reshape(p1 - p0, PAGE // 8)
            diff = np.nonzero((a != b).any(axis=1))[0]
            changed.extend(int(x) + p0 for x in diff)
        changed.extend(range(n_common, len(cur) // PAGE))
        return changed

    def commit(self, pages: Iterable[int]) -> None:
        """These pages are durable now: make them part of the committed state."""
        cur = self.array()
        if len(cur) != len(self._shadow):
            grown = np.zeros(len(cur), dtype=np.uint8)
            grown[:len(self._shadow)] = self._shadow
            self._shadow = grown
        for p in pages:
            self._shadow[p * PAGE:(p + 1) * PAGE] = cur[p * PAGE:(p + 1) * PAGE]

    def grew(self) -> bool:
        """Whether the heap is larger than its committed state (memories do not shrink)."""
        return len(self.array()) != len(self._shadow)

    def restore(self) -> None:
        """Put every changed page back to its committed state (the heap must not have grown)."""
        cur = self.array()
        for p in self.changed_pages():
            cur[p * PAGE:(p + 1) * PAGE] = self._shadow[p * PAGE:(p + 1) * PAGE]


class StableMemory:
    """The stable memory, its bytemaps and the Wasm helper serving ``ic0.stable*`` over them.

    The memories are shared by the instances of one upgrade; each heap gets its own helper (it
    imports the heap), and the helper's globals hold the size, the growth limit, whether every page
    is loaded, and the byte counters.
    """

    def __init__(self, store: wasmtime.Store, stable: wasmtime.Memory, dirty: wasmtime.Memory,
                 loaded: wasmtime.Memory, source: PageSource) -> None:
        self.store = store
        self.stable = stable
        self.dirty = dirty
        self.loaded = loaded
        self.source = source
        self.helper: wasmtime.Instance
        self._g_size: wasmtime.Global
        self._g_max: wasmtime.Global
        self._g_all_loaded: wasmtime.Global
        self._g_read: wasmtime.Global
        self._g_written: wasmtime.Global

    @classmethod
    def create(cls, store: wasmtime.Store, engine: wasmtime.Engine, helper_module: wasmtime.Module, heap: Heap, *,
               stable_pages: int,
               max_pages: int, source: PageSource, stored: Iterable[int] | None) -> StableMemory:
        """A stable memory of ``stable_pages`` pages whose ``stored`` pages are in SQL (None:
        unknown, load every page on first access), served to a canister with ``heap``."""
        stable = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(stable_pages, max_pages), is_64=True))
        map_pages = (stable_pages + PAGE - 1) // PAGE
        dirty = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(map_pages, None)))
        loaded = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(map_pages, None)))
        mem = cls(store, stable, dirty, loaded, source)
        mem._instantiate_helper(engine, helper_module, heap)
        mem._g_size.set_value(store, wasmtime.Val.i64(stable_pages))
        mem._g_max.set_value(store, wasmtime.Val.i64(max_pages))
        mem._mark_loaded_initially(stable_pages, stored)
        return mem

    def for_heap(self, engine: wasmtime.Engine, helper_module: wasmtime.Module, heap: Heap) -> StableMemory:
        """The same stable memory served to another heap (an upgrade that replaces the heap): a new
        helper over the same memories, with this one's bookkeeping carried over."""
        other = StableMemory(self.store, self.stable, self.dirty, self.loaded, self.source)
        other._instantiate_helper(engine, helper_module, heap)
        for mine, theirs in ((other._g_size, self._g_size), (other._g_max, self._g_max),
                             (other._g_all_loaded, self._g_all_loaded), (other._g_read, self._g_read),
                             (other._g_written, self._g_written)):
            mine.set_value(self.store, theirs.value(self.store))
        return other

    def _instantiate_helper(self, engine: wasmtime.Engine, helper_module: wasmtime.Module, heap: Heap) -> None:
        # Host functions reach this object through a weak proxy: wasmtime-py keeps every Python
        # host function alive in a process-wide table until the wasmtime store is dropped, and the
        # store is the canister's, so a strong reference would keep every instance (and its
        # memories) alive.
        me = weakref.proxy(self)
        linker = wasmtime.Linker(engine)
        linker.define(self.store, "graphcopy", "heap", heap.memory)
        linker.define(self.store, "graphcopy", "stable", self.stable)
        linker.define(self.store, "graphcopy", "dirty", self.dirty)
        linker.define(self.store, "graphcopy", "loaded", self.loaded)
        linker.define_func("graphcopy", "load_pages",
                           wasmtime.FuncType([wasmtime.ValType.i64(), wasmtime.ValType.i64()], []),
                           lambda first, count: me.load_pages(first, count))
        linker.define_func("graphcopy", "fail", wasmtime.FuncType([wasmtime.ValType.i32()], []),
                           lambda code: me._fail(code))
        self.helper = linker.instantiate(self.store, helper_module)
        hx = self.helper.exports(self.store)
        self._g_size = _global(hx, "size")
        self._g_max = _global(hx, "max")
        self._g_all_loaded = _global(hx, "all_loaded")
        self._g_read = _global(hx, "read_bytes")
        self._g_written = _global(hx, "written_bytes")

    def helper_export(self, name: str) -> wasmtime.Func:
        """One of the helper's ``stable*`` functions, to link into the canister as ``ic0.<name>``."""
        func = self.helper.exports(self.store)[name]
        assert isinstance(func, wasmtime.Func)
        return func

    # ----------------------------------------------------------------- size and counters

    @property
    def pages(self) -> int:
        return int(self._g_size.value(self.store))

    def set_pages(self, pages: int) -> None:
        """Set the size the canister sees (only ever back to a committed size)."""
        self._g_size.set_value(self.store, wasmtime.Val.i64(pages))

    def access(self) -> tuple[int, int]:
        """(bytes read, bytes written) through ic0.stable* since this memory was loaded."""
        return int(self._g_read.value(self.store)), int(self._g_written.value(self.store))

    def base(self) -> int:
        """The address of the stable memory's first byte (0 while it is empty)."""
        if self.stable.data_len(self.store) == 0:
            return 0
        return ctypes.addressof(self.stable.data_ptr(self.store).contents)

    def loaded_map(self) -> np.ndarray:
        """The loaded bytemap over the current size (1: the page is in memory)."""
        return _byte_map(self.store, self.loaded, self.pages)

    def _fail(self, code: int) -> None:
        raise HostTrap(FAIL_MESSAGES.get(code, f"stable memory helper failure {code}"))

    # ----------------------------------------------------------------- loading from SQL

    def _mark_loaded_initially(self, stable_pages: int, stored: Iterable[int] | None) -> None:
        if stable_pages == 0:
            return
        loaded = _byte_map(self.store, self.loaded, stable_pages)
        if stored is None:
            loaded[:] = 0  # unknown: load everything on first access
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(0))
            return
        stored_list = list(stored)
        loaded[:] = 1
        if stored_list:
            loaded[np.asarray(stored_list, dtype=np.int64)] = 0
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(0))

    def load_pages(self, first: int, count: int) -> None:
        """Bring the aligned groups around ``[first, first+count)`` into memory (the helper calls
        this on the first access to a page that is not loaded)."""
        size = self.pages
        lo = (first // LOAD_GROUP_PAGES) * LOAD_GROUP_PAGES
        hi = min(size, -(-(first + count) // LOAD_GROUP_PAGES) * LOAD_GROUP_PAGES)
        loaded = _byte_map(self.store, self.loaded, size)
        wanted = [p for p in range(lo, hi) if not loaded[p]]
        if not wanted:
            return
        base = self.base()
        found = set()
        for page_no, data in self.source(wanted):
            ctypes.memmove(base + page_no * PAGE, data, len(data))
            found.add(page_no)
        for p in wanted:
            if p not in found:  # no row means a zero page; clear whatever a rolled-back message left
                ctypes.memset(base + p * PAGE, 0, PAGE)
        loaded[wanted] = 1
        if loaded[:size].all():
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(1))

    def load_all(self) -> None:
        """Bring every page into memory (before snapshots, exports, graph copy reads)."""
        size = self.pages
        for first in range(0, size, 1024):
            self.load_pages(first, min(1024, size - first))

    # ----------------------------------------------------------------- commit / rollback

    def dirty_pages(self) -> list[int]:
        """Pages written since the last commit."""
        size = self.pages
        if size == 0:
            return []
        return [int(p) for p in np.nonzero(_byte_map(self.store, self.dirty, size))[0]]

    def page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        """``(page_no, data)`` of the stable memory's current contents."""
        base = self.base()
        for p in pages:
            yield p, ctypes.string_at(base + p * PAGE, PAGE)

    def commit(self, pages: Iterable[int]) -> None:
        """These pages are durable now: clear their dirty marks."""
        size = self.pages
        if size:
            dirty = _byte_map(self.store, self.dirty, size)
            for p in pages:
                dirty[p] = 0

    def rollback(self, committed_pages: int) -> None:
        """Forget every write since the last commit: written pages are zeroed and reloaded from SQL
        on their next access, and the size goes back to ``committed_pages``."""
        size = self.pages
        if not size:
            return
        dirty = _byte_map(self.store, self.dirty, size)
        loaded = _byte_map(self.store, self.loaded, size)
        base = self.base()
        touched = np.nonzero(dirty)[0]
        for page in touched.tolist():
            ctypes.memset(base + page * PAGE, 0, PAGE)
            if page < committed_pages:
                loaded[page] = 0  # reload the committed bytes from SQL on next access
        dirty[:] = 0
        if len(touched) and (touched < committed_pages).any():
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(0))
        if size > committed_pages:
            self.set_pages(committed_pages)


def _global(exports: Any, name: str) -> wasmtime.Global:
    g = exports[name]
    assert isinstance(g, wasmtime.Global)
    return g
