"""What a pipeline checks before it touches a canister: everything it can know from its file.

``run_pipeline`` calls :func:`check_pipeline` before the import step and before any claim, so a
mistake in the file or in what it names is one line (``PipelineError``, exit 2) with every canister
as it was, instead of a failure found after the first canister was upgraded and rolled back:

* the target module is a canister module graphcopy can host (parsed, validated as the replica
  validates it at install, compiled);
* every verify hook ``module:function`` imports (with the pipeline file's directory on
  ``sys.path``, as when it runs) and names a function;
* every verify query is a query method of the target module (its exports, and its Candid
  interface when it declares one), and its arguments parse as Candid text against that interface.

The queries' "before" replies come from each canister's old module and are taken before anything
changes, so a query the old module lacks fails that canister alone and leaves it untouched.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

from migrate.errors import PipelineError
from persist.api.calls import module_interface
from persist.candid import encode_args
from persist.errors import GraphcopyError
from persist.session import Store

__all__ = ["check_pipeline", "import_hook"]


class VerifySpec(Protocol):
    """A verify entry of a pipeline file (``migrate.pipeline.VerifyStep``)."""

    query: str | None
    args: str
    hook: str | None


class PipelineSpec(Protocol):
    """What the checks read of a pipeline (``migrate.pipeline.Pipeline``)."""

    path: str
    module_path: str
    verify: list[Any]


def import_hook(spec: str, base_dir: str | Path) -> Callable[[Store, str], Any]:
    """The function a verify hook ``"module:function"`` names, imported with ``base_dir`` (the
    pipeline file's directory) on ``sys.path``. PipelineError (one line) if the module cannot be
    imported, fails while importing, or has no such function."""
    mod_name, _, fn_name = spec.partition(":")
    if not mod_name or not fn_name or not all(part.isidentifier() for part in mod_name.split(".")) \
            or not fn_name.isidentifier():
        raise PipelineError(f"verify hook {spec!r} must be \"module:function\" (a Python module and a function in it)")
    base = str(Path(base_dir))
    if base not in sys.path:
        sys.path.insert(0, base)
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        raise PipelineError(f"verify hook {spec!r}: no module named {exc.name or mod_name!r} (looked in {base} and "
                            "on the Python path)") from None
    except Exception as exc:  # noqa: BLE001 - any failure of the hook's own code, in one line
        text = " ".join(str(exc).split())
        raise PipelineError(f"verify hook {spec!r}: importing {mod_name} failed: {type(exc).__name__}: {text}") \
            from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise PipelineError(f"verify hook {spec!r}: {mod_name} has no function {fn_name}")
    return cast(Callable[[Store, str], Any], fn)


def check_pipeline(store: Store, pipeline: PipelineSpec) -> None:
    """Check everything ``pipeline`` names that can be checked before a canister is touched (see the
    module docstring); PipelineError with the first problem found, nothing changed."""
    where = Path(pipeline.path).name
    try:
        wasm = Path(pipeline.module_path).read_bytes()
    except OSError as exc:
        raise PipelineError(f"{where}: cannot read module {pipeline.module_path}: {exc.strerror}") from None
    try:
        info, _ = store.runtime.load_module(wasm)
    except GraphcopyError as exc:
        raise PipelineError(f"{where}: module {pipeline.module_path}: {exc}") from None
    iface = module_interface(info)
    verify: Sequence[VerifySpec] = pipeline.verify
    for v in verify:
        if v.hook is not None:
            try:
                import_hook(v.hook, Path(pipeline.path).parent)
            except PipelineError as exc:
                raise PipelineError(f"{where}: {exc}") from None
            continue
        method = v.query or ""
        if method in info.updates:
            raise PipelineError(f"{where}: verify query {method!r} is an update method of the target module, not a "
                                "query (a verify step must not change the canister)")
        if method not in info.queries:
            known = ", ".join(sorted(q for q in info.queries if not q.startswith("__"))) or "none"
            raise PipelineError(f"{where}: verify query {method!r} is not a query method of the target module "
                                f"{Path(pipeline.module_path).name} (its queries: {known})")
        sig = iface.methods.get(method) if iface is not None else None
        try:
            encode_args(v.args, sig.args if sig is not None else None)
        except GraphcopyError as exc:
            raise PipelineError(f"{where}: verify query {method}{v.args}: the arguments do not parse: {exc}") from None
