"""The replica's install-time validation of a canister module, done before anything is compiled,
instantiated or allocated.

The IC refuses a module at ``install_code`` if it breaks one of the rules of
``validate_wasm_binary`` (dfinity/ic ``rs/embedders/src/wasm_utils/validation.rs``) with the limits
of ``rs/config/src/embedders.rs``; :func:`check_module` applies the same rules, in the same order
(sizes, imports, exports, data, globals, functions, custom sections), and refuses with the
replica's own text (``WasmValidationError``'s ``Display`` in ``rs/types/wasm_types/src/errors.rs``)
prefixed by the name of the rule: ``invalid canister module (the IC's MAX_GLOBALS): Wasm module
defined 1001 globals which exceeds the maximum number allowed 1000.``

On top of the replica's validation, the declared memory and table are checked against what the
replica can ever give a canister (``MAX_WASM_MEMORY_IN_BYTES``, the Wasm64 heap limit,
``MAX_STORE_TABLE_ELEMENTS``), so that a module declaring a 12.5 GiB heap is refused in one line
instead of failing to allocate. Two of the replica's rules are not applied, because they need a
full decoder of function bodies: the per-function instruction count and complexity limits
(``WASM_FUNCTION_SIZE_LIMIT``, ``WASM_FUNCTION_COMPLEXITY_LIMIT``); wasmtime still validates every
body when the module is compiled.
"""

from __future__ import annotations

from dataclasses import dataclass

from persist.errors import InvalidModuleError
from persist.host.memory import PAGE, WASM32_HEAP_MAX_PAGES, WASM64_HEAP_MAX_PAGES
from persist.host.module import (
    SEC_CUSTOM,
    SEC_DATA,
    SEC_EXPORT,
    SEC_FUNCTION,
    SEC_GLOBAL,
    SEC_IMPORT,
    SEC_TYPE,
    ModuleInfo,
)
from persist.host.system_api import import_problem
from persist.host.wasm_binary import WasmReader, normalize_wasm, read_limits, skip_const_expr, split_sections

__all__ = ["IC_LIMITS", "IcModuleLimits", "check_module"]

SEC_TABLE, SEC_CODE = 4, 10


@dataclass(frozen=True)
class IcModuleLimits:
    """The replica's limits on a canister module (dfinity/ic ``rs/config/src/embedders.rs`` unless said)."""

    max_globals: int = 1_000  # MAX_GLOBALS
    max_functions: int = 50_000  # MAX_FUNCTIONS
    max_custom_sections: int = 16  # MAX_CUSTOM_SECTIONS (named icp:public / icp:private)
    max_custom_sections_size: int = 1024 * 1024  # MAX_CUSTOM_SECTIONS_SIZE
    max_exported_functions: int = 1_000  # MAX_NUMBER_EXPORTED_FUNCTIONS
    max_exported_name_lengths: int = 20_000  # MAX_SUM_EXPORTED_FUNCTION_NAME_LENGTHS
    max_code_section_size: int = 10 * 1024 * 1024  # MAX_CODE_SECTION_SIZE_IN_BYTES (validation.rs)
    max_table_elements: int = 1_000_000  # MAX_STORE_TABLE_ELEMENTS (rs/embedders/src/wasmtime_embedder.rs)
    max_tables: int = 1  # MAX_STORE_TABLES (same file)


#: The IC's limits, as the replica applies them.
IC_LIMITS = IcModuleLimits()

# Exports the replica reserves for its own instrumentation (validation.rs RESERVED_SYMBOLS; the
# names of the counters and memories come from instrumentation.rs and wasmtime_embedder.rs).
RESERVED_SYMBOLS = frozenset({
    "canister counter_instructions", "canister_start", "canister counter_dirty_pages",
    "canister counter_accessed_pages", "stable_memory", "stable_bytemap_memory",
})
# The system methods a canister may export (every other "canister_..." export is refused).
SYSTEM_METHODS = frozenset({
    "canister_init", "canister_pre_upgrade", "canister_post_upgrade", "canister_inspect_message",
    "canister_heartbeat", "canister_global_timer", "canister_on_low_wasm_memory",
})
_METHOD_PREFIXES = ("canister_update ", "canister_query ", "canister_composite_query ")
# Rust's Debug spelling of wasmparser's ValType, which the replica's texts print.
_VALTYPE_DEBUG = {0x7F: "I32", 0x7E: "I64", 0x7D: "F32", 0x7C: "F64", 0x7B: "V128", 0x70: "Ref(funcref)",
                  0x6F: "Ref(externref)"}
