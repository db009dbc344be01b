"""Execution limits of a store; the defaults are the IC's."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


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
