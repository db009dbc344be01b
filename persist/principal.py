"""Internet Computer principals: raw bytes and their canonical textual form.

The textual form follows the IC interface specification, section "Textual representation of
principals": ``Grouped(Base32(CRC32(b) · b))`` where ``CRC32`` is the ISO 3309 / ITU-T V.42 check
sequence written as four big-endian bytes, ``Base32`` is RFC 4648 base32 without padding (written in
lowercase), and ``Grouped`` inserts ``-`` after every 5 characters (the last group may be shorter).
A principal is at most 29 bytes long.

Only the standard library is used (``zlib.crc32``, ``base64.b32encode``/``b32decode``,
``hashlib.sha224``): the encoding is a dozen lines and needs no third-party dependency.

Known pairs: ``aaaaa-aa`` is the empty blob (the management canister), ``2vxsx-fae`` is ``0x04`` (the
anonymous principal), ``rwlgt-iiaaa-aaaaa-aaaaa-cai`` is canister index 0,
``rrkah-fqaaa-aaaaa-aaaaq-cai`` index 1 and ``ryjl3-tyaaa-aaaaa-aaaba-cai`` index 2.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass

from persist.errors import CandidError

__all__ = ["MAX_PRINCIPAL_BYTES", "Principal"]

#: Longest raw principal the IC allows.
MAX_PRINCIPAL_BYTES = 29

_SUFFIX_OPAQUE = 0x01
_SUFFIX_SELF_AUTHENTICATING = 0x02
_SUFFIX_ANONYMOUS = 0x04
_B32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")


@dataclass(frozen=True, order=True)
class Principal:
    """An IC principal (user or canister id), held as its raw bytes.

    ``str(p)`` is the canonical textual form. Instances are immutable, hashable and ordered by raw
    bytes, so they can be used as dictionary keys.
    """

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes | bytearray):
            raise CandidError(f"a principal is raw bytes, got {type(self.raw).__name__}")
        if isinstance(self.raw, bytearray):
            object.__setattr__(self, "raw", bytes(self.raw))
        if len(self.raw) > MAX_PRINCIPAL_BYTES:
            raise CandidError(
                f"a principal is at most {MAX_PRINCIPAL_BYTES} bytes, got {len(self.raw)} bytes"
            )

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def from_text(cls, text: str) -> Principal:
        """Parse the canonical textual form (e.g. ``"ryjl3-tyaaa-aaaaa-aaaba-cai"``).

        Upper-case letters are accepted; the dash grouping and the CRC32 checksum are checked.
        Raises :class:`CandidError` with a one-line message when the text is not a principal.
        """
        if not isinstance(text, str):
            raise CandidError(f"a principal's text form is a string, got {type(text).__name__}")
        shown = text if len(text) <= 80 else text[:77] + "..."
        lowered = text.strip().lower()
        letters = lowered.replace("-", "")
        if not letters:
            raise CandidError(f'invalid principal "{shown}": empty text')
        bad = sorted({c for c in letters if c not in _B32_ALPHABET})
        if bad:
            raise CandidError(
                f'invalid principal "{shown}": character {bad[0]!r} is not in the base32 alphabet a-z, 2-7'
            )
        padding = "=" * (-len(letters) % 8)
        try:
            decoded = base64.b32decode(letters.upper() + padding)
        except ValueError:
            raise CandidError(f'invalid principal "{shown}": not valid base32') from None
        if len(decoded) < 4:
            raise CandidError(f'invalid principal "{shown}": too short to hold a checksum')
        checksum, raw = decoded[:4], decoded[4:]
        if len(raw) > MAX_PRINCIPAL_BYTES:
            raise CandidError(
                f'invalid principal "{shown}": longer than {MAX_PRINCIPAL_BYTES} bytes'
            )
        if int.from_bytes(checksum, "big") != zlib.crc32(raw):
            raise CandidError(f'invalid principal "{shown}": checksum mismatch (mistyped?)')
        principal = cls(raw)
        if principal.to_text() != lowered:
            raise CandidError(
                f'invalid principal "{shown}": not in canonical form (expected "{principal.to_text()}")'
            )
        return principal

    @classmethod
    def from_hex(cls, text: str) -> Principal:
        """Build a principal from the hex spelling of its raw bytes."""
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise CandidError(f"invalid principal hex {text!r}") from None

    @classmethod
    def anonymous(cls) -> Principal:
        """The anonymous principal ``2vxsx-fae`` (raw ``0x04``)."""
        return cls(bytes([_SUFFIX_ANONYMOUS]))

    @classmethod
    def management_canister(cls) -> Principal:
        """The management canister ``aaaaa-aa`` (the empty blob)."""
        return cls(b"")

    @classmethod
    def self_authenticating(cls, public_key_der: bytes) -> Principal:
        """The self-authenticating id of a DER-encoded public key: ``SHA-224(key) · 0x02``."""
        digest = hashlib.sha224(bytes(public_key_der)).digest()
        return cls(digest + bytes([_SUFFIX_SELF_AUTHENTICATING]))

    @classmethod
    def from_canister_index(cls, index: int) -> Principal:
        """The canister id with the given index: 8-byte big-endian index, then ``0x01 0x01``.

        Index 0 is ``rwlgt-iiaaa-aaaaa-aaaaa-cai``, 1 is ``rrkah-fqaaa-aaaaa-aaaaq-cai``, 2 is
        ``ryjl3-tyaaa-aaaaa-aaaba-cai``.
        """
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 2**64:
            raise CandidError(f"a canister index is an integer in [0, 2^64), got {index!r}")
        return cls(index.to_bytes(8, "big") + bytes([_SUFFIX_OPAQUE, _SUFFIX_OPAQUE]))

    # -- views -------------------------------------------------------------------------------

    def to_text(self) -> str:
        """The canonical textual form: lowercase base32 of ``CRC32 · raw`` in dash groups of 5."""
        data = zlib.crc32(self.raw).to_bytes(4, "big") + self.raw
        letters = base64.b32encode(data).decode("ascii").rstrip("=").lower()
        return "-".join(letters[i : i + 5] for i in range(0, len(letters), 5))

    def canister_index(self) -> int | None:
        """The index if this is a canister id made by :meth:`from_canister_index`, else ``None``."""
        if len(self.raw) == 10 and self.raw[8:] == bytes([_SUFFIX_OPAQUE, _SUFFIX_OPAQUE]):
            return int.from_bytes(self.raw[:8], "big")
        return None

    @property
    def is_anonymous(self) -> bool:
        """True for the anonymous principal ``2vxsx-fae``."""
        return self.raw == bytes([_SUFFIX_ANONYMOUS])

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return f"Principal({self.to_text()!r})"
