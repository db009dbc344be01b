"""A canister loaded into memory: its wasmtime store, memories, instance, and one message at a time.

A ``LiveCanister`` is its own wasmtime ``Store`` with fuel, the host-owned heap (the canister's
memory 0) and stable memory (:mod:`persist.host.memory`), the stable-memory helper instance and the
canister instance wired to the System API (:mod:`persist.host.system_api`). It runs one message at
a time and reports what changed; it knows nothing about SQL: ``persist.execution`` decides what to
commit, and calls :meth:`LiveCanister.commit` or :meth:`LiveCanister.rollback` afterwards.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import wasmtime

from persist.errors import InvalidModuleError
from persist.host.globals import wasm_value
from persist.host.instrument import GLOBAL_EXPORT_PREFIX, START_EXPORT
from persist.host.limits import Limits
from persist.host.memory import PAGE, Heap, PageSource, StableMemory
from persist.host.module import ModuleInfo
from persist.host.runtime import Runtime
from persist.host.stable_helper import STABLE_IMPORTS
from persist.host.system_api import build_system_api
from persist.host.system_api.context import CanisterView, MessageContext
from persist.host.traps import HostTrap, Trap, TrapKind, trap_text

__all__ = ["INSTANTIATION_FUEL", "LiveCanister", "MessageResult"]

INSTANTIATION_FUEL = 10**12


@dataclass
class MessageResult:
    """What one message did. On a trap nothing of it applies; the canister is rolled back."""

    trap: str | None
    ctx: MessageContext
    instructions: int


def _unsigned(valtype: wasmtime.ValType) -> Callable[[int], int]:
    if str(valtype) == "i32":
        return lambda v: v & 0xFFFF_FFFF
    return lambda v: v & 0xFFFF_FFFF_FFFF_FFFF


def _wrap(fn: Callable[..., Any], ftype: wasmtime.FuncType) -> Callable[..., Any]:
    """Give a host function its arguments as unsigned integers, as the System API means them."""
    convs = [_unsigned(p) for p in ftype.params]
    if not convs:
        return fn
    return lambda *args: fn(*(c(a) for c, a in zip(convs, args, strict=True)))


class LiveCanister:
    """A canister instance in memory, with the bookkeeping to commit or undo each message."""

    def __init__(
        self,
        runtime: Runtime,
        info: ModuleInfo,
        module: wasmtime.Module,
        *,
        principal: bytes,
        controllers: Iterable[bytes],
        status: str,
        limits: Limits,
        heap_pages: int,
        heap_data: Iterable[tuple[int, Any]],
        stable_pages: int,
        stable_source: PageSource,
        stable_stored: Iterable[int] | None,
        globals_: dict[int, Any] | None,
        timer_ns: int,
        run_start: bool,
        predecessor: LiveCanister | None = None,
        keep_heap: bool = False,
        heap_source: PageSource | None = None,
    ) -> None:
        """Load a canister (``heap_data``/``stable_*`` from SQL), or install one (empty, ``run_start``).

        ``heap_data`` is consumed one page at a time, straight into the heap (pass the SQL
        cursor's iterator, not a list). ``heap_source`` reads committed heap pages again, to undo
        a message that wrote pages the cache of committed images does not hold.

        With ``predecessor`` (an upgrade), the new instance lives in the predecessor's wasmtime
        store and shares its stable memory and bytemaps; ``keep_heap`` hands it the predecessor's
        heap too (``wasm_memory_persistence = keep``), else it gets a fresh heap. Nothing is copied.
        """
        self.runtime = runtime
        self.info = info
        self.principal = principal
        self.controllers = set(controllers)
        self.status = status
        self.limits = limits
        self.timer_ns = timer_ns
        self.version = 0
        self.certified_data = b""
        self.ctx: MessageContext | None = None
        pred = predecessor
        self.store: wasmtime.Store = pred.store if pred is not None else wasmtime.Store(runtime.engine)
        if pred is None:
            self.store.set_fuel(0)

        declared = info.memory
        is_64 = declared.is_64 if declared is not None else True
        start_pages = max(heap_pages, declared.min_pages if declared is not None else 0)
        # A kept heap shares the predecessor's helper, whose host functions point at the predecessor.
        self._keepalive: LiveCanister | None = None
        self.heap: Heap
        self.stable: StableMemory
        if pred is not None and keep_heap:
            if pred.heap.is_64 != is_64:
                raise InvalidModuleError("the new module's memory is not of the same index type (32/64-bit) "
                                         "as the heap it would keep")
            self.heap = pred.heap
            self.heap.grow_to(start_pages)
            if heap_source is not None:
                self.heap.source = heap_source
            self.stable = pred.stable
            self._keepalive = pred
        else:
            self.heap = Heap.create(self.store, declared, heap_pages, source=heap_source)
            self.heap.write_pages(heap_data)
            helper = runtime.helper_module(is_64)
            if pred is not None:
                self.stable = pred.stable.for_heap(runtime.engine, helper, self.heap)
            else:
                self.stable = StableMemory.create(
                    self.store, runtime.engine, helper, self.heap, stable_pages=stable_pages,
                    max_pages=limits.stable_memory_max_bytes // 65536, source=stable_source, stored=stable_stored)

        saved = None if run_start else self._data_segment_pages(start_pages)
        self.instance = self._instantiate(runtime, module)
        if saved is not None:
            self._undo_data_segments(saved)
        self.exports = self.instance.exports(self.store)
        self._globals: dict[int, wasmtime.Global] = {}
        for g in info.mutable_globals:
            exported = self.exports[f"{GLOBAL_EXPORT_PREFIX}{g.index}"]
            assert isinstance(exported, wasmtime.Global)
            self._globals[g.index] = exported
        self._global_types = {g.index: g.valtype for g in info.mutable_globals}
        table = self.exports.get("table")
        self.table: wasmtime.Table | None = table if isinstance(table, wasmtime.Table) else None
        if globals_:
            self.set_globals(globals_)
        self._committed_globals = self.get_globals()
        self._committed_stable_pages = stable_pages
        self._committed_timer = timer_ns
        self._committed_certified = self.certified_data
        if pred is not None:
            # Until the upgrade commits, the committed state is the predecessor's: a kept heap has
            # the old heap's committed state, a fresh heap none (every page of it is new).
            self._committed_stable_pages = pred._committed_stable_pages
            self.version, self.certified_data = pred.version, pred.certified_data
            self._committed_certified = pred._committed_certified
        elif not run_start:
            # Loaded from SQL: what is in the heap now is committed. A fresh install has nothing
            # committed: every page of it is new, including what its data segments wrote.
            self.heap.take_baseline()
        self.pending_start = run_start and START_EXPORT in self.exports

    def _instantiate(self, runtime: Runtime, module: wasmtime.Module) -> wasmtime.Instance:
        """Link the canister's ``ic0`` imports (System API and stable helper) and instantiate it."""
        # The System API reaches this object through a weak proxy (see StableMemory for why).
        api = build_system_api(cast(CanisterView, weakref.proxy(self)))
        linker = wasmtime.Linker(runtime.engine)
        linker.define(self.store, "graphcopy", "heap", self.heap.memory)
        for imp in module.imports:
            if imp.module != "ic0":
                continue
            name = imp.name or ""
            if name in STABLE_IMPORTS:
                linker.define(self.store, "ic0", name, self.stable.helper_export(name))
                continue
            ftype = imp.type
            assert isinstance(ftype, wasmtime.FuncType)
            linker.define_func("ic0", name, ftype, _wrap(api[name], ftype))
        # Segment initialisation costs fuel too; it is not the canister's, so the budget an
        # upgrade is running on is put back afterwards.
        budget_left = self.store.get_fuel()
        self.store.set_fuel(INSTANTIATION_FUEL)
        try:
            return linker.instantiate(self.store, module)
        except wasmtime.Trap as exc:
            raise InvalidModuleError(f"canister module failed to instantiate: {exc.message}") from exc
        finally:
            self.store.set_fuel(budget_left)

    def _data_segment_pages(self, n_pages: int) -> dict[int, bytes] | None:
        """The committed bytes of the pages the module's active data segments will overwrite at
        instantiation (None: there are none), copied before it runs. The IC applies data segments
        once, at install; a restored heap keeps what was committed."""
        touched = self.info.active_data_pages
        if touched is not None and not touched:
            return None
        # Offsets that are not constants may touch any page: keep them all (such modules are rare).
        pages = range(n_pages) if touched is None else sorted(p for p in touched if p < n_pages)
        base, _ = self.heap.span()
        return {p: ctypes.string_at(base + p * PAGE, PAGE) for p in pages}

    def _undo_data_segments(self, saved: dict[int, bytes]) -> None:
        """Put the committed bytes back on the pages instantiation's data segments touched."""
        base, _ = self.heap.span()
        for p, data in saved.items():
            ctypes.memmove(base + p * PAGE, data, PAGE)

    # ----------------------------------------------------------------- memory views

    def heap_span(self) -> tuple[int, int]:
        """(base address, length in bytes) of the heap, fetched anew: memories may move on grow."""
        return self.heap.span()

    def fuel_left(self) -> int:
        """Instructions left in the running message's budget."""
        return self.store.get_fuel()

    @property
    def heap_pages(self) -> int:
        return self.heap.pages

    @property
    def stable_pages(self) -> int:
        return self.stable.pages

    @property
    def committed_stable_pages(self) -> int:
        return self._committed_stable_pages

    def stable_access(self) -> tuple[int, int]:
        """(bytes read, bytes written) through ic0.stable* since this canister was loaded."""
        return self.stable.access()

    @property
    def dirty_tracking(self) -> str:
        """The heap's dirty-tracking mechanism: ``uffd`` or ``compare``."""
        return self.heap.mechanism

    def attach_heap_source(self, source: PageSource) -> None:
        """Where committed heap pages are read from to undo a message (set once the canister has a
        database id; raises :class:`persist.host.memory.StaleSourceError` when the store moved on)."""
        self.heap.source = source

    def attach_stable_source(self, source: PageSource) -> None:
        """Where committed stable pages are read from (set once the canister has a database id)."""
        self.stable.source = source

    def load_all_stable(self) -> None:
        """Bring every stable page into memory (before snapshots, exports, graph copy reads)."""
        self.stable.load_all()

    # ----------------------------------------------------------------- globals

    def get_globals(self) -> dict[int, Any]:
        return {i: g.value(self.store) for i, g in self._globals.items()}

    def set_globals(self, values: dict[int, Any]) -> None:
        """Set mutable globals; only those whose value differs are written (each write is a C call)."""
        for i, v in values.items():
            g = self._globals.get(int(i))
            if g is None or g.value(self.store) == v:
                continue
            g.set_value(self.store, wasm_value(self._global_types[int(i)], v))

    # ----------------------------------------------------------------- running messages

    def run(self, ctx: MessageContext, fuel: int | None, entry: str | tuple[int, int]) -> MessageResult:
        """Run one entry point: an export name, or ``(table index, env)`` for a callback.

        ``fuel`` is the instruction limit; None continues with what is left in the store (the
        stages of an upgrade share one budget). On a trap the caller must ``rollback()``; on
        success the caller commits the changes and calls ``commit()``.
        """
        self.ctx = ctx
        if fuel is None:
            fuel = self.store.get_fuel()
        else:
            self.store.set_fuel(fuel)
        ctx.instruction_limit = fuel
        read0, written0 = self.stable.access()
        trap: str | None = None
        try:
            if isinstance(entry, tuple):
                if self.table is None:
                    raise HostTrap("the canister exports no table for callbacks")
                func = self.table.get(self.store, entry[0])
                if not isinstance(func, wasmtime.Func):
                    raise HostTrap(f"callback {entry[0]} is not a function in the canister's table")
                func(self.store, entry[1])
            else:
                export = self.exports.get(entry)
                if not isinstance(export, wasmtime.Func):
                    raise HostTrap(f"the canister does not export {entry!r}")
                export(self.store)
        except HostTrap as exc:
            trap = Trap(str(exc), exc.kind, exc.help)
        except wasmtime.Trap as exc:
            trap = trap_text(exc, fuel)
        except wasmtime.WasmtimeError as exc:
            trap = Trap(f"Canister trapped: {str(exc).strip().splitlines()[0]}", TrapKind.TRAPPED)
        finally:
            self.ctx = None
        used = fuel - self.store.get_fuel()
        ctx.instructions_used = used
        read1, written1 = self.stable.access()
        ctx.stable_bytes_read, ctx.stable_bytes_written = read1 - read0, written1 - written0
        return MessageResult(trap=trap, ctx=ctx, instructions=used)

    def run_start(self, fuel: int | None) -> MessageResult:
        """Run the module's start function, which the instrumentation turned into an export."""
        ctx = MessageContext(kind="start")
        if START_EXPORT not in self.exports:
            return MessageResult(trap=None, ctx=ctx, instructions=0)
        self.pending_start = False
        return self.run(ctx, fuel, START_EXPORT)

    # ----------------------------------------------------------------- commit / rollback

    def changed_heap_pages(self) -> list[int]:
        """Pages of the heap that differ from the last committed state (including new pages)."""
        return self.heap.changed_pages()

    def heap_page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        return self.heap.page_bytes(pages)

    def dirty_stable_pages(self) -> list[int]:
        return self.stable.dirty_pages()

    def stable_page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        return self.stable.page_bytes(pages)

    def commit(self, heap_pages: Iterable[int], stable_pages: Iterable[int],
               globals_: dict[int, Any] | None = None) -> None:
        """The state is durable now: make it the new baseline for comparisons and rollbacks
        (``globals_``: the globals as the commit wrote them, if it read them already)."""
        self.heap.commit(heap_pages)
        self.stable.commit(stable_pages)
        self._committed_globals = globals_ if globals_ is not None else self.get_globals()
        self._committed_stable_pages = self.stable.pages
        self._committed_timer = self.timer_ns
        self._committed_certified = self.certified_data

    def rollback(self) -> bool:
        """Undo everything since the last commit. Returns False if the instance cannot be restored
        in place and must be reloaded: the heap grew (memories do not shrink), or a page it wrote
        could not be read back (the store moved on)."""
        if self.heap.grew() or not self.heap.restore():
            return False
        self.timer_ns = self._committed_timer
        self.certified_data = self._committed_certified
        self.set_globals(self._committed_globals)
        self.stable.rollback(self._committed_stable_pages)
        return True
