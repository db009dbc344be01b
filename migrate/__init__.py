"""Moving a canister from one module version to the next without losing its data.

The public API (the CLI calls exactly these)::

    from migrate import plan_upgrade, upgrade, stabilize, destabilize
    with open_store(url) as store:
        print(plan_upgrade(store, "ledger", new_wasm).format_text())
        outcome = upgrade(store, "ledger", new_wasm, mode="auto")   # keep, or graph copy, or refuse

``migrate`` builds on ``persist`` (its public API, the store and the host) and never imports ``cli``.
Its parts: ``stable_types`` and ``descriptor`` (the two views of a stable type), ``compat``,
``chain``, ``report`` and ``check`` (compatibility; ``chain`` for enhanced migration chains),
``plan``, ``upgrade``, ``graph_copy`` and ``record`` (doing it), ``pipeline``.

The names load on first use (PEP 562), so a command that needs one part (``graphcopy status``
reads the applied migrations) does not import them all. The function ``upgrade`` shares its
name with the module ``migrate.upgrade``: the package's ``upgrade`` is always the function, even
after the submodule is imported (import the module's other names with
``from migrate.upgrade import ...``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names as they are, for type checkers
    from migrate.compat import CompatReport, check_compatibility
    from migrate.descriptor import applied_migrations, signature_from_canister
    from migrate.graph_copy import MigrationStateError, destabilize, stabilize
    from migrate.graph_copy import run as run_graph_copy
    from migrate.plan import UpgradePlan, UpgradeRefusedError, plan_upgrade
    from migrate.stable_types import parse_signature
    from migrate.upgrade import UpgradeOutcome, upgrade

_EXPORTS = {
    "CompatReport": ("migrate.compat", "CompatReport"),
    "check_compatibility": ("migrate.compat", "check_compatibility"),
    "applied_migrations": ("migrate.descriptor", "applied_migrations"),
    "signature_from_canister": ("migrate.descriptor", "signature_from_canister"),
    "MigrationStateError": ("migrate.graph_copy", "MigrationStateError"),
    "destabilize": ("migrate.graph_copy", "destabilize"),
    "stabilize": ("migrate.graph_copy", "stabilize"),
    "run_graph_copy": ("migrate.graph_copy", "run"),
    "UpgradePlan": ("migrate.plan", "UpgradePlan"),
    "UpgradeRefusedError": ("migrate.plan", "UpgradeRefusedError"),
    "plan_upgrade": ("migrate.plan", "plan_upgrade"),
    "parse_signature": ("migrate.stable_types", "parse_signature"),
    "UpgradeOutcome": ("migrate.upgrade", "UpgradeOutcome"),
    "upgrade": ("migrate.upgrade", "upgrade"),
}

__all__ = [
    "CompatReport",
    "MigrationStateError",
    "UpgradeOutcome",
    "UpgradePlan",
    "UpgradeRefusedError",
    "applied_migrations",
    "check_compatibility",
    "destabilize",
    "parse_signature",
    "plan_upgrade",
    "run_graph_copy",
    "signature_from_canister",
    "stabilize",
    "upgrade",
]


def __getattr__(name: str) -> Any:
    found = _EXPORTS.get(name)
    if found is None:
        raise AttributeError(f"module 'migrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(found[0]), found[1])
    if name != "upgrade":
        globals()[name] = value
    return value


class _Package(types.ModuleType):
    """``migrate`` itself: its ``upgrade`` is the function. Importing the submodule
    ``migrate.upgrade`` sets the package attribute of that name to the module; that is ignored
    here (``sys.modules`` has the module, which is all ``from migrate.upgrade import ...`` uses)."""

    @property
    def upgrade(self) -> Any:
        return __getattr__("upgrade")

    @upgrade.setter
    def upgrade(self, value: Any) -> None:
        pass


sys.modules[__name__].__class__ = _Package
