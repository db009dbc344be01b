"""Keys in PEM files, and the self-authenticating principal of a key.

graphcopy makes Ed25519 keys (PKCS#8 PEM, ``-----BEGIN PRIVATE KEY-----``, as ``dfx identity new
--storage-mode plaintext`` writes Ed25519 keys and ``openssl genpkey -algorithm ed25519`` makes them)
and imports Ed25519 and secp256k1 keys (dfx's default; SEC1 ``EC PRIVATE KEY``, possibly after an
``EC PARAMETERS`` block) with the maintained ``cryptography`` package. The principal is the
interface specification's self-authenticating id: ``SHA-224(DER SubjectPublicKeyInfo) · 0x02``
(``persist.principal.Principal.self_authenticating``); the DER encoding is RFC 8410 for Ed25519
(``302a300506032b6570032100`` and the 32-byte key) and RFC 5480 for secp256k1 (uncompressed point).

graphcopy signs nothing: a store is not a network. Holding the key is what makes an identity the
user's own (its principal may act as a controller); keys never enter a store.
"""

from __future__ import annotations

import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from persist.errors import InvalidArgumentError
from persist.principal import Principal

__all__ = ["IdentityKeyError", "generate_ed25519_pem", "key_type_of_pem", "principal_of_pem", "public_key_der"]

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\s.*?-----END \1-----", re.S)


class IdentityKeyError(InvalidArgumentError):
    """A key file is not a PEM private key graphcopy can use (exit 2)."""


def generate_ed25519_pem() -> bytes:
    """A new Ed25519 private key, as PKCS#8 PEM (unencrypted)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _private_key(pem: bytes, source: str) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    blocks = [m.group(0) for m in _PEM_BLOCK.finditer(pem) if m.group(1).endswith(b"PRIVATE KEY")]
    if not blocks:
        raise IdentityKeyError(f"{source} holds no PEM private key (-----BEGIN PRIVATE KEY----- or "
                               "-----BEGIN EC PRIVATE KEY-----)")
    if b"ENCRYPTED" in blocks[0]:
        raise IdentityKeyError(f"{source} holds an encrypted key; graphcopy takes plaintext PEM keys "
                               "(`dfx identity export NAME > key.pem` writes one)")
    try:
        key = serialization.load_pem_private_key(blocks[0], password=None)
    except (ValueError, TypeError) as exc:
        text = " ".join(str(exc).split()).split(". See")[0]
        raise IdentityKeyError(f"{source} is not a usable private key: {text}") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256K1):
        return key
    raise IdentityKeyError(f"{source} holds a {type(key).__name__.replace('PrivateKey', '')} key; IC identities "
                           "are Ed25519 or secp256k1 keys")


def public_key_der(pem: bytes, source: str = "the key") -> bytes:
    """The DER SubjectPublicKeyInfo of the private key in ``pem``."""
    return _private_key(pem, source).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def principal_of_pem(pem: bytes, source: str = "the key") -> Principal:
    """The self-authenticating principal of the private key in ``pem`` (IdentityKeyError if none)."""
    return Principal.self_authenticating(public_key_der(pem, source))


def key_type_of_pem(pem: bytes, source: str = "the key") -> str:
    """``ed25519`` or ``secp256k1``."""
    return "ed25519" if isinstance(_private_key(pem, source), ed25519.Ed25519PrivateKey) else "secp256k1"
