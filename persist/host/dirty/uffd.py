"""Dirty tracking by the kernel: userfaultfd asynchronous write-protect plus ``PAGEMAP_SCAN``.

The heap's mapping is registered with a userfaultfd in write-protect mode, with the features
``UFFD_FEATURE_WP_ASYNC`` (a write to a protected page is resolved by the kernel itself: no
message, no signal, the writer never stops; the page just loses its protection) and
``UFFD_FEATURE_WP_UNPOPULATED`` (pages never touched are protected too, by markers). Once per
commit one ``PAGEMAP_SCAN`` ioctl on ``/proc/self/pagemap`` lists the pages that lost their
protection (category ``PAGE_IS_WRITTEN``) and, with ``PM_SCAN_WP_MATCHING``, protects them again in
the same walk. Wasm stores, host ``memmove``s and kernel writes into the heap all go through the
same page tables, so every writer is covered. Linux 6.7 or later (``PAGEMAP_SCAN``); the first
write to a protected 4 KiB page costs about a microsecond, a scan is proportional to the pages
mapped, not to their bytes.

There is no maintained Python binding of either facility (the package lists graphcopy searches
name none), so this module calls them through ``ctypes``. Layouts and constants are those of the
Linux uapi headers ``include/uapi/linux/userfaultfd.h`` and ``include/uapi/linux/fs.h``
(``PAGEMAP_SCAN``, ``struct pm_scan_arg``, ``struct page_region``); the ioctl numbers follow the
generic ``_IOC`` encoding used by x86-64 and arm64, the two architectures this module knows the
``userfaultfd`` system call number of (elsewhere :func:`unavailable_reason` says why not).

One userfaultfd and one pagemap descriptor serve the whole process (reopened in a forked child,
whose mappings lose their registration); each heap has a :class:`UffdTracker` that remembers what
part of its mapping it registered and protected. A Wasm memory may move when it grows past its
reservation (wasmtime reserves 4 GiB by default): the tracker then registers the new mapping,
where every page reads as written until the next scan protects it (the commit after a move writes
the whole heap once, which is correct, merely slow).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
from collections.abc import Iterable

__all__ = ["UffdTracker", "unavailable_reason"]

WASM_PAGE = 65536

# include/uapi/linux/userfaultfd.h
_UFFD_API = 0xAA
_UFFD_USER_MODE_ONLY = 1
_UFFD_FEATURE_WP_UNPOPULATED = 1 << 13
_UFFD_FEATURE_WP_ASYNC = 1 << 15
_UFFDIO_REGISTER_MODE_WP = 1 << 1
_UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0
_UFFDIO = 0xAA
_NR_UFFDIO_REGISTER = 0x00
_NR_UFFDIO_WRITEPROTECT = 0x06
_NR_UFFDIO_API = 0x3F

# include/uapi/linux/fs.h
_PAGEMAP_IOCTL_MAGIC = ord("f")
_NR_PAGEMAP_SCAN = 16
_PAGE_IS_WRITTEN = 1 << 1
_PM_SCAN_WP_MATCHING = 1 << 0
_PM_SCAN_CHECK_WPASYNC = 1 << 1

_SYS_USERFAULTFD = {"x86_64": 323, "amd64": 323, "aarch64": 282, "arm64": 282}


class _UffdioApi(ctypes.Structure):
    _fields_ = [("api", ctypes.c_uint64), ("features", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class _UffdioRange(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _UffdioRegister(ctypes.Structure):
    _fields_ = [("range", _UffdioRange), ("mode", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


class _UffdioWriteprotect(ctypes.Structure):
    _fields_ = [("range", _UffdioRange), ("mode", ctypes.c_uint64)]


class _PageRegion(ctypes.Structure):
    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64)]


class _PmScanArg(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "size", "flags", "start", "end", "walk_end", "vec", "vec_len", "max_pages",
        "category_inverted", "category_mask", "category_anyof_mask", "return_mask")]


def _iowr(kind: int, nr: int, size: int) -> int:
    # _IOC(_IOC_READ | _IOC_WRITE, type, nr, size) in the generic encoding (asm-generic/ioctl.h)
    return (3 << 30) | (size << 16) | (kind << 8) | nr


_UFFDIO_API = _iowr(_UFFDIO, _NR_UFFDIO_API, ctypes.sizeof(_UffdioApi))
_UFFDIO_REGISTER = _iowr(_UFFDIO, _NR_UFFDIO_REGISTER, ctypes.sizeof(_UffdioRegister))
_UFFDIO_WRITEPROTECT = _iowr(_UFFDIO, _NR_UFFDIO_WRITEPROTECT, ctypes.sizeof(_UffdioWriteprotect))
_PAGEMAP_SCAN = _iowr(_PAGEMAP_IOCTL_MAGIC, _NR_PAGEMAP_SCAN, ctypes.sizeof(_PmScanArg))

_SCAN_VEC_LEN = 512  # regions per ioctl; the scan resumes from walk_end when they run out


class _KernelError(OSError):
    """A userfaultfd or pagemap call failed (the text says which)."""


class _Kernel:
    """The process's userfaultfd and pagemap descriptors (opened lazily, reopened after fork)."""

    def __init__(self) -> None:
        self.pid = -1
        self.uffd = -1
        self.pagemap = -1
        self.libc: ctypes.CDLL | None = None
        self.vec = (_PageRegion * _SCAN_VEC_LEN)()

    def _lib(self) -> ctypes.CDLL:
        if self.libc is None:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.syscall.restype = ctypes.c_long
            libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
            libc.ioctl.restype = ctypes.c_int
            self.libc = libc
        return self.libc

    def ensure(self) -> None:
        """Open the descriptors in this process (a forked child gets its own)."""
        if self.pid == os.getpid():
            return
        nr = _SYS_USERFAULTFD.get(platform.machine().lower())
        if nr is None:
            raise _KernelError(errno.ENOSYS, f"no userfaultfd system call number known for {platform.machine()}")
        libc = self._lib()
        flags = os.O_CLOEXEC | os.O_NONBLOCK
        # User-mode-only faults need no privilege (vm.unprivileged_userfaultfd=0 allows them);
        # kernels before 5.11 do not know the flag.
        fd = libc.syscall(nr, flags | _UFFD_USER_MODE_ONLY)
        if fd < 0 and ctypes.get_errno() == errno.EINVAL:
            fd = libc.syscall(nr, flags)
        if fd < 0:
            err = ctypes.get_errno()
            raise _KernelError(err, f"userfaultfd: {os.strerror(err)}")
        try:
            api = _UffdioApi(_UFFD_API, _UFFD_FEATURE_WP_ASYNC | _UFFD_FEATURE_WP_UNPOPULATED, 0)
            if libc.ioctl(int(fd), _UFFDIO_API, ctypes.addressof(api)) != 0:
                err = ctypes.get_errno()
                raise _KernelError(err, "UFFDIO_API with UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED: "
                                        f"{os.strerror(err)} (Linux 6.7 or later needed)")
            pagemap = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except BaseException:
            os.close(int(fd))
            raise
        # A forked child inherits the parent's descriptors, which still speak about the parent's
        # memory; they are left to the parent (closing them here would not affect it, but the
        # numbers may be reused by the child for other files meanwhile).
        self.uffd, self.pagemap, self.pid = int(fd), pagemap, os.getpid()

    def ioctl(self, fd: int, request: int, arg: ctypes.Structure, what: str) -> int:
        libc = self._lib()
        while True:
            res = libc.ioctl(fd, request, ctypes.addressof(arg))
            if res >= 0:
                return int(res)
            err = ctypes.get_errno()
            if err not in (errno.EINTR, errno.EAGAIN):
                raise _KernelError(err, f"{what}: {os.strerror(err)}")

    def register(self, start: int, length: int) -> None:
        reg = _UffdioRegister(_UffdioRange(start, length), _UFFDIO_REGISTER_MODE_WP, 0)
        self.ioctl(self.uffd, _UFFDIO_REGISTER, reg, "UFFDIO_REGISTER")

    def protect(self, start: int, length: int) -> None:
        if length > 0:
            wp = _UffdioWriteprotect(_UffdioRange(start, length), _UFFDIO_WRITEPROTECT_MODE_WP)
            self.ioctl(self.uffd, _UFFDIO_WRITEPROTECT, wp, "UFFDIO_WRITEPROTECT")

    def harvest(self, start: int, end: int) -> list[tuple[int, int]]:
        """``[start, end)`` address ranges written since they were protected; protects them again."""
        out: list[tuple[int, int]] = []
        vec = self.vec
        while start < end:
            arg = _PmScanArg(size=ctypes.sizeof(_PmScanArg), flags=_PM_SCAN_WP_MATCHING | _PM_SCAN_CHECK_WPASYNC,
                             start=start, end=end, vec=ctypes.addressof(vec), vec_len=_SCAN_VEC_LEN,
                             category_mask=_PAGE_IS_WRITTEN, return_mask=_PAGE_IS_WRITTEN)
            n = self.ioctl(self.pagemap, _PAGEMAP_SCAN, arg, "PAGEMAP_SCAN")
            out.extend((vec[i].start, vec[i].end) for i in range(n))
            if arg.walk_end <= start:  # no progress: cannot happen on a correct kernel
                raise _KernelError(errno.EIO, "PAGEMAP_SCAN made no progress")
            start = arg.walk_end
        return out


