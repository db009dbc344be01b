"""Message contexts built from a canister's committed row: what every message of it starts with."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from persist.host.system_api.context import MessageContext
from persist.store import schema
from persist.store.canisters import env_vars_of

__all__ = ["MAX_CYCLES", "cycles_update", "message_context"]

#: Balances are BIGINT: they saturate here (9.2e18 cycles, far beyond any real balance).
MAX_CYCLES = 2**63 - 1


def message_context(row: sa.Row[Any], kind: str, *, refund: int = 0, **fields: Any) -> MessageContext:
    """A context of ``kind`` for a message to the canister ``row`` describes: its environment
    variables and its cycle balance (with ``refund``, the cycles a response brought back)."""
    return MessageContext(kind=kind, env_vars=env_vars_of(row), cycles_balance=int(row.cycles) + refund,
                          refunded_cycles=refund, **fields)


def cycles_update(delta: int) -> dict[str, Any]:
    """The row values that move the canister's balance by ``delta`` (an SQL increment, so that
    deposits by others in between are kept); empty when nothing moves."""
    if not delta:
        return {}
    col = schema.canisters.c.cycles
    if delta > 0:
        delta = min(delta, MAX_CYCLES)
        return {"cycles": sa.case((col > MAX_CYCLES - delta, MAX_CYCLES), else_=col + delta)}
    return {"cycles": sa.case((col < -delta, 0), else_=col + delta)}
