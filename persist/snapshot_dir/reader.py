"""Reading a snapshot directory: validate everything first, then stream the memories page by page.

:func:`open_snapshot_dir` checks the whole directory before anything is imported: ``metadata.json``
parses (``persist.snapshot_dir.format``), every file it implies exists with the size it states,
memory sizes are whole Wasm pages, and every listed chunk is there with the sha256 it is listed
under. What the tools leave next to the data is tolerated (icp-cli's ``.lock``, dfx's
``<snapshot id>.json`` upload progress), except icp-cli's ``.download_progress.json``, which means
the download never finished.

:func:`memory_pages` then yields the non-zero 64 KiB pages of a memory file without reading it
whole: it asks the kernel where the data is (``lseek`` with ``SEEK_DATA``/``SEEK_HOLE``), so the
holes of a sparse file cost nothing, and falls back to reading everything where the platform or
file system cannot tell (then zero pages are found by comparison and skipped just the same).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from persist.errors import SnapshotDirError
from persist.snapshot_dir.format import (
    CHUNK_DIR,
    HEAP_FILE,
    MAX_CHUNK_BYTES,
    METADATA_FILE,
    MODULE_FILE,
    STABLE_FILE,
    WASM_PAGE,
    SnapshotMetadata,
    chunk_file_name,
    parse_metadata,
)

__all__ = ["READ_PAGES", "SnapshotDir", "data_extents", "memory_pages", "open_snapshot_dir"]

#: Pages read per system call while streaming a memory (1 MiB).
READ_PAGES = 16
#: icp-cli keeps this file while a download is unfinished (``snapshot_transfer.rs``).
DOWNLOAD_PROGRESS = ".download_progress.json"
_ZERO_PAGE = bytes(WASM_PAGE)

ProgressFn = Callable[[int], None]


@dataclass
class SnapshotDir:
    """A validated snapshot directory. ``stable_path`` is None when there is no stable memory."""

    path: Path
    metadata: SnapshotMetadata
    metadata_sha256: str
    module_path: Path
    heap_path: Path | None
    stable_path: Path | None
    chunk_paths: dict[bytes, Path]
    warnings: list[str] = field(default_factory=list)

    def read_module(self) -> bytes:
        """The module file's bytes, as stored (gzipped or not)."""
        data = _read_small(self.module_path)
        if len(data) != self.metadata.wasm_module_size:
            raise SnapshotDirError(f"{self.module_path} changed while it was read")
        return data

    def read_chunks(self) -> Iterator[tuple[bytes, bytes]]:
        """``(hash, data)`` of every chunk of the Wasm chunk store, in the metadata's order, checked again."""
        for digest, path in self.chunk_paths.items():
            data = _read_small(path)
            if hashlib.sha256(data).digest() != digest:
                raise SnapshotDirError(f"{path} changed while it was read")
            yield digest, data


