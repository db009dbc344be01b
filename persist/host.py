"""The wasmtime host: compiled modules and live canister instances.

A ``LiveCanister`` is one canister loaded into memory: its own wasmtime ``Store`` with fuel, the
host-owned heap (the canister's memory 0), the host-owned 64-bit stable memory with its bytemaps,
the stable-memory helper instance and the canister instance. It runs one message at a time and
reports what changed; it knows nothing about SQL. ``persist.execution`` decides what to commit.

Heap changes are found by comparing the heap with a copy of its last committed state, 64 KiB page
by 64 KiB page, with numpy (no soft-dirty bits on these machines; a write barrier would mean
rewriting every store instruction). The copy doubles as the undo log: a trap or a query puts the
changed pages back. ``bench/messages.py`` measures what this costs per heap size.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import wasmtime

from persist.errors import InvalidModuleError
from persist.stable_helper import FAIL_MESSAGES, STABLE_IMPORTS, helper_wat
from persist.system_api import AVAILABLE, HostTrap, MessageContext, build_system_api
from persist.wasm_module import GLOBAL_EXPORT_PREFIX, START_EXPORT, ModuleInfo, instrument, parse_module

PAGE = 65536
# Pages are loaded from SQL on first access in aligned groups, so word-by-word access to a cold
# stable memory costs one query per group, not one per page.
LOAD_GROUP_PAGES = 16
WASM64_HEAP_MAX_PAGES = 6 * 1024 * 1024 * 1024 // PAGE  # the IC's 6 GiB wasm64 heap limit
WASM32_HEAP_MAX_PAGES = 65536
INSTANTIATION_FUEL = 10**12


@dataclass
class Limits:
    """Per-store execution limits; the defaults are the IC's (resource-limits.md)."""

    update_instructions: int = 40_000_000_000
    query_instructions: int = 5_000_000_000
    install_instructions: int = 300_000_000_000
    stable_memory_max_bytes: int = 500 * 1024**3
    max_request_bytes: int = 2 * 1024 * 1024
    max_response_bytes: int = 2 * 1024 * 1024
    # Multiplies what ic0.performance_counter reports; >1 makes budget-driven runtimes (Motoko's
    # incremental graph copy) end their increments sooner. 1.0 is the IC.
    performance_counter_scale: float = 1.0


class Runtime:
    """Process-wide wasmtime engine and caches of compiled canister and helper modules."""

    def __init__(self) -> None:
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        cfg.wasm_memory64 = True
        cfg.wasm_multi_memory = True
        cfg.wasm_bulk_memory = True
        self.engine = wasmtime.Engine(cfg)
        self._modules: dict[str, tuple[ModuleInfo, wasmtime.Module]] = {}
        self._helpers: dict[bool, wasmtime.Module] = {}

    def load_module(self, wasm: bytes) -> tuple[ModuleInfo, wasmtime.Module]:
        """Parse, check, instrument and compile a canister module (cached by hash)."""
        info = parse_module(wasm)
        cached = self._modules.get(info.hash)
        if cached is not None:
            return cached
        try:
            module = wasmtime.Module(self.engine, instrument(wasm, info))
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid module"
            raise InvalidModuleError(f"not a valid Wasm module: {first}") from exc
        provided = set(AVAILABLE) | set(STABLE_IMPORTS)
        unknown = sorted({name for mod, name in info.imports if mod == "ic0" and name not in provided})
        if unknown:
            raise InvalidModuleError(
                f"not a supported canister module: it imports ic0.{unknown[0]}, which graphcopy does not provide")
        self._modules[info.hash] = (info, module)
        return info, module

    def helper_module(self, heap_is_64: bool) -> wasmtime.Module:
        mod = self._helpers.get(heap_is_64)
        if mod is None:
            mod = self._helpers[heap_is_64] = wasmtime.Module(self.engine, helper_wat(heap_is_64))
        return mod


@dataclass
class MessageResult:
    """What one message did. On a trap nothing of it applies; the canister is rolled back."""

    trap: str | None
    ctx: MessageContext
    instructions: int


PageSource = Callable[[list[int]], Iterable[tuple[int, bytes]]]


