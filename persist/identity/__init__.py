"""Identities as on the IC: who may send an ingress message, and the user's own named identities.

* :mod:`persist.identity.principals` -- the IC's rule for ingress senders (the anonymous principal,
  or a self-authenticating one; never a canister id or the management canister);
* :mod:`persist.identity.keys` -- Ed25519 keys (and imported secp256k1 ones) in PEM files, and the
  self-authenticating principal of a key (SHA-224 of its DER SubjectPublicKeyInfo, then ``0x02``);
* :mod:`persist.identity.identities` -- the per-user identity directory, laid out like dfx's
  (``<config>/identity.json``, ``<config>/identity/<name>/identity.pem``), outside every store.

The package imports no store and nothing that runs canisters: an identity belongs to a user, not to
a store (adopting a store's canisters is ``persist.api.adopt``).

The names of ``keys`` load on first use (PEP 562): it imports ``cryptography``, which a command
that only needs the principal of the identity in use (cached beside its key) does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from persist.identity.identities import (
    ANONYMOUS,
    DEFAULT,
    Identity,
    IdentityError,
    config_dir,
    current_identity,
    held_identity,
    import_identity,
    list_identities,
    load_identity,
    new_identity,
    remove_identity,
    selected_name,
    use_identity,
)
from persist.identity.principals import check_ingress_sender, ingress_sender_problem, parse_sender

if TYPE_CHECKING:
    from persist.identity.keys import IdentityKeyError, generate_ed25519_pem, principal_of_pem

_FROM_KEYS = ("IdentityKeyError", "generate_ed25519_pem", "principal_of_pem")

__all__ = [
    "ANONYMOUS",
    "DEFAULT",
    "Identity",
    "IdentityError",
    "IdentityKeyError",
    "check_ingress_sender",
    "config_dir",
    "current_identity",
    "generate_ed25519_pem",
    "held_identity",
    "import_identity",
    "ingress_sender_problem",
    "list_identities",
    "load_identity",
    "new_identity",
    "parse_sender",
    "principal_of_pem",
    "remove_identity",
    "selected_name",
    "use_identity",
]


def __getattr__(name: str) -> Any:
    if name in _FROM_KEYS:
        from persist.identity import keys

        return getattr(keys, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
