"""Rewriting a canister module so that the host owns its heap, its start function and its globals.

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

Function bodies pass through untouched.
"""

from __future__ import annotations

from persist.host.module import SEC_EXPORT, SEC_IMPORT, SEC_MEMORY, SEC_START, SECTION_ORDER, ModuleInfo
from persist.host.wasm_binary import (
    WASM_MAGIC,
    WasmReader,
    encode_name,
    encode_section,
    leb_u,
    normalize_wasm,
    read_limits,
    split_sections,
)

__all__ = ["GLOBAL_EXPORT_PREFIX", "HEAP_IMPORT", "START_EXPORT", "instrument"]

START_EXPORT = "graphcopy:start"
GLOBAL_EXPORT_PREFIX = "graphcopy:global:"
HEAP_IMPORT = ("graphcopy", "heap")


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
            r = WasmReader(data, a, b)
            if r.u() == 1:
                mstart = r.pos
                read_limits(r)
                memtype = bytes(data[mstart:r.pos])
    have_import_section = any(sid == SEC_IMPORT for sid, _, _ in sections)
    extra_exports = []
    if info.start_function is not None:
        extra_exports.append(encode_name(START_EXPORT) + b"\x00" + leb_u(info.start_function))
    for g in info.mutable_globals:
        extra_exports.append(encode_name(f"{GLOBAL_EXPORT_PREFIX}{g.index}") + b"\x03" + leb_u(g.index))
    heap_import = (encode_name(HEAP_IMPORT[0]) + encode_name(HEAP_IMPORT[1]) + b"\x02" + memtype) if memtype else b""
    have_export_section = any(sid == SEC_EXPORT for sid, _, _ in sections)

    def emit_import_section(existing: bytes | None) -> None:
        if existing is None:
            out.extend(encode_section(SEC_IMPORT, leb_u(1) + heap_import))
            return
        r = WasmReader(existing)
        n = r.u()
        out.extend(encode_section(SEC_IMPORT, leb_u(n + 1) + existing[r.pos:] + heap_import))

    def emit_export_section(existing: bytes | None) -> None:
        if existing is None:
            if extra_exports:
                out.extend(encode_section(SEC_EXPORT, leb_u(len(extra_exports)) + b"".join(extra_exports)))
            return
        r = WasmReader(existing)
        n = r.u()
        body = leb_u(n + len(extra_exports)) + existing[r.pos:] + b"".join(extra_exports)
        out.extend(encode_section(SEC_EXPORT, body))

    for sid, a, b in sections:
        payload = bytes(data[a:b])
        if sid == SEC_IMPORT:
            if heap_import:
                emit_import_section(payload)
            else:
                out.extend(encode_section(sid, payload))
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
            out.extend(encode_section(sid, payload))
    if heap_import and not have_import_section:
        emit_import_section(None)
    if not have_export_section:
        emit_export_section(None)
    return bytes(out)
