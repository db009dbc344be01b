"""Reading the stable type descriptor out of a live EOP heap, and out of an installed canister.

Heap layout, verified empirically on moc 1.1 (npm ``motoko`` 4.10.0) modules hosted by graphcopy
(see ``tests/test_descriptor.py``):

* the persistent metadata sits at the fixed address ``METADATA_ADDRESS = 0x480000`` (4.5 MiB, heap
  page 72): 32 UTF-32LE characters ``"MOTOKO ORTHOGONAL PERSISTENCE 64"`` (128 bytes), then 64-bit
  little-endian words ``version`` (1) at +128, ``stable_actor`` at +136 (0 except around an
  upgrade), and the ``stable_type`` descriptor's two values ``candid_data`` at +144 and
  ``type_offsets`` at +152;
* those values are skewed pointers (object address - 1, so they end in binary ``111``) to Blob
  objects in the dynamic heap (>= 5 MiB): word 0 the tag (25, ``TAG_BLOB_B``), word 1 the
  incremental GC's forwarding pointer (skewed; equal to the object's own skewed address unless the
  GC has evacuated it), word 2 the payload length in bytes, then the payload;
* ``type_offsets`` holds byte offsets from the start of the candid data, ``DIDL`` included (the
  first entry of a table with fewer than 128 entries is at offset 5);
* the descriptor is present right after install: the runtime registers the stable type during
  init, before any message. Fresh, the two blobs sit in the first heap partition (about
  ``0x5007e0`` and ``0x500900`` for the example ledger). After about 30,000 ledger accounts, with the
  heap at 192 MiB, the incremental GC evacuated that partition and the blobs moved (to about
  ``0x4152750``/``0x4152880``, the second 64 MiB partition). The GC updated the metadata roots, and
  the bytes are unchanged. Between messages, a blob's forwarding word was always its own address.
  The reader still follows a forwarding word that differs, as the RTS does.

Which type is registered: on install, the program's *post* type (checked with a migration actor).
On an upgrade, the RTS registers the new program's *pre* type, and ``pre_upgrade`` later assigns
the *post* type again (read in ``compile_enhanced.ml``; graphcopy cannot upgrade yet, so this is
not checked here). A canister upgraded with a migration function therefore shows its pre type
until its next ``pre_upgrade``.

The applied migrations of an enhanced migration chain (moc ``--enhanced-migration``), verified on
the pinned moc (npm ``motoko`` 4.10.0; ``tests/test_chains.py``): the metadata ends, after the
incremental GC's state, with ``upgrade_instructions`` at +7552 and three RTS roots, each a skewed
pointer or ``NULL_POINTER`` (``0xffff_ffff_ffff_fffb``): the weak-reference registry (+7560), the
blob dedup table (+7568) and the migration list (+7576; ``migration_functions`` in the RTS's
``persistence.rs``, a graph-copy root since motoko #5993). A heap written by an RTS without the
list has 0 there. The list is Motoko's ``?(Text, List)`` with the newest name first: each node a
two-element tuple (tag 7, ``TAG_ARRAY_T``: tag, forwarding pointer, length 2, then the two
values), the name a text blob (tag 27, ``TAG_BLOB_T``) or a concatenation (tag 37), the last
node's tail ``NULL_POINTER``. The runtime appends a migration's name when the step has run (during
install or upgrade), and compares only the newest one with the next chain. A graph copy keeps the
list.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from migrate.descriptor.convert import descriptor_to_signature
from migrate.descriptor.decoder import decode_descriptor
from migrate.errors import DescriptorError, NoDescriptorError
from migrate.stable_types import StableSignature

if TYPE_CHECKING:
    from persist.session import Store

__all__ = [
    "METADATA_ADDRESS",
    "PERSISTENCE_FINGERPRINT",
    "PERSISTENCE_VERSION",
    "HeapReader",
    "applied_migrations",
    "applied_migrations_from_canister",
    "read_applied_migrations",
    "read_persistent_descriptor",
    "signature_from_canister",
]


# --------------------------------------------------------------------------- the heap

#: Where the RTS keeps its persistent metadata (``persistence.rs``; its "6MB" comment is stale).
METADATA_ADDRESS = 4 * 1024 * 1024 + 512 * 1024
#: ``[char; 32]`` in Rust: 4 bytes (UTF-32LE) per character.
PERSISTENCE_FINGERPRINT = "MOTOKO ORTHOGONAL PERSISTENCE 64"
PERSISTENCE_VERSION = 1
_FINGERPRINT_BYTES = PERSISTENCE_FINGERPRINT.encode("utf-32-le")
_VERSION_OFFSET = 128
_CANDID_DATA_OFFSET = 144  # after version (+128) and stable_actor (+136); type_offsets follows at +152
_METADATA_PREFIX = 160
_HEAP_START = METADATA_ADDRESS + 512 * 1024  # first address of the dynamic heap
_TAG_BLOB_B = 25
_BLOB_HEADER = 24  # tag, forwarding pointer, length
_MAX_FORWARDS = 4  # an evacuated object forwards once; a chain longer than this is corruption
_ROOTS_OFFSET = 7560  # weak-reference registry, dedup table, migration list: three words
_MIGRATIONS_OFFSET = 7576
NULL_POINTER = 0xFFFF_FFFF_FFFF_FFFB
_TAG_ARRAY_T = 7
_TAG_BLOB_T = 27
_TAG_CONCAT = 37
_MAX_MIGRATIONS = 100_000  # a longer list is corruption (a cycle)
_MAX_NAME = 64 * 1024

HeapReader: TypeAlias = Callable[[int, int], bytes]
"""Reads ``n`` bytes at heap address ``addr``: ``reader(addr, n) -> bytes``."""


def _as_reader(heap: Any) -> tuple[HeapReader, int | None]:
    """A reader over a bytes-like heap image (with its size), or the caller's reader as is."""
    if callable(heap):
        return heap, None
    view = memoryview(heap)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    size = view.nbytes

    def read(addr: int, n: int) -> bytes:
        return bytes(view[addr : addr + n])

    return read, size


