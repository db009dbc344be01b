"""The management canister's Candid interface (``ic.did``, as the interface spec publishes it),
and decoding its arguments and encoding its replies with it."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from persist.candid import ServiceInterface, decode_args, encode_values, parse_service
from persist.errors import CandidError

__all__ = ["decode_arg", "encode_reply", "management_interface"]


@functools.cache
def management_interface() -> ServiceInterface:
    """The parsed ``ic.did`` (once per process)."""
    text = resources.files("persist.execution.management").joinpath("ic.did").read_text(encoding="utf-8")
    return parse_service(text)


def decode_arg(method: str, data: bytes) -> Any:
    """The method's argument, decoded with Candid subtyping (a caller may send fewer ``opt``
    fields than the interface has, as Motoko's own subset of it does). Raises CandidError."""
    sig = management_interface().methods[method]
    values = decode_args(data, sig.args)
    if len(values) != len(sig.args):
        raise CandidError(f"expected {len(sig.args)} argument(s), got {len(values)}")
    return values[0] if len(values) == 1 else None


def encode_reply(method: str, value: Any) -> bytes:
    """The method's reply, encoded with its result types (``None`` for ``()``)."""
    sig = management_interface().methods[method]
    if not sig.rets:
        return encode_values([], [])
    return encode_values([value], sig.rets)
