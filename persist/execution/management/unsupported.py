"""Management methods a local host cannot serve, and the rejects they get (never a trap of the
caller; attached cycles come back in full).

* Threshold keys (``ecdsa_public_key``, ``sign_with_ecdsa``, ``schnorr_public_key``,
  ``sign_with_schnorr``, ``vetkd_public_key``, ``vetkd_derive_key``): graphcopy holds no keys, so
  the reject is the replica's for a subnet without the requested key (DESTINATION_INVALID,
  ``Unable to route management canister request …: ChainKeyError("Requested unknown threshold key
  … on subnet …, subnet has keys: []")``, from ``routing.rs``/the execution tests of dfinity/ic).
* ``http_request``: no outcalls are made (SYS_TRANSIENT, the code of a failed outcall).
* The deprecated Bitcoin API and snapshot downloads/uploads (``read_canister_snapshot_*``,
  ``upload_canister_snapshot_*``): DESTINATION_INVALID / CANISTER_REJECT with a text that says so.
"""

from __future__ import annotations

from typing import Any

from persist.execution.management.request import Request
from persist.execution.rejects import Response
from persist.host.system_api.context import REJECT_CANISTER_REJECT, REJECT_DESTINATION_INVALID, REJECT_SYS_TRANSIENT
from persist.host.system_api.subnet import SUBNET_ID

__all__ = ["UNSUPPORTED", "unsupported"]

_CURVES = {"secp256k1": "Secp256k1", "bls12_381_g2": "Bls12_381_G2"}
_ALGORITHMS = {"bip340secp256k1": "Bip340Secp256k1", "ed25519": "Ed25519"}
_SCHEMES = {
    "ecdsa_public_key": "ecdsa", "sign_with_ecdsa": "ecdsa",
    "schnorr_public_key": "schnorr", "sign_with_schnorr": "schnorr",
    "vetkd_public_key": "vetkd", "vetkd_derive_key": "vetkd",
}
BITCOIN = ("bitcoin_get_balance", "bitcoin_get_utxos", "bitcoin_send_transaction",
           "bitcoin_get_current_fee_percentiles", "bitcoin_get_block_headers")
SNAPSHOT_TRANSFER = ("read_canister_snapshot_metadata", "read_canister_snapshot_data",
                     "upload_canister_snapshot_metadata", "upload_canister_snapshot_data")


def _key_id(scheme: str, key: dict[str, Any]) -> str:
    """A key id as the replica prints a ``MasterPublicKeyId`` (``ecdsa:Secp256k1:key_1``)."""
    if scheme == "schnorr":
        kind = _ALGORITHMS.get(next(iter(key["algorithm"])), "?")
    else:
        kind = _CURVES.get(next(iter(key["curve"])), "?")
    return f"{scheme}:{kind}:{key['name']}"


def unsupported(req: Request) -> Response:
    """The reject for a method graphcopy does not serve."""
    method = req.method
    if method in _SCHEMES:
        key = _key_id(_SCHEMES[method], req.arg["key_id"])
        return ("reject", b"", REJECT_DESTINATION_INVALID,
                f'Unable to route management canister request {method}: ChainKeyError("Requested unknown threshold '
                f'key {key} on subnet {SUBNET_ID.to_text()}, subnet has keys: []")')
    if method == "http_request":
        return ("reject", b"", REJECT_SYS_TRANSIENT,
                f"graphcopy makes no HTTP outcalls: the request to {req.arg['url']} was not sent (a local host has "
                "no network access for canisters and no replicas to agree on a response)")
    if method in BITCOIN:
        return ("reject", b"", REJECT_DESTINATION_INVALID,
                f"Unable to route management canister request {method}: graphcopy has no Bitcoin network (the "
                "management canister's Bitcoin API is deprecated; canisters call the Bitcoin canister)")
    return ("reject", b"", REJECT_CANISTER_REJECT,
            f"graphcopy does not serve {method}: snapshots are read and written with `graphcopy snapshot` "
            "(take, list, load, delete)")


UNSUPPORTED = frozenset({*_SCHEMES, "http_request", *BITCOIN, *SNAPSHOT_TRANSFER})
