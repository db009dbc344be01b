"""Install or upgrade, whichever the canister needs: dfx's ``install --mode install|reinstall|upgrade|auto``.

``deploy(store, name, wasm, mode=...)`` is what ``graphcopy install`` and ``graphcopy deploy`` run:

* ``install``: a new (or empty) canister gets its first module (``persist.api.install``);
* ``reinstall``: the module is replaced and the state wiped, after a snapshot;
* ``upgrade``: ``migrate.upgrade`` (the plan first, a snapshot, then keep, replace or graph copy),
  skipping a module the canister already runs unless ``upgrade_unchanged``;
* ``auto``: ``install`` when the canister is new or empty, else ``upgrade``.

The argument is the init argument of an install and the post_upgrade argument of an upgrade
(Candid bytes; both are typed by the module's init arguments).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from migrate.graph_copy import ProgressFn
from migrate.plan import UpgradePlan
from migrate.upgrade import UpgradeOutcome, upgrade
from persist import api
from persist.errors import InvalidArgumentError
from persist.execution.install_code import EMPTY_ARGS, InstallResult
from persist.session import Store
from persist.store import db, schema
from persist.store.canisters import DELETED

__all__ = ["DEPLOY_MODES", "DeployOutcome", "deploy"]

DEPLOY_MODES = ("install", "reinstall", "upgrade", "auto")


@dataclass
class DeployOutcome:
    """What ``deploy`` did: ``action`` is installed, reinstalled, upgraded, unchanged or planned (a dry run)."""

    name: str
    action: str
    install: InstallResult | None = None
    upgrade: UpgradeOutcome | None = None

    def summary(self) -> str:
        """One line for people."""
        if self.upgrade is not None:
            return self.upgrade.summary()
        assert self.install is not None
        res = self.install
        verb = "created and installed" if res.created else f"{res.mode}ed"
        line = (f"{res.name} ({res.principal}) {verb}: module {res.module_hash[:16]}…, "
                f"heap {res.heap_bytes / 2**20:.1f} MiB, {res.instructions:,} instructions")
        if res.snapshot_id is not None:
            line += (f"; snapshot {res.snapshot_id} of the old state taken first "
                     f"(`graphcopy rollback {res.name}` restores it)")
        return line

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the install result's fields, or the upgrade outcome's."""
        from dataclasses import asdict

        body = self.upgrade.to_dict() if self.upgrade is not None else asdict(self.install) if self.install else {}
        return {"action": self.action, **body}


def _has_module(store: Store, name: str) -> bool:
    c = schema.canisters.c
    with db.read_transaction(store.engine) as conn:
        row = conn.execute(sa.select(c.module_hash).where(c.name == name, c.status != DELETED)).first()
    return row is not None and row.module_hash is not None


def deploy(
    store: Store,
    name: str,
    wasm: bytes,
    *,
    arg: bytes | None = None,
    mode: str = "auto",
    upgrade_mode: str = "auto",
    upgrade_unchanged: bool = False,
    skip_pre_upgrade: bool = False,
    force: bool = False,
    dry_run: bool = False,
    snapshot: bool = True,
    on_plan: Callable[[UpgradePlan], None] | None = None,
    on_progress: ProgressFn | None = None,
    performance_counter_scale: float | None = None,
) -> DeployOutcome:
    """Install, reinstall or upgrade canister ``name`` to ``wasm`` as ``mode`` says (see the module
    docstring). ``upgrade_mode`` is ``migrate.upgrade``'s mode (auto, keep, replace, graph-copy);
    the other options are those of ``persist.api.install`` and ``migrate.upgrade``. Raises what
    they raise; InvalidArgumentError for an unknown mode."""
    if mode not in DEPLOY_MODES:
        raise InvalidArgumentError(f"unknown install mode {mode!r}: use one of {', '.join(DEPLOY_MODES)}")
    if mode == "auto":
        mode = "upgrade" if _has_module(store, name) else "install"
    if mode == "upgrade":
        out = upgrade(store, name, wasm, arg=arg, mode=upgrade_mode, skip_pre_upgrade=skip_pre_upgrade,
                      force=force, dry_run=dry_run, on_progress=on_progress, snapshot=snapshot,
                      skip_unchanged=not upgrade_unchanged, on_plan=on_plan,
                      performance_counter_scale=performance_counter_scale)
        action = "planned" if dry_run else "upgraded" if out.executed else "unchanged"
        return DeployOutcome(name=name, action=action, upgrade=out)
    if dry_run:
        raise InvalidArgumentError("--dry-run plans upgrades; an install has nothing to plan")
    res = api.install(store, name, wasm, arg=arg if arg is not None else EMPTY_ARGS, mode=mode, snapshot=snapshot)
    return DeployOutcome(name=name, action="reinstalled" if mode == "reinstall" else "installed", install=res)