_KERNEL = _Kernel()
_PROBED: dict[int, str | None] = {}


def _self_test() -> None:
    """Register a scratch mapping, protect it, write one page, and expect exactly that page back."""
    size = 4 * mmap.PAGESIZE
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # as wasmtime maps memories
    try:
        view = (ctypes.c_char * size).from_buffer(buf)
        addr = ctypes.addressof(view)
        try:
            _KERNEL.register(addr, size)
            _KERNEL.protect(addr, size)
            view[2 * mmap.PAGESIZE] = b"x"
            got = _KERNEL.harvest(addr, addr + size)
        finally:
            del view
        want = [(addr + 2 * mmap.PAGESIZE, addr + 3 * mmap.PAGESIZE)]
        if got != want:
            raise _KernelError(errno.EIO, f"PAGEMAP_SCAN reported {got!r} for one written page")
    finally:
        buf.close()


def unavailable_reason() -> str | None:
    """None if this process can track writes with userfaultfd + PAGEMAP_SCAN, else why not (probed
    once per process: the system call, the features, and a scan of a scratch mapping)."""
    pid = os.getpid()
    if pid not in _PROBED:
        try:
            _KERNEL.ensure()
            _self_test()
            _PROBED[pid] = None
        except OSError as exc:
            _PROBED[pid] = str(exc.strerror or exc)
    return _PROBED[pid]


