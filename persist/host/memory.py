"""A live canister's memories and their bookkeeping: what a message changed, and how to undo it.

:class:`Heap` is the canister's memory 0, host-owned, and the only copy of it in RAM. Which pages a
message wrote comes from a dirty tracker (:mod:`persist.host.dirty`): userfaultfd write-protect
with one ``PAGEMAP_SCAN`` per commit where the kernel offers it, per-page digests compared at each
commit where it does not. A trapped message or a query is undone by putting back only the pages it
wrote, from a small cache of committed page images (:mod:`persist.host.page_images`) or from SQL
through a :data:`PageSource`. ``bench/messages.py`` measures what this costs per heap size.

:class:`StableMemory` is the host-owned 64-bit stable memory with its two bytemaps (one byte per
64 KiB page: written since the last commit, loaded from SQL yet) and the Wasm helper that serves
``ic0.stable*`` over them (:mod:`persist.host.stable_helper`). Pages are read from SQL on their
first access, through a :data:`PageSource`; nothing here knows about SQL.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import wasmtime

from persist.host.dirty.select import DirtyTracker, new_tracker
from persist.host.module import MemoryInfo
from persist.host.page_images import ZERO, PageImages, default_capacity
from persist.host.stable_helper import FAIL_MESSAGES
from persist.host.traps import HostTrap

if TYPE_CHECKING:  # numpy loads on first use: a query on a canister without stable memory never needs it
    import numpy as np

__all__ = [
    "LOAD_GROUP_PAGES",
    "PAGE",
    "WASM32_HEAP_MAX_PAGES",
    "WASM64_HEAP_MAX_PAGES",
    "Heap",
    "PageSource",
    "StableMemory",
    "StaleSourceError",
]

PAGE = 65536
# Pages are loaded from SQL on first access in aligned groups, so word-by-word access to a cold
# stable memory costs one query per group, not one per page.
LOAD_GROUP_PAGES = 16
WASM64_HEAP_MAX_PAGES = 6 * 1024 * 1024 * 1024 // PAGE  # the IC's 6 GiB wasm64 heap limit
WASM32_HEAP_MAX_PAGES = 65536

#: Reads committed pages: given page numbers, yields ``(page_no, data)`` for those that are stored.
PageSource = Callable[[list[int]], Iterable[tuple[int, Any]]]


class StaleSourceError(Exception):
    """Raised by a heap's :data:`PageSource` when the stored state is no longer the one the heap
    was committed at (another process committed since): the heap cannot be put back in place."""


def _byte_map(store: wasmtime.Store, memory: wasmtime.Memory, n: int) -> np.ndarray:
    import numpy as np
    if n == 0:
        return np.zeros(0, dtype=np.uint8)
    base = ctypes.addressof(memory.data_ptr(store).contents)
    return np.ctypeslib.as_array((ctypes.c_ubyte * n).from_address(base))


def _copy_in(addr: int, data: Any) -> None:
    if not isinstance(data, bytes):
        data = bytes(data)
    ctypes.memmove(addr, data, len(data))
    if len(data) < PAGE:  # a short row: the rest of the page is zero
        ctypes.memset(addr + len(data), 0, PAGE - len(data))


class Heap:
    """The canister's heap, the tracker of the pages written since the last commit, and what is
    needed to put those pages back (the cache of committed images, the :data:`PageSource`)."""

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory, is_64: bool, *,
                 source: PageSource | None = None, tracker: DirtyTracker | None = None) -> None:
        self.store = store
        self.memory = memory
        self.is_64 = is_64
        #: Where committed pages are read from to undo a message (None: only the cache).
        self.source = source
        self.tracker: DirtyTracker = tracker if tracker is not None else new_tracker()
        # Pages below this are committed; pages beyond (a fresh heap: all) are new, hence changed.
        self._committed_pages = 0
        # Pages known to be written since the last commit (the tracker may report each once).
        self._pending: set[int] = set()
        self.images = PageImages(default_capacity())
        # Copies made for the commit in progress, kept as the new committed images afterwards.
        self._staged: dict[int, bytes] = {}

    @classmethod
    def create(cls, store: wasmtime.Store, declared: MemoryInfo | None, heap_pages: int, *,
               source: PageSource | None = None) -> Heap:
        """A fresh heap for a module declaring ``declared``, at least ``heap_pages`` pages large."""
        is_64 = declared.is_64 if declared is not None else True
        cap = WASM64_HEAP_MAX_PAGES if is_64 else WASM32_HEAP_MAX_PAGES
        heap_max = min(declared.max_pages, cap) if declared is not None and declared.max_pages is not None else cap
        start_pages = max(heap_pages, declared.min_pages if declared is not None else 0)
        memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(start_pages, heap_max), is_64=is_64))
        return cls(store, memory, is_64, source=source)

    @property
    def mechanism(self) -> str:
        """The dirty-tracking mechanism of this heap (``uffd`` or ``compare``)."""
        return self.tracker.mechanism

    # ----------------------------------------------------------------- views

    def span(self) -> tuple[int, int]:
        """(base address, length in bytes), fetched anew: memories may move on grow."""
        length = self.memory.data_len(self.store)
        if length == 0:
            return 0, 0
        return ctypes.addressof(self.memory.data_ptr(self.store).contents), length

    def array(self) -> np.ndarray:
        """The heap as a numpy byte array (no copy; valid until the heap grows)."""
        import numpy as np
        base, length = self.span()
        if length == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.ctypeslib.as_array((ctypes.c_ubyte * length).from_address(base))

    @property
    def pages(self) -> int:
        return self.memory.size(self.store)

    @property
    def committed_pages(self) -> int:
        """The size of the committed state, in pages (0 for a heap nothing was committed from)."""
        return self._committed_pages

    def grow_to(self, pages: int) -> None:
        """Grow the heap to at least ``pages`` pages."""
        if self.memory.size(self.store) < pages:
            self.memory.grow(self.store, pages - self.memory.size(self.store))

    def write_pages(self, pages: Iterable[tuple[int, Any]]) -> None:
        """Copy stored pages into the heap, one row at a time (an iterator over a SQL cursor keeps
        one page in flight, not a list of the whole heap)."""
        base, _ = self.span()
        for page_no, data in pages:
            _copy_in(base + page_no * PAGE, data)

    def page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        """``(page_no, data)`` of the heap's current contents. The copies made for a commit become
        the committed images the cache keeps (:meth:`commit`), so the pages are copied once."""
        base, _ = self.span()
        room = self.images.pages_capacity
        for p in pages:
            data = ctypes.string_at(base + p * PAGE, PAGE)
            if len(self._staged) < room:
                self._staged[p] = data
            yield p, data

    # ----------------------------------------------------------------- change tracking

    def take_baseline(self) -> None:
        """The current contents are the committed state (a heap just loaded from SQL)."""
        base, length = self.span()
        self.tracker.baseline(base, length)
        self._committed_pages = length // PAGE
        self._pending.clear()
        self._staged.clear()
        self.images.clear()

    def changed_pages(self) -> list[int]:
        """Pages written since the last commit (a superset: a page written with the bytes it had
        may be included), and every page beyond the committed size."""
        self._staged.clear()
        base, length = self.span()
        n, c = length // PAGE, self._committed_pages
        if c:
            self._pending |= self.tracker.written(base, length, min(c, n))
        return sorted(p for p in self._pending if p < c) + list(range(c, n))

    def commit(self, pages: Iterable[int]) -> None:
        """These pages are durable now: they, and the heap's current size, are the committed state."""
        pages = list(pages)
        base, length = self.span()
        self.tracker.committed(base, length, pages)
        staged, self._staged = self._staged, {}
        room = self.images.pages_capacity
        # The newest images are the likeliest to be written again; beyond the cache's room, skip
        # the copies that would be evicted at once (and drop what the cache held for those pages:
        # it is no longer their committed contents).
        keep = pages[-room:] if room else []
        for p in pages[:len(pages) - len(keep)]:
            self.images.forget(p)
        for p in keep:
            data = staged.get(p)
            if data is None:
                data = ctypes.string_at(base + p * PAGE, PAGE)
            self.images.put(p, data)
        self._pending.difference_update(pages)
        self._committed_pages = max(self._committed_pages, length // PAGE)

    def grew(self) -> bool:
        """Whether the heap is larger than its committed state (memories do not shrink)."""
        return self.pages != self._committed_pages

    def restore(self) -> bool:
        """Put every page written since the last commit back to its committed contents. Returns
        False if that cannot be done in place: the heap grew, or a committed page is neither cached
        nor readable from the source (the heap must then be reloaded)."""
        if self.grew():
            return False
        self._staged.clear()
        base, length = self.span()
        c = self._committed_pages
        if c:
            self._pending |= self.tracker.written(base, length, c)
        pages = sorted(p for p in self._pending if p < c)
        if not pages:
            return True
        missing: list[int] = []
        for p in pages:
            img = self.images.get(p)
            if img is None:
                missing.append(p)
            elif img is ZERO or not img:
                ctypes.memset(base + p * PAGE, 0, PAGE)
            else:
                ctypes.memmove(base + p * PAGE, img, PAGE)
        if missing:
            if self.source is None:
                return False
            found: set[int] = set()
            try:
                for p, data in self.source(missing):
                    _copy_in(base + p * PAGE, data)
                    self.images.put(p, data if isinstance(data, bytes) and len(data) == PAGE
                                    else ctypes.string_at(base + p * PAGE, PAGE))
                    found.add(p)
            except StaleSourceError:
                return False
            for p in missing:
                if p not in found:  # no row: a zero page
                    ctypes.memset(base + p * PAGE, 0, PAGE)
                    self.images.put(p, ZERO)
        self.tracker.restored(base, length, pages)
        self._pending.clear()
        return True


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
        import numpy as np
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
        import numpy as np
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
        import numpy as np
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
