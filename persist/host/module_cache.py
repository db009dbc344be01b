"""Compiled modules kept on disk between processes, in a per-user directory only graphcopy writes.

Cranelift takes a quarter to half a second to compile a Motoko canister; wasmtime can serialize
the compiled code and load it again in about a millisecond. ``Module.deserialize`` trusts its
input completely: loading a tampered artifact runs the attacker's machine code. So the cache lives
in a directory of the user's own (``$GRAPHCOPY_CACHE_DIR/modules``, else
``$XDG_CACHE_HOME/graphcopy/modules``, else ``~/.cache/graphcopy/modules``), created 0700 and never
in the store (which other users and machines may write). An entry is used only if:

* the directory is owned by this user and writable by nobody else;
* the file is a regular file (not a symlink), owned by this user, writable by nobody else;
* it starts with this format's magic, and the sha256 of its payload matches the one it records
  (a truncated or corrupt file never reaches wasmtime);
* wasmtime accepts it (it refuses code built by another wasmtime version or engine configuration).

Anything else is ignored and the module is compiled again (and the entry rewritten). The key is the
sha256 of the exact bytes compiled (the instrumented module, so an instrumentation change is a new
key), the engine's configuration and the identity of the wasmtime library. Files are written to a
temporary name and renamed, so a reader sees a whole entry or none. The directory is bounded
(``GRAPHCOPY_CACHE_MAX_MB``, default 512): after a write the least recently used entries go.
``GRAPHCOPY_CACHE_DIR=`` (set and empty) turns the cache off; ``graphcopy cache clear`` empties it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

import wasmtime

__all__ = ["CacheInfo", "ModuleCache", "cache_root", "clear_module_cache", "module_cache_info"]

MAGIC = b"graphcopy-module-cache 1\n"
DIGEST_LEN = 32
SUFFIX = ".cwasm"
TMP_PREFIX = ".tmp-"
DEFAULT_MAX_MB = 512
STALE_TMP_S = 3600.0  # a temporary file older than this was left by a killed writer


@dataclasses.dataclass
class CacheInfo:
    """What ``graphcopy cache info`` shows: where the cache is, whether it is used, what it holds."""

    directory: str | None
    enabled: bool
    reason: str | None
    entries: int
    bytes: int
    max_bytes: int


def cache_root(env: dict[str, str] | None = None) -> Path | None:
    """graphcopy's per-user cache directory, from the environment (None: caching is off).

    ``GRAPHCOPY_CACHE_DIR`` if set (empty: off), else ``$XDG_CACHE_HOME/graphcopy`` (an absolute
    XDG_CACHE_HOME only, as the XDG spec says), else ``~/.cache/graphcopy`` (None without a home)."""
    env = dict(os.environ) if env is None else env
    if "GRAPHCOPY_CACHE_DIR" in env:
        value = env["GRAPHCOPY_CACHE_DIR"].strip()
        return Path(value).expanduser() if value else None
    xdg = env.get("XDG_CACHE_HOME", "").strip()
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "graphcopy"
    home = env.get("HOME", "").strip()
    if not home:
        return None
    return Path(home) / ".cache" / "graphcopy"


def _max_bytes(env: dict[str, str]) -> int:
    raw = env.get("GRAPHCOPY_CACHE_MAX_MB", "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return max(0, int(mb * 1024 * 1024))


def _private_problem(st: os.stat_result, what: str) -> str | None:
    """Why a file or directory with this stat may not be trusted (None: it may)."""
    if st.st_uid != os.geteuid():
        return f"{what} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{what} is writable by other users (mode {stat.S_IMODE(st.st_mode):o})"
    return None


class ModuleCache:
    """Serialized compiled modules in one private directory (``directory`` None: a cache that
    never hits and never writes)."""

    def __init__(self, directory: Path | None, *, max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._ready: bool | None = None
        self.reason: str | None = None if directory is not None else "turned off (GRAPHCOPY_CACHE_DIR is empty)"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ModuleCache:
        """The cache the environment names (see :func:`cache_root`)."""
        env = dict(os.environ) if env is None else env
        root = cache_root(env)
        cache = cls(root / "modules" if root is not None else None, max_bytes=_max_bytes(env))
        if root is None and "GRAPHCOPY_CACHE_DIR" not in env:
            cache.reason = "no home directory (set GRAPHCOPY_CACHE_DIR)"
        return cache

    @staticmethod
    def key(engine_id: str, code: bytes | str) -> str:
        """The entry name for ``code`` (module bytes or WAT text) compiled by the engine ``engine_id``."""
        data = code.encode("utf-8") if isinstance(code, str) else code
        h = hashlib.sha256(engine_id.encode("utf-8") + b"\0")
        h.update(data)
        return h.hexdigest()

    def _usable(self) -> bool:
        """Create the directory (0700) on first use and check it is this user's alone."""
        if self._ready is not None:
            return self._ready
        self._ready = False
        if self.directory is None:
            return False
        try:
            # graphcopy's own directory is private too; the ones above it (~/.cache) are the user's
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
            st = os.stat(self.directory)
        except OSError as exc:
            self.reason = f"cannot create {self.directory}: {exc.strerror}"
            return False
        if not stat.S_ISDIR(st.st_mode):
            self.reason = f"{self.directory} is not a directory"
            return False
        problem = _private_problem(st, str(self.directory))
        if problem is not None and st.st_uid == os.geteuid():
            try:  # our own directory with loose permissions: make it private
                os.chmod(self.directory, 0o700)
                problem = _private_problem(os.stat(self.directory), str(self.directory))
            except OSError:
                pass
        if problem is not None:
            self.reason = problem
            return False
        self._ready = True
        return True

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / (key + SUFFIX)

    def read(self, key: str) -> bytes | None:
        """The serialized module of ``key`` if a trustworthy, intact entry exists (else None)."""
        if not self._usable():
            return None
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None  # absent, or a symlink (ELOOP)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or _private_problem(st, "entry") is not None:
                return None
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
        except OSError:
            return None
        finally:
            os.close(fd)
        head = len(MAGIC) + DIGEST_LEN
        if len(data) <= head or not data.startswith(MAGIC):
            return None
        payload = memoryview(data)[head:]
        if hashlib.sha256(payload).digest() != data[len(MAGIC):head]:
            return None
        try:
            os.utime(path)  # recently used: evicted last
        except OSError:
            pass
        return bytes(payload)

    def load(self, engine: wasmtime.Engine, key: str) -> wasmtime.Module | None:
        """The compiled module of ``key``, deserialized into ``engine`` (None: compile it)."""
        payload = self.read(key)
        if payload is None:
            return None
        try:
            return wasmtime.Module.deserialize(engine, payload)
        except wasmtime.WasmtimeError:
            return None  # another wasmtime or engine configuration: rebuilt and overwritten

    def save(self, key: str, module: wasmtime.Module) -> None:
        """Write ``module`` under ``key`` (atomically; failures only mean the next process compiles)."""
        if not self._usable() or self.max_bytes <= 0:
            return
        try:
            payload = bytes(module.serialize())
        except wasmtime.WasmtimeError:
            return
        if len(payload) + len(MAGIC) + DIGEST_LEN > self.max_bytes:
            return
        assert self.directory is not None
        try:
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=self.directory)  # 0600, O_EXCL
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, self._path(key))
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return
        self.evict()

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry; stale temporary files are removed on the way."""
        assert self.directory is not None
        found: list[tuple[float, int, Path]] = []
        now = time.time()
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            path = self.directory / name
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if name.startswith(TMP_PREFIX):
                if now - st.st_mtime > STALE_TMP_S:
                    _unlink(path)
                continue
            if name.endswith(SUFFIX) and stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime, st.st_size, path))
        return found

    def evict(self) -> None:
        """Remove the least recently used entries until the directory is within ``max_bytes``."""
        if not self._usable():
            return
        entries = sorted(self._entries())
        total = sum(size for _, size, _ in entries)
        for _, size, path in entries:
            if total <= self.max_bytes:
                break
            if _unlink(path):
                total -= size

    def info(self) -> CacheInfo:
        """Where the cache is and what it holds."""
        if not self._usable():
            return CacheInfo(str(self.directory) if self.directory else None, False, self.reason, 0, 0,
                             self.max_bytes)
        entries = self._entries()
        return CacheInfo(str(self.directory), True, None, len(entries), sum(s for _, s, _ in entries),
                         self.max_bytes)

    def clear(self) -> int:
        """Remove every entry (and temporary file); the number of entries removed."""
        if not self._usable():
            return 0
        assert self.directory is not None
        removed = 0
        for name in os.listdir(self.directory):
            if (name.endswith(SUFFIX) or name.startswith(TMP_PREFIX)) and _unlink(self.directory / name):
                removed += name.endswith(SUFFIX)
        return removed


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def module_cache_info() -> CacheInfo:
    """The compiled-module cache of this user, as the environment names it."""
    return ModuleCache.from_env().info()


def clear_module_cache() -> int:
    """Empty this user's compiled-module cache; how many entries were removed."""
    return ModuleCache.from_env().clear()