_VALTYPE_WASM = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref",
                 0x6F: "externref"}
_GLOBAL_TYPES = frozenset({0x7F, 0x7E, 0x7D, 0x7C})
_GIB = 1024**3


def _refuse(rule: str, text: str) -> InvalidModuleError:
    return InvalidModuleError(f"invalid canister module (the IC's {rule}): {text}")


@dataclass(frozen=True)
class _FuncType:
    params: tuple[int, ...]
    results: tuple[int, ...]


def check_module(data: bytes, info: ModuleInfo, limits: IcModuleLimits = IC_LIMITS) -> None:
    """Refuse (InvalidModuleError, naming the rule) a module the IC would not install.

    ``data`` is the module as given (gzip-compressed or not), ``info`` what
    :func:`persist.host.module.parse_module` read from it. Reads the sections once; allocates
    nothing in proportion to what the module declares.
    """
    data = normalize_wasm(data)
    sections = split_sections(data)
    _check_memory(info)
    types: list[_FuncType | None] = []
    func_types: list[int] = []  # type index of every function, imported ones first
    n_tables = 0
    for sid, a, b in sections:
        r = WasmReader(data, a, b)
        if sid == SEC_TYPE:
            types = _read_types(r)
        elif sid == SEC_IMPORT:
            n_tables += _check_imports(r, types, func_types, info)
        elif sid == SEC_FUNCTION:
            n = r.u()
            if n > limits.max_functions:
                raise _refuse("MAX_FUNCTIONS", f"Wasm module defined {n} functions which exceeds the maximum number "
                                               f"allowed {limits.max_functions}.")
            func_types.extend(r.u() for _ in range(n))
        elif sid == SEC_TABLE:
            for _ in range(r.u()):
                r.byte()
                _flags, lo, _hi = read_limits(r)
                n_tables += 1
                _check_table(lo, limits)
        elif sid == SEC_GLOBAL:
            _check_globals(r, limits)
        elif sid == SEC_EXPORT:
            _check_exports(r, types, func_types, limits)
        elif sid == SEC_CODE and b - a > limits.max_code_section_size:
            raise _refuse("MAX_CODE_SECTION_SIZE_IN_BYTES", f"Wasm module code section size of {b - a} exceeds the "
                                                             f"maximum allowed size of {limits.max_code_section_size}.")
        elif sid == SEC_DATA:
            _check_data(r, info)
    if n_tables > limits.max_tables:
        raise _refuse("MAX_STORE_TABLES", f"Wasm module declares {n_tables} tables; a canister may have at most "
                                          f"{limits.max_tables}.")
    _check_custom_sections(data, sections, limits)


# ----------------------------------------------------------------------------------------- memory


def _size(pages: int) -> str:
    size = float(pages * PAGE)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        size /= 1024
        if size < 1024 or unit == "PiB":
            return f"{size:.3g} {unit}"
    return f"{pages} pages"


def _check_memory(info: ModuleInfo) -> None:
    """The declared heap against the largest the IC gives a canister, before any of it is allocated."""
    mem = info.memory
    if mem is None:
        return
    if mem.max_pages is not None and mem.max_pages < mem.min_pages:
        raise InvalidModuleError(f"not a valid Wasm module: its memory's maximum ({mem.max_pages} pages) is below "
                                 f"its minimum ({mem.min_pages} pages)")
    if mem.is_64:
        cap, rule, what = WASM64_HEAP_MAX_PAGES, "MAX_WASM64_MEMORY_IN_BYTES", "a 64-bit"
    else:
        cap, rule, what = WASM32_HEAP_MAX_PAGES, "MAX_WASM_MEMORY_IN_BYTES", "a 32-bit"
    if mem.min_pages > cap:
        raise _refuse(rule, f"Wasm module declares {what} memory of at least {mem.min_pages} pages "
                            f"({_size(mem.min_pages)}), but a canister's heap holds at most {cap} pages "
                            f"({cap * PAGE // _GIB} GiB).")
    if not mem.is_64 and mem.max_pages is not None and mem.max_pages > cap:
        raise InvalidModuleError(f"not a valid Wasm module: a 32-bit memory may declare at most {cap} pages, "
                                 f"this one declares a maximum of {mem.max_pages}")


