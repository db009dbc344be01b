"""Guards against hostile or runaway input: nesting and work limits, and :func:`no_recursion_error`.

A canister's reply is not trusted, so the decoder, the encoder and the text parser all stop at these bounds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from persist.errors import CandidError

# Guards against hostile or runaway input (a canister's reply is not trusted).
MAX_DEPTH = 200  # nesting of decoded or encoded values
MAX_TEXT_DEPTH = 100  # nesting of values and types in Candid text
# Decoding work allowed (values visited plus vec elements announced): a reply of a few bytes can
# announce a billion `null`s, so the budget grows with the size of the data, not with what it claims.
DECODE_BUDGET_BASE = 1_000_000
DECODE_BUDGET_PER_BYTE = 40


_F = TypeVar("_F", bound=Callable[..., Any])


def no_recursion_error(fn: _F) -> _F:
    """Report Python's recursion limit (a pathologically nested type) as a one-line CandidError."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise CandidError(f"Candid value or type nested too deeply ({fn.__name__})") from None

    return cast(_F, wrapper)
