"""What graphcopy reads from a canister module: imports, exports, memory, globals, custom sections.

:func:`parse_module` decodes a module once per hash into a :class:`ModuleInfo` and refuses what the
IC would not accept as a canister (imports outside ``ic0``, imported memories, several memories).
The binary primitives are in :mod:`persist.host.wasm_binary`; the rewrite that lets the host own
the heap is :mod:`persist.host.instrument`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field

from persist.errors import InvalidModuleError
from persist.host.wasm_binary import WasmReader, normalize_wasm, read_limits, skip_const_expr, split_sections

SEC_CUSTOM, SEC_TYPE, SEC_IMPORT, SEC_FUNCTION = 0, 1, 2, 3
SEC_MEMORY, SEC_GLOBAL, SEC_EXPORT, SEC_START = 5, 6, 7, 8
SEC_DATA = 11

EOP_SECTION = "icp:private enhanced-orthogonal-persistence"
CANDID_SERVICE_SECTIONS = ("icp:public candid:service", "icp:private candid:service")
STABLE_TYPES_SECTIONS = ("icp:private motoko:stable-types", "icp:public motoko:stable-types")

# The entry points the IC recognises; any other export is ignored by the system (as on the IC).
SYSTEM_EXPORTS = {
    "canister_init",
    "canister_pre_upgrade",
    "canister_post_upgrade",
    "canister_global_timer",
    "canister_heartbeat",
    "canister_inspect_message",
    "canister_on_low_wasm_memory",
}

# Position of each known section in a module (the tag and data-count sections are out of id order).
SECTION_ORDER = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13}

VALTYPE_NAMES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref",
                 0x6F: "externref"}


@dataclass(frozen=True)
class MemoryInfo:
    """The canister's declared memory: index type and limits in 64 KiB pages."""

    is_64: bool
    min_pages: int
    max_pages: int | None


@dataclass(frozen=True)
class GlobalInfo:
    """A mutable global defined by the module (imported globals are not allowed in canisters)."""

    index: int
    valtype: str


@dataclass(frozen=True)
class GlobalDef:
    """Any global the module defines, with its initial value when that is a plain constant
    (``i32.const`` ... ``f64.const``; None for other constant expressions). Snapshot metadata lists
    the values of exported immutable globals too (see ``persist.snapshot_dir.globals``)."""

    index: int
    valtype: str
    mutable: bool
    init: int | float | None


@dataclass
class ModuleInfo:
    """What graphcopy needs to know about a canister module, decoded once per module hash."""

    hash: str
    size: int
    imports: list[tuple[str, str]]
    exports: list[str]
    updates: list[str]
    queries: list[str]
    system: list[str]
    memory: MemoryInfo | None
    mutable_globals: list[GlobalInfo]
    start_function: int | None
    custom_sections: dict[str, bytes] = field(default_factory=dict)
    # Every defined global, in index order, and the module's own global exports (name, global
    # index) in export-section order: what an IC snapshot's globals are made of.
    global_defs: list[GlobalDef] = field(default_factory=list)
    global_exports: list[tuple[str, int]] = field(default_factory=list)
    # Heap pages that active data segments write at instantiation; None if an offset is not a
    # constant. A restored canister must get its committed bytes back on those pages.
    active_data_pages: set[int] | None = field(default_factory=set)

    @property
    def is_eop(self) -> bool:
        """Whether the module declares enhanced orthogonal persistence (keeps its heap on upgrade)."""
        return EOP_SECTION in self.custom_sections

    def section_text(self, names: tuple[str, ...]) -> str | None:
        """The first of ``names`` present as a custom section, decoded as UTF-8."""
        for name in names:
            if name in self.custom_sections:
                return self.custom_sections[name].decode("utf-8", errors="replace")
        return None

    @property
    def candid_service(self) -> str | None:
        return self.section_text(CANDID_SERVICE_SECTIONS)

    @property
    def stable_types(self) -> str | None:
        return self.section_text(STABLE_TYPES_SECTIONS)


