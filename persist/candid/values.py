"""Python values for Candid values that have no plain Python counterpart (:class:`Some`, :class:`FuncRef`).

See the docstring of :mod:`persist.candid` for how every Candid value maps to Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from persist.principal import Principal


@dataclass(frozen=True)
class Some:
    """A present ``opt`` value whose content type is ``null``, ``reserved`` or another ``opt``."""

    value: Any


@dataclass(frozen=True)
class FuncRef:
    """A Candid ``func`` value: a method of a service."""

    principal: Principal
    method: str


def py_describe(v: Any) -> str:
    """A Python value for error messages: its type name and its (shortened) repr."""
    text = repr(v)
    return f"{type(v).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
