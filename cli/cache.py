"""Cache commands: cache info, cache clear (the per-user cache of compiled modules)."""

from __future__ import annotations

from cli.app import cache_app
from cli.common import JsonOpt, errors, human_bytes, out, print_json


@cache_app.command("info")
def cache_info(as_json: JsonOpt = False) -> None:
    """Show where compiled modules are cached, whether the cache is used, and what it holds."""
    from persist import module_cache_info

    with errors():
        info = module_cache_info()
    if as_json:
        print_json(info)
        return
    if not info.enabled:
        out.print(f"module cache off: {info.reason}", highlight=False, markup=False)
        return
    out.print(f"module cache {info.directory}: {info.entries} compiled module(s), {human_bytes(info.bytes)} "
              f"of at most {human_bytes(info.max_bytes)}", highlight=False, markup=False)


@cache_app.command("clear")
def cache_clear(as_json: JsonOpt = False) -> None:
    """Delete every cached compiled module (the next command compiles what it runs again)."""
    from persist import clear_module_cache, module_cache_info

    with errors():
        removed = clear_module_cache()
        info = module_cache_info()
    if as_json:
        print_json({"removed": removed, "directory": info.directory})
        return
    out.print(f"module cache {info.directory or '(off)'}: removed {removed} compiled module(s)", highlight=False,
              markup=False)
