"""Who may send an ingress message: the IC's rule, with a one-line reason for every refusal.

The interface specification ("Principals", "Authentication") classes principals by their last
byte: ``0x01`` opaque ids (canister ids, which the system creates), ``0x02`` self-authenticating
ids (``SHA-224(DER public key) · 0x02``, held by whoever holds the key), ``0x03`` derived ids,
``0x04`` the anonymous id (raw ``0x04``: ``2vxsx-fae``), ``0x7f`` reserved; the empty blob is the
management canister ``aaaaa-aa``. The sender of a request a user submits is either the anonymous
id or self-authenticating (the request is then signed with that key); a canister id never sends an
ingress message, and nothing can send as the management canister.
"""

from __future__ import annotations

from persist.errors import CandidError, InvalidArgumentError
from persist.principal import Principal

__all__ = [
    "ANONYMOUS_CLASS",
    "DERIVED_CLASS",
    "OPAQUE_CLASS",
    "RESERVED_CLASS",
    "SELF_AUTHENTICATING_CLASS",
    "check_ingress_sender",
    "ingress_sender_problem",
    "parse_sender",
]

OPAQUE_CLASS = 0x01
SELF_AUTHENTICATING_CLASS = 0x02
DERIVED_CLASS = 0x03
ANONYMOUS_CLASS = 0x04
RESERVED_CLASS = 0x7F


def ingress_sender_problem(principal: Principal) -> str | None:
    """Why ``principal`` cannot send an ingress message on the IC (\"it is ...\"), or None if it can."""
    raw = principal.raw
    if not raw:
        return "it is the management canister: nothing sends messages as it"
    if principal.is_anonymous:
        return None
    kind = raw[-1]
    if kind == SELF_AUTHENTICATING_CLASS and len(raw) == 29:
        return None
    if kind == OPAQUE_CLASS:
        return ("it is a canister id (an opaque principal, class 0x01): on the IC a canister never sends an "
                "ingress message, only users do (the anonymous principal or a self-authenticating one)")
    if kind == SELF_AUTHENTICATING_CLASS:
        return "it is not a self-authenticating principal: those are 29 bytes (a SHA-224 hash, then 0x02)"
    if kind == DERIVED_CLASS:
        return "it is a derived principal (class 0x03): it cannot sign a request, so it sends no ingress message"
    if kind == RESERVED_CLASS:
        return "it is a reserved principal (class 0x7f): it cannot send messages"
    return f"it is not a user principal (class 0x{kind:02x}): ingress senders are anonymous or self-authenticating"


def check_ingress_sender(principal: Principal) -> Principal:
    """``principal`` if it may send an ingress message; InvalidArgumentError (one line, exit 2) if not."""
    problem = ingress_sender_problem(principal)
    if problem is not None:
        raise InvalidArgumentError(f"cannot call as {principal.to_text()}: {problem}")
    return principal


def parse_sender(text: str) -> Principal:
    """A principal's text (or ``anonymous``) given as a caller, checked by :func:`check_ingress_sender`."""
    if text.strip() == "anonymous":
        return Principal.anonymous()
    try:
        principal = Principal.from_text(text)
    except CandidError as exc:
        raise InvalidArgumentError(f"--caller takes a principal or `anonymous`: {exc}") from None
    return check_ingress_sender(principal)
