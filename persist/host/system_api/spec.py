"""The interface spec's description of an ``ic0`` function: its signature and where it may be called.

The spec ("Canister Interface (System API)", section "Overview of imports", in
``dfinity/developer-docs`` ``docs/references/ic-interface-spec/canister-interface.md``) writes every
function as ``ic0.name : (params) -> results; // letters``, where ``I`` is ``i32`` or ``i64`` after the
width of the module's memory and the letters name the message kinds that may call it. Each area
module of :mod:`persist.host.system_api` declares its functions with :func:`ic0` in that notation,
so the tables read like the spec; :func:`check_imports` refuses a module whose imports the IC would
refuse, and :func:`markdown_table` renders the README's table from the same declarations.

Run ``python -m persist.host.system_api`` to print the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from persist.host.system_api.context import (
    CLEANUP,
    COMPOSITE_CLEANUP,
    COMPOSITE_QUERY,
    COMPOSITE_REJECT,
    COMPOSITE_REPLY,
    INIT,
    INSPECT,
    POST_UPGRADE,
    PRE_UPGRADE,
    QUERY,
    REJECT,
    REPLICATED_QUERY,
    REPLY,
    START,
    TIMER,
    TRANSFORM_QUERY,
    UPDATE,
)

__all__ = ["LETTERS", "LETTER_ORDER", "Ic0", "check_imports", "ic0", "markdown_table"]

#: Each letter of the spec's availability comments and the message kinds it stands for.
LETTERS: dict[str, frozenset[str]] = {
    "s": frozenset({START}),
    "I": frozenset({INIT, POST_UPGRADE}),
    "G": frozenset({PRE_UPGRADE}),
    "U": frozenset({UPDATE}),
    "RQ": frozenset({REPLICATED_QUERY}),
    "NRQ": frozenset({QUERY}),
    "Q": frozenset({REPLICATED_QUERY, QUERY}),  # msg_deadline's "U Q CQ ...": either query mode
    "TQ": frozenset({TRANSFORM_QUERY}),
    "CQ": frozenset({COMPOSITE_QUERY}),
    "Ry": frozenset({REPLY}),
    "Rt": frozenset({REJECT}),
    "CRy": frozenset({COMPOSITE_REPLY}),
    "CRt": frozenset({COMPOSITE_REJECT}),
    "C": frozenset({CLEANUP}),
    "CC": frozenset({COMPOSITE_CLEANUP}),
    "F": frozenset({INSPECT}),
    "T": frozenset({TIMER}),
}
#: ``*`` in the spec: every kind but ``(start)``.
STAR = "I G U RQ NRQ TQ CQ Ry Rt CRy CRt C CC F T"
#: The columns of the README table, in the spec's order.
LETTER_ORDER = ("s", "I", "G", "U", "RQ", "NRQ", "TQ", "CQ", "Ry", "Rt", "CRy", "CRt", "C", "CC", "F", "T")

_SIGNATURE = re.compile(r"^\((?P<params>[^)]*)\)\s*->\s*(?P<results>\(\s*\)|\w+)$")


@dataclass(frozen=True)
class Ic0:
    """One System API function: parameter and result types (``I``, ``i32``, ``i64``) and the
    availability letters exactly as the spec writes them."""

    params: tuple[str, ...]
    results: tuple[str, ...]
    letters: str
    i32_only: bool = False

    @property
    def kinds(self) -> frozenset[str]:
        """The message kinds that may call the function."""
        out: set[str] = set()
        for letter in self.letters.replace("*", STAR).split():
            out |= LETTERS[letter]
        return frozenset(out)

    def signature(self, pointer: str) -> str:
        """The Wasm type the module must import, for pointers of width ``pointer``."""
        def conv(ts: tuple[str, ...]) -> str:
            return ", ".join(pointer if t == "I" else t for t in ts)
        return f"({conv(self.params)}) -> ({conv(self.results)})"


def ic0(signature: str, letters: str, *, i32_only: bool = False) -> Ic0:
    """Declare a function in the spec's notation, e.g. ``ic0("(dst : I, offset : I, size : I) -> ()",
    "I U RQ NRQ TQ CQ Ry CRy F")``. ``i32_only``: the spec offers it only to 32-bit modules."""
    m = _SIGNATURE.match(" ".join(signature.split()))
    if m is None:
        raise ValueError(f"not a System API signature: {signature!r}")
    params = tuple(p.split(":")[-1].strip() for p in m["params"].split(",") if p.strip())
    res = m["results"].strip("() ")
    results = (res,) if res else ()
    for t in (*params, *results):
        if t not in ("I", "i32", "i64"):
            raise ValueError(f"unknown type {t!r} in {signature!r}")
    for letter in letters.split():
        if letter != "*" and letter not in LETTERS:
            raise ValueError(f"unknown availability letter {letter!r} in {letters!r}")
    return Ic0(params, results, letters, i32_only)


def check_imports(spec: Mapping[str, Ic0], imports: Iterable[tuple[str, list[str], list[str]]],
                  memory_is_64: bool) -> str | None:
    """Why the IC would refuse these ``ic0`` imports (name, parameter types, result types), or None.

    A function the System API does not have, one it offers only to 32-bit modules, and one imported
    with another type are each named with what the spec declares."""
    pointer = "i64" if memory_is_64 else "i32"
    for name, params, results in imports:
        fn = spec.get(name)
        if fn is None:
            return f"it imports ic0.{name}, which is not a function of the IC's System API"
        if fn.i32_only and memory_is_64:
            return (f"it imports ic0.{name}, which the System API offers only to modules with a 32-bit memory "
                    "(use the 128-bit or 64-bit variant)")
        got = f"({', '.join(params)}) -> ({', '.join(results)})"
        want = fn.signature(pointer)
        if got != want:
            return f"it imports ic0.{name} with type {got}, but the System API declares {want}"
    return None


def markdown_table(spec: Mapping[str, Ic0], areas: Mapping[str, str]) -> str:
    """The README table: every function, its area module, and an ``x`` for every letter it may be
    called from (``32`` marks the functions only 32-bit modules may import)."""
    head = "| function | module | " + " | ".join(LETTER_ORDER) + " |"
    rule = "|---|---|" + "---|" * len(LETTER_ORDER)
    lines = [head, rule]
    for name in sorted(spec):
        fn = spec[name]
        kinds = fn.kinds
        marks = ["x" if LETTERS[letter] <= kinds else "" for letter in LETTER_ORDER]
        label = f"`{name}`" + (" (32)" if fn.i32_only else "")
        lines.append(f"| {label} | `{areas[name]}` | " + " | ".join(marks) + " |")
    return "\n".join(lines)