def _read_small(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SnapshotDirError(f"cannot read {path}: {exc.strerror}") from None


def _file_size(path: Path, what: str) -> int | None:
    """The size of a regular file; None if it does not exist."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotDirError(f"cannot read {path}: {exc.strerror}") from None
    if not path.is_file():
        raise SnapshotDirError(f"{path} ({what}) is not a regular file")
    return st.st_size


def _check_memory(root: Path, name: str, expected: int, what: str, required: bool) -> Path | None:
    path = root / name
    size = _file_size(path, what)
    if expected % WASM_PAGE:
        raise SnapshotDirError(
            f"{root / METADATA_FILE}: the {what} size {expected:,} is not a whole number of 64 KiB Wasm pages")
    if size is None:
        if expected == 0 and not required:
            return None
        raise SnapshotDirError(f"missing file {path}: metadata.json says the {what} has {expected:,} bytes")
    if size != expected:
        short = "truncated: " if size < expected else ""
        raise SnapshotDirError(f"{short}{path} has {size:,} bytes but metadata.json says the {what} has "
                               f"{expected:,}")
    return path if size else None


def open_snapshot_dir(directory: str | Path) -> SnapshotDir:
    """Validate a snapshot directory (dfx / icp-cli layout) without reading its memories.

    SnapshotDirError, one line, for: a path that is not a directory or holds no ``metadata.json``
    (not a snapshot), an unfinished icp-cli download, unparsable or ill-typed metadata, a missing
    file, a file whose size disagrees with the metadata (a truncated memory file among them), a
    memory size that is not whole Wasm pages, a chunk that is missing, too large, or does not hash
    to its name.
    """
    root = Path(directory)
    if not root.exists():
        raise SnapshotDirError(f"{root} does not exist")
    if not root.is_dir():
        raise SnapshotDirError(f"{root} is not a directory: a snapshot is a directory as "
                               "`dfx canister snapshot download --dir` writes it")
    meta_path = root / METADATA_FILE
    if not meta_path.is_file():
        raise SnapshotDirError(f"{root} is not a canister snapshot: it has no {METADATA_FILE} "
                               "(download one with `dfx canister snapshot download <canister> <id> --dir DIR`)")
    if (root / DOWNLOAD_PROGRESS).exists():
        raise SnapshotDirError(f"the download into {root} did not finish ({DOWNLOAD_PROGRESS} is there); resume it "
                               "with `icp canister snapshot download ... --resume`")
    raw = _read_small(meta_path)
    meta = parse_metadata(raw, str(meta_path))
    module_path = root / MODULE_FILE
    module_size = _file_size(module_path, "Wasm module")
    if module_size is None:
        raise SnapshotDirError(f"missing file {module_path}: metadata.json says the module has "
                               f"{meta.wasm_module_size:,} bytes")
    if module_size != meta.wasm_module_size:
        raise SnapshotDirError(f"{module_path} has {module_size:,} bytes but metadata.json says the module has "
                               f"{meta.wasm_module_size:,}")
    heap_path = _check_memory(root, HEAP_FILE, meta.wasm_memory_size, "Wasm memory (heap)", required=False)
    stable_path = _check_memory(root, STABLE_FILE, meta.stable_memory_size, "stable memory", required=False)
    chunk_paths: dict[bytes, Path] = {}
    for digest in meta.wasm_chunk_store:
        path = root / CHUNK_DIR / chunk_file_name(digest)
        size = _file_size(path, "Wasm chunk")
        if size is None:
            raise SnapshotDirError(f"missing file {path}: metadata.json lists the chunk {digest.hex()}")
        if size > MAX_CHUNK_BYTES:
            raise SnapshotDirError(f"{path} has {size:,} bytes; a chunk of the Wasm chunk store is at most 1 MiB")
        if hashlib.sha256(_read_small(path)).digest() != digest:
            raise SnapshotDirError(f"{path} does not hash to its name (sha256): the chunk is corrupt")
        chunk_paths[digest] = path
    warnings: list[str] = []
    chunk_dir = root / CHUNK_DIR
    if chunk_dir.is_dir():
        listed = {chunk_file_name(d) for d in chunk_paths}
        extra = sorted(p.name for p in chunk_dir.iterdir() if p.name not in listed)
        if extra:
            warnings.append(f"{len(extra)} file(s) in {chunk_dir} are not listed in metadata.json and were ignored "
                            f"({', '.join(extra[:3])}{', ...' if len(extra) > 3 else ''})")
    return SnapshotDir(path=root, metadata=meta, metadata_sha256=hashlib.sha256(raw).hexdigest(),
                       module_path=module_path, heap_path=heap_path, stable_path=stable_path,
                       chunk_paths=chunk_paths, warnings=warnings)


#: Whether to ask the kernel for a file's data extents (a switch for testing the fallback).
USE_SEEK_DATA = hasattr(os, "SEEK_DATA") and hasattr(os, "SEEK_HOLE")


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` byte ranges of ``fd`` that may hold data: the kernel's data extents
    (``SEEK_DATA``/``SEEK_HOLE``), or the whole file where the platform or file system cannot tell."""
    if not USE_SEEK_DATA:
        yield 0, size
        return
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # nothing but holes from here on
                return
            yield pos, size  # the file system does not report extents: read the rest
            return
        if start >= size:
            return
        try:
            end = os.lseek(fd, start, os.SEEK_HOLE)
        except OSError:
            end = size
        yield start, min(end, size)
        pos = end


def memory_pages(path: Path | None, size: int, on_bytes: ProgressFn | None = None) -> Iterator[tuple[int, bytes]]:
    """``(page_no, data)`` for every non-zero 64 KiB page of a memory file of ``size`` bytes, in page
    order, reading at most 1 MiB at a time; ``on_bytes(n)`` reports progress over the whole size,
    holes included. SnapshotDirError if the file turns out shorter than ``size``."""
    if path is None or size == 0:
        if on_bytes is not None and size:
            on_bytes(size)
        return
    covered = 0

    def advance(to: int) -> None:
        nonlocal covered
        if on_bytes is not None and to > covered:
            on_bytes(to - covered)
        covered = max(covered, to)

    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SnapshotDirError(f"cannot read {path}: {exc.strerror}") from None
    try:
        next_page = 0
        for start, end in data_extents(fd, size):
            first = max(start // WASM_PAGE, next_page)
            last = -(-end // WASM_PAGE)  # pages overlapping [start, end)
            page = first
            while page < last:
                count = min(READ_PAGES, last - page)
                offset = page * WASM_PAGE
                data = os.pread(fd, count * WASM_PAGE, offset)
                if len(data) < count * WASM_PAGE:
                    raise SnapshotDirError(f"{path} is shorter than the {size:,} bytes metadata.json states "
                                           f"(it ends at {offset + len(data):,}): truncated while it was read")
                for i in range(count):
                    chunk = data[i * WASM_PAGE:(i + 1) * WASM_PAGE]
                    if chunk != _ZERO_PAGE:
                        yield page + i, chunk
                page += count
                advance(page * WASM_PAGE)
            next_page = max(next_page, last)
        if os.fstat(fd).st_size < size:
            raise SnapshotDirError(f"{path} is shorter than the {size:,} bytes metadata.json states: "
                                   "truncated while it was read")
    finally:
        os.close(fd)
    advance(size)
