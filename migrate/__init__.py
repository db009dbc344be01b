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

The names are bound eagerly: the function ``upgrade`` shares its name with the module
``migrate.upgrade``, and only an explicit import here makes ``migrate.upgrade`` the function
(import the module's other names with ``from migrate.upgrade import ...``).
"""

from __future__ import annotations

from migrate.compat import CompatReport, check_compatibility
from migrate.descriptor import applied_migrations, signature_from_canister
from migrate.graph_copy import MigrationStateError, destabilize, stabilize
from migrate.graph_copy import run as run_graph_copy
from migrate.plan import UpgradePlan, UpgradeRefusedError, plan_upgrade
from migrate.stable_types import parse_signature
from migrate.upgrade import UpgradeOutcome, upgrade

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