def _check_table(min_elements: int, limits: IcModuleLimits) -> None:
    if min_elements > limits.max_table_elements:
        raise _refuse("MAX_STORE_TABLE_ELEMENTS", f"Wasm module declares a table of at least {min_elements} "
                                                  f"elements; a canister's table holds at most "
                                                  f"{limits.max_table_elements}.")


# ------------------------------------------------------------------------------- types and imports


def _read_types(r: WasmReader) -> list[_FuncType | None]:
    """The type section's function types (None for the GC proposal's other forms, which the IC
    does not enable and wasmtime refuses)."""
    out: list[_FuncType | None] = []
    for _ in range(r.u()):
        form = r.byte()
        if form != 0x60:
            raise InvalidModuleError(f"not a valid Wasm module: unsupported type form 0x{form:02x} (the IC does not "
                                     "enable the GC proposal)")
        params = tuple(_valtype(r) for _ in range(r.u()))
        results = tuple(_valtype(r) for _ in range(r.u()))
        out.append(_FuncType(params, results))
    return out


def _valtype(r: WasmReader) -> int:
    vt = r.byte()
    if vt not in _VALTYPE_WASM:
        raise InvalidModuleError(f"not a valid Wasm module: unknown value type 0x{vt:02x}")
    return vt


def _functype(types: list[_FuncType | None], index: int) -> _FuncType:
    if index >= len(types) or types[index] is None:
        raise InvalidModuleError(f"not a valid Wasm module: type index {index} is out of range")
    ft = types[index]
    assert ft is not None
    return ft


def _check_imports(r: WasmReader, types: list[_FuncType | None], func_types: list[int], info: ModuleInfo) -> int:
    """Import signatures against the System API table; returns the number of imported tables."""
    tables = 0
    ic0: list[tuple[str, list[str], list[str]]] = []
    for _ in range(r.u()):
        module, name = r.name(), r.name()
        kind = r.byte()
        if kind == 0x00:
            index = r.u()
            ft = _functype(types, index)
            func_types.append(index)
            if module == "ic0":
                ic0.append((name, [_VALTYPE_WASM[t] for t in ft.params], [_VALTYPE_WASM[t] for t in ft.results]))
        elif kind == 0x01:
            r.byte()
            _flags, lo, _hi = read_limits(r)
            _check_table(lo, IC_LIMITS)
            tables += 1
        elif kind == 0x04:
            raise _refuse("import rules", "Wasm module has an invalid import section. Importing tags is not allowed.")
        else:  # memories and globals: parse_module refused them already
            raise InvalidModuleError("not a canister module: it imports a memory or a global")
    problem = import_problem(ic0, info.memory is not None and info.memory.is_64)
    if problem is not None:
        raise _refuse("System API imports", problem)
    return tables


# ------------------------------------------------------------------------------ globals and data


def _check_globals(r: WasmReader, limits: IcModuleLimits) -> None:
    n = r.u()
    if n > limits.max_globals:
        raise _refuse("MAX_GLOBALS", f"Wasm module defined {n} globals which exceeds the maximum number allowed "
                                     f"{limits.max_globals}.")
    for _ in range(n):
        vt = r.byte()
        if vt not in _GLOBAL_TYPES:
            raise _refuse("global types", "Wasm module has an invalid global section. Unsupported global type: "
                                          f"{_VALTYPE_DEBUG.get(vt, hex(vt))}")
        r.byte()
        skip_const_expr(r)


def _check_data(r: WasmReader, info: ModuleInfo) -> None:
    """Active data segments must have one constant offset (the replica's orthogonal persistence
    needs to know what they write)."""
    is_64 = info.memory is not None and info.memory.is_64
    want = 0x42 if is_64 else 0x41
    for _ in range(r.u()):
        flags = r.u()
        if flags in (0, 2):
            if flags == 2:
                r.u()
            start = r.pos
            op = r.byte()
            if op == want:
                r.s()
                if r.byte() == 0x0B:
                    r.bytes_(r.u())
                    continue
            r.pos = start
            raise _refuse("data segment rules", "Wasm module has an invalid data section. Invalid offset expression "
                                                f"in data segment: opcode 0x{op:02x} (only "
                                                f"{'i64' if is_64 else 'i32'}.const is allowed)")
        if flags != 1:
            raise InvalidModuleError(f"not a valid Wasm module: unknown data segment kind {flags}")
        r.bytes_(r.u())


# -------------------------------------------------------------------------------------- exports


