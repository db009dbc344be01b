"""Mutable Wasm globals as canister state: their JSON form in the store, and typed values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import wasmtime

__all__ = ["decode_globals", "encode_globals", "wasm_value"]

_VAL: dict[str, Callable[[Any], wasmtime.Val]] = {
    "i32": wasmtime.Val.i32, "i64": wasmtime.Val.i64, "f32": wasmtime.Val.f32, "f64": wasmtime.Val.f64}


def wasm_value(valtype: str, value: Any) -> wasmtime.Val:
    """``value`` as a wasmtime value of type ``valtype`` (``i32``, ``i64``, ``f32``, ``f64``)."""
    return _VAL[valtype](value)


def encode_globals(values: dict[int, Any]) -> dict[str, Any]:
    """JSON-safe globals: floats as exact hex strings."""
    out: dict[str, Any] = {}
    for i, v in values.items():
        out[str(i)] = {"f": float(v).hex()} if isinstance(v, float) else v
    return out


def decode_globals(data: dict[str, Any]) -> dict[int, Any]:
    """The inverse of :func:`encode_globals`."""
    return {int(i): (float.fromhex(v["f"]) if isinstance(v, dict) else v) for i, v in data.items()}
