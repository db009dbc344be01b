"""Traps: how a host function traps the running message, the IC's texts for engine traps, and the
kind of each trap (which of the replica's ``HypervisorError`` variants it is).

A trap's text is the ``Display`` of the replica's ``HypervisorError`` (dfinity/ic
``rs/interfaces/src/execution_environment/errors.rs``): ``Canister called `ic0.trap` with message:
'x'``, ``Canister trapped: heap out of bounds``, ``Canister exceeded the limit of N instructions for
single message execution.``. Its :class:`TrapKind` decides the error code and the help line a caller
sees (``persist.execution.rejects`` renders them).
"""

from __future__ import annotations

import enum

import wasmtime

__all__ = ["TRAPPED_PREFIX", "HostTrap", "Trap", "TrapKind", "instruction_limit_text", "trap_text"]

TRAPPED_PREFIX = "Canister trapped: "


class TrapKind(enum.Enum):
    """The replica's ``HypervisorError`` variants a graphcopy trap can be."""

    CALLED_TRAP = "called_trap"  # ic0.trap
    TRAPPED = "trapped"  # a Wasm trap (TrapCode): unreachable, heap out of bounds, ...
    INSTRUCTION_LIMIT = "instruction_limit"
    CONTRACT_VIOLATION = "contract_violation"  # a System API rule broken (the toolchain's fault)
    USER_CONTRACT_VIOLATION = "user_contract_violation"  # a limit the canister's own code ran into
    OUT_OF_CYCLES = "out_of_cycles"  # InsufficientCyclesBalance: attaching more than the balance
    ENV_VAR = "env_var"  # EnvironmentVariableIndexOutOfBounds / EnvironmentVariableNotFound


class HostTrap(Exception):
    """Raised inside a host function to trap the running message with the IC's message text.

    Without ``kind``, a text starting with ``Canister trapped: `` is a Wasm-style trap and any
    other text a System API contract violation. ``help`` is the replica's suggestion and its
    documentation anchor for a :attr:`TrapKind.USER_CONTRACT_VIOLATION` (``("", "")``: none)."""

    def __init__(self, message: str, kind: TrapKind | None = None, *, help: tuple[str, str] = ("", "")) -> None:
        super().__init__(message)
        if kind is None:
            kind = TrapKind.TRAPPED if message.startswith(TRAPPED_PREFIX) else TrapKind.CONTRACT_VIOLATION
        self.kind = kind
        self.help = help


class Trap(str):
    """A trap's text (a ``str``, as every caller stores and prints it) with its :class:`TrapKind`
    (and, for a user contract violation, the replica's suggestion and documentation anchor)."""

    kind: TrapKind
    help: tuple[str, str]

    def __new__(cls, text: str, kind: TrapKind, help: tuple[str, str] = ("", "")) -> Trap:
        obj = super().__new__(cls, text)
        obj.kind = kind
        obj.help = help
        return obj


# The IC's wording for traps the Wasm engine raises (TrapCode's Display).
_TRAP_TEXTS = {
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "heap out of bounds",
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
    wasmtime.TrapCode.STACK_OVERFLOW: "stack overflow",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "integer division by 0",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "integer overflow",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "table out of bounds",
}


def instruction_limit_text(limit: int) -> str:
    """The replica's text for an exhausted instruction budget."""
    return f"Canister exceeded the limit of {limit} instructions for single message execution."


def trap_text(exc: wasmtime.Trap, instruction_limit: int = 0) -> Trap:
    """The IC's text (and kind) for a trap the Wasm engine raised."""
    code = exc.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return Trap(instruction_limit_text(instruction_limit), TrapKind.INSTRUCTION_LIMIT)
    known = _TRAP_TEXTS.get(code) if code is not None else None
    if known is None:
        known = (exc.message or "trap").strip().splitlines()[0]
    return Trap(TRAPPED_PREFIX + known, TrapKind.TRAPPED)