def _check_exports(r: WasmReader, types: list[_FuncType | None], func_types: list[int],
                   limits: IcModuleLimits) -> None:
    seen: set[str] = set()
    count = lengths = 0
    for _ in range(r.u()):
        name = r.name()
        kind = r.byte()
        index = r.u()
        if name in RESERVED_SYMBOLS:
            raise _refuse("RESERVED_SYMBOLS", f"Wasm module has an invalid export section. Exporting reserved symbol "
                                              f"{name} not allowed.")
        if kind != 0x00:
            continue
        if name.startswith(_METHOD_PREFIXES):
            method = name.split(" ", 1)[1]
            if method in seen:
                raise _refuse("duplicate exports", f"Duplicate function '{method}' exported multiple times with "
                                                   "different call types: update, query, or composite_query.")
            seen.add(method)
            count += 1
            lengths += len(method.encode())
        elif name.startswith("canister_"):
            if name not in SYSTEM_METHODS:
                raise _refuse("reserved canister_ prefix", "Wasm module has an invalid export section. Exporting "
                                                           f"reserved function '{name}' with \"canister_\" prefix")
        else:
            continue
        if index >= len(func_types):
            raise InvalidModuleError(f"not a valid Wasm module: export {name!r} names function {index}, which does "
                                     "not exist")
        ft = _functype(types, func_types[index])
        if ft.params:
            raise _refuse("exported method types", "Wasm module has an invalid function signature. Expected input "
                                                   f"params [] for '{name}', got {_debug(ft.params)}.")
        if ft.results:
            raise _refuse("exported method types", "Wasm module has an invalid function signature. Expected return "
                                                   f"type [] for '{name}', got {_debug(ft.results)}.")
    if count > limits.max_exported_functions:
        raise _refuse("MAX_NUMBER_EXPORTED_FUNCTIONS", "The number of exported functions called `canister_update "
                                                       "<name>`, `canister_query <name>`, or `canister_composite_query "
                                                       f"<name>` is {count} which exceeds "
                                                       f"{limits.max_exported_functions}.")
    if lengths > limits.max_exported_name_lengths:
        raise _refuse("MAX_SUM_EXPORTED_FUNCTION_NAME_LENGTHS", "The sum of `<name>` lengths in exported functions "
                                                                "called `canister_update <name>`, `canister_query "
                                                                "<name>`, or `canister_composite_query <name>` is "
                                                                f"{lengths} which exceeds the allowed limit of "
                                                                f"{limits.max_exported_name_lengths}.")


def _debug(valtypes: tuple[int, ...]) -> str:
    return "[" + ", ".join(_VALTYPE_DEBUG[t] for t in valtypes) + "]"


# ------------------------------------------------------------------------------ custom sections


def _check_custom_sections(data: bytes, sections: list[tuple[int, int, int]], limits: IcModuleLimits) -> None:
    """The ``icp:public <name>`` / ``icp:private <name>`` sections: well-formed names, unique, at
    most 16, at most 1 MiB together (names included); other custom sections are ignored."""
    names: set[str] = set()
    total = 0
    for sid, a, b in sections:
        if sid != SEC_CUSTOM:
            continue
        r = WasmReader(data, a, b)
        full = r.name()
        if not full.startswith("icp:"):
            continue
        if full.startswith("icp:public "):
            name = full[len("icp:public "):]
        elif full.startswith("icp:private "):
            name = full[len("icp:private "):]
        elif full in ("icp:public", "icp:private"):
            raise _refuse("custom section names", "Wasm module has an invalid custom section. 'icp:' section names "
                                                  "must have a space after the public/private scope")
        else:
            raise _refuse("custom section names", "Wasm module has an invalid custom section. Invalid custom section: "
                                                  f"Custom section '{full}' has no public/private scope defined.")
        if name in names:
            raise _refuse("custom section names", "Wasm module has an invalid custom section. Invalid custom section: "
                                                  f"name {name} already exists")
        total += (b - r.pos) + len(name.encode())
        if total > limits.max_custom_sections_size:
            raise _refuse("MAX_CUSTOM_SECTIONS_SIZE", "Wasm module has an invalid custom section. Invalid custom "
                                                      "sections: total size of the custom sections exceeds the "
                                                      f"maximum allowed: size {total} bytes, allowed "
                                                      f"{limits.max_custom_sections_size} bytes")
        names.add(name)
        if len(names) > limits.max_custom_sections:
            raise _refuse("MAX_CUSTOM_SECTIONS", f"Wasm module defined {len(names)} custom sections which exceeds the "
                                                 f"maximum number allowed {limits.max_custom_sections}.")