def read_persistent_descriptor(heap: Any) -> tuple[bytes, bytes]:
    """The ``(candid_data, type_offsets)`` payloads of the stable type registered in an EOP heap.

    ``heap`` is the canister's main memory: a bytes-like image (``bytes``, ``bytearray``,
    ``memoryview``, a numpy array, a ctypes array) indexed by address, or a reader callable
    ``(addr, n) -> bytes``. Checks the fingerprint and version of the persistent metadata at
    :data:`METADATA_ADDRESS`, follows the two skewed pointers of its ``stable_type`` (and the
    incremental GC's forwarding pointers, if the blobs were evacuated) to their Blob objects.

    Raises :class:`NoDescriptorError` when the heap has no EOP metadata or no registered type, and
    :class:`DescriptorError` when what is there is inconsistent.
    """
    read, size = _as_reader(heap)
    return _descriptor_blobs(read, size)


def _descriptor_blobs(read: HeapReader, size: int | None) -> tuple[bytes, bytes]:
    meta = _check_metadata(read, size)
    candid_value, offsets_value = struct.unpack_from("<2Q", meta, _CANDID_DATA_OFFSET)
    if candid_value == 0 and offsets_value == 0:
        raise NoDescriptorError("the persistent metadata holds no stable type descriptor (none registered yet)")
    candid = _read_blob(read, size, candid_value, "candid data")
    offsets = _read_blob(read, size, offsets_value, "type offsets")
    return candid, offsets


def _check_metadata(read: HeapReader, size: int | None) -> bytes:
    """The first bytes of the persistent metadata, after checking its fingerprint and version."""
    if size is not None and size < METADATA_ADDRESS + _METADATA_PREFIX:
        raise NoDescriptorError(
            f"no EOP persistent metadata: the heap has {size} bytes, and the metadata lives at "
            f"{METADATA_ADDRESS:#x} (4.5 MiB)")
    meta = _read_exact(read, METADATA_ADDRESS, _METADATA_PREFIX, "the persistent metadata")
    fingerprint = meta[:_VERSION_OFFSET]
    (version,) = struct.unpack_from("<Q", meta, _VERSION_OFFSET)
    if version == 0 and not any(fingerprint):
        raise NoDescriptorError(
            f"no EOP persistent metadata at {METADATA_ADDRESS:#x}: it is uninitialised (all zero); "
            "the module does not use enhanced orthogonal persistence or was never initialised")
    if fingerprint != _FINGERPRINT_BYTES:
        shown = fingerprint.decode("utf-32-le", errors="replace").rstrip("\x00")[:40]
        raise NoDescriptorError(
            f"no EOP persistent metadata at {METADATA_ADDRESS:#x}: fingerprint is {shown!r}, "
            f"expected {PERSISTENCE_FINGERPRINT!r}")
    if version != PERSISTENCE_VERSION:
        raise DescriptorError(
            f"unsupported persistent memory version {version} (this reader knows version {PERSISTENCE_VERSION})")
    return meta


