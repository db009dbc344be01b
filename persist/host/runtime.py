"""The process-wide wasmtime engine and its caches of compiled canister and helper modules."""

from __future__ import annotations

import wasmtime

from persist.errors import InvalidModuleError
from persist.host.instrument import instrument
from persist.host.module import ModuleInfo, parse_module
from persist.host.stable_helper import helper_wat
from persist.host.validation import check_module

__all__ = ["Runtime"]


class Runtime:
    """Process-wide wasmtime engine and caches of compiled canister and helper modules."""

    def __init__(self) -> None:
        cfg = wasmtime.Config()
        cfg.consume_fuel = True
        cfg.wasm_memory64 = True
        cfg.wasm_multi_memory = True
        cfg.wasm_bulk_memory = True
        self.engine = wasmtime.Engine(cfg)
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
        try:
            module = wasmtime.Module(self.engine, instrument(wasm, info))
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid module"
            raise InvalidModuleError(f"not a valid Wasm module: {first}") from exc
        self._modules[info.hash] = (info, module)
        return info, module

    def helper_module(self, heap_is_64: bool) -> wasmtime.Module:
        """The compiled stable-memory helper for a 64-bit (moc) or 32-bit heap."""
        mod = self._helpers.get(heap_is_64)
        if mod is None:
            mod = self._helpers[heap_is_64] = wasmtime.Module(self.engine, helper_wat(heap_is_64))
        return mod