class UffdTracker:
    """Which 64 KiB pages of one Wasm memory were written, as the kernel saw it."""

    mechanism = "uffd"

    def __init__(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise OSError(errno.ENOTSUP, reason)
        self._pid = os.getpid()
        self._base = 0
        self._registered = 0  # bytes of the mapping registered, from its base
        self._protected = 0  # bytes protected at least once since the mapping was registered

    def _ensure(self, base: int, length: int) -> None:
        if self._pid != os.getpid():  # a forked child: its mappings lost their registration
            _KERNEL.ensure()
            self._pid, self._base = os.getpid(), 0
        if base != self._base:  # the memory moved (or is new): register its mapping afresh
            self._base, self._registered, self._protected = base, 0, 0
        if length > self._registered:
            _KERNEL.register(base + self._registered, length - self._registered)
            self._registered = length

    def baseline(self, base: int, length: int) -> None:
        """Every page's current contents are committed: protect the whole memory."""
        if length == 0:
            return
        self._ensure(base, length)
        _KERNEL.protect(base, length)
        self._protected = length

    def written(self, base: int, length: int, pages: int) -> set[int]:
        """Pages below ``pages`` written since the last scan (or protection), protected again."""
        if length == 0 or pages == 0:
            return set()
        self._ensure(base, length)
        out: set[int] = set()
        for start, end in _KERNEL.harvest(base, base + min(length, pages * WASM_PAGE)):
            out.update(range((start - base) // WASM_PAGE, (end - base - 1) // WASM_PAGE + 1))
        return out

    def committed(self, base: int, length: int, pages: Iterable[int]) -> None:
        """After a commit: the scan protected what was written; protect what the heap grew by."""
        if length == 0:
            return
        self._ensure(base, length)
        if length > self._protected:
            _KERNEL.protect(base + self._protected, length - self._protected)
            self._protected = length

    def restored(self, base: int, length: int, pages: Iterable[int]) -> None:
        """Putting committed bytes back wrote these pages: protect them again."""
        if length == 0:
            return
        self._ensure(base, length)
        for first, count in _runs(pages):
            _KERNEL.protect(base + first * WASM_PAGE, count * WASM_PAGE)


def _runs(pages: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted pages as (first, count) runs of consecutive pages."""
    out: list[tuple[int, int]] = []
    for p in sorted(set(pages)):
        if out and out[-1][0] + out[-1][1] == p:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((p, 1))
    return out
