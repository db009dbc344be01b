"""Helpers shared by the upgrade and graph-copy tests: canister modules, Candid calls, state snapshots.

Motoko versions live in ``tests/canisters/upgrades/*.mo`` (compiled by the pinned moc, cached);
hand-written canisters come from ``plain_wat`` (a WAT template: one heap word, two stable words,
hooks that can trap or burn instructions, and an optional EOP section).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import wasmtime

from persist import api
from persist.candid import encode_args, format_args
from persist.host.module import EOP_SECTION
from persist.host.wasm_binary import WasmReader, encode_name, encode_section, leb_u, normalize_wasm, split_sections
from persist.session import Store
from persist.store import db, pages, schema
from persist.store.canisters import canister_row
from toolchain.moc import compile_motoko

UPGRADES = Path(__file__).parent / "canisters" / "upgrades"


def motoko(name: str) -> bytes:
    """A test canister of ``tests/canisters/upgrades`` compiled by the pinned moc."""
    return compile_motoko(UPGRADES / f"{name}.mo").wasm


def call(store: Store, name: str, method: str, args: str = "()") -> str:
    """Call with Candid text typed by the canister's own interface; the reply as Candid text."""
    iface = api.interface(store, name)
    sig = iface.methods.get(method) if iface is not None else None
    reply = api.call(store, name, method, encode_args(args, sig.args if sig else None)).reply
    return format_args(reply, sig.rets if sig else None)


def install(store: Store, name: str, wasm: bytes) -> None:
    api.install(store, name, wasm)


@dataclass(frozen=True)
class Snapshot:
    """Everything an upgrade may change, byte for byte, as committed in SQL."""

    module_hash: str | None
    version: int
    heap_pages: int
    stable_pages: int
    globals: str | None
    heap: dict[int, bytes]
    stable: dict[int, bytes]


def snapshot(store: Store, name: str) -> Snapshot:
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        return Snapshot(row.module_hash, int(row.version), int(row.heap_pages), int(row.stable_pages), row.globals,
                        dict(pages.read_pages(conn, pages.HEAP, row.id)),
                        dict(pages.read_pages(conn, pages.STABLE, row.id)))


def history_kinds(store: Store, name: str) -> list[str]:
    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        return list(conn.execute(sa.select(schema.history.c.kind).where(schema.history.c.canister_id == row.id)
                                 .order_by(schema.history.c.id)).scalars())


def with_eop_section(wasm: bytes, text: str) -> bytes:
    """``wasm`` with its ``icp:private enhanced-orthogonal-persistence`` section's text replaced
    (e.g. a future "64-bit, layout version 2"): the same code, a different declared layout."""
    return with_section(wasm, EOP_SECTION, text)


def with_section(wasm: bytes, name: str, text: str) -> bytes:
    """``wasm`` with the text of its custom section ``name`` replaced."""
    data = normalize_wasm(wasm)
    out = bytearray(data[:8])
    for sid, start, end in split_sections(data):
        body = data[start:end]
        if sid == 0 and WasmReader(body).name() == name:
            out += encode_section(0, encode_name(name) + text.encode())
            continue
        out += bytes([sid]) + leb_u(len(body)) + body
    return bytes(out)


def plain_wat(*, version: int, eop: bool = False, trap_start: bool = False, trap_pre: bool = False,
              trap_post: bool = False, burn_post: int = 0) -> bytes:
    """A hand-written 64-bit canister (no Candid: raw little-endian i64s).

    ``set(v)`` stores v in heap word 0x500 and stable word 0; ``get`` replies version, heap words
    0x500 and 0x508, stable words 0 and 8. pre_upgrade marks heap word 0x508 and stable word 8 (so
    a rolled-back upgrade can be seen to undo them) and traps with ``trap_pre``; post_upgrade burns
    ``burn_post`` loop iterations and traps with ``trap_post``; the start function traps with
    ``trap_start``. ``eop`` adds the (empty) EOP section."""
    text = f"""
(module
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i64 i64 i64)))
  (import "ic0" "msg_reply_data_append" (func $reply_append (param i64 i64)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i64 i64)))
  (import "ic0" "stable64_size" (func $s_size (result i64)))
  (import "ic0" "stable64_grow" (func $s_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $s_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $s_read (param i64 i64 i64)))
  (memory (export "memory") i64 2)
  (data (i64.const 0x300) "start traps")
  (data (i64.const 0x320) "pre traps")
  (data (i64.const 0x340) "post traps")
  (func $start {"(call $trap (i64.const 0x300) (i64.const 11))" if trap_start else ""})
  (start $start)
  (func $ensure_stable (if (i64.eqz (call $s_size)) (then (drop (call $s_grow (i64.const 1))))))
  (func (export "canister_update set")
    (call $arg_copy (i64.const 0x1000) (i64.const 0) (i64.const 8))
    (i64.store (i64.const 0x500) (i64.load (i64.const 0x1000)))
    (call $ensure_stable)
    (call $s_write (i64.const 0) (i64.const 0x1000) (i64.const 8))
    (call $reply_append (i64.const 0x1000) (i64.const 8))
    (call $reply))
  (func (export "canister_query get")
    (i64.store (i64.const 0x100) (i64.const {version}))
    (i64.store (i64.const 0x108) (i64.load (i64.const 0x500)))
    (i64.store (i64.const 0x110) (i64.load (i64.const 0x508)))
    (i64.store (i64.const 0x118) (i64.const 0))
    (i64.store (i64.const 0x120) (i64.const 0))
    (if (i64.ne (call $s_size) (i64.const 0))
      (then (call $s_read (i64.const 0x118) (i64.const 0) (i64.const 16))))
    (call $reply_append (i64.const 0x100) (i64.const 40))
    (call $reply))
  (func (export "canister_pre_upgrade")
    (i64.store (i64.const 0x508) (i64.const 0xAA))
    (call $ensure_stable)
    (i64.store (i64.const 0x200) (i64.const 0xBB))
    (call $s_write (i64.const 8) (i64.const 0x200) (i64.const 8))
    {"(call $trap (i64.const 0x320) (i64.const 9))" if trap_pre else ""})
  (func (export "canister_post_upgrade") (local $i i64)
    (local.set $i (i64.const {burn_post}))
    (block $done (loop $again
      (br_if $done (i64.eqz (local.get $i)))
      (local.set $i (i64.sub (local.get $i) (i64.const 1)))
      (br $again)))
    {"(call $trap (i64.const 0x340) (i64.const 10))" if trap_post else ""})
  {'(@custom "icp:private enhanced-orthogonal-persistence" "")' if eop else ""}
)
"""
    return bytes(wasmtime.wat2wasm(text))


def plain_get(store: Store, name: str) -> tuple[int, ...]:
    """``get`` of a ``plain_wat`` canister: (version, heap 0x500, heap 0x508, stable 0, stable 8)."""
    import struct

    reply = api.call(store, name, "get", b"").reply
    return struct.unpack("<5q", reply)


def plain_set(store: Store, name: str, value: int) -> None:
    import struct

    api.call(store, name, "set", struct.pack("<q", value))
