"""Dirty tracking by comparison, where the kernel offers nothing better: per-page digests.

The tracker keeps one 128-bit XXH3 digest per committed 64 KiB page (16 bytes a page: 0.4 MiB for
a 2 GiB heap) instead of a copy of the heap, and finds the written pages by hashing every page
again and comparing. That reads the whole heap once per commit or undo (about 6 GB/s here, see
``bench/messages.py``), so the cost grows with the heap, but the memory does not double. A page
written back to its committed bytes counts as unchanged, which is what the comparison with a copy
did too. XXH3 is not a cryptographic hash: a canister could in principle craft a page whose
digest collides with its committed one and lose that write, which hurts nobody but itself.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable

import xxhash

__all__ = ["DigestTracker"]

WASM_PAGE = 65536
_digest = xxhash.xxh3_128_intdigest
_ZERO_DIGEST = _digest(bytes(WASM_PAGE))


def _view(base: int, length: int) -> memoryview:
    return memoryview((ctypes.c_char * length).from_address(base)).cast("B")


class DigestTracker:
    """Which 64 KiB pages of one memory differ from their committed contents, by digest."""

    mechanism = "compare"

    def __init__(self) -> None:
        self._digests: list[int] = []  # of the committed contents, per page

    def baseline(self, base: int, length: int) -> None:
        """Every page's current contents are committed."""
        mv = _view(base, length) if length else memoryview(b"")
        self._digests = [_digest(mv[p * WASM_PAGE:(p + 1) * WASM_PAGE]) for p in range(length // WASM_PAGE)]

    def written(self, base: int, length: int, pages: int) -> set[int]:
        """Pages below ``pages`` whose contents differ from the committed ones."""
        n = min(pages, len(self._digests), length // WASM_PAGE)
        if n == 0:
            return set()
        mv = _view(base, length)
        d = self._digests
        return {p for p in range(n) if _digest(mv[p * WASM_PAGE:(p + 1) * WASM_PAGE]) != d[p]}

    def committed(self, base: int, length: int, pages: Iterable[int]) -> None:
        """These pages' current contents are committed (and pages beyond the old size)."""
        self._refresh(base, length, pages)

    def restored(self, base: int, length: int, pages: Iterable[int]) -> None:
        """These pages got their committed contents back."""
        self._refresh(base, length, pages)

    def _refresh(self, base: int, length: int, pages: Iterable[int]) -> None:
        n = length // WASM_PAGE
        if n == 0:
            return
        mv = _view(base, length)
        d = self._digests
        old = len(d)
        if n > old:  # grown: every new page's digest (committing a grown heap commits its new pages)
            d.extend(_ZERO_DIGEST for _ in range(n - old))
            pages = [*pages, *range(old, n)]
        for p in set(pages):
            if p < n:
                d[p] = _digest(mv[p * WASM_PAGE:(p + 1) * WASM_PAGE])