def _unsigned(valtype: wasmtime.ValType) -> Callable[[int], int]:
    if str(valtype) == "i32":
        return lambda v: v & 0xFFFF_FFFF
    return lambda v: v & 0xFFFF_FFFF_FFFF_FFFF


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
        heap_data: Iterable[tuple[int, bytes]],
        stable_pages: int,
        stable_source: PageSource,
        stable_stored: Iterable[int] | None,
        globals_: dict[int, Any] | None,
        timer_ns: int,
        run_start: bool,
        predecessor: LiveCanister | None = None,
        keep_heap: bool = False,
    ) -> None:
        """Load a canister (``heap_data``/``stable_*`` from SQL), or install one (empty, ``run_start``).

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
        self._stable_source = stable_source
        pred = predecessor
        self.store: wasmtime.Store = pred.store if pred is not None else wasmtime.Store(runtime.engine)
        if pred is None:
            self.store.set_fuel(0)

        mem = info.memory
        self.heap_is_64 = mem.is_64 if mem is not None else True
        cap = WASM64_HEAP_MAX_PAGES if self.heap_is_64 else WASM32_HEAP_MAX_PAGES
        heap_max = min(mem.max_pages, cap) if mem is not None and mem.max_pages is not None else cap
        start_pages = max(heap_pages, mem.min_pages if mem is not None else 0)
        heap_data = list(heap_data)
        self.heap: wasmtime.Memory
        self.stable: wasmtime.Memory
        self.dirty: wasmtime.Memory
        self.loaded: wasmtime.Memory
        self.helper: wasmtime.Instance
        self._shadow: np.ndarray
        if pred is not None and keep_heap:
            if pred.heap_is_64 != self.heap_is_64:
                raise InvalidModuleError("the new module's memory is not of the same index type (32/64-bit) "
                                         "as the heap it would keep")
            self.heap = pred.heap
            if self.heap.size(self.store) < start_pages:
                self.heap.grow(self.store, start_pages - self.heap.size(self.store))
        else:
            self.heap = wasmtime.Memory(
                self.store, wasmtime.MemoryType(wasmtime.Limits(start_pages, heap_max), is_64=self.heap_is_64))
            base, _ = self.heap_span()
            for page_no, data in heap_data:
                ctypes.memmove(base + page_no * PAGE, data, len(data))

        max_stable_pages = limits.stable_memory_max_bytes // PAGE
        if pred is not None:
            self.stable, self.dirty, self.loaded = pred.stable, pred.dirty, pred.loaded
        else:
            self.stable = wasmtime.Memory(
                self.store, wasmtime.MemoryType(wasmtime.Limits(stable_pages, max_stable_pages), is_64=True))
            map_pages = (stable_pages + PAGE - 1) // PAGE
            self.dirty = wasmtime.Memory(self.store, wasmtime.MemoryType(wasmtime.Limits(map_pages, None)))
            self.loaded = wasmtime.Memory(self.store, wasmtime.MemoryType(wasmtime.Limits(map_pages, None)))

        # Host functions reach this object through a weak proxy: wasmtime-py keeps every Python
        # host function alive in a process-wide table until the wasmtime store is dropped, and the
        # store is ours, so a strong reference would keep every instance (and its memories) alive.
        me = weakref.proxy(self)
        # A kept heap shares the predecessor's helper, whose host functions point at the predecessor.
        self._keepalive: LiveCanister | None = pred if pred is not None and keep_heap else None
        if pred is not None and keep_heap:
            self.helper = pred.helper
        else:
            linker = wasmtime.Linker(runtime.engine)
            linker.define(self.store, "graphcopy", "heap", self.heap)
            linker.define(self.store, "graphcopy", "stable", self.stable)
            linker.define(self.store, "graphcopy", "dirty", self.dirty)
            linker.define(self.store, "graphcopy", "loaded", self.loaded)
            linker.define_func("graphcopy", "load_pages",
                               wasmtime.FuncType([wasmtime.ValType.i64(), wasmtime.ValType.i64()], []),
                               lambda first, count: me._load_pages(first, count))
            linker.define_func("graphcopy", "fail", wasmtime.FuncType([wasmtime.ValType.i32()], []),
                               lambda code: me._fail(code))
            self.helper = linker.instantiate(self.store, runtime.helper_module(self.heap_is_64))
        hx = self.helper.exports(self.store)
        self._g_size = _global(hx, "size")
        self._g_max = _global(hx, "max")
        self._g_all_loaded = _global(hx, "all_loaded")
        self._g_read = _global(hx, "read_bytes")
        self._g_written = _global(hx, "written_bytes")
        if pred is None:
            self._g_size.set_value(self.store, wasmtime.Val.i64(stable_pages))
            self._g_max.set_value(self.store, wasmtime.Val.i64(max_stable_pages))
            self._mark_loaded_initially(stable_pages, stable_stored)
        elif not keep_heap:
            # a fresh helper for the fresh heap: carry the stable memory's bookkeeping over
            for mine, theirs in ((self._g_size, pred._g_size), (self._g_max, pred._g_max),
                                 (self._g_all_loaded, pred._g_all_loaded), (self._g_read, pred._g_read),
                                 (self._g_written, pred._g_written)):
                mine.set_value(self.store, theirs.value(self.store))

        api = build_system_api(me)
        canister_linker = wasmtime.Linker(runtime.engine)
        canister_linker.define(self.store, "graphcopy", "heap", self.heap)
        for imp in module.imports:
            if imp.module != "ic0":
                continue
            name = imp.name or ""
            if name in STABLE_IMPORTS:
                canister_linker.define(self.store, "ic0", name, hx[name])
                continue
            ftype = imp.type
            assert isinstance(ftype, wasmtime.FuncType)
            canister_linker.define_func("ic0", name, ftype, self._wrap(api[name], ftype))
        # Segment initialisation costs fuel too; it is not the canister's, so the budget an
        # upgrade is running on is put back afterwards.
        budget_left = self.store.get_fuel()
        self.store.set_fuel(INSTANTIATION_FUEL)
        try:
            self.instance = canister_linker.instantiate(self.store, module)
        except wasmtime.Trap as exc:
            raise InvalidModuleError(f"canister module failed to instantiate: {exc.message}") from exc
        finally:
            self.store.set_fuel(budget_left)
        if not run_start:
            self._undo_data_segments(heap_data, start_pages)
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
            # Until the upgrade commits, the committed state is the predecessor's: a kept heap is
            # compared with the old heap's committed copy, a fresh heap with nothing (all zero).
            self._committed_stable_pages = pred._committed_stable_pages
            self.version, self.certified_data = pred.version, pred.certified_data
            self._committed_certified = pred._committed_certified
        self._shadow = pred._shadow if pred is not None and keep_heap else (
            np.zeros(0, dtype=np.uint8) if pred is not None else self._heap_array().copy())
        self.pending_start = run_start and START_EXPORT in self.exports

    def _undo_data_segments(self, heap_data: list[tuple[int, bytes]], n_pages: int) -> None:
        """Instantiation applied the module's active data segments over a restored heap; the IC
        applies them once, at install. Put the committed bytes back on the pages they touched."""
        touched = self.info.active_data_pages
        if touched is not None and not touched:
            return
        pages = set(range(n_pages)) if touched is None else {p for p in touched if p < n_pages}
        stored = {p: d for p, d in heap_data if p in pages}
        base, _ = self.heap_span()
        for p in pages:
            data = stored.get(p)
            if data is None:
                ctypes.memset(base + p * PAGE, 0, PAGE)
            else:
                ctypes.memmove(base + p * PAGE, data, len(data))

    # ----------------------------------------------------------------- memory views

    def heap_span(self) -> tuple[int, int]:
        """(base address, length in bytes) of the heap, fetched anew: memories may move on grow."""
        length = self.heap.data_len(self.store)
        if length == 0:
            return 0, 0
        return ctypes.addressof(self.heap.data_ptr(self.store).contents), length

    def _heap_array(self) -> np.ndarray:
        base, length = self.heap_span()
        if length == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.ctypeslib.as_array((ctypes.c_ubyte * length).from_address(base))

    def _map_array(self, memory: wasmtime.Memory, n: int) -> np.ndarray:
        if n == 0:
            return np.zeros(0, dtype=np.uint8)
        base = ctypes.addressof(memory.data_ptr(self.store).contents)
        return np.ctypeslib.as_array((ctypes.c_ubyte * n).from_address(base))

    def _stable_base(self) -> int:
        if self.stable.data_len(self.store) == 0:
            return 0
        return ctypes.addressof(self.stable.data_ptr(self.store).contents)

    @property
    def heap_pages(self) -> int:
        return self.heap.size(self.store)

    @property
    def stable_pages(self) -> int:
        return int(self._g_size.value(self.store))

    @property
    def committed_stable_pages(self) -> int:
        return self._committed_stable_pages

    def stable_access(self) -> tuple[int, int]:
        """(bytes read, bytes written) through ic0.stable* since this canister was loaded."""
        return int(self._g_read.value(self.store)), int(self._g_written.value(self.store))

    # ----------------------------------------------------------------- stable memory loading

    def _mark_loaded_initially(self, stable_pages: int, stored: Iterable[int] | None) -> None:
        if stable_pages == 0:
            return
        loaded = self._map_array(self.loaded, stable_pages)
        if stored is None:
            loaded[:] = 0  # unknown: load everything on first access
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(0))
            return
        stored_list = list(stored)
        loaded[:] = 1
        if stored_list:
            loaded[np.asarray(stored_list, dtype=np.int64)] = 0
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(0))

    def _load_pages(self, first: int, count: int) -> None:
        size = self.stable_pages
        lo = (first // LOAD_GROUP_PAGES) * LOAD_GROUP_PAGES
        hi = min(size, -(-(first + count) // LOAD_GROUP_PAGES) * LOAD_GROUP_PAGES)
        loaded = self._map_array(self.loaded, size)
        wanted = [p for p in range(lo, hi) if not loaded[p]]
        if not wanted:
            return
        base = self._stable_base()
        found = set()
        for page_no, data in self._stable_source(wanted):
            ctypes.memmove(base + page_no * PAGE, data, len(data))
            found.add(page_no)
        for p in wanted:
            if p not in found:  # no row means a zero page; clear whatever a rolled-back message left
                ctypes.memset(base + p * PAGE, 0, PAGE)
        loaded[wanted] = 1
        if loaded[:size].all():
            self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(1))

    def attach_stable_source(self, source: PageSource) -> None:
        """Where committed stable pages are read from (set once the canister has a database id)."""
        self._stable_source = source

    def load_all_stable(self) -> None:
        """Bring every stable page into memory (before snapshots, exports, graph copy reads)."""
        size = self.stable_pages
        for first in range(0, size, 1024):
            self._load_pages(first, min(1024, size - first))

    def _fail(self, code: int) -> None:
        raise HostTrap(FAIL_MESSAGES.get(code, f"stable memory helper failure {code}"))

    @staticmethod
    def _wrap(fn: Callable[..., Any], ftype: wasmtime.FuncType) -> Callable[..., Any]:
        """Give a host function its arguments as unsigned integers, as the System API means them."""
        convs = [_unsigned(p) for p in ftype.params]
        if not convs:
            return fn
        return lambda *args: fn(*(c(a) for c, a in zip(convs, args, strict=True)))

    # ----------------------------------------------------------------- globals

    def get_globals(self) -> dict[int, Any]:
        return {i: g.value(self.store) for i, g in self._globals.items()}

    def set_globals(self, values: dict[int, Any]) -> None:
        """Set mutable globals; only those whose value differs are written (each write is a C call)."""
        for i, v in values.items():
            g = self._globals.get(int(i))
            if g is None or g.value(self.store) == v:
                continue
            g.set_value(self.store, _VAL[self._global_types[int(i)]](v))

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
            trap = str(exc)
        except wasmtime.Trap as exc:
            trap = _trap_text(exc)
        except wasmtime.WasmtimeError as exc:
            trap = f"Canister trapped: {str(exc).strip().splitlines()[0]}"
        finally:
            self.ctx = None
        used = fuel - self.store.get_fuel()
        ctx.instructions_used = used
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
        cur = self._heap_array()
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

    def heap_page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        base, _ = self.heap_span()
        for p in pages:
            yield p, ctypes.string_at(base + p * PAGE, PAGE)

    def dirty_stable_pages(self) -> list[int]:
        size = self.stable_pages
        if size == 0:
            return []
        return [int(p) for p in np.nonzero(self._map_array(self.dirty, size))[0]]

    def stable_page_bytes(self, pages: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        base = self._stable_base()
        for p in pages:
            yield p, ctypes.string_at(base + p * PAGE, PAGE)

    def commit(self, heap_pages: Iterable[int], stable_pages: Iterable[int]) -> None:
        """The state is durable now: make it the new baseline for comparisons and rollbacks."""
        cur = self._heap_array()
        if len(cur) != len(self._shadow):
            grown = np.zeros(len(cur), dtype=np.uint8)
            grown[:len(self._shadow)] = self._shadow
            self._shadow = grown
        for p in heap_pages:
            self._shadow[p * PAGE:(p + 1) * PAGE] = cur[p * PAGE:(p + 1) * PAGE]
        size = self.stable_pages
        if size:
            dirty = self._map_array(self.dirty, size)
            for p in stable_pages:
                dirty[p] = 0
        self._committed_globals = self.get_globals()
        self._committed_stable_pages = size
        self._committed_timer = self.timer_ns
        self._committed_certified = self.certified_data

    def rollback(self) -> bool:
        """Undo everything since the last commit. Returns False if the heap grew, in which case the
        instance cannot be restored in place (memories do not shrink) and must be reloaded."""
        cur = self._heap_array()
        if len(cur) != len(self._shadow):
            return False
        self.timer_ns = self._committed_timer
        self.certified_data = self._committed_certified
        for p in self.changed_heap_pages():
            cur[p * PAGE:(p + 1) * PAGE] = self._shadow[p * PAGE:(p + 1) * PAGE]
        self.set_globals(self._committed_globals)
        size = self.stable_pages
        if size:
            dirty = self._map_array(self.dirty, size)
            loaded = self._map_array(self.loaded, size)
            base = self._stable_base()
            touched = np.nonzero(dirty)[0]
            committed = self._committed_stable_pages
            for page in touched.tolist():
                ctypes.memset(base + page * PAGE, 0, PAGE)
                if page < committed:
                    loaded[page] = 0  # reload the committed bytes from SQL on next access
            dirty[:] = 0
            if len(touched) and (touched < committed).any():
                self._g_all_loaded.set_value(self.store, wasmtime.Val.i32(0))
            if size > committed:
                self._g_size.set_value(self.store, wasmtime.Val.i64(committed))
        return True


def _global(exports: Any, name: str) -> wasmtime.Global:
    g = exports[name]
    assert isinstance(g, wasmtime.Global)
    return g


_VAL: dict[str, Callable[[Any], wasmtime.Val]] = {
    "i32": wasmtime.Val.i32, "i64": wasmtime.Val.i64, "f32": wasmtime.Val.f32, "f64": wasmtime.Val.f64}


# The IC's wording for traps the Wasm engine raises.
_TRAP_TEXTS = {
    wasmtime.TrapCode.OUT_OF_FUEL: "Canister exceeded the instruction limit for single message execution.",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "Canister trapped: heap out of bounds",
    wasmtime.TrapCode.UNREACHABLE: "Canister trapped: unreachable",
    wasmtime.TrapCode.STACK_OVERFLOW: "Canister trapped: stack overflow",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "Canister trapped: integer division by 0",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "Canister trapped: integer overflow",
}


def _trap_text(exc: wasmtime.Trap) -> str:
    known = _TRAP_TEXTS.get(exc.trap_code) if exc.trap_code is not None else None
    if known is not None:
        return known
    msg = (exc.message or "trap").strip().splitlines()[0]
    return f"Canister trapped: {msg}"


def encode_globals(values: dict[int, Any]) -> dict[str, Any]:
    """JSON-safe globals: floats as exact hex strings."""
    out: dict[str, Any] = {}
    for i, v in values.items():
        out[str(i)] = {"f": float(v).hex()} if isinstance(v, float) else v
    return out


def decode_globals(data: dict[str, Any]) -> dict[int, Any]:
    return {int(i): (float.fromhex(v["f"]) if isinstance(v, dict) else v) for i, v in data.items()}