def parse_module(data: bytes) -> ModuleInfo:
    """Decode what graphcopy needs from a module, and check that it is a canister module.

    Raises InvalidModuleError with one clear line for corrupt input and for modules the IC would not
    accept as a canister (imports outside ``ic0``, more than one memory, imported memories).
    """
    data = normalize_wasm(data)
    imports: list[tuple[str, str]] = []
    exports: list[str] = []
    memory: MemoryInfo | None = None
    n_memories = 0
    globals_: list[GlobalInfo] = []
    global_defs: list[GlobalDef] = []
    global_exports: list[tuple[str, int]] = []
    n_imported_globals = 0
    start: int | None = None
    custom: dict[str, bytes] = {}
    data_pages: set[int] | None = set()
    for sid, a, b in split_sections(data):
        r = WasmReader(data, a, b)
        if sid == SEC_CUSTOM:
            name = r.name()
            custom[name] = bytes(data[r.pos:b])
        elif sid == SEC_IMPORT:
            for _ in range(r.u()):
                mod, fld = r.name(), r.name()
                kind = r.byte()
                if kind == 0x00:
                    r.u()
                elif kind == 0x01:
                    r.byte()
                    read_limits(r)
                elif kind == 0x02:
                    raise InvalidModuleError(
                        f"not a canister module: it imports its memory ({mod}.{fld}); a canister must define it")
                elif kind == 0x03:
                    r.byte()
                    r.byte()
                    n_imported_globals += 1
                elif kind == 0x04:
                    r.byte()
                    r.u()
                else:
                    raise InvalidModuleError(f"not a valid Wasm module: unknown import kind {kind}")
                imports.append((mod, fld))
        elif sid == SEC_MEMORY:
            for _ in range(r.u()):
                flags, lo, hi = read_limits(r)
                n_memories += 1
                memory = MemoryInfo(is_64=bool(flags & 4), min_pages=lo, max_pages=hi)
        elif sid == SEC_GLOBAL:
            for i in range(r.u()):
                vt = r.byte()
                mut = r.byte()
                valtype = VALTYPE_NAMES.get(vt, hex(vt))
                init = _const_init(r)
                global_defs.append(GlobalDef(n_imported_globals + i, valtype, mut == 1, init))
                if mut == 1:
                    globals_.append(GlobalInfo(n_imported_globals + i, valtype))
        elif sid == SEC_EXPORT:
            for _ in range(r.u()):
                export_name = r.name()
                exports.append(export_name)
                kind = r.byte()
                index = r.u()
                if kind == 0x03:
                    global_exports.append((export_name, index))
        elif sid == SEC_START:
            start = r.u()
        elif sid == SEC_DATA:
            data_pages = _active_data_pages(r)
    if n_memories > 1:
        raise InvalidModuleError("not a canister module: it declares more than one memory")
    bad = sorted({m for m, _ in imports if m != "ic0"})
    if bad:
        names = ", ".join(repr(m) for m in bad)
        raise InvalidModuleError(f"not a canister module: it imports from {names}; canisters may import only 'ic0'")
    if n_imported_globals:
        raise InvalidModuleError("not a canister module: it imports globals")
    updates = [e[len("canister_update "):] for e in exports if e.startswith("canister_update ")]
    queries = [e[len("canister_query "):] for e in exports if e.startswith("canister_query ")]
    queries += [e[len("canister_composite_query "):] for e in exports
                if e.startswith("canister_composite_query ")]
    system = [e for e in exports if e in SYSTEM_EXPORTS]
    return ModuleInfo(
        hash=hashlib.sha256(data).hexdigest(),
        size=len(data),
        imports=imports,
        exports=exports,
        updates=updates,
        queries=queries,
        system=system,
        memory=memory,
        mutable_globals=globals_,
        start_function=start,
        custom_sections=custom,
        global_defs=global_defs,
        global_exports=global_exports,
        active_data_pages=data_pages,
    )


def _const_init(r: WasmReader) -> int | float | None:
    """A global's initializer: its value if it is one ``*.const`` followed by ``end``, else None
    (the expression is skipped either way)."""
    start = r.pos
    op = r.byte()
    value: int | float | None = None
    if op in (0x41, 0x42):
        value = r.s()
    elif op == 0x43:
        value = struct.unpack("<f", r.bytes_(4))[0]
    elif op == 0x44:
        value = struct.unpack("<d", r.bytes_(8))[0]
    if value is not None and r.pos < r.end and r.data[r.pos] == 0x0B:
        r.pos += 1
        return value
    r.pos = start
    skip_const_expr(r)
    return None


def _active_data_pages(r: WasmReader) -> set[int] | None:
    """The 64 KiB heap pages that active data segments initialise (None: not all offsets known)."""
    touched: set[int] | None = set()
    for _ in range(r.u()):
        flags = r.u()
        offset: int | None = None
        if flags in (0, 2):
            if flags == 2:
                r.u()
            op = r.byte()
            if op in (0x41, 0x42):
                offset = r.s()
                if r.byte() != 0x0B:
                    offset = None
                    skip_const_expr(r)
            else:
                r.pos -= 1
                skip_const_expr(r)
        elif flags != 1:
            raise InvalidModuleError(f"not a valid Wasm module: unknown data segment kind {flags}")
        size = r.u()
        r.bytes_(size)
        if flags == 1 or touched is None:
            continue
        if offset is None:
            touched = None
            continue
        if size:
            touched.update(range(offset // 65536, (offset + size - 1) // 65536 + 1))
    return touched


