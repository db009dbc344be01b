"""Which dirty-tracking mechanism a heap gets: chosen at run time, or forced by the environment.

``GRAPHCOPY_DIRTY_TRACKING`` unset (or ``auto``): ``uffd`` where this process can use it (probed
once: :func:`persist.host.dirty.uffd.unavailable_reason`), else ``compare``. ``uffd`` forces the
kernel mechanism and is an error where the kernel lacks it; ``compare`` forces the digests. Both
mechanisms answer the same questions (:class:`DirtyTracker`), so the heap does not care which.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from persist.errors import DirtyTrackingError

__all__ = ["ENV", "MECHANISMS", "DirtyTracker", "Mechanism", "mechanism", "new_tracker"]

ENV = "GRAPHCOPY_DIRTY_TRACKING"
MECHANISMS = ("uffd", "compare")

_DETAIL = {
    "uffd": "userfaultfd asynchronous write-protect + one PAGEMAP_SCAN per commit",
    "compare": "per-page XXH3 digests compared at each commit",
}


class DirtyTracker(Protocol):
    """Which 64 KiB pages of one Wasm memory were written since their committed state.

    ``base``/``length`` are the memory's current address and size (fetched anew each call:
    memories may move when they grow); ``pages`` the number of committed pages."""

    mechanism: str

    def baseline(self, base: int, length: int) -> None:
        """Every page's current contents are the committed state."""

    def written(self, base: int, length: int, pages: int) -> set[int]:
        """Pages below ``pages`` written since they were last committed (a superset is allowed)."""

    def committed(self, base: int, length: int, pages: Iterable[int]) -> None:
        """``pages`` (and every page beyond the old size) now hold committed contents."""

    def restored(self, base: int, length: int, pages: Iterable[int]) -> None:
        """``pages`` got their committed contents back."""


@dataclass(frozen=True)
class Mechanism:
    """The mechanism new heaps of this process get, and why."""

    name: str  # "uffd" or "compare"
    forced: bool  # by GRAPHCOPY_DIRTY_TRACKING
    detail: str  # what it does, or why uffd is not used

    def describe(self) -> str:
        how = f"forced by {ENV}" if self.forced else "chosen at run time"
        return f"{self.name} ({self.detail}; {how})"


def mechanism() -> Mechanism:
    """The mechanism a heap created now gets. Raises DirtyTrackingError for a setting this
    process cannot honour (an unknown value, or ``uffd`` on a kernel without it)."""
    from persist.host.dirty.uffd import unavailable_reason

    raw = os.environ.get(ENV, "").strip().lower()
    if raw not in ("", "auto", *MECHANISMS):
        raise DirtyTrackingError(f"{ENV}={raw!r} is not a dirty-tracking mechanism: use uffd, compare or auto")
    if raw == "compare":
        return Mechanism("compare", True, _DETAIL["compare"])
    reason = unavailable_reason()
    if raw == "uffd":
        if reason is not None:
            raise DirtyTrackingError(f"{ENV}=uffd, but this kernel does not offer userfaultfd asynchronous "
                                     f"write-protect with PAGEMAP_SCAN ({reason}); unset it to use compare")
        return Mechanism("uffd", True, _DETAIL["uffd"])
    if reason is None:
        return Mechanism("uffd", False, _DETAIL["uffd"])
    return Mechanism("compare", False, f"{_DETAIL['compare']}; uffd unavailable: {reason}")


def new_tracker() -> DirtyTracker:
    """A tracker of the mechanism :func:`mechanism` names."""
    if mechanism().name == "uffd":
        from persist.host.dirty.uffd import UffdTracker

        return UffdTracker()
    from persist.host.dirty.compare import DigestTracker

    return DigestTracker()