def read_applied_migrations(heap: Any) -> list[str]:
    """The names of the chain migrations an EOP heap has applied, oldest first (``[]`` when none has
    run, or when the RTS that wrote the heap kept no list). ``heap`` as for
    :func:`read_persistent_descriptor`. Raises :class:`NoDescriptorError` when the heap has no EOP
    metadata and :class:`DescriptorError` when the list is corrupt."""
    read, size = _as_reader(heap)
    return _applied_migrations(read, size)


def _applied_migrations(read: HeapReader, size: int | None) -> list[str]:
    _check_metadata(read, size)
    roots = struct.unpack("<3Q", _read_exact(read, METADATA_ADDRESS + _ROOTS_OFFSET, 24, "the metadata's RTS roots"))
    for value, what in zip(roots[:2], ("weak-reference registry", "dedup table"), strict=True):
        if value not in (0, NULL_POINTER) and value & 7 != 7:
            raise DescriptorError(f"the persistent metadata's {what} word is {value:#x}, not a pointer: this heap "
                                  "was not written by the runtime this reader knows (metadata layout changed?)")
    value = roots[2]
    names: list[str] = []
    seen: set[int] = set()
    while value not in (0, NULL_POINTER):
        if len(names) >= _MAX_MIGRATIONS or value in seen:
            raise DescriptorError("the applied-migration list does not end (a cycle or corruption)")
        seen.add(value)
        addr, header = _object(read, size, value, "migration list node")
        if header[0] != _TAG_ARRAY_T or header[2] != 2:
            raise DescriptorError(
                f"migration list node at {addr:#x} is not a pair: tag {header[0]}, length {header[2]}")
        name_value, value = struct.unpack("<2Q", _read_exact(read, addr + _BLOB_HEADER, 16, "a migration list node"))
        names.append(_text(read, size, name_value, 0).decode("utf-8", errors="replace"))
    names.reverse()
    return names


def _object(read: HeapReader, size: int | None, value: int, what: str, where: str = "") -> tuple[
    int, tuple[int, int, int]
]:
    """The address and first three header words (tag, forwarding pointer, length) of the object a
    skewed pointer refers to, after following the incremental GC's forwarding pointers (an object
    it evacuated forwards to its current copy)."""
    for _ in range(_MAX_FORWARDS):
        if value & 7 != 7:
            raise DescriptorError(f"{what} is {value:#x}{where}, not a pointer (skewed pointers end in binary 111)")
        addr = (value + 1) & 0xFFFF_FFFF_FFFF_FFFF
        if addr < _HEAP_START or (size is not None and addr + _BLOB_HEADER > size):
            limit = f" of {size:#x}" if size is not None else ""
            raise DescriptorError(
                f"{what} points to {addr:#x}, outside the dynamic heap [{_HEAP_START:#x}, end{limit})")
        tag, forward, length = struct.unpack("<3Q", _read_exact(read, addr, _BLOB_HEADER, f"the {what} header"))
        if forward == value:
            return addr, (tag, forward, length)
        value = forward
    raise DescriptorError(f"{what}: more than {_MAX_FORWARDS} forwarding pointers in a row")


def _text(read: HeapReader, size: int | None, value: int, depth: int) -> bytes:
    """The UTF-8 bytes of a Motoko text value (a text blob, or a concatenation of two texts)."""
    if depth > 64:
        raise DescriptorError("a migration name nests too deeply (corrupt text)")
    addr, (tag, _, length) = _object(read, size, value, "migration name")
    if tag == _TAG_BLOB_T:
        if length > _MAX_NAME:
            raise DescriptorError(f"migration name at {addr:#x} claims {length} bytes")
        return _read_exact(read, addr + _BLOB_HEADER, length, "a migration name")
    if tag == _TAG_CONCAT:
        left, right = struct.unpack("<2Q", _read_exact(read, addr + _BLOB_HEADER, 16, "a text concatenation"))
        return _text(read, size, left, depth + 1) + _text(read, size, right, depth + 1)
    raise DescriptorError(f"migration name at {addr:#x} is not a text: object tag {tag}")


def _read_exact(read: HeapReader, addr: int, n: int, what: str) -> bytes:
    data = read(addr, n)
    if len(data) != n:
        raise DescriptorError(f"cannot read {what}: {n} bytes at {addr:#x} reach past the end of the heap")
    return bytes(data)


