"""Reading and instrumenting canister Wasm modules.

graphcopy must own a canister's heap: a keep-upgrade hands the old heap to the new module before
the new module's start function runs, and every message's changes are found and committed by the
host. wasmtime-py runs a module's start function during instantiation and gives no way to supply a
defined memory, so the host rewrites the module before compiling it:

* the one defined memory becomes an import ``graphcopy.heap`` (memory index 0 stays 0, and the
  ``mem`` export still names it);
* the start section is dropped and its function exported as ``graphcopy:start``, so the host runs
  it once the heap is in place;
* every mutable global is exported as ``graphcopy:global:N``, so the host can save and restore
  globals, which are canister state on the IC.

Only the binary's section framing, imports, memories, globals, exports and the start section are
decoded; function bodies pass through untouched. The Wasm binary format is small and stable, and
no maintained Python library edits modules at this level (the PyPI parsers are analysis tools), so
this reader is written here.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field

import leb128

from persist.errors import InvalidModuleError

WASM_MAGIC = b"\0asm\x01\0\0\0"
GZIP_MAGIC = b"\x1f\x8b"

SEC_CUSTOM, SEC_TYPE, SEC_IMPORT, SEC_FUNCTION = 0, 1, 2, 3
SEC_MEMORY, SEC_GLOBAL, SEC_EXPORT, SEC_START = 5, 6, 7, 8
SEC_DATA = 11

START_EXPORT = "graphcopy:start"
GLOBAL_EXPORT_PREFIX = "graphcopy:global:"
HEAP_IMPORT = ("graphcopy", "heap")

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


class _Reader:
    """A cursor over a byte string with the LEB128 primitives of the Wasm binary format."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise InvalidModuleError("not a valid Wasm module: unexpected end of section")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return result
            if shift > 70:
                raise InvalidModuleError("not a valid Wasm module: LEB128 integer too long")

    def s(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                if b & 0x40:
                    result -= 1 << shift
                return result
            if shift > 70:
                raise InvalidModuleError("not a valid Wasm module: LEB128 integer too long")

    def bytes_(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise InvalidModuleError("not a valid Wasm module: unexpected end of section")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return bytes(out)

    def name(self) -> str:
        raw = self.bytes_(self.u())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidModuleError("not a valid Wasm module: a name is not UTF-8") from exc


def leb_u(value: int) -> bytes:
    """Unsigned LEB128 encoding (the `leb128` package)."""
    return bytes(leb128.u.encode(value))


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return leb_u(len(raw)) + raw


def _section(section_id: int, body: bytes) -> bytes:
    return bytes([section_id]) + leb_u(len(body)) + body


def normalize_wasm(data: bytes) -> bytes:
    """Accept gzip-compressed modules as the IC does; check the Wasm header."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InvalidModuleError(f"not a valid Wasm module: corrupt gzip data ({exc})") from exc
    if data[:4] != WASM_MAGIC[:4]:
        raise InvalidModuleError("not a Wasm module: the file does not start with the Wasm magic bytes")
    if data[:8] != WASM_MAGIC:
        raise InvalidModuleError("unsupported Wasm binary version (only version 1 is supported)")
    return data


def split_sections(data: bytes) -> list[tuple[int, int, int]]:
    """(section id, payload start, payload end) for every section, in order."""
    out = []
    pos = 8
    while pos < len(data):
        r = _Reader(data, pos)
        sid = r.byte()
        size = r.u()
        start = r.pos
        end = start + size
        if end > len(data):
            raise InvalidModuleError("not a valid Wasm module: a section runs past the end of the file")
        out.append((sid, start, end))
        pos = end
    return out


def _read_limits(r: _Reader) -> tuple[int, int, int | None]:
    flags = r.byte()
    minimum = r.u()
    maximum = r.u() if flags & 1 else None
    return flags, minimum, maximum


def _skip_const_expr(r: _Reader) -> None:
    """Skip a constant expression (global initialisers), up to and including ``end``."""
    while True:
        op = r.byte()
        if op == 0x0B:
            return
        if op in (0x41, 0x42):
            r.s()
        elif op == 0x43:
            r.bytes_(4)
        elif op == 0x44:
            r.bytes_(8)
        elif op in (0x23, 0xD2):
            r.u()
        elif op == 0xD0:
            r.byte()
        elif op == 0xFD:  # v128.const
            r.u()
            r.bytes_(16)
        elif op in (0x6A, 0x6B, 0x6C, 0x7C, 0x7D, 0x7E):  # extended-const arithmetic
            continue
        else:
            raise InvalidModuleError(f"not a valid Wasm module: unsupported constant expression opcode 0x{op:02x}")


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
    n_imported_globals = 0
    start: int | None = None
    custom: dict[str, bytes] = {}
    data_pages: set[int] | None = set()
    for sid, a, b in split_sections(data):
        r = _Reader(data, a, b)
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
                    _read_limits(r)
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
                flags, lo, hi = _read_limits(r)
                n_memories += 1
                memory = MemoryInfo(is_64=bool(flags & 4), min_pages=lo, max_pages=hi)
        elif sid == SEC_GLOBAL:
            for i in range(r.u()):
                vt = r.byte()
                mut = r.byte()
                _skip_const_expr(r)
                if mut == 1:
                    globals_.append(GlobalInfo(n_imported_globals + i, VALTYPE_NAMES.get(vt, hex(vt))))
        elif sid == SEC_EXPORT:
            for _ in range(r.u()):
                exports.append(r.name())
                r.byte()
                r.u()
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
        active_data_pages=data_pages,
    )


def _active_data_pages(r: _Reader) -> set[int] | None:
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
                    _skip_const_expr(r)
            else:
                r.pos -= 1
                _skip_const_expr(r)
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


def instrument(data: bytes, info: ModuleInfo) -> bytes:
    """Rewrite a canister module so that the host owns its heap, start function and globals.

    See the module docstring for the three rewrites. The result is what the host compiles; the
    original bytes are what the store keeps and hashes.
    """
    data = normalize_wasm(data)
    out = bytearray(WASM_MAGIC)
    memtype: bytes | None = None
    sections = split_sections(data)
    for sid, a, b in sections:
        if sid == SEC_MEMORY:
            r = _Reader(data, a, b)
            if r.u() == 1:
                mstart = r.pos
                _read_limits(r)
                memtype = bytes(data[mstart:r.pos])
    have_import_section = any(sid == SEC_IMPORT for sid, _, _ in sections)
    extra_exports = []
    if info.start_function is not None:
        extra_exports.append(_name(START_EXPORT) + b"\x00" + leb_u(info.start_function))
    for g in info.mutable_globals:
        extra_exports.append(_name(f"{GLOBAL_EXPORT_PREFIX}{g.index}") + b"\x03" + leb_u(g.index))
    heap_import = (_name(HEAP_IMPORT[0]) + _name(HEAP_IMPORT[1]) + b"\x02" + memtype) if memtype else b""
    have_export_section = any(sid == SEC_EXPORT for sid, _, _ in sections)

    def emit_import_section(existing: bytes | None) -> None:
        if existing is None:
            out.extend(_section(SEC_IMPORT, leb_u(1) + heap_import))
            return
        r = _Reader(existing)
        n = r.u()
        out.extend(_section(SEC_IMPORT, leb_u(n + 1) + existing[r.pos:] + heap_import))

    def emit_export_section(existing: bytes | None) -> None:
        if existing is None:
            if extra_exports:
                out.extend(_section(SEC_EXPORT, leb_u(len(extra_exports)) + b"".join(extra_exports)))
            return
        r = _Reader(existing)
        n = r.u()
        body = leb_u(n + len(extra_exports)) + existing[r.pos:] + b"".join(extra_exports)
        out.extend(_section(SEC_EXPORT, body))

    for sid, a, b in sections:
        payload = bytes(data[a:b])
        if sid == SEC_IMPORT:
            if heap_import:
                emit_import_section(payload)
            else:
                out.extend(_section(sid, payload))
        elif sid == SEC_MEMORY:
            continue  # now imported
        elif sid == SEC_START:
            continue  # exported instead; the host runs it
        elif sid == SEC_EXPORT:
            emit_export_section(payload)
        else:
            rank = SECTION_ORDER.get(sid, 0)
            if heap_import and not have_import_section and rank > SECTION_ORDER[SEC_IMPORT]:
                emit_import_section(None)
                have_import_section = True
            if not have_export_section and rank > SECTION_ORDER[SEC_EXPORT]:
                emit_export_section(None)
                have_export_section = True
            out.extend(_section(sid, payload))
    if heap_import and not have_import_section:
        emit_import_section(None)
    if not have_export_section:
        emit_export_section(None)
    return bytes(out)
