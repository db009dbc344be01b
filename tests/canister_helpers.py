"""Calling canisters in tests with Candid text, typed by their interface (the management
canister's too), as the CLI does."""

from __future__ import annotations

from typing import Any

from persist import api
from persist.candid import decode_args, encode_args, format_args
from persist.host.module import parse_module
from persist.session import Store


class Canister:
    """Calls with Candid text, typed by the canister's own candid:service section."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        iface = api.interface(store, name)
        assert iface is not None
        self.iface = iface

    def _reply(self, method: str, args: str) -> tuple[bytes, Any]:
        sig = self.iface.methods[method]
        return api.call(self.store, self.name, method, encode_args(args, sig.args)).reply, sig.rets

    def __call__(self, method: str, args: str = "()") -> str:
        """The reply as dfx prints it."""
        reply, rets = self._reply(method, args)
        return format_args(reply, rets)

    def value(self, method: str, args: str = "()") -> Any:
        """The reply's first value, decoded."""
        reply, rets = self._reply(method, args)
        return decode_args(reply, rets)[0]


def init_arg(wasm: bytes, text: str) -> bytes:
    """The init argument ``text`` typed by the module's ``candid:args``."""
    iface = api.module_interface(parse_module(wasm))
    return encode_args(text, iface.init_args if iface else None)


def install(store: Store, name: str, wasm: bytes, arg: str = "()") -> Canister:
    """Install ``wasm`` with the init argument ``arg`` (Candid text)."""
    api.install(store, name, wasm, arg=init_arg(wasm, arg))
    return Canister(store, name)