def _read_blob(read: HeapReader, size: int | None, value: int, what: str) -> bytes:
    """The payload of the Blob a skewed pointer refers to, following GC forwarding pointers."""
    addr, (tag, _, length) = _object(read, size, value, f"stable type {what}", " in the persistent metadata")
    if tag != _TAG_BLOB_B:
        raise DescriptorError(
            f"stable type {what} at {addr:#x} is not a Blob: object tag {tag}, expected {_TAG_BLOB_B}")
    if size is not None and addr + _BLOB_HEADER + length > size:
        raise DescriptorError(
            f"stable type {what} blob at {addr:#x} claims {length} bytes, past the end of the heap ({size:#x})")
    return _read_exact(read, addr + _BLOB_HEADER, length, f"the {what} blob")


# --------------------------------------------------------------------------- installed canisters


def signature_from_canister(store: Store, name: str) -> StableSignature:
    """The stable signature an installed canister registered, read from its committed heap.

    Reads only the heap pages that hold the persistent metadata and the two descriptor blobs,
    straight from the store's page tables (a page that is not stored is zero), so the canister is
    not instantiated and may be stopped. Raises ``CanisterNotFoundError``, ``CanisterStateError``
    for an empty canister, :class:`NoDescriptorError` for a module without enhanced orthogonal
    persistence or a heap without a registered type, and :class:`DescriptorError` when the
    metadata or the descriptor is corrupt.
    """
    candid, offsets = _from_canister_heap(store, name, _descriptor_blobs)
    return descriptor_to_signature(decode_descriptor(candid, offsets))


def applied_migrations_from_canister(store: Store, name: str) -> list[str]:
    """The chain migrations an installed canister has applied, oldest first, read from its committed
    heap as :func:`signature_from_canister` reads the descriptor (the canister is not run). Raises
    as that function does (:class:`NoDescriptorError` for a module without enhanced orthogonal
    persistence)."""
    return _from_canister_heap(store, name, _applied_migrations)


def applied_migrations(store: Store, name: str) -> list[str] | None:
    """The chain migrations canister ``name`` has applied, oldest first, or None when its heap does
    not say: no EOP metadata (an empty canister, a module without enhanced orthogonal persistence),
    or a list this reader cannot follow (a heap in the middle of a graph copy's destabilization, or
    written by another runtime). What ``graphcopy status`` shows, so it never fails on the heap;
    ``check`` and ``upgrade`` use :func:`applied_migrations_from_canister`, which raises. Raises
    ``CanisterNotFoundError``."""
    from persist.errors import CanisterStateError

    try:
        return applied_migrations_from_canister(store, name)
    except (DescriptorError, CanisterStateError):
        return None


_T = TypeVar("_T")


def _from_canister_heap(store: Store, name: str, fn: Callable[[HeapReader, int | None], _T]) -> _T:
    """``fn(read, size)`` over the committed heap of canister ``name``, reading only the pages it asks for."""
    import sqlalchemy as sa

    from persist.errors import CanisterStateError
    from persist.host.module import EOP_SECTION
    from persist.store import db, pages, schema
    from persist.store.canisters import canister_row

    with db.read_transaction(store.engine) as conn:
        row = canister_row(conn, name)
        if row.module_hash is None:
            raise CanisterStateError(f"canister {row.name!r} is empty: install a module first (`graphcopy install`)")
        ms = schema.module_sections.c
        has_eop = conn.execute(
            sa.select(ms.name).where(ms.module_hash == row.module_hash, ms.name == EOP_SECTION)).first()
        if has_eop is None:
            raise NoDescriptorError(
                f"canister {row.name!r} runs a module without enhanced orthogonal persistence (no "
                f"'{EOP_SECTION}' section), so its heap holds no stable type descriptor")
        size = int(row.heap_pages) * pages.PAGE_SIZE
        cache: dict[int, bytes] = {}

        def read(addr: int, n: int) -> bytes:
            end = min(addr + n, size)
            if addr >= end:
                return b""
            first, last = addr // pages.PAGE_SIZE, (end - 1) // pages.PAGE_SIZE
            wanted = [p for p in range(first, last + 1) if p not in cache]
            if wanted:
                for p in wanted:
                    cache[p] = pages.ZERO_PAGE  # not stored means all zero
                cache.update(pages.read_pages(conn, pages.HEAP, row.id, wanted))
            chunk = b"".join(cache[p] for p in range(first, last + 1))
            return chunk[addr - first * pages.PAGE_SIZE : end - first * pages.PAGE_SIZE]

        try:
            return fn(read, size)
        except DescriptorError as exc:
            raise type(exc)(f"canister {row.name!r}: {exc}") from None
