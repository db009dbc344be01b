"""The time a message sees."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

__all__ = ["message_time", "now_ns"]


def now_ns() -> int:
    """Wall-clock time in nanoseconds."""
    return time.time_ns()

def message_time(row: sa.Row[Any]) -> int:
    """The time a message sees: wall clock, but never earlier than the canister's last message."""
    return max(now_ns(), int(row.time_ns) + 1)
