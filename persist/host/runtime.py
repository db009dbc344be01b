"""The process-wide wasmtime engine and its caches of compiled canister and helper modules.

Compiled modules are kept twice: in this process (by module hash) and on disk for the next
process (``persist.host.module_cache``: a per-user directory, keyed by the exact bytes compiled,
the engine configuration below and the wasmtime library)."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import wasmtime

from persist.errors import InvalidModuleError
from persist.host.instrument import instrument
from persist.host.module import ModuleInfo, parse_module
from persist.host.module_cache import ModuleCache
from persist.host.stable_helper import helper_wat
from persist.host.validation import check_module

__all__ = ["ENGINE_SETTINGS", "Runtime", "engine_identity"]

# Every wasmtime.Config attribute graphcopy sets; they are part of the disk cache's key, so a
# change here never loads code compiled under other settings.
ENGINE_SETTINGS: dict[str, bool] = {
    "consume_fuel": True,
    "wasm_memory64": True,
    "wasm_multi_memory": True,
    "wasm_bulk_memory": True,
}
CACHE_FORMAT = "1"


def _wasmtime_library() -> str:
    """Which wasmtime library this process loaded: its native library's path, size and mtime
    (a new wasmtime release is a new file; wasmtime itself also refuses code of another version)."""
    package = Path(wasmtime.__file__).parent
    for lib in sorted(package.glob("*/*wasmtime*")):
        try:
            st = lib.stat()
        except OSError:
            continue
        return f"{lib}:{st.st_size}:{st.st_mtime_ns}"
    return str(package)


def engine_identity(settings: dict[str, bool] | None = None) -> str:
    """The disk cache's name for an engine: format, wasmtime library, machine and settings."""
    settings = ENGINE_SETTINGS if settings is None else settings
    raw = json.dumps([CACHE_FORMAT, _wasmtime_library(), platform.machine(), sorted(settings.items())])
    return hashlib.sha256(raw.encode()).hexdigest()


class Runtime:
    """Process-wide wasmtime engine and caches of compiled canister and helper modules.

    ``cache``: the disk cache of compiled modules (default: the user's, as the environment names it,
    see ``persist.host.module_cache``)."""

    def __init__(self, cache: ModuleCache | None = None) -> None:
        cfg = wasmtime.Config()
        for name, value in ENGINE_SETTINGS.items():
            setattr(cfg, name, value)
        self.engine = wasmtime.Engine(cfg)
        self.cache = cache if cache is not None else ModuleCache.from_env()
        self._engine_id = engine_identity()
        self._modules: dict[str, tuple[ModuleInfo, wasmtime.Module]] = {}
        self._validated: set[str] = set()
        self._helpers: dict[bool, wasmtime.Module] = {}

    def load_module(self, wasm: bytes, *, validate: bool = True) -> tuple[ModuleInfo, wasmtime.Module]:
        """Parse, check, instrument and compile a canister module (cached by hash).

        ``validate``: apply the replica's install-time validation first (``persist.host.validation``);
        False for a module a canister runs already (installed by an older graphcopy, it keeps
        running, as on the IC, where validation is done at install only)."""
        info = parse_module(wasm)
        if validate and info.hash not in self._validated:
            check_module(wasm, info)  # before anything is compiled or allocated
            self._validated.add(info.hash)
        cached = self._modules.get(info.hash)
        if cached is not None:
            return cached
        module = self._compile(instrument(wasm, info), invalid="not a valid Wasm module")
        self._modules[info.hash] = (info, module)
        return info, module

    def helper_module(self, heap_is_64: bool) -> wasmtime.Module:
        """The compiled stable-memory helper for a 64-bit (moc) or 32-bit heap."""
        mod = self._helpers.get(heap_is_64)
        if mod is None:
            mod = self._helpers[heap_is_64] = self._compile(helper_wat(heap_is_64), invalid="stable helper")
        return mod

    def _compile(self, code: bytes | str, *, invalid: str) -> wasmtime.Module:
        """``code`` compiled, from the disk cache when it holds a trustworthy copy."""
        key = self.cache.key(self._engine_id, code)
        module = self.cache.load(self.engine, key)
        if module is not None:
            return module
        try:
            module = wasmtime.Module(self.engine, code)
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid module"
            raise InvalidModuleError(f"{invalid}: {first}") from exc
        self.cache.save(key, module)
        return module
