"""Verify queries: a query's reply as Candid text, compared before and after an upgrade.

Pipelines (``[[verify]] query = ...``) and rehearsals (``--verify METHOD``) call the same function.
Replies are compared as Candid text typed by each module's own interface, so a query whose result
type changes (a record that gains a field) does not compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from persist import api
from persist.candid import encode_args, format_args_idl
from persist.errors import GraphcopyError
from persist.session import Store

__all__ = ["VerifyError", "VerifyQuery", "parse_verify", "query_reply"]


class VerifyError(GraphcopyError):
    """A verify query is not one (an update method), or its text does not parse."""

    exit_code = 2


@dataclass(frozen=True)
class VerifyQuery:
    """A query method and its Candid text arguments."""

    method: str
    args: str = "()"

    def label(self) -> str:
        return f"{self.method}{self.args}"


def parse_verify(spec: str) -> VerifyQuery:
    """``"get"``, ``"get()"`` or ``"balance(7 : nat)"`` (arguments in Candid text, default ``()``)."""
    text = spec.strip()
    method, paren, rest = text.partition("(")
    method = method.strip()
    if not method or not all(ch.isalnum() or ch in "_" for ch in method):
        raise VerifyError(f"verify query {spec!r} must be METHOD or METHOD(CANDID ARGS), e.g. get or balance(7 : nat)")
    return VerifyQuery(method, f"({rest}" if paren else "()")


def query_reply(store: Store, name: str, method: str, args: str = "()") -> str:
    """The reply of query ``method`` of canister ``name`` to Candid text ``args``, as one-line Candid text."""
    iface = api.interface(store, name)
    sig = iface.methods.get(method) if iface is not None else None
    arg = encode_args(args, sig.args if sig else None)
    if api.method_kind(store, name, method) != "query":  # checked first: an update would commit
        raise VerifyError(f"verify method {name}.{method} is an update, not a query")
    return format_args_idl(api.call(store, name, method, arg).reply, sig.rets if sig else None)
