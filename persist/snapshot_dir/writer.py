"""Writing a snapshot directory in the layout ``dfx canister snapshot upload --dir`` reads.

``SnapshotDirWriter`` is used as a context manager over a directory that must be new or empty (as
dfx requires for a download). Memories are written from ``(page_no, data)`` pages: only stored
(non-zero) pages are written, at their offset, and the file is then extended to its full size, so
the zero pages become holes of a sparse file that read back as zeros. ``stable_memory.bin`` is not
written when the stable memory is empty (dfx leaves it out too). ``metadata.json`` is written last
(to a temporary name, then renamed): a directory without it is not a snapshot, so an export that
fails half-way can never be mistaken for a complete one, and on failure everything the writer
created is removed again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from persist.errors import SnapshotDirError
from persist.snapshot_dir.format import (
    CHUNK_DIR,
    HEAP_FILE,
    METADATA_FILE,
    MODULE_FILE,
    STABLE_FILE,
    WASM_PAGE,
    SnapshotMetadata,
    chunk_file_name,
)

__all__ = ["SnapshotDirWriter"]

ProgressFn = Callable[[int], None]


class SnapshotDirWriter:
    """Writes one snapshot directory; nothing of it stays behind if the ``with`` block fails."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory)
        self.created_dir = False
        self.files: list[Path] = []
        self.sizes: dict[str, int] = {}

    def __enter__(self) -> SnapshotDirWriter:
        if self.path.exists():
            if not self.path.is_dir():
                raise SnapshotDirError(f"{self.path} exists and is not a directory")
            if any(self.path.iterdir()):
                raise SnapshotDirError(f"{self.path} is not empty; export into a new or empty directory")
        else:
            try:
                self.path.mkdir(parents=True)
            except OSError as exc:
                raise SnapshotDirError(f"cannot create {self.path}: {exc.strerror}") from None
            self.created_dir = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            return
        for f in reversed(self.files):
            f.unlink(missing_ok=True)
        chunk_dir = self.path / CHUNK_DIR
        if chunk_dir.is_dir() and not any(chunk_dir.iterdir()):
            chunk_dir.rmdir()
        if self.created_dir:
            shutil.rmtree(self.path, ignore_errors=True)

    def _open(self, name: str) -> int:
        path = self.path / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            raise SnapshotDirError(f"cannot write {path}: {exc.strerror}") from None
        self.files.append(path)
        return fd

    def _write_all(self, name: str, data: bytes) -> None:
        fd = self._open(name)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.sizes[name] = len(data)

    def write_module(self, wasm: bytes) -> None:
        """``wasm_module.bin``: the module exactly as stored (gzipped or not)."""
        self._write_all(MODULE_FILE, wasm)

    def write_memory(self, stable: bool, size: int, pages: Iterable[tuple[int, bytes]],
                     on_bytes: ProgressFn | None = None) -> int:
        """``wasm_memory.bin`` (``stable=False``) or ``stable_memory.bin``: ``size`` bytes, the given
        non-zero pages at their offsets, zeros (holes) elsewhere. Returns the pages written."""
        name = STABLE_FILE if stable else HEAP_FILE
        if stable and size == 0:
            return 0
        fd = self._open(name)
        written = 0
        covered = 0
        try:
            for page_no, data in pages:
                offset = page_no * WASM_PAGE
                if len(data) != WASM_PAGE or offset + WASM_PAGE > size:
                    raise SnapshotDirError(f"page {page_no} of {name} does not fit its size of {size:,} bytes")
                view = memoryview(data)
                pos = 0
                while pos < WASM_PAGE:
                    pos += os.pwrite(fd, view[pos:], offset + pos)
                written += 1
                if on_bytes is not None and offset + WASM_PAGE > covered:
                    on_bytes(offset + WASM_PAGE - covered)
                    covered = offset + WASM_PAGE
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)
        if on_bytes is not None and size > covered:
            on_bytes(size - covered)
        self.sizes[name] = size
        return written

    def write_chunk(self, digest: bytes, data: bytes) -> None:
        """``wasm_chunk_store/<hex hash>.bin``."""
        chunk_dir = self.path / CHUNK_DIR
        if not chunk_dir.is_dir():
            chunk_dir.mkdir()
        self._write_all(f"{CHUNK_DIR}/{chunk_file_name(digest)}", data)

    def finish(self, metadata: SnapshotMetadata) -> None:
        """Write ``metadata.json`` last, atomically: from now on the directory is a snapshot."""
        temporary = f".{METADATA_FILE}.partial"
        self._write_all(temporary, metadata.to_json_text().encode("utf-8"))
        os.replace(self.path / temporary, self.path / METADATA_FILE)
        self.files[-1] = self.path / METADATA_FILE
        self.sizes[METADATA_FILE] = self.sizes.pop(temporary)
        dir_fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
