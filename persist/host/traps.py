"""Traps: how a host function traps the running message, and the IC's texts for engine traps."""

from __future__ import annotations

import wasmtime

__all__ = ["HostTrap", "trap_text"]


class HostTrap(Exception):
    """Raised inside a host function to trap the running message with the IC's message text."""


# The IC's wording for traps the Wasm engine raises.
_TRAP_TEXTS = {
    wasmtime.TrapCode.OUT_OF_FUEL: "Canister exceeded the instruction limit for single message execution.",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "Canister trapped: heap out of bounds",
    wasmtime.TrapCode.UNREACHABLE: "Canister trapped: unreachable",
    wasmtime.TrapCode.STACK_OVERFLOW: "Canister trapped: stack overflow",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "Canister trapped: integer division by 0",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "Canister trapped: integer overflow",
}


def trap_text(exc: wasmtime.Trap) -> str:
    """The IC's text for a trap the Wasm engine raised."""
    known = _TRAP_TEXTS.get(exc.trap_code) if exc.trap_code is not None else None
    if known is not None:
        return known
    msg = (exc.message or "trap").strip().splitlines()[0]
    return f"Canister trapped: {msg}"
