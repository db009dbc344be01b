"""A small, bounded cache of committed heap page images, for undoing messages without SQL.

The heap has no committed copy; a trapped message or a query is undone by putting back only the
pages it wrote, from here when the page was committed (or put back) recently, else from SQL. The
pages a canister writes are mostly the same few from message to message (its allocation area, its
counters), so a few MiB of recently committed pages serve nearly every undo. Least recently used
images go first once the cache holds more than its capacity.
"""

from __future__ import annotations

import os
from collections import OrderedDict

__all__ = ["CACHE_ENV", "DEFAULT_CAPACITY", "ZERO", "PageImages", "default_capacity"]

#: The cached image of an all-zero page (no bytes kept).
ZERO = b""
DEFAULT_CAPACITY = 32 * 1024 * 1024
CACHE_ENV = "GRAPHCOPY_PAGE_CACHE_MIB"
_PAGE = 65536


def default_capacity() -> int:
    """Bytes of page images a heap keeps: ``GRAPHCOPY_PAGE_CACHE_MIB`` MiB if set, else 32 MiB."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if raw.isdigit():
        return int(raw) * 1024 * 1024
    return DEFAULT_CAPACITY


class PageImages:
    """page number -> committed bytes of that page (:data:`ZERO` for an all-zero page)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._images: OrderedDict[int, bytes] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._images)

    @property
    def pages_capacity(self) -> int:
        return self.capacity // _PAGE

    def get(self, page: int) -> bytes | None:
        """The committed image, or None if it is not cached."""
        img = self._images.get(page)
        if img is not None:
            self._images.move_to_end(page)
        return img

    def put(self, page: int, image: bytes) -> None:
        """Keep ``image`` (exactly one page, or :data:`ZERO`) as the page's committed contents."""
        old = self._images.pop(page, None)
        if old is not None:
            self._bytes -= len(old)
        if self.capacity <= 0:
            return
        self._images[page] = image
        self._bytes += len(image)
        while self._bytes > self.capacity and self._images:
            _, dropped = self._images.popitem(last=False)
            self._bytes -= len(dropped)

    def forget(self, page: int) -> None:
        """The page's committed contents changed and are not known here."""
        old = self._images.pop(page, None)
        if old is not None:
            self._bytes -= len(old)

    def clear(self) -> None:
        self._images.clear()
        self._bytes = 0
