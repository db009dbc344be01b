"""The binary stable type descriptor that a live EOP heap keeps in its persistent metadata.

An enhanced-orthogonal-persistence (EOP) Motoko canister registers the type of its stable state at
every install and upgrade (``register_stable_type`` in the RTS) and keeps it in its own heap, so the
*old* type of a canister can be read from the canister's state alone, without the module that wrote
it. This package reads it back:

* :func:`decode_descriptor` parses the descriptor's two blobs: ``candid_data``, a ``DIDL``-prefixed
  Candid-like type table with Motoko's extensions, and ``type_offsets``, the byte offset of every
  table entry as little-endian ``u64``s;
* :func:`read_persistent_descriptor` finds those two blobs in a heap image (or through a reader);
* :func:`descriptor_to_signature` turns the table into the typed stable-signature model of
  :mod:`migrate.stable_types`, and :func:`signature_from_canister` does all of it for a canister
  installed in a graphcopy store.

The package holds four modules, each importing only the ones before it:

* ``format``: the type codes, the entry classes, :class:`DescriptorTable` and the encoding of a
  table back to bytes (the table format is described there);
* ``decoder``: :func:`decode_descriptor` and the checks a well-formed descriptor passes;
* ``convert``: :func:`descriptor_to_signature`, :func:`signature_to_descriptor` and
  :func:`descriptor_mismatch`;
* ``heap``: :func:`read_persistent_descriptor` over a heap image or reader, and
  :func:`signature_from_canister` over a graphcopy store (the heap layout is described there); also
  the names of the chain migrations a heap has applied (:func:`read_applied_migrations`,
  :func:`applied_migrations_from_canister`), which the runtime keeps in the same metadata.

The table is not minimal. moc keys entries by its internal type identity, so distinct Motoko types
that encode alike get separate, identical entries (``?Char`` and ``?Nat32``; ``var f : [Int]`` and
``f : [var Int]``). Compare tables with :func:`descriptor_mismatch`, not byte for byte.

Errors (:class:`DescriptorError`, :class:`NoDescriptorError`) are defined in
:mod:`migrate.errors`.
"""

from __future__ import annotations

from migrate.descriptor.convert import descriptor_mismatch, descriptor_to_signature, signature_to_descriptor
from migrate.descriptor.decoder import decode_descriptor
from migrate.descriptor.format import (
    ALIAS,
    ANNOTATIONS,
    BLOB,
    FUNC,
    OPT,
    PRIMITIVE_NAMES,
    RECORD,
    REGION,
    SERVICE,
    TUPLE,
    VARIANT,
    VEC,
    WEAK,
    AliasEntry,
    DescriptorTable,
    Entry,
    FuncEntry,
    OptEntry,
    RecordEntry,
    ServiceEntry,
    TupleEntry,
    TypeRef,
    VariantEntry,
    VecEntry,
    WeakEntry,
    entry_children,
    hashed_label,
)

# The other primitive codes are not in ``__all__`` (as before the split into modules), but stay
# attributes of the package: ``descriptor.NAT``.
from migrate.descriptor.format import ANY as ANY
from migrate.descriptor.format import BOOL as BOOL
from migrate.descriptor.format import FLOAT as FLOAT
from migrate.descriptor.format import INT as INT
from migrate.descriptor.format import INT8 as INT8
from migrate.descriptor.format import INT16 as INT16
from migrate.descriptor.format import INT32 as INT32
from migrate.descriptor.format import INT64 as INT64
from migrate.descriptor.format import NAT as NAT
from migrate.descriptor.format import NAT8 as NAT8
from migrate.descriptor.format import NAT16 as NAT16
from migrate.descriptor.format import NAT32 as NAT32
from migrate.descriptor.format import NAT64 as NAT64
from migrate.descriptor.format import NONE as NONE
from migrate.descriptor.format import NULL as NULL
from migrate.descriptor.format import PRINCIPAL as PRINCIPAL
from migrate.descriptor.format import TEXT as TEXT
from migrate.descriptor.heap import (
    METADATA_ADDRESS,
    PERSISTENCE_FINGERPRINT,
    PERSISTENCE_VERSION,
    HeapReader,
    applied_migrations,
    applied_migrations_from_canister,
    read_applied_migrations,
    read_persistent_descriptor,
    signature_from_canister,
)
from migrate.errors import DescriptorError, NoDescriptorError

__all__ = [
    "ALIAS",
    "ANNOTATIONS",
    "BLOB",
    "FUNC",
    "METADATA_ADDRESS",
    "OPT",
    "PERSISTENCE_FINGERPRINT",
    "PERSISTENCE_VERSION",
    "PRIMITIVE_NAMES",
    "RECORD",
    "REGION",
    "SERVICE",
    "TUPLE",
    "TypeRef",
    "VARIANT",
    "VEC",
    "WEAK",
    "AliasEntry",
    "DescriptorError",
    "DescriptorTable",
    "Entry",
    "FuncEntry",
    "HeapReader",
    "NoDescriptorError",
    "OptEntry",
    "RecordEntry",
    "ServiceEntry",
    "TupleEntry",
    "VariantEntry",
    "VecEntry",
    "WeakEntry",
    "decode_descriptor",
    "descriptor_mismatch",
    "descriptor_to_signature",
    "entry_children",
    "hashed_label",
    "applied_migrations",
    "applied_migrations_from_canister",
    "read_applied_migrations",
    "read_persistent_descriptor",
    "signature_from_canister",
    "signature_to_descriptor",
]
